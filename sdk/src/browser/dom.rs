//! Small readings of the page and browser, and listeners that remove
//! themselves when dropped. Every reading tolerates a missing API.

use super::plain_data;
use crate::text::concat;
use crate::{Now, Page, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

pub fn now() -> u64 {
    js_sys::Date::now() as u64
}

/// The time with the local zone's offset, for rules about local days.
pub fn now_local() -> Now {
    let ms = js_sys::Date::now();
    let offset = -js_sys::Date::new(&JsValue::from_f64(ms)).get_timezone_offset();
    Now {
        ms: ms as u64,
        utc_offset_min: offset as i32,
    }
}

fn window() -> Option<web_sys::Window> {
    web_sys::window()
}

fn document() -> Option<web_sys::Document> {
    window()?.document()
}

/// `target[key]`. Plain readings go through this one binding rather than a
/// web-sys getter each: every binding adds glue to both shipped files.
pub fn prop(target: &JsValue, key: &str) -> Option<JsValue> {
    js_sys::Reflect::get(target, &JsValue::from_str(key)).ok()
}

pub fn text(target: &JsValue, key: &str) -> Option<String> {
    prop(target, key)?.as_string()
}

fn location(key: &str) -> Option<String> {
    let w = window()?;
    text(&prop(&w, "location")?, key)
}

/// The page as it is now; the referrer only for page views.
pub fn page(with_referrer: bool) -> Page {
    let doc = document();
    let read = |key| {
        doc.as_ref()
            .and_then(|d| text(d, key))
            .filter(|t| !t.is_empty())
    };
    Page {
        url: location("href").unwrap_or_default(),
        title: read("title"),
        referrer: with_referrer.then(|| read("referrer")).flatten(),
    }
}

pub fn origin() -> String {
    location("origin").unwrap_or_default()
}

pub fn hostname() -> String {
    location("hostname").unwrap_or_default()
}

/// Visible and focused: the time that counts as engaged.
pub fn is_active() -> bool {
    !is_hidden() && document().is_some_and(|d| d.has_focus().unwrap_or(false))
}

/// How far down the page the bottom of the viewport is, in percent.
pub fn scroll_pct() -> u8 {
    let (Some(w), Some(d)) = (window(), document()) else {
        return 0;
    };
    let Some(root) = d.document_element() else {
        return 0;
    };
    let height = f64::from(root.scroll_height());
    let seen = prop(&w, "scrollY").and_then(|v| v.as_f64()).unwrap_or(0.0)
        + prop(&w, "innerHeight")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0);
    if height <= 0.0 {
        return 100;
    }
    (seen / height * 100.0).clamp(0.0, 100.0) as u8
}

/// `navigator.onLine` (true when unknown).
pub fn is_online() -> bool {
    window()
        .and_then(|w| prop(&w, "navigator"))
        .and_then(|nav| prop(&nav, "onLine"))
        .and_then(|v| v.as_bool())
        .unwrap_or(true)
}

/// Do Not Track or Global Privacy Control is on.
pub fn do_not_track() -> bool {
    let Some(w) = window() else { return false };
    let nav = prop(&w, "navigator").unwrap_or(JsValue::UNDEFINED);
    let dnt = |v: Option<String>| matches!(v.as_deref(), Some("1" | "yes"));
    dnt(text(&nav, "doNotTrack"))
        || dnt(text(&w, "doNotTrack"))
        || prop(&nav, "globalPrivacyControl").is_some_and(|v| v.is_truthy())
}

pub fn is_hidden() -> bool {
    document()
        .and_then(|d| text(&d, "visibilityState"))
        .as_deref()
        == Some("hidden")
}

// Readings of the device, the browser and a click, in JS: a Rust binding per
// property ships far more code than these few lines. Rules stay in Rust;
// these only read, and catch whatever a getter throws. (wasm-bindgen's
// no-modules target takes one snippet per crate, so all of them are here.)
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

export function __wbs_click(event) {
  try {
    var t = event.target, el = t instanceof Element && t.closest('a,button,input[type=submit],input[type=button],[role=button],[data-waymark-event]');
    if (!el || el.closest('[data-waymark-ignore]')) return null;
    var node = function (e) { return { tag: e.localName, id: e.id, classes: [].slice.call(e.classList) }; };
    var up = [], p = el.parentElement, data = [];
    while (p && up.length < 3) { up.push(node(p)); p = p.parentElement; }
    [].forEach.call(el.attributes, function (a) { if (a.name.indexOf('data-waymark-') == 0) data.push([a.name.slice(13), a.value]); });
    var tag = el.localName;
    return { node: node(el), ancestors: up, text: tag == 'input' ? '' : el.textContent || '', href: tag == 'a' && typeof el.href == 'string' ? el.href : '', type: el.getAttribute('type'), data: data };
  } catch (e) {
    return null;
  }
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = __wbs_context)]
    fn read_context() -> JsValue;

    /// The DOM reading of a click: the nearest interactive element (`a`,
    /// `button`, `input[type=submit|button]`, `[role=button]`,
    /// `[data-waymark-event]`), unless inside `data-waymark-ignore`, as
    /// `{node, ancestors, text, href, type, data}` with three ancestors. The
    /// value of an input is never read. What of it may be sent is decided in
    /// Rust (`ClickTarget::props`).
    #[wasm_bindgen(js_name = __wbs_click)]
    pub fn read_click(event: &web_sys::Event) -> JsValue;
}

