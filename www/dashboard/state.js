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

/** A hash for `path` with `filters` and the other `params` (`[key, value]`s). */
export function hashOf(path, filters, params = []) {
  const enc = (v) => encodeURIComponent(v).replace(/%3A/gi, ':').replace(/%2F/gi, '/');
  const parts = filters.map((f) => `filter=${enc(f.dim)}:${enc(f.value)}`);
  for (const [k, v] of params) parts.push(`${enc(k)}=${enc(v)}`);
  return `#${path}${parts.length ? `?${parts.join('&')}` : ''}`;
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
