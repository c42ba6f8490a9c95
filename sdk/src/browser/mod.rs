//! The browser shell around the pure [`crate::Tracker`] core: storage,
//! listeners, one timer and the requests, reached through the JS snippet in
//! `dom.rs`. Nothing here throws into the host page: failures become one
//! console warning per kind.

use crate::prelude::*;

mod capture;
mod delivery;
mod dom;
mod plain_data;
mod storage;
mod transport;

use crate::{ClickTarget, Config, SessionRules, Tracker as Core, Value};
use alloc::rc::{Rc, Weak};
use core::cell::{RefCell, RefMut};
use storage::{BrowserStorage, CryptoEntropy};
use wasm_bindgen::prelude::*;

/// A free-list allocator a seventh the size of std's dlmalloc. The SDK's heap
/// is small (a session, a queue of events), so its linear search costs nothing.
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());

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
    let config = read_config(&config);
    let (page_views, clicks) = (config.autocapture, config.clicks);
    let tab = delivery::tab_id(|| crate::ids::random_id(&mut CryptoEntropy));
    let delivery = delivery::Delivery::open(config.batch_url(), &config.site, dom::now(), &tab);
    let inner = Rc::new(RefCell::new(Shell {
        core: Core::new(config, BrowserStorage::open(), CryptoEntropy),
        delivery,
        unsettled: None,
        host: None,
        warned: dom::Warnings::default(),
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

/// The configuration the page passes (`init(config)`, or the script tag's
/// data attributes), as the snippet's `__wbs_config` checked it and filled
/// in its defaults (warning on the console about what it could not use).
fn read_config(page_config: &JsValue) -> Config {
    let fields = match plain_data::from_js(&dom::read_config(page_config)) {
        Some(Value::Array(fields)) => fields,
        _ => Vec::new(),
    };
    let text = |i: usize| match fields.get(i) {
        Some(Value::String(s)) => s.as_str(),
        _ => "",
    };
    let number = |i: usize| match fields.get(i) {
        Some(Value::Number(n)) => *n,
        _ => -1.0,
    };
    // -1: the default; -2: off (a session length of 0 or less).
    let ms = |n: f64| (n >= 0.0).then_some(n as u64);
    let defaults = SessionRules::default();
    let flags = match number(4) {
        n if n >= 0.0 => n as u32,
        _ => CAPTURE_PAGE_VIEWS | CAPTURE_CLICKS,
    };
    let mut config = Config::new(text(0), text(1));
    config.session = SessionRules {
        idle_timeout_ms: ms(number(2)).unwrap_or(defaults.idle_timeout_ms),
        max_length_ms: match number(3) {
            -2.0 => None,
            n => ms(n).or(defaults.max_length_ms),
        },
        split_at_midnight: flags & SPLIT_AT_MIDNIGHT != 0,
        split_on_campaign: flags & SPLIT_ON_CAMPAIGN != 0,
    };
    config.autocapture = flags & CAPTURE_PAGE_VIEWS != 0;
    config.clicks = flags & CAPTURE_CLICKS != 0;
    config.respect_dnt = flags & RESPECT_DNT != 0;
    config.require_consent = flags & REQUIRE_CONSENT != 0;
    config.do_not_track = dom::do_not_track();
    // The words, one per line (a query parameter's name never holds a raw
    // line break), given: the default list is replaced, even by none.
    if let Some(Value::String(words)) = fields.get(5) {
        config.sensitive_params = crate::text::parts(words, b'\n')
            .map(|w| w.trim().to_ascii_lowercase())
            .filter(|w| !w.is_empty())
            .collect();
    }
    config
}

/// Bits of `__wbs_config`'s flags.
const SPLIT_AT_MIDNIGHT: u32 = 1;
const SPLIT_ON_CAMPAIGN: u32 = 2;
const CAPTURE_PAGE_VIEWS: u32 = 4;
const CAPTURE_CLICKS: u32 = 8;
const RESPECT_DNT: u32 = 16;
const REQUIRE_CONSENT: u32 = 32;

/// What the page's calls and the listeners ask of the core. An enum run by
/// one `match` in [`record`], rather than a closure (and its vtable) per caller.
enum Command {
    /// Nothing more than what `record` always does: take a navigation
    /// still settling, and flush what was recorded.
    Settle,
    Track(String, Option<Value>),
    Identify(String, Option<Value>),
    Reset,
    /// `page()`: a page view unless the URL is the same.
    Navigate,
    /// A page restored from the back/forward cache.
    PageView,
    Consent(bool),
    OptOut,
    OptIn,
    Leave,
    /// Visibility or focus changed.
    Active,
    Scrolled(u8),
    Click(ClickTarget),
}

/// Runs `command` on the core (unless the tracker is gone or busy) and makes
/// sure a flush is scheduled for what it queued.
///
/// A navigation still settling is recorded first, so events keep their order.
fn record(weak: &Weak<RefCell<Shell>>, command: Command) {
    let Some(inner) = weak.upgrade() else { return };
    if let Some(mut shell) = settled(&inner) {
        let shell = &mut *shell;
        let core = &mut shell.core;
        match command {
            Command::Settle => {}
            Command::Track(name, props) => {
                core.track(dom::now_local(), &dom::page(false), &name, props)
            }
            Command::Identify(user_id, traits) => {
                core.identify(dom::now_local(), &dom::page(false), &user_id, traits)
            }
            Command::Reset => core.reset(dom::now_local()),
            Command::Navigate => core.navigate(dom::now_local(), &dom::page(true)),
            Command::PageView => core.page_view(dom::now_local(), &dom::page(true)),
            Command::Consent(granted) => core.consent(granted),
            Command::OptOut => {
                core.opt_out();
                shell.delivery.clear(dom::now());
            }
            Command::OptIn => core.opt_in(),
            Command::Leave => core.leave(dom::now_local()),
            Command::Active => core.set_active(dom::now(), dom::is_active()),
            Command::Scrolled(pct) => core.scrolled(pct),
            Command::Click(target) => core.click(dom::now_local(), &dom::page(false), &target),
        }
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

/// Moves what the core recorded into the send queue (persisted once the
/// work in hand is done), then sends what is due.
fn schedule_flush(inner: &Rc<RefCell<Shell>>) {
    deliver(inner, delivery::Send::Due);
}

fn deliver(inner: &Rc<RefCell<Shell>>, send: delivery::Send) {
    if let Ok(mut shell) = inner.try_borrow_mut() {
        let now = dom::now();
        let events = shell.core.take_events();
        if !events.is_empty() {
            let Shell { delivery, host, .. } = &mut *shell;
            for event in &events {
                delivery.push(transport::encode_event(event), now);
            }
            delivery.changed(host.as_ref().map(|h| &h.js), now);
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
        self.record(Command::Track(name, props));
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
        self.record(Command::Identify(user_id, traits));
    }

    /// Logout: ends the session, forgets the user, starts a new visitor.
    pub fn reset(&self) {
        self.record(Command::Reset);
    }

    /// A page view of the current URL, for apps that turned auto-capture off
    /// or navigate in ways the SDK cannot see. Repeats of the same URL count once.
    pub fn page(&self) {
        self.record(Command::Navigate);
    }

    /// The visitor's answer when `requireConsent` is set: `true` stores and
    /// sends what was held, `false` drops it and records nothing more.
    pub fn consent(&self, granted: JsValue) {
        let Some(granted) = granted.as_bool() else {
            return self.warn(dom::Warn::Arguments, "consent(granted) needs true or false");
        };
        self.record(Command::Consent(granted));
    }

    /// Sends whatever is queued now (a navigation still settling included).
    pub fn flush(&self) {
        self.record(Command::Settle);
        flush(&Rc::downgrade(&self.inner), delivery::Send::Now);
    }

    /// Stops all tracking on this browser until `optIn()`; remembered across visits.
    #[wasm_bindgen(js_name = optOut)]
    pub fn opt_out(&self) {
        self.record(Command::OptOut);
    }

    #[wasm_bindgen(js_name = optIn)]
    pub fn opt_in(&self) {
        self.record(Command::OptIn);
    }

    /// The current session id (another tab may have rotated it), or
    /// `undefined` while consent is pending or refused.
    #[wasm_bindgen(js_name = sessionId, unchecked_return_type = "string | undefined")]
    pub fn session_id_js(&self) -> JsValue {
        text_or_undefined(self.session_id())
    }

    #[wasm_bindgen(js_name = visitorId, unchecked_return_type = "string | undefined")]
    pub fn visitor_id_js(&self) -> JsValue {
        text_or_undefined(self.visitor_id())
    }

    /// Where the session is kept: `local`, `cookie` or `memory`.
    #[wasm_bindgen(js_name = storageKind, unchecked_return_type = "string")]
    pub fn storage_kind_js(&self) -> JsValue {
        self.storage_kind().into()
    }

    fn record(&self, command: Command) {
        record(&Rc::downgrade(&self.inner), command);
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

/// The readings, for Rust callers (the exported `sessionId`, `visitorId` and
/// `storageKind` hand JS values over, which takes less glue than strings).
impl BrowserTracker {
    pub fn session_id(&self) -> Option<String> {
        self.inner.try_borrow().ok()?.core.session_id()
    }

    pub fn visitor_id(&self) -> Option<String> {
        self.inner.try_borrow().ok()?.core.visitor_id()
    }

    /// Where the session is kept: `local`, `cookie` or `memory`.
    pub fn storage_kind(&self) -> &'static str {
        self.inner
            .try_borrow()
            .map(|s| s.core.storage_kind())
            .unwrap_or("memory")
    }
}

fn text_or_undefined(text: Option<String>) -> JsValue {
    text.map_or(JsValue::UNDEFINED, |t| JsValue::from_str(&t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_SENSITIVE_PARAMS;
    use wasm_bindgen_test::*;

    wasm_bindgen_test_configure!(run_in_browser);

    fn js(body: &str) -> JsValue {
        js_sys::Function::new_no_args(body)
            .call0(&JsValue::NULL)
            .unwrap()
    }

    /// The config read from `source` (JS), and the console warnings it caused.
    fn read(source: &str) -> (Config, Vec<String>) {
        js("window.__warned = []; window.__warn = console.warn;
            console.warn = function (m) { __warned.push(String(m)); };");
        let config = read_config(&js(source));
        js("console.warn = window.__warn;");
        let warned = js_sys::Array::from(&js("return __warned"))
            .iter()
            .filter_map(|w| w.as_string())
            .collect();
        (config, warned)
    }

    #[wasm_bindgen_test]
    fn the_page_config_is_read_with_its_defaults() {
        let (c, warned) = read(
            "return {endpoint: 'https://c.example/', site: 's', sessionTimeoutMinutes: 1.5,
                     maxSessionHours: 0, splitAtMidnight: true, captureClicks: false,
                     respectDnt: true, requireConsent: true, sensitiveParams: [' Plan ', '', 'KEY']}",
        );
        assert!(warned.is_empty(), "{warned:?}");
        assert_eq!(
            (c.endpoint.as_str(), c.site.as_str()),
            ("https://c.example", "s")
        );
        assert_eq!(
            c.session,
            SessionRules {
                idle_timeout_ms: 90_000,
                max_length_ms: None,
                split_at_midnight: true,
                split_on_campaign: false,
            }
        );
        assert!(c.autocapture && !c.clicks && c.respect_dnt && c.require_consent);
        assert_eq!(c.sensitive_params, ["plan", "key"]);

        let (defaults, warned) = read("return {site: null, maxSessionHours: NaN}");
        assert_eq!(
            warned,
            ["waymark: config.endpoint is missing; sending to this page's origin"]
        );
        let origin = js("return location.origin").as_string().unwrap();
        let host = js("return location.hostname").as_string().unwrap();
        assert_eq!(
            (defaults.endpoint.as_str(), defaults.site.as_str()),
            (origin.as_str(), host.as_str())
        );
        assert_eq!(defaults.session, SessionRules::default());
        assert!(
            defaults.autocapture
                && defaults.clicks
                && !defaults.respect_dnt
                && !defaults.require_consent
        );
        assert_eq!(defaults.sensitive_params, DEFAULT_SENSITIVE_PARAMS);

        let (c, _) = read("return {endpoint: 'e', autocapture: false, maxSessionHours: 2, sensitiveParams: 'a, B,'}");
        assert!(!c.autocapture && !c.clicks);
        assert_eq!(c.session.max_length_ms, Some(7_200_000));
        assert_eq!(c.sensitive_params, ["a", "b"]);
        let (c, _) = read("return {endpoint: 'e', sensitiveParams: ''}");
        assert!(
            c.sensitive_params.is_empty(),
            "an empty list turns redaction off"
        );
    }

    #[wasm_bindgen_test]
    fn an_unusable_config_means_all_defaults_and_one_warning() {
        let (defaults, _) = read("return {endpoint: 'https://c.example'}");
        for bad in [
            "return 'https://c.example'",
            "return {endpoint: 'https://c.example', site: 5}",
            "return {endpoint: 'https://c.example', sensitiveParams: ['a', 1]}",
            "return {endpoint: 'https://c.example', sensitiveParams: ['a', , 'b']}",
            "return {endpoint: 'https://c.example', get site() { throw new Error('no'); }}",
        ] {
            let (c, warned) = read(bad);
            assert_eq!(
                warned,
                ["waymark: config must be an object like {endpoint, site}; using defaults"],
                "{bad}"
            );
            assert_eq!(
                c.endpoint,
                js("return location.origin").as_string().unwrap(),
                "{bad}"
            );
            assert_eq!(
                (c.session, c.sensitive_params),
                (defaults.session, defaults.sensitive_params.clone()),
                "{bad}"
            );
        }
    }
}
