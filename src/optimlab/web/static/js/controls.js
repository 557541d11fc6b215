/* The left-hand panel of the Race tab: the landscape, its parameters, the start, steps,
 * noise, seed, tuning and 3-D switches, and the list of optimizers with one control per
 * hyperparameter (a log or linear slider with a text box, a checkbox, a number box, or an
 * "auto" switch beside the slider where the optimizer may choose the value itself).
 * Every change goes into `state` and the URL.
 */

import { $, el, showMessage } from "./dom.js";
import { boundsText, fmt, short } from "./format.js";
import { state, live, catalog, currentLandscape, defaultValues, withinBounds } from "./state.js";
import { writeUrl } from "./url.js";
import { renderInfo, showInfo } from "./info.js";
import { clearRace, runRace } from "./race.js";
import { addExtraStart, drawMap, loadGrid, showStart } from "./map.js";
import { defaultStart } from "./grid.js";
import { drawLoss } from "./loss.js";
import { showMode } from "./basins.js";

// ------------------------------------------------------------------------------ changes

// A change to what a race runs (steps, noise, seed, tuning, an optimizer or one of its
// values): the race (or basins map) shown was run with other settings, so it goes, and
// race=1 leaves the URL: a link never races another setup than the page shows.
function raceChanged() {
  if (live.race || live.basins) { clearRace(); drawMap(); } else live.epoch += 1;  // (one on its way too)
  writeUrl();
}

// A whole number typed in `box`, from low to high (a null bound: none): the number, or
// null with the box marked invalid, for an empty box, "2.5", "abc" or a number out of
// bounds (the caller keeps its last value; nothing is rounded or cut short silently).
export function wholeNumber(box, low, high) {
  const n = Number(box.value);
  const ok = box.value.trim() !== "" && Number.isInteger(n)
    && (low === null || low === undefined || n >= low) && (high === null || high === undefined || n <= high);
  box.classList.toggle("invalid", !ok);
  if (ok) box.removeAttribute("aria-invalid"); else box.setAttribute("aria-invalid", "true");
  return ok ? n : null;
}

// ------------------------------------------------------------------------------ optimizers

const logPos = (h, v) => Math.round(1000 * (Math.log10(v) - Math.log10(h.ui_low))
  / (Math.log10(h.ui_high) - Math.log10(h.ui_low)));
const logValue = (h, p) => Number((10 ** (Math.log10(h.ui_low) + p / 1000
  * (Math.log10(h.ui_high) - Math.log10(h.ui_low)))).toPrecision(3));

// a hyperparameter's name in its row: a long one gets the row's full width (style.css), and
// may wrap after an underscore, never inside a word
const LONG_NAME = 9;
function nameLabel(text) {
  return el("span", { class: text.length > LONG_NAME ? "long" : undefined, text: text.replaceAll("_", "_\u200b") });
}

// The line under a hyperparameter's box saying why what was typed is refused (the box is
// marked invalid, the last value kept and raced): nothing out of the API's bounds is sent.
// Each note has an id: a refused box is marked aria-invalid and described by its note, so a
// screen reader says why (not only the red border); both go when the box is valid again.
let notes = 0;
function hpNote() { return el("span", { class: "hp-note", id: `note-${++notes}`, role: "alert", hidden: true }); }
function refuse(box, note, text) {
  box.classList.toggle("invalid", Boolean(text));
  note.textContent = text;
  note.hidden = !text;
  describedBy(box, note, Boolean(text));
}
function describedBy(box, note, invalid) {
  const ids = (box.getAttribute("aria-describedby") || "").split(" ").filter((id) => id && id !== note.id);
  if (invalid) {
    box.setAttribute("aria-invalid", "true");
    ids.push(note.id);
  } else {
    box.removeAttribute("aria-invalid");
  }
  if (ids.length) box.setAttribute("aria-describedby", ids.join(" "));
  else box.removeAttribute("aria-describedby");
}

