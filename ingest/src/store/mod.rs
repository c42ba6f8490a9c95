//! Where events go: the store traits and their implementations.
//!
//! Every store is an [`EventSink`]; a store that reads sessions back is also
//! a [`SessionReader`] (the read API is served only then), and one that
//! closes idle sessions a [`SessionSweeper`]. [`Store`] is all three.
//!
//! [`SqliteStore`] is the default, one file on one machine: events, the
//! sessions kept current from them, the sweeper's writes and the read API.
//! [`MemoryStore`] is for tests of the HTTP surface: a sink that keeps
//! events only (the read API's tests run on SQLite in a temporary
//! directory). [`NullStore`] is a sink that keeps nothing: the ceiling for
//! benchmarks (`--store null`). [`ClickHouseStore`] is for scale-out:
//! several collectors, one ClickHouse, with a durable local spool in front.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::event::StoredEvent;
use crate::metrics::StoreMetrics;
use crate::read::{
    Breakdown, BreakdownQuery, Filter, Funnel, FunnelQuery, PreviousPeriod, ProfileQuery,
    ProfileTotals, Realtime, RealtimeQuery, Timeseries, TimeseriesQuery,
};
use crate::session::Session;

#[doc(hidden)]
pub use self::clickhouse::sql as clickhouse_sql;
pub use self::clickhouse::{ClickHouseStore, ClickHouseUrl, SpoolOptions};
pub use self::lifecycle::{Erasure, Expiry, Lifecycle, Table, TableRole};
pub use self::memory::MemoryStore;
pub use self::null::NullStore;
pub use self::sqlite::{SqliteStore, DB_FILE_NAME};
pub use self::timeline::{EventCursor, EventPage, DEFAULT_EVENTS_PAGE, MAX_EVENTS_PAGE};

mod clickhouse;
pub(crate) mod columns;
mod group;
mod lifecycle;
mod memory;
mod null;
mod sqlite;
mod timeline;

/// A boxed, sendable future, so the store traits stay object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What an [`append`](EventSink::append) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Events stored for the first time.
    pub inserted: usize,
    /// Events whose `event_id` was already stored (retries, double sends);
    /// they are left as they were.
    pub duplicates: usize,
    /// Events not stored because their session already holds the most
    /// events it may (`--max-events-per-session`): their positions in the
    /// appended `Vec`, ascending. Reason `session_full` to the client.
    pub session_full: Vec<usize>,
}

/// Why the store could not do what was asked. Never shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend (SQLite, ClickHouse) failed; its error, as text (each
    /// backend converts its own errors at its boundary).
    #[error("{backend}: {message}")]
    Backend {
        /// `sqlite` or `clickhouse`.
        backend: &'static str,
        message: String,
    },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A group of appends could not be committed and was rolled back.
    #[error("commit failed: {0}")]
    Commit(String),
    /// The ClickHouse store's spool is full (ClickHouse has been unreachable
    /// for long); the client should retry later.
    #[error("the spool is full; ClickHouse is not taking events")]
    Full,
    /// The store has been closed and takes no more events.
    #[error("the store is closed")]
    Closed,
    /// The database was written by a newer Waymark.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    /// The store cannot answer this question yet (the read API says `501
    /// not_implemented`); names what, e.g. `breakdowns`.
    #[error("{0} are not supported by this store yet")]
    NotSupported(&'static str),
}

/// A [`SessionReader`] method's answer for what the store does not serve.
fn not_supported<'a, T: Send + 'a>(what: &'static str) -> BoxFuture<'a, Result<T, StoreError>> {
    Box::pin(std::future::ready(Err(StoreError::NotSupported(what))))
}

/// The filters of `GET /v1/sessions`. Times are epoch milliseconds; a
/// session is in `[from, to)` by its `started_at`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionQuery {
    pub site: Option<String>,
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub visitor_id: Option<String>,
    pub user_id: Option<String>,
    /// `Some(false)`: humans only; `Some(true)`: bots only; `None`: both.
    pub is_bot: Option<bool>,
    /// At most this many sessions (1–500).
    pub limit: usize,
    /// Continue after this session (from the previous page's `next_cursor`).
    pub cursor: Option<Cursor>,
    /// Every one must hold (`filter=dimension:value`).
    pub filters: Vec<Filter>,
}

