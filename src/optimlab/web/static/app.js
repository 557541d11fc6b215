/* optimlab playground: plain JavaScript, no build step.
 *
 * Everything shown comes from the JSON API of this server (/api/...): the landscapes, the
 * optimizers' metadata and hyperparameter ranges, races and stored sweeps. Plotly and KaTeX
 * are served by this server too. The whole configuration lives in the URL's query string,
 * so a link reproduces it.
 */
"use strict";

const GRID_N = 100;
const ANIMATION_MS = 3000;
const DEFAULT_OPTIMIZERS = ["gd", "momentum", "adam"];
// the background of a race: a light slate ramp, so the coloured paths stand out
const COLORSCALE = [[0, "#3b4658"], [0.35, "#7d8ba1"], [0.7, "#c9d1dc"], [1, "#f4f6f9"]];

const state = {
  tab: "race", landscape: "rosenbrock", params: {}, start: null, steps: 500, noise: 0,
  seed: 0, tune: false, view: "2d", selected: new Map(), sweep: null,
};
const catalog = { limits: {}, landscapes: new Map(), optimizers: new Map() };
let grid = null;        // the current landscape's grid (GET .../grid)
let race = null;        // the last race's answer (POST /api/race)
let frame = 0;          // the animation's current point index
let playing = false, animStart = 0, animFrom = 0;

// ------------------------------------------------------------------------------ helpers

const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function fmt(v, digits = 3) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (Array.isArray(v)) return "(" + v.map((x) => fmt(x, digits)).join(", ") + ")";
  if (typeof v !== "number") return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(digits - 1).replace("e+", "e");
  return String(Number(v.toPrecision(digits)));
}

function short(v) {
  // a hyperparameter as typed: up to 4 significant digits, no trailing zeros (1e-8, 0.999)
  if (Array.isArray(v)) return "(" + v.map(short).join(", ") + ")";
  if (typeof v !== "number") return fmt(v);
  return String(Number(v.toPrecision(4)));
}

function hpText(hparams, tuned) {
  return Object.entries(hparams)
    .map(([k, v]) => `${k}=${short(v)}${tuned && k === "lr" ? " (tuned)" : ""}`).join(", ");
}

class ApiError extends Error {}

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  if (!response.ok) {
    throw new ApiError((body && (body.message || body.detail)) || `${response.status} ${response.statusText}`);
  }
  return body;
}

function setStatus(text) { $("#status").textContent = text; }
function showMessage(text) { $("#message").textContent = text || ""; }
function currentLandscape() { return catalog.landscapes.get(state.landscape); }
function hasMinima() { const l = currentLandscape(); return l && l.minima.length > 0; }

// ------------------------------------------------------------------------------ URL state

function parseValue(text) {
  if (text === "true" || text === "false") return text === "true";
  if (text.includes("/")) return text.split("/").map(Number);
  return Number(text);
}

function valueText(v) {
  return Array.isArray(v) ? v.join("/") : String(v);
}

function readUrl() {
  const q = new URLSearchParams(location.search);
  if (q.has("l")) state.landscape = q.get("l");
  if (q.has("p")) {
    for (const kv of q.get("p").split(";").filter(Boolean)) {
      const [k, v] = kv.split("=");
      if (Number.isFinite(Number(v))) state.params[k] = Number(v);
    }
  }
  if (q.has("s")) {
    const point = q.get("s").split(",").map(Number);
    if (point.length === 2 && point.every(Number.isFinite)) state.start = point;
  }
  if (q.has("n")) state.steps = parseInt(q.get("n"), 10) || state.steps;
  if (q.has("noise")) state.noise = Math.max(0, Number(q.get("noise")) || 0);
  if (q.has("seed")) state.seed = parseInt(q.get("seed"), 10) || 0;
  state.tune = q.get("tune") === "1";
  state.view = q.get("v") === "3d" ? "3d" : "2d";
  state.tab = q.get("tab") === "runs" ? "runs" : "race";
  if (q.has("sweep")) state.sweep = parseInt(q.get("sweep"), 10);
  const opts = q.getAll("o");
  for (const item of opts) {
    const [name, rest] = item.split(":");
    const hp = {};
    for (const kv of (rest || "").split(";").filter(Boolean)) {
      const [k, v] = kv.split("=");
      hp[k] = parseValue(v);
    }
    state.selected.set(name, hp);
  }
  return opts.length > 0 && q.get("race") === "1";
}

