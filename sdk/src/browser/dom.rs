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

/// The page as it is now; the referrer only for page views.
pub fn page(with_referrer: bool) -> Page {
    let url = window()
        .and_then(|w| w.location().href().ok())
        .unwrap_or_default();
    let doc = document();
    let title = doc.as_ref().map(|d| d.title()).filter(|t| !t.is_empty());
    let referrer = doc
        .filter(|_| with_referrer)
        .map(|d| d.referrer())
        .filter(|r| !r.is_empty());
    Page {
        url,
        title,
        referrer,
    }
}

pub fn origin() -> String {
    window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default()
}

pub fn hostname() -> String {
    window()
        .and_then(|w| w.location().hostname().ok())
        .unwrap_or_default()
}

pub fn is_hidden() -> bool {
    document().is_some_and(|d| d.visibility_state() == web_sys::VisibilityState::Hidden)
}

/// Device and browser facts that hold for the whole page load.
pub fn context() -> Value {
    let mut entries = Vec::new();
    let mut put = |k: &str, v: Value| entries.push((k.to_owned(), v));
    if let Some(w) = window() {
        let nav = w.navigator();
        if let Ok(ua) = nav.user_agent() {
            put("user_agent", Value::String(ua));
        }
        if let Some(lang) = nav.language() {
            put("language", Value::String(lang));
        }
        if js_sys::Reflect::get(&nav, &"webdriver".into()).is_ok_and(|v| v.is_truthy()) {
            put("webdriver", Value::Bool(true));
        }
        if let Ok(screen) = w.screen() {
            if let (Ok(sw), Ok(sh)) = (screen.width(), screen.height()) {
                put("screen", Value::String(format!("{sw}x{sh}")));
            }
        }
        if let (Some(vw), Some(vh)) = (number(w.inner_width()), number(w.inner_height())) {
            put("viewport", Value::String(format!("{vw}x{vh}")));
        }
        put(
            "tz_offset_min",
            Value::Number(-js_sys::Date::new_0().get_timezone_offset()),
        );
    }
    let options = js_sys::Intl::DateTimeFormat::default().resolved_options();
    if let Some(tz) = js_sys::Reflect::get(&options, &"timeZone".into())
        .ok()
        .and_then(|v| v.as_string())
    {
        put("time_zone", Value::String(tz));
    }
    Value::Object(entries)
}

fn number(v: Result<JsValue, JsValue>) -> Option<u32> {
    v.ok()?.as_f64().map(|n| n as u32)
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
            web_sys::console::warn_1(&format!("waymark: {message}").into());
        }
    }
}
