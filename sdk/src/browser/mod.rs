//! The browser shell: web-sys storage, listeners, a timer and beacons around
//! the pure [`crate::Tracker`] core. Nothing here throws into the host page:
//! failures become one console warning per kind.

mod capture;
mod cookie;
mod delivery;
mod dom;
mod plain_data;
mod storage;
mod transport;

use crate::{Config, SessionRules, Tracker as Core, Value};
use std::cell::{RefCell, RefMut};
use std::rc::{Rc, Weak};
use storage::{BrowserStorage, CryptoEntropy};
use wasm_bindgen::prelude::*;

/// A free-list allocator a seventh the size of std's dlmalloc. The SDK's heap
/// is small (a session, a queue of events), so its linear search costs nothing.
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());

/// Configuration as the page passes it (`init(config)` or the script tag's data attributes).
#[derive(Default)]
struct JsConfig {
    endpoint: Option<String>,
    site: Option<String>,
    session_timeout_minutes: Option<f64>,
    max_session_hours: Option<f64>,
    split_at_midnight: Option<bool>,
    split_on_campaign: Option<bool>,
    autocapture: Option<bool>,
    capture_page_views: Option<bool>,
    capture_clicks: Option<bool>,
    respect_dnt: Option<bool>,
    require_consent: Option<bool>,
    sensitive_params: Option<Vec<String>>,
}

impl JsConfig {
    /// Reads the config object; `None` if it is not an object or a field has
    /// the wrong type.
    fn read(config: &JsValue) -> Option<JsConfig> {
        if !config.is_object() {
            return None;
        }
        Some(JsConfig {
            endpoint: field(config, "endpoint", JsValue::as_string)?,
            site: field(config, "site", JsValue::as_string)?,
            session_timeout_minutes: field(config, "sessionTimeoutMinutes", JsValue::as_f64)?,
            max_session_hours: field(config, "maxSessionHours", JsValue::as_f64)?,
            split_at_midnight: field(config, "splitAtMidnight", JsValue::as_bool)?,
            split_on_campaign: field(config, "splitOnCampaign", JsValue::as_bool)?,
            autocapture: field(config, "autocapture", JsValue::as_bool)?,
            capture_page_views: field(config, "capturePageViews", JsValue::as_bool)?,
            capture_clicks: field(config, "captureClicks", JsValue::as_bool)?,
            respect_dnt: field(config, "respectDnt", JsValue::as_bool)?,
            require_consent: field(config, "requireConsent", JsValue::as_bool)?,
            sensitive_params: field(config, "sensitiveParams", words)?,
        })
    }
}

/// A list of words: an array of strings, or one comma-separated string.
fn words(value: &JsValue) -> Option<Vec<String>> {
    let list: Vec<String> = match value.as_string() {
        Some(text) => text
            .split(',')
            .map(|w| w.trim().to_ascii_lowercase())
            .collect(),
        None if js_sys::Array::is_array(value) => {
            let array = js_sys::Array::from(value);
            let items: Option<Vec<String>> = array.iter().map(|w| w.as_string()).collect();
            items?
                .into_iter()
                .map(|w| w.trim().to_ascii_lowercase())
                .collect()
        }
        None => return None,
    };
    Some(list.into_iter().filter(|w| !w.is_empty()).collect())
}

/// One config field: `Some(None)` when it is missing, `null` or `undefined`,
/// `None` when it has the wrong type (or its getter throws).
fn field<T>(config: &JsValue, name: &str, cast: fn(&JsValue) -> Option<T>) -> Option<Option<T>> {
    let value = js_sys::Reflect::get(config, &JsValue::from_str(name)).ok()?;
    if value.loose_eq(&JsValue::NULL) {
        return Some(None);
    }
    cast(&value).map(Some)
}

/// A running tracker. Created by `init(config)`.
#[allow(missing_debug_implementations)] // holds JS closures and timers
#[wasm_bindgen(js_name = Tracker)]
pub struct BrowserTracker {
    inner: Rc<RefCell<Shell>>,
}

struct Shell {
    core: Core<BrowserStorage, CryptoEntropy>,
    delivery: delivery::Delivery,
    /// An in-app navigation whose page view waits for the app to render
    /// (its time and URL as of the navigation).
    unsettled: Option<(crate::Now, String)>,
    _capture: Vec<dom::Listener>,
    warned: dom::Warnings,
}

