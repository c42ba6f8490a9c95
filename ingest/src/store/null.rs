//! A store that keeps nothing, for benchmarks.

use super::{AppendOutcome, BoxFuture, Store, StoreError};
use crate::event::StoredEvent;

/// Accepts every event and discards it (`--store null`). Everything before
/// the store still runs — decoding, validation, enrichment, sessions — so a
/// benchmark against it is the collector's ceiling with a free store. The
/// read API answers `501 not_implemented`; the sweeper finds nothing to close.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullStore;

impl Store for NullStore {
    fn append(&self, events: Vec<StoredEvent>) -> BoxFuture<'_, Result<AppendOutcome, StoreError>> {
        let outcome = AppendOutcome {
            inserted: events.len(),
            duplicates: 0,
        };
        Box::pin(std::future::ready(Ok(outcome)))
    }

    fn events_for_session<'a>(
        &'a self,
        _session_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>> {
        Box::pin(std::future::ready(Err(StoreError::Unsupported("events"))))
    }

    fn recent_events<'a>(
        &'a self,
        _site: Option<&'a str>,
        _limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>> {
        Box::pin(std::future::ready(Err(StoreError::Unsupported("events"))))
    }

    fn sweep(
        &self,
        _now: u64,
        _idle_before: u64,
        _limit: usize,
    ) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(std::future::ready(Ok(0)))
    }
}
