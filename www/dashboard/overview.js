// The overview (`#/`): metric cards with the change against the previous
// period, the chart, the breakdown panels; a panel's details
// (`#/details/<dimension>`) and the realtime view (`#/realtime`).

import { h, $, number, percent, country, empty, safeDecode } from './dom.js';
import { api, apiCsv, scope, range, state, route, withParam, hashOf, DIMENSIONS } from './state.js';
import { chart, METRICS, formatMetric } from './chart.js';

/** The panels, each with its tabs (dimension, label). */
export const PANELS = [
  { id: 'pages', title: 'Pages', tabs: [['page', 'Top pages'], ['entry_page', 'Entry pages'], ['exit_page', 'Exit pages']] },
  {
    id: 'sources', title: 'Sources',
    tabs: [['source', 'Source'], ['referrer', 'Referrer'], ['utm_source', 'UTM source'],
      ['utm_medium', 'Medium'], ['utm_campaign', 'Campaign'], ['utm_term', 'Term'], ['utm_content', 'Content']],
  },
  { id: 'locations', title: 'Locations', tabs: [['country', 'Country'], ['region', 'Region'], ['city', 'City']] },
  { id: 'devices', title: 'Devices', tabs: [['browser', 'Browser'], ['os', 'OS'], ['device_type', 'Device type']] },
  { id: 'goals', title: 'Goals', tabs: [['event_name', 'Custom events']] },
];

// The tab each panel shows (kept while the page is open).
const tabs = Object.fromEntries(PANELS.map((p) => [p.id, p.tabs[0][0]]));

/** How a dimension's key reads. */
export function keyLabel(dim, key) {
  if (dim === 'country') return country(key);
  if (dim === 'page' || dim === 'entry_page' || dim === 'exit_page') return safeDecode(key);
  return key === '' ? '(none)' : key;
}

/** The hash that adds (or replaces) the filter `dim:value` and goes to the overview. */
export function filterHash(dim, value, path = '/') {
  const filters = route().filters.filter((f) => f.dim !== dim);
  filters.push({ dim, value });
  const r = route();
  return hashOf(path, filters, path === r.path ? [...r.params] : []);
}

/** The sessions list of the visits that have `dim:value` (besides the current filters). */
function sessionsHash(dim, value) {
  const filters = route().filters.filter((f) => f.dim !== dim);
  if (dim) filters.push({ dim, value });
  return hashOf('/sessions', filters);
}

/** The change from `before` to `now` in whole percent, or null without a base. */
export function change(now, before) {
  if (before == null || now == null) return null;
  if (before === 0) return now === 0 ? 0 : null;
  return Math.round(((now - before) / before) * 100);
}

