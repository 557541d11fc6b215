/* "The optimizers in this race": one card per chosen optimizer, from the catalog (summary,
 * paper, update rule rendered by KaTeX, when to use it, pros, cons, tuning, memory, and a
 * link to its class's page of the reference under /docs/), and showInfo, which the "?"
 * buttons use: the card of a chosen optimizer is scrolled to, that of any other is shown
 * in a dialog, without choosing it.
 */

import { $, el } from "./dom.js";
import { hpText } from "./format.js";
import { state, catalog } from "./state.js";

// one optimizer's card; `id` names it in the page (the dialog's copy has none)
function card(name, id) {
  const o = catalog.optimizers.get(name);
  // the formula scrolls sideways when wide: focusable, so the keyboard can scroll it too
  const rule = el("div", { class: "rule", tabindex: "0", role: "group", "aria-label": `${name} update rule` });
  if (window.katex && o.rule_latex) {
    try { katex.render(o.rule_latex, rule, { displayMode: true, throwOnError: false }); } catch (err) { rule.textContent = o.rule_latex; }
  } else {
    rule.append(el("pre", { text: o.rule_latex || o.rule_text }));
  }
  const alias = o.alias_of ? ` (${o.alias_of}${Object.keys(o.preset).length ? ` with ${hpText(o.preset)}` : ""})` : "";
  // (a card in the page takes the focus its "?" button sends it: tabindex -1)
  return el("article", { class: "card", id, tabindex: id ? "-1" : undefined, style: `border-left-color:${o.color}` },
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
      el("dt", { text: "memory" }), el("dd", { text: o.memory_note })),
    // the class's page of the reference the server keeps at /docs/ (an alias: its class's)
    el("p", { class: "meta" }, el("a", { class: "reference", href: `/docs/${o.alias_of || name}.html`,
      target: "_blank", rel: "noopener", text: `${o.cls}: arguments, defaults and the full reference` })));
}

export function renderInfo() {
  const box = $("#info");
  box.textContent = "";
  for (const name of state.selected.keys()) box.append(card(name, `info-${name}`));
  if (!state.selected.size) box.append(el("p", { class: "hint", text: "Choose optimizers on the left." }));
}

export function showInfo(name) {
  const shown = state.selected.has(name) && document.getElementById(`info-${name}`);
  if (!shown) {  // not in the race: its card in a dialog, the choice left as it is
    const dialog = $("#about");
    $("#about-body").replaceChildren(card(name));
    dialog.dataset.name = name;
    if (!dialog.open) dialog.showModal();
    return;
  }
  shown.scrollIntoView({ behavior: "smooth", block: "center" });
  shown.focus({ preventScroll: true });  // a keyboard user goes on from the card
  shown.classList.add("flash");
  setTimeout(() => shown.classList.remove("flash"), 1200);
}

export function bindAbout() {
  const dialog = $("#about");
  $("#about-close").addEventListener("click", () => dialog.close());
  // a click on the backdrop (outside the card) closes it too
  dialog.addEventListener("click", (event) => { if (event.target === dialog) dialog.close(); });
}