/// Starts tracking: restores or creates the session and, unless
/// auto-capture is off, records a page view and starts listening.
#[wasm_bindgen]
pub fn init(config: JsValue) -> BrowserTracker {
    let mut warned = dom::Warnings::default();
    let js = JsConfig::read(&config).unwrap_or_else(|| {
        warned.warn(
            dom::Warn::Config,
            "config must be an object like {endpoint, site}; using defaults",
        );
        JsConfig::default()
    });
    let config = resolve(js, &mut warned);
    let capture = capture::Capture {
        page_views: config.autocapture,
        clicks: config.clicks,
    };
    let tab = delivery::tab_id(|| crate::ids::random_id(&mut CryptoEntropy));
    let delivery = delivery::Delivery::open(config.batch_url(), &config.site, dom::now(), &tab);
    let inner = Rc::new(RefCell::new(Shell {
        core: Core::new(config, BrowserStorage::open(), CryptoEntropy),
        delivery,
        unsettled: None,
        _capture: Vec::new(),
        warned,
    }));
    let listeners = capture::install(&inner, capture);
    if !dom::is_online() {
        set_online(&Rc::downgrade(&inner), false);
    }
    if let Ok(mut shell) = inner.try_borrow_mut() {
        shell._capture = listeners;
        shell.core.set_context(dom::context());
        if capture.page_views {
            shell.core.page_view(dom::now_local(), &dom::page(true));
            shell.core.set_active(dom::now(), dom::is_active());
        }
    }
    schedule_flush(&inner);
    BrowserTracker { inner }
}

fn resolve(js: JsConfig, warned: &mut dom::Warnings) -> Config {
    let endpoint = js.endpoint.filter(|e| !e.is_empty()).unwrap_or_else(|| {
        warned.warn(
            dom::Warn::Config,
            "config.endpoint is missing; sending to this page's origin",
        );
        dom::origin()
    });
    let site = js
        .site
        .filter(|s| !s.is_empty())
        .unwrap_or_else(dom::hostname);
    let mut config = Config::new(&endpoint, &site);
    let minutes = |v: Option<f64>, unit: f64| {
        v.filter(|m| m.is_finite() && *m > 0.0)
            .map(|m| (m * unit) as u64)
    };
    let defaults = SessionRules::default();
    config.session = SessionRules {
        idle_timeout_ms: minutes(js.session_timeout_minutes, 60_000.0)
            .unwrap_or(defaults.idle_timeout_ms),
        max_length_ms: match js.max_session_hours {
            // 0 (or a negative number) switches the limit off.
            Some(h) if h.is_finite() && h <= 0.0 => None,
            other => minutes(other, 3_600_000.0).or(defaults.max_length_ms),
        },
        split_at_midnight: js.split_at_midnight.unwrap_or(false),
        split_on_campaign: js.split_on_campaign.unwrap_or(false),
    };
    let autocapture = js.autocapture.unwrap_or(true);
    config.autocapture = autocapture && js.capture_page_views.unwrap_or(true);
    config.clicks = autocapture && js.capture_clicks.unwrap_or(true);
    config.respect_dnt = js.respect_dnt.unwrap_or(false);
    config.do_not_track = dom::do_not_track();
    config.require_consent = js.require_consent.unwrap_or(false);
    if let Some(words) = js.sensitive_params {
        config.sensitive_params = words;
    }
    config
}

/// Runs `f` on the core (unless the tracker is gone or busy) and makes sure
/// a flush is scheduled for what it queued.
///
/// A navigation still settling is recorded first, so events keep their order.
fn record(weak: &Weak<RefCell<Shell>>, f: impl FnOnce(&mut Core<BrowserStorage, CryptoEntropy>)) {
    let Some(inner) = weak.upgrade() else { return };
    if let Some(mut shell) = settled(&inner) {
        f(&mut shell.core);
    }
    schedule_flush(&inner);
}

/// The shell (unless busy), with a navigation still settling recorded.
///
/// Kept apart from the generic [`record`] so that its body exists once in
/// the wasm rather than once per caller.
fn settled(inner: &Rc<RefCell<Shell>>) -> Option<RefMut<'_, Shell>> {
    let mut shell = inner.try_borrow_mut().ok()?;
    if let Some((now, url)) = shell.unsettled.take() {
        let page = crate::Page {
            url,
            ..dom::page(false)
        };
        shell.core.navigate(now, &page);
    }
    Some(shell)
}

/// Notes an in-app navigation; its page view is taken when the app has
/// rendered (after `settle_ms`) or before the next event, whichever is first.
fn navigated(weak: &Weak<RefCell<Shell>>, now: crate::Now, url: String, settle_ms: i32) {
    record(weak, |_| {});
    let Some(inner) = weak.upgrade() else { return };
    if let Ok(mut shell) = inner.try_borrow_mut() {
        shell.unsettled = Some((now, url));
    }
    let weak = weak.clone();
    dom::after(settle_ms, move || record(&weak, |_| {}));
}

/// Moves what the core recorded into the send queue (persisted), then
/// sends what is due: everything now, by beacon, when the page is `leaving`.
fn schedule_flush(inner: &Rc<RefCell<Shell>>) {
    deliver(inner, delivery::Send::Due);
}

