/* The Runs tab: the tab switch (showTab, for the Slices tab too), the list of sweeps in the run store
 * (GET /api/sweeps) and one sweep's mean curves, learning-rate sensitivity and summary
 * table (GET /api/sweeps/{id}).
 */

import { PLOT_CONFIG } from "./config.js";
import { $, el } from "./dom.js";
import { ciText, esc, fmt, logTicks, metricName, utcText } from "./format.js";
import { api } from "./api.js";
import { state, colorOf, dashOf } from "./state.js";
import { writeUrl } from "./url.js";
import { loadSlices } from "./slices.js";

export const TABS = ["race", "runs", "slices"];

export function showTab(tab) {
  state.tab = tab;
  for (const name of TABS) {
    $(`#${name}-view`).hidden = tab !== name;
    $(`#tab-${name}`).classList.toggle("active", tab === name);
    // the WAI-ARIA tabs pattern: the active tab is said (not by its colour only), and is the
    // one Tab reaches; the arrow keys move between tabs (tabKeys)
    $(`#tab-${name}`).setAttribute("aria-selected", String(tab === name));
    $(`#tab-${name}`).tabIndex = tab === name ? 0 : -1;
  }
  writeUrl();
  if (tab === "runs") loadSweeps();
  else if (tab === "slices") loadSlices();
  else for (const id of ["#map", "#loss"]) if ($(id).data) Plotly.Plots.resize($(id));
}

// Arrow keys (Left/Right, wrapping), Home and End on a tab: the next tab is shown and focused
export function tabKeys(event) {
  const moves = { ArrowRight: 1, ArrowLeft: -1, Home: "first", End: "last" };
  if (!(event.key in moves)) return;
  const at = TABS.indexOf(state.tab);
  const move = moves[event.key];
  const next = move === "first" ? 0 : move === "last" ? TABS.length - 1
    : (at + move + TABS.length) % TABS.length;
  event.preventDefault();
  showTab(TABS[next]);
  $(`#tab-${TABS[next]}`).focus();
}

async function loadSweeps() {
  const body = $("#sweeps tbody");
  let sweeps;
  try {
    sweeps = await api("/api/sweeps");
  } catch (err) {
    // nothing of the last list (nor the sweep shown from it) stays as if it were current
    body.textContent = "";
    hideSweep();
    document.body.dataset.sweeps = "error";
    $("#runs-message").textContent = err.message;
    return;
  }
  body.textContent = "";
  for (const s of sweeps) {
    // a damaged sweep is listed with why it cannot be shown (the others still can be)
    // a click anywhere on the row opens it; its id is a button, for the keyboard (whose
    // Enter or Space clicks it, and the click reaches the row)
    const row = el("tr", { "data-sweep": s.id, onclick: () => selectSweep(s.id, true), class: s.error ? "broken" : null },
      el("td", {}, el("button", { type: "button", class: "row-open", "aria-label": `sweep ${s.id}${s.name ? ` (${clip(s.name)})` : ""}` }, String(s.id))), el("td", { text: s.name || "" }), el("td", { text: s.task || "" }),
      el("td", { text: s.model || "default" }), el("td", { text: s.error ? s.created_at : utcText(s.created_at) }),
      el("td", { text: s.runs }),
      el("td", { text: s.error || (s.labels.length ? s.labels : s.optimizers).join(", ") }));
    body.append(row);
  }
  $("#runs-message").textContent = sweeps.length ? "Click a sweep (or its id) to see its curves and summary."
    : "No sweeps in this run store yet: run `optimlab bench TASK --optimizers sgd,adam` and reload.";
  document.body.dataset.sweeps = String(sweeps.length);
  if (state.sweep !== null && sweeps.some((s) => s.id === state.sweep)) selectSweep(state.sweep);
  else {
    // a link's sweep= that this store does not hold (or cannot show): said, not dropped
    if (state.sweep !== null) $("#runs-message").textContent = `No sweep ${state.sweep} in this run store. ${$("#runs-message").textContent}`;
    hideSweep();
  }
}

// A sweep's name in its row button's accessible name: a long one (hundreds of characters)
// cut to its first 50 characters, with an ellipsis (the label about 60); the row's name cell
// shows it whole.
function clip(name, most = 50) {
  return name.length > most ? `${name.slice(0, most - 1)}…` : name;
}

// Counts the sweeps asked for (and hideSweep): an answer, or an error, for any but the last
// one asked comes late (a big sweep takes seconds) and is dropped, so the page shows the
// sweep its URL names.
let asked = 0;

