/* The Slices tab: real networks' loss landscapes written by `optimlab slice` (and the
 * tour), found in the server's slices folders (GET /api/slices). One slice shows the
 * training loss on a plane through the shared initialisation with every optimizer's path
 * projected on it, the loss along straight lines between the initialisation and the
 * solutions, and a table of each solution's sharpness, test metric and distance off the
 * plane (so the picture does not lie by omission).
 */

import { PLOT_CONFIG, COLORSCALE } from "./config.js";
import { $, el, setStatus } from "./dom.js";
import { fmt, hpText, esc, logTicks, metricName, utcText } from "./format.js";
import { api } from "./api.js";
import { state, colorOf, DASHES } from "./state.js";
import { writeUrl } from "./url.js";

export async function loadSlices() {
  const body = $("#slice-list tbody");
  let list;
  try {
    list = await api("/api/slices");
  } catch (err) {
    $("#slices-message").textContent = err.message;
    return;
  }
  body.textContent = "";
  for (const s of list) {
    // a click on the row opens it; its id is a button, for the keyboard (a broken file: text)
    body.append(el("tr", { "data-slice": s.id, onclick: s.error ? null : () => selectSlice(s.id, true), class: s.error ? "broken" : null },
      s.error ? el("td", { text: String(s.id) })
        : el("td", {}, el("button", { type: "button", class: "row-open", "aria-label": `slice ${s.id} (${s.name})` }, String(s.id))), el("td", { text: s.name }), el("td", { text: s.task || "" }),
      el("td", { text: s.model || "" }), el("td", { text: s.error ? s.error : (s.optimizers || []).join(", ") }),
      el("td", { text: s.grid ? `${s.grid[0]} × ${s.grid[1]}` : "" }), el("td", { text: utcText(s.modified) })));
  }
  $("#slices-message").textContent = list.length ? "Click a slice (or its id) to see it."
    : "No slices found: run `optimlab slice mnist1d` (or the tour) and reload; `optimlab serve --slices FOLDER` looks elsewhere.";
  document.body.dataset.slices = String(list.length);
  setStatus(`${list.length} slice file${list.length === 1 ? "" : "s"} found`);
  if (state.slice !== null && list.some((s) => s.id === state.slice && !s.error)) selectSlice(state.slice);
  else if (state.slice !== null) {
    // a link's slice= that no readable slice file has: said, not dropped
    $("#slices-message").textContent = `No slice ${state.slice} among these files. ${$("#slices-message").textContent}`;
    state.slice = null;
    writeUrl();
  }
}

function sliceMap(d) {
  const finite = d.loss.flat().filter((v) => v !== null && v > 0);
  const log = finite.length && Math.max(...finite) / Math.min(...finite) > 100;
  const z = d.loss.map((row) => row.map((v) => (v === null ? null : log ? Math.log10(Math.max(v, 1e-12)) : v)));
  const traces = [{ type: "contour", x: d.xs, y: d.ys, z, colorscale: COLORSCALE, ncontours: 24,
    contours: { coloring: "fill", showlines: true }, line: { width: 0.4, color: "rgba(0,0,0,0.25)" },
    colorbar: { title: { text: esc(log ? `log10 ${d.on} loss` : `${d.on} loss`), side: "right" }, thickness: 12 },
    hovertemplate: `(%{x:.3g}, %{y:.3g})<br>${log ? "log10 loss" : "loss"} %{z:.3g}<extra></extra>` }];
  for (const p of d.paths) {
    const end = p.residual[p.residual.length - 1];
    const name = esc(p.optimizer);
    traces.push({ type: "scatter", mode: "lines+markers", name: `${name} (lr=${esc(lrText(p))})${p.diverged ? " (diverged)" : ""}`,
      meta: "path", x: p.coords.map((c) => c[0]), y: p.coords.map((c) => c[1]),
      line: { color: colorOf(p.optimizer), width: 2.2 }, marker: { size: 4 },
      customdata: p.residual, hovertemplate: `${name} step %{text}<br>off the plane %{customdata:.3g}<extra></extra>`,
      text: p.steps });
    traces.push({ type: "scatter", mode: "markers", showlegend: false, x: [p.coords[p.coords.length - 1][0]],
      y: [p.coords[p.coords.length - 1][1]], marker: { color: colorOf(p.optimizer), size: 11, symbol: "star", line: { color: "#fff", width: 1 } },
      hovertemplate: `${name}'s solution, ${fmt(end, 3)} off the plane<extra></extra>` });
  }
  traces.push({ type: "scatter", mode: "markers", name: "initialisation", x: [0], y: [0],
    marker: { color: "#000", size: 10, line: { color: "#fff", width: 2 } }, hovertemplate: "the shared initialisation<extra></extra>" });
  const plane = d.plane === "endpoints" ? `through the initialisation and the ${esc(d.through.join(" and "))} solutions`
    : "through the initialisation along two random filter-normalised directions";
  return Plotly.react($("#slice-map"), traces, {
    margin: { l: 50, r: 10, t: 60, b: 40 }, title: { text: `${esc(`${d.task} ${d.model}: the ${d.on} loss on a plane`)}<br><sub>${plane}</sub>`, font: { size: 14 } },
    xaxis: { title: { text: "direction 1" }, zeroline: false }, yaxis: { title: { text: "direction 2" }, zeroline: false },
    legend: { orientation: "h", y: -0.15 } }, PLOT_CONFIG);
}

