//! The per-session event cap of the ClickHouse store, counted by this
//! collector.
//!
//! The SQLite store counts a session's events in the transaction that
//! stores them. The ClickHouse store acknowledges an append once it is in
//! the local spool, long before ClickHouse has it, and several collectors
//! may feed one ClickHouse; asking ClickHouse on every append would tie the
//! batch path to it, which the spool is there to avoid. So each collector
//! counts the events it has taken per session, in memory, for the
//! [`CAPACITY`] sessions it most recently took events for. An
//! approximation, and where it gives way:
//!
//! - a session whose events reach several collectors can hold up to the
//!   cap once per collector;
//! - after a restart, or once [`CAPACITY`] other sessions have had events
//!   since its last one, a session's count starts again from zero;
//! - an event is counted when it is spooled, so a batch taken and then
//!   retried (its answer lost) counts twice, and a retried event of a full
//!   session is rejected rather than answered as a duplicate.

use std::sync::Mutex;

use hashlink::LruCache;

use crate::event::{EventType, StoredEvent};
use crate::store::lock;

/// Sessions whose counts are kept: at most a few tens of MB of keys.
pub(super) const CAPACITY: usize = 100_000;

/// Events taken per `(site, session_id)`, for the most recent sessions.
#[derive(Debug)]
pub(super) struct SessionCounts {
    counts: Mutex<LruCache<(String, String), u64>>,
}

impl SessionCounts {
    pub(super) fn new(capacity: usize) -> SessionCounts {
        SessionCounts {
            counts: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Forgets these sessions (erased or expired).
    pub(super) fn forget(&self, keys: &[(String, String)]) {
        let mut counts = lock(&self.counts);
        for key in keys {
            counts.remove(key);
        }
    }

    /// Counts `events` in, up to `max` per session besides `visit_ended`:
    /// the positions of those past it, ascending.
    pub(super) fn take(&self, events: &[StoredEvent], max: u64) -> Vec<usize> {
        let mut counts = lock(&self.counts);
        let mut full = Vec::new();
        for (i, event) in events.iter().enumerate() {
            if event.event_type == EventType::VisitEnded {
                continue;
            }
            let key = (event.site.clone(), event.session_id.clone());
            // Looked up, so a session that keeps sending stays counted.
            let count = counts.get(&key).copied().unwrap_or(0);
            if count >= max {
                full.push(i);
            } else {
                counts.insert(key, count + 1);
            }
        }
        full
    }

    /// Takes back the counts of `events`, taken by [`take`](Self::take)
    /// (none of them past the cap) and then not stored after all.
    pub(super) fn give_back(&self, events: &[StoredEvent]) {
        let mut counts = lock(&self.counts);
        for event in events {
            if event.event_type == EventType::VisitEnded {
                continue;
            }
            let key = (event.site.clone(), event.session_id.clone());
            if let Some(count) = counts.peek_mut(&key) {
                *count = count.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::wire::decode_batch;

    fn events(site: &str, session: &str, n: u128) -> Vec<StoredEvent> {
        let events: Vec<serde_json::Value> = (1..=n)
            .map(|i| {
                serde_json::json!({
                    "event_id": uuid::Uuid::from_u128(i).to_string(), "type": "click",
                    "ts": 1_700_000_000_000_u64, "session_id": session, "visitor_id": "v",
                    "url": "https://shop.example/",
                })
            })
            .collect();
        let body = serde_json::json!({"v": 1, "site": site, "events": events});
        decode_batch(body.to_string().as_bytes(), 1_700_000_000_000)
            .unwrap()
            .events
    }

    #[test]
    fn counts_per_site_and_session_up_to_the_cap() {
        let counts = SessionCounts::new(10);
        assert_eq!(counts.take(&events("a", "s", 3), 4), Vec::<usize>::new());
        assert_eq!(counts.take(&events("a", "s", 3), 4), vec![1, 2]);
        assert_eq!(counts.take(&events("b", "s", 3), 4), Vec::<usize>::new());
        counts.give_back(&events("b", "s", 2));
        assert_eq!(counts.take(&events("b", "s", 4), 4), vec![3]);
    }

    #[test]
    fn forgets_the_least_recent_sessions_past_its_capacity() {
        let counts = SessionCounts::new(2);
        assert!(counts.take(&events("a", "s1", 2), 2).is_empty());
        assert!(counts.take(&events("a", "s2", 1), 2).is_empty());
        assert!(counts.take(&events("a", "s3", 1), 2).is_empty());
        assert!(
            counts.take(&events("a", "s1", 2), 2).is_empty(),
            "s1 was forgotten: counted from zero again (the documented approximation)"
        );
    }
}