/// A position in the newest-first order of sessions: `started_at`, then
/// `session_id`, both descending. As text, `<started_at>.<session_id>`;
/// clients should treat it as opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub started_at: u64,
    pub session_id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}.{}", self.started_at, self.session_id)
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        let (started_at, session_id) = text.split_once('.')?;
        Some(Cursor {
            started_at: started_at.parse().ok()?,
            session_id: session_id.to_owned(),
        })
        .filter(|c| !c.session_id.is_empty())
    }
}

/// One page of `GET /v1/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPage {
    pub sessions: Vec<Session>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The size of the time buckets of [`Stats::visits_over_time`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    Hour,
    Day,
}

impl Interval {
    pub fn millis(self) -> u64 {
        match self {
            Interval::Hour => 3_600_000,
            Interval::Day => 86_400_000,
        }
    }
}

/// The filters of `GET /v1/stats`: sessions started in `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsQuery {
    pub site: Option<String>,
    pub from: u64,
    pub to: u64,
    pub include_bots: bool,
    pub interval: Interval,
    /// Every one must hold (`filter=dimension:value`).
    pub filters: Vec<Filter>,
}

/// A key and how often it occurred, in the top-10 lists of [`Stats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCount {
    pub key: String,
    pub count: u64,
}

/// Visits started in one bucket of [`Stats::visits_over_time`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Start of the bucket (epoch ms, UTC hour or day).
    pub start: u64,
    pub visits: u64,
}

/// The answer of `GET /v1/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub site: Option<String>,
    pub from: u64,
    pub to: u64,
    /// Sessions started in the range.
    pub visits: u64,
    /// Distinct visitors among them.
    pub visitors: u64,
    pub page_views: u64,
    /// Share of visits with at most one page view, 0–1.
    pub bounce_rate: f64,
    pub avg_duration_ms: u64,
    /// Page views by URL without query string and fragment.
    pub top_pages: Vec<KeyCount>,
    /// Visits by source.
    pub sources: Vec<KeyCount>,
    /// Visits by country code (visits without one are not listed).
    pub countries: Vec<KeyCount>,
    pub interval: Interval,
    /// Every bucket from the one holding `from` to the one holding `to - 1`,
    /// zeros included.
    pub visits_over_time: Vec<Bucket>,
    /// With `compare=previous_period`: the metrics of the range of equal
    /// length just before (the read API fills it in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousPeriod>,
}

