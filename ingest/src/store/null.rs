//! A store that keeps nothing, for benchmarks.

use super::{AppendOutcome, BoxFuture, EventSink, StoreError};
use crate::event::StoredEvent;

/// Accepts every event and discards it (`--store null`). Everything before
/// the store still runs — decoding, validation, enrichment, sessions — so a
/// benchmark against it is the collector's ceiling with a free store. An
/// [`EventSink`] only: the collector serves no read API with it (those
/// routes answer 404) and its sweeper has nothing to close.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullStore;

impl EventSink for NullStore {
    fn append(&self, events: Vec<StoredEvent>) -> BoxFuture<'_, Result<AppendOutcome, StoreError>> {
        let outcome = AppendOutcome {
            inserted: events.len(),
            duplicates: 0,
            session_full: Vec::new(),
        };
        Box::pin(std::future::ready(Ok(outcome)))
    }
}
