/* "The optimizers in this race": one card per chosen optimizer, from the catalog (summary,
 * paper, update rule rendered by KaTeX, when to use it, pros, cons, tuning, memory), and
 * showInfo, which the "?" buttons use to choose an optimizer and scroll to its card.
 */

import { $, el } from "./dom.js";
import { hpText } from "./format.js";
import { state, catalog } from "./state.js";

export function renderInfo() {
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

export function showInfo(name) {
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