export async function renderOverview(view) {
  const { filters, params } = route();
  const r = range();
  const metric = METRICS.some(([m]) => m === params.get('metric')) ? params.get('metric') : 'visits';
  const interval = ['hour', 'day'].includes(params.get('interval'))
    ? params.get('interval')
    : state.prefs.range === '24h' ? 'hour' : 'day';
  const compare = params.get('compare') !== 'off';
  const span = r.to - r.from;
  // Every read at once: visitors now, the cards, both periods' buckets,
  // the panels.
  const now = readNow();
  const [stats, series, before, ...lists] = await Promise.all([
    api('/v1/stats', scope(filters, { ...r, compare: 'previous_period' })),
    api('/v1/timeseries', scope(filters, { ...r, interval })),
    compare
      ? api('/v1/timeseries', scope(filters, { from: r.from - span, to: r.from, interval }))
      : null,
    ...PANELS.map((p) => breakdown(p, filters, r)),
  ]);
  const prev = stats.previous || {};
  const card = ([key, label]) => {
    const pct = change(stats[key], prev[key]);
    const better = key === 'bounce_rate' ? pct < 0 : pct > 0;
    return h('button', {
      type: 'button', class: 'card', 'data-metric': key, 'aria-pressed': String(key === metric),
      onclick: () => { location.hash = withParam('metric', key); },
    },
    h('span', { class: 'label' }, label),
    h('span', { class: 'value' }, formatMetric(key, stats[key])),
    h('span', {
      class: `change ${pct === null || pct === 0 ? 'flat' : better ? 'better' : 'worse'}`,
      'data-change': pct === null ? '' : String(pct),
      title: `Previous period: ${formatMetric(key, prev[key])}`,
    }, pct === null ? 'new' : `${pct > 0 ? '↑' : pct < 0 ? '↓' : '±'} ${Math.abs(pct)}%`,
    h('span', { class: 'sr' }, ` against the previous period (${formatMetric(key, prev[key])})`)));
  };
  // The panel's inner width: the page's less its padding and the panel's.
  const width = Math.max(280, (view.clientWidth || 960) - (window.innerWidth <= 600 ? 50 : 90));
  const noVisits = stats.visits === 0;
  return [
    h('section', { class: 'cards', 'aria-label': 'Totals' },
      nowCard(now),
      METRICS.map(card)),
    h('section', { class: 'panel chart-panel' },
      h('div', { class: 'panel-head' },
        h('h2', {}, `${METRICS.find(([m]) => m === metric)[1]} per ${interval}`),
        h('div', { class: 'controls' },
          h('div', { class: 'segmented', role: 'group', 'aria-label': 'Bucket size', id: 'interval' },
            ['hour', 'day'].map((i) => h('button', {
              type: 'button', 'data-interval': i, 'aria-pressed': String(i === interval),
              onclick: () => { location.hash = withParam('interval', i); },
            }, i === 'hour' ? 'Hours' : 'Days'))),
          h('label', { class: 'check' },
            h('input', {
              type: 'checkbox', id: 'compare', checked: compare,
              onchange: (e) => { location.hash = withParam('compare', e.target.checked ? null : 'off'); },
            }),
            'Previous period'),
          h('a', { href: sessionsHash(null), class: 'to-sessions' }, `${number.format(stats.visits)} session${stats.visits === 1 ? '' : 's'} →`))),
      noVisits
        ? empty(`No visits in this range${filters.length ? ' with these filters' : ''}. `
          + 'Try a longer range, remove a filter, or turn on "Include bots" (test browsers count as bots).')
        : null,
      chart({ buckets: series.buckets, previous: before && before.buckets, metric, interval, width })),
    h('section', { class: 'lists' }, PANELS.map((p, i) => panel(p, lists[i], filters, r))),
  ];
}

/** The rows of the panel's current tab. */
function breakdown(p, filters, r, limit = 10) {
  return api('/v1/breakdown', scope(filters, { ...r, dimension: tabs[p.id], limit }));
}

/** One panel: its tabs, its rows (each a filter), and the way to its details. */
function panel(p, answer, filters, r) {
  const body = h('div', { class: 'panel-body' });
  const fill = (rows) => body.replaceChildren(...rowsList(p, tabs[p.id], rows));
  const tabButtons = p.tabs.map(([dim, label]) => h('button', {
    type: 'button', 'data-dimension': dim, 'aria-pressed': String(dim === tabs[p.id]),
    onclick: async (e) => {
      tabs[p.id] = dim;
      for (const b of tabButtons) b.setAttribute('aria-pressed', String(b === e.currentTarget));
      more.href = hashOf(`/details/${dim}`, route().filters);
      body.dataset.state = 'loading';
      try {
        fill((await breakdown(p, filters, r)).rows);
        body.dataset.state = 'ready';
      } catch (err) {
        body.replaceChildren(h('p', { class: 'notice error' }, `Could not load: ${err.message}`));
        body.dataset.state = 'error';
      }
    },
  }, label));
  const more = h('a', { class: 'details', href: hashOf(`/details/${tabs[p.id]}`, filters) }, 'Details');
  fill(answer.rows);
  body.dataset.state = 'ready';
  return h('section', { class: 'panel list', id: `list-${p.id}`, 'data-panel': p.id },
    h('div', { class: 'panel-head' },
      h('h2', {}, p.title),
      more),
    p.tabs.length > 1
      ? h('div', { class: 'panel-tabs', role: 'group', 'aria-label': `${p.title} by` }, tabButtons)
      : null,
    body);
}

