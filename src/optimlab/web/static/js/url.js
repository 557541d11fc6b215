/* The configuration in the URL's query string, so a link reproduces it: readUrl fills
 * `state` from it at start, writeUrl writes `state` back after every change.
 *   l=landscape  p=k=v;k=v (landscape parameters)  s=x,y (start)  n=steps  noise  seed
 *   tune=1  v=3d  o=name[:k=v;k=v] (one per optimizer: its lr, which starts at the rate
 *   suggested for the landscape, and the values off the library's defaults; null is
 *   "auto", the optimizer's own choice; a lone "o=" is none chosen, no o the defaults)
 *   st=x,y;x,y (more starts)  fan=1 (a fan of learning rates)  insp=name (step by step)
 *   b=1 (the basins view)  bg=15 (its starts per side)
 *   tab=runs|slices  sweep=id  slice=id  race=1 (the configuration was raced: opening the link races it)
 * A value the link holds that the page would not take itself (seed=2.5, alpha=0, noise=1e999)
 * is left out, its default kept, and readUrl says so in its notes (never truncated).
 */

import { state, live, catalog, defaultValues, withinBounds } from "./state.js";
import { boundsText } from "./format.js";

function parseValue(text) {
  if (text === "true" || text === "false") return text === "true";
  if (text === "null") return null;  // "auto": the optimizer chooses
  if (text.includes("/")) return text.split("/").map(Number);
  return Number(text);
}

function valueText(v) {
  return Array.isArray(v) ? v.join("/") : String(v);
}

// A whole number from low to high (a null bound: none) written in the link: the number, or
// null for "2.5", "abc", "1e400" or one out of bounds, with a note in `notes`: a link is
// never truncated nor clamped into another setup than it says (the default is kept).
function wholeField(q, key, low, high, notes) {
  const text = q.get(key);
  const n = Number(text);
  if (text.trim() !== "" && Number.isSafeInteger(n) && (low === null || n >= low) && (high === null || n <= high)) return n;
  const range = high === null ? `of at least ${low}` : `from ${low} to ${high}`;
  notes.push(`${key}=${text} is not a whole number ${range}`);
  return null;
}

// A point "x,y" of the link: two finite numbers, or null with a note.
function pointField(text, key, notes) {
  const point = text.split(",").map((v) => (v.trim() === "" ? NaN : Number(v)));
  if (point.length === 2 && point.every(Number.isFinite)) return point;
  notes.push(`${key}=${text} is not a point x,y of two finite numbers`);
  return null;
}

// A hyperparameter value of optimizer `name` written in the link: the value, or undefined
// (its default kept) with a note where it lies outside what the API takes (GET
// /api/optimizers: its kind, bounds, open ends, and null where the optimizer may choose).
function hpField(name, key, text, notes) {
  const v = parseValue(text);
  const o = catalog.optimizers.get(name);
  const h = o && o.hyperparameters.find((x) => x.name === key);
  if (!h) {  // not one the page shows: normaliseSelection drops it
    if (o) notes.push(`${key} is not a hyperparameter of ${name}`);
    return undefined;
  }
  const ok = h.kind === "bool" ? typeof v === "boolean"
    : v === null ? Boolean(h.nullable)
    : h.kind === "pair" ? Array.isArray(v) && v.length === 2 && v.every((x) => withinBounds(h, x))
    : typeof v === "number" && withinBounds(h, v) && (h.kind !== "int" || Number.isInteger(v));
  if (ok) return v;
  const what = h.kind === "bool" ? "true or false" : h.kind === "pair" ? `two numbers ${boundsText(h)}` : boundsText(h);
  notes.push(`${name}'s ${key}=${text} is not ${what}`);
  return undefined;
}

// Whether a point lies in the landscape's domain (where the API takes a start).
function inDomain(point, land) {
  return land.domain.every(([low, high], i) => point[i] >= low && point[i] <= high);
}

// A start of the link in the landscape's domain, or null with a note.
function startField(text, key, land, notes) {
  const point = pointField(text, key, notes);
  if (!point || inDomain(point, land)) return point;
  const [[x0, x1], [y0, y1]] = land.domain;
  notes.push(`${key}=${text} lies outside ${land.name}'s domain [${x0}, ${x1}] × [${y0}, ${y1}]`);
  return null;
}