impl SessionPage {
    /// The page of the first `limit` of `sessions`, which were fetched with
    /// one more than `limit` to learn whether another page follows.
    pub fn from_overfetched(mut sessions: Vec<Session>, limit: usize) -> SessionPage {
        let next_cursor = if sessions.len() > limit {
            sessions.truncate(limit);
            sessions.last().map(|s| {
                Cursor {
                    started_at: s.started_at,
                    session_id: s.session_id.clone(),
                }
                .encode()
            })
        } else {
            None
        };
        SessionPage {
            sessions,
            next_cursor,
        }
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (an
/// `Option` taken whole, a connection SQLite itself keeps consistent).
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The top-10 lists hold this many keys.
pub(crate) const TOP: usize = 10;

/// A page as `top_pages` counts it: the URL without query and fragment.
/// Each store cuts it in SQL (its `PAGE_KEY`), so it ranks pages in the
/// database; their tests check that against this.
#[cfg(test)]
pub(crate) fn page_key(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

impl Stats {
    /// Stats from what a store counted: `[visits, visitors, page_views,
    /// bounces]`, the mean duration, the top pages (by URL without
    /// query and fragment),
    /// sources and countries (each ranked by the store: count, then key,
    /// [`TOP`] of them), and visits by bucket start.
    pub(crate) fn from_parts(
        q: &StatsQuery,
        [visits, visitors, page_views, bounces]: [u64; 4],
        avg_duration: f64,
        top_pages: Vec<KeyCount>,
        sources: Vec<KeyCount>,
        countries: Vec<KeyCount>,
        counts: &HashMap<u64, u64>,
    ) -> Stats {
        let width = q.interval.millis();
        let first = q.from / width * width;
        let visits_over_time = (0..)
            .map(|i| first + i * width)
            .take_while(|start| *start < q.to)
            .map(|start| Bucket {
                start,
                visits: counts.get(&start).copied().unwrap_or(0),
            })
            .collect();

        #[allow(clippy::cast_precision_loss)] // Counts far below 2^52.
        let bounce_rate = if visits == 0 {
            0.0
        } else {
            bounces as f64 / visits as f64
        };
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // An average of u64s.
        let avg_duration_ms = avg_duration.round() as u64;
        Stats {
            site: q.site.clone(),
            from: q.from,
            to: q.to,
            visits,
            visitors,
            page_views,
            bounce_rate,
            avg_duration_ms,
            top_pages,
            sources,
            countries,
            interval: q.interval,
            visits_over_time,
            previous: None,
        }
    }
}

/// A session with one page of its events in order, for
/// `GET /v1/sessions/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionWithEvents {
    #[serde(flatten)]
    pub session: Session,
    pub events: Vec<StoredEvent>,
    /// Pass as `cursor` for the next page of events; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Where accepted events go; every store is one, shared by all requests as
/// `Arc<dyn EventSink>`. What else a store can do it offers through
/// [`reader`](Self::reader) and [`sweeper`](Self::sweeper).
pub trait EventSink: Send + Sync + Debug {
    /// Stores `events`, skipping any whose `event_id` is already stored.
    ///
    /// Resolves only once the events are durable: an `Ok` is a promise that
    /// they survive a crash.
    fn append(&self, events: Vec<StoredEvent>) -> BoxFuture<'_, Result<AppendOutcome, StoreError>>;

    /// The store's own metrics, to be served at `/metrics`.
    fn metrics(&self) -> Option<&StoreMetrics> {
        None
    }

    /// Whether the store can take events now: `Err` with a reason (shown by
    /// `/healthz`, so nothing secret) while it cannot, e.g. the SQLite
    /// writer thread has died or is stuck on a commit. Default: healthy.
    fn health(&self) -> Result<(), String> {
        Ok(())
    }

    /// Resolves once everything appended before the call can be read back
    /// (the ClickHouse store inserts what its spool holds; the others read
    /// their own writes at once).
    fn sync(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Stops taking events and finishes what was acknowledged: when this
    /// resolves, every acknowledged event is durable.
    fn shutdown(self: Arc<Self>) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }

    /// The same store as a [`SessionReader`], if it reads sessions back
    /// (the read API is served only then).
    fn reader(self: Arc<Self>) -> Option<Arc<dyn SessionReader>> {
        None
    }

    /// The same store as a [`SessionSweeper`], if it closes idle sessions
    /// (the sweeper sweeps only then).
    fn sweeper(self: Arc<Self>) -> Option<Arc<dyn SessionSweeper>> {
        None
    }

    /// The same store as a [`Lifecycle`], if it can expire and erase what
    /// it keeps (the erasure endpoints answer `501` otherwise).
    fn lifecycle(self: Arc<Self>) -> Option<Arc<dyn Lifecycle>> {
        None
    }
}

/// Reads events and sessions back: what the read API serves.
pub trait SessionReader: Send + Sync + Debug {
    /// The events of one site's session, oldest first (by `ts`, `seq`,
    /// `event_id`).
    fn events_for_session<'a>(
        &'a self,
        site: &'a str,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>>;

    /// One page of the events of one site's session, in the order of
    /// [`events_for_session`](Self::events_for_session): up to `limit`
    /// (1 to `MAX_EVENTS_PAGE`, 1000) after `after`, and where the next page
    /// starts. Holds one page in memory, however long the session.
    fn session_events<'a>(
        &'a self,
        site: &'a str,
        session_id: &'a str,
        after: Option<EventCursor>,
        limit: usize,
    ) -> BoxFuture<'a, Result<EventPage, StoreError>>;

    /// The newest `limit` events (by `ts`, then `event_id`), of one site or
    /// of all, newest first.
    fn recent_events<'a>(
        &'a self,
        site: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>>;

    /// One site's session, if it is known. Sessions are keyed by
    /// `(site, session_id)`: another site's session with the same id is
    /// another session.
    fn session<'a>(
        &'a self,
        site: &'a str,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Session>, StoreError>>;

    /// The sites that have a session with this id, at most `limit` of
    /// them, in order (for `GET /v1/sessions/{id}` without `site`).
    fn session_sites<'a>(
        &'a self,
        session_id: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>>;

    /// Sessions newest first (by `started_at`, then `session_id`).
    fn sessions(&self, query: SessionQuery) -> BoxFuture<'_, Result<SessionPage, StoreError>>;

    /// Aggregates over the sessions started in a range.
    fn stats(&self, query: StatsQuery) -> BoxFuture<'_, Result<Stats, StoreError>>;

    // The read API's questions of `crate::read`. A store that cannot answer
    // one keeps the default, [`StoreError::NotSupported`] (the read API
    // answers `501 not_implemented`); the SQLite and ClickHouse stores
    // answer them all.

    /// One dimension's rows, largest first.
    fn breakdown(&self, query: BreakdownQuery) -> BoxFuture<'_, Result<Breakdown, StoreError>> {
        let _ = query;
        not_supported("breakdowns")
    }

    /// The metrics per hour or day, every bucket of the range.
    fn timeseries(&self, query: TimeseriesQuery) -> BoxFuture<'_, Result<Timeseries, StoreError>> {
        let _ = query;
        not_supported("timeseries")
    }

    /// The visitors active since a time and their current pages.
    fn realtime(&self, query: RealtimeQuery) -> BoxFuture<'_, Result<Realtime, StoreError>> {
        let _ = query;
        not_supported("realtime counts")
    }