function rowsList(p, dim, rows) {
  const goals = dim === 'event_name';
  const max = Math.max(1, ...rows.map((x) => x.visits));
  const head = h('div', { class: 'list-head' },
    h('span', {}, DIMENSIONS[dim]),
    h('span', { class: 'cols' }, goals ? [h('span', {}, 'Visits'), h('span', {}, 'Conv.')] : 'Visits'));
  if (rows.length === 0) {
    return [head, empty(goals
      ? 'No custom events in this range. Send one with waymark(\'track\', name).'
      : ['country', 'region', 'city'].includes(dim)
        ? 'No locations in this range. They need a GeoIP database (WAYMARK_GEOIP).'
        : 'Nothing in this range')];
  }
  return [head, h('ol', {}, rows.map((x) => h('li', { 'data-key': x.key },
    h('span', { class: 'bar', style: `width:${(100 * x.visits) / max}%` }),
    h('button', {
      type: 'button', class: 'key', title: `Filter by ${DIMENSIONS[dim]}: ${x.key}`,
      onclick: () => { location.hash = filterHash(dim, x.key); },
    }, keyLabel(dim, x.key)),
    h('span', { class: 'cols' },
      h('a', { class: 'count', href: sessionsHash(dim, x.key), title: 'These sessions' }, number.format(x.visits)),
      goals ? h('span', { class: 'rate' }, percent(x.conversion_rate)) : null))))];
}

// ---- details ---------------------------------------------------------------

export async function renderDetails(view, dim) {
  const { filters } = route();
  const p = PANELS.find((x) => x.tabs.some(([d]) => d === dim));
  if (!p) return [h('div', { class: 'panel notice error' }, `No such panel: ${dim}. Go back to the overview.`)];
  const r = range();
  const { rows } = await api('/v1/breakdown', scope(filters, { ...r, dimension: dim, limit: 100 }));
  const goals = dim === 'event_name';
  const cols = [['visits', 'Visits'], ['visitors', 'Visitors'], ['page_views', 'Page views'],
    ['bounce_rate', 'Bounce rate'], ['avg_duration_ms', 'Avg. duration'],
    ...(goals ? [['events', 'Events'], ['conversion_rate', 'Conversion']] : [])];
  const status = h('span', { class: 'muted', role: 'status', id: 'export-status' });
  const exportCsv = async () => {
    status.textContent = 'Exporting…';
    try {
      const text = await apiCsv('/v1/breakdown', scope(filters, { ...r, dimension: dim, limit: 1000 }));
      const link = h('a', {
        href: URL.createObjectURL(new Blob([text], { type: 'text/csv' })),
        download: `waymark-${dim}-${new Date(r.from).toISOString().slice(0, 10)}-${new Date(r.to).toISOString().slice(0, 10)}.csv`,
      });
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 10e3);
      status.textContent = `Exported ${number.format(Math.max(0, text.trim().split('\n').length - 1))} rows.`;
    } catch (err) {
      status.textContent = `Export failed: ${err.message}. Try again.`;
    }
  };
  return [
    h('a', { class: 'back', href: hashOf('/', filters) }, '← Overview'),
    h('section', { class: 'panel details-panel', 'data-dimension': dim },
      h('div', { class: 'panel-head' },
        h('h2', {}, `${p.title}: ${DIMENSIONS[dim]}`),
        h('div', { class: 'controls' }, status,
          h('button', { type: 'button', id: 'export', class: 'button', onclick: exportCsv }, 'Export CSV'))),
      p.tabs.length > 1
        ? h('nav', { class: 'panel-tabs', 'aria-label': `${p.title} by` }, p.tabs.map(([d, label]) =>
          h('a', { href: hashOf(`/details/${d}`, filters), 'aria-current': d === dim ? 'page' : null }, label)))
        : null,
      rows.length === 0
        ? empty('Nothing in this range. Try a longer range or remove a filter.')
        : h('div', { class: 'table-wrap' }, h('table', { class: 'data details' },
          h('caption', { class: 'sr' }, `Top ${rows.length} by visits`),
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, DIMENSIONS[dim]),
            cols.map(([, label]) => h('th', { scope: 'col', class: 'num' }, label)))),
          h('tbody', {}, rows.map((x) => h('tr', { 'data-key': x.key },
            h('th', { scope: 'row' }, h('button', {
              type: 'button', class: 'key', title: 'Filter the dashboard by this',
              onclick: () => { location.hash = filterHash(dim, x.key); },
            }, keyLabel(dim, x.key))),
            cols.map(([c]) => h('td', { class: `num ${c}` }, c === 'visits'
              ? h('a', { href: sessionsHash(dim, x.key) }, number.format(x.visits))
              : c === 'events' ? number.format(x.events)
                : c === 'conversion_rate' ? percent(x.conversion_rate)
                  : formatMetric(c, x[c]))))))))),
  ];
}