// Fills `state` from the link. Returns whether the link asks for a race on opening, whether
// it names the optimizers (o=, none when empty: a link without it gets the defaults), and
// the notes on what of it was not taken (the default kept instead), for the page to show.
export function readUrl() {
  const q = new URLSearchParams(location.search);
  const notes = [];
  if (q.has("l")) {
    if (catalog.landscapes.has(q.get("l"))) state.landscape = q.get("l");
    else notes.push(`l=${q.get("l")} is not a landscape`);
  }
  if (!catalog.landscapes.has(state.landscape)) state.landscape = catalog.landscapes.keys().next().value;
  const land = catalog.landscapes.get(state.landscape);
  if (q.has("p")) {
    for (const kv of q.get("p").split(";").filter(Boolean)) {
      const [k, v] = kv.split("=");
      if (!(k in land.params)) notes.push(`${k} is not a parameter of ${land.name}`);
      else if (v !== undefined && v.trim() !== "" && Number.isFinite(Number(v))) state.params[k] = Number(v);
      else notes.push(`the landscape's ${k}=${v ?? ""} is not a finite number`);
    }
  }
  if (q.has("s")) state.start = startField(q.get("s"), "s", land, notes) || state.start;
  if (q.has("n")) state.steps = wholeField(q, "n", 1, catalog.limits.max_steps ?? null, notes) ?? state.steps;
  if (q.has("noise")) {
    const v = q.get("noise").trim() === "" ? NaN : Number(q.get("noise"));
    const most = catalog.limits.max_noise ?? Infinity;
    if (Number.isFinite(v) && v >= 0 && v <= most) state.noise = v;
    else notes.push(`noise=${q.get("noise")} is not a finite number from 0 to ${most}`);
  }
  if (q.has("seed")) state.seed = wholeField(q, "seed", 0, catalog.limits.max_seed ?? null, notes) ?? state.seed;
  state.tune = q.get("tune") === "1";
  if (q.has("st")) {
    state.starts = q.get("st").split(";").filter(Boolean).map((p) => startField(p, "st", land, notes))
      .filter(Boolean);
    const most = catalog.limits.max_starts ?? 16;
    if (state.starts.length > most) {
      notes.push(`st= holds ${state.starts.length} more starts: only the first ${most} taken`);
      state.starts = state.starts.slice(0, most);
    }
  }
  state.fan = q.get("fan") === "1";
  state.inspect = q.get("insp") || "";
  state.basins = q.get("b") === "1";
  if (q.has("bg")) state.basinGrid = wholeField(q, "bg", 2, catalog.limits.max_basin_grid ?? 30, notes) ?? state.basinGrid;
  state.view = q.get("v") === "3d" ? "3d" : "2d";
  state.tab = ["runs", "slices"].includes(q.get("tab")) ? q.get("tab") : "race";
  if (q.has("tab") && !["race", "runs", "slices"].includes(q.get("tab"))) notes.push(`tab=${q.get("tab")} is not a tab`);
  if (q.has("sweep")) state.sweep = wholeField(q, "sweep", 1, null, notes);
  if (q.has("slice")) state.slice = wholeField(q, "slice", 1, null, notes);
  // o= with nothing after it is an empty selection, written so by writeUrl
  const opts = q.getAll("o").filter(Boolean);
  for (const item of opts) {
    const [name, rest] = item.split(":");
    if (!catalog.optimizers.has(name)) { notes.push(`o=${item} is not an optimizer`); continue; }
    if (!state.selected.has(name) && state.selected.size >= catalog.limits.max_optimizers) {
      notes.push(`o=${item}: at most ${catalog.limits.max_optimizers} optimizers per race`);
      continue;
    }
    const hp = {};
    for (const kv of (rest || "").split(";").filter(Boolean)) {
      const [k, v] = kv.split("=");
      const value = hpField(name, k, v ?? "", notes);
      if (value !== undefined) hp[k] = value;
    }
    state.selected.set(name, hp);
  }
  return { race: state.selected.size > 0 && q.get("race") === "1", optimizers: q.has("o"), notes };
}

export function writeUrl() {
  const q = new URLSearchParams();
  q.set("l", state.landscape);
  const params = Object.entries(state.params);
  if (params.length) q.set("p", params.map(([k, v]) => `${k}=${v}`).join(";"));
  if (state.start) q.set("s", state.start.join(","));
  q.set("n", state.steps);
  if (state.noise) q.set("noise", state.noise);
  if (state.seed) q.set("seed", state.seed);
  if (state.tune) q.set("tune", "1");
  if (state.starts.length) q.set("st", state.starts.map((p) => p.join(",")).join(";"));
  if (state.fan) q.set("fan", "1");
  if (state.inspect) q.set("insp", state.inspect);
  if (state.basins) q.set("b", "1");
  if (state.basins && state.basinGrid !== 15) q.set("bg", state.basinGrid);
  if (state.view === "3d") q.set("v", "3d");
  if (!state.selected.size) q.set("o", "");  // none chosen: a reload keeps none, not the defaults
  for (const [name, hp] of state.selected) {
    const defaults = defaultValues(name);
    const changed = Object.entries(hp)
      // lr always: its default comes from a table that a later version may recompute
      .filter(([k, v]) => k === "lr" || valueText(v) !== valueText(defaults[k]))
      .map(([k, v]) => `${k}=${valueText(v)}`);
    q.append("o", changed.length ? `${name}:${changed.join(";")}` : name);
  }
  if (state.tab !== "race") q.set("tab", state.tab);
  if (state.sweep !== null && !Number.isNaN(state.sweep)) q.set("sweep", state.sweep);
  if (state.slice !== null && !Number.isNaN(state.slice)) q.set("slice", state.slice);
  if (state.basins ? live.basins : live.race) q.set("race", "1");  // a link to a raced configuration races it on opening
  history.replaceState(null, "", `${location.pathname}?${q}`);
}
