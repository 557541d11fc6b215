/* optimlab playground: plain JavaScript, no build step.
 *
 * Everything shown comes from the JSON API of this server (/api/...): the landscapes, the
 * optimizers' metadata and hyperparameter ranges, races and stored sweeps. Plotly and KaTeX
 * are served by this server too. The whole configuration lives in the URL's query string,
 * so a link reproduces it.
 *
 * This file is the entry point (an ES module, loaded by index.html): it fetches the catalog,
 * builds the page and wires it up. The rest lives in js/:
 *   config.js    fixed settings: grid size, animation length, default optimizers, plot look
 *   dom.js       $ and el, the status line and the message
 *   format.js    how numbers and hyperparameters are written
 *   api.js       the JSON API client
 *   state.js     the configuration (state), the server's catalog, the last race (live)
 *   url.js       state <-> the query string
 *   controls.js  the Race tab's left panel: landscape, settings, optimizers, hyperparameters
 *   map.js       the Plotly map: contours or 3-D surface, minima, start, paths; map clicks
 *   loss.js      the loss-vs-step chart
 *   race.js      running a race, the results table, the animation and the scrubber
 *   basins.js    the basins view: every optimizer from every start of a grid
 *   info.js      the optimizer cards (KaTeX update rules), and the "?" dialog
 *   runs.js      the Runs tab: tab switching, stored sweeps and their charts
 *   slices.js    the Slices tab: real networks' loss-landscape slices (optimlab slice)
 */

import { DEFAULT_OPTIMIZERS } from "./js/config.js";
import { $, READY, setStatus, showMessage } from "./js/dom.js";
import { api } from "./js/api.js";
import { state, catalog, currentLandscape, normaliseSelection } from "./js/state.js";
import { readUrl, writeUrl } from "./js/url.js";
import { buildLandscapeControls, buildLandscapeParams, buildOptimizers } from "./js/controls.js";
import { loadGrid, showStart } from "./js/map.js";
import { bindPlayer, runRace } from "./js/race.js";
import { bindAbout, renderInfo } from "./js/info.js";
import { showTab, tabKeys, TABS } from "./js/runs.js";

// The catalog is fetched at once (this script runs before Plotly is parsed); drawing waits
// for the page's scripts.
const booting = Promise.all([api("/api/limits"), api("/api/landscapes"), api("/api/optimizers")]);

async function init() {
  let limits, landscapes, optimizers;
  try {
    [limits, landscapes, optimizers] = await booting;
  } catch (err) {
    setStatus("the server did not answer");
    showMessage(err.message);
    return;
  }
  performance.mark("catalog-loaded");
  catalog.limits = limits;
  for (const l of landscapes) catalog.landscapes.set(l.name, l);
  for (const o of optimizers) catalog.optimizers.set(o.name, o);
  const link = readUrl();  // (a landscape it does not know falls back to the first, noted)
  state.params = { ...currentLandscape().params, ...state.params };
  // a link without o= gets the default optimizers; one with a lone o= chose none
  if (!link.optimizers) for (const name of DEFAULT_OPTIMIZERS) state.selected.set(name, {});
  // the optimizer shown step by step must be one of the race
  if (state.inspect && !state.selected.has(state.inspect)) {
    link.notes.push(`insp=${state.inspect} is not one of the optimizers chosen`);
    state.inspect = "";
  }
  showLinkNotes(link.notes);
  normaliseSelection();
  buildLandscapeControls();
  buildLandscapeParams();
  buildOptimizers();
  renderInfo();
  showStart();
  bindPlayer();
  bindAbout();
  for (const name of TABS) {
    $(`#tab-${name}`).addEventListener("click", () => showTab(name));
    $(`#tab-${name}`).addEventListener("keydown", tabKeys);
  }
  writeUrl();
  if (await loadGrid()) setStatus(READY);
  document.body.dataset.ready = "1";
  if (state.tab !== "race") showTab(state.tab);
  if (link.race) runRace();
}

// What of the link was not taken (seed=2.5, alpha=0, ...): said above the page, since the
// page shows the defaults kept instead.
function showLinkNotes(notes) {
  const box = $("#link-note");
  box.textContent = notes.length ? `Not taken from this link (the defaults kept): ${notes.join("; ")}.` : "";
  box.hidden = !notes.length;
}

document.addEventListener("DOMContentLoaded", init);