// ---- realtime --------------------------------------------------------------

// The "visitors now" read of the overview drawn last (its card fills itself in).
let nowRead = Promise.resolve();

/** Settles once the last overview's "visitors now" card shows its number (or "–"). */
export const nowDrawn = () => nowRead;

function realtimeParams(limit) {
  return {
    site: state.prefs.site, include_bots: state.prefs.bots, limit,
    filter: route().filters.map((f) => `${f.dim}:${f.value}`),
  };
}

/** The "visitors now" read, sent at once; its failure shows as "–". */
function readNow() {
  const read = api('/v1/realtime', realtimeParams(1));
  read.catch(() => {});
  return read;
}

/** The "visitors now" card, filled in when `read` answers. */
function nowCard(read) {
  const value = h('span', { class: 'value', id: 'now-value' }, '…');
  nowRead = refreshNow(value, read);
  return h('a', { class: 'card now', href: hashOf('/realtime', route().filters), id: 'now-card' },
    h('span', { class: 'label' }, h('span', { class: 'pulse', 'aria-hidden': 'true' }), 'Visitors now'),
    value,
    h('span', { class: 'change flat' }, 'last 5 minutes'));
}

async function refreshNow(value, read = readNow()) {
  try {
    const now = await read;
    value.textContent = number.format(now.visitors);
    value.dataset.at = String(Date.now());
  } catch {
    value.textContent = '–';
  }
}

export async function renderRealtime() {
  const list = h('div', { class: 'panel-body' });
  const count = h('span', { class: 'value', id: 'now-value' });
  const stamp = h('span', { class: 'muted', id: 'realtime-at' });
  await fillRealtime(list, count, stamp);
  return [
    h('section', { class: 'panel realtime', id: 'realtime' },
      h('div', { class: 'panel-head' },
        h('h2', {}, h('span', { class: 'pulse', 'aria-hidden': 'true' }), 'Right now'),
        stamp),
      h('p', { class: 'big' }, count, ' visitors in the last 5 minutes'),
      list),
  ];
}

async function fillRealtime(list, count, stamp) {
  const now = await api('/v1/realtime', realtimeParams(100));
  count.textContent = number.format(now.visitors);
  stamp.textContent = `updated ${new Date().toLocaleTimeString('en-GB')}, every 10 s`;
  const max = Math.max(1, ...now.pages.map((x) => x.visitors));
  list.replaceChildren(
    h('div', { class: 'list-head' }, h('span', {}, 'Current page'), h('span', {}, 'Visitors')),
    now.pages.length === 0
      ? empty('Nobody is on the site right now.')
      : h('ol', {}, now.pages.map((x) => h('li', { 'data-key': x.key },
        h('span', { class: 'bar', style: `width:${(100 * x.visitors) / max}%` }),
        h('button', {
          type: 'button', class: 'key', onclick: () => { location.hash = filterHash('page', x.key); },
        }, keyLabel('page', x.key)),
        h('span', { class: 'cols' }, h('span', { class: 'count' }, number.format(x.visitors)))))));
}

/** Every 10 s: the "visitors now" card and the realtime view, where shown. */
export function tickRealtime() {
  if (!state.token || document.visibilityState === 'hidden') return;
  const card = $('#now-card .value');
  if (card) refreshNow(card);
  const live = $('#realtime');
  if (live) {
    fillRealtime(live.querySelector('.panel-body'), $('#now-value'), $('#realtime-at')).catch(() => {
      $('#realtime-at').textContent = 'could not refresh; retrying in 10 s';
    });
  }
}