    /// The visits reaching each step of a funnel, in order.
    fn funnel(&self, query: FunnelQuery) -> BoxFuture<'_, Result<Funnel, StoreError>> {
        let _ = query;
        not_supported("funnels")
    }

    /// A person's totals (`None` without sessions); its sessions come from
    /// [`sessions`](Self::sessions).
    fn profile_totals(
        &self,
        query: ProfileQuery,
    ) -> BoxFuture<'_, Result<Option<ProfileTotals>, StoreError>> {
        let _ = query;
        not_supported("profiles")
    }
}

/// Where a sweep goes on from: the last session the previous call looked at,
/// in the order sweeps go (last activity, then site, then session id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepCursor {
    pub last_seen_at: u64,
    pub site: String,
    pub session_id: String,
}

/// What one [`SessionSweeper::sweep`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepPage {
    /// Sessions closed.
    pub closed: usize,
    /// Where the next call goes on from; `None` when the call looked at
    /// fewer than `limit` sessions (none are left to look at).
    pub next: Option<SweepCursor>,
}

/// Closes idle sessions: what the sweeper calls.
pub trait SessionSweeper: Send + Sync + Debug {
    /// Closes the sessions with no activity before `idle_before` (epoch ms):
    /// writes each one's `visit_ended` (reason `idle`, at its last activity,
    /// received at `now`) unless it already has one. Looks at up to `limit`
    /// open sessions after `after` (oldest activity first, then site and
    /// session id),
    /// and says where to go on from, so sessions it cannot close (whatever
    /// the reason) never stop it from reaching the others. Idempotent: the
    /// event id is derived from the site and the session id.
    fn sweep(
        &self,
        now: u64,
        idle_before: u64,
        after: Option<SweepCursor>,
        limit: usize,
    ) -> BoxFuture<'_, Result<SweepPage, StoreError>>;
}

/// A store that does everything — takes events, reads them back, sweeps —
/// as the SQLite and ClickHouse stores do: any type that is all three.
pub trait Store: EventSink + SessionReader + SessionSweeper {}

impl<T: EventSink + SessionReader + SessionSweeper + ?Sized> Store for T {}
