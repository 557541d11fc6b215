/* How numbers and hyperparameters are written on the page: fmt (metrics, 3 significant
 * digits or exponent form), meanText (a mean and its spread over seeds), short (a
 * hyperparameter as typed), boundsText (its bounds in words), hpText ("lr=0.01, ...",
 * "beta3=auto" for a value the optimizer chooses) and utcText (a stored time, in UTC).
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

// A mean over seeds and its standard deviation, "0.912 ± 0.01"; with no spread to tell
// (std null: one seed) why in words, "0.912 (1 seed: no spread)", as the command line's
// "(1 seed: no interval)".
export function meanText(mean, std, seeds) {
  if (mean === null || mean === undefined) return "–";
  if (std === null || std === undefined) {
    return `${fmt(mean, 4)} (${seeds === 1 ? "1 seed" : `${seeds} seeds`}: no spread)`;
  }
  return `${fmt(mean, 4)} ± ${fmt(std, 2)}`;
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
