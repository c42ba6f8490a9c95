// The dashboard's state: the token and preferences (localStorage), the view
// (the URL's hash: path, filters, chart and funnel settings), and the read
// API.

const TOKEN_KEY = 'waymark.dashboard.token';
const PREFS_KEY = 'waymark.dashboard.prefs';
const HOUR = 3600e3;
const DAY = 24 * HOUR;
export const RANGES = { '24h': DAY, '7d': 7 * DAY, '30d': 30 * DAY };

/** Dimensions a filter may name (the read API's). */
export const DIMENSIONS = {
  page: 'Page', entry_page: 'Entry page', exit_page: 'Exit page', source: 'Source',
  referrer: 'Referrer', utm_source: 'UTM source', utm_medium: 'UTM medium',
  utm_campaign: 'UTM campaign', utm_term: 'UTM term', utm_content: 'UTM content',
  country: 'Country', region: 'Region', city: 'City', browser: 'Browser', os: 'OS',
  device_type: 'Device', event_name: 'Goal',
};

export const state = {
  token: localStorage.getItem(TOKEN_KEY),
  prefs: loadPrefs(),
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

export function savePrefs() {
  localStorage.setItem(PREFS_KEY, JSON.stringify(state.prefs));
}

export function saveToken(token) {
  state.token = token;
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

// ---- the view in the hash: `#/path?filter=dim:value&…` ---------------------

/**
 * The current view: `path` (decoded segments joined by `/`), `filters`
 * (`[{dim, value}]`, unknown dimensions dropped) and `params` (the rest).
 */
export function route() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  const filters = [];
  for (const f of params.getAll('filter')) {
    const colon = f.indexOf(':');
    const dim = f.slice(0, colon);
    if (colon > 0 && dim in DIMENSIONS) filters.push({ dim, value: f.slice(colon + 1) });
  }
  params.delete('filter');
  return { path, filters, params };
}

// The scope every view reads within (site, range, bots) is this browser's
// preferences, and it is in every hash too, so that a copied address opens
// the same view elsewhere: `…&site=shop&range=30d&bots=0`.
const SCOPE_KEYS = ['site', 'range', 'bots'];

/** A session's page: its `site` is the session's, not the scope's. */
export function isSessionPath(path) {
  return /^\/sessions\/[^/]+$/.test(path);
}

/**
 * A hash for `path` with `filters` and the other `params` (`[key, value]`s),
 * then whichever of the scope's parameters `params` does not give.
 */
export function hashOf(path, filters, params = []) {
  const enc = (v) => encodeURIComponent(v).replace(/%3A/gi, ':').replace(/%2F/gi, '/');
  const given = new Set(params.map(([k]) => k));
  const scope = [
    ['site', state.prefs.site], ['range', state.prefs.range], ['bots', state.prefs.bots ? '1' : '0'],
  ].filter(([k]) => !given.has(k));
  const parts = filters.map((f) => `filter=${enc(f.dim)}:${enc(f.value)}`);
  for (const [k, v] of [...params, ...scope]) parts.push(`${enc(k)}=${enc(v)}`);
  return `#${path}${parts.length ? `?${parts.join('&')}` : ''}`;
}

/**
 * Takes the scope the hash gives (a shared link's) as this browser's
 * preferences; what it leaves out stays as it was. Whether anything changed.
 */
export function adoptScope({ path, params }) {
  const next = { ...state.prefs };
  const site = params.get('site');
  if (site != null && !isSessionPath(path)) next.site = site.trim();
  const range = params.get('range');
  if (range != null && range in RANGES) next.range = range;
  const bots = params.get('bots');
  if (bots === '1' || bots === '0') next.bots = bots === '1';
  const changed = SCOPE_KEYS.some((k) => next[k] !== state.prefs[k]);
  if (changed) {
    state.prefs = next;
    savePrefs();
  }
  return changed;
}

/** The current hash, its scope filled in from the preferences where it gives none. */
export function withScopeFilled() {
  const r = route();
  return hashOf(r.path, r.filters, [...r.params]);
}

/** The current hash with the scope set to the preferences (a session's own site kept). */
export function withScope() {
  const r = route();
  const kept = (k) => !SCOPE_KEYS.includes(k) || (k === 'site' && isSessionPath(r.path));
  return hashOf(r.path, r.filters, [...r.params].filter(([k]) => kept(k)));
}

/** The current hash with its path and non-filter parameters kept and `filters` instead. */
export function withFilters(filters) {
  const r = route();
  return hashOf(r.path, filters, [...r.params]);
}

/** The current hash with `key` set to `value` (or removed for null). */
export function withParam(key, value) {
  const r = route();
  const params = [...r.params].filter(([k]) => k !== key);
  if (value != null) params.push([key, value]);
  return hashOf(r.path, r.filters, params);
}

// ---- the read API ----------------------------------------------------------

/** A refused token: the dashboard asks for it again. */
export class Unauthorized extends Error {}

/** The collector did not answer at all. */
export class Unreachable extends Error {}

function url(path, params) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) {
    for (const one of Array.isArray(v) ? v : [v]) {
      if (one !== '' && one != null) u.searchParams.append(k, String(one));
    }
  }
  return u;
}

async function request(path, params) {
  let res;
  try {
    res = await fetch(url(path, params), { headers: { Authorization: `Bearer ${state.token}` } });
  } catch {
    throw new Unreachable(`The collector at ${location.origin} did not answer. `
      + 'Check that it is still running (cargo xtask demo), then reload.');
  }
  if (res.status === 401) throw new Unauthorized();
  return res;
}

/** `GET path?params` on the read API (arrays repeat a parameter): its JSON. */
export async function api(path, params = {}) {
  const res = await request(path, params);
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    throw new Error((body && (body.message || body.error)) || `${res.status} ${res.statusText}`);
  }
  return body;
}

/** The same with `format=csv`: the CSV text. */
export async function apiCsv(path, params = {}) {
  const res = await request(path, { ...params, format: 'csv' });
  const text = await res.text();
  if (!res.ok) throw new Error(text || `${res.status} ${res.statusText}`);
  return text;
}

/** The range picked: `[from, to)` ending now. */
export function range() {
  const to = Date.now();
  return { from: to - RANGES[state.prefs.range], to };
}

/** The parameters every overview read takes: site, range, bots and `filters`. */
export function scope(filters, extra = {}) {
  return {
    site: state.prefs.site,
    ...range(),
    include_bots: state.prefs.bots,
    filter: filters.map((f) => `${f.dim}:${f.value}`),
    ...extra,
  };
}