function writeUrl() {
  const q = new URLSearchParams();
  q.set("l", state.landscape);
  const params = Object.entries(state.params);
  if (params.length) q.set("p", params.map(([k, v]) => `${k}=${v}`).join(";"));
  if (state.start) q.set("s", state.start.join(","));
  q.set("n", state.steps);
  if (state.noise) q.set("noise", state.noise);
  if (state.seed) q.set("seed", state.seed);
  if (state.tune) q.set("tune", "1");
  if (state.view === "3d") q.set("v", "3d");
  for (const [name, hp] of state.selected) {
    const defaults = defaultValues(name);
    const changed = Object.entries(hp)
      .filter(([k, v]) => valueText(v) !== valueText(defaults[k]))
      .map(([k, v]) => `${k}=${valueText(v)}`);
    q.append("o", changed.length ? `${name}:${changed.join(";")}` : name);
  }
  if (state.tab === "runs") q.set("tab", "runs");
  if (state.sweep !== null && !Number.isNaN(state.sweep)) q.set("sweep", state.sweep);
  if (race) q.set("race", "1");  // a link to a raced configuration races it on opening
  history.replaceState(null, "", `${location.pathname}?${q}`);
}

// ------------------------------------------------------------------------------ controls

function defaultValues(name) {
  const values = {};
  for (const h of catalog.optimizers.get(name).hyperparameters) values[h.name] = h.default;
  return values;
}

const logPos = (h, v) => Math.round(1000 * (Math.log10(v) - Math.log10(h.ui_low))
  / (Math.log10(h.ui_high) - Math.log10(h.ui_low)));
const logValue = (h, p) => Number((10 ** (Math.log10(h.ui_low) + p / 1000
  * (Math.log10(h.ui_high) - Math.log10(h.ui_low)))).toPrecision(3));

function numberControl(name, h, label, get, set) {
  // a slider (log or linear) with a text box for exact values, both showing the value used
  const slider = el("input", { type: "range", min: 0, max: 1000, step: 1, "aria-label": `${name} ${label}` });
  const text = el("input", { type: "text", "aria-label": `${name} ${label} value` });
  const linearStep = (h.ui_high - h.ui_low) / 1000;
  const toPos = (v) => (h.kind === "log" ? logPos(h, v) : Math.round((v - h.ui_low) / linearStep));
  const toValue = (p) => (h.kind === "log" ? logValue(h, p)
    : Number((h.ui_low + p * linearStep).toPrecision(4)));
  const show = () => { const v = get(); slider.value = toPos(v); text.value = short(v); text.classList.remove("invalid"); };
  slider.addEventListener("input", () => { set(toValue(Number(slider.value))); text.value = short(get()); });
  slider.addEventListener("change", writeUrl);
  text.addEventListener("change", () => {
    const v = Number(text.value);
    if (text.value.trim() === "" || !Number.isFinite(v)) { text.classList.add("invalid"); return; }
    set(v); show(); writeUrl();
  });
  show();
  return el("div", { class: "hp", title: h.help }, el("span", { text: label }), slider, text);
}

