//! Small readings of the page and browser, and listeners that remove
//! themselves when dropped. Every reading tolerates a missing API.

use crate::text::{concat, push_u64};
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

fn number(target: &JsValue, key: &str) -> Option<u32> {
    prop(target, key)?.as_f64().map(|n| n as u32)
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

/// Device and browser facts that hold for the whole page load.
pub fn context() -> Value {
    let mut entries = Vec::new();
    let mut put = |k: &str, v: Value| entries.push((k.to_owned(), v));
    if let Some(w) = window() {
        if let Some(nav) = prop(&w, "navigator") {
            if let Some(ua) = text(&nav, "userAgent") {
                put("user_agent", Value::String(ua));
            }
            if let Some(lang) = text(&nav, "language") {
                put("language", Value::String(lang));
            }
            if let Some(langs) = prop(&nav, "languages").filter(|l| l.is_object()) {
                let list: Vec<Value> = js_sys::Array::from(&langs)
                    .iter()
                    .filter_map(|l| l.as_string())
                    .map(Value::String)
                    .collect();
                put("languages", Value::Array(list));
            }
            if prop(&nav, "webdriver").is_some_and(|v| v.is_truthy()) {
                put("webdriver", Value::Bool(true));
            }
            let touch = number(&nav, "maxTouchPoints").unwrap_or(0) > 0;
            put("touch", Value::Bool(touch));
            // Client hints: brands, mobile, platform (Chromium browsers).
            let mut mobile = None;
            if let Some(hints) = prop(&nav, "userAgentData").filter(|h| h.is_object()) {
                let brands: Vec<Value> = prop(&hints, "brands")
                    .filter(|b| b.is_object())
                    .map(|b| {
                        js_sys::Array::from(&b)
                            .iter()
                            .filter_map(|b| {
                                Some(Value::String(
                                    text(&b, "brand")? + " " + &text(&b, "version")?,
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                put("ua_brands", Value::Array(brands));
                mobile = prop(&hints, "mobile").and_then(|m| m.as_bool());
                if let Some(platform) = text(&hints, "platform") {
                    put("ua_platform", Value::String(platform));
                }
            }
            if let Some(connection) = prop(&nav, "connection").filter(|c| c.is_object()) {
                if let Some(kind) = text(&connection, "effectiveType") {
                    put("connection", Value::String(kind));
                }
            }
            let shortest = prop(&w, "screen").map_or(0, |s| {
                number(&s, "width")
                    .unwrap_or(0)
                    .min(number(&s, "height").unwrap_or(0))
            });
            let device = match mobile {
                Some(true) => "mobile",
                _ if touch && shortest < 600 => "mobile",
                _ if touch && shortest < 1100 => "tablet",
                _ => "desktop",
            };
            put("device_type", Value::String(device.into()));
        }
        if let Some(dpr) = prop(&w, "devicePixelRatio").and_then(|v| v.as_f64()) {
            put("dpr", Value::Number(dpr));
        }
        if let Some(screen) = prop(&w, "screen") {
            if let (Some(sw), Some(sh)) = (number(&screen, "width"), number(&screen, "height")) {
                put("screen", Value::String(dimensions(sw, sh)));
            }
        }
        if let (Some(vw), Some(vh)) = (number(&w, "innerWidth"), number(&w, "innerHeight")) {
            put("viewport", Value::String(dimensions(vw, vh)));
        }
        put(
            "tz_offset_min",
            Value::Number(-js_sys::Date::new_0().get_timezone_offset()),
        );
    }
    let options = js_sys::Intl::DateTimeFormat::default().resolved_options();
    if let Some(tz) = text(&options, "timeZone") {
        put("time_zone", Value::String(tz));
    }
    // The campaign and ad click that brought the visitor to this page load.
    let url = location("href").unwrap_or_default();
    let campaign = crate::campaign_params(&url);
    if !campaign.is_empty() {
        let fields = campaign
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())));
        put("campaign", Value::Object(fields.collect()));
    }
    Value::Object(entries)
}

/// `WIDTHxHEIGHT`.
fn dimensions(width: u32, height: u32) -> String {
    let mut out = String::new();
    push_u64(&mut out, width.into());
    out.push('x');
    push_u64(&mut out, height.into());
    out
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