// No sweep shown: its detail hidden, no row highlighted, no sweep in the state and the URL;
// a sweep still on its way is not shown when it comes.
function hideSweep() {
  asked += 1;
  $("#sweep-detail").hidden = true;
  $("#sweep-detail").removeAttribute("aria-busy");
  for (const row of document.querySelectorAll("#sweeps tbody tr")) row.classList.remove("active");
  state.sweep = null;
  writeUrl();
  delete document.body.dataset.sweep;
}

// `focus`: chosen by the user, the focus goes to the sweep's title (not when a link opens it)
async function selectSweep(id, focus = false) {
  const ask = ++asked;
  // said while it loads (a big sweep takes seconds); the sweep shown before stays until then
  $("#runs-message").textContent = `Sweep ${id}: loading…`;
  $("#sweep-detail").setAttribute("aria-busy", "true");
  let d;
  try {
    d = await api(`/api/sweeps/${id}`);
  } catch (err) {
    if (ask !== asked) return;
    // the sweep shown before is not the one asked for: none is shown
    hideSweep();
    $("#runs-message").textContent = err.message;
    return;
  }
  if (ask !== asked) return;
  $("#runs-message").textContent = "Click a sweep (or its id) to see its curves and summary.";
  state.sweep = id;
  writeUrl();
  for (const row of document.querySelectorAll("#sweeps tbody tr")) row.classList.toggle("active", Number(row.dataset.sweep) === id);
  $("#sweep-detail").hidden = false;
  const s = d.sweep;
  $("#sweep-title").textContent = `Sweep ${s.id}${s.name ? ` (${s.name})` : ""}: ${d.heading || s.task || "?"}, ${s.model || "default model"}`;
  if (focus) $("#sweep-title").focus();
  const traces = [];
  for (const [name, c] of Object.entries(d.curves)) {
    // each optimizer has its colour and a dash of its own on both charts (not colour only)
    const color = colorOf(name), dash = dashOf(name, Object.keys(d.curves));
    const label = esc(`${c.label || name} (lr=${fmt(c.lr)})`);
    if (c.test_metric) traces.push({ type: "scatter", mode: "lines", name: label, legendgroup: name, x: c.step, y: c.test_metric, line: { color, dash } });
    if (c.train_loss) traces.push({ type: "scatter", mode: "lines", name: label, legendgroup: name, showlegend: false, x: c.step, y: c.train_loss, xaxis: "x2", yaxis: "y2", line: { color, dash } });
  }
  await Plotly.react($("#sweep-curves"), traces, {
    margin: { l: 55, r: 10, t: 40, b: 40 }, title: { text: `mean over seeds at each best lr`, font: { size: 14 } },
    grid: { rows: 1, columns: 2, pattern: "independent" },
    xaxis: { title: { text: "step" } }, yaxis: { title: { text: esc(`test ${metricName(d)}`) } },
    xaxis2: { title: { text: "step" } },
    yaxis2: { title: { text: "train loss" }, type: "log", ...logTicks(traces.filter((t) => t.yaxis === "y2").flatMap((t) => t.y)) },
    legend: { orientation: "h", y: -0.2 },
  }, PLOT_CONFIG);
  if (ask !== asked) return;  // another sweep was asked for while drawing
  const { traces: sens, range } = sensitivityTraces(d);
  await Plotly.react($("#sweep-sensitivity"), sens, {
    margin: { l: 55, r: 10, t: 40, b: 40 }, title: { text: "final test metric vs learning rate", font: { size: 14 } },
    xaxis: { title: { text: "lr" }, type: "log", exponentformat: "e", ...logTicks(sens.flatMap((t) => t.x)) },
    yaxis: { title: { text: esc(metricName(d)) }, ...(range ? { range, autorange: false } : {}) }, showlegend: false,
  }, PLOT_CONFIG);
  if (ask !== asked) return;
  const head = $("#sweep-summary thead");
  head.textContent = "";
  const level = `${Math.round(100 * (d.confidence ?? 0.95))}%`;
  head.append(el("tr", {}, ["rank", "optimizer", "best lr", `${metricName(d)} (mean ± ${level} CI)`, "seeds", "diverged (any lr)"].map((t) => el("th", { text: t }))));
  const body = $("#sweep-summary tbody");
  body.textContent = "";
  for (const row of d.summary) {
    body.append(el("tr", { "data-optimizer": row.optimizer },
      el("td", { class: "num", text: row.rank || "–" }),
      el("td", {}, el("span", { class: "swatch", style: `background:${colorOf(row.optimizer)}` }), row.label || row.optimizer),
      el("td", { class: "num", text: fmt(row.best_lr) + (EDGE[row.edge] || "") }),
      el("td", { class: row.note ? null : "num", text: row.note ? row.note : ciText(row.mean, row.ci, row.seeds, d.metric_range) }),
      el("td", { class: "num", text: String(row.seeds) }),
      el("td", { class: "num", text: String(row.diverged) })));
  }
  $("#sweep-note").textContent = selectionNote(d);
  // the command line's notes under its table: runs not ended, failures, shared ranks, best
  // rates on the grid's edge, an advisor's answer
  $("#sweep-notes").replaceChildren(...(d.notes || []).map((text) => el("li", { text })));
  $("#sweep-detail").removeAttribute("aria-busy");
  document.body.dataset.sweep = String(id);
}

