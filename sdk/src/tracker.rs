//! The exported tracker: the core's [`Tracker`](CoreTracker) with browser
//! storage and entropy, the listeners, the delivery and the page's calls.

use std::cell::{RefCell, RefMut};
use std::rc::{Rc, Weak};

use gloo_timers::callback::Timeout;
use wasm_bindgen::prelude::*;
use waymark_sdk_core::{
    ClickTarget, DynTracker, Now, Page, Problem, Tracker as CoreTracker, Urgency, Value,
};

use super::config::read_config;
use super::delivery::{self, Delivery};
use super::listeners::{self, Listeners};
use super::page::{self, Warn, Warnings};
use super::storage::{self, BrowserStorage, CryptoEntropy};
use super::vitals::Meter;

/// How long a navigation settles before its page view is taken, so that the
/// title the app sets after rendering is the one recorded.
const SETTLE_MS: u32 = 100;

/// A running tracker. Created by `init(config)`.
#[allow(missing_debug_implementations)] // holds JS closures and timers
#[wasm_bindgen(js_name = Tracker)]
pub struct BrowserTracker {
    inner: Rc<RefCell<Shell>>,
}

pub struct Shell {
    core: DynTracker,
    pub delivery: Delivery,
    /// An in-app navigation whose page view waits for the app to render
    /// (its time and URL as of the navigation), and the timer that takes it.
    unsettled: Option<(Now, String, Timeout)>,
    listeners: Option<Listeners>,
    /// The page load's Core Web Vitals (with page views only).
    vitals: Option<Meter>,
    pub warned: Warnings,
}

/// Starts tracking: restores or creates the session, replays the pages the
/// snippet's stub kept for it (`storage::take_early_pages`) and, unless
/// auto-capture is off, records a page view and starts listening.
#[wasm_bindgen]
pub fn init(config: JsValue) -> BrowserTracker {
    let (config, problem) = read_config(&config);
    let mut warned = Warnings::default();
    if let Some(problem) = problem {
        warned.warn(Warn::Config, problem.message());
    }
    let (page_views, clicks) = (config.autocapture, config.clicks);
    let delivery = Delivery::open(
        config.batch_url(),
        &config.site,
        page::now(),
        &storage::tab_id(),
    );
    let inner = Rc::new(RefCell::new(Shell {
        core: CoreTracker::new(
            config,
            Box::new(BrowserStorage::open()),
            Box::new(CryptoEntropy),
        ),
        delivery,
        unsettled: None,
        listeners: None,
        vitals: page_views.then(Meter::start),
        warned,
    }));
    let weak = Rc::downgrade(&inner);
    let listeners = listeners::install(&weak, page_views, clicks);
    if !page::is_online() {
        set_online(&weak, false);
    }
    if let Ok(mut shell) = inner.try_borrow_mut() {
        shell.listeners = Some(listeners);
        let context = page::context(&shell.core.config().sensitive_params);
        shell.core.set_context(context);
        // Pages left before the SDK started on them, at their own times and
        // before this one's page view. Not under pending consent: nothing
        // is read from storage then (and the stub wrote nothing).
        if !shell.core.config().require_consent {
            let offset = page::now_local().utc_offset_min;
            for early in storage::take_early_pages() {
                shell.core.replay_early(early, offset);
            }
        }
        if page_views {
            shell.core.page_view(page::now_local(), &page::page(true));
            shell.core.set_active(page::now(), page::is_active());
        }
    }
    deliver(&inner, Urgency::Due);
    BrowserTracker { inner }
}

/// What the page's calls and the listeners ask of the core.
pub enum Command {
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
pub fn record(weak: &Weak<RefCell<Shell>>, command: Command) {
    let Some(inner) = weak.upgrade() else { return };
    if let Some(mut shell) = settled(&inner) {
        let shell = &mut *shell;
        let core = &mut shell.core;
        match command {
            Command::Settle => {}
            Command::Track(name, props) => {
                core.track(page::now_local(), &page::page(false), &name, props)
            }
            Command::Identify(user_id, traits) => {
                core.identify(page::now_local(), &page::page(false), &user_id, traits)
            }
            Command::Reset => core.reset(page::now_local()),
            Command::Navigate => core.navigate(page::now_local(), &page::page(true)),
            Command::PageView => core.page_view(page::now_local(), &page::page(true)),
            Command::Consent(granted) => core.consent(granted),
            Command::OptOut => {
                core.opt_out();
                shell.delivery.clear(page::now());
            }
            Command::OptIn => core.opt_in(),
            Command::Leave => core.leave(page::now_local()),
            Command::Active => core.set_active(page::now(), page::is_active()),
            Command::Scrolled(pct) => core.scrolled(pct),
            Command::Click(target) => core.click(page::now_local(), &page::page(false), &target),
        }
    }
    deliver(&inner, Urgency::Due);
}

/// The shell (unless busy), with the Core Web Vitals measured so far handed
/// to the core and a navigation still settling recorded.
fn settled(inner: &Rc<RefCell<Shell>>) -> Option<RefMut<'_, Shell>> {
    let mut shell = inner.try_borrow_mut().ok()?;
    // What the page leave of the page load (on leaving, or on an in-app
    // navigation) reports.
    if let Some(vitals) = shell.vitals.as_ref().map(Meter::vitals) {
        shell.core.set_vitals(vitals);
    }
    if let Some((now, url, _timer)) = shell.unsettled.take() {
        let page = Page {
            url,
            ..page::page(false)
        };
        shell.core.navigate(now, &page);
    }
    Some(shell)
}

