/* The configuration in the URL's query string, so a link reproduces it: readUrl fills
 * `state` from it at start, writeUrl writes `state` back after every change.
 *   l=landscape  p=k=v;k=v (landscape parameters)  s=x,y (start)  n=steps  noise  seed
 *   tune=1  v=3d  o=name[:k=v;k=v] (one per optimizer: its lr, which starts at the rate
 *   suggested for the landscape, and the values off the library's defaults; null is
 *   "auto", the optimizer's own choice)
 *   st=x,y;x,y (more starts)  fan=1 (a fan of learning rates)  insp=name (step by step)
 *   b=1 (the basins view)  bg=15 (its starts per side)
 *   tab=runs|slices  sweep=id  slice=id  race=1 (the configuration was raced: opening the link races it)
 */

import { state, live, defaultValues } from "./state.js";

function parseValue(text) {
  if (text === "true" || text === "false") return text === "true";
  if (text === "null") return null;  // "auto": the optimizer chooses
  if (text.includes("/")) return text.split("/").map(Number);
  return Number(text);
}

function valueText(v) {
  return Array.isArray(v) ? v.join("/") : String(v);
}

// Returns whether the link asks for a race on opening.
export function readUrl() {
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
  if (q.has("n")) {  // a whole number of steps >= 1; anything else keeps the default
    const n = Number(q.get("n"));
    if (Number.isInteger(n) && n >= 1) state.steps = n;
  }
  if (q.has("noise")) state.noise = Math.max(0, Number(q.get("noise")) || 0);
  if (q.has("seed")) state.seed = parseInt(q.get("seed"), 10) || 0;
  state.tune = q.get("tune") === "1";
  if (q.has("st")) {
    state.starts = q.get("st").split(";").map((p) => p.split(",").map(Number))
      .filter((p) => p.length === 2 && p.every(Number.isFinite)).slice(0, 16);
  }
  state.fan = q.get("fan") === "1";
  state.inspect = q.get("insp") || "";
  state.basins = q.get("b") === "1";
  if (q.has("bg")) state.basinGrid = Math.max(2, Math.min(30, parseInt(q.get("bg"), 10) || 15));
  state.view = q.get("v") === "3d" ? "3d" : "2d";
  state.tab = ["runs", "slices"].includes(q.get("tab")) ? q.get("tab") : "race";
  if (q.has("sweep")) state.sweep = parseInt(q.get("sweep"), 10);
  if (q.has("slice")) state.slice = parseInt(q.get("slice"), 10);
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
