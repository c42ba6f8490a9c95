// Waymark dashboard: plain JS modules, no build step, reading the
// collector's read API with the admin token. The view lives in the URL's
// hash (`#/?filter=source:google.com&filter=device_type:mobile`), so a view
// can be shared and survives a reload; a filter click re-renders in place.
//
// Modules: dom.js (building elements as text, formatting), state.js (token,
// preferences, the hash, the read API), overview.js (cards, chart, panels,
// details, realtime), chart.js, people.js (sessions, timelines, profiles),
// funnel.js.

import { h, $, safeDecodeComponent } from './dom.js';
import {
  api, state, savePrefs, saveToken, route, withFilters, withScope, withScopeFilled, adoptScope,
  Unauthorized, Unreachable, DIMENSIONS,
} from './state.js';
import {
  renderOverview, renderDetails, renderRealtime, tickRealtime, keyLabel, nowDrawn,
} from './overview.js';
import { renderSessions, renderSession, renderProfile } from './people.js';
import { renderFunnel } from './funnel.js';

// ---- token -------------------------------------------------------------------

function showLogin(message) {
  saveToken(null);
  $('#login').hidden = false;
  document.body.classList.add('locked');
  const error = $('#login-error');
  error.hidden = !message;
  error.textContent = message || '';
  $('#token').value = '';
  $('#token').focus();
}

$('#login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const token = $('#token').value.trim();
  if (!token) return;
  saveToken(token);
  $('#login').hidden = true;
  document.body.classList.remove('locked');
  loadSites();
  render();
});

$('#forget').addEventListener('click', (e) => {
  e.preventDefault();
  $('#view').replaceChildren();
  showLogin();
});

// ---- site, range, bots (this browser's preferences, and in the hash) ---------------

function syncControls() {
  $('#site').value = state.prefs.site;
  $('#bots').checked = state.prefs.bots;
  for (const b of document.querySelectorAll('#range button')) {
    b.setAttribute('aria-pressed', String(b.dataset.range === state.prefs.range));
  }
}

// A change of scope goes into the hash, which draws the view again.
function prefsChanged() {
  savePrefs();
  syncControls();
  const next = withScope();
  if (next === location.hash) render();
  else location.hash = next;
}

$('#site').addEventListener('change', (e) => {
  state.prefs.site = e.target.value.trim();
  prefsChanged();
});
$('#bots').addEventListener('change', (e) => {
  state.prefs.bots = e.target.checked;
  prefsChanged();
});
$('#range').addEventListener('click', (e) => {
  const b = e.target.closest('button[data-range]');
  if (!b) return;
  state.prefs.range = b.dataset.range;
  prefsChanged();
});

/** Fills the site picker with the sites of recent sessions. */
async function loadSites() {
  try {
    const { sessions } = await api('/v1/sessions', { limit: 500 });
    const sites = [...new Set(sessions.map((x) => x.site))].sort();
    $('#sites').replaceChildren(...sites.map((site) => h('option', { value: site })));
  } catch {
    // The picker is a convenience; typing a site works without it.
  }
}

// ---- filter chips ------------------------------------------------------------------

function drawChips(shown) {
  const { filters } = route();
  const bar = $('#chips');
  bar.hidden = !shown || filters.length === 0;
  if (bar.hidden) return bar.replaceChildren();
  const chip = (f, i) => h('li', { class: 'chip', 'data-filter': `${f.dim}:${f.value}` },
    h('span', { class: 'dim' }, DIMENSIONS[f.dim]),
    h('span', { class: 'is' }, ' is '),
    h('strong', { class: 'val' }, keyLabel(f.dim, f.value)),
    h('button', {
      type: 'button', class: 'remove', 'aria-label': `Remove filter ${DIMENSIONS[f.dim]} is ${f.value}`,
      onclick: () => { location.hash = withFilters(filters.filter((_, j) => j !== i)); },
    }, '×'));
  bar.replaceChildren(
    h('span', { class: 'muted' }, 'Filtered by'),
    h('ul', {}, filters.map(chip)),
    ...(filters.length > 1
      ? [h('button', { type: 'button', class: 'clear', onclick: () => { location.hash = withFilters([]); } }, 'Clear all')]
      : []));
}

