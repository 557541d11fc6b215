/* Racing and replaying: runRace posts the configuration to /api/race and shows the answer
 * (the status line, the results table, the values each optimizer used, the map and the
 * loss chart), then animates it: play/pause/tick move every path's head along over
 * ANIMATION_MS, setFrame (also driven by the scrubber) redraws one point of the animation.
 * clearRace forgets the last race when the configuration changes.
 */

import { ANIMATION_MS, FAN_FACTORS, INSPECT_STEPS } from "./config.js";
import { $, busy, el, READY, setStatus, showMessage } from "./dom.js";
import { fmt, hpText } from "./format.js";
import { api } from "./api.js";
import { state, live, catalog, colorOf, currentLandscape, hasMinima } from "./state.js";
import { writeUrl } from "./url.js";
import { drawMap, showStart } from "./map.js";
import { drawable, height, pathSlice } from "./grid.js";
import { drawLoss } from "./loss.js";
import { drawBasins, runBasins } from "./basins.js";

let playing = false, animStart = 0, animFrom = 0;

// ------------------------------------------------------------------------------ racing

export function clearRace() {
  // the status line spoke of the race (or basins map) that goes
  if (live.race || live.basins) setStatus(READY);
  live.epoch += 1;  // a race (or map) still on its way was asked for with other settings
  live.race = null;
  live.frame = 0;
  playing = false;
  $("#results tbody").textContent = "";
  if (currentLandscape()) resultHeads();
  $("#tuning-note").textContent = "";
  $("#race-summary").textContent = NO_RACE;
  $("#play").disabled = true;
  $("#scrub").disabled = true;
  $("#step-label").textContent = "no race yet";
  $("#scrub").setAttribute("aria-valuetext", "no race yet");
  for (const used of document.querySelectorAll(".used")) used.textContent = "";
  live.inspect = null;
  $("#inspect-panel").hidden = true;
  document.body.dataset.raced = "0";
  live.basins = null;
  document.body.dataset.basins = "0";
  drawBasins();
  drawLoss();
}

function raceRequest() {
  return {
    landscape: state.landscape, params: state.params, start: state.start, steps: state.steps,
    noise: state.noise, seed: state.seed, tune: state.tune,
    optimizers: [...state.selected].map(([name, hparams]) => ({ name, hparams })),
    starts: state.starts, fan: state.fan ? FAN_FACTORS : [],
  };
}

// the step-by-step record of the chosen optimizer, with the values it raced with (the
// tuned rate when tuning), over the race's steps up to the server's max_inspect_steps
async function inspectRun() {
  live.inspect = null;
  const result = live.race.results.find((r) => r.name === state.inspect);
  if (!result) return;
  const hparams = {};
  const chosen = state.selected.get(state.inspect) || {};
  for (const k of Object.keys(chosen)) if (k in result.hparams) hparams[k] = result.hparams[k];
  const steps = Math.min(live.race.steps, catalog.limits.max_inspect_steps ?? INSPECT_STEPS);
  live.inspect = await api("/api/inspect", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ landscape: state.landscape, params: state.params, start: live.race.start,
      steps, noise: state.noise, seed: state.seed, optimizer: { name: state.inspect, hparams } }) });
  live.inspect.label = result.label;
  $("#inspect-title").textContent = `Step by step: ${result.label}`;
  $("#inspect-panel").hidden = false;
}

export async function runRace() {
  if (!state.selected.size) { showMessage("choose at least one optimizer"); return; }
  if (state.basins) return runBasins();
  const button = $("#race");
  const enable = busy(button);  // (the focus stays on it)
  document.body.dataset.raced = "0";  // until this race's answer is shown
  setStatus("racing…");
  showMessage("");
  writeUrl();
  const epoch = live.epoch;
  let answer;
  try {
    answer = await api("/api/race", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(raceRequest()) });
  } catch (err) {
    if (live.epoch !== epoch) { enable(); return; }
    showMessage(err.message);
    setStatus("the race was refused");
    enable();
    return;
  }
  enable();
  if (live.epoch !== epoch) {  // the settings changed while it ran: it is not of what the page shows
    setStatus("the settings changed while racing: race again");
    return;
  }
  live.race = answer;
  const diverged = live.race.results.filter((r) => r.metrics.diverged).length;
  setStatus(`raced ${live.race.results.length} optimizers × ${live.race.steps} steps in ${Math.round(live.race.elapsed_ms)} ms`
    + (diverged ? ` (${diverged} diverged)` : ""));
  state.start = live.race.start;
  showStart();
  writeUrl();
  fillResults();
  showUsed();
  try {
    await inspectRun();
  } catch (err) {
    showMessage(`step by step: ${err.message}`);
  }
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

