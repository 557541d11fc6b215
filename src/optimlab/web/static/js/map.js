/* The map of the Race tab, drawn with Plotly: the landscape's contours (or its 3-D surface),
 * its minima, the start point and each optimizer's path up to the animation's current point.
 * loadGrid fetches the landscape on a grid (grid.js) and draws it; showStart writes the
 * start under the map (the user's, else the grid's: the start with the current parameters).
 * Clicking the 2-D map moves the start (shift-click adds one) and dispatches "start-moved"
 * on #map before redrawing: whoever keeps a race of the old start
 * (race.js) listens for it, so this module imports nothing above it.
 */

import { COLORSCALE, PLOT_CONFIG } from "./config.js";
import { $, READY, setStatus, showMessage } from "./dom.js";
import { fmt, hpText, lrOnly } from "./format.js";
import { state, live, catalog, colorOf, dashOf, currentLandscape } from "./state.js";
import { writeUrl } from "./url.js";
import { grid, fetchGrid, defaultStart, drawable, height, pathSlice } from "./grid.js";
import { drawLoss } from "./loss.js";

// Fetch the landscape's grid and draw the map and the loss chart; whether the grid came.
// When the server refuses the landscape's parameters, the map is emptied (no contours,
// paths or legend of the last landscape stay) and the status and the message say so.
let refused = false;
export async function loadGrid() {
  try {
    await fetchGrid();
    showMessage("");
    if (refused) setStatus(READY);
    refused = false;
  } catch (err) {
    showMessage(err.message);
    setStatus("the landscape's parameters were refused: nothing to race on");
    refused = true;
  }
  showStart();  // the default start is the grid's: it moves with the parameters
  await drawMap();
  drawLoss();
  return !refused;
}

// the map when there is no grid: an empty frame saying why
function emptyMap() {
  return Plotly.react($("#map"), [], { margin: { l: 50, r: 10, t: 10, b: 40 },
    xaxis: { visible: false }, yaxis: { visible: false },
    annotations: [{ text: "no landscape with these parameters", showarrow: false, xref: "paper",
      yref: "paper", x: 0.5, y: 0.5, font: { size: 14, color: "#666" } }] }, PLOT_CONFIG);
}

function colorbar() {
  if (!grid.log) return { title: { text: "f", side: "right" }, thickness: 12 };
  const lo = Math.ceil(Math.min(...grid.color.map((r) => Math.min(...r.filter((v) => v !== null)))));
  const hi = Math.floor(Math.max(...grid.color.map((r) => Math.max(...r.filter((v) => v !== null)))));
  const tickvals = [];
  for (let k = lo; k <= hi; k++) tickvals.push(k);
  return { title: { text: "f − f_min (log)", side: "right" }, thickness: 12, tickvals,
    ticktext: tickvals.map((k) => `1e${k}`) };
}