// ---- routing -------------------------------------------------------------------

const ROUTES = [
  [/^\/sessions\/([^/]+)$/, 'sessions', 'session', ([id]) => renderSession(id)],
  [/^\/sessions$/, 'sessions', 'sessions', () => renderSessions(render)],
  [/^\/visitors\/([^/]+)$/, 'sessions', 'profile', ([id]) => renderProfile('visitor', id)],
  [/^\/users\/([^/]+)$/, 'sessions', 'profile', ([id]) => renderProfile('user', id)],
  [/^\/details\/([a-z_]+)$/, 'overview', 'details', ([dim], view) => renderDetails(view, dim)],
  [/^\/realtime$/, 'overview', 'realtime', () => renderRealtime()],
  [/^\/funnels$/, 'funnels', 'funnels', () => renderFunnel()],
  [/^\/?$/, 'overview', 'overview', (_, view) => renderOverview(view)],
];

function render() {
  if (!state.token) return showLogin();
  // A shared link's scope becomes this browser's; the address bar then
  // carries the whole scope, whatever a typed or older link left out.
  if (adoptScope(route())) syncControls();
  const filled = withScopeFilled();
  if (filled !== location.hash) history.replaceState(null, '', filled);
  const { path } = route();
  const view = $('#view');
  const generation = ++state.generation;
  const found = ROUTES.find(([re]) => re.test(path));
  const fail = (message) => {
    view.replaceChildren(h('div', { class: 'panel notice error', role: 'alert' }, message));
    view.dataset.state = 'error';
    view.dataset.drawn = String(generation);
  };
  if (!found) {
    drawChips(false);
    return fail('There is no such view. Use the tabs above, or go back to the overview.');
  }
  const [re, tab, name, draw] = found;
  // A link cut short or typed by hand may not decode: say so, do not throw.
  const ids = path.match(re).slice(1).map(safeDecodeComponent);
  for (const a of document.querySelectorAll('.tabs a')) {
    a.classList.toggle('active', a.dataset.tab === tab);
    if (a.dataset.tab === tab) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.body.dataset.view = name;
  drawChips(['overview', 'details', 'sessions', 'realtime', 'funnels'].includes(name));
  if (ids.includes(null)) {
    return fail(`This address is not a valid ${name === 'profile' ? 'profile' : 'session'} link. Pick a session from the list.`);
  }
  view.dataset.state = 'loading';
  if (!view.firstChild) view.append(h('p', { class: 'loading' }, 'Loading…'));
  draw(ids, view)
    .then((nodes) => {
      if (generation !== state.generation) return;
      view.replaceChildren(...nodes);
      view.dataset.state = 'ready';
      view.dataset.drawn = String(generation);
      // Complete once every read is drawn, the overview's "visitors now" too:
      // the mark the benchmark times (bench/src/dashboard.rs).
      (name === 'overview' ? nowDrawn() : Promise.resolve()).then(() => {
        if (generation !== state.generation) return;
        performance.mark('waymark:view-ready', { detail: { view: name, generation } });
      });
    })
    .catch((err) => {
      if (generation !== state.generation) return;
      if (err instanceof Unauthorized) {
        view.replaceChildren();
        return showLogin('That token was refused. Enter the admin token again.');
      }
      const advice = err instanceof Unreachable ? ''
        : route().filters.length ? ' Remove a filter, or reload the page.' : ' Reload the page, or pick another range.';
      fail(`Could not load: ${err.message}.${advice}`.replace('..', '.'));
    });
}

window.addEventListener('hashchange', render);

// ---- start -------------------------------------------------------------------------------

syncControls();
if (state.token) {
  loadSites();
  render();
} else {
  showLogin();
}
setInterval(tickRealtime, 10e3);
// The chart is drawn for the page's width: draw it again once resizing stops.
let resizing = null;
let lastWidth = window.innerWidth;
window.addEventListener('resize', () => {
  clearTimeout(resizing);
  resizing = setTimeout(() => {
    if (window.innerWidth === lastWidth) return;
    lastWidth = window.innerWidth;
    if (document.body.dataset.view === 'overview' && state.token) render();
  }, 250);
});
