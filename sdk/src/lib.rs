//! # Waymark browser SDK
//!
//! The browser shell around [`waymark_sdk_core`]: it reads the page and the
//! clock, keeps state in browser storage, owns the listeners and timers, and
//! sends what the core's send queue says, by `fetch` with keepalive or
//! `sendBeacon`. Every rule (sessions, what an event holds, when to send,
//! what an answer means, which tab sends which queue) is the core's.
//!
//! Built on the design card's packages: `web_sys` for every browser API,
//! `gloo_timers` (and `gloo_events` for listeners) for timers,
//! `serde_wasm_bindgen` for the values a page passes (`props`, traits, the
//! config), `uuid` for ids (through the core), `js_sys` where web-sys has no
//! binding. No JS is written by hand here: the script-tag
//! loader (`sdk/js/loader.js`) and the npm entry (`sdk/npm/index.js`) only
//! start it. Nothing here throws into the host page: failures become one
//! console warning per kind.
//!
//! On other targets the crate is empty (the core is what runs natively).

#[cfg(target_arch = "wasm32")]
mod config;
#[cfg(target_arch = "wasm32")]
mod delivery;
#[cfg(target_arch = "wasm32")]
mod listeners;
#[cfg(target_arch = "wasm32")]
mod page;
#[cfg(target_arch = "wasm32")]
mod storage;
#[cfg(target_arch = "wasm32")]
mod tracker;
#[cfg(target_arch = "wasm32")]
mod vitals;

#[cfg(target_arch = "wasm32")]
pub use tracker::{init, BrowserTracker};

/// A free-list allocator a seventh the size of std's dlmalloc. The SDK's heap
/// is small (a session, a queue of events), so its linear search costs nothing.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());
