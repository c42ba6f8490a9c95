// Sessions and people: the sessions list (`#/sessions`), one session's
// timeline (`#/sessions/<id>`), and a person's profile (`#/visitors/<id>`,
// `#/users/<id>`) with every visit.

import {
  h, number, dateTime, fullDate, clock, duration, offset, country, page, device, parseJson, empty,
} from './dom.js';
import { api, range, route, state, hashOf } from './state.js';

const PAGE_SIZE = 25;

// Cursors of the sessions pages seen so far (pages[i] opens page i), for the
// list they were read for.
const paging = { key: null, pages: [null], page: 0 };

/** The link to a session's timeline. */
export function sessionHref(x) {
  return hashOf(`/sessions/${encodeURIComponent(x.session_id)}`, [], x.site ? [['site', x.site]] : []);
}

/** A link to a visitor's or a user's profile, showing the id. */
export function personLink(kind, id) {
  if (!id) return '–';
  return h('a', {
    class: `person ${kind}`, href: `#/${kind}s/${encodeURIComponent(id)}`,
    title: `Every visit of this ${kind}`,
  }, id);
}

export async function renderSessions(rerender) {
  const { filters } = route();
  const key = JSON.stringify([filters, state.prefs]);
  if (paging.key !== key) Object.assign(paging, { key, pages: [null], page: 0 });
  const { from, to } = range();
  const { sessions, next_cursor: next } = await api('/v1/sessions', {
    site: state.prefs.site,
    from,
    to,
    is_bot: state.prefs.bots ? '' : 'false',
    filter: filters.map((f) => `${f.dim}:${f.value}`),
    limit: PAGE_SIZE,
    cursor: paging.pages[paging.page],
  });
  paging.pages[paging.page + 1] = next;
  const go = (delta) => () => {
    paging.page += delta;
    rerender();
  };
  const first = paging.page * PAGE_SIZE + 1;
  return [
    h('section', { class: 'panel' },
      h('div', { class: 'panel-head' },
        h('h2', {}, 'Sessions'),
        h('span', { class: 'muted' }, sessions.length
          ? `${first}–${first + sessions.length - 1}, newest first`
          : '')),
      sessions.length === 0
        ? empty(`No sessions in this range${filters.length ? ' with these filters' : ''}. `
          + 'Try a longer range, remove a filter, or turn on "Include bots".')
        : sessionsTable(sessions, true),
      h('div', { class: 'pager' },
        h('button', { type: 'button', id: 'newer', disabled: paging.page === 0, onclick: go(-1) }, '← Newer'),
        h('button', { type: 'button', id: 'older', disabled: !next, onclick: go(1) }, 'Older →'))),
  ];
}

/** Sessions as a table; each opens its timeline, each person id its profile. */
function sessionsTable(sessions, withPeople) {
  const heads = ['Started', 'Landing page', 'Exit page', 'Source', 'Duration', 'Country', 'Device', 'Events',
    ...(withPeople ? ['Visitor', 'User'] : [])];
  const tbody = h('tbody', {});
  const add = (list) => tbody.append(...list.map((x) => {
    const href = sessionHref(x);
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
    h('td', { class: 'num events' }, number.format(x.event_count)),
    withPeople ? h('td', { class: 'id visitor' }, personLink('visitor', x.visitor_id)) : null,
    withPeople ? h('td', { class: 'id user' }, personLink('user', x.user_id)) : null);
  }));
  add(sessions);
  const wrap = h('div', { class: 'table-wrap' }, h('table', { class: 'sessions' },
    h('thead', {}, h('tr', {}, heads.map((c, i) => h('th', { scope: 'col', class: i === 4 || i === 7 ? 'num' : null }, c)))),
    tbody));
  wrap.add = add;
  return wrap;
}

// ---- one session ---------------------------------------------------------------------

export async function renderSession(id) {
  // The session of the site in the link; without one, the picked site's; without
  // that, the one site that has this id (the collector asks for a site when two do).
  const site = route().params.get('site') || state.prefs.site;
  const x = await api(`/v1/sessions/${encodeURIComponent(id)}`, { site });
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
        fact('Visitor', [personLink('visitor', x.visitor_id),
          x.session_index ? ` (visit ${x.session_index})` : ''], 'mono'),
        fact('User', personLink('user', x.user_id), 'mono'),
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
  const add = (answer) => {
    list.append(...answer.events.map((e) => {
      const item = timelineItem(e, start, last);
      last = e;
      return item;
    }));
    shown += answer.events.length;
    cursor = answer.next_cursor;
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

// ---- a person ------------------------------------------------------------------------

/** `kind` is `visitor` or `user`. */
export async function renderProfile(kind, id) {
  const path = `/v1/${kind}s/${encodeURIComponent(id)}`;
  const p = await api(path, { limit: PAGE_SIZE });
  const linked = kind === 'visitor' ? p.user_ids || [] : p.visitor_ids || [];
  const fact = (label, value, cls) =>
    h('div', { class: `fact ${cls || ''}`, 'data-fact': label.toLowerCase().replace(/ /g, '_') },
      h('dt', {}, label), h('dd', {}, value));
  const table = sessionsTable(p.sessions, false);
  const more = h('button', { type: 'button', id: 'more-sessions', hidden: !p.next_cursor }, 'More sessions');
  let cursor = p.next_cursor;
  more.onclick = async () => {
    more.disabled = true;
    try {
      const next = await api(path, { limit: PAGE_SIZE, cursor });
      table.add(next.sessions);
      cursor = next.next_cursor;
      more.hidden = !cursor;
    } finally {
      more.disabled = false;
    }
  };
  return [
    h('a', { class: 'back', href: '#/sessions' }, '← All sessions'),
    h('section', { class: 'panel profile', 'data-kind': kind },
      h('div', { class: 'panel-head' },
        h('h2', {}, kind === 'visitor' ? 'Visitor' : 'User', ' ', h('code', { class: 'who' }, id)),
        h('span', { class: 'muted' }, 'every site, bots included')),
      h('dl', { class: 'facts' },
        fact('First seen', fullDate.format(p.first_seen)),
        fact('Last seen', fullDate.format(p.last_seen)),
        fact('Visits', number.format(p.visits)),
        fact('Page views', number.format(p.page_views)),
        fact('Events', number.format(p.events)),
        fact('Time on site', duration(p.duration_ms)),
        fact(kind === 'visitor' ? 'User ids' : 'Visitor ids',
          linked.length
            ? linked.map((other, i) => [i ? ', ' : '', personLink(kind === 'visitor' ? 'user' : 'visitor', other)])
            : '–', 'mono'))),
    h('section', { class: 'panel' },
      h('div', { class: 'panel-head' }, h('h2', {}, 'Visits'), h('span', { class: 'muted' }, 'newest first')),
      table,
      h('div', { class: 'pager' }, more)),
  ];
}
