// Waymark dashboard: plain JS, no build step, reading the collector's read
// API with the admin token.
//
// Everything that comes from visitors (URLs, titles, names, props) reaches
// the page only as text: elements are built with createElement and filled
// with text nodes, never with innerHTML.
'use strict';

const TOKEN_KEY = 'waymark.dashboard.token';
const PREFS_KEY = 'waymark.dashboard.prefs';
const HOUR = 3600e3;
const DAY = 24 * HOUR;
const RANGES = { '24h': DAY, '7d': 7 * DAY, '30d': 30 * DAY };
const PAGE_SIZE = 25;

const state = {
  token: localStorage.getItem(TOKEN_KEY),
  prefs: loadPrefs(),
  // Cursors of the sessions pages seen so far: pages[i] opens page i.
  pages: [null],
  page: 0,
  // Bumped on every render so that a late answer cannot draw over a newer view.
  generation: 0,
};

function loadPrefs() {
  const defaults = { site: '', range: '7d', bots: false };
  try {
    const saved = JSON.parse(localStorage.getItem(PREFS_KEY) || '{}');
    return {
      site: typeof saved.site === 'string' ? saved.site : defaults.site,
      range: saved.range in RANGES ? saved.range : defaults.range,
      bots: saved.bots === true,
    };
  } catch {
    return defaults;
  }
}

function savePrefs() {
  localStorage.setItem(PREFS_KEY, JSON.stringify(state.prefs));
}

// ---- DOM helpers: text only --------------------------------------------

/** An element with attributes (`on…` are listeners) and children (strings become text). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  el.append(...children.flat().filter((c) => c != null && c !== false).map(String2Node));
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  el.append(...children.flat().filter((c) => c != null && c !== false).map(String2Node));
  return el;
}

function String2Node(c) {
  return c instanceof Node ? c : document.createTextNode(String(c));
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    // Through the CSSOM: the page's policy (style-src 'self') refuses
    // style attributes, not styles set from a script it allows.
    else if (k === 'style') el.style.cssText = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

const $ = (sel) => document.querySelector(sel);

// ---- formatting ----------------------------------------------------------

const number = new Intl.NumberFormat('en');
const dateTime = new Intl.DateTimeFormat('en-GB', {
  day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit',
});
const clock = new Intl.DateTimeFormat('en-GB', {
  hour: '2-digit', minute: '2-digit', second: '2-digit',
});
const dayLabel = new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'short' });
const hourLabel = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit' });
let regionNames = null;
try {
  regionNames = new Intl.DisplayNames(['en'], { type: 'region' });
} catch {
  // Older browsers: show the code alone.
}

function duration(ms) {
  if (ms == null) return '–';
  const total = Math.round(ms / 1000);
  if (total < 60) return `${total}s`;
  const m = Math.floor(total / 60);
  if (m < 60) return `${m}m ${String(total % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

function offset(ms) {
  if (ms < 1000) return `+${ms} ms`;
  return `+${duration(ms)}`;
}

function country(code) {
  if (!code) return 'Unknown';
  let name = null;
  try {
    name = regionNames && regionNames.of(code);
  } catch {
    // Not a region code: show it as it is.
  }
  return name && name !== code ? `${name} (${code})` : code;
}

/**
 * A URL as its path (with its query unless `pathOnly`), the way people read
 * pages; the full URL goes in the tooltip.
 */
function page(url, pathOnly) {
  if (!url) return '–';
  try {
    const u = new URL(url);
    return safeDecode(u.pathname) + (pathOnly ? '' : u.search + u.hash);
  } catch {
    return url;
  }
}

/** decodeURIComponent, or null for a malformed escape. */
function safeDecodeComponent(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}

function safeDecode(text) {
  try {
    return decodeURI(text);
  } catch {
    return text;
  }
}

function device(session) {
  return [session.device_type, session.browser, session.os].filter(Boolean).join(' · ') || 'Unknown';
}

function parseJson(text) {
  if (text == null || typeof text === 'object') return text;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

// ---- the read API ----------------------------------------------------------

class Unauthorized extends Error {}

async function api(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) {
    if (v !== '' && v != null) url.searchParams.set(k, String(v));
  }
  const res = await fetch(url, { headers: { Authorization: `Bearer ${state.token}` } });
  if (res.status === 401) throw new Unauthorized();
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    throw new Error((body && (body.message || body.error)) || `${res.status} ${res.statusText}`);
  }
  return body;
}

function range() {
  const to = Date.now();
  return { from: to - RANGES[state.prefs.range], to };
}

// ---- token -------------------------------------------------------------------