// a best lr on the grid's edge, as the command line's table flags it: the optimum may lie beyond
const EDGE = { low: " (bottom of grid)", high: " (top of grid)" };

// The final metric at each rate: the mean of the seeds that finished; a rate where some
// diverged or failed is drawn hollow with "k/n" (k of its n seeds finished), one where all
// did is a cross at the chart's worse edge (as the command line's report draws them).
function sensitivityTraces(d) {
  const traces = [];
  const values = d.summary.flatMap((row) => row.sensitivity.map((p) => p.mean).filter((v) => v !== null));
  let range = null;
  let edge = 0;
  if (values.length) {
    const lo = Math.min(...values), hi = Math.max(...values);
    const pad = (hi - lo || Math.abs(hi) || 1) * 0.08;
    range = [lo - 2 * pad, hi + 2 * pad];
    edge = d.higher_is_better ? lo - pad : hi + pad;
  }
  for (const row of d.summary) {
    const color = colorOf(row.optimizer);
    const name = esc(row.label || row.optimizer);
    const points = row.sensitivity.filter((p) => p.mean !== null);
    traces.push({ type: "scatter", mode: "lines+markers", name, meta: "mean", x: points.map((p) => p.lr),
      y: points.map((p) => p.mean), line: { color, dash: dashOf(row.optimizer, d.summary.map((r) => r.optimizer)) }, marker: { color, size: 7 },
      hovertemplate: `${name}: lr %{x:.3g}, ${esc(metricName(d))} %{y:.4g}<extra></extra>` });
    const partial = points.filter((p) => p.diverged > 0);
    if (partial.length) traces.push({ type: "scatter", mode: "markers+text", name, meta: "partial",
      x: partial.map((p) => p.lr), y: partial.map((p) => p.mean), text: partial.map((p) => `${p.finished}/${p.seeds}`),
      textposition: "top right", textfont: { color, size: 10 },
      marker: { symbol: "circle-open", size: 12, color, line: { width: 2, color } },
      hovertemplate: `${name}: lr %{x:.3g}, mean of the %{text} seeds that finished<extra></extra>` });
    const lost = row.sensitivity.filter((p) => p.mean === null);
    if (lost.length) traces.push({ type: "scatter", mode: "markers", name, meta: "diverged",
      x: lost.map((p) => p.lr), y: lost.map(() => edge), customdata: lost.map((p) => `${p.diverged}/${p.seeds}`),
      marker: { symbol: "x-thin-open", size: 12, color, line: { width: 2, color } },
      hovertemplate: `${name}: lr %{x:.3g}, every seed diverged or failed (%{customdata})<extra></extra>` });
  }
  return { traces, range };
}

// Under the summary: how its best lr is chosen, and where the chart of the final metric
// beside it would pick another rate (a late spike or dip decides the final value, not the
// rule).
function selectionNote(d) {
  const better = d.higher_is_better ? (a, b) => a > b : (a, b) => a < b;
  const differ = [];
  for (const row of d.summary) {
    const points = row.sensitivity.filter((p) => p.mean !== null);
    if (row.best_lr === null || !points.length) continue;
    const top = points.reduce((a, b) => (better(b.mean, a.mean) ? b : a));
    if (top.lr !== row.best_lr) differ.push(`${row.optimizer} (best lr ${fmt(row.best_lr)}; final ${metricName(d)} best at lr ${fmt(top.lr)})`);
  }
  return `best lr: the rate ranked best by ${d.criterion}, so a rate that spiked or dipped late cannot win; `
    + `the chart beside plots the final ${metricName(d)} at each rate, which may favour another`
    + (differ.length ? `: here ${differ.join(", ")}.` : ".");
}