// A line from the initialisation has its solution's colour, solid; one between two
// solutions the first one's colour with a dash of its own (DASHES, state.js), so that two
// lines starting at the same solution differ.

function sliceInterpolation(d) {
  const traces = [];
  const from = {};
  for (const [name, c] of Object.entries(d.interpolation)) {
    const [a, b] = name.split(" -> ");
    const color = colorOf(a === "init" ? b : a);
    let dash = "solid";
    if (a !== "init") {
      from[a] = (from[a] || 0) + 1;
      dash = DASHES[(from[a] - 1) % DASHES.length];
    }
    traces.push({ type: "scatter", mode: "lines", name: esc(name), x: c.alpha, y: c.train_loss, line: { color, dash, width: 2 },
      hovertemplate: `${esc(name)}: α=%{x:.2f}, train loss %{y:.4g}<extra></extra>` });
  }
  return Plotly.react($("#slice-interp"), traces, {
    margin: { l: 55, r: 10, t: 60, b: 40 }, title: { text: "along straight lines (Goodfellow et al. 2015)<br><sub>α = 0 at the first end, 1 at the second; a bump between two solutions is a barrier</sub>", font: { size: 14 } },
    xaxis: { title: { text: "α" } },
    yaxis: { title: { text: "train loss" }, type: "log", ...logTicks(traces.flatMap((t) => t.y)) }, legend: { orientation: "h", y: -0.15 } }, PLOT_CONFIG);
}

// The rate a path trained with: the server's text of it (Path.lr_text), else its lr.
function lrText(p) {
  if (p.lr_text) return p.lr_text;
  const lr = p.lr ?? p.hparams.lr;
  return lr === undefined || lr === null ? "–" : fmt(lr);
}

function sliceTable(d) {
  const head = $("#slice-table thead");
  head.replaceChildren(el("tr", {}, ["optimizer", "hyperparameters", "train loss", `test ${metricName(d)}`, "top Hessian eigenvalue",
    "off the plane at the end (of its reach)", "most off the plane"].map((t) => el("th", { text: t }))));
  const body = $("#slice-table tbody");
  body.textContent = "";
  const share = (v, reach) => `${fmt(v, 3)} (${reach > 0 ? Math.round((100 * v) / reach) : 0}%)`;
  for (const p of d.paths) {
    const end = p.residual[p.residual.length - 1];
    // the learning rate as the command line's table says it: "(default)", "(slice preset)"
    const others = Object.fromEntries(Object.entries(p.hparams).filter(([k]) => k !== "lr"));
    const hp = [`lr=${lrText(p)}`, hpText(others)].filter(Boolean).join(", ");
    body.append(el("tr", { class: p.diverged ? "diverged" : null },
      el("td", {}, el("span", { class: "swatch", style: `background:${colorOf(p.optimizer)}` }),
        p.optimizer + (p.diverged ? " (diverged)" : "")),
      el("td", { text: hp }), el("td", { class: "num", text: fmt(p.train_loss, 4) }),
      el("td", { class: "num", text: fmt(p.test_metric, 4) }),
      el("td", { class: "num", text: p.sharpness === null ? "–" : fmt(p.sharpness, 4) }),
      el("td", { class: "num", text: share(end, p.reach) }),
      el("td", { class: "num", text: share(Math.max(...p.residual), p.reach) })));
  }
}

// `focus`: chosen by the user, the focus goes to the slice's title (not when a link opens it)
async function selectSlice(id, focus = false) {
  let d;
  try {
    d = await api(`/api/slices/${id}`);
  } catch (err) {
    $("#slices-message").textContent = err.message;
    return;
  }
  state.slice = id;
  writeUrl();
  for (const row of document.querySelectorAll("#slice-list tbody tr")) row.classList.toggle("active", Number(row.dataset.slice) === id);
  $("#slice-detail").hidden = false;
  $("#slice-title").textContent = `Slice ${id} (${d.name}): ${d.task}, ${d.model}, ${d.steps} steps`;
  if (focus) $("#slice-title").focus();
  await sliceMap(d);
  await sliceInterpolation(d);
  sliceTable(d);
  $("#slice-notes").replaceChildren(...(d.notes || []).map((text) => el("li", { text })));
  document.body.dataset.slice = String(id);
}