// The same line under a box of the run settings (steps, seed, starts per side, the start).
function fieldNote(box) {
  const note = el("span", { class: "field-note", id: `${box.id || "field"}-note-${++notes}`, role: "alert", hidden: true });
  box.closest(".row").after(note);
  return note;
}

function numberControl(name, h, label, get, set) {
  // a slider (log or linear) with a text box for exact values, both showing the value used
  const slider = el("input", { type: "range", min: 0, max: 1000, step: 1, "aria-label": `${name} ${label}` });
  const text = el("input", { type: "text", "aria-label": `${name} ${label} value` });
  const note = hpNote();
  const linearStep = (h.ui_high - h.ui_low) / 1000;
  const toPos = (v) => (h.kind === "log" ? logPos(h, v) : Math.round((v - h.ui_low) / linearStep));
  const toValue = (p) => (h.kind === "log" ? logValue(h, p)
    : Number((h.ui_low + p * linearStep).toPrecision(4)));
  // the slider's ends: its first and last positions whose value the API takes (an open
  // end where the slider would start, as Lookahead's alpha = 0, is left out)
  let first = 0, last = 1000;
  while (first < last && !withinBounds(h, toValue(first))) first += 1;
  while (last > first && !withinBounds(h, toValue(last))) last -= 1;
  slider.min = first;
  slider.max = last;
  // the slider says the value shown beside it (not its position, 0 to 1000)
  const show = () => {
    const v = get(); slider.value = toPos(v); text.value = short(v); slider.setAttribute("aria-valuetext", text.value);
    refuse(text, note, "");
  };
  slider.addEventListener("input", () => {
    set(toValue(Number(slider.value)));
    text.value = short(get());
    slider.setAttribute("aria-valuetext", text.value);
    refuse(text, note, "");
  });
  slider.addEventListener("change", raceChanged);
  text.addEventListener("change", () => {
    const v = Number(text.value);
    if (text.value.trim() === "" || !Number.isFinite(v)) {
      refuse(text, note, `${label}: not a number (kept ${short(get())})`);
      return;
    }
    if (!withinBounds(h, v)) {
      refuse(text, note, `${label} must be ${boundsText(h)} (kept ${short(get())})`);
      return;
    }
    set(v); show(); raceChanged();
  });
  show();
  return el("div", { class: "hp", title: h.help }, nameLabel(label), slider, text, note);
}

function nullableControls(name, h, hp) {
  // a number the optimizer may choose itself (null, "auto"): a switch, and the slider the
  // value comes from when the switch is off (moving the slider turns it off)
  let last = hp[h.name] ?? h.example;
  const auto = el("input", { type: "checkbox", "aria-label": `${name} ${h.name} auto` });
  const number = numberControl(name, h, h.name, () => hp[h.name] ?? last, (v) => {
    last = v; hp[h.name] = v; auto.checked = false; number.classList.remove("off");
  });
  auto.checked = hp[h.name] === null;
  number.classList.toggle("off", auto.checked);
  auto.addEventListener("change", () => {
    hp[h.name] = auto.checked ? null : last;
    number.classList.toggle("off", auto.checked);
    raceChanged();
  });
  const label = el("label", { class: "hp bool", title: h.help }, auto, el("span", { text: `${h.name}: auto` }));
  return [label, number];
}

