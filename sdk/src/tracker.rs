//! The tracker's deterministic core: sessions, event building and the queue.
//!
//! It is driven by the shell, which passes the time and the page with every
//! call. Session state is re-read from storage before every decision, so a
//! tab that slept, a reload or another tab's rotation is always seen.

use crate::config::Config;
use crate::event::{Batch, Event, EventType, Page};
use crate::ids::{self, Entropy};
use crate::session::{campaign_of, EndReason, Now, Session};
use crate::storage::Storage;
use crate::value::Value;

/// Most events sent in one request.
pub const MAX_BATCH_EVENTS: usize = 50;
/// Most events held while waiting to be sent; the oldest go first past it.
pub const MAX_PENDING_EVENTS: usize = 1_000;

/// The tracker core, generic over where it keeps state and how it draws ids.
#[derive(Debug)]
pub struct Tracker<S, E> {
    config: Config,
    storage: S,
    entropy: E,
    /// The session as last written; the source of truth once storage fails.
    memory: Option<Session>,
    storage_failed: bool,
    opted_out: bool,
    context: Option<Value>,
    pending: Vec<Event>,
}

impl<S: Storage, E: Entropy> Tracker<S, E> {
    pub fn new(config: Config, storage: S, entropy: E) -> Self {
        let opted_out = storage.get(&key(&config, "optout")).is_some();
        Tracker {
            config,
            storage,
            entropy,
            memory: None,
            storage_failed: false,
            opted_out,
            context: None,
            pending: Vec::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Device and browser facts sent with each page view.
    pub fn set_context(&mut self, context: Value) {
        self.context = Some(context);
    }

    pub fn page_view(&mut self, now: impl Into<Now>, page: &Page) {
        let context = self.context.clone();
        self.record(now.into(), page, EventType::PageView, None, None, context);
    }

    /// A custom event; `props` must be an object when given.
    pub fn track(&mut self, now: impl Into<Now>, page: &Page, name: &str, props: Option<Value>) {
        let props = props.filter(Value::is_object);
        self.record(
            now.into(),
            page,
            EventType::Custom,
            Some(name.to_owned()),
            props,
            None,
        );
    }

    /// Links the visitor to a user; the session goes on.
    pub fn identify(
        &mut self,
        now: impl Into<Now>,
        page: &Page,
        user_id: &str,
        traits: Option<Value>,
    ) {
        if self.opted_out {
            return;
        }
        let now = now.into();
        let mut session = self.current(now, "");
        session.user_id = Some(user_id.to_owned());
        self.save(&session);
        let traits = traits.filter(Value::is_object);
        self.record(now, page, EventType::Identify, None, traits, None);
    }

    /// Logout: ends the session, forgets the user and starts a new visitor.
    pub fn reset(&mut self, now: impl Into<Now>) {
        if let Some(session) = self.load() {
            self.end(&session, EndReason::Reset);
        }
        let fresh = Session::first(now.into(), &mut self.entropy);
        self.save(&fresh);
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
        self.load().map(|s| s.session_id)
    }

    pub fn visitor_id(&self) -> Option<String> {
        self.load().map(|s| s.visitor_id)
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

    /// The next batch to send, oldest events first, stamped with `now`.
    pub fn take_batch(&mut self, now: u64) -> Option<Batch> {
        if self.pending.is_empty() {
            return None;
        }
        let n = self.pending.len().min(MAX_BATCH_EVENTS);
        Some(Batch {
            v: 1,
            site: self.config.site.clone(),
            sent_at: now,
            events: self.pending.drain(..n).collect(),
        })
    }

    fn record(
        &mut self,
        now: Now,
        page: &Page,
        kind: EventType,
        name: Option<String>,
        props: Option<Value>,
        context: Option<Value>,
    ) {
        if self.opted_out {
            return;
        }
        let campaign = match kind {
            EventType::PageView => campaign_of(&page.url),
            _ => String::new(),
        };
        let mut session = self.current(now, &campaign);
        // Event times never go backwards within a session, whatever the clock does.
        let now = Now {
            ms: now.ms.max(session.last_seen_at),
            ..now
        };
        let event_id = ids::time_ordered_id(now.ms, &mut self.entropy);
        session.touch(now, &page.url, &event_id);
        self.save(&session);
        let event = Event {
            event_id,
            kind,
            name,
            ts: now.ms,
            session_id: session.session_id.clone(),
            visitor_id: session.visitor_id.clone(),
            user_id: session.user_id.clone(),
            session_index: session.index,
            seq: session.seq,
            url: page.url.clone(),
            title: page.title.clone(),
            referrer: page.referrer.clone(),
            previous_session_id: session.previous_session_id.filter(|_| session.seq == 1),
            storage: self.storage_kind(),
            props,
            context,
        };
        self.push(event);
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

    fn push(&mut self, event: Event) {
        if self.pending.len() >= MAX_PENDING_EVENTS {
            self.pending.remove(0);
        }
        self.pending.push(event);
    }

    fn load(&self) -> Option<Session> {
        if self.storage_failed {
            return self.memory.clone();
        }
        self.storage
            .get(&key(&self.config, "session"))
            .and_then(|record| Session::decode(&record))
            .or_else(|| self.memory.clone())
    }

    fn save(&mut self, session: &Session) {
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

fn key(config: &Config, name: &str) -> String {
    format!("waymark.{}.{}", config.site, name)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
