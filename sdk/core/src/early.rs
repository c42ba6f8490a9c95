//! Page loads the SDK never ran on: the snippet's stub keeps the implicit
//! page view (time, URL, referrer, title) and the page's calls with their
//! times, and on `pagehide`, if the SDK has not started, writes them to
//! `localStorage`. The next page load hands them to the tracker, which
//! replays them with their original times before its own page view, so
//! the session rules decide their session like any other event's.
//!
//! The stub's record is JSON: `[[time, url, referrer, title], [call…],
//! [time…]]`, each call the page's arguments (`["track", "signup", {…}]`)
//! and its time at the same position in the third array.

use crate::prelude::*;

use crate::event::Page;
use crate::ids::Entropy;
use crate::session::Now;
use crate::storage::Storage;
use crate::tracker::Tracker;
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

fn number(value: Option<&Value>) -> Option<u64> {
    match value {
        Some(Value::Number(n)) if n.is_finite() && *n >= 0.0 => Some(*n as u64),
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
        })
    }
}

impl<S: Storage, E: Entropy> Tracker<S, E> {
    /// Replays a page load the SDK missed: its page view (unless page views
    /// are not captured) and its calls, each at its own time, in the
    /// session the rules give at that time. The page being tracked now is
    /// left as it was: the early page gets no page leave (how long it was
    /// looked at is not known).
    pub fn replay_early(&mut self, early: EarlyPage, utc_offset_min: i32) {
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
