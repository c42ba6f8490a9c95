//! The browser shell: web-sys storage, listeners, a timer and beacons around
//! the pure [`crate::Tracker`] core. Nothing here throws into the host page:
//! failures become one console warning per kind.

use crate::prelude::*;

mod capture;
mod delivery;
mod dom;
mod plain_data;
mod storage;
mod transport;

use crate::{Config, SessionRules, Tracker as Core, Value};
use alloc::rc::{Rc, Weak};
use core::cell::{RefCell, RefMut};
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
    /// the wrong type (or its getter throws).
    fn read(config: &JsValue) -> Option<JsConfig> {
        if !config.is_object() {
            return None;
        }
        let mut r = FieldReader { config, ok: true };
        let js = JsConfig {
            endpoint: r.string("endpoint"),
            site: r.string("site"),
            session_timeout_minutes: r.number("sessionTimeoutMinutes"),
            max_session_hours: r.number("maxSessionHours"),
            split_at_midnight: r.flag("splitAtMidnight"),
            split_on_campaign: r.flag("splitOnCampaign"),
            autocapture: r.flag("autocapture"),
            capture_page_views: r.flag("capturePageViews"),
            capture_clicks: r.flag("captureClicks"),
            respect_dnt: r.flag("respectDnt"),
            require_consent: r.flag("requireConsent"),
            sensitive_params: r.words("sensitiveParams"),
        };
        r.ok.then_some(js)
    }
}

/// Fields of the config object: a field that is missing, `null` or
/// `undefined` is `None`; one of the wrong type (or whose getter throws)
/// clears `ok`. Not generic over the type, so that it exists once in the wasm.
struct FieldReader<'a> {
    config: &'a JsValue,
    ok: bool,
}

impl FieldReader<'_> {
    fn field(&mut self, name: &str) -> Option<JsValue> {
        match js_sys::Reflect::get(self.config, &JsValue::from_str(name)) {
            Ok(value) if value.loose_eq(&JsValue::NULL) => None,
            Ok(value) => Some(value),
            Err(_) => {
                self.ok = false;
                None
            }
        }
    }

    fn checked<T>(&mut self, value: Option<T>) -> Option<T> {
        self.ok &= value.is_some();
        value
    }

    fn string(&mut self, name: &str) -> Option<String> {
        let value = self.field(name)?;
        self.checked(value.as_string())
    }

    fn number(&mut self, name: &str) -> Option<f64> {
        let value = self.field(name)?;
        self.checked(value.as_f64())
    }

    fn flag(&mut self, name: &str) -> Option<bool> {
        let value = self.field(name)?;
        self.checked(value.as_bool())
    }

    /// A list of words: an array of strings, or one comma-separated string.
    fn words(&mut self, name: &str) -> Option<Vec<String>> {
        let value = self.field(name)?;
        let items: Option<Vec<String>> = match value.as_string() {
            Some(text) => Some(text.split(',').map(str::to_owned).collect()),
            None if js_sys::Array::is_array(&value) => js_sys::Array::from(&value)
                .iter()
                .map(|w| w.as_string())
                .collect(),
            None => None,
        };
        let words = self
            .checked(items)?
            .iter()
            .map(|w| w.trim().to_ascii_lowercase())
            .filter(|w| !w.is_empty())
            .collect();
        Some(words)
    }
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
    host: Option<Host>,
    warned: dom::Warnings,
}

/// The host snippet's listeners and timers, and the one closure they
/// report to; dropping it removes them.
struct Host {
    js: JsValue,
    _dispatch: Closure<dyn FnMut(u32, f64, f64, JsValue)>,
}

impl Drop for Host {
    fn drop(&mut self) {
        dom::stop(&self.js);
    }
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
    let (page_views, clicks) = (config.autocapture, config.clicks);
    let tab = delivery::tab_id(|| crate::ids::random_id(&mut CryptoEntropy));
    let delivery = delivery::Delivery::open(config.batch_url(), &config.site, dom::now(), &tab);
    let inner = Rc::new(RefCell::new(Shell {
        core: Core::new(config, BrowserStorage::open(), CryptoEntropy),
        delivery,
        unsettled: None,
        host: None,
        warned,
    }));
    let weak = Rc::downgrade(&inner);
    let dispatch = Closure::<dyn FnMut(u32, f64, f64, JsValue)>::new(move |kind, a, b, c| {
        capture::on_event(&weak, kind, a, b, c)
    });
    let host = Host {
        js: dom::install(dispatch.as_ref(), page_views, clicks),
        _dispatch: dispatch,
    };
    if !dom::is_online() {
        set_online(&Rc::downgrade(&inner), false);
    }
    if let Ok(mut shell) = inner.try_borrow_mut() {
        shell.host = Some(host);
        shell.core.set_context(dom::context());
        if page_views {
            shell.core.page_view(dom::now_local(), &dom::page(true));
            shell.core.set_active(dom::now(), dom::is_active());
        }
    }
    schedule_flush(&inner);
    BrowserTracker { inner }
}

