//! The data lifecycle, above the store: the retention pass the sweeper
//! runs (`--retention-days`) and the erasure of one person, with its audit
//! line and metrics. What each store deletes is its [`Lifecycle`]'s.

use crate::error::Error;
use crate::read::Person;
use crate::state::AppState;
use std::sync::Arc;

use crate::store::{Erasure, Lifecycle, StoreError};

/// Sessions one retention call removes, at most (the SQLite store takes
/// fewer per call; each call is one short transaction).
pub const RETENTION_BATCH: usize = 1000;

/// One day in milliseconds.
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// What a retention pass removed in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retained {
    pub sessions: u64,
    pub events: u64,
}

/// One retention pass at the state's clock's `now`: removes every session
/// (with its events, and whatever is built from them) that started more
/// than [`Config::retention_days`](crate::Config) days ago, in batches.
/// Nothing without a retention or with a store that is no [`Lifecycle`].
pub async fn expire_old_sessions(state: &AppState) -> Result<Retained, Error> {
    let (Some(days), Some(lifecycle)) = (state.config().retention_days, state.lifecycle()) else {
        return Ok(Retained::default());
    };
    let cutoff = state
        .clock()
        .now_ms()
        .saturating_sub(days.saturating_mul(DAY_MS));
    let mut total = Retained::default();
    loop {
        let pass = lifecycle.expire(cutoff, RETENTION_BATCH).await?;
        total.sessions += pass.sessions;
        total.events += pass.events;
        let metric = &state.metrics().retention_deleted;
        metric
            .with_label_values(&["sessions"])
            .inc_by(pass.sessions);
        metric.with_label_values(&["events"]).inc_by(pass.events);
        if !pass.more || pass.sessions == 0 {
            break;
        }
        // Let appends queued meanwhile go first.
        tokio::task::yield_now().await;
    }
    Ok(total)
}

/// Whose data, for the audit line: `visitor` or `user`.
fn kind(person: &Person) -> &'static str {
    match person {
        Person::Visitor(_) => "visitor",
        Person::User(_) => "user",
    }
}

/// The id of a person as the audit line names it: a UUIDv5 (SHA-1) of
/// `waymark:<kind>:<id>`, so whoever knows the id can find the line and the
/// line does not give the id away.
pub fn id_hash(person: &Person) -> String {
    let id = match person {
        Person::Visitor(id) | Person::User(id) => id,
    };
    let name = format!("waymark:{}:{id}", kind(person));
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
}

/// Erases a person through the store's lifecycle (`501` without one),
/// logs the audit line (counts and [`id_hash`], never the id) and counts it.
/// Runs in a task of its own: a request that gives up waiting (`408`)
/// leaves the erasure to finish and log its line.
pub async fn erase(state: &AppState, person: Person) -> Result<Erasure, Error> {
    let lifecycle = Arc::clone(
        state
            .lifecycle()
            .ok_or(Error::Store(StoreError::NotSupported("erasures")))?,
    );
    let state = state.clone();
    tokio::spawn(async move { erase_now(&state, lifecycle.as_ref(), person).await })
        .await
        .map_err(|err| Error::Io(std::io::Error::other(err)))?
}

async fn erase_now(
    state: &AppState,
    lifecycle: &dyn Lifecycle,
    person: Person,
) -> Result<Erasure, Error> {
    let hash = id_hash(&person);
    let kind = kind(&person);
    let erasure = lifecycle.erase(person).await?;
    tracing::info!(
        target: "waymark::audit",
        kind,
        id_hash = %hash,
        visitors = erasure.visitor_ids.len(),
        sessions = erasure.sessions,
        events = erasure.events,
        pending = ?erasure.pending,
        "erased a person's data"
    );
    let metric = &state.metrics().erased;
    metric.with_label_values(&["requests"]).inc();
    metric
        .with_label_values(&["visitors"])
        .inc_by(erasure.visitor_ids.len() as u64);
    metric
        .with_label_values(&["sessions"])
        .inc_by(erasure.sessions);
    metric.with_label_values(&["events"]).inc_by(erasure.events);
    Ok(erasure)
}

/// Retention in the sweeper: one pass, logged.
pub(crate) async fn retention_tick(state: &AppState) {
    match expire_old_sessions(state).await {
        Ok(Retained { sessions: 0, .. }) => {}
        Ok(done) => tracing::info!(
            sessions = done.sessions,
            events = done.events,
            "retention removed old sessions"
        ),
        Err(err) => tracing::warn!(error = %err, "the retention pass failed; retrying next time"),
    }
}
