/* The loss chart beside the map: each optimizer's loss against the step (f − f_min on a
 * log axis where the landscape's minimum is known), with a dotted line at the animation's
 * current step. Each line has its optimizer's colour and dash (dashOf), named in a legend.
 */

import { PLOT_CONFIG } from "./config.js";
import { $ } from "./dom.js";
import { state, live, colorOf, dashOf, currentLandscape, hasMinima } from "./state.js";
import { drawable, valueRange } from "./grid.js";

// f − f_min where the minimum is known (a log axis), else f. A gap of exactly 0 (the run
// reached the minimum to float64's precision) has no logarithm: it is drawn at the smallest
// positive float64 (5e-324) and its hover says 0; every positive gap is drawn as it is, so a
// loss of 1e-275 is not a flat line at some floor that looks like a stall.
const FLOOR = Number.MIN_VALUE;
function gaps(values) {
  if (!hasMinima()) return values;
  const min = currentLandscape().min_value;
  return values.map((v) => (v === null ? null : v - min));
}
function lossValues(values) {
  if (!hasMinima()) return values;
  return gaps(values).map((v) => (v === null ? null : Math.max(v, FLOOR)));
}

export function drawLoss() {
  const chart = $("#loss");
  const log = hasMinima();
  const layout = { margin: { l: 60, r: 10, t: 36, b: live.race ? 70 : 40 }, title: { text: "loss vs step", font: { size: 14 } },
    xaxis: { title: { text: "step" } }, showlegend: Boolean(live.race),
    // each optimizer's line has its colour and a dash of its own, named in the legend
    legend: { orientation: "h", x: 0, y: -0.2, yanchor: "top", font: { size: 11 } },
    yaxis: { title: { text: log ? "f − f_min (log)" : "f" }, type: log ? "log" : "linear", exponentformat: "e" },
    shapes: [], annotations: [] };
  const traces = [];
  if (log) {
    // a tick per decade (no 2 and 5 between them) once the values span two decades, or per
    // a round number of decades over hundreds (1e-300 reached: every 50)
    const values = live.race
      ? live.race.results.flatMap((r) => lossValues(drawable(r).loss)).filter((v) => v !== null && v > 0)
      : valueRange(true) || [];
    const decades = Math.log10(Math.max(...values)) - Math.log10(Math.min(...values));
    const every = [1, 2, 5, 10, 20, 25, 50, 100].find((n) => n >= decades / 12) || 100;
    if (decades >= 2) layout.yaxis.dtick = every;
    if (live.race && values.includes(FLOOR)) {  // the floor says what it stands for
      layout.annotations.push({ text: "f − f_min = 0 (drawn at 5e-324)", showarrow: false, xref: "paper", x: 1,
        xanchor: "right", y: Math.log10(FLOOR), yanchor: "bottom", font: { size: 10, color: "#666" } });
    }
  }
  if (live.race) {
    const names = live.race.results.map((r) => r.name);
    for (const r of live.race.results) {
      const loss = drawable(r).loss;
      traces.push({ type: "scatter", mode: "lines", name: r.label, x: live.race.step, y: lossValues(loss),
        customdata: gaps(loss), line: { color: colorOf(r.name), dash: dashOf(r.name, names), width: 2 },
        hovertemplate: `${r.label}: %{customdata:.4g} at step %{x}<extra></extra>` });
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
    } else {
      // no grid (its parameters were refused): no values to show, not the last grid's
      Object.assign(layout.yaxis, { range: [0, 1], showticklabels: false });
    }
    layout.annotations.push({ text: "race to see the losses", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 });
  }
  return Plotly.react(chart, traces, layout, PLOT_CONFIG);
}
