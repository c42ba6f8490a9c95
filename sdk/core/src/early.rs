//! Page loads the SDK never ran on: the snippet's stub keeps the implicit
//! page view (time, URL, referrer, title) and the page's calls with their
//! times, and on `pagehide`, if the SDK has not started, writes them to
//! `localStorage`. The next page load hands them to the tracker, which
//! replays them with their original times before its own page view, so
//! the session rules decide their session like any other event's.
//!
//! A page whose loader (`sdk.js`) ran but whose wasm had not started when
//! the visitor left it is also sent at once: the loader beacons the stub's
//! record, under a key (a UUID) it gave it, to the collector, which builds
//! its events with [`keyed_replay`], this crate's code. The record saved
//! under the same key is replayed the same way on the visitor's next page
//! (if there is one), so the collector gets the same events twice, with the
//! same ids, and keeps them once. The loader only sends it for a visitor
//! with no stored session (a first visit): the two copies must not depend
//! on state that could change between them.
//!
//! The stub's record is JSON: `[[time, url, referrer, title], [call…],
//! [time…]]`, each call the page's arguments (`["track", "signup", {…}]`)
//! and its time at the same position in the third array.

use crate::prelude::*;
use alloc::boxed::Box;

use crate::config::Config;
use crate::event::Event;
use crate::event::Page;
use crate::ids::{Entropy, KeyedEntropy};
use crate::session::{Now, Session};
use crate::storage::{MemoryStorage, Storage, StorageError};
use crate::tracker::{DynTracker, Tracker};
use crate::value::Value;

/// Most calls replayed from one early page; later ones are dropped and
/// counted (sent as the batch's `dropped`).
pub const MAX_EARLY_CALLS: usize = 100;

/// One page load the SDK missed.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyPage {
    /// When the stub ran (epoch ms, the device clock).
    pub at: u64,
    pub page: Page,
    pub calls: Vec<EarlyCall>,
    /// Calls past [`MAX_EARLY_CALLS`], or that could not be read.
    pub dropped: u64,
    /// The key the loader gave the record when it sent it itself (the
    /// UUID in `waymark.early.<uuid>`): its events are then built by
    /// [`keyed_replay`]. `None` for a record under the stub's own key.
    pub key: Option<String>,
}

/// A call the page made before the SDK loaded, with its time.
#[derive(Debug, Clone, PartialEq)]
pub enum EarlyCall {
    Track(u64, String, Option<Value>),
    Identify(u64, String, Option<Value>),
    Reset(u64),
    OptOut,
    OptIn,
}

/// A time: a whole number of ms from 0 to 2^53 - 1 (`Date.now()` never
/// leaves that range; the collector refuses times past it).
fn number(value: Option<&Value>) -> Option<u64> {
    match value {
        Some(Value::Number(n)) if *n >= 0.0 && *n <= waymark_wire::MAX_TS as f64 => Some(*n as u64),
        _ => None,
    }
}

/// Takes the string out of `value`, if it is one.
fn string(value: Option<&mut Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) => Some(core::mem::take(s)),
        _ => None,
    }
}

/// Takes the items out of `value`, if it is an array (none otherwise).
fn items(value: Option<&mut Value>) -> Vec<Value> {
    match value {
        Some(Value::Array(items)) => core::mem::take(items),
        _ => Vec::new(),
    }
}

impl EarlyPage {
    /// Reads the stub's record (taking its parts out of it); `None` when it
    /// is not one (no time or URL).
    pub fn from_value(mut value: Value) -> Option<EarlyPage> {
        let mut record = items(Some(&mut value));
        let mut view = items(record.get_mut(0));
        let at = number(view.first())?;
        let page = Page {
            url: string(view.get_mut(1))?,
            referrer: string(view.get_mut(2)).filter(|r| !r.is_empty()),
            title: string(view.get_mut(3)).filter(|t| !t.is_empty()),
        };
        let times = items(record.get_mut(2));
        let mut calls = Vec::new();
        let mut dropped = 0;
        for (i, call) in items(record.get_mut(1)).into_iter().enumerate() {
            let mut args = items(Some(&mut { call }));
            let time = number(times.get(i)).unwrap_or(at);
            let name = string(args.get_mut(1));
            let object = args
                .get_mut(2)
                .filter(|v| v.is_object())
                .map(|v| core::mem::replace(v, Value::Null));
            let call = match string(args.get_mut(0)).as_deref() {
                Some("track") => name.map(|n| EarlyCall::Track(time, n, object)),
                Some("identify") => name.map(|u| EarlyCall::Identify(time, u, object)),
                Some("reset") => Some(EarlyCall::Reset(time)),
                Some("optOut") => Some(EarlyCall::OptOut),
                Some("optIn") => Some(EarlyCall::OptIn),
                // Sending, consent (asked anew on every page load) and
                // `page()` (its URL was not kept) have nothing to replay.
                Some("flush" | "consent" | "page") => continue,
                _ => None,
            };
            match call {
                Some(call) if calls.len() < MAX_EARLY_CALLS => calls.push(call),
                _ => dropped += 1,
            }
        }
        Some(EarlyPage {
            at,
            page,
            calls,
            dropped,
            key: None,
        })
    }