/// Notes an in-app navigation (its time and URL now); its page view is taken
/// when the app has rendered, [`SETTLE_MS`] later, or before the next event,
/// whichever is first. The same URL twice is skipped by the core.
pub fn navigated(weak: &Weak<RefCell<Shell>>) {
    let (now, url) = (page::now_local(), page::href());
    record(weak, Command::Settle);
    let Some(inner) = weak.upgrade() else { return };
    if let Ok(mut shell) = inner.try_borrow_mut() {
        let weak = weak.clone();
        let timer = Timeout::new(SETTLE_MS, move || record(&weak, Command::Settle));
        shell.unsettled = Some((now, url, timer));
    };
}

/// Moves what the core recorded into the send queue (persisted once the
/// work in hand is done) and tells of its problems, then sends what is due.
fn deliver(inner: &Rc<RefCell<Shell>>, send: Urgency) {
    let weak = Rc::downgrade(inner);
    if let Ok(mut shell) = inner.try_borrow_mut() {
        let Shell {
            core,
            delivery,
            warned,
            ..
        } = &mut *shell;
        if core.pending_len() > 0 {
            core.drain_into(&mut delivery.queue, page::now(), &mut page::number_text);
            delivery.changed(&weak);
        }
        for problem in core.take_problems() {
            let kind = match problem {
                Problem::PropsTooLarge => Warn::Props,
                Problem::ContextTooLarge => Warn::Context,
                Problem::UserIdTooLong => Warn::Identify,
            };
            warned.warn(kind, problem.message());
        }
    }
    delivery::pump(&weak, send);
}

/// `navigator.onLine` changed.
pub fn set_online(weak: &Weak<RefCell<Shell>>, online: bool) {
    let Some(inner) = weak.upgrade() else { return };
    if let Ok(mut shell) = inner.try_borrow_mut() {
        shell.delivery.queue.set_online(online, page::now());
    }
    // Back online: whatever waited goes now.
    delivery::pump(weak, Urgency::Now);
}

/// Sends everything queued now (page exit: by beacon).
pub fn flush(weak: &Weak<RefCell<Shell>>, send: Urgency) {
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
                Warn::Arguments,
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
                Warn::Arguments,
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
            return self.warn(Warn::Arguments, "consent(granted) needs true or false");
        };
        self.record(Command::Consent(granted));
    }

    /// Sends whatever is queued now (a navigation still settling included).
    pub fn flush(&self) {
        self.record(Command::Settle);
        flush(&Rc::downgrade(&self.inner), Urgency::Now);
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
            .to_owned()
    }

    /// Events the collector refused (a whole batch, or one by one in its
    /// answer's `rejected` list) since this tracker started.
    #[wasm_bindgen(js_name = refusedEvents)]
    pub fn refused_events(&self) -> f64 {
        self.inner
            .try_borrow()
            .map_or(0.0, |s| s.delivery.queue.refused() as f64)
    }

    fn record(&self, command: Command) {
        record(&Rc::downgrade(&self.inner), command);
    }

    /// Plain data the page passes (`props`, traits), read with
    /// serde-wasm-bindgen under the core's [`Value`] limits; `None` for
    /// anything else (functions, symbols, binary data, non-string keys,
    /// too deep or too many entries, a getter that throws), with a warning.
    fn plain_data(&self, value: JsValue) -> Option<Value> {
        if value.is_undefined() || value.is_null() {
            return None;
        }
        match serde_wasm_bindgen::from_value::<Value>(value) {
            Ok(v) if v.is_object() => Some(v),
            _ => {
                self.warn(
                    Warn::Props,
                    "props must be a plain object of plain data; dropped",
                );
                None
            }
        }
    }

    fn warn(&self, kind: Warn, message: &str) {
        if let Ok(mut shell) = self.inner.try_borrow_mut() {
            shell.warned.warn(kind, message);
        }
    }
}
