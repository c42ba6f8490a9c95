//! The browser shell: web-sys storage, listeners, a timer and beacons around
//! the pure [`crate::Tracker`] core. Nothing here throws into the host page:
//! failures become one console warning per kind.

mod dom;
mod plain_data;
mod storage;
mod transport;

use crate::{Config, SessionRules, Tracker as Core, Value};
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use storage::{BrowserStorage, CryptoEntropy};
use wasm_bindgen::prelude::*;

/// A free-list allocator a seventh the size of std's dlmalloc. The SDK's heap
/// is small (a session, a queue of events), so its linear search costs nothing.
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());

/// How long events wait so that a burst (a page view and the calls queued
/// before the SDK loaded) leaves as one request.
const FLUSH_DELAY_MS: i32 = 1_000;

/// Configuration as the page passes it (`init(config)` or the script tag's data attributes).
#[derive(Default)]
struct JsConfig {
    endpoint: Option<String>,
    site: Option<String>,
    session_timeout_minutes: Option<f64>,
    max_session_hours: Option<f64>,
    autocapture: Option<bool>,
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
            autocapture: field(config, "autocapture", JsValue::as_bool)?,
        })
    }
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
    flush_timer: Option<dom::Timeout>,
    _listeners: Vec<dom::Listener>,
    warned: dom::Warnings,
}

/// Starts tracking: restores or creates the session and, unless
/// `autocapture` is false, records a page view.
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
    let autocapture = config.autocapture;
    let inner = Rc::new(RefCell::new(Shell {
        core: Core::new(config, BrowserStorage::open(), CryptoEntropy),
        flush_timer: None,
        _listeners: Vec::new(),
        warned,
    }));
    let listeners = vec![
        dom::on_window("pagehide", flush_now(&inner)),
        dom::on_document("visibilitychange", {
            let flush = flush_now(&inner);
            move || {
                if dom::is_hidden() {
                    flush();
                }
            }
        }),
    ];
    if let Ok(mut shell) = inner.try_borrow_mut() {
        shell._listeners = listeners.into_iter().flatten().collect();
        shell.core.set_context(dom::context());
        if autocapture {
            shell.core.page_view(dom::now(), &dom::page(true));
        }
    }
    let tracker = BrowserTracker { inner };
    tracker.schedule_flush();
    tracker
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
        ..defaults
    };
    config.autocapture = js.autocapture.unwrap_or(true);
    config
}

/// A callback that sends everything queued right away (page exit).
fn flush_now(inner: &Rc<RefCell<Shell>>) -> impl Fn() + 'static {
    let weak = Rc::downgrade(inner);
    move || flush(&weak)
}

fn flush(weak: &Weak<RefCell<Shell>>) {
    let Some(inner) = weak.upgrade() else { return };
    let Ok(mut shell) = inner.try_borrow_mut() else {
        return;
    };
    shell.flush_timer = None;
    let url = shell.core.config().batch_url();
    while let Some(batch) = shell.core.take_batch(dom::now()) {
        if let Err(warning) = transport::send(&url, &batch) {
            shell.warned.warn(dom::Warn::Send, warning);
        }
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
        self.with(|core| core.track(dom::now(), &dom::page(false), &name, props));
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
        self.with(|core| core.identify(dom::now(), &dom::page(false), &user_id, traits));
    }

    /// Logout: ends the session, forgets the user, starts a new visitor.
    pub fn reset(&self) {
        self.with(|core| core.reset(dom::now()));
    }

    /// Sends whatever is queued now.
    pub fn flush(&self) {
        flush(&Rc::downgrade(&self.inner));
    }

    /// Stops all tracking on this browser until `optIn()`; remembered across visits.
    #[wasm_bindgen(js_name = optOut)]
    pub fn opt_out(&self) {
        self.with(|core| core.opt_out());
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

    /// Where the session is kept: `local` or `memory`.
    #[wasm_bindgen(js_name = storageKind)]
    pub fn storage_kind(&self) -> String {
        self.inner
            .try_borrow()
            .map(|s| s.core.storage_kind())
            .unwrap_or("memory")
            .into()
    }

    fn with(&self, f: impl FnOnce(&mut Core<BrowserStorage, CryptoEntropy>)) {
        if let Ok(mut shell) = self.inner.try_borrow_mut() {
            f(&mut shell.core);
        }
        self.schedule_flush();
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

    fn schedule_flush(&self) {
        let Ok(mut shell) = self.inner.try_borrow_mut() else {
            return;
        };
        if shell.flush_timer.is_some() || shell.core.pending_len() == 0 {
            return;
        }
        let weak = Rc::downgrade(&self.inner);
        shell.flush_timer = dom::Timeout::new(FLUSH_DELAY_MS, move || flush(&weak));
    }
}
