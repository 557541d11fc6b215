/* What the page knows:
 *   state   - the configuration the user chose; url.js writes it to and reads it from the
 *             query string, so a link reproduces it;
 *   catalog - what the server offers (limits, landscapes, optimizers), loaded once at start;
 *   live    - the last race's answer and the animation's current point.
 * and small questions about them (the current landscape, an optimizer's defaults, colour).
 */

export const state = {
  tab: "race", landscape: "rosenbrock", params: {}, start: null, steps: 500, noise: 0,
  seed: 0, tune: false, view: "2d", selected: new Map(), sweep: null, slice: null,
  starts: [],           // more start points: every optimizer also runs from each
  fan: false,           // every optimizer also runs at FAN_FACTORS x its learning rate
  inspect: "",          // the optimizer shown step by step ("" : none)
  basins: false,        // the basins view: every optimizer from every start of a grid
  basinGrid: 15,        // its starts per side
};
export const catalog = { limits: {}, landscapes: new Map(), optimizers: new Map() };
export const live = {
  race: null,           // the last race's answer (POST /api/race)
  frame: 0,             // the animation's current point index
  inspect: null,        // the step-by-step record of state.inspect (POST /api/inspect)
  basins: null,         // the last basins map (POST /api/basins)
  epoch: 0,             // counts the changes that void a race: an answer asked for before one is dropped
};

export function currentLandscape() { return catalog.landscapes.get(state.landscape); }
export function hasMinima() { const l = currentLandscape(); return l && l.minima.length > 0; }

// An optimizer's starting values on the current landscape: the library's defaults, but the
// learning rate suggested for this landscape (GET /api/landscapes: "lrs"; the rule is
// optimlab.landscapes.suggest), since a network's default rate hardly moves on a 2-D map.
export function defaultValues(name) {
  const values = {};
  for (const h of catalog.optimizers.get(name).hyperparameters) values[h.name] = h.default;
  const land = currentLandscape();
  if ("lr" in values && land && land.lrs && name in land.lrs) values.lr = land.lrs[name];
  return values;
}

// Whether v lies within hyperparameter h's bounds as the API checks them (GET
// /api/optimizers: low, high, and low_open/high_open where an end is excluded, as
// Lookahead's alpha = 0); a missing bound is none.
export function withinBounds(h, v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return false;
  const has = (b) => b !== null && b !== undefined;
  const above = !has(h.low) || (h.low_open ? v > h.low : v >= h.low);
  const below = !has(h.high) || (h.high_open ? v < h.high : v <= h.high);
  return above && below;
}

export function normaliseSelection() {
  for (const [name, hp] of [...state.selected]) {
    if (!catalog.optimizers.has(name)) { state.selected.delete(name); continue; }
    const values = defaultValues(name);
    for (const [k, v] of Object.entries(hp)) if (k in values) values[k] = v;
    state.selected.set(name, values);
  }
}

export function colorOf(name) { const o = catalog.optimizers.get(name); return o ? o.color : "#333"; }

// The dashes a line may take beside its colour (slices.js draws its lines between two
// solutions with them), so that lines differ by more than colour.
export const DASHES = ["dash", "dot", "dashdot", "longdash", "longdashdot"];
const LINE_DASHES = ["solid", ...DASHES];

// An optimizer's line dash beside its colour: by its place among `names` (the optimizers of
// one chart, so that up to six of them differ), else by its place in the catalog.
export function dashOf(name, names) {
  const order = names ? [...names] : [...catalog.optimizers.keys()];
  const i = order.indexOf(name);
  return LINE_DASHES[(i < 0 ? 0 : i) % LINE_DASHES.length];
}