fn deliver(inner: &Rc<RefCell<Shell>>, send: delivery::Send) {
    if let Ok(mut shell) = inner.try_borrow_mut() {
        let now = dom::now();
        let events = shell.core.take_events();
        if !events.is_empty() {
            for event in &events {
                if let Some(json) = transport::encode_event(event) {
                    shell.delivery.push(json, now);
                }
            }
            shell.delivery.persist(now);
        }
    }
    delivery::pump(&Rc::downgrade(inner), send);
}

/// `navigator.onLine` changed.
fn set_online(weak: &Weak<RefCell<Shell>>, online: bool) {
    let Some(inner) = weak.upgrade() else { return };
    if let Ok(mut shell) = inner.try_borrow_mut() {
        shell.delivery.set_online(online, dom::now());
    }
    // Back online: whatever waited goes now.
    delivery::pump(weak, delivery::Send::Now);
}

/// Sends everything queued now (page exit: by beacon).
fn flush(weak: &Weak<RefCell<Shell>>, send: delivery::Send) {
    if let Some(inner) = weak.upgrade() {
        deliver(&inner, send);
    }
}

#[wasm_bindgen(js_class = Tracker)]
impl BrowserTracker {
    /// Records a custom event `name` with optional plain-data `props`.
    pub fn track(&self, name: JsValue, props: JsValue) {
        let Some(name) = name.as_string().filter(|n| !n.is_empty()) else {
            return self.warn(
                dom::Warn::Arguments,
                "track(name, props) needs a non-empty string name",
            );
        };
        let props = self.plain_data(props);
        self.with(|core| core.track(dom::now_local(), &dom::page(false), &name, props));
    }

    /// Links this visitor to `userId`; later events carry it.
    pub fn identify(&self, user_id: JsValue, traits: JsValue) {
        let Some(user_id) = user_id.as_string().filter(|u| !u.is_empty()) else {
            return self.warn(
                dom::Warn::Arguments,
                "identify(userId, traits) needs a non-empty string userId",
            );
        };
        let traits = self.plain_data(traits);
        self.with(|core| core.identify(dom::now_local(), &dom::page(false), &user_id, traits));
    }

    /// Logout: ends the session, forgets the user, starts a new visitor.
    pub fn reset(&self) {
        self.with(|core| core.reset(dom::now_local()));
    }

    /// A page view of the current URL, for apps that turned auto-capture off
    /// or navigate in ways the SDK cannot see. Repeats of the same URL count once.
    pub fn page(&self) {
        self.with(|core| core.navigate(dom::now_local(), &dom::page(true)));
    }

    /// The visitor's answer when `requireConsent` is set: `true` stores and
    /// sends what was held, `false` drops it and records nothing more.
    pub fn consent(&self, granted: JsValue) {
        let Some(granted) = granted.as_bool() else {
            return self.warn(dom::Warn::Arguments, "consent(granted) needs true or false");
        };
        self.with(|core| core.consent(granted));
    }

    /// Sends whatever is queued now (a navigation still settling included).
    pub fn flush(&self) {
        let weak = Rc::downgrade(&self.inner);
        record(&weak, |_| {});
        flush(&weak, delivery::Send::Now);
    }

    /// Stops all tracking on this browser until `optIn()`; remembered across visits.
    #[wasm_bindgen(js_name = optOut)]
    pub fn opt_out(&self) {
        self.with(|core| core.opt_out());
        if let Ok(mut shell) = self.inner.try_borrow_mut() {
            shell.delivery.clear(dom::now());
        }
    }

    #[wasm_bindgen(js_name = optIn)]
    pub fn opt_in(&self) {
        self.with(|core| core.opt_in());
    }

    #[wasm_bindgen(js_name = sessionId)]
    pub fn session_id(&self) -> Option<String> {
        self.inner.try_borrow().ok()?.core.session_id()
    }

    #[wasm_bindgen(js_name = visitorId)]
    pub fn visitor_id(&self) -> Option<String> {
        self.inner.try_borrow().ok()?.core.visitor_id()
    }

    /// Where the session is kept: `local`, `cookie` or `memory`.
    #[wasm_bindgen(js_name = storageKind)]
    pub fn storage_kind(&self) -> String {
        self.inner
            .try_borrow()
            .map(|s| s.core.storage_kind())
            .unwrap_or("memory")
            .into()
    }

    fn with(&self, f: impl FnOnce(&mut Core<BrowserStorage, CryptoEntropy>)) {
        record(&Rc::downgrade(&self.inner), f);
    }

    fn plain_data(&self, value: JsValue) -> Option<Value> {
        if value.is_undefined() || value.is_null() {
            return None;
        }
        match plain_data::from_js(&value) {
            Some(v) if v.is_object() => Some(v),
            _ => {
                self.warn(
                    dom::Warn::Props,
                    "props must be a plain object of plain data; dropped",
                );
                None
            }
        }
    }

    fn warn(&self, kind: dom::Warn, message: &str) {
        if let Ok(mut shell) = self.inner.try_borrow_mut() {
            shell.warned.warn(kind, message);
        }
    }
}
