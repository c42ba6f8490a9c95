// DOM building and formatting. Everything that comes from visitors (URLs,
// titles, names, props) reaches the page only as text: elements are built
// with createElement and filled with text nodes, never with innerHTML.

/** An element with attributes (`on…` are listeners) and children (strings become text). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  el.append(...nodes(children));
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Like `h`, in the SVG namespace. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  el.append(...nodes(children));
  return el;
}

function nodes(children) {
  return children.flat(Infinity).filter((c) => c != null && c !== false)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c))));
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

export const $ = (sel) => document.querySelector(sel);

// ---- formatting ----------------------------------------------------------

export const number = new Intl.NumberFormat('en');
export const dateTime = new Intl.DateTimeFormat('en-GB', {
  day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit',
});
export const fullDate = new Intl.DateTimeFormat('en-GB', {
  day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit',
});
export const clock = new Intl.DateTimeFormat('en-GB', {
  hour: '2-digit', minute: '2-digit', second: '2-digit',
});
export const dayLabel = new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'short' });
export const hourLabel = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit' });
let regionNames = null;
try {
  regionNames = new Intl.DisplayNames(['en'], { type: 'region' });
} catch {
  // Older browsers: show the code alone.
}

export function duration(ms) {
  if (ms == null) return '–';
  const total = Math.round(ms / 1000);
  if (total < 60) return `${total}s`;
  const m = Math.floor(total / 60);
  if (m < 60) return `${m}m ${String(total % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

export function offset(ms) {
  if (ms < 1000) return `+${ms} ms`;
  return `+${duration(ms)}`;
}

/** A share (0–1) as a whole percentage. */
export function percent(share) {
  return share == null ? '–' : `${Math.round(share * 100)}%`;
}

export function country(code) {
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
export function page(url, pathOnly) {
  if (!url) return '–';
  try {
    const u = new URL(url);
    return safeDecode(u.pathname) + (pathOnly ? '' : u.search + u.hash);
  } catch {
    return url;
  }
}

/** decodeURIComponent, or null for a malformed escape. */
export function safeDecodeComponent(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}

export function safeDecode(text) {
  try {
    return decodeURI(text);
  } catch {
    return text;
  }
}

export function device(session) {
  return [session.device_type, session.browser, session.os].filter(Boolean).join(' · ') || 'Unknown';
}

export function parseJson(text) {
  if (text == null || typeof text === 'object') return text;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** A notice for an empty answer: what it means and what to try. */
export function empty(text) {
  return h('p', { class: 'empty' }, text);
}
