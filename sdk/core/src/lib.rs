//! # Waymark SDK core
//!
//! Everything the browser SDK decides, with no browser in sight: the
//! session rules, the tracker that builds events, the send queue, the tab
//! lease over persisted queues, what an HTTP answer means, how the page's
//! config is checked and what a click may record.
//!
//! Sans-IO, like quinn-proto: it never reads a clock, an OS random source or
//! browser storage. Every call takes `now` (epoch milliseconds), ids come
//! from an injected [`Entropy`] and state lives behind the [`Storage`] trait.
//! It is `no_std` (with `alloc`) and has no wasm-bindgen, so it builds and is
//! tested natively with `cargo test`; the browser crate (`waymark-sdk`) is a
//! thin shell around it.
//!
//! ```
//! use waymark_sdk_core::{Config, MemoryStorage, Page, SeededEntropy, Tracker};
//!
//! let mut tracker = Tracker::new(Config::new("http://127.0.0.1:8080", "demo"), MemoryStorage::default(), SeededEntropy(1));
//! tracker.page_view(1_700_000_000_000, &Page { url: "http://127.0.0.1:8080/".into(), ..Page::default() });
//! let events = tracker.take_events();
//! assert_eq!(events.len(), 1);
//! ```

#![cfg_attr(not(test), no_std)]

extern crate alloc;

/// What std's prelude gives, for the `no_std` build (not `ToString`: it
/// formats, and formatting is what `no_std` leaves out).
mod prelude {
    pub use alloc::borrow::ToOwned;
    pub use alloc::string::String;
    pub use alloc::vec;
    pub use alloc::vec::Vec;
}

mod answer;
mod click;
mod config;
mod early;
mod event;
mod ids;
mod json;
mod lease;
mod page;
mod queue;
mod session;
mod storage;
mod text;
mod tracker;
mod value;
mod vitals;

pub use answer::outcome;
pub use click::{
    device_type, ClickTarget, Node, CLICKABLE, IGNORE_CLICKS, MAX_CLICK_TEXT, MAX_SELECTOR_DEPTH,
};
pub use config::{Config, ConfigProblem, PageConfig, Words};
pub use early::{keyed_replay, EarlyCall, EarlyPage, KeyedReplay, MAX_EARLY_CALLS};
pub use event::{Batch, Event, EventType, Page};
pub use ids::{random_id, time_ordered_id, Entropy, KeyedEntropy, SeededEntropy};
pub use json::NumberFormat;
pub use lease::{Adoption, QueueLease, LEASE_MS};
pub use page::{Leave, PageVisit};
pub use queue::{Outcome, QueueLimits, SendQueue, Transmit, Urgency};
pub use session::{campaign_of, campaign_params, EndReason, Now, Session, SessionRules};
pub use storage::{cookie_assignment, cookie_value, MemoryStorage, Storage, StorageError};
pub use text::{parse_u64, parts, push_u64};
pub use tracker::{Consent, DynTracker, Problem, Tracker, MAX_HELD_CALLS, MAX_PENDING_EVENTS};
pub use value::Value;
pub use vitals::Vitals;
pub use waymark_wire as wire;
/// The URL hygiene, shared with the collector.
pub use waymark_wire::{redact_url, DEFAULT_SENSITIVE_PARAMS};