/// Device and browser facts that hold for the whole page load, and the
/// campaign that brought the visitor to it.
pub fn context() -> Value {
    let mut entries = match plain_data::from_js(&read_context()) {
        Some(Value::Object(entries)) => entries,
        _ => Vec::new(),
    };
    let url = location("href").unwrap_or_default();
    let campaign = crate::campaign_params(&url);
    if !campaign.is_empty() {
        let fields = campaign
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())));
        entries.push(("campaign".to_owned(), Value::Object(fields.collect())));
    }
    Value::Object(entries)
}

/// A DOM event listener, or a wrapped method, undone when dropped.
pub enum Listener {
    Event {
        target: web_sys::EventTarget,
        kind: &'static str,
        capture: bool,
        callback: Closure<dyn FnMut(web_sys::Event)>,
    },
    /// `target[name]` replaced by `wrapper`; dropping removes the override.
    Method {
        target: JsValue,
        name: &'static str,
        wrapper: JsValue,
    },
}

impl Drop for Listener {
    fn drop(&mut self) {
        match self {
            Listener::Event {
                target,
                kind,
                capture,
                callback,
            } => {
                let _ = target.remove_event_listener_with_callback_and_bool(
                    kind,
                    callback.as_ref().unchecked_ref(),
                    *capture,
                );
            }
            Listener::Method {
                target,
                name,
                wrapper,
            } => {
                let key = JsValue::from_str(name);
                // Only if nobody wrapped it again since.
                if prop(target, name).is_some_and(|current| current == *wrapper) {
                    let _ = js_sys::Reflect::delete_property(
                        target.unchecked_ref::<js_sys::Object>(),
                        &key,
                    );
                }
            }
        }
    }
}

/// How a listener is added.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bubble,
    /// Capture phase: runs before the page's own handlers can stop the event.
    Capture,
    /// Passive: can never delay scrolling.
    Passive,
}

/// Not generic over the callback, so that it exists once in the wasm.
fn listen(
    target: Option<web_sys::EventTarget>,
    kind: &'static str,
    mode: Mode,
    f: Box<dyn FnMut(web_sys::Event)>,
) -> Option<Listener> {
    let target = target?;
    let callback = Closure::wrap(f);
    let function = callback.as_ref().unchecked_ref();
    match mode {
        Mode::Passive => {
            let options = web_sys::AddEventListenerOptions::new();
            options.set_passive(true);
            target.add_event_listener_with_callback_and_add_event_listener_options(
                kind, function, &options,
            )
        }
        _ => {
            target.add_event_listener_with_callback_and_bool(kind, function, mode == Mode::Capture)
        }
    }
    .ok()?;
    Some(Listener::Event {
        target,
        kind,
        capture: mode == Mode::Capture,
        callback,
    })
}

pub fn on_window(
    kind: &'static str,
    mode: Mode,
    f: impl Fn(web_sys::Event) + 'static,
) -> Option<Listener> {
    listen(window().map(Into::into), kind, mode, Box::new(f))
}

pub fn on_document(
    kind: &'static str,
    mode: Mode,
    f: impl Fn(web_sys::Event) + 'static,
) -> Option<Listener> {
    listen(document().map(Into::into), kind, mode, Box::new(f))
}

/// Calls `f` once after `ms` milliseconds; the callback frees itself.
pub fn after(ms: i32, f: impl FnOnce() + 'static) {
    if let Some(w) = window() {
        let callback = Closure::once_into_js(f);
        let _ =
            w.set_timeout_with_callback_and_timeout_and_arguments_0(callback.unchecked_ref(), ms);
    }
}

/// A `setTimeout`, cleared when dropped.
#[must_use]
pub struct Timeout {
    id: i32,
    _callback: Closure<dyn FnMut()>,
}

impl Timeout {
    /// Calls `f` once after `ms` milliseconds; `None` without a window.
    pub fn new(ms: i32, f: impl FnMut() + 'static) -> Option<Timeout> {
        let callback = Closure::<dyn FnMut()>::new(f);
        let id = window()?
            .set_timeout_with_callback_and_timeout_and_arguments_0(
                callback.as_ref().unchecked_ref(),
                ms,
            )
            .ok()?;
        Some(Timeout {
            id,
            _callback: callback,
        })
    }
}

impl Drop for Timeout {
    fn drop(&mut self) {
        if let Some(w) = window() {
            w.clear_timeout_with_handle(self.id);
        }
    }
}

/// Kinds of problem worth telling the page's developer about, once each.
#[derive(Clone, Copy)]
pub enum Warn {
    Config = 1,
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
            web_sys::console::warn_1(&concat(&["waymark: ", message]).into());
        }
    }
}