// The results table's two middle columns: on a landscape with a minimum the distance to it
// and the steps to within tol of it; on one without (a saddle) whether and when each run
// escaped, as the command line's table says (`optimlab race`).
function resultHeads(tol) {
  const minimum = hasMinima();
  $("#dist-head").textContent = minimum ? "distance to minimum" : "escaped";
  $("#tol-head").textContent = !minimum ? "steps to escape"
    : tol === undefined ? "steps to tolerance" : `steps to f − f_min ≤ ${fmt(tol)}`;
  return minimum;
}

function fillResults() {
  const body = $("#results tbody");
  body.textContent = "";
  const minimum = resultHeads(live.race.tol);
  for (const r of live.race.results) {
    const m = r.metrics;
    const cells = minimum
      ? [fmt(m.distance, 4), m.steps_to_tol === null ? "never"
        // reached the tolerance at that step but ended above it (the table's "(left)")
        : String(m.steps_to_tol) + (m.gap > live.race.tol ? " (left)" : "")]
      : [m.escaped === null || m.escaped === undefined ? "–" : m.escaped ? "yes" : "no",
        m.steps_to_escape !== null && m.steps_to_escape !== undefined ? String(m.steps_to_escape)
          : m.escaped === false ? "never" : "–"];
    body.append(el("tr", { class: m.diverged ? "diverged" : null, "data-label": r.label },
      el("td", {}, el("span", { class: "swatch", style: `background:${colorOf(r.name)}` }), r.label),
      el("td", { text: hpText(r.hparams, live.race.tune) }),
      el("td", { class: "num", text: fmt(m.final_loss, 4) }),
      el("td", { class: "num", text: cells[0] }),
      el("td", { class: "num", text: cells[1] }),
      el("td", { text: m.diverged ? "yes" : "no" })));
  }
  $("#tuning-note").textContent = tuningNote(live.race);
  $("#race-summary").textContent = raceSummary(live.race, minimum);
}

// What the map and the loss chart show, in a line of text (their description, beside the
// results table): who raced from where, how each ended, who reached the tolerance (or
// escaped the saddle) at which step.
const NO_RACE = "No race yet: race to see each optimizer's path on the map and its loss against the step.";
function raceSummary(race, minimum) {
  const more = race.results.some((r) => (r.extra || []).length) ? " (with more starts or rates, drawn thin)" : "";
  const finals = race.results.map((r) => `${r.label} ${r.metrics.diverged ? "diverged" : fmt(r.metrics.final_loss, 4)}`);
  const reached = race.results.filter((r) => (minimum ? r.metrics.steps_to_tol : r.metrics.steps_to_escape) != null)
    .map((r) => `${r.label} at step ${minimum ? r.metrics.steps_to_tol : r.metrics.steps_to_escape}`);
  const goal = !minimum ? "Escaped the saddle" : race.tol === undefined ? "Reached the tolerance"
    : `Reached f − f_min ≤ ${fmt(race.tol)}`;
  return `${race.results.map((r) => r.label).join(", ")} raced ${race.steps} steps from ${fmt(race.start, 4)}${more}. `
    + `Final loss: ${finals.join("; ")}. ${goal}: ${reached.length ? reached.join("; ") : "none"}.`;
}

