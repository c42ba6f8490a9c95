//! Readings of the page and the browser, through web-sys (js-sys's
//! `Reflect` where web-sys has no binding), and the console.

use js_sys::{Array, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use waymark_sdk_core::{campaign_params, device_type, push_u64, redact_url, Now, Page, Value};
use web_sys::{Document, Navigator, VisibilityState, Window};

fn window() -> Option<Window> {
    web_sys::window()
}

fn document() -> Option<Document> {
    window()?.document()
}

fn navigator() -> Option<Navigator> {
    Some(window()?.navigator())
}

pub fn now() -> u64 {
    js_sys::Date::now() as u64
}

/// The time with the local zone's offset, for rules about local days. One
/// clock for everything: `Date.now()`, as [`now`] reads it (a page that
/// moves `Date.now` moves event times and `sent_at` together).
pub fn now_local() -> Now {
    let ms = js_sys::Date::now();
    let date = js_sys::Date::new(&JsValue::from_f64(ms));
    Now {
        ms: ms as u64,
        utc_offset_min: -(date.get_timezone_offset() as i32),
    }
}

/// The page as it is now; the referrer only for page views.
pub fn page(with_referrer: bool) -> Page {
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    Page {
        url: href(),
        title: document().map(|d| d.title()).and_then(non_empty),
        referrer: document()
            .filter(|_| with_referrer)
            .map(|d| d.referrer())
            .and_then(non_empty),
    }
}

pub fn href() -> String {
    window()
        .and_then(|w| w.location().href().ok())
        .unwrap_or_default()
}

/// The page's origin and hostname: the config's defaults.
pub fn origin_and_host() -> (String, String) {
    let location = window().map(|w| w.location());
    let read = |f: fn(&web_sys::Location) -> Result<String, JsValue>| {
        location
            .as_ref()
            .and_then(|l| f(l).ok())
            .unwrap_or_default()
    };
    (
        read(web_sys::Location::origin),
        read(web_sys::Location::hostname),
    )
}

pub fn is_hidden() -> bool {
    document().is_some_and(|d| d.visibility_state() == VisibilityState::Hidden)
}

/// Visible and focused: the time that counts as engaged.
pub fn is_active() -> bool {
    !is_hidden() && document().is_some_and(|d| d.has_focus().unwrap_or(false))
}

/// `navigator.onLine` (true when unknown).
pub fn is_online() -> bool {
    navigator().is_none_or(|n| n.on_line())
}

/// Do Not Track (`navigator.doNotTrack`, or the older `window.doNotTrack`)
/// or Global Privacy Control (`navigator.globalPrivacyControl`, which
/// web-sys does not bind) is on.
pub fn do_not_track() -> bool {
    let yes = |v: Option<String>| matches!(v.as_deref(), Some("1" | "yes"));
    // Read as properties: web-sys types `navigator.doNotTrack` as a string,
    // but browsers without a preference give `null`, which its binding
    // would throw on.
    let nav = navigator();
    yes(nav
        .as_ref()
        .and_then(|n| property(n, "doNotTrack").as_string()))
        || yes(window().and_then(|w| property(&w, "doNotTrack").as_string()))
        || nav.is_some_and(|n| property(&n, "globalPrivacyControl").is_truthy())
}

/// A property web-sys does not bind; `undefined` when reading it throws.
fn property(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// Device and browser facts that hold for the whole page load, and the
/// campaign that brought the visitor to it, read from the URL as it is
/// recorded (without the `sensitive` parameters, e-mail-looking values
/// included).
pub fn context(sensitive: &[String]) -> Value {
    let mut c: Vec<(String, Value)> = Vec::new();
    let text = |c: &mut Vec<(String, Value)>, key: &str, value: Option<String>| {
        if let Some(value) = value {
            c.push((key.to_owned(), Value::String(value)));
        }
    };
    let (Some(window), Some(nav)) = (window(), navigator()) else {
        return Value::Object(c);
    };
    text(&mut c, "user_agent", nav.user_agent().ok());
    text(&mut c, "language", nav.language());
    let languages: Vec<Value> = nav
        .languages()
        .iter()
        .filter_map(|l| l.as_string())
        .map(Value::String)
        .collect();
    c.push(("languages".into(), Value::Array(languages)));
    // `navigator.webdriver` (not bound by web-sys's `Navigator`).
    if property(&nav, "webdriver") == JsValue::TRUE {
        c.push(("webdriver".into(), Value::Bool(true)));
    }
    let touch = nav.max_touch_points() > 0;
    c.push(("touch".into(), Value::Bool(touch)));
    // User-Agent Client Hints (Chromium): web-sys binds them only as an
    // unstable API, so they are read as plain properties.
    let hints = property(&nav, "userAgentData");
    let mut mobile = false;
    if hints.is_object() {
        let brands: Vec<Value> = Array::from(&property(&hints, "brands"))
            .iter()
            .filter_map(|b| {
                let brand = property(&b, "brand").as_string()?;
                let version = property(&b, "version").as_string()?;
                Some(Value::String(brand + " " + &version))
            })
            .collect();
        c.push(("ua_brands".into(), Value::Array(brands)));
        mobile = property(&hints, "mobile") == JsValue::TRUE;
        text(
            &mut c,
            "ua_platform",
            property(&hints, "platform").as_string(),
        );
    }
    let connection = property(&nav, "connection");
    text(
        &mut c,
        "connection",
        property(&connection, "effectiveType").as_string(),
    );
    let (width, height) = window
        .screen()
        .ok()
        .map(|s| (s.width().ok(), s.height().ok()))
        .unwrap_or((None, None));
    let side = |n: Option<i32>| n.map_or(f64::NAN, f64::from);
    c.push((
        "device_type".into(),
        Value::String(device_type(mobile, touch, side(width), side(height)).into()),
    ));
    c.push(("dpr".into(), Value::Number(window.device_pixel_ratio())));
    if let (Some(w), Some(h)) = (width, height) {
        text(&mut c, "screen", Some(size(w, h)));
    }
    let inner = |v: Result<JsValue, JsValue>| v.ok().and_then(|v| v.as_f64());
    if let (Some(w), Some(h)) = (inner(window.inner_width()), inner(window.inner_height())) {
        text(&mut c, "viewport", Some(size(w as i32, h as i32)));
    }
    let now = now_local();
    c.push((
        "tz_offset_min".into(),
        Value::Number(f64::from(now.utc_offset_min)),
    ));
    text(&mut c, "time_zone", time_zone());

    let url = redact_url(&href(), sensitive);
    let campaign = campaign_params(&url);
    if !campaign.is_empty() {
        let fields = campaign
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())));
        c.push(("campaign".to_owned(), Value::Object(fields.collect())));
    }
    Value::Object(c)
}

