//! # Waymark browser SDK
//!
//! A deterministic core — session rules, event building, the send queue —
//! and, on `wasm32` only, a thin browser shell around it.
//!
//! The core never reads a clock, an OS random source or browser storage:
//! every call takes `now` (epoch milliseconds), ids come from an injected
//! [`Entropy`] and state lives behind the [`Storage`] trait. So it builds and
//! is tested natively with `cargo test`.
//!
//! ```
//! use waymark_sdk::{Config, MemoryStorage, Page, SeededEntropy, Tracker};
//!
//! let mut tracker = Tracker::new(Config::new("http://127.0.0.1:8080", "demo"), MemoryStorage::default(), SeededEntropy(1));
//! tracker.page_view(1_700_000_000_000, &Page { url: "http://127.0.0.1:8080/".into(), ..Page::default() });
//! let batch = tracker.take_batch(1_700_000_000_005).unwrap();
//! assert_eq!(batch.events.len(), 1);
//! ```

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

/// What std's prelude gives, for the `no_std` build (not `ToString`: it
/// formats, and formatting is what `no_std` leaves out).
mod prelude {
    pub use alloc::borrow::ToOwned;
    pub use alloc::string::String;
    pub use alloc::vec;
    pub use alloc::vec::Vec;
}

mod click;
mod config;
mod event;
mod hygiene;
mod ids;
mod json;
mod page;
mod queue;
mod session;
mod storage;
mod text;
mod tracker;
mod value;

#[cfg(target_arch = "wasm32")]
mod browser;

/// Without std (the browser builds) a panic only traps: no message is
/// formatted, so none of the formatting machinery ships. The SDK's code
/// does not panic on anything the page controls (see STYLE.md); this is
/// for what cannot happen, like running out of memory.
#[cfg(all(target_arch = "wasm32", not(feature = "std")))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(target_arch = "wasm32")]
pub use browser::{init, BrowserTracker};
pub use click::{ClickTarget, Node};
pub use config::Config;
pub use event::{Batch, Event, EventType, Page};
pub use hygiene::{redact_url, DEFAULT_SENSITIVE_PARAMS};
pub use ids::{Entropy, SeededEntropy};
pub use json::NumberFormat;
pub use page::{Leave, PageVisit};
pub use queue::{Outcome, QueueLimits, SendQueue, Transmit, Urgency};
pub use session::{campaign_of, campaign_params, EndReason, Now, Session, SessionRules};
pub use storage::{MemoryStorage, Storage, StorageError};
pub use tracker::{Consent, Tracker, MAX_BATCH_EVENTS, MAX_HELD_CALLS, MAX_PENDING_EVENTS};
pub use value::Value;
