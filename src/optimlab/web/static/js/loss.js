/* The loss chart beside the map: each optimizer's loss against the step (f − f_min on a
 * log axis where the landscape's minimum is known), with a dotted line at the animation's
 * current step.
 */

import { PLOT_CONFIG } from "./config.js";
import { $ } from "./dom.js";
import { state, live, colorOf, currentLandscape, hasMinima } from "./state.js";
import { drawable, valueRange } from "./grid.js";

function lossValues(values) {
  if (!hasMinima()) return values;
  const min = currentLandscape().min_value;
  return values.map((v) => (v === null ? null : Math.max(v - min, 1e-16)));
}

export function drawLoss() {
  const chart = $("#loss");
  const log = hasMinima();
  const layout = { margin: { l: 60, r: 10, t: 36, b: 40 }, title: { text: "loss vs step", font: { size: 14 } },
    xaxis: { title: { text: "step" } }, showlegend: false,
    yaxis: { title: { text: log ? "f − f_min (log)" : "f" }, type: log ? "log" : "linear", exponentformat: "e" },
    shapes: [], annotations: [] };
  const traces = [];
  if (log) {
    // a tick per decade (no 2 and 5 between them) once the values span two decades
    const values = live.race
      ? live.race.results.flatMap((r) => lossValues(drawable(r).loss)).filter((v) => v !== null && v > 0)
      : valueRange(true) || [];
    const decades = Math.log10(Math.max(...values)) - Math.log10(Math.min(...values));
    if (decades >= 2) layout.yaxis.dtick = 1;
  }
  if (live.race) {
    for (const r of live.race.results) {
      traces.push({ type: "scatter", mode: "lines", name: r.label, x: live.race.step, y: lossValues(drawable(r).loss),
        line: { color: colorOf(r.name), width: 2 }, hovertemplate: `${r.label}: %{y:.4g} at step %{x}<extra></extra>` });
    }
    const s = live.race.step[live.frame];
    layout.shapes.push({ type: "line", x0: s, x1: s, yref: "paper", y0: 0, y1: 1, line: { color: "#888", width: 1, dash: "dot" } });
  } else {
    // before the first race: the steps to come and the values f takes on the map, so the
    // axes say what the chart will show
    layout.xaxis.range = [0, state.steps];
    const range = valueRange(log);
    if (range) {
      const [lo, hi] = range;
      layout.yaxis.range = log ? [Math.floor(Math.log10(lo)), Math.ceil(Math.log10(hi))]
        : [lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)];
    }
    layout.annotations.push({ text: "race to see the losses", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 });
  }
  return Plotly.react(chart, traces, layout, PLOT_CONFIG);
}