function hpControls(name) {
  const hp = state.selected.get(name);
  const rows = [];
  for (const h of catalog.optimizers.get(name).hyperparameters) {
    if (h.kind === "bool") {
      const box = el("input", { type: "checkbox", "aria-label": `${name} ${h.name}` });
      box.checked = Boolean(hp[h.name]);
      box.addEventListener("change", () => { hp[h.name] = box.checked; raceChanged(); });
      rows.push(el("label", { class: "hp bool", title: h.help }, box, el("span", { text: h.name })));
    } else if (h.kind === "int") {
      const box = el("input", { type: "number", min: h.ui_low, max: h.ui_high, step: 1, value: hp[h.name],
        "aria-label": `${name} ${h.name}` });
      // a whole number within the API's bounds (an open end excluded), else the last one
      const low = h.low === null || h.low === undefined ? null : h.low_open ? Math.floor(h.low) + 1 : Math.ceil(h.low);
      const high = h.high === null || h.high === undefined ? null : h.high_open ? Math.ceil(h.high) - 1 : Math.floor(h.high);
      const note = hpNote();
      box.addEventListener("change", () => {
        const v = wholeNumber(box, low, high);
        refuse(box, note, v === null ? `${h.name} must be ${boundsText(h)} (kept ${hp[h.name]})` : "");
        if (v === null) return;
        hp[h.name] = v;
        raceChanged();
      });
      rows.push(el("div", { class: "hp", title: h.help }, nameLabel(h.name), box, el("span"), note));
    } else if (h.kind === "pair") {
      for (const i of [0, 1]) {
        const pair = { ...h, kind: "linear", ui_high: i === 0 ? 0.999 : h.ui_high };
        rows.push(numberControl(name, pair, `${h.name.replace(/s$/, "")}${i + 1}`,
          () => hp[h.name][i], (v) => { hp[h.name] = hp[h.name].slice(); hp[h.name][i] = v; }));
      }
    } else if (h.nullable) {
      rows.push(...nullableControls(name, h, hp));
    } else {
      rows.push(numberControl(name, h, h.name, () => hp[h.name], (v) => { hp[h.name] = v; }));
    }
  }
  return rows;
}

export function buildOptimizers() {
  const box = $("#optimizers");
  box.textContent = "";
  for (const [name, o] of catalog.optimizers) {
    const on = state.selected.has(name);
    const check = el("input", { type: "checkbox", value: name, "aria-label": name });
    check.checked = on;
    const row = el("div", { class: on ? "opt on" : "opt", "data-name": name });
    const hps = el("div", { class: "hps" });
    const fill = () => {
      hps.textContent = "";
      if (state.selected.has(name)) hps.append(...hpControls(name), el("div", { class: "used" }));
    };
    check.addEventListener("change", () => {
      if (check.checked) {
        if (state.selected.size >= catalog.limits.max_optimizers) {
          check.checked = false;
          showMessage(`at most ${catalog.limits.max_optimizers} optimizers per race`);
          return;
        }
        state.selected.set(name, defaultValues(name));
      } else {
        state.selected.delete(name);
      }
      row.classList.toggle("on", check.checked);
      fill();
      renderInfo();
      fillInspect();
      raceChanged();
    });
    const title = o.alias_of ? `${o.summary}` : `${o.cls}: ${o.summary}`;
    row.append(el("div", { class: "opt-head" },
      el("label", { title }, check, " ", el("span", { class: "swatch", style: `background:${o.color}` }), name),
      el("button", { class: "info-btn", type: "button", title: `about ${name}`, "aria-label": `about ${name}`, onclick: () => showInfo(name) }, "?")),
    hps);
    box.append(row);
    fill();
  }
}

// ------------------------------------------------------------------------------ landscape and run settings

function noiseFromPos(p) { return p === 0 ? 0 : Number((10 ** (-3 + 6 * (p - 1) / 99)).toPrecision(2)); }
function noisePos(v) { return v <= 0 ? 0 : Math.max(1, Math.min(100, Math.round(1 + 99 * (Math.log10(v) + 3) / 6))); }