function showLogin(message) {
  state.token = null;
  localStorage.removeItem(TOKEN_KEY);
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
  state.token = token;
  localStorage.setItem(TOKEN_KEY, token);
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

// ---- filters -------------------------------------------------------------------

function syncFilters() {
  $('#site').value = state.prefs.site;
  $('#bots').checked = state.prefs.bots;
  for (const b of document.querySelectorAll('#range button')) {
    b.setAttribute('aria-pressed', String(b.dataset.range === state.prefs.range));
  }
}

function filtersChanged() {
  savePrefs();
  syncFilters();
  state.pages = [null];
  state.page = 0;
  render();
}

$('#site').addEventListener('change', (e) => {
  state.prefs.site = e.target.value.trim();
  filtersChanged();
});
$('#bots').addEventListener('change', (e) => {
  state.prefs.bots = e.target.checked;
  filtersChanged();
});
$('#range').addEventListener('click', (e) => {
  const b = e.target.closest('button[data-range]');
  if (!b) return;
  state.prefs.range = b.dataset.range;
  filtersChanged();
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

// ---- routing -------------------------------------------------------------------

function render() {
  if (!state.token) return showLogin();
  const path = location.hash.replace(/^#/, '') || '/';
  const session = path.match(/^\/sessions\/(.+)$/);
  // A link cut short or typed by hand may not decode: say so, do not throw.
  const sessionId = session ? safeDecodeComponent(session[1]) : null;
  const tab = session || path.startsWith('/sessions') ? 'sessions' : 'overview';
  for (const a of document.querySelectorAll('.tabs a')) {
    a.classList.toggle('active', a.dataset.tab === tab);
  }
  document.body.dataset.view = session ? 'session' : tab;
  const generation = ++state.generation;
  const view = $('#view');
  if (session && sessionId === null) {
    view.replaceChildren(h('div', { class: 'panel notice error' },
      'This address is not a valid session link. Pick a session from the list.'));
    view.dataset.state = 'error';
    return;
  }
  view.dataset.state = 'loading';
  const draw = session
    ? renderSession(sessionId)
    : tab === 'sessions' ? renderSessions() : renderOverview();
  draw
    .then((nodes) => {
      if (generation !== state.generation) return;
      view.replaceChildren(...nodes);
      view.dataset.state = 'ready';
    })
    .catch((err) => {
      if (generation !== state.generation) return;
      if (err instanceof Unauthorized) {
        view.replaceChildren();
        return showLogin('That token was refused. Enter the admin token again.');
      }
      view.replaceChildren(h('div', { class: 'panel notice error' }, `Could not load: ${err.message}`));
      view.dataset.state = 'error';
    });
}

window.addEventListener('hashchange', render);

// ---- overview --------------------------------------------------------------------

async function renderOverview() {
  const stats = await api('/v1/stats', {
    site: state.prefs.site,
    ...range(),
    include_bots: state.prefs.bots,
  });
  const card = (metric, label, value) =>
    h('div', { class: 'card', 'data-metric': metric },
      h('div', { class: 'label' }, label),
      h('div', { class: 'value' }, value));
  return [
    h('section', { class: 'cards' },
      card('visits', 'Visits', number.format(stats.visits)),
      card('visitors', 'Visitors', number.format(stats.visitors)),
      card('page_views', 'Page views', number.format(stats.page_views)),
      card('bounce_rate', 'Bounce rate', `${Math.round(stats.bounce_rate * 100)}%`),
      card('avg_duration', 'Avg. duration', duration(stats.avg_duration_ms))),
    h('section', { class: 'panel chart-panel' },
      h('div', { class: 'panel-head' },
        h('h2', {}, 'Visits over time'),
        h('span', { class: 'muted' }, `per ${stats.interval}, ${state.prefs.bots ? 'bots included' : 'bots left out'}`)),
      chart(stats.visits_over_time, stats.interval)),
    h('section', { class: 'lists' },
      topList('Top pages', 'Page', stats.top_pages, page, (k) => k, 'pages'),
      topList('Sources', 'Source', stats.sources, (k) => k, null, 'sources'),
      topList('Countries', 'Country', stats.countries, country, null, 'countries')),
  ];
}

function topList(title, what, rows, label, tooltip, id) {
  const max = Math.max(1, ...rows.map((r) => r.count));
  return h('div', { class: 'panel list', id: `list-${id}` },
    h('div', { class: 'panel-head' }, h('h2', {}, title)),
    h('div', { class: 'list-head' }, h('span', {}, what), h('span', {}, 'Count')),
    rows.length === 0
      ? h('p', { class: 'empty' }, 'Nothing in this range')
      : h('ol', {}, rows.map((r) =>
        h('li', { title: tooltip ? tooltip(r.key) : null },
          h('span', { class: 'bar', style: `width:${(100 * r.count) / max}%` }),
          h('span', { class: 'key' }, label(r.key)),
          h('span', { class: 'count' }, number.format(r.count))))));
}

/** Bars of visits per bucket, with a light grid and sparse time labels. */
function chart(points, interval) {
  const width = Math.max(320, ($('#view').clientWidth || 960) - 48);
  const height = 240;
  const pad = { left: 40, right: 8, top: 12, bottom: 28 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const peak = Math.max(0, ...points.map((p) => p.visits));
  const top = niceCeiling(peak);
  const y = (v) => pad.top + innerH - (innerH * v) / top;
  const slot = innerW / Math.max(1, points.length);
  const barW = Math.max(2, Math.min(36, slot * 0.7));
  const every = Math.ceil(points.length / Math.max(1, Math.floor(innerW / 70)));
  const fmt = interval === 'hour' ? hourLabel : dayLabel;

  const ticks = [0, top / 2, top].filter((t, i, all) => Number.isInteger(t) && all.indexOf(t) === i);
  return s('svg', {
    class: 'chart', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-label': `Visits per ${interval}`,
  },
  ticks.map((t) => s('g', { class: 'tick' },
    s('line', { x1: pad.left, x2: width - pad.right, y1: y(t), y2: y(t) }),
    s('text', { x: pad.left - 8, y: y(t) + 4, 'text-anchor': 'end' }, number.format(t)))),
  points.map((p, i) => {
    const x = pad.left + i * slot + (slot - barW) / 2;
    const bh = Math.max(p.visits > 0 ? 2 : 0, (innerH * p.visits) / top);
    return s('g', { class: 'bucket' },
      s('rect', { class: 'hit', x: pad.left + i * slot, y: pad.top, width: slot, height: innerH }),
      s('rect', { class: 'bar', x, y: pad.top + innerH - bh, width: barW, height: bh, rx: Math.min(3, barW / 2) }),
      s('title', {}, `${dateTime.format(p.start)}: ${number.format(p.visits)} visit${p.visits === 1 ? '' : 's'}`),
      i % every === 0
        ? s('text', { class: 'x', x: pad.left + i * slot + slot / 2, y: height - 8, 'text-anchor': 'middle' }, fmt.format(p.start))
        : null);
  }));
}

function niceCeiling(v) {
  if (v <= 2) return 2;
  const step = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
    const c = m * step;
    if (c >= v && Number.isInteger(c / 2)) return c;
  }
  return 10 * step;
}

// ---- sessions list -----------------------------------------------------------------

async function renderSessions() {
  const { from } = range();
  const { sessions, next_cursor: next } = await api('/v1/sessions', {
    site: state.prefs.site,
    from,
    is_bot: state.prefs.bots ? '' : 'false',
    limit: PAGE_SIZE,
    cursor: state.pages[state.page],
  });
  state.pages[state.page + 1] = next;
  const go = (delta) => () => {
    state.page += delta;
    render();
  };
  const rows = sessions.map((x) => {
    const href = `#/sessions/${encodeURIComponent(x.session_id)}`;
    return h('tr', {
      class: 'session-row', 'data-session': x.session_id,
      onclick: (e) => { if (!e.target.closest('a')) location.hash = href; },
    },
    h('td', { class: 'when' },
      h('a', { href }, dateTime.format(x.started_at)),
      x.is_bot ? h('span', { class: 'badge bot', title: 'Flagged as a bot' }, 'bot') : null),
    h('td', { class: 'url landing', title: x.landing_page }, page(x.landing_page, true)),
    h('td', { class: 'url exit', title: x.exit_page }, page(x.exit_page, true)),
    h('td', { class: 'source' }, x.source || 'direct'),
    h('td', { class: 'num duration' }, duration(x.duration_ms)),
    h('td', { class: 'country' }, country(x.country)),
    h('td', { class: 'device' }, device(x)),
    h('td', { class: 'num events' }, number.format(x.event_count)));
  });
  const first = state.page * PAGE_SIZE + 1;
  return [
    h('section', { class: 'panel' },
      h('div', { class: 'panel-head' },
        h('h2', {}, 'Sessions'),
        h('span', { class: 'muted' }, sessions.length
          ? `${first}–${first + sessions.length - 1}, newest first`
          : '')),
      sessions.length === 0
        ? h('p', { class: 'empty' }, 'No sessions in this range')
        : h('div', { class: 'table-wrap' }, h('table', { class: 'sessions' },
          h('thead', {}, h('tr', {},
            ['Started', 'Landing page', 'Exit page', 'Source', 'Duration', 'Country', 'Device', 'Events']
              .map((c, i) => h('th', { class: i === 4 || i === 7 ? 'num' : null }, c)))),
          h('tbody', {}, rows))),
      h('div', { class: 'pager' },
        h('button', { type: 'button', id: 'newer', disabled: state.page === 0, onclick: go(-1) }, '← Newer'),
        h('button', { type: 'button', id: 'older', disabled: !next, onclick: go(1) }, 'Older →'))),
  ];
}

// ---- one session ---------------------------------------------------------------------

async function renderSession(id) {
  // The picked site's session; without one, the session of the one site
  // that has this id (the collector asks for a site when two do).
  const x = await api(`/v1/sessions/${encodeURIComponent(id)}`, { site: state.prefs.site });
  const fact = (label, value, cls) =>
    h('div', { class: `fact ${cls || ''}` }, h('dt', {}, label), h('dd', {}, value));
  const place = [x.city, x.region].filter(Boolean).join(', ');
  return [
    h('a', { class: 'back', href: '#/sessions' }, '← All sessions'),
    h('section', { class: 'panel session-head' },
      h('div', { class: 'panel-head' },
        h('h2', {}, `Session on ${dateTime.format(x.started_at)}`,
          x.is_bot ? h('span', { class: 'badge bot' }, 'bot') : null),
        h('span', { class: `badge ${x.ended_at ? 'ended' : 'open'}` },
          x.ended_at ? `ended: ${x.end_reason || 'yes'}` : 'active')),
      h('dl', { class: 'facts' },
        fact('Duration', duration(x.duration_ms)),
        fact('Page views', number.format(x.page_views)),
        fact('Events', number.format(x.event_count)),
        fact('Source', x.source || 'direct'),
        fact('Country', country(x.country) + (place ? ` — ${place}` : '')),
        fact('Device', device(x)),
        fact('Landing page', page(x.landing_page), 'url'),
        fact('Exit page', page(x.exit_page), 'url'),
        fact('Visitor', `${x.visitor_id}${x.session_index ? ` (visit ${x.session_index})` : ''}`, 'mono'),
        fact('User', x.user_id || '–', 'mono'),
        fact('Site', x.site),
        fact('Session', x.session_id, 'mono'))),
    timeline(id, x),
  ];
}

/** The session's events, a page at a time: "More events" fetches the next. */
function timeline(id, x) {
  const start = x.events.length ? x.events[0].ts : x.started_at;
  let last = null;
  let shown = 0;
  const count = h('span', { class: 'muted' });
  const list = h('ol', { class: 'timeline' });
  const more = h('button', { type: 'button', id: 'more-events' }, 'More events');
  let cursor = null;
  const add = (page) => {
    list.append(...page.events.map((e) => {
      const item = timelineItem(e, start, last);
      last = e;
      return item;
    }));
    shown += page.events.length;
    cursor = page.next_cursor;
    count.textContent = `${number.format(shown)} events${cursor ? ' so far' : ''}`;
    more.hidden = !cursor;
  };
  more.onclick = async () => {
    more.disabled = true;
    try {
      add(await api(`/v1/sessions/${encodeURIComponent(id)}`, { site: x.site, cursor }));
    } finally {
      more.disabled = false;
    }
  };
  add(x);
  return h('section', { class: 'panel' },
    h('div', { class: 'panel-head' }, h('h2', {}, 'Timeline'), count),
    list,
    h('div', { class: 'pager' }, more));
}

/** One event; its page's title and URL only where the page changes. */
function timelineItem(e, start, previous) {
  const samePage = previous && e.type !== 'page_view' && previous.url === e.url;
  const props = parseJson(e.props) || {};
  const entries = Object.entries(props).slice(0, 8);
  return h('li', { class: `event type-${e.type}`, 'data-type': e.type },
    h('div', { class: 'time' },
      h('span', { class: 'clock' }, clock.format(e.ts)),
      h('span', { class: 'offset' }, offset(e.ts - start))),
    h('div', { class: 'dot' }),
    h('div', { class: 'body' },
      h('div', { class: 'line1' },
        h('span', { class: 'type' }, e.type.replace('_', ' ')),
        e.name ? h('strong', { class: 'name' }, e.name) : null),
      e.title && !samePage ? h('div', { class: 'title' }, e.title) : null,
      e.url && !samePage ? h('div', { class: 'url', title: e.url }, e.url) : null,
      entries.length
        ? h('div', { class: 'props' }, entries.map(([k, v]) =>
          h('span', { class: 'prop' }, h('b', {}, k), ' ',
            typeof v === 'string' ? v : JSON.stringify(v))))
        : null));
}

// ---- start -------------------------------------------------------------------------------

syncFilters();
if (state.token) {
  loadSites();
  render();
} else {
  showLogin();
}
// The chart is drawn for the page's width: draw it again once resizing stops.
let resizing = null;
window.addEventListener('resize', () => {
  clearTimeout(resizing);
  resizing = setTimeout(() => {
    if (document.body.dataset.view === 'overview' && state.token) render();
  }, 250);
});