function hpControls(name) {
  const hp = state.selected.get(name);
  const rows = [];
  for (const h of catalog.optimizers.get(name).hyperparameters) {
    if (h.kind === "bool") {
      const box = el("input", { type: "checkbox", "aria-label": `${name} ${h.name}` });
      box.checked = Boolean(hp[h.name]);
      box.addEventListener("change", () => { hp[h.name] = box.checked; writeUrl(); });
      rows.push(el("label", { class: "hp bool", title: h.help }, box, el("span", { text: h.name })));
    } else if (h.kind === "int") {
      const box = el("input", { type: "number", min: h.ui_low, max: h.ui_high, step: 1, value: hp[h.name] });
      box.addEventListener("change", () => { hp[h.name] = parseInt(box.value, 10); writeUrl(); });
      rows.push(el("div", { class: "hp", title: h.help }, el("span", { text: h.name }), box, el("span")));
    } else if (h.kind === "pair") {
      for (const i of [0, 1]) {
        const pair = { ...h, kind: "linear", ui_high: i === 0 ? 0.999 : h.ui_high };
        rows.push(numberControl(name, pair, `${h.name.replace(/s$/, "")}${i + 1}`,
          () => hp[h.name][i], (v) => { hp[h.name] = hp[h.name].slice(); hp[h.name][i] = v; }));
      }
    } else {
      rows.push(numberControl(name, h, h.name, () => hp[h.name], (v) => { hp[h.name] = v; }));
    }
  }
  return rows;
}

function buildOptimizers() {
  const box = $("#optimizers");
  box.textContent = "";
  for (const [name, o] of catalog.optimizers) {
    const on = state.selected.has(name);
    const check = el("input", { type: "checkbox", value: name, "aria-label": name });
    check.checked = on;
    const row = el("div", { class: on ? "opt on" : "opt", "data-name": name });
    const hps = el("div", { class: "hps" });
    const fill = () => {
      hps.textContent = "";
      if (state.selected.has(name)) hps.append(...hpControls(name), el("div", { class: "used" }));
    };
    check.addEventListener("change", () => {
      if (check.checked) {
        if (state.selected.size >= catalog.limits.max_optimizers) {
          check.checked = false;
          showMessage(`at most ${catalog.limits.max_optimizers} optimizers per race`);
          return;
        }
        state.selected.set(name, defaultValues(name));
      } else {
        state.selected.delete(name);
      }
      row.classList.toggle("on", check.checked);
      fill();
      renderInfo();
      writeUrl();
    });
    const title = o.alias_of ? `${o.summary}` : `${o.cls}: ${o.summary}`;
    row.append(el("div", { class: "opt-head" },
      el("label", { title }, check, " ", el("span", { class: "swatch", style: `background:${o.color}` }), name),
      el("button", { class: "info-btn", type: "button", title: `about ${name}`, "aria-label": `about ${name}`, onclick: () => showInfo(name) }, "?")),
    hps);
    box.append(row);
    fill();
  }
}

function normaliseSelection() {
  for (const [name, hp] of [...state.selected]) {
    if (!catalog.optimizers.has(name)) { state.selected.delete(name); continue; }
    const values = defaultValues(name);
    for (const [k, v] of Object.entries(hp)) if (k in values) values[k] = v;
    state.selected.set(name, values);
  }
}

function noiseFromPos(p) { return p === 0 ? 0 : Number((10 ** (-3 + 6 * (p - 1) / 99)).toPrecision(2)); }
function noisePos(v) { return v <= 0 ? 0 : Math.max(1, Math.min(100, Math.round(1 + 99 * (Math.log10(v) + 3) / 6))); }

function buildLandscapeControls() {
  const select = $("#landscape");
  select.textContent = "";
  for (const name of catalog.landscapes.keys()) select.append(el("option", { value: name, text: name }));
  select.value = state.landscape;
  select.addEventListener("change", () => {
    state.landscape = select.value;
    state.params = { ...currentLandscape().params };
    state.start = null;
    landscapeChanged();
  });
  $("#start-reset").addEventListener("click", () => { state.start = null; clearRace(); drawMap(); showStart(); writeUrl(); });
  const steps = $("#steps");
  steps.max = catalog.limits.max_steps;
  steps.value = state.steps;
  steps.addEventListener("change", () => { state.steps = parseInt(steps.value, 10); writeUrl(); });
  const noise = $("#noise");
  noise.value = noisePos(state.noise);
  $("#noise-label").textContent = fmt(state.noise);
  noise.addEventListener("input", () => { state.noise = noiseFromPos(Number(noise.value)); $("#noise-label").textContent = fmt(state.noise); });
  noise.addEventListener("change", writeUrl);
  const seed = $("#seed");
  seed.value = state.seed;
  seed.addEventListener("change", () => { state.seed = parseInt(seed.value, 10) || 0; writeUrl(); });
  const tune = $("#tune");
  tune.checked = state.tune;
  tune.addEventListener("change", () => { state.tune = tune.checked; writeUrl(); });
  const surface = $("#surface");
  surface.checked = state.view === "3d";
  surface.addEventListener("change", () => { state.view = surface.checked ? "3d" : "2d"; drawMap(); writeUrl(); });
  $("#race").addEventListener("click", runRace);
}

