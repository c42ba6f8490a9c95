//! The tab lease: which tab sends which persisted queue.
//!
//! Each tab keeps its unacknowledged events in localStorage under
//! `waymark.<site>.queue.<tab>`, stamped with the time of its last write
//! (its heartbeat). A reload finds its own queue (the tab id lives in
//! sessionStorage) and sends it first. A queue whose tab has not written for
//! [`LEASE_MS`] (closed, crashed) is adopted by the next tab that starts, and
//! removed from storage as it is adopted, so two tabs never send from the
//! same key at once. Sans-IO: the shell lists the stored entries and carries
//! out the removals and the writes.

use crate::prelude::*;

use crate::queue::SendQueue;
use crate::text::{self, parse_u64, push_u64};

/// A tab's persisted queue older than this is another tab's to adopt.
pub const LEASE_MS: u64 = 2 * 60_000;

/// One tab's claim on its persisted queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLease {
    prefix: String,
    key: String,
}

/// What became of the persisted queues a tab found as it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Adoption {
    /// Keys taken over (this tab's own and abandoned ones): remove them.
    pub adopted: Vec<String>,
    /// Events restored into the queue.
    pub events: usize,
}

impl QueueLease {
    pub fn new(site: &str, tab_id: &str) -> QueueLease {
        let prefix = text::concat(&["waymark.", site, ".queue."]);
        let key = text::concat(&[&prefix, tab_id]);
        QueueLease { prefix, key }
    }

    /// The prefix of every tab's queue key for this site.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// This tab's queue key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Restores into `queue`, oldest first, this tab's own persisted queue
    /// and every one whose heartbeat is older than [`LEASE_MS`]; other
    /// tabs' live queues are left alone. `stored` is every localStorage
    /// entry whose key starts with [`prefix`](Self::prefix).
    pub fn adopt<'a>(
        &self,
        queue: &mut SendQueue,
        stored: impl IntoIterator<Item = (&'a str, &'a str)>,
        now: u64,
    ) -> Adoption {
        let mut adoption = Adoption::default();
        for (key, value) in stored {
            if !key.starts_with(&self.prefix) {
                continue;
            }
            let (heartbeat, persisted) = text::split_at(value, b'\n').unwrap_or(("", ""));
            let heartbeat = parse_u64(heartbeat).unwrap_or(0);
            if key == self.key || now.saturating_sub(heartbeat) > LEASE_MS {
                let before = queue.len();
                queue.restore(persisted, now);
                adoption.events += queue.len().saturating_sub(before);
                adoption.adopted.push(key.to_owned());
            }
        }
        adoption
    }

    /// The value to keep under [`key`](Self::key) for `queue` at `now`: its
    /// heartbeat, then the queue; `None` when the queue is empty and the key
    /// should be removed.
    pub fn record(&self, queue: &SendQueue, now: u64) -> Option<String> {
        if queue.is_empty() {
            return None;
        }
        let mut value = String::new();
        push_u64(&mut value, now);
        value.push('\n');
        value.push_str(&queue.encode());
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{QueueLimits, Urgency};

    const T: u64 = 1_700_000_000_000;

    fn queue_of(events: &[&str]) -> SendQueue {
        let mut q = SendQueue::new(QueueLimits::default());
        for e in events {
            q.push((*e).to_owned(), T);
        }
        q
    }

    #[test]
    fn a_tab_takes_its_own_and_abandoned_queues_but_not_live_ones() {
        let lease = QueueLease::new("demo", "tab-a");
        assert_eq!(lease.key(), "waymark.demo.queue.tab-a");
        let own = lease.record(&queue_of(&[r#"{"n":1}"#]), T).unwrap();
        let other = QueueLease::new("demo", "tab-b");
        let abandoned = other
            .record(&queue_of(&[r#"{"n":2}"#]), T - LEASE_MS - 1)
            .unwrap();
        let live = QueueLease::new("demo", "tab-c")
            .record(&queue_of(&[r#"{"n":3}"#]), T - 5_000)
            .unwrap();
        let elsewhere = QueueLease::new("other", "tab-d")
            .record(&queue_of(&[r#"{"n":4}"#]), 0)
            .unwrap();
        let stored = [
            ("waymark.demo.queue.tab-a", own.as_str()),
            ("waymark.demo.queue.tab-b", abandoned.as_str()),
            ("waymark.demo.queue.tab-c", live.as_str()),
            ("waymark.other.queue.tab-d", elsewhere.as_str()),
            ("waymark.demo.queue.broken", "not a queue"),
        ];
        let mut queue = SendQueue::new(QueueLimits::default());
        let adoption = lease.adopt(&mut queue, stored, T);
        assert_eq!(
            adoption.adopted,
            [
                "waymark.demo.queue.tab-a",
                "waymark.demo.queue.tab-b",
                "waymark.demo.queue.broken"
            ]
        );
        assert_eq!(adoption.events, 2);
        let sent = queue.poll_transmit(T, "demo", Urgency::Now).unwrap();
        assert!(
            sent.body.ends_with(r#""events":[{"n":1},{"n":2}]}"#),
            "{}",
            sent.body
        );
    }

    #[test]
    fn a_lease_lasts_exactly_lease_ms() {
        let lease = QueueLease::new("demo", "me");
        let theirs = QueueLease::new("demo", "them")
            .record(&queue_of(&["{}"]), T)
            .unwrap();
        let mut queue = SendQueue::new(QueueLimits::default());
        let stored = [("waymark.demo.queue.them", theirs.as_str())];
        assert!(lease
            .adopt(&mut queue, stored, T + LEASE_MS)
            .adopted
            .is_empty());
        assert_eq!(
            lease
                .adopt(&mut queue, stored, T + LEASE_MS + 1)
                .adopted
                .len(),
            1
        );
    }

    #[test]
    fn an_empty_queue_is_removed_and_a_full_one_carries_its_drops() {
        let lease = QueueLease::new("demo", "me");
        let mut queue = SendQueue::new(QueueLimits {
            stored_events: 1,
            ..QueueLimits::default()
        });
        assert_eq!(lease.record(&queue, T), None);
        queue.push("{}".into(), T);
        queue.push("{}".into(), T);
        let record = lease.record(&queue, T).unwrap();
        assert_eq!(record, "1700000000000\n1|1\n{}");
        let mut restored = SendQueue::new(QueueLimits::default());
        lease.adopt(&mut restored, [(lease.key(), record.as_str())], T + 1);
        assert_eq!((restored.len(), restored.dropped()), (1, 1));
    }
}
