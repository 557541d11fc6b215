/* Racing and replaying: runRace posts the configuration to /api/race and shows the answer
 * (the status line, the results table, the values each optimizer used, the map and the
 * loss chart), then animates it: play/pause/tick move every path's head along over
 * ANIMATION_MS, setFrame (also driven by the scrubber) redraws one point of the animation.
 * clearRace forgets the last race when the configuration changes.
 */

import { ANIMATION_MS } from "./config.js";
import { $, el, setStatus, showMessage } from "./dom.js";
import { fmt, hpText } from "./format.js";
import { api } from "./api.js";
import { state, live, colorOf } from "./state.js";
import { writeUrl } from "./url.js";
import { showStart } from "./controls.js";
import { drawMap, drawable, height, pathSlice } from "./map.js";
import { drawLoss } from "./loss.js";

let playing = false, animStart = 0, animFrom = 0;

// ------------------------------------------------------------------------------ racing

export function clearRace() {
  live.race = null;
  live.frame = 0;
  playing = false;
  $("#results tbody").textContent = "";
  $("#play").disabled = true;
  $("#scrub").disabled = true;
  $("#step-label").textContent = "no race yet";
  for (const used of document.querySelectorAll(".used")) used.textContent = "";
  document.body.dataset.raced = "0";
  drawLoss();
}

function raceRequest() {
  return {
    landscape: state.landscape, params: state.params, start: state.start, steps: state.steps,
    noise: state.noise, seed: state.seed, tune: state.tune,
    optimizers: [...state.selected].map(([name, hparams]) => ({ name, hparams })),
  };
}

export async function runRace() {
  if (!state.selected.size) { showMessage("choose at least one optimizer"); return; }
  const button = $("#race");
  button.disabled = true;
  setStatus("racing…");
  showMessage("");
  writeUrl();
  try {
    live.race = await api("/api/race", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(raceRequest()) });
  } catch (err) {
    showMessage(err.message);
    setStatus("the race was refused");
    button.disabled = false;
    return;
  }
  button.disabled = false;
  const diverged = live.race.results.filter((r) => r.metrics.diverged).length;
  setStatus(`raced ${live.race.results.length} optimizers × ${live.race.steps} steps in ${Math.round(live.race.elapsed_ms)} ms`
    + (diverged ? ` (${diverged} diverged)` : ""));
  state.start = live.race.start;
  showStart();
  writeUrl();
  fillResults();
  showUsed();
  const scrub = $("#scrub");
  scrub.max = live.race.step.length - 1;
  scrub.disabled = false;
  $("#play").disabled = false;
  live.frame = 0;
  await drawMap();
  await drawLoss();
  document.body.dataset.raced = "1";
  play();
}

function fillResults() {
  const body = $("#results tbody");
  body.textContent = "";
  $("#tol-head").textContent = `steps to ${fmt(live.race.tol)} of the minimum`;
  for (const r of live.race.results) {
    const m = r.metrics;
    body.append(el("tr", { class: m.diverged ? "diverged" : null, "data-label": r.label },
      el("td", {}, el("span", { class: "swatch", style: `background:${colorOf(r.name)}` }), r.label),
      el("td", { text: hpText(r.hparams, live.race.tune) }),
      el("td", { class: "num", text: fmt(m.final_loss, 4) }),
      el("td", { class: "num", text: fmt(m.distance, 4) }),
      el("td", { class: "num", text: m.steps_to_tol === null ? "never" : String(m.steps_to_tol) }),
      el("td", { text: m.diverged ? "yes" : "no" })));
  }
}

function showUsed() {
  for (const r of live.race.results) {
    const row = document.querySelector(`.opt[data-name="${CSS.escape(r.name)}"] .used`);
    if (row) {
      row.textContent = "";
      row.append("used: ", el("b", { text: hpText(r.hparams, live.race.tune) }));
    }
  }
}

function setFrame(k) {
  if (!live.race) return;
  const last = live.race.step.length - 1;
  live.frame = Math.max(0, Math.min(last, k));
  const map = $("#map");
  const three = state.view === "3d";
  const paths = [], heads = [];
  const xs = [], ys = [], zs = [], hx = [], hy = [], hz = [];
  live.race.results.forEach((result, i) => {
    const r = drawable(result);
    paths.push(3 + 2 * i); heads.push(4 + 2 * i);
    xs.push(pathSlice(r.x, live.frame)); ys.push(pathSlice(r.y, live.frame));
    hx.push([r.x[live.frame]]); hy.push([r.y[live.frame]]);
    if (three) { zs.push(pathSlice(r.loss, live.frame).map(height)); hz.push([height(r.loss[live.frame])]); }
  });
  const update = three ? { x: xs.concat(hx), y: ys.concat(hy), z: zs.concat(hz) } : { x: xs.concat(hx), y: ys.concat(hy) };
  Plotly.restyle(map, update, paths.concat(heads));
  Plotly.relayout($("#loss"), { "shapes[0].x0": live.race.step[live.frame], "shapes[0].x1": live.race.step[live.frame] });
  $("#scrub").value = live.frame;
  $("#step-label").textContent = `step ${live.race.step[live.frame]} / ${live.race.steps}`;
  document.body.dataset.frame = String(live.frame);
}

function play() {
  if (!live.race) return;
  if (live.frame >= live.race.step.length - 1) live.frame = 0;
  playing = true;
  animFrom = live.frame;
  animStart = performance.now();
  $("#play").textContent = "❚❚ Pause";
  document.body.dataset.playing = "1";
  requestAnimationFrame(tick);
}

function pause() {
  playing = false;
  $("#play").textContent = "▶ Play";
  document.body.dataset.playing = "0";
}

function tick(now) {
  if (!playing || !live.race) return;
  const last = live.race.step.length - 1;
  const k = animFrom + Math.floor(((now - animStart) / ANIMATION_MS) * last);
  setFrame(k);
  if (k >= last) { pause(); return; }
  requestAnimationFrame(tick);
}

// the Play/Pause button and the scrubber under the map
export function bindPlayer() {
  $("#play").addEventListener("click", () => (playing ? pause() : play()));
  $("#scrub").addEventListener("input", () => { pause(); setFrame(Number($("#scrub").value)); });
}