function mapTraces() {
  const land = currentLandscape();
  const start = state.start || defaultStart();
  const three = state.view === "3d";
  const traces = [];
  const k = live.frame;
  if (three) {
    traces.push({ type: "surface", x: grid.x, y: grid.y, z: grid.color, colorscale: COLORSCALE,
      showscale: false, opacity: 0.92, hoverinfo: "skip", name: "landscape" });
    const minZ = land.minima.map((m) => height(land.min_value));
    traces.push({ type: "scatter3d", mode: "markers", name: "minimum", x: land.minima.map((m) => m[0]),
      y: land.minima.map((m) => m[1]), z: minZ, marker: { symbol: "diamond", size: 5, color: "#ffffff", line: { color: "#000", width: 1 } } });
    traces.push({ type: "scatter3d", mode: "markers", name: "start", x: [start[0]], y: [start[1]],
      z: [null], marker: { size: 4, color: "#000" }, showlegend: false });
  } else {
    traces.push({ type: "contour", x: grid.x, y: grid.y, z: grid.color, colorscale: COLORSCALE,
      ncontours: 28, contours: { coloring: "fill", showlines: true }, line: { width: 0.4, color: "rgba(0,0,0,0.25)" },
      colorbar: colorbar(), name: "landscape",
      hovertemplate: `x=%{x:.3f}<br>y=%{y:.3f}<br>${grid.log ? "log10(f − f_min + ε)" : "f"}=%{z:.3g}<extra></extra>` });
    traces.push({ type: "scatter", mode: "markers", name: "minimum", x: land.minima.map((m) => m[0]),
      y: land.minima.map((m) => m[1]), marker: { symbol: "star", size: 14, color: "#ffffff", line: { color: "#000", width: 1 } },
      hovertemplate: "minimum (%{x:.4g}, %{y:.4g})<extra></extra>" });
    traces.push({ type: "scatter", mode: "markers", name: "start", x: [start[0]], y: [start[1]],
      marker: { symbol: "circle", size: 11, color: "#000", line: { color: "#fff", width: 2 } },
      hovertemplate: "start (%{x:.4g}, %{y:.4g})<extra></extra>" });
  }
  const names = live.race ? live.race.results.map((r) => r.name) : [];
  for (const result of live.race ? live.race.results : []) {
    const r = { ...result, ...drawable(result) };
    const color = colorOf(r.name);
    const dash = dashOf(r.name, names);  // as on the loss chart: not told apart by colour only
    const legend = `${r.label} (${hpText(lrOnly(r.hparams), live.race.tune)})`;
    if (three) {
      traces.push({ type: "scatter3d", mode: "lines", name: legend, meta: "path", x: pathSlice(r.x, k), y: pathSlice(r.y, k),
        z: pathSlice(r.loss, k).map(height), line: { color, dash, width: 5 } });
      traces.push({ type: "scatter3d", mode: "markers", meta: "head", showlegend: false, x: [r.x[k]], y: [r.y[k]],
        z: [height(r.loss[k])], marker: { color, size: 4 }, hoverinfo: "skip" });
    } else {
      traces.push({ type: "scatter", mode: "lines", name: legend, meta: "path", x: pathSlice(r.x, k), y: pathSlice(r.y, k),
        line: { color, dash, width: 2.2 }, hovertemplate: `${r.label}<br>(%{x:.4g}, %{y:.4g})<extra></extra>` });
      traces.push({ type: "scatter", mode: "markers", meta: "head", showlegend: false, x: [r.x[k]], y: [r.y[k]],
        marker: { color, size: 9, line: { color: "#fff", width: 1 } }, hoverinfo: "skip" });
    }
  }
  if (!three) {
    // the fan and the extra starts: thin whole paths in the racer's colour, after the
    // animated ones (whose trace indices race.js counts on)
    for (const result of live.race ? live.race.results : []) {
      for (const extra of result.extra || []) {
        const r = drawable(extra);
        traces.push({ type: "scatter", mode: "lines", meta: "extra", showlegend: false, x: r.x, y: r.y,
          line: { color: colorOf(result.name), width: 1.2, dash: extra.factor === 1 ? "solid" : "dot" }, opacity: 0.75,
          hovertemplate: `${result.label} ×${extra.factor} lr=${fmt(extra.lr, 3)}<br>(%{x:.4g}, %{y:.4g})<extra></extra>` });
      }
    }
    if (state.starts.length) {
      traces.push({ type: "scatter", mode: "markers", name: "more starts", meta: "starts",
        x: state.starts.map((p) => p[0]), y: state.starts.map((p) => p[1]),
        marker: { symbol: "circle-open", size: 11, color: "#000", line: { width: 2 } },
        hovertemplate: "start (%{x:.4g}, %{y:.4g})<extra></extra>" });
    }
  }
  return traces;
}

