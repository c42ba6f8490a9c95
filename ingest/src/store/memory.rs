//! A store in memory, for tests.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use super::{AppendOutcome, BoxFuture, EventSink, StoreError};
use crate::event::StoredEvent;

/// Keeps events in a `Vec`, in arrival order, deduplicated by `event_id`
/// exactly like [`SqliteStore`](crate::SqliteStore).
///
/// An [`EventSink`] only: it reads back the events of a session (for tests)
/// but keeps no sessions, so the collector serves no read API with it and
/// its sweeper has nothing to do.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    events: Vec<StoredEvent>,
    ids: HashSet<String>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every stored event, in arrival order.
    pub fn events(&self) -> Vec<StoredEvent> {
        self.lock().events.clone()
    }

    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The events of one session, oldest first (by `ts`, then `seq`, then
    /// arrival), like [`SessionReader::events_for_session`]; never fails.
    ///
    /// [`SessionReader::events_for_session`]: crate::SessionReader::events_for_session
    pub fn events_for_session<'a>(
        &'a self,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>> {
        let mut events: Vec<StoredEvent> = self
            .lock()
            .events
            .iter()
            .filter(|e| e.session_id == session_id)
            .cloned()
            .collect();
        // Stable: equal timestamps and sequence numbers keep arrival order.
        events.sort_by_key(|e| (e.ts, e.seq));
        Box::pin(std::future::ready(Ok(events)))
    }

    /// The newest `limit` events, of one site or of all, newest first,
    /// like [`SessionReader::recent_events`]; never fails.
    ///
    /// [`SessionReader::recent_events`]: crate::SessionReader::recent_events
    pub fn recent_events<'a>(
        &'a self,
        site: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>> {
        let mut events: Vec<StoredEvent> = self
            .lock()
            .events
            .iter()
            .rev()
            .filter(|e| site.is_none_or(|site| e.site == site))
            .cloned()
            .collect();
        // Stable over the reversed list: equal timestamps put the latest
        // arrival first.
        events.sort_by_key(|e| std::cmp::Reverse(e.ts));
        events.truncate(limit);
        Box::pin(std::future::ready(Ok(events)))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` half-updated
        // in a way that matters to a test, so poisoning is ignored.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl EventSink for MemoryStore {
    fn append(&self, events: Vec<StoredEvent>) -> BoxFuture<'_, Result<AppendOutcome, StoreError>> {
        let mut outcome = AppendOutcome::default();
        let mut inner = self.lock();
        for event in events {
            if inner.ids.insert(event.event_id.clone()) {
                inner.events.push(event);
                outcome.inserted += 1;
            } else {
                outcome.duplicates += 1;
            }
        }
        Box::pin(std::future::ready(Ok(outcome)))
    }
}
