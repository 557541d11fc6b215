/* The basins view: every chosen optimizer runs from every start of a grid over the domain
 * (POST /api/basins, one batch), and each start is coloured by the minimum its run ends in.
 * One small map per optimizer (the basins over the landscape's contour lines, the minima
 * as stars) and a table of the share of starts that reach each minimum.
 */

import { PLOT_CONFIG } from "./config.js";
import { $, busy, el, setStatus, showMessage } from "./dom.js";
import { fmt, hpText, lrOnly } from "./format.js";
import { api } from "./api.js";
import { state, live, colorOf, currentLandscape } from "./state.js";
import { writeUrl } from "./url.js";
import { contourLines } from "./grid.js";

// the classes of a basins answer in code order from -2: diverged, not settled, the minima
function classes(answer) {
  return [{ name: "diverged", color: answer.colors.diverged },
    { name: "not settled", color: answer.colors["not settled"] },
    ...answer.minima.map((m) => ({ name: m.name, color: m.color }))];
}

// a discrete colour scale: value k (0..n-1) drawn in colours[k]
function steps(colors) {
  const n = colors.length;
  return colors.flatMap((c, k) => [[k / n, c], [(k + 1) / n, c]]);
}

function basinMap(div, answer, result) {
  const cls = classes(answer);
  const g = answer.grid;
  const z = [];
  for (let i = 0; i < g; i++) z.push(result.basin.slice(i * g, (i + 1) * g).map((b) => b + 2));
  const names = cls.map((c) => c.name);
  const traces = [{ type: "heatmap", x: answer.xs, y: answer.ys, z, zmin: -0.5, zmax: cls.length - 0.5,
    colorscale: steps(cls.map((c) => c.color)), showscale: false,
    customdata: z.map((row) => row.map((k) => names[k])),
    hovertemplate: "start (%{x:.3g}, %{y:.3g}) → %{customdata}<extra></extra>" }];
  const lines = contourLines();
  if (lines) traces.push(lines);
  traces.push({ type: "scatter", mode: "markers", x: answer.minima.map((m) => m.point[0]),
    y: answer.minima.map((m) => m.point[1]), hovertemplate: "%{text}<extra></extra>",
    text: answer.minima.map((m) => m.name),
    // (a black edge: the basins' pastel would vanish on the basin around the star)
    marker: { symbol: "star", size: 13, color: "#fff", line: { color: "#000", width: 1.2 } } });
  const [[x0, x1], [y0, y1]] = currentLandscape().domain;
  const best = Object.entries(result.shares).sort((a, b) => b[1] - a[1])[0];
  const layout = { margin: { l: 40, r: 8, t: 44, b: 34 }, showlegend: false,
    title: { text: `<b>${result.label}</b> (${hpText(lrOnly(result.hparams))})<br>${Math.round(100 * best[1])}% to ${best[0]}`,
      font: { size: 12, color: colorOf(result.name) } },
    xaxis: { range: [x0, x1], title: { text: "start x" }, zeroline: false },
    yaxis: { range: [y0, y1], title: { text: "start y" }, zeroline: false, scaleanchor: "x" } };
  return Plotly.react(div, traces, layout, { ...PLOT_CONFIG, displayModeBar: false });
}

function fillTable(answer) {
  const cls = classes(answer);
  const order = [...cls.slice(2), cls[1], cls[0]];  // the minima first
  const head = $("#basins-table thead");
  head.replaceChildren(el("tr", {}, el("th", { text: "optimizer" }), el("th", { text: "hyperparameters" }),
    ...order.map((c) => el("th", {}, el("span", { class: "swatch", style: `background:${c.color}` }), `→ ${c.name}`))));
  const body = $("#basins-table tbody");
  body.textContent = "";
  for (const r of answer.results) {
    body.append(el("tr", { "data-label": r.label },
      el("td", {}, el("span", { class: "swatch", style: `background:${colorOf(r.name)}` }), r.label),
      el("td", { text: hpText(lrOnly(r.hparams)) }),
      ...order.map((c) => el("td", { class: "num", text: `${Math.round(100 * (r.shares[c.name] || 0))}%` }))));
  }
  $("#basins-note").textContent = `${answer.grid} × ${answer.grid} starts at the centres of a tiling of the domain, `
    + `${answer.steps} steps each; a start counts for a minimum when its run ends within ${fmt(answer.radius)} of it, `
    + `"not settled" when it ends near none, "diverged" when it ran off. Fixed rates, the same from every start.`;
}

// what a small map shows, in words, for a screen reader: every class's share, the minima first
// (the table and the note below say the same in full)
function mapText(answer, r) {
  const cls = classes(answer);
  const shares = [...cls.slice(2), cls[1], cls[0]]
    .map((c) => ({ name: c.name, share: Math.round(100 * (r.shares[c.name] || 0)) }))
    .filter((c) => c.share > 0)
    .map((c) => (c.name === "diverged" || c.name === "not settled" ? `${c.share}% ${c.name}` : `${c.share}% to ${c.name}`));
  return `basins of ${r.label} (${hpText(lrOnly(r.hparams))}) from ${answer.grid} × ${answer.grid} starts: `
    + (shares.join(", ") || "no start");
}

export async function drawBasins() {
  const answer = live.basins;
  const box = $("#basins-maps");
  box.textContent = "";
  if (!answer) return;
  for (const r of answer.results) {
    const div = el("div", { class: "basin-plot", "data-label": r.label, role: "figure",
      "aria-label": mapText(answer, r), "aria-describedby": "basins-note" });
    box.append(div);
    await basinMap(div, answer, r);
  }
  fillTable(answer);
}

export async function runBasins() {
  const button = $("#race");
  const enable = busy(button);  // (the focus stays on it)
  document.body.dataset.basins = "0";
  setStatus("mapping basins…");
  showMessage("");
  writeUrl();
  const epoch = live.epoch;
  let answer;
  try {
    answer = await api("/api/basins", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ landscape: state.landscape, params: state.params, steps: state.steps, grid: state.basinGrid,
        optimizers: [...state.selected].map(([name, hparams]) => ({ name, hparams })) }) });
  } catch (err) {
    enable();
    if (live.epoch !== epoch) return;
    showMessage(err.message);
    setStatus("the basins map was refused");
    return;
  }
  enable();
  if (live.epoch !== epoch) {  // the settings changed while it ran: it is not of what the page shows
    setStatus("the settings changed while mapping: map again");
    return;
  }
  live.basins = answer;
  const starts = live.basins.grid ** 2;
  setStatus(`mapped ${live.basins.results.length} optimizers × ${starts} starts × ${live.basins.steps} steps `
    + `in ${Math.round(live.basins.elapsed_ms)} ms`);
  writeUrl();
  await drawBasins();
  document.body.dataset.basins = "1";
}

// the basins view or the race's: which panels show, and what the button says
export function showMode() {
  const basins = state.basins;
  for (const id of ["#race-plots", "#player", "#results"]) $(id).hidden = basins;
  if (basins) $("#inspect-panel").hidden = true;
  $("#basins-view").hidden = !basins;
  $("#basins-grid-row").hidden = !basins;
  $("#race").textContent = basins ? "Map basins" : "Race";
}