/// The IANA time zone (`Europe/Paris`): `Temporal.Now.timeZoneId()` where
/// the browser has it, else `Intl.DateTimeFormat`'s. Building the first
/// date format of a page loads the locale's date data: 20–46 ms in Chromium
/// 156 on the test machine, half of the SDK's start, against under a
/// millisecond for `Temporal` (BENCHMARKS.md, "The SDK on a slow
/// connection").
fn time_zone() -> Option<String> {
    let now = property(&property(&js_sys::global(), "Temporal"), "Now");
    let temporal = property(&now, "timeZoneId")
        .dyn_into::<js_sys::Function>()
        .ok()
        .and_then(|id| id.call0(&now).ok())
        .and_then(|id| id.as_string());
    temporal.or_else(|| {
        let options = js_sys::Intl::DateTimeFormat::new(&Array::new(), &js_sys::Object::new())
            .resolved_options();
        property(&options, "timeZone").as_string()
    })
}

/// `WxH`, written without std's formatting.
fn size(width: i32, height: i32) -> String {
    let mut out = String::new();
    push_u64(&mut out, width.max(0) as u64);
    out.push('x');
    push_u64(&mut out, height.max(0) as u64);
    out
}

/// How JavaScript writes a number (as `JSON.stringify` does): the send
/// queue's events are JSON text written in Rust, all but the non-integer
/// numbers, whose shortest round-trip form differs from Rust's.
pub fn number_text(n: f64, out: &mut String) {
    out.push_str(&String::from(
        js_sys::Number::from(n)
            .to_string_with_radix(10)
            .unwrap_or_else(|_| "0".into()),
    ));
}

/// Kinds of problem worth telling the page's developer about, once each.
#[derive(Clone, Copy)]
pub enum Warn {
    Arguments = 1,
    Props = 2,
    Send = 4,
    Config = 8,
    Context = 16,
    Identify = 32,
    Refused = 64,
}

/// The kinds already told.
#[derive(Default)]
pub struct Warnings(u8);

impl Warnings {
    pub fn warn(&mut self, kind: Warn, message: &str) {
        if self.0 & kind as u8 == 0 {
            self.0 |= kind as u8;
            console_warn(message);
        }
    }
}

pub fn console_warn(message: &str) {
    web_sys::console::warn_1(&JsValue::from_str(&(String::from("waymark: ") + message)));
}

/// An element's `href` when it is a link (the resolved, absolute URL).
pub fn link_href(element: &web_sys::Element) -> Option<String> {
    if element.local_name() != "a" {
        return None;
    }
    property(element.unchecked_ref(), "href").as_string()
}
