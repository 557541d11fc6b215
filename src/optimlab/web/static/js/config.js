/* The playground's fixed settings: grid size, animation length, the optimizers a first
 * visit starts with, and the look shared by every Plotly chart.
 */

export const GRID_N = 100;
export const ANIMATION_MS = 3000;
export const DEFAULT_OPTIMIZERS = ["gd", "momentum", "adam"];
// the background of a race: a light slate ramp, so the coloured paths stand out
export const COLORSCALE = [[0, "#3b4658"], [0.35, "#7d8ba1"], [0.7, "#c9d1dc"], [1, "#f4f6f9"]];

export const PLOT_CONFIG = { displaylogo: false, responsive: true, scrollZoom: false,
  modeBarButtonsToRemove: ["select2d", "lasso2d", "toImage"] };
// the fan of learning rates: each optimizer also runs at these multiples of its rate
export const FAN_FACTORS = [0.25, 0.5, 2, 4];
// steps recorded by the step-by-step mode (at most the race's) where the server's limits
// (max_inspect_steps) do not say
export const INSPECT_STEPS = 300;
