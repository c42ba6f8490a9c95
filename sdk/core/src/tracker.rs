//! The tracker's deterministic core: sessions, event building and the queue.
//!
//! It is driven by the shell, which passes the time and the page with every
//! call. Session state is re-read from storage before every decision, so a
//! tab that slept, a reload or another tab's rotation is always seen.

use crate::prelude::*;
use alloc::boxed::Box;

use crate::click::ClickTarget;
use crate::config::Config;
use crate::event::{Event, EventType, Page};
use crate::ids::{self, Entropy};
use crate::json::{push_value, NumberFormat};
use crate::page::PageVisit;
use crate::queue::SendQueue;
use crate::session::{campaign_of, EndReason, Now, Session};
use crate::storage::Storage;
use crate::text;
use crate::value::Value;
use crate::vitals::Vitals;

use waymark_wire::{
    cut_chars, redact_url, MAX_CONTEXT_BYTES, MAX_NAME_CHARS, MAX_PROPS_BYTES, MAX_REFERRER_CHARS,
    MAX_TITLE_CHARS, MAX_URL_CHARS, MAX_USER_ID_CHARS,
};

/// Most events held between two [`Tracker::drain_into`] calls; the oldest
/// go first past it, counted as dropped.
pub const MAX_PENDING_EVENTS: usize = 1_000;
/// Most calls held while consent is pending; later ones are dropped.
pub const MAX_HELD_CALLS: usize = 100;

/// Whether the visitor agreed to be tracked (only asked when
/// [`Config::require_consent`] is set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// Not asked, or granted: track.
    Granted,
    /// Waiting for an answer: calls are held in memory, nothing stored or sent.
    Pending,
    /// Refused: nothing is recorded.
    Denied,
}

/// Something the page's developer should hear about, once: the tracker
/// kept the event but not all of what was given, or could not take a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// `props` or traits over the wire limit: dropped, the event kept.
    PropsTooLarge,
    /// The device context over the wire limit: dropped, the event kept.
    ContextTooLarge,
    /// `identify` with a user id over the wire limit: ignored.
    UserIdTooLong,
}

impl Problem {
    pub fn message(self) -> &'static str {
        match self {
            Problem::PropsTooLarge => {
                "props larger than 16 KiB as JSON were dropped; the event was kept"
            }
            Problem::ContextTooLarge => {
                "the device context was larger than 16 KiB as JSON and was dropped; the event was kept"
            }
            Problem::UserIdTooLong => "identify(userId) takes at most 256 characters; ignored",
        }
    }
}

/// A recording call: run at once, or held until consent is given and then
/// replayed with its original time. A plain enum rather than boxed
/// closures, so the wasm holds one `match` instead of a vtable per call.
enum Call {
    View(Now, Page),
    Navigate(Now, Page),
    Leave(Now),
    Click(Now, Page, ClickTarget),
    Track(Now, Page, String, Option<Value>),
    Identify(Now, Page, String, Option<Value>),
    Reset(Now),
}

/// The tracker with boxed storage and entropy: the browser shell's, and
/// [`crate::keyed_replay`]'s, so the wasm holds one copy of its code.
pub type DynTracker = Tracker<Box<dyn Storage>, Box<dyn Entropy>>;

/// The tracker core, generic over where it keeps state and how it draws ids.
pub struct Tracker<S, E> {
    config: Config,
    storage: S,
    entropy: E,
    /// The session as last written; the source of truth once storage fails.
    memory: Option<Session>,
    storage_failed: bool,
    opted_out: bool,
    consent: Consent,
    held: Vec<Call>,
    context: Option<Value>,
    /// Whether this page load's context went out already.
    context_sent: bool,
    page: Option<PageVisit>,
    /// The page load's Core Web Vitals, for the leaves of its page view.
    vitals: Vitals,
    pending: Vec<Event>,
    /// Events dropped past [`MAX_PENDING_EVENTS`], not yet handed over.
    dropped: u64,
    problems: Vec<Problem>,
}