    /// The page with the key `text`, when it has a UUID's shape (the
    /// loader's key: `crypto.randomUUID()`); unchanged otherwise (the
    /// stub's own key, its time and random digits). The shape only: the
    /// key is never parsed, only drawn from ([`KeyedEntropy`]); the
    /// collector checks that what it is sent is a UUID.
    pub fn keyed(self, text: &str) -> EarlyPage {
        let shaped = text.len() == 36
            && text.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_hexdigit(),
            });
        EarlyPage {
            key: shaped.then(|| text.to_owned()),
            ..self
        }
    }
}

/// The events of a keyed early page, built alike by the collector and the
/// SDK: in a tracker of their own, as on a first visit (no stored state),
/// with the ids drawn from the key and no device context (the collector
/// knows none), under `config`. What the tracker would keep afterwards
/// comes with them.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedReplay {
    pub events: Vec<Event>,
    /// The session after the page's events: the SDK adopts it when it still
    /// has none, so the visitor's next page continues it.
    pub session: Option<Session>,
    /// The page called `optOut` (and not `optIn` after it).
    pub opted_out: bool,
    /// Calls that could not be replayed ([`EarlyPage::dropped`]).
    pub dropped: u64,
}

/// The stored state of a keyed replay: in memory, and reported as
/// `localStorage` (where the stub kept the record), so that the events'
/// `storage` is the same in both copies.
#[derive(Debug, Default)]
struct ReplayStorage(MemoryStorage);

impl Storage for ReplayStorage {
    fn get(&self, key: &str) -> Option<String> {
        self.0.get(key)
    }
    fn set(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        self.0.set(key, value)
    }
    fn remove(&mut self, key: &str) {
        self.0.remove(key);
    }
    fn kind(&self) -> &'static str {
        "local"
    }
}

/// Builds a keyed early page's events (see [`KeyedReplay`]); `None` when the
/// page has no key.
pub fn keyed_replay(config: &Config, early: EarlyPage, utc_offset_min: i32) -> Option<KeyedReplay> {
    let key = early.key.as_deref()?;
    let mut tracker: DynTracker = Tracker::new(
        config.clone(),
        Box::new(ReplayStorage::default()),
        Box::new(KeyedEntropy::new(key)),
    );
    let dropped = early.dropped;
    tracker.replay_calls(early, utc_offset_min);
    Some(KeyedReplay {
        events: tracker.take_events(),
        session: tracker.load(),
        opted_out: tracker.is_opted_out(),
        dropped,
    })
}

impl<S: Storage, E: Entropy> Tracker<S, E> {
    /// Replays a page load the SDK missed: its page view (unless page views
    /// are not captured) and its calls, each at its own time, in the
    /// session the rules give at that time. The page being tracked now is
    /// left as it was: the early page gets no page leave (how long it was
    /// looked at is not known).
    ///
    /// A keyed page ([`EarlyPage::key`]) is replayed by [`keyed_replay`],
    /// which the collector ran on it too: its events are queued as they
    /// are, and its session becomes this tracker's when there is none yet.
    pub fn replay_early(&mut self, early: EarlyPage, utc_offset_min: i32) {
        if early.key.is_none() {
            return self.replay_calls(early, utc_offset_min);
        }
        if self.is_blocked() {
            return;
        }
        let Some(replay) = keyed_replay(self.config(), early, utc_offset_min) else {
            return;
        };
        self.count_dropped(replay.dropped);
        for event in replay.events {
            self.push(event);
        }
        if let (None, Some(session)) = (self.load(), replay.session) {
            self.save(&session);
        }
        if replay.opted_out {
            self.opt_out();
        }
    }

    /// The page view and calls of `early`, in this tracker's session.
    fn replay_calls(&mut self, early: EarlyPage, utc_offset_min: i32) {
        let at = |ms: u64| Now { ms, utc_offset_min };
        let current = self.swap_page(None);
        self.count_dropped(early.dropped);
        if self.config().autocapture {
            self.page_view(at(early.at), &early.page);
        }
        let page = Page {
            referrer: None,
            ..early.page
        };
        for call in early.calls {
            match call {
                EarlyCall::Track(ms, name, props) => self.track(at(ms), &page, &name, props),
                EarlyCall::Identify(ms, user, traits) => {
                    self.identify(at(ms), &page, &user, traits)
                }
                EarlyCall::Reset(ms) => self.reset(at(ms)),
                EarlyCall::OptOut => self.opt_out(),
                EarlyCall::OptIn => self.opt_in(),
            }
        }
        self.swap_page(current);
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
