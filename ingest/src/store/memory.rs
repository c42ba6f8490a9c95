//! A store in memory, for tests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::lifecycle::{Erasure, Expiry, Lifecycle, Table, TableRole};
use super::{AppendOutcome, BoxFuture, EventSink, StoreError};
use crate::event::StoredEvent;
use crate::read::Person;

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

    fn lifecycle(self: Arc<Self>) -> Option<Arc<dyn Lifecycle>> {
        Some(self)
    }
}

/// The memory store's one "table".
const TABLES: &[Table] = &[Table {
    name: "events",
    role: TableRole::Personal,
}];

impl Inner {
    /// Removes the events of the sessions `doomed` picks (by site and
    /// session id): how many sessions and events.
    fn remove(&mut self, doomed: &HashSet<(String, String)>) -> (u64, u64) {
        let before = self.events.len();
        self.events
            .retain(|e| !doomed.contains(&(e.site.clone(), e.session_id.clone())));
        (doomed.len() as u64, (before - self.events.len()) as u64)
    }
}

impl Lifecycle for MemoryStore {
    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    /// Removes every session holding an event of the person's visitors
    /// (for a user, those of the events carrying its id).
    fn erase(&self, person: Person) -> BoxFuture<'_, Result<Erasure, StoreError>> {
        let mut inner = self.lock();
        let mut visitors: Vec<String> = match &person {
            Person::Visitor(id) => vec![id.clone()],
            Person::User(id) => inner
                .events
                .iter()
                .filter(|e| e.user_id.as_deref() == Some(id.as_str()))
                .map(|e| e.visitor_id.clone())
                .collect(),
        };
        visitors.sort_unstable();
        visitors.dedup();
        let doomed: HashSet<(String, String)> = inner
            .events
            .iter()
            .filter(|e| visitors.contains(&e.visitor_id))
            .map(|e| (e.site.clone(), e.session_id.clone()))
            .collect();
        let (sessions, events) = inner.remove(&doomed);
        let erasure = Erasure {
            visitor_ids: visitors,
            sessions,
            events,
            tables: BTreeMap::from([("events", events)]),
            pending: Vec::new(),
        };
        Box::pin(std::future::ready(Ok(erasure)))
    }

    /// A session starts at its earliest event here.
    fn expire(
        &self,
        started_before: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Expiry, StoreError>> {
        let mut inner = self.lock();
        let mut starts: HashMap<(String, String), u64> = HashMap::new();
        for e in &inner.events {
            let start = starts
                .entry((e.site.clone(), e.session_id.clone()))
                .or_insert(e.ts);
            *start = (*start).min(e.ts);
        }
        let mut old: Vec<_> = starts
            .into_iter()
            .filter(|(_, start)| *start < started_before)
            .map(|(key, start)| (start, key))
            .collect();
        old.sort_unstable();
        let more = old.len() > limit;
        let doomed = old.into_iter().take(limit).map(|(_, key)| key).collect();
        let (sessions, events) = inner.remove(&doomed);
        Box::pin(std::future::ready(Ok(Expiry {
            sessions,
            events,
            more,
        })))
    }
}