function mapLayout() {
  const land = currentLandscape();
  const [[x0, x1], [y0, y1]] = land.domain;
  const base = { margin: { l: 50, r: 10, t: 10, b: 40 }, showlegend: true,
    legend: { orientation: "h", x: 0, y: 1.01, yanchor: "bottom", font: { size: 11 } },
    uirevision: `${land.name}-${state.view}` };
  if (state.view === "3d") {
    return { ...base, scene: { xaxis: { title: { text: "x" }, range: [x0, x1] }, yaxis: { title: { text: "y" }, range: [y0, y1] },
      zaxis: { title: { text: grid.log ? "log10(f − f_min + ε)" : "f" } }, camera: { eye: { x: 1.5, y: -1.5, z: 1.1 } } } };
  }
  return { ...base, xaxis: { range: [x0, x1], title: { text: "x" }, zeroline: false },
    yaxis: { range: [y0, y1], title: { text: "y" }, zeroline: false }, hovermode: "closest", dragmode: "pan" };
}

export async function drawMap() {
  const map = $("#map");
  if (!grid) {
    if (map.dataset.view) await emptyMap();  // a map was drawn: it goes (none yet: leave it)
    document.body.dataset.contour = "0";
    return;
  }
  const start = state.start || defaultStart();
  const traces = mapTraces();
  if (state.view === "3d") {
    // the start's height needs the landscape's value there: the path's first loss, if raced
    const first = live.race && live.race.results.length ? live.race.results[0].loss[0] : null;
    traces[2].z = [first === null ? null : height(first)];
    if (first === null) traces[2].visible = false;
  }
  await Plotly.react(map, traces, mapLayout(), PLOT_CONFIG);
  map.dataset.view = state.view;
  map.dataset.start = start.join(",");
  if (!map.dataset.clickBound) {
    map.dataset.clickBound = "1";
    map.on("plotly_click", onMapClick);
  }
  if (!performance.getEntriesByName("contour-drawn").length) performance.mark("contour-drawn");
  document.body.dataset.contour = "1";
}

function onMapClick(event) {
  if (state.view !== "2d") return;
  const map = $("#map");
  const layout = map._fullLayout;
  let x = null, y = null;
  const e = event.event;
  if (layout && layout.xaxis && e && Number.isFinite(e.clientX)) {
    // the exact point under the mouse, not the nearest grid node
    const box = map.getBoundingClientRect();
    x = layout.xaxis.p2l(e.clientX - box.left - layout._size.l);
    y = layout.yaxis.p2l(e.clientY - box.top - layout._size.t);
  }
  if (!Number.isFinite(x) || !Number.isFinite(y)) {
    if (!event.points || !event.points.length) return;
    x = event.points[0].x; y = event.points[0].y;
  }
  const [[x0, x1], [y0, y1]] = currentLandscape().domain;
  x = Math.min(x1, Math.max(x0, x)); y = Math.min(y1, Math.max(y0, y));
  const point = [Number(x.toFixed(4)), Number(y.toFixed(4))];
  if (e && e.shiftKey) { addExtraStart(point); return; }  // another start
  state.start = point;
  map.dispatchEvent(new CustomEvent("start-moved"));  // the race of the old start is void
  showStart();
  drawMap();
  writeUrl();
}

// Another start, from which every optimizer runs too (a shift-click on the map, or the
// "add as extra start" button beside the start's boxes): whether it was added.
export function addExtraStart(point) {
  if (state.starts.length >= catalog.limits.max_starts) {
    showMessage(`at most ${catalog.limits.max_starts} more starts`);
    return false;
  }
  state.starts.push(point);
  $("#map").dispatchEvent(new CustomEvent("start-moved"));  // the race of the old starts is void
  showStart();
  drawMap();
  writeUrl();
  return true;
}

export function showStart() {
  const point = state.start || defaultStart();
  $("#start-label").textContent = `(${fmt(point[0], 4)}, ${fmt(point[1], 4)})` + (state.start ? "" : " default");
  $("#starts-label").textContent = state.starts.length
    ? state.starts.map((p) => `(${fmt(p[0], 3)}, ${fmt(p[1], 3)})`).join(" ") : "none";
}