impl<S, E> core::fmt::Debug for Tracker<S, E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tracker")
            .field("config", &self.config)
            .field("consent", &self.consent)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl<S: Storage, E: Entropy> Tracker<S, E> {
    pub fn new(config: Config, storage: S, entropy: E) -> Self {
        let consent = if config.require_consent {
            Consent::Pending
        } else {
            Consent::Granted
        };
        // Under pending consent the opt-out flag is not even read.
        let opted_out =
            consent == Consent::Granted && storage.get(&key(&config, "optout")).is_some();
        Tracker {
            config,
            storage,
            entropy,
            memory: None,
            storage_failed: false,
            opted_out,
            consent,
            held: Vec::new(),
            context: None,
            context_sent: false,
            page: None,
            vitals: Vitals::default(),
            pending: Vec::new(),
            dropped: 0,
            problems: Vec::new(),
        }
    }

    /// Records the visitor's answer: granting replays the held calls, refusing drops them.
    pub fn consent(&mut self, granted: bool) {
        if !granted {
            self.consent = Consent::Denied;
            self.held.clear();
            self.pending.clear();
            return;
        }
        if self.consent == Consent::Granted {
            return;
        }
        self.consent = Consent::Granted;
        self.opted_out = self.storage.get(&key(&self.config, "optout")).is_some();
        for call in core::mem::take(&mut self.held) {
            self.run(call);
        }
    }

    pub fn consent_state(&self) -> Consent {
        self.consent
    }

    /// Nothing may be recorded: opted out, Do Not Track honoured, or consent refused.
    pub fn is_blocked(&self) -> bool {
        self.opted_out
            || self.consent == Consent::Denied
            || (self.config.respect_dnt && self.config.do_not_track)
    }

    /// Runs `call` now, holds it until consent, or drops it when blocked.
    fn when_allowed(&mut self, call: Call) {
        if self.is_blocked() {
            return;
        }
        if self.consent == Consent::Pending {
            if self.held.len() < MAX_HELD_CALLS {
                self.held.push(call);
            }
            return;
        }
        self.run(call);
    }

    fn run(&mut self, call: Call) {
        match call {
            Call::View(now, page) => {
                self.view(now, page);
                if let Some(visit) = &mut self.page {
                    visit.load = true;
                }
            }
            Call::Navigate(now, mut page) => {
                let url = self.page_url(&page.url);
                let Some(previous) = self.page.as_ref().map(|p| p.url.clone()) else {
                    return self.view(now, page);
                };
                if previous == url {
                    return;
                }
                self.leave_page(now);
                page.referrer = Some(previous);
                self.view(now, page);
            }
            Call::Leave(now) => self.leave_page(now),
            Call::Click(now, page, target) => {
                let host = crate::click::host_of(&page.url).unwrap_or_default();
                let props = target.props(host, &self.config.sensitive_params);
                let name = target.event_name().map(str::to_owned);
                self.record(now, &page, EventType::Click, name, Some(props));
            }
            Call::Track(now, page, name, props) => {
                self.record(now, &page, EventType::Custom, Some(name), props);
            }
            Call::Identify(now, page, user_id, traits) => {
                let mut session = self.current(now, "");
                session.user_id = Some(user_id);
                self.save(&session);
                self.record(now, &page, EventType::Identify, None, traits);
            }
            Call::Reset(now) => {
                if let Some(session) = self.load() {
                    self.end(&session, EndReason::Reset);
                }
                let fresh = Session::first(now, &mut self.entropy);
                self.save(&fresh);
            }
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Puts `page` in place of the page being tracked, returning that one
    /// (for [`replay_early`](Tracker::replay_early), which must not touch it).
    pub(crate) fn swap_page(&mut self, page: Option<PageVisit>) -> Option<PageVisit> {
        core::mem::replace(&mut self.page, page)
    }

    /// The page load's Core Web Vitals so far, for its page leave.
    pub fn set_vitals(&mut self, vitals: Vitals) {
        self.vitals = vitals;
    }

    /// Events lost before they were recorded, to be reported as dropped.
    pub(crate) fn count_dropped(&mut self, n: u64) {
        self.dropped += n;
    }

    /// Device and browser facts of this page load: sent with its first event
    /// and with the first event of every session.
    pub fn set_context(&mut self, context: Value) {
        self.context = Some(context);
        self.context_sent = false;
    }

    /// A page view that always counts: a page load, or a page restored from
    /// the back/forward cache.
    pub fn page_view(&mut self, now: impl Into<Now>, page: &Page) {
        self.when_allowed(Call::View(now.into(), page.clone()));
    }

    /// An in-app navigation (history API, `popstate`, `hashchange`): a page
    /// view unless the URL did not change, after a page leave for the
    /// previous page, whose URL becomes the referrer.
    pub fn navigate(&mut self, now: impl Into<Now>, page: &Page) {
        self.when_allowed(Call::Navigate(now.into(), page.clone()));
    }

    /// The page is being left (`pagehide`, tab hidden): its page leave, once
    /// per stretch of engagement.
    pub fn leave(&mut self, now: impl Into<Now>) {
        self.when_allowed(Call::Leave(now.into()));
    }

    /// The page became visible and focused, or stopped being so.
    pub fn set_active(&mut self, now: u64, active: bool) {
        if let Some(page) = &mut self.page {
            page.set_active(now, active);
        }
    }

    /// The deepest scroll so far on this page, in percent.
    pub fn scrolled(&mut self, pct: u8) {
        if let Some(page) = &mut self.page {
            page.scrolled(pct);
        }
    }

    /// A click on an interactive element.
    pub fn click(&mut self, now: impl Into<Now>, page: &Page, target: &ClickTarget) {
        self.when_allowed(Call::Click(now.into(), page.clone(), target.clone()));
    }

    fn view(&mut self, now: Now, page: Page) {
        if let Some(event_id) = self.record(now, &page, EventType::PageView, None, None) {
            let url = self.page_url(&page.url);
            self.page = Some(PageVisit::new(now.ms, url, event_id, true));
        }
    }

    fn leave_page(&mut self, now: Now) {
        let Some(visit) = &mut self.page else { return };
        let Some(leave) = visit.leave(now.ms) else {
            return;
        };
        let page = Page {
            url: visit.url.clone(),
            title: None,
            referrer: None,
        };
        let mut props = vec![
            ("page_view_id".into(), Value::String(visit.view_id.clone())),
            ("engaged_ms".into(), Value::Number(leave.engaged_ms as f64)),
            (
                "scroll_pct".into(),
                Value::Number(f64::from(leave.scroll_pct)),
            ),
            (
                "duration_ms".into(),
                Value::Number(leave.duration_ms as f64),
            ),
        ];
        if visit.load {
            self.vitals.push_props(&mut props);
        }
        let props = Value::Object(props);
        self.record(now, &page, EventType::PageLeave, None, Some(props));
    }

    /// A custom event; `props` must be an object when given.
    pub fn track(&mut self, now: impl Into<Now>, page: &Page, name: &str, props: Option<Value>) {
        let props = props.filter(Value::is_object);
        self.when_allowed(Call::Track(
            now.into(),
            page.clone(),
            name.to_owned(),
            props,
        ));
    }

    /// Links the visitor to a user; the session goes on.
    pub fn identify(
        &mut self,
        now: impl Into<Now>,
        page: &Page,
        user_id: &str,
        traits: Option<Value>,
    ) {
        if user_id.chars().count() > MAX_USER_ID_CHARS {
            return self.problem(Problem::UserIdTooLong);
        }
        let traits = traits.filter(Value::is_object);
        let call = Call::Identify(now.into(), page.clone(), user_id.to_owned(), traits);
        self.when_allowed(call);
    }

    /// Logout: ends the session, forgets the user and starts a new visitor.
    pub fn reset(&mut self, now: impl Into<Now>) {
        self.when_allowed(Call::Reset(now.into()));
    }

    /// Stops recording and sending, persistently, and drops what is queued.
    pub fn opt_out(&mut self) {
        self.opted_out = true;
        self.pending.clear();
        let _ = self.storage.set(&key(&self.config, "optout"), "1");
    }

    pub fn opt_in(&mut self) {
        self.opted_out = false;
        self.storage.remove(&key(&self.config, "optout"));
    }

    pub fn is_opted_out(&self) -> bool {
        self.opted_out
    }

    /// The current session id, as stored (another tab may have rotated it).
    pub fn session_id(&self) -> Option<String> {
        self.readable()
            .then(|| self.load())
            .flatten()
            .map(|s| s.session_id)
    }

    pub fn visitor_id(&self) -> Option<String> {
        self.readable()
            .then(|| self.load())
            .flatten()
            .map(|s| s.visitor_id)
    }

    /// Storage may be read: consent is not pending or refused.
    fn readable(&self) -> bool {
        self.consent == Consent::Granted
    }

    /// Which storage holds the session: `local`, `cookie` or `memory`.
    pub fn storage_kind(&self) -> &'static str {
        if self.storage_failed {
            "memory"
        } else {
            self.storage.kind()
        }
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The events recorded since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<Event> {
        core::mem::take(&mut self.pending)
    }

    /// Moves the events recorded since the last call into the send queue as
    /// JSON text (non-integer numbers written by `number`), with any events
    /// dropped meanwhile counted there. A `props` or `context` over its wire
    /// limit is dropped from its event, which is kept, and noted as a
    /// [`Problem`].
    pub fn drain_into(&mut self, queue: &mut SendQueue, now: u64, number: NumberFormat<'_>) {
        queue.count_dropped(core::mem::take(&mut self.dropped));
        for mut event in core::mem::take(&mut self.pending) {
            if oversized(&event.props, MAX_PROPS_BYTES, number) {
                event.props = None;
                self.problem(Problem::PropsTooLarge);
            }
            if oversized(&event.context, MAX_CONTEXT_BYTES, number) {
                event.context = None;
                self.problem(Problem::ContextTooLarge);
            }
            queue.push(event.to_json(number), now);
        }
    }

    /// What went wrong since the last call, each kind once.
    pub fn take_problems(&mut self) -> Vec<Problem> {
        core::mem::take(&mut self.problems)
    }

    fn problem(&mut self, problem: Problem) {
        if !self.problems.contains(&problem) {
            self.problems.push(problem);
        }
    }

    /// A URL as it is recorded: sensitive parameters redacted, cut to the
    /// wire's limit.
    fn page_url(&self, url: &str) -> String {
        let url = redact_url(url, &self.config.sensitive_params);
        cut_chars(&url, MAX_URL_CHARS).to_owned()
    }

    /// Records one event in the current session; its id, unless blocked.
    fn record(
        &mut self,
        now: Now,
        page: &Page,
        kind: EventType,
        name: Option<String>,
        props: Option<Value>,
    ) -> Option<String> {
        if self.is_blocked() || !self.readable() {
            return None;
        }
        let url = self.page_url(&page.url);
        let referrer = page.referrer.as_deref().map(|r| {
            let r = redact_url(r, &self.config.sensitive_params);
            cut_chars(&r, MAX_REFERRER_CHARS).to_owned()
        });
        let name = name.map(|n| cut_chars(&n, MAX_NAME_CHARS).to_owned());
        let title = page
            .title
            .as_deref()
            .map(|t| cut_chars(t, MAX_TITLE_CHARS).to_owned());
        let campaign = match kind {
            EventType::PageView => campaign_of(&url),
            _ => String::new(),
        };
        let mut session = self.current(now, &campaign);
        // Event times never go backwards within a session, whatever the clock does.
        let now = Now {
            ms: now.ms.max(session.last_seen_at),
            ..now
        };
        let event_id = ids::time_ordered_id(now.ms, &mut self.entropy);
        session.touch(now, &url, &event_id);
        self.save(&session);
        let context = match (&self.context, self.context_sent && session.seq > 1) {
            (Some(context), false) => Some(context.clone()),
            _ => None,
        };
        self.context_sent |= context.is_some();
        let event = Event {
            event_id: event_id.clone(),
            kind,
            name,
            ts: now.ms,
            session_id: session.session_id.clone(),
            visitor_id: session.visitor_id.clone(),
            user_id: session.user_id.clone(),
            session_index: session.index,
            seq: session.seq,
            url,
            title,
            referrer,
            previous_session_id: session.previous_session_id.filter(|_| session.seq == 1),
            storage: self.storage_kind(),
            props,
            context,
        };
        self.push(event);
        Some(event_id)
    }

    /// The session an event at `now` belongs to, rotating (and closing the
    /// old one with `visit_ended`) when the rules say so.
    fn current(&mut self, now: Now, campaign: &str) -> Session {
        let Some(mut session) = self.load() else {
            return Session::first(now, &mut self.entropy);
        };
        if session.seq == 0 {
            // Created by `reset()` and not used yet: it starts with its first event.
            session.started_at = now.ms;
            session.last_seen_at = now.ms;
            session.last_day = now.local_day();
            return session;
        }
        match session.rotation_due(now, campaign, &self.config.session) {
            None => session,
            Some(reason) => {
                self.end(&session, reason);
                session.next(now, &mut self.entropy)
            }
        }
    }

    /// Queues the `visit_ended` of a closed session; its time is the
    /// session's last activity, not the moment the closing was noticed.
    fn end(&mut self, session: &Session, reason: EndReason) {
        if session.seq == 0 {
            return;
        }
        let ended_at = session.last_seen_at;
        let props = Value::Object(vec![
            ("reason".into(), Value::String(reason.as_str().into())),
            (
                "started_at".into(),
                Value::Number(session.started_at as f64),
            ),
            ("ended_at".into(), Value::Number(ended_at as f64)),
            (
                "duration_ms".into(),
                Value::Number(session.duration_ms() as f64),
            ),
            ("event_count".into(), Value::Number(f64::from(session.seq))),
        ]);
        let event = Event {
            event_id: ids::time_ordered_id(ended_at, &mut self.entropy),
            kind: EventType::VisitEnded,
            name: None,
            ts: ended_at,
            session_id: session.session_id.clone(),
            visitor_id: session.visitor_id.clone(),
            user_id: session.user_id.clone(),
            session_index: session.index,
            seq: session.seq.saturating_add(1),
            url: session.last_url.clone(),
            title: None,
            referrer: None,
            previous_session_id: None,
            storage: self.storage_kind(),
            props: Some(props),
            context: None,
        };
        self.push(event);
    }

    pub(crate) fn push(&mut self, event: Event) {
        if self.pending.len() >= MAX_PENDING_EVENTS {
            text::remove_range(&mut self.pending, 0, 1);
            self.dropped += 1;
        }
        self.pending.push(event);
    }

    /// The session as stored (or kept in memory once storage failed).
    pub(crate) fn load(&self) -> Option<Session> {
        if self.storage_failed {
            return self.memory.clone();
        }
        self.storage
            .get(&key(&self.config, "session"))
            .and_then(|record| Session::decode(&record))
            .or_else(|| self.memory.clone())
    }

    pub(crate) fn save(&mut self, session: &Session) {
        if !self.storage_failed
            && self
                .storage
                .set(&key(&self.config, "session"), &session.encode())
                .is_err()
        {
            self.storage_failed = true;
        }
        self.memory = Some(session.clone());
    }
}

/// Whether `value`, written as JSON, is over `max_bytes`.
fn oversized(value: &Option<Value>, max_bytes: usize, number: NumberFormat<'_>) -> bool {
    let Some(value) = value else { return false };
    let mut json = String::new();
    push_value(&mut json, value, number);
    json.len() > max_bytes
}

/// The storage key of one of this site's records: `waymark.{site}.{name}`.
fn key(config: &Config, name: &str) -> String {
    text::concat(&["waymark.", &config.site, ".", name])
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
