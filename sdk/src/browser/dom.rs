//! Small readings of the page and browser, and listeners that remove
//! themselves when dropped. Every reading tolerates a missing API.

use crate::{Page, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

pub fn now() -> u64 {
    js_sys::Date::now() as u64
}

fn window() -> Option<web_sys::Window> {
    web_sys::window()
}

fn document() -> Option<web_sys::Document> {
    window()?.document()
}

/// `target[key]`. Plain readings go through this one binding rather than a
/// web-sys getter each: every binding adds glue to both shipped files.
fn prop(target: &JsValue, key: &str) -> Option<JsValue> {
    js_sys::Reflect::get(target, &JsValue::from_str(key)).ok()
}

fn text(target: &JsValue, key: &str) -> Option<String> {
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
            if prop(&nav, "webdriver").is_some_and(|v| v.is_truthy()) {
                put("webdriver", Value::Bool(true));
            }
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
    Value::Object(entries)
}

/// `WIDTHxHEIGHT`.
fn dimensions(width: u32, height: u32) -> String {
    let mut text = width.to_string();
    text.push('x');
    text.push_str(&height.to_string());
    text
}

/// A DOM event listener, removed when dropped.
pub struct Listener {
    target: web_sys::EventTarget,
    kind: &'static str,
    callback: Closure<dyn FnMut()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self
            .target
            .remove_event_listener_with_callback(self.kind, self.callback.as_ref().unchecked_ref());
    }
}

fn listen(
    target: Option<web_sys::EventTarget>,
    kind: &'static str,
    f: impl Fn() + 'static,
) -> Option<Listener> {
    let target = target?;
    let callback = Closure::<dyn FnMut()>::new(f);
    target
        .add_event_listener_with_callback(kind, callback.as_ref().unchecked_ref())
        .ok()?;
    Some(Listener {
        target,
        kind,
        callback,
    })
}

pub fn on_window(kind: &'static str, f: impl Fn() + 'static) -> Option<Listener> {
    listen(window().map(Into::into), kind, f)
}

pub fn on_document(kind: &'static str, f: impl Fn() + 'static) -> Option<Listener> {
    listen(document().map(Into::into), kind, f)
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
            web_sys::console::warn_1(&["waymark: ", message].concat().into());
        }
    }
}
