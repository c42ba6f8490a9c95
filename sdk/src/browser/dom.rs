//! The page and the browser, as seen from Rust: a few lines of JS (one
//! snippet) that read the page, keep storage, own the listeners, the timers
//! and the requests, and catch whatever a browser API throws.
//!
//! A Rust binding per browser property or method ships its own glue in both
//! the wasm and the JS; these few functions with plain arguments ship far
//! less. They only read, write and report: every rule (sessions, what a click
//! may record, when to send, what an answer means) stays in Rust.

use crate::prelude::*;

use super::plain_data;
use crate::{Now, Page, Value};
use wasm_bindgen::prelude::*;

// wasm-bindgen's no-modules target takes one snippet per crate, so all of the
// SDK's JS is here. Exported functions are named `__wbs_…` (see
// `xtask/src/wasm_names.rs`); the rest are helpers of this snippet.
#[wasm_bindgen(inline_js = r#"
export function __wbs_context() {
  var c = {}, w = window, n = w.navigator || {}, s = w.screen || {}, h = n.userAgentData, str = function (v) { return typeof v == 'string'; }, num = function (v) { return typeof v == 'number'; };
  try {
    if (str(n.userAgent)) c.user_agent = n.userAgent;
    if (str(n.language)) c.language = n.language;
    if (n.languages) c.languages = [].filter.call(n.languages, str);
    if (n.webdriver) c.webdriver = true;
    var touch = c.touch = n.maxTouchPoints > 0, mobile = false;
    if (h && typeof h == 'object') {
      c.ua_brands = [].filter.call(h.brands || [], function (b) { return b && str(b.brand) && str(b.version); }).map(function (b) { return b.brand + ' ' + b.version; });
      mobile = h.mobile === true;
      if (str(h.platform)) c.ua_platform = h.platform;
    }
    if (n.connection && str(n.connection.effectiveType)) c.connection = n.connection.effectiveType;
    var shortest = Math.min(s.width, s.height) || 0;
    c.device_type = mobile || touch && shortest < 600 ? 'mobile' : touch && shortest < 1100 ? 'tablet' : 'desktop';
    if (num(w.devicePixelRatio)) c.dpr = w.devicePixelRatio;
    if (num(s.width) && num(s.height)) c.screen = (s.width >>> 0) + 'x' + (s.height >>> 0);
    if (num(w.innerWidth) && num(w.innerHeight)) c.viewport = (w.innerWidth >>> 0) + 'x' + (w.innerHeight >>> 0);
    c.tz_offset_min = -new Date().getTimezoneOffset();
    c.time_zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (e) {}
  return c;
}

function wbs_click(event) {
  try {
    var t = event.target, el = t instanceof Element && t.closest('a,button,input[type=submit],input[type=button],[role=button],[data-waymark-event]');
    if (!el || el.closest('[data-waymark-ignore]')) return null;
    var tag = el.localName, data = [], nodes = [], e = el;
    [].forEach.call(el.attributes, function (a) { if (a.name.indexOf('data-waymark-') == 0) data.push(a.name.slice(13), a.value); });
    for (; e && nodes.length < 12; e = e.parentElement) nodes.push(e.localName, e.id, [].join.call(e.classList, ' '));
    return [tag == 'input' ? '' : el.textContent || '', tag == 'a' && typeof el.href == 'string' ? el.href : '', el.getAttribute('type') || '', data.length / 2].concat(data, nodes);
  } catch (e) {
    return null;
  }
}

export function __wbs_host(cb, views, clicks) {
  var w = window, d = document, hist = w.history, h = { t: [], off: [] }, last = 0;
  var call = h.call = function (k, a, b, c) { if (h.off) try { cb(k, a, b, c); } catch (e) {} };
  var on = function (t, type, k, opt, f) {
    f = f || function () { call(k); };
    t.addEventListener(type, f, opt);
    h.off.push(function () { t.removeEventListener(type, f, opt); });
  };
  var wrap = function (name) {
    var page = hist[name], wrapper = function () { var r = page.apply(this, arguments); call(6); return r; };
    if (typeof page != 'function') return;
    hist[name] = wrapper;
    h.off.push(function () { if (hist[name] === wrapper) delete hist[name]; });
  };
  try {
    on(w, 'pagehide', 0);
    on(d, 'visibilitychange', 1);
    on(w, 'online', 2);
    on(w, 'offline', 3);
    on(w, 'focus', 4);
    on(w, 'blur', 4);
    on(w, 'scroll', 5, { passive: true }, function () {
      var now = Date.now(), r = d.documentElement, height = r ? r.scrollHeight : 0;
      if (now - last < 200) return;
      last = now;
      call(5, height > 0 ? (w.scrollY + w.innerHeight) / height * 100 : 100);
    });
    if (views) {
      on(w, 'popstate', 6);
      on(w, 'hashchange', 6);
      on(w, 'pageshow', 7, false, function (e) { if (e.persisted) call(7); });
      wrap('pushState');
      wrap('replaceState');
    }
    if (clicks) on(d, 'click', 8, true, function (e) { var c = wbs_click(e); if (c) call(8, 0, 0, c); });
  } catch (e) {}
  return h;
}

export function __wbs_stop(h) {
  var off = h.off || [];
  h.off = null;
  off.forEach(function (f) { try { f(); } catch (e) {} });
  h.t.forEach(function (t) { clearTimeout(t); });
}

export function __wbs_timer(h, k, ms) {
  clearTimeout(h.t[k]);
  if (ms >= 0 && h.off) h.t[k] = setTimeout(function () { h.call(k); }, ms);
}

export function __wbs_soon(h, k) {
  Promise.resolve().then(function () { h.call(k); });
}

export function __wbs_fetch(h, url, body, id) {
  new Promise(function (ok) { ok(fetch(url, { method: 'POST', body: body, keepalive: true })); })
    .then(function (r) { return [r.status, r.headers.get('retry-after')]; })
    .then(function (r) { h.call(9, id, r[0], r[1]); }, function () { h.call(9, id, 0); });
}

export function __wbs_beacon(url, body) {
  try { return !!navigator.sendBeacon(url, body); } catch (e) { return false; }
}

function wbs_area(k) {
  return k ? sessionStorage : localStorage;
}

function wbs_cookie(key) {
  var value;
  document.cookie.split(';').some(function (pair) {
    pair = pair.replace(/^ +/, '');
    if (pair.indexOf(key + '=') == 0) return value = decodeURIComponent(pair.slice(key.length + 1)), true;
  });
  return value;
}

export function __wbs_get(k, key) {
  try { return k > 1 ? wbs_cookie(key) : wbs_area(k).getItem(key); } catch (e) {}
}

export function __wbs_set(k, key, value) {
  try {
    if (k < 2) return wbs_area(k).setItem(key, value), true;
    document.cookie = key + '=' + encodeURIComponent(value) + '; Path=/; Max-Age=31536000; SameSite=Lax' + (location.protocol == 'https:' ? '; Secure' : '');
    return wbs_cookie(key) === value;
  } catch (e) {
    return false;
  }
}

export function __wbs_remove(k, key) {
  try { if (k > 1) document.cookie = key + '=; Path=/; Max-Age=0'; else wbs_area(k).removeItem(key); } catch (e) {}
}

export function __wbs_keys(prefix) {
  try { return Object.keys(localStorage).filter(function (k) { return k.indexOf(prefix) == 0; }).join('\n'); } catch (e) { return ''; }
}

export function __wbs_text(k) {
  try {
    var v = k ? document[k < 2 ? 'title' : 'referrer'] : location.href;
    if (typeof v == 'string' && v) return v;
  } catch (e) {}
}

export function __wbs_state(k) {
  try {
    var w = window, n = w.navigator, d = document, hidden = d.visibilityState == 'hidden', yes = function (v) { return v === '1' || v === 'yes'; };
    if (k == 0) return hidden;
    if (k == 1) return !hidden && d.hasFocus();
    if (k == 2) return n.onLine !== false;
    return yes(n.doNotTrack) || yes(w.doNotTrack) || !!n.globalPrivacyControl;
  } catch (e) {
    return k == 2;
  }
}

export function __wbs_config(c) {
  var keys = ['endpoint', 'site', 'sessionTimeoutMinutes', 'maxSessionHours', 'splitAtMidnight', 'splitOnCampaign', 'autocapture', 'capturePageViews', 'captureClicks', 'respectDnt', 'requireConsent', 'sensitiveParams'];
  var types = 'ssnnbbbbbbbw', v = [], bad = !c || typeof c != 'object';
  var warn = function (m) { console.warn('waymark: ' + m); };
  try {
    keys.forEach(function (key, i) {
      var x = bad ? null : c[key], t = types[i];
      if (x == null) return;
      if (t == 'w') {
        x = typeof x == 'string' ? x.split(',') : Array.isArray(x) ? Array.from(x) : [0];
        bad = bad || !x.every(function (w) { return typeof w == 'string'; });
        x = x.join('\n');
      } else {
        bad = bad || typeof x != { s: 'string', n: 'number', b: 'boolean' }[t];
      }
      v[i] = x;
    });
  } catch (e) {
    bad = true;
  }
  if (bad) {
    warn('config must be an object like {endpoint, site}; using defaults');
    v = [];
  }
  if (!v[0]) {
    if (!bad) warn("config.endpoint is missing; sending to this page's origin");
    v[0] = location.origin;
  }
  var ms = function (x, unit) { return isFinite(x) && x > 0 ? x * unit : -1; };
  var on = function (i, otherwise) { return v[i] == null ? otherwise : v[i]; };
  var auto = on(6, true);
  return [
    v[0],
    v[1] || location.hostname,
    ms(v[2], 6e4),
    isFinite(v[3]) && v[3] <= 0 ? -2 : ms(v[3], 36e5),
    (on(4) ? 1 : 0) | (on(5) ? 2 : 0) | (auto && on(7, true) ? 4 : 0) | (auto && on(8, true) ? 8 : 0) | (on(9) ? 16 : 0) | (on(10) ? 32 : 0),
    v[11]
  ];
}

export function __wbs_plain(v) {
  var types = '', tape = [], budget = 512;
  var walk = function (v, depth) {
    if (!budget--) throw 0;
    var t = typeof v, list, i, array = Array.isArray(v);
    if (v == null) types += 'n';
    else if (t == 'boolean') types += v ? 't' : 'f';
    else if (t == 'bigint') {
      if (BigInt.asIntN(64, v) !== v && BigInt.asUintN(64, v) !== v) throw 0;
      types += 'd';
      tape.push(Number(v));
    } else if (t == 'number') {
      types += isFinite(v) ? 'd' : 'n';
      if (isFinite(v)) tape.push(v);
    } else if (t == 'string') {
      types += 's';
      tape.push(v);
    } else {
      if (array) list = v;
      else if (t != 'object' || v instanceof ArrayBuffer || !(v instanceof Map) && Symbol.iterator in v) throw 0;
      else list = v instanceof Map ? Array.from(v) : Object.entries(v);
      if (depth >= 8) throw 0;
      types += array ? 'a' : 'o';
      tape.push(list.length);
      for (i = 0; i < list.length; i++) {
        if (!array) {
          if (typeof list[i][0] != 'string') throw 0;
          tape.push(list[i][0]);
        }
        walk(array ? list[i] : list[i][1], depth + 1);
      }
    }
  };
  try {
    walk(v, 0);
    return [types].concat(tape);
  } catch (e) {
    return null;
  }
}

export function __wbs_number(n) {
  return String(n);
}

export function __wbs_offset(ms) {
  return -new Date(ms).getTimezoneOffset();
}

export function __wbs_random() {
  try { return crypto.getRandomValues(new Uint32Array(1))[0]; } catch (e) { return Math.random() * 4294967296 >>> 0; }
}

export function __wbs_warn(message) {
  console.warn('waymark: ' + message);
}
"#)]
extern "C" {
    // Arguments and results are JS values and plain numbers only: the
    // no-modules target cannot give a snippet function glue of its own (to
    // pass a `&str`, say), so each is called directly from the wasm.

    /// Device and browser facts, as a plain object.
    #[wasm_bindgen(js_name = __wbs_context)]
    fn read_context() -> JsValue;

    /// Adds the tracker's listeners, each reporting to `dispatch(kind, a, b,
    /// c)` (see [`Kind`]); returns the handle that [`arm`], [`fetch`] and
    /// [`stop`] take. Scrolls are reported at most every 200 ms with the
    /// depth in percent as `a`; a click only when it lands on something
    /// interactive and outside `data-waymark-ignore`, described as `c` (see
    /// `capture::describe_click`; the value of an input is never read, and
    /// what of it may be sent is decided by `ClickTarget::props`). `history.pushState` and `replaceState` are
    /// wrapped (when `page_views` is not 0): the page's own call runs first
    /// and its result or exception passes through untouched.
    #[wasm_bindgen(js_name = __wbs_host)]
    fn js_install(dispatch: &JsValue, page_views: i32, clicks: i32) -> JsValue;

    /// Removes the listeners (and the history wrappers, unless wrapped again
    /// since) and clears the timers; the dispatcher is not called again.
    #[wasm_bindgen(js_name = __wbs_stop)]
    pub fn stop(host: &JsValue);

    /// (Re-)arms timer `kind` to report in `ms` milliseconds; a negative
    /// `ms` only clears it.
    #[wasm_bindgen(js_name = __wbs_timer)]
    fn js_arm(host: &JsValue, kind: i32, ms: f64);

    /// Reports `kind` once the work in hand is done (a microtask).
    #[wasm_bindgen(js_name = __wbs_soon)]
    fn js_soon(host: &JsValue, kind: i32);

    /// `fetch` of a batch as `text/plain` (no CORS preflight) with
    /// keepalive; reported as [`Kind::Answer`] with the request `id` as `a`,
    /// the status as `b` (0 for a network error) and `Retry-After` as `c`.
    #[wasm_bindgen(js_name = __wbs_fetch)]
    fn js_fetch(host: &JsValue, url: &JsValue, body: &JsValue, id: f64);

    /// `navigator.sendBeacon`: whether the browser took the batch.
    #[wasm_bindgen(js_name = __wbs_beacon)]
    fn js_beacon(url: &JsValue, body: &JsValue) -> i32;

    /// One entry of an [`Area`]: a string, or nothing when missing or unreadable.
    #[wasm_bindgen(js_name = __wbs_get)]
    fn js_get(area: i32, key: &JsValue) -> JsValue;

    /// Writes one entry; 0 when refused (a cookie is read back to know).
    #[wasm_bindgen(js_name = __wbs_set)]
    fn js_set(area: i32, key: &JsValue, value: &JsValue) -> i32;

    #[wasm_bindgen(js_name = __wbs_remove)]
    fn js_remove(area: i32, key: &JsValue);

    /// The localStorage keys that start with `prefix`, one per line.
    #[wasm_bindgen(js_name = __wbs_keys)]
    fn js_keys(prefix: &JsValue) -> JsValue;

    /// A non-empty reading of the page (see [`Text`]), or nothing.
    #[wasm_bindgen(js_name = __wbs_text)]
    fn js_text(what: i32) -> JsValue;

    /// A yes-or-no reading of the browser (see [`State`]), as 1 or 0.
    #[wasm_bindgen(js_name = __wbs_state)]
    fn js_state(what: i32) -> i32;

    /// The local zone's offset from UTC at `ms`, in minutes.
    /// The page's config, checked, with defaults filled in (see
    /// `read_config`): `[endpoint, site, idle ms, max ms, flags, words]`.
    #[wasm_bindgen(js_name = __wbs_config)]
    pub fn read_config(config: &JsValue) -> JsValue;

    /// Plain data flattened for `plain_data::from_js`, or `null` when the
    /// value is not plain data (see there).
    #[wasm_bindgen(js_name = __wbs_plain)]
    pub fn plain_tape(value: &JsValue) -> JsValue;

    /// `String(n)`: how `JSON.stringify` writes a number.
    #[wasm_bindgen(js_name = __wbs_number)]
    fn js_number(n: f64) -> JsValue;

    #[wasm_bindgen(js_name = __wbs_offset)]
    fn utc_offset_min(ms: f64) -> i32;

    /// 32 random bits from `crypto.getRandomValues` (`Math.random` only
    /// without crypto).
    #[wasm_bindgen(js_name = __wbs_random)]
    pub fn random() -> i32;

    #[wasm_bindgen(js_name = __wbs_warn)]
    fn console_warn(message: &JsValue);
}

/// How JavaScript writes a number (a finite one, as `JSON.stringify` does).
pub fn number_text(n: f64) -> String {
    js_number(n).as_string().unwrap_or_default()
}

pub fn install(dispatch: &JsValue, page_views: bool, clicks: bool) -> JsValue {
    js_install(dispatch, page_views.into(), clicks.into())
}

pub fn arm(host: &JsValue, kind: Kind, ms: f64) {
    js_arm(host, kind as i32, ms);
}

pub fn soon(host: &JsValue, kind: Kind) {
    js_soon(host, kind as i32);
}

pub fn fetch(host: &JsValue, url: &str, body: &str, id: u64) {
    js_fetch(host, &url.into(), &body.into(), id as f64);
}

pub fn beacon(url: &str, body: &str) -> bool {
    js_beacon(&url.into(), &body.into()) != 0
}

pub fn store_get(area: Area, key: &str) -> Option<String> {
    js_get(area as i32, &key.into()).as_string()
}

pub fn store_set(area: Area, key: &str, value: &str) -> bool {
    js_set(area as i32, &key.into(), &value.into()) != 0
}

pub fn store_remove(area: Area, key: &str) {
    js_remove(area as i32, &key.into());
}

/// The localStorage keys that start with `prefix`.
pub fn local_keys(prefix: &str) -> Vec<String> {
    let keys = js_keys(&prefix.into()).as_string().unwrap_or_default();
    crate::text::parts(&keys, b'\n')
        .filter(|k| k.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// What the host's dispatcher reports, by number.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    PageHide = 0,
    VisibilityChange = 1,
    Online = 2,
    Offline = 3,
    /// `focus` or `blur`.
    Focus = 4,
    Scroll = 5,
    /// `popstate`, `hashchange`, `pushState`, `replaceState`.
    Navigation = 6,
    /// A page restored from the back/forward cache.
    PageShow = 7,
    Click = 8,
    /// The answer to a `fetch`.
    Answer = 9,
    /// Timers: a navigation has settled; the send queue's deadline.
    Settled = 10,
    SendDue = 11,
    /// The send queue changed: write it (see `Delivery::changed`).
    Save = 12,
}

impl Kind {
    pub fn from_u32(n: u32) -> Option<Kind> {
        const ALL: [Kind; 13] = [
            Kind::PageHide,
            Kind::VisibilityChange,
            Kind::Online,
            Kind::Offline,
            Kind::Focus,
            Kind::Scroll,
            Kind::Navigation,
            Kind::PageShow,
            Kind::Click,
            Kind::Answer,
            Kind::Settled,
            Kind::SendDue,
            Kind::Save,
        ];
        ALL.get(n as usize).copied()
    }
}

/// The storage areas of [`store_get`] and friends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Local = 0,
    Session = 1,
    Cookie = 2,
}

/// Readings of [`read_text`].
#[derive(Clone, Copy)]
enum Text {
    Href = 0,
    Title = 1,
    Referrer = 2,
}

/// Readings of [`read_state`].
#[derive(Clone, Copy)]
enum State {
    Hidden = 0,
    /// Visible and focused: the time that counts as engaged.
    Active = 1,
    /// `navigator.onLine` (true when unknown).
    Online = 2,
    /// Do Not Track or Global Privacy Control is on.
    DoNotTrack = 3,
}

fn text(what: Text) -> Option<String> {
    js_text(what as i32).as_string()
}

pub fn now() -> u64 {
    js_sys::Date::now() as u64
}

/// The time with the local zone's offset, for rules about local days.
pub fn now_local() -> Now {
    let ms = js_sys::Date::now();
    Now {
        ms: ms as u64,
        utc_offset_min: utc_offset_min(ms),
    }
}

/// The page as it is now; the referrer only for page views.
pub fn page(with_referrer: bool) -> Page {
    Page {
        url: href(),
        title: text(Text::Title),
        referrer: if with_referrer {
            text(Text::Referrer)
        } else {
            None
        },
    }
}

pub fn href() -> String {
    text(Text::Href).unwrap_or_default()
}

pub fn is_hidden() -> bool {
    js_state(State::Hidden as i32) != 0
}

pub fn is_active() -> bool {
    js_state(State::Active as i32) != 0
}

pub fn is_online() -> bool {
    js_state(State::Online as i32) != 0
}

pub fn do_not_track() -> bool {
    js_state(State::DoNotTrack as i32) != 0
}

/// Device and browser facts that hold for the whole page load, and the
/// campaign that brought the visitor to it.
pub fn context() -> Value {
    let mut entries = match plain_data::from_js(&read_context()) {
        Some(Value::Object(entries)) => entries,
        _ => Vec::new(),
    };
    let url = href();
    let campaign = crate::campaign_params(&url);
    if !campaign.is_empty() {
        let fields = campaign
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())));
        entries.push(("campaign".to_owned(), Value::Object(fields.collect())));
    }
    Value::Object(entries)
}

/// Kinds of problem worth telling the page's developer about, once each.
#[derive(Clone, Copy)]
pub enum Warn {
    Arguments = 2,
    Props = 4,
    Send = 8,
}

#[derive(Default)]
pub struct Warnings(u8);

impl Warnings {
    pub fn warn(&mut self, kind: Warn, message: &str) {
        if self.0 & kind as u8 == 0 {
            self.0 |= kind as u8;
            console_warn(&message.into());
        }
    }
}
