/* The current landscape's grid (GET /api/landscapes/NAME/grid) and what the pictures
 * read from it: the range of its values, its contour lines, a loss's height on the 3-D
 * surface, and what of a path is drawn. The map, the loss chart, the animation and the
 * basins view all read it; it imports none of them.
 */

import { GRID_N } from "./config.js";
import { $ } from "./dom.js";
import { api } from "./api.js";
import { state, currentLandscape } from "./state.js";

export let grid = null;  // the current landscape's grid, once fetched

// Fetch the current landscape's grid with its parameters; an error propagates (the caller
// shows it) and leaves no grid: nothing of the last landscape may be drawn as if it were
// this one (the description says which parameters were refused).
export async function fetchGrid() {
  const land = currentLandscape();
  const q = new URLSearchParams({ n: GRID_N, ...state.params });
  try {
    grid = await api(`/api/landscapes/${encodeURIComponent(land.name)}/grid?${q}`);
  } catch (err) {
    grid = null;
    const given = Object.entries(state.params).map(([k, v]) => `${k} = ${v}`).join(", ");
    $("#landscape-desc").textContent = `No ${land.name} landscape with ${given}: `
      + "the server refused these parameters (the message under the map says why).";
    throw err;
  }
  if (!performance.getEntriesByName("grid-loaded").length) performance.mark("grid-loaded");
  $("#landscape-desc").textContent = grid.description;  // as built with these parameters
  return grid;
}

// Where a race given no start begins: the grid's start, of the landscape built with the
// current parameters (a rotated bowl's start turns with its angle), else the catalog's (of
// the landscape's own parameters) while no grid of this landscape is here.
export function defaultStart() {
  const land = currentLandscape();
  return grid && grid.name === land.name && grid.start ? grid.start : land.start;
}

// The range of f over the grid (f − f_min on a log axis, when the landscape's minimum is
// known): the loss chart's axis before the first race.
export function valueRange(log) {
  if (!grid) return null;
  const values = grid.z.flat().filter((v) => v !== null)
    .map((v) => (log ? v - currentLandscape().min_value : v)).filter((v) => !log || v > 0);
  if (!values.length) return null;
  return [Math.min(...values), Math.max(...values)];
}

// the landscape's contour lines alone (no fill), to draw under other pictures (basins)
export function contourLines() {
  if (!grid) return null;
  return { type: "contour", x: grid.x, y: grid.y, z: grid.color, ncontours: 18, showscale: false,
    contours: { coloring: "none" }, line: { width: 0.6, color: "rgba(0,0,0,0.45)" }, hoverinfo: "skip" };
}

export function height(loss) {
  // a loss's height on the 3-D surface: the same transform as the surface's colours
  if (loss === null) return null;
  return grid.log ? Math.log10(Math.max(loss - grid.zmin, 0) + grid.offset) : loss;
}

export function pathSlice(values, k) { return values.slice(0, k + 1); }

// What is drawn of a path: points far outside the domain (more than ten widths, where the
// race calls a run diverged) are left out, so a run-away path cannot blow up the picture.
export function drawable(r) {
  if (r.shown) return r.shown;
  const [[x0, x1], [y0, y1]] = currentLandscape().domain;
  const keep = (v, lo, hi) => (v !== null && v >= lo - 10 * (hi - lo) && v <= hi + 10 * (hi - lo));
  const ok = r.x.map((x, i) => keep(x, x0, x1) && keep(r.y[i], y0, y1));
  r.shown = { x: r.x.map((v, i) => (ok[i] ? v : null)), y: r.y.map((v, i) => (ok[i] ? v : null)),
    loss: r.loss.map((v, i) => (ok[i] && Math.abs(v) < 1e15 ? v : null)) };
  return r.shown;
}