/// The configuration: the page's, with defaults for what it leaves out.
fn resolve(js: JsConfig, warned: &mut dom::Warnings) -> Config {
    let JsConfig {
        endpoint,
        site,
        session_timeout_minutes: timeout_minutes,
        max_session_hours: max_hours,
        split_at_midnight,
        split_on_campaign,
        autocapture,
        capture_page_views,
        capture_clicks,
        respect_dnt,
        require_consent,
        sensitive_params,
    } = js;
    let endpoint = endpoint.filter(|e| !e.is_empty()).unwrap_or_else(|| {
        warned.warn(
            dom::Warn::Config,
            "config.endpoint is missing; sending to this page's origin",
        );
        dom::origin()
    });
    let site = site.filter(|s| !s.is_empty()).unwrap_or_else(dom::hostname);
    let mut config = Config::new(&endpoint, &site);
    let minutes = |v: Option<f64>, unit: f64| {
        v.filter(|m| m.is_finite() && *m > 0.0)
            .map(|m| (m * unit) as u64)
    };
    let defaults = SessionRules::default();
    config.session = SessionRules {
        idle_timeout_ms: minutes(timeout_minutes, 60_000.0).unwrap_or(defaults.idle_timeout_ms),
        max_length_ms: match max_hours {
            // 0 (or a negative number) switches the limit off.
            Some(h) if h.is_finite() && h <= 0.0 => None,
            other => minutes(other, 3_600_000.0).or(defaults.max_length_ms),
        },
        split_at_midnight: split_at_midnight.unwrap_or(false),
        split_on_campaign: split_on_campaign.unwrap_or(false),
    };
    let autocapture = autocapture.unwrap_or(true);
    config.autocapture = autocapture && capture_page_views.unwrap_or(true);
    config.clicks = autocapture && capture_clicks.unwrap_or(true);
    config.respect_dnt = respect_dnt.unwrap_or(false);
    config.do_not_track = dom::do_not_track();
    config.require_consent = require_consent.unwrap_or(false);
    if let Some(words) = sensitive_params {
        config.sensitive_params = words;
    }
    config
}

/// Runs `f` on the core (unless the tracker is gone or busy) and makes sure
/// a flush is scheduled for what it queued.
///
/// A navigation still settling is recorded first, so events keep their
/// order. `f` is a `dyn` so that this exists once in the wasm rather than
/// once per caller.
fn record(
    weak: &Weak<RefCell<Shell>>,
    f: &mut dyn FnMut(&mut Core<BrowserStorage, CryptoEntropy>),
) {
    let Some(inner) = weak.upgrade() else { return };
    if let Some(mut shell) = settled(&inner) {
        f(&mut shell.core);
    }
    schedule_flush(&inner);
}

/// The shell (unless busy), with a navigation still settling recorded.
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

/// Moves what the core recorded into the send queue (persisted), then
/// sends what is due.
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
        let mut props = self.plain_data(props);
        self.with(&mut |core| core.track(dom::now_local(), &dom::page(false), &name, props.take()));
    }

    /// Links this visitor to `userId`; later events carry it.
    pub fn identify(&self, user_id: JsValue, traits: JsValue) {
        let Some(user_id) = user_id.as_string().filter(|u| !u.is_empty()) else {
            return self.warn(
                dom::Warn::Arguments,
                "identify(userId, traits) needs a non-empty string userId",
            );
        };
        let mut traits = self.plain_data(traits);
        self.with(&mut |core| {
            core.identify(dom::now_local(), &dom::page(false), &user_id, traits.take())
        });
    }

    /// Logout: ends the session, forgets the user, starts a new visitor.
    pub fn reset(&self) {
        self.with(&mut |core| core.reset(dom::now_local()));
    }

    /// A page view of the current URL, for apps that turned auto-capture off
    /// or navigate in ways the SDK cannot see. Repeats of the same URL count once.
    pub fn page(&self) {
        self.with(&mut |core| core.navigate(dom::now_local(), &dom::page(true)));
    }

    /// The visitor's answer when `requireConsent` is set: `true` stores and
    /// sends what was held, `false` drops it and records nothing more.
    pub fn consent(&self, granted: JsValue) {
        let Some(granted) = granted.as_bool() else {
            return self.warn(dom::Warn::Arguments, "consent(granted) needs true or false");
        };
        self.with(&mut |core| core.consent(granted));
    }

    /// Sends whatever is queued now (a navigation still settling included).
    pub fn flush(&self) {
        let weak = Rc::downgrade(&self.inner);
        record(&weak, &mut |_| {});
        flush(&weak, delivery::Send::Now);
    }

    /// Stops all tracking on this browser until `optIn()`; remembered across visits.
    #[wasm_bindgen(js_name = optOut)]
    pub fn opt_out(&self) {
        self.with(&mut |core| core.opt_out());
        if let Ok(mut shell) = self.inner.try_borrow_mut() {
            shell.delivery.clear(dom::now());
        }
    }

    #[wasm_bindgen(js_name = optIn)]
    pub fn opt_in(&self) {
        self.with(&mut |core| core.opt_in());
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

    fn with(&self, f: &mut dyn FnMut(&mut Core<BrowserStorage, CryptoEntropy>)) {
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