export function buildLandscapeControls() {
  const select = $("#landscape");
  select.textContent = "";
  for (const name of catalog.landscapes.keys()) select.append(el("option", { value: name, text: name }));
  select.value = state.landscape;
  select.addEventListener("change", () => {
    // a learning rate still at the old landscape's suggestion takes the new one's
    const before = new Map([...state.selected.keys()].map((name) => [name, defaultValues(name).lr]));
    state.landscape = select.value;
    for (const [name, hp] of state.selected) {
      if ("lr" in hp && hp.lr === before.get(name)) hp.lr = defaultValues(name).lr;
    }
    buildOptimizers();
    state.params = { ...currentLandscape().params };
    state.start = null;
    landscapeChanged();
  });
  buildStartBoxes();
  $("#start-reset").addEventListener("click", () => { state.start = null; clearRace(); drawMap(); showStart(); writeUrl(); });
  const steps = $("#steps");
  steps.max = catalog.limits.max_steps;
  steps.value = state.steps;
  const stepsNote = fieldNote(steps);
  steps.addEventListener("change", () => {
    // a whole number from 1 to the limit; an empty box, 2.5, -5 or one past the limit is
    // refused with a note, and the box goes back to the last one (never cut to the limit)
    const typed = steps.value.trim() || "(empty)";
    const n = wholeNumber(steps, 1, catalog.limits.max_steps);
    steps.value = n ?? state.steps;
    refuse(steps, stepsNote, n === null
      ? `steps ${typed} refused: a whole number from 1 to ${catalog.limits.max_steps} (kept ${state.steps})` : "");
    steps.classList.remove("invalid");  // the box shows the value kept (the note, and aria-invalid, say it was refused)
    if (n === null) return;
    state.steps = n;
    if (!live.race && !live.basins) drawLoss();  // the empty chart's step axis
    raceChanged();
  });
  const noise = $("#noise");
  noise.value = noisePos(state.noise);
  // the label beside it, which the slider says too (not its position)
  const noiseLabel = () => { $("#noise-label").textContent = fmt(state.noise); noise.setAttribute("aria-valuetext", fmt(state.noise)); };
  noiseLabel();
  noise.addEventListener("input", () => { state.noise = noiseFromPos(Number(noise.value)); noiseLabel(); });
  noise.addEventListener("change", raceChanged);
  const seed = $("#seed");
  seed.value = state.seed;
  seed.max = catalog.limits.max_seed;
  const seedNote = fieldNote(seed);
  seed.addEventListener("change", () => {
    const v = wholeNumber(seed, 0, catalog.limits.max_seed);
    refuse(seed, seedNote, v === null ? `seed must be a whole number from 0 to ${catalog.limits.max_seed} (kept ${state.seed})` : "");
    if (v === null) return;
    state.seed = v;
    raceChanged();
  });
  const tune = $("#tune");
  tune.checked = state.tune;
  tune.addEventListener("change", () => { state.tune = tune.checked; raceChanged(); });
  const surface = $("#surface");
  surface.checked = state.view === "3d";
  surface.addEventListener("change", () => { state.view = surface.checked ? "3d" : "2d"; drawMap(); writeUrl(); });
  const basins = $("#basins");
  basins.checked = state.basins;
  basins.addEventListener("change", () => { state.basins = basins.checked; clearRace(); showMode(); writeUrl(); });
  const basinGrid = $("#basins-grid");
  basinGrid.max = catalog.limits.max_basin_grid;
  basinGrid.value = state.basinGrid;
  const gridNote = fieldNote(basinGrid);
  basinGrid.addEventListener("change", () => {
    const v = wholeNumber(basinGrid, 2, catalog.limits.max_basin_grid);
    refuse(basinGrid, gridNote, v === null
      ? `starts per side must be a whole number from 2 to ${catalog.limits.max_basin_grid} (kept ${state.basinGrid})` : "");
    if (v === null) return;
    state.basinGrid = v;
    clearRace();
    writeUrl();
  });
  showMode();
  const fan = $("#fan");
  fan.checked = state.fan;
  fan.addEventListener("change", () => { state.fan = fan.checked; clearRace(); drawMap(); writeUrl(); });
  $("#starts-clear").addEventListener("click", () => { state.starts = []; clearRace(); showStart(); drawMap(); writeUrl(); });
  $("#inspect").addEventListener("change", () => { state.inspect = $("#inspect").value; clearRace(); drawMap(); writeUrl(); });
  fillInspect();
  $("#race").addEventListener("click", runRace);
}

