/* How numbers and hyperparameters are written on the page: fmt (metrics, 3 significant
 * digits or exponent form), ciText (a mean over seeds and its confidence interval), logTicks
 * (a log axis's ticks, each labelled with its number), short (a hyperparameter as typed),
 * boundsText (its bounds in words), hpText ("lr=0.01, ...", "beta3=auto" for a value the
 * optimizer chooses) and utcText (a stored time, in UTC).
 */

export function fmt(v, digits = 3) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (Array.isArray(v)) return "(" + v.map((x) => fmt(x, digits)).join(", ") + ")";
  if (typeof v !== "number") return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(digits - 1).replace("e+", "e");
  return String(Number(v.toPrecision(digits)));
}

// A mean over seeds and its confidence interval's half-width as the command line's table
// writes them, "0.9514 ± 0.19"; where there is none (ci null), why: "(1 seed: no
// interval)", "(2 seeds, all alike: no interval)". `range`: a bounded metric's [low, high]
// (an accuracy's [0, 1]); an interval past it says its ends clipped, "0.8875 ± 0.37
// (clipped: 0.517 to 1)", as report.mean_text does.
export function ciText(mean, ci, seeds, range = null) {
  if (mean === null || mean === undefined) return "–";
  if (ci === null || ci === undefined) {
    return `${fmt(mean, 4)} (${seeds === 1 ? "1 seed" : `${seeds} seeds, all alike`}: no interval)`;
  }
  const text = `${fmt(mean, 4)} ± ${fmt(ci, 2)}`;
  if (!range || !(mean - ci < range[0] || mean + ci > range[1])) return text;
  const g3 = (v) => String(Number(v.toPrecision(3)));  // Python's "{:.3g}" for these values
  return `${text} (clipped: ${g3(Math.max(mean - ci, range[0]))} to ${g3(Math.min(mean + ci, range[1]))})`;
}

// The ticks of a log axis over `values` (its positive finite ones), each labelled with its
// number ("0.02", "5e-4"), not the bare digit ("2") Plotly writes beside its own ticks
// between powers of ten: enough of them that a few fall among the values (1..9 in a decade
// where the largest is at most 2.5 times the smallest, 1, 2, 3, 5 and 7 up to 10 times, 1,
// 2 and 5 up to 1000 times), else the powers of ten (every k-th where there are many).
export function logTicks(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) {
    if (typeof v === "number" && Number.isFinite(v) && v > 0) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  }
  if (lo === Infinity) return {};
  const first = Math.floor(Math.log10(lo)), last = Math.ceil(Math.log10(hi));
  const decades = Math.max(last - first, 1);
  const ratio = hi / lo;
  const mantissas = ratio <= 2.5 ? [1, 2, 3, 4, 5, 6, 7, 8, 9] : ratio <= 10 ? [1, 2, 3, 5, 7]
    : ratio <= 1000 ? [1, 2, 5] : [1];
  const every = Math.ceil(decades / 8);
  const tickvals = [];
  for (let e = first; e <= last; e += every) {
    for (const m of mantissas) tickvals.push(Number((m * 10 ** e).toPrecision(3)));
  }
  return { tickmode: "array", tickvals, ticktext: tickvals.map((v) => fmt(v)) };
}

export function short(v) {
  // a hyperparameter as typed: up to 4 significant digits, no trailing zeros (1e-8, 0.999)
  if (Array.isArray(v)) return "(" + v.map(short).join(", ") + ")";
  if (typeof v !== "number") return fmt(v);
  return String(Number(v.toPrecision(4)));
}

// A hyperparameter's bounds in words, as the API says them: "> 0 and <= 1", "a whole
// number from 1 to 100" (an int's open ends made closed: 1 to 99 for "> 0 and < 100").
export function boundsText(h) {
  if (h.kind === "int") {
    const low = h.low_open ? Math.floor(h.low) + 1 : Math.ceil(h.low);
    const high = h.high_open ? Math.ceil(h.high) - 1 : Math.floor(h.high);
    return `a whole number from ${low} to ${high}`;
  }
  return `${h.low_open ? ">" : ">="} ${short(h.low)} and ${h.high_open ? "<" : "<="} ${short(h.high)}`;
}

// null is a number the optimizer chooses itself (Prodigy's beta3, ...): the page's "auto"
export function hpText(hparams, tuned) {
  return Object.entries(hparams)
    .map(([k, v]) => `${k}=${v === null ? "auto" : short(v)}${tuned && k === "lr" ? " (tuned)" : ""}`).join(", ");
}

export function lrOnly(hparams) { return "lr" in hparams ? { lr: hparams.lr } : {}; }

// A time the API sends (ISO 8601 with its zone, UTC) as the command line's `optimlab runs`
// and the HTML report write it, "2024-05-01 12:34 UTC": the same sweep reads the same in
// all three, and the zone is said (a bare time reads as the reader's own).
export function utcText(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return String(iso ?? "");
  return `${when.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

// A data string (an optimizer's or a task's name from the store or a slice file) as Plotly
// shows it: Plotly renders names, titles and hover texts as markup (<b>, <a href>, ...), so
// its <, > and & are escaped to show as typed; and it fills "%{x}" in a hover template
// with the point's x, so "%" is written as its numeric entity, which Plotly turns back
// into "%" only after filling the template.
export function esc(text) {
  return String(text ?? "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/%/g, "&#37;");
}

// a metric as the tables and captions name it ("bits per char", not "bits_per_char")
export const metricName = (d) => d.metric.replaceAll("_", " ");