// What tuning did, under the table: the criterion, the rates added beyond a grid edge, and
// every pick still on an edge (a better rate may lie beyond it)
export function tuningNote(race) {
  if (!race.tune) return "";
  const out = race.results.filter((r) => r.every_rate_out);
  const unless = out.length ? ", unless every rate is out: then the smallest is shown" : "";
  const lines = [`lr tuned by: ${race.tuned_by} (a diverged run never wins${unless}).`];
  for (const r of race.results) {
    if (r.tuning_extended && r.tuning_extended.length) {
      lines.push(`${r.label}: the grid was extended to ${r.tuning_extended.map((v) => fmt(v)).join(", ")}.`);
    }
    if (r.every_rate_out) {
      lines.push(`${r.label}: every rate tried is out by that criterion; the lr shown, the smallest, won nothing.`);
    } else if (r.tuning_edge) {
      const why = race.extend ? "" : " (not extended: the race's work would pass the limit)";
      lines.push(`${r.label}: the tuned lr is on the grid's ${r.tuning_edge} edge${why}; a better rate may lie beyond it.`);
    }
  }
  return lines.join(" ");
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
  $("#scrub").setAttribute("aria-valuetext", $("#step-label").textContent);  // the step, not the point's index
  document.body.dataset.frame = String(live.frame);
  showInspect(live.race.step[live.frame]);
}

// The step-by-step panel and the arrows at the inspected optimizer's point, at race step t.
// Past the record's end the panel shows its last step and its title says so; the arrows
// go (they would stand at a point the path has left).
function showInspect(t) {
  const rec = live.inspect;
  if (!rec || state.view !== "2d") { if (state.view === "2d") Plotly.relayout($("#map"), { annotations: [] }); return; }
  const k = Math.min(t, rec.steps - 1);
  $("#inspect-title").textContent = `Step by step: ${rec.label}` + (k === t ? ""
    : t === rec.steps && t === live.race.steps ? ` at step ${k}, the last step taken`
      : ` at step ${k}: the record ends there (${rec.steps} of the race's ${live.race.steps} steps); the map is at step ${t}`);
  const lr = Number(rec.hparams.lr) || 0;
  const x = rec.x[k], y = rec.y[k];
  const rows = [["point", [x, y]], ["loss", [rec.loss[k], null]], ["gradient", rec.grad[k]],
    ["−lr × gradient", rec.grad[k].map((g) => (g === null ? null : -lr * g))], ["step taken", rec.update[k]]];
  const arrows = [arrow(x, y, rec.update[k], "#000", "step"),
    arrow(x, y, rec.grad[k].map((g) => (g === null ? null : -lr * g)), "#d62728", "−lr·g")];
  for (const entry of rec.state) {
    const v = entry.values[k];
    if (entry.kind === "scalar") { rows.push([entry.name, [v, null]]); continue; }
    rows.push([`${entry.name} (${entry.kind})`, v]);
    if (entry.kind === "scale") rows.push([`√${entry.name}`, v.map((a) => (a === null ? null : Math.sqrt(a)))]);
    else arrows.push(arrow(x, y, v.map((a) => (a === null ? null : -lr * a)), "#1f77b4", `−lr·${entry.name}`));
  }
  const body = $("#inspect-table tbody");
  body.textContent = "";
  for (const [name, [a, b]] of rows) {
    body.append(el("tr", {}, el("td", { text: name }), el("td", { class: "num", text: fmt(a, 4) }),
      el("td", { class: "num", text: b === null || b === undefined ? "" : fmt(b, 4) })));
  }
  $("#inspect-panel").dataset.step = String(k);
  Plotly.relayout($("#map"), { annotations: t > rec.steps ? [] : arrows.filter(Boolean) });
}

function arrow(x, y, v, color, text) {
  if (!v || v[0] === null || v[1] === null || x === null || y === null) return null;
  if (v[0] === 0 && v[1] === 0) return null;
  return { x: x + v[0], y: y + v[1], ax: x, ay: y, xref: "x", yref: "y", axref: "x", ayref: "y",
    showarrow: true, arrowhead: 2, arrowsize: 1, arrowwidth: 2, arrowcolor: color, text: "",
    hovertext: text };
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

// the Play/Pause button and the scrubber under the map; a start moved on the map voids the
// race run from the old one (map.js dispatches "start-moved" before it redraws)
export function bindPlayer() {
  $("#map").addEventListener("start-moved", clearRace);
  $("#play").addEventListener("click", () => (playing ? pause() : play()));
  $("#scrub").addEventListener("input", () => { pause(); setFrame(Number($("#scrub").value)); });
}