function buildLandscapeParams() {
  const box = $("#landscape-params");
  box.textContent = "";
  for (const [key, value] of Object.entries(currentLandscape().params)) {
    if (!(key in state.params)) state.params[key] = value;
    const input = el("input", { type: "number", value: state.params[key], step: "any", "aria-label": key });
    input.addEventListener("change", () => {
      const v = Number(input.value);
      if (!Number.isFinite(v)) return;
      state.params[key] = v;
      landscapeChanged();
    });
    box.append(el("label", { class: "row" }, key, input));
  }
  $("#landscape-desc").textContent = currentLandscape().description;
}

function showStart() {
  const point = state.start || currentLandscape().start;
  $("#start-label").textContent = `(${fmt(point[0], 4)}, ${fmt(point[1], 4)})` + (state.start ? "" : " default");
}

async function landscapeChanged() {
  clearRace();
  buildLandscapeParams();
  showStart();
  writeUrl();
  await loadGrid();
}

// ------------------------------------------------------------------------------ the map

async function loadGrid() {
  const land = currentLandscape();
  const q = new URLSearchParams({ n: GRID_N, ...state.params });
  try {
    grid = await api(`/api/landscapes/${encodeURIComponent(land.name)}/grid?${q}`);
    if (!performance.getEntriesByName("grid-loaded").length) performance.mark("grid-loaded");
    $("#landscape-desc").textContent = grid.description;  // as built with these parameters
    showMessage("");
  } catch (err) {
    showMessage(err.message);
    return;
  }
  await drawMap();
  drawLoss();
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

function height(loss) {
  // a loss's height on the 3-D surface: the same transform as the surface's colours
  if (loss === null) return null;
  return grid.log ? Math.log10(Math.max(loss - grid.zmin, 0) + grid.offset) : loss;
}

function pathSlice(values, k) { return values.slice(0, k + 1); }

// What is drawn of a path: points far outside the domain (more than ten widths, where the
// race calls a run diverged) are left out, so a run-away path cannot blow up the picture.
function drawable(r) {
  if (r.shown) return r.shown;
  const [[x0, x1], [y0, y1]] = currentLandscape().domain;
  const keep = (v, lo, hi) => (v !== null && v >= lo - 10 * (hi - lo) && v <= hi + 10 * (hi - lo));
  const ok = r.x.map((x, i) => keep(x, x0, x1) && keep(r.y[i], y0, y1));
  r.shown = { x: r.x.map((v, i) => (ok[i] ? v : null)), y: r.y.map((v, i) => (ok[i] ? v : null)),
    loss: r.loss.map((v, i) => (ok[i] && Math.abs(v) < 1e15 ? v : null)) };
  return r.shown;
}

function mapTraces() {
  const land = currentLandscape();
  const start = state.start || land.start;
  const three = state.view === "3d";
  const traces = [];
  const k = frame;
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
  for (const result of race ? race.results : []) {
    const r = { ...result, ...drawable(result) };
    const color = colorOf(r.name);
    const legend = `${r.label} (${hpText(lrOnly(r.hparams), race.tune)})`;
    if (three) {
      traces.push({ type: "scatter3d", mode: "lines", name: legend, meta: "path", x: pathSlice(r.x, k), y: pathSlice(r.y, k),
        z: pathSlice(r.loss, k).map(height), line: { color, width: 5 } });
      traces.push({ type: "scatter3d", mode: "markers", meta: "head", showlegend: false, x: [r.x[k]], y: [r.y[k]],
        z: [height(r.loss[k])], marker: { color, size: 4 }, hoverinfo: "skip" });
    } else {
      traces.push({ type: "scatter", mode: "lines", name: legend, meta: "path", x: pathSlice(r.x, k), y: pathSlice(r.y, k),
        line: { color, width: 2.2 }, hovertemplate: `${r.label}<br>(%{x:.4g}, %{y:.4g})<extra></extra>` });
      traces.push({ type: "scatter", mode: "markers", meta: "head", showlegend: false, x: [r.x[k]], y: [r.y[k]],
        marker: { color, size: 9, line: { color: "#fff", width: 1 } }, hoverinfo: "skip" });
    }
  }
  return traces;
}

function lrOnly(hparams) { return "lr" in hparams ? { lr: hparams.lr } : {}; }
function colorOf(name) { const o = catalog.optimizers.get(name); return o ? o.color : "#333"; }

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

const PLOT_CONFIG = { displaylogo: false, responsive: true, scrollZoom: false,
  modeBarButtonsToRemove: ["select2d", "lasso2d", "toImage"] };

async function drawMap() {
  if (!grid) return;
  const map = $("#map");
  const start = state.start || currentLandscape().start;
  const traces = mapTraces();
  if (state.view === "3d") {
    // the start's height needs the landscape's value there: the path's first loss, if raced
    const first = race && race.results.length ? race.results[0].loss[0] : null;
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
  state.start = [Number(x.toFixed(4)), Number(y.toFixed(4))];
  clearRace();
  showStart();
  drawMap();
  writeUrl();
}

// ------------------------------------------------------------------------------ the loss chart

function lossValues(values) {
  if (!hasMinima()) return values;
  const min = currentLandscape().min_value;
  return values.map((v) => (v === null ? null : Math.max(v - min, 1e-16)));
}

function drawLoss() {
  const chart = $("#loss");
  const log = hasMinima();
  const layout = { margin: { l: 60, r: 10, t: 36, b: 40 }, title: { text: "loss vs step", font: { size: 14 } },
    xaxis: { title: { text: "step" } }, showlegend: false,
    yaxis: { title: { text: log ? "f − f_min (log)" : "f" }, type: log ? "log" : "linear", exponentformat: "e" },
    shapes: [], annotations: [] };
  const traces = [];
  if (race && log) {
    const values = race.results.flatMap((r) => lossValues(drawable(r).loss)).filter((v) => v !== null && v > 0);
    const decades = Math.log10(Math.max(...values)) - Math.log10(Math.min(...values));
    if (decades >= 2) layout.yaxis.dtick = 1;
  }
  if (race) {
    for (const r of race.results) {
      traces.push({ type: "scatter", mode: "lines", name: r.label, x: race.step, y: lossValues(drawable(r).loss),
        line: { color: colorOf(r.name), width: 2 }, hovertemplate: `${r.label}: %{y:.4g} at step %{x}<extra></extra>` });
    }
    const s = race.step[frame];
    layout.shapes.push({ type: "line", x0: s, x1: s, yref: "paper", y0: 0, y1: 1, line: { color: "#888", width: 1, dash: "dot" } });
  } else {
    layout.annotations.push({ text: "race to see the losses", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 });
  }
  return Plotly.react(chart, traces, layout, PLOT_CONFIG);
}

// ------------------------------------------------------------------------------ racing

function clearRace() {
  race = null;
  frame = 0;
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

async function runRace() {
  if (!state.selected.size) { showMessage("choose at least one optimizer"); return; }
  const button = $("#race");
  button.disabled = true;
  setStatus("racing…");
  showMessage("");
  writeUrl();
  try {
    race = await api("/api/race", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(raceRequest()) });
  } catch (err) {
    showMessage(err.message);
    setStatus("the race was refused");
    button.disabled = false;
    return;
  }
  button.disabled = false;
  const diverged = race.results.filter((r) => r.metrics.diverged).length;
  setStatus(`raced ${race.results.length} optimizers × ${race.steps} steps in ${Math.round(race.elapsed_ms)} ms`
    + (diverged ? ` (${diverged} diverged)` : ""));
  state.start = race.start;
  showStart();
  writeUrl();
  fillResults();
  showUsed();
  const scrub = $("#scrub");
  scrub.max = race.step.length - 1;
  scrub.disabled = false;
  $("#play").disabled = false;
  frame = 0;
  await drawMap();
  await drawLoss();
  document.body.dataset.raced = "1";
  play();
}

function fillResults() {
  const body = $("#results tbody");
  body.textContent = "";
  $("#tol-head").textContent = `steps to ${fmt(race.tol)} of the minimum`;
  for (const r of race.results) {
    const m = r.metrics;
    body.append(el("tr", { class: m.diverged ? "diverged" : null, "data-label": r.label },
      el("td", {}, el("span", { class: "swatch", style: `background:${colorOf(r.name)}` }), r.label),
      el("td", { text: hpText(r.hparams, race.tune) }),
      el("td", { class: "num", text: fmt(m.final_loss, 4) }),
      el("td", { class: "num", text: fmt(m.distance, 4) }),
      el("td", { class: "num", text: m.steps_to_tol === null ? "never" : String(m.steps_to_tol) }),
      el("td", { text: m.diverged ? "yes" : "no" })));
  }
}

function showUsed() {
  for (const r of race.results) {
    const row = document.querySelector(`.opt[data-name="${CSS.escape(r.name)}"] .used`);
    if (row) {
      row.textContent = "";
      row.append("used: ", el("b", { text: hpText(r.hparams, race.tune) }));
    }
  }
}

function setFrame(k) {
  if (!race) return;
  const last = race.step.length - 1;
  frame = Math.max(0, Math.min(last, k));
  const map = $("#map");
  const three = state.view === "3d";
  const paths = [], heads = [];
  const xs = [], ys = [], zs = [], hx = [], hy = [], hz = [];
  race.results.forEach((result, i) => {
    const r = drawable(result);
    paths.push(3 + 2 * i); heads.push(4 + 2 * i);
    xs.push(pathSlice(r.x, frame)); ys.push(pathSlice(r.y, frame));
    hx.push([r.x[frame]]); hy.push([r.y[frame]]);
    if (three) { zs.push(pathSlice(r.loss, frame).map(height)); hz.push([height(r.loss[frame])]); }
  });
  const update = three ? { x: xs.concat(hx), y: ys.concat(hy), z: zs.concat(hz) } : { x: xs.concat(hx), y: ys.concat(hy) };
  Plotly.restyle(map, update, paths.concat(heads));
  Plotly.relayout($("#loss"), { "shapes[0].x0": race.step[frame], "shapes[0].x1": race.step[frame] });
  $("#scrub").value = frame;
  $("#step-label").textContent = `step ${race.step[frame]} / ${race.steps}`;
  document.body.dataset.frame = String(frame);
}

function play() {
  if (!race) return;
  if (frame >= race.step.length - 1) frame = 0;
  playing = true;
  animFrom = frame;
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
  if (!playing || !race) return;
  const last = race.step.length - 1;
  const k = animFrom + Math.floor(((now - animStart) / ANIMATION_MS) * last);
  setFrame(k);
  if (k >= last) { pause(); return; }
  requestAnimationFrame(tick);
}

// ------------------------------------------------------------------------------ info panels

function renderInfo() {
  const box = $("#info");
  box.textContent = "";
  for (const name of state.selected.keys()) {
    const o = catalog.optimizers.get(name);
    const rule = el("div", { class: "rule" });
    if (window.katex && o.rule_latex) {
      try { katex.render(o.rule_latex, rule, { displayMode: true, throwOnError: false }); } catch (err) { rule.textContent = o.rule_latex; }
    } else {
      rule.append(el("pre", { text: o.rule_latex || o.rule_text }));
    }
    const alias = o.alias_of ? ` (${o.alias_of}${Object.keys(o.preset).length ? ` with ${hpText(o.preset)}` : ""})` : "";
    box.append(el("article", { class: "card", id: `info-${name}`, style: `border-left-color:${o.color}` },
      el("h3", { text: `${name}${alias}` }),
      el("p", { class: "summary", text: o.summary }),
      el("p", { class: "meta", text: `${o.cls} · ${o.family} · ${o.year} · ${o.paper}` }),
      rule,
      el("dl", {},
        el("dt", { text: "update" }), el("dd", {}, el("code", { text: o.rule_text })),
        el("dt", { text: "when to use" }), el("dd", { text: o.typical_use }),
        el("dt", { text: "pros" }), el("dd", { text: o.strengths }),
        el("dt", { text: "cons" }), el("dd", { text: o.weaknesses }),
        el("dt", { text: "tuning" }), el("dd", { text: o.tuning }),
        el("dt", { text: "memory" }), el("dd", { text: o.memory_note }))));
  }
  if (!state.selected.size) box.append(el("p", { class: "hint", text: "Choose optimizers on the left." }));
}

function showInfo(name) {
  if (!state.selected.has(name)) {
    const check = document.querySelector(`.opt[data-name="${CSS.escape(name)}"] input[type=checkbox]`);
    if (check) { check.checked = true; check.dispatchEvent(new Event("change")); }
  }
  const card = document.getElementById(`info-${name}`);
  if (card) {
    card.scrollIntoView({ behavior: "smooth", block: "center" });
    card.classList.add("flash");
    setTimeout(() => card.classList.remove("flash"), 1200);
  }
}

// ------------------------------------------------------------------------------ runs tab

function showTab(tab) {
  state.tab = tab;
  $("#race-view").hidden = tab !== "race";
  $("#runs-view").hidden = tab !== "runs";
  $("#tab-race").classList.toggle("active", tab === "race");
  $("#tab-runs").classList.toggle("active", tab === "runs");
  writeUrl();
  if (tab === "runs") loadSweeps();
  else for (const id of ["#map", "#loss"]) if ($(id).data) Plotly.Plots.resize($(id));
}

async function loadSweeps() {
  const body = $("#sweeps tbody");
  let sweeps;
  try {
    sweeps = await api("/api/sweeps");
  } catch (err) {
    $("#runs-message").textContent = err.message;
    return;
  }
  body.textContent = "";
  for (const s of sweeps) {
    const counts = s.counts;
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const row = el("tr", { "data-sweep": s.id, onclick: () => selectSweep(s.id) },
      el("td", { text: String(s.id) }), el("td", { text: s.name || "" }), el("td", { text: s.task || "" }),
      el("td", { text: s.model || "default" }), el("td", { text: s.created_at.slice(0, 16).replace("T", " ") }),
      el("td", { text: `${counts.finished}/${total}` + (counts.diverged ? ` (${counts.diverged} diverged)` : "") }),
      el("td", { text: s.optimizers.join(", ") }));
    body.append(row);
  }
  $("#runs-message").textContent = sweeps.length ? "Click a sweep to see its curves and summary."
    : "No sweeps in this run store yet: run `optimlab bench TASK --optimizers sgd,adam` and reload.";
  document.body.dataset.sweeps = String(sweeps.length);
  if (state.sweep !== null && sweeps.some((s) => s.id === state.sweep)) selectSweep(state.sweep);
}

async function selectSweep(id) {
  let d;
  try {
    d = await api(`/api/sweeps/${id}`);
  } catch (err) {
    $("#runs-message").textContent = err.message;
    return;
  }
  state.sweep = id;
  writeUrl();
  for (const row of document.querySelectorAll("#sweeps tbody tr")) row.classList.toggle("active", Number(row.dataset.sweep) === id);
  $("#sweep-detail").hidden = false;
  const s = d.sweep;
  $("#sweep-title").textContent = `Sweep ${s.id}${s.name ? ` (${s.name})` : ""}: ${s.task || "?"}, ${s.model || "default model"}`;
  const traces = [];
  for (const [name, c] of Object.entries(d.curves)) {
    const color = colorOf(name);
    const label = `${name} (lr=${fmt(c.lr)})`;
    if (c.test_metric) traces.push({ type: "scatter", mode: "lines", name: label, legendgroup: name, x: c.step, y: c.test_metric, line: { color } });
    if (c.train_loss) traces.push({ type: "scatter", mode: "lines", name: label, legendgroup: name, showlegend: false, x: c.step, y: c.train_loss, xaxis: "x2", yaxis: "y2", line: { color, dash: "dot" } });
  }
  await Plotly.react($("#sweep-curves"), traces, {
    margin: { l: 55, r: 10, t: 40, b: 40 }, title: { text: `mean over seeds at each best lr`, font: { size: 14 } },
    grid: { rows: 1, columns: 2, pattern: "independent" },
    xaxis: { title: { text: "step" } }, yaxis: { title: { text: `test ${d.metric}` } },
    xaxis2: { title: { text: "step" } }, yaxis2: { title: { text: "train loss" }, type: "log" },
    legend: { orientation: "h", y: -0.2 },
  }, PLOT_CONFIG);
  const sens = d.summary.map((row) => ({ type: "scatter", mode: "lines+markers", name: row.optimizer,
    x: row.sensitivity.map((p) => p.lr), y: row.sensitivity.map((p) => p.mean), line: { color: colorOf(row.optimizer) } }));
  await Plotly.react($("#sweep-sensitivity"), sens, {
    margin: { l: 55, r: 10, t: 40, b: 40 }, title: { text: "final test metric vs learning rate", font: { size: 14 } },
    xaxis: { title: { text: "lr" }, type: "log", exponentformat: "e" }, yaxis: { title: { text: d.metric } }, showlegend: false,
  }, PLOT_CONFIG);
  const head = $("#sweep-summary thead");
  head.textContent = "";
  head.append(el("tr", {}, ["optimizer", "best lr", `${d.metric} (mean ± std)`, "seeds", "diverged"].map((t) => el("th", { text: t }))));
  const body = $("#sweep-summary tbody");
  body.textContent = "";
  for (const row of d.summary) {
    body.append(el("tr", {},
      el("td", {}, el("span", { class: "swatch", style: `background:${colorOf(row.optimizer)}` }), row.optimizer),
      el("td", { class: "num", text: fmt(row.best_lr) }),
      el("td", { class: "num", text: row.mean === null ? "–" : `${fmt(row.mean, 4)} ± ${fmt(row.std, 2)}` }),
      el("td", { class: "num", text: String(row.seeds) }),
      el("td", { class: "num", text: String(row.diverged) })));
  }
  document.body.dataset.sweep = String(id);
}

// ------------------------------------------------------------------------------ start

// The catalog is fetched at once (this script runs before Plotly is parsed); drawing waits
// for the page's scripts.
const booting = Promise.all([api("/api/limits"), api("/api/landscapes"), api("/api/optimizers")]);

async function init() {
  let limits, landscapes, optimizers;
  try {
    [limits, landscapes, optimizers] = await booting;
  } catch (err) {
    setStatus("the server did not answer");
    showMessage(err.message);
    return;
  }
  performance.mark("catalog-loaded");
  catalog.limits = limits;
  for (const l of landscapes) catalog.landscapes.set(l.name, l);
  for (const o of optimizers) catalog.optimizers.set(o.name, o);
  const autoRace = readUrl();
  if (!catalog.landscapes.has(state.landscape)) state.landscape = landscapes[0].name;
  state.params = { ...currentLandscape().params, ...state.params };
  if (!state.selected.size) for (const name of DEFAULT_OPTIMIZERS) state.selected.set(name, {});
  normaliseSelection();
  buildLandscapeControls();
  buildLandscapeParams();
  buildOptimizers();
  renderInfo();
  showStart();
  $("#play").addEventListener("click", () => (playing ? pause() : play()));
  $("#scrub").addEventListener("input", () => { pause(); setFrame(Number($("#scrub").value)); });
  $("#tab-race").addEventListener("click", () => showTab("race"));
  $("#tab-runs").addEventListener("click", () => showTab("runs"));
  writeUrl();
  await loadGrid();
  setStatus("ready: pick optimizers, click a start, race");
  document.body.dataset.ready = "1";
  if (state.tab === "runs") showTab("runs");
  if (autoRace) runRace();
}

document.addEventListener("DOMContentLoaded", init);