// Two boxes for the start's x and y, beside the map's click: a point in the landscape's
// domain (the API refuses one outside it), else refused with a note and the last start
// kept. They follow the start however it moves: whenever showStart (map.js) writes its label.
// The button beside them adds their point as another start (as a shift-click on the map
// does), from the keyboard too.
function buildStartBoxes() {
  const boxes = ["x", "y"].map((axis) => el("input", { type: "number", step: "any", "aria-label": `start ${axis}` }));
  const add = el("button", { id: "start-add", type: "button", title: "every optimizer also runs from this point" },
    "add as extra start");
  $("#start-label").closest(".row").after(el("div", { class: "row start-xy" }, "x", boxes[0], "y", boxes[1], add));
  const note = fieldNote(boxes[0]);
  const sync = () => {
    const point = state.start || defaultStart();
    boxes.forEach((box, i) => { box.value = point[i]; box.classList.remove("invalid"); refuse(box, note, ""); });
  };
  add.addEventListener("click", () => {
    const point = [];
    for (const [i, box] of boxes.entries()) {
      const [low, high] = currentLandscape().domain[i];
      const v = Number(box.value);
      if (box.value.trim() === "" || !Number.isFinite(v) || v < low || v > high) {
        refuse(box, note, `start ${"xy"[i]} must be a number from ${low} to ${high} (no start added)`);
        return;
      }
      point.push(v);
    }
    addExtraStart(point);
  });
  new MutationObserver(sync).observe($("#start-label"), { childList: true, characterData: true, subtree: true });
  boxes.forEach((box, i) => box.addEventListener("change", () => {
    const [low, high] = currentLandscape().domain[i];
    const point = (state.start || defaultStart()).slice();
    const v = Number(box.value);
    if (box.value.trim() === "" || !Number.isFinite(v) || v < low || v > high) {
      refuse(box, note, `start ${"xy"[i]} must be a number from ${low} to ${high} (kept ${point[i]})`);
      return;
    }
    point[i] = v;
    state.start = point;
    $("#map").dispatchEvent(new CustomEvent("start-moved"));  // the race of the old start is void
    showStart();  // (which refills the boxes)
    drawMap();
    writeUrl();
  }));
  sync();
}

// the step-by-step select: "off" and the optimizers of the race
export function fillInspect() {
  const select = $("#inspect");
  if (state.inspect && !state.selected.has(state.inspect)) state.inspect = "";
  select.textContent = "";
  select.append(el("option", { value: "", text: "off" }));
  for (const name of state.selected.keys()) select.append(el("option", { value: name, text: name }));
  select.value = state.inspect;
}

export function buildLandscapeParams() {
  const box = $("#landscape-params");
  box.textContent = "";
  for (const [key, value] of Object.entries(currentLandscape().params)) {
    if (!(key in state.params)) state.params[key] = value;
    const input = el("input", { type: "number", value: state.params[key], step: "any", "aria-label": key });
    input.addEventListener("change", () => {
      const v = Number(input.value);
      if (!Number.isFinite(v)) return;
      state.params[key] = v;
      landscapeChanged();
    });
    box.append(el("label", { class: "row" }, key, input));
  }
  // the catalog's description is of the landscape with its own parameters; with others it
  // comes with their grid (grid.js), or says they were refused
  const land = currentLandscape();
  const own = Object.entries(land.params).every(([k, v]) => state.params[k] === v);
  $("#landscape-desc").textContent = own ? land.description : "";
}


async function landscapeChanged() {
  state.starts = [];  // another domain: the extra starts may lie outside it
  clearRace();
  buildLandscapeParams();
  showStart();
  writeUrl();
  await loadGrid();
}
