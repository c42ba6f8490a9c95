//! The scale-out store: events in ClickHouse, with a durable spool in front.
//!
//! `append` writes a request's events to the local [`Spool`] (fsync'd, group
//! commit) and answers; a background shipper reads the spool in order and
//! inserts into ClickHouse in large batches — once `BATCH_EVENTS` have
//! gathered or the oldest has waited `flush_interval` — and only then marks
//! them shipped. While ClickHouse is unreachable the spool grows (up to its
//! bound, then appends fail with [`StoreError::Full`], a 503 with
//! `Retry-After`) and the shipper retries with backoff; when ClickHouse is
//! back the spool is replayed in order.
//!
//! An insert ClickHouse refuses for its content (a parse or type error on
//! the rows, never an outage or overload: [`refusal`]) is tried three
//! times, then moved to the spool's dead-letter (`<data>/spool/dead/`),
//! logged as an error and counted (`waymark_store_dead_lettered_*`), and
//! the spool behind it is shipped. `/healthz` stays ok then: shipping goes
//! on, and one bad batch should not take every collector out of a load
//! balancer; the metric is what to alert on. Only a refused insert that
//! cannot be moved (the dead-letter is full, bounded by
//! `dead_letter_max_bytes`) holds up the spool, and that is unhealthy.
//! Files moved to `dead/replay/` are appended to the spool at the next
//! start.
//!
//! A replay can insert an event twice (a crash between the insert and the
//! shipped mark), and several collectors can write the same `visit_ended`.
//! Neither shows: `events` is a `ReplacingMergeTree` keyed by
//! `(site, session_id, event_id)`, which folds duplicates as parts merge,
//! and every read is written to count each `event_id` once before that
//! (`uniqExact`, `argMin`/`argMax`, or [`fold_session`] in Rust).
//!
//! Sessions follow the same rules as the SQLite store's
//! ([`crate::session`], [`fold_session`]): sessions, lists, stats, the read
//! API's questions ([`reports`]) and sweeps read `sessions_agg` (lists,
//! stats, reports and sweeps through its compaction, [`flat`]), an
//! `AggregatingMergeTree` a materialised view keeps from every insert into
//! `events` (`AGGREGATES` in [`schema`]), over per-event keys computed at
//! insert (the merge order key, the end's rank, the landing page's source). Every
//! aggregate is a minimum, a maximum or a distinct count, so the order
//! events arrive in, the collector they arrive at and duplicates change
//! nothing. A session's events are read a page at a time by the same rules
//! in SQL, and a sweep asks for one row per idle session: no read holds all
//! the events of a session (only [`SessionReader::events_for_session`], for
//! tests and tools, folds them all in Rust).
//!
//! It speaks ClickHouse's HTTP interface through the official `clickhouse`
//! crate, with schema validation off: the crate's validation asks for
//! `RowBinaryWithNamesAndTypes` and settings that servers before 24.x lack.
//! Types and SQL are those ClickHouse 18.16 and current releases both take:
//! times are epoch milliseconds in `UInt64`.
//!
//! [`spool`] is the spool and its dead-letter, [`shipper`] the shipper,
//! [`refusal`] which failed inserts are the rows' fault, [`schema`] the tables
//! and migrations, [`landing`] schema version 3 (page keys and landing
//! fields), [`flat`] schema version 4 (the sessions compacted into plain
//! columns, and the compactor), [`rows`] the rows written and read, [`queries`] the sessions',
//! stats' and the sweeper's SQL, [`reports`] the read API's other questions
//! and its filters, [`url`] the server's address; [`sql`] lists every
//! statement the store sends, for tests.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clickhouse::Client;
use tokio::sync::{watch, Notify};

use self::counts::SessionCounts;
use self::mirror::Mirror;
use self::shipper::{Health, Shipper};
use self::spool::{read_replay, remove_replay, replays, DeadLetter, Position, Spool};
use super::lifecycle::{Erasure, Expiry, Lifecycle, Table};
use super::{
    lock, AppendOutcome, BoxFuture, EventCursor, EventPage, EventSink, SessionPage, SessionQuery,
    SessionReader, SessionSweeper, Stats, StatsQuery, StoreError, SweepCursor, SweepPage,
};
use crate::config::DEFAULT_DEAD_LETTER_MAX_BYTES;
use crate::config::DEFAULT_MAX_EVENTS_PER_SESSION;
use crate::event::StoredEvent;
use crate::metrics::StoreMetrics;
use crate::read::{
    Breakdown, BreakdownQuery, Funnel, FunnelQuery, Person, ProfileQuery, ProfileTotals, Realtime,
    RealtimeQuery, Timeseries, TimeseriesQuery,
};
use crate::session::{fold_session, Session};

pub use self::url::ClickHouseUrl;

mod counts;
mod flat;
mod landing;
mod lifecycle;
mod listed;
mod mirror;
mod queries;
mod refusal;
mod reports;
mod rows;
mod schema;
mod shipper;
mod split;
mod spool;
pub mod sql;
mod url;

/// The longest one insert (or query) may take before it counts as failed.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl From<clickhouse::error::Error> for StoreError {
    fn from(err: clickhouse::error::Error) -> Self {
        StoreError::Backend {
            backend: "clickhouse",
            message: err.to_string(),
        }
    }
}

/// The ClickHouse store's spool: its bounds and how soon it is shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolOptions {
    /// Bytes of acknowledged events the spool holds, at most, while
    /// ClickHouse does not take them; past it appends fail with
    /// [`StoreError::Full`].
    pub max_bytes: u64,
    /// Longest an acknowledged event waits before its insert.
    pub flush_interval: Duration,
    /// Bytes the dead-letter (inserts ClickHouse refused for their
    /// content) holds, at most; a refused insert that does not fit holds
    /// up the spool.
    pub dead_letter_max_bytes: u64,
}

/// Events and sessions in a ClickHouse database; see the module docs.
#[derive(Debug)]
pub struct ClickHouseStore {
    ch: Arc<Ch>,
    spool: Arc<Spool>,
    shipped: watch::Receiver<Position>,
    flush_now: Arc<Notify>,
    stop: watch::Sender<bool>,
    shipper: Mutex<Option<tokio::task::JoinHandle<()>>>,
    metrics: StoreMetrics,
    health: Arc<Health>,
    /// Events one session may hold besides its `visit_ended`.
    max_events: u64,
    /// What this collector has taken per session, for the cap.
    counts: SessionCounts,
    /// The compacted sessions in memory, for the aggregate reads.
    mirror: Arc<Mirror>,
}

/// The client and what it knows of the server.
struct Ch {
    /// For queries, which name tables with their database.
    client: Client,
    /// For inserts, which take a bare table name.
    inserter: Client,
    db: String,
    migrated: AtomicBool,
    /// Held by a compaction, and by a removal (erasure, retention) until
    /// its deletes are done: a compaction that read `sessions_agg` before
    /// a removal's delete reached it would write the removed sessions into
    /// `sessions_flat` again after that table's delete, in a part the
    /// delete never sees.
    removing: tokio::sync::Mutex<()>,
    /// When this collector last wrote the flat rows' cuts
    /// ([`split`]), `None` before its first compaction.
    split_at: std::sync::Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for Ch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ch")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl ClickHouseStore {
    /// Opens the spool in `<data_dir>/spool`, creates or migrates the schema
    /// (or, when ClickHouse is unreachable, leaves that to the shipper) and
    /// starts shipping, with the default dead-letter bound. Must be called
    /// inside a Tokio runtime.
    pub async fn open(
        url: &ClickHouseUrl,
        data_dir: &Path,
        spool_max_bytes: u64,
        flush_interval: Duration,
    ) -> Result<ClickHouseStore, StoreError> {
        let options = SpoolOptions {
            max_bytes: spool_max_bytes,
            flush_interval,
            dead_letter_max_bytes: DEFAULT_DEAD_LETTER_MAX_BYTES,
        };
        Self::open_with(url, data_dir, options).await
    }

    /// [`open`](Self::open), with every spool option given. Dead-letter
    /// files waiting in `<data_dir>/spool/dead/replay/` are appended to the
    /// spool (and deleted) before shipping starts.
    pub async fn open_with(
        url: &ClickHouseUrl,
        data_dir: &Path,
        options: SpoolOptions,
    ) -> Result<ClickHouseStore, StoreError> {
        let dir = data_dir.join("spool");
        let opening = dir.clone();
        let (spool, reader, dead) = tokio::task::spawn_blocking(move || {
            let (spool, reader) = Spool::open(&opening, options.max_bytes)?;
            let dead = DeadLetter::open(&opening, options.dead_letter_max_bytes)?;
            Ok::<_, StoreError>((spool, reader, dead))
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
        replay_dead_letters(&spool, &dir).await;
        let mut client = Client::default().with_url(&url.http).with_validation(false);
        if let Some(user) = &url.user {
            client = client.with_user(user);
        }
        if let Some(password) = &url.password {
            client = client.with_password(password);
        }
        let ch = Arc::new(Ch {
            inserter: client.clone().with_database(&url.database),
            client,
            db: url.database.clone(),
            migrated: AtomicBool::new(false),
            removing: tokio::sync::Mutex::new(()),
            split_at: std::sync::Mutex::new(None),
        });
        match ch.migrate().await {
            Ok(()) => tracing::info!(clickhouse = %url, "the ClickHouse schema is up to date"),
            Err(err) => tracing::warn!(
                clickhouse = %url,
                error = %err,
                "ClickHouse is unreachable; events are kept in the spool until it is back"
            ),
        }

        let spool = Arc::new(spool);
        let (shipped_tx, shipped) = watch::channel(reader.at());
        let (stop, stopping) = watch::channel(false);
        let flush_now = Arc::new(Notify::new());
        let metrics = StoreMetrics::new();
        metrics
            .dead_letter_bytes
            .set(i64::try_from(dead.bytes()).unwrap_or(i64::MAX));
        metrics
            .spooled_events
            .set(i64::try_from(spool.pending_events()).unwrap_or(i64::MAX));
        let health = Arc::new(Health::default());
        let shipper = Shipper {
            ch: Arc::clone(&ch),
            spool: Arc::clone(&spool),
            reader,
            shipped: shipped_tx,
            flush_now: Arc::clone(&flush_now),
            stopping,
            flush_interval: options.flush_interval,
            metrics: metrics.clone(),
            health: Arc::clone(&health),
            dead,
            read_retry: shipper::RETRY_FIRST,
        };
        let handle = tokio::spawn(shipper.run());
        tokio::spawn(flat::run(Arc::clone(&ch), stop.subscribe()));
        // Its loop builds it at once, then keeps it current.
        let mirror = Mirror::new(metrics.clone());
        tokio::spawn(mirror::run(
            Arc::clone(&mirror),
            Arc::clone(&ch),
            stop.subscribe(),
        ));
        Ok(ClickHouseStore {
            ch,
            spool,
            shipped,
            flush_now,
            stop,
            shipper: Mutex::new(Some(handle)),
            metrics,
            health,
            max_events: DEFAULT_MAX_EVENTS_PER_SESSION,
            counts: SessionCounts::new(counts::CAPACITY),
            mirror,
        })
    }

    /// The store with each session holding at most `max` events besides
    /// its `visit_ended` (default [`DEFAULT_MAX_EVENTS_PER_SESSION`]), as
    /// this collector counts them (see the module docs); the appends of
    /// further ones list them in [`AppendOutcome::session_full`].
    #[must_use]
    pub fn with_max_events_per_session(mut self, max: u64) -> Self {
        self.max_events = max;
        self
    }

    /// Compacts now: writes the sessions changed since the last compaction
    /// into `sessions_flat` (which each collector also does every 10 s;
    /// see the ClickHouse docs, `docs/clickhouse.md`).
    pub async fn compact(&self) -> Result<(), StoreError> {
        self.ch.compact(flat::MARGIN_SECS).await
    }

    /// [`compact`](Self::compact), vouching for every session touched
    /// `margin_secs` before it began instead of a minute: for tests, which
    /// know no insert is under way.
    #[doc(hidden)]
    pub async fn compact_with_margin(&self, margin_secs: u64) -> Result<(), StoreError> {
        self.ch.compact(margin_secs).await
    }

    /// Whether the read mirror answers the aggregate reads (it is built
    /// at open, in the background, and again after a removal; reads use
    /// SQL meanwhile).
    pub fn read_mirror_ready(&self) -> bool {
        self.mirror.is_ready()
    }

    /// Turns the read mirror off (every read in SQL) or on again: for
    /// tests, which compare the two.
    #[doc(hidden)]
    pub fn set_read_mirror(&self, on: bool) {
        self.mirror.set_on(on);
    }

    /// The sessions the read mirror holds, and the point (epoch seconds)
    /// before which every session touched is among them: for tests.
    #[doc(hidden)]
    pub fn read_mirror_held(&self) -> (usize, u64) {
        self.mirror.held()
    }

    /// Brings the read mirror up to date now, as it does every 10 s: for
    /// tests.
    #[doc(hidden)]
    pub async fn refresh_read_mirror(&self) -> Result<(), StoreError> {
        self.mirror.refresh(&self.ch).await
    }

    /// A read through the mirror ([`mirror::Read::answer`]).
    fn mirrored(&self) -> mirror::Read<'_> {
        mirror::Read {
            ch: &self.ch,
            mirror: &self.mirror,
        }
    }

    /// Events acknowledged and not yet in ClickHouse.
    pub fn spooled_events(&self) -> u64 {
        self.spool.pending_events()
    }

    /// Whether the shipper is working: false when its task has ended
    /// before shutdown, or while it keeps failing on the spool itself
    /// (reading it, or writing the `shipped` mark, say on a full disk, or
    /// moving a refused insert to a full dead-letter), which it retries
    /// with backoff. An insert moved to the dead-letter is not unhealthy:
    /// shipping goes on, and the metrics count it. ClickHouse being unreachable is not
    /// unhealthy (that is what the spool is for); it shows in
    /// [`shipper_last_error`](Self::shipper_last_error). For `/healthz`.
    pub fn shipper_healthy(&self) -> bool {
        let running = lock(&self.shipper)
            .as_ref()
            .is_some_and(|handle| !handle.is_finished());
        running && self.health.spool_ok()
    }

    /// The shipper's last failure (the spool, or a ClickHouse insert),
    /// until it next ships a batch.
    pub fn shipper_last_error(&self) -> Option<String> {
        self.health.last_error()
    }
}

impl EventSink for ClickHouseStore {
    /// Unhealthy (so `/healthz` answers 503 with the reason) while the
    /// shipper has stopped or keeps failing on the spool itself. ClickHouse
    /// being down is not unhealthy: the spool takes the batches meanwhile.
    fn health(&self) -> Result<(), String> {
        if self.shipper_healthy() {
            return Ok(());
        }
        Err(match self.shipper_last_error() {
            Some(error) => format!("the ClickHouse shipper is failing: {error}"),
            None => "the ClickHouse shipper has stopped".to_owned(),
        })
    }

    fn append(&self, events: Vec<StoredEvent>) -> BoxFuture<'_, Result<AppendOutcome, StoreError>> {
        Box::pin(async move {
            let session_full = self.counts.take(&events, self.max_events);
            let taken: Vec<StoredEvent> = if session_full.is_empty() {
                events
            } else {
                let mut full = session_full.iter().peekable();
                events
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| full.next_if_eq(&i).is_none())
                    .map(|(_, event)| event)
                    .collect()
            };
            if taken.is_empty() {
                return Ok(AppendOutcome {
                    session_full,
                    ..AppendOutcome::default()
                });
            }
            self.metrics.queue_depth.inc();
            let appended = self.spool.append(&taken).await;
            self.metrics.queue_depth.dec();
            if let Err(err) = appended {
                self.counts.give_back(&taken);
                return Err(err);
            }
            self.metrics
                .spooled_events
                .set(i64::try_from(self.spool.pending_events()).unwrap_or(i64::MAX));
            // Duplicates are only found in ClickHouse, later; they are
            // counted once there.
            Ok(AppendOutcome {
                inserted: taken.len(),
                duplicates: 0,
                session_full,
            })
        })
    }

    fn metrics(&self) -> Option<&StoreMetrics> {
        Some(&self.metrics)
    }

    fn sync(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let target = self.spool.durable();
            let mut shipped = self.shipped.clone();
            self.flush_now.notify_one();
            shipped
                .wait_for(|at| *at >= target)
                .await
                .map_err(|_| StoreError::Closed)?;
            Ok(())
        })
    }

    fn shutdown(self: Arc<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let spool = Arc::clone(&self.spool);
            let _ = tokio::task::spawn_blocking(move || spool.close()).await;
            let _ = self.stop.send(true);
            let handle = lock(&self.shipper).take();
            if let Some(handle) = handle {
                let _ = handle.await;
            }
            let left = self.spool.pending_events();
            if left > 0 {
                tracing::warn!(
                    events = left,
                    "ClickHouse did not take everything before shutdown; the spool keeps it for the next start"
                );
            }
        })
    }

    fn reader(self: Arc<Self>) -> Option<Arc<dyn SessionReader>> {
        Some(self)
    }

    fn sweeper(self: Arc<Self>) -> Option<Arc<dyn SessionSweeper>> {
        Some(self)
    }

    fn lifecycle(self: Arc<Self>) -> Option<Arc<dyn Lifecycle>> {
        Some(self)
    }
}

impl Lifecycle for ClickHouseStore {
    fn tables(&self) -> &'static [Table] {
        lifecycle::TABLES
    }

    fn erase(&self, person: Person) -> BoxFuture<'_, Result<Erasure, StoreError>> {
        Box::pin(self.erase_now(person))
    }

    fn expire(
        &self,
        started_before: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Expiry, StoreError>> {
        Box::pin(self.expire_now(started_before, limit))
    }
}

impl SessionReader for ClickHouseStore {
    fn events_for_session<'a>(
        &'a self,
        site: &'a str,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>> {
        Box::pin(async move {
            let events = self.fetch_session_events(site, session_id).await?;
            Ok(fold_session(events)
                .map(|(_, kept)| kept)
                .unwrap_or_default())
        })
    }

    fn session_events<'a>(
        &'a self,
        site: &'a str,
        session_id: &'a str,
        after: Option<EventCursor>,
        limit: usize,
    ) -> BoxFuture<'a, Result<EventPage, StoreError>> {
        Box::pin(self.session_events_now(site, session_id, after, limit))
    }

    fn recent_events<'a>(
        &'a self,
        site: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>> {
        Box::pin(self.recent_events_now(site, limit))
    }

    fn session<'a>(
        &'a self,
        site: &'a str,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Session>, StoreError>> {
        Box::pin(self.session_now(site, session_id))
    }

    fn session_sites<'a>(
        &'a self,
        session_id: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(self.session_sites_now(session_id, limit))
    }

    fn sessions(&self, query: SessionQuery) -> BoxFuture<'_, Result<SessionPage, StoreError>> {
        Box::pin(self.sessions_now(query))
    }

    fn stats(&self, query: StatsQuery) -> BoxFuture<'_, Result<Stats, StoreError>> {
        Box::pin(self.stats_now(query))
    }

    fn breakdown(&self, query: BreakdownQuery) -> BoxFuture<'_, Result<Breakdown, StoreError>> {
        Box::pin(self.breakdown_now(query))
    }

    fn timeseries(&self, query: TimeseriesQuery) -> BoxFuture<'_, Result<Timeseries, StoreError>> {
        Box::pin(self.timeseries_now(query))
    }

    fn realtime(&self, query: RealtimeQuery) -> BoxFuture<'_, Result<Realtime, StoreError>> {
        Box::pin(self.realtime_now(query))
    }

    fn funnel(&self, query: FunnelQuery) -> BoxFuture<'_, Result<Funnel, StoreError>> {
        Box::pin(self.funnel_now(query))
    }

    fn profile_totals(
        &self,
        query: ProfileQuery,
    ) -> BoxFuture<'_, Result<Option<ProfileTotals>, StoreError>> {
        Box::pin(self.profile_totals_now(query))
    }
}

impl SessionSweeper for ClickHouseStore {
    fn sweep(
        &self,
        now: u64,
        idle_before: u64,
        after: Option<SweepCursor>,
        limit: usize,
    ) -> BoxFuture<'_, Result<SweepPage, StoreError>> {
        Box::pin(self.sweep_now(now, idle_before, after, limit))
    }
}

/// Appends the events of the dead-letter files an operator moved to
/// `<spool>/dead/replay/` to the spool and deletes the files. A file that
/// cannot be read or appended is left (and logged) for the next start; a
/// crash between the append and the delete replays it twice, which the
/// `ReplacingMergeTree` folds.
async fn replay_dead_letters(spool: &Spool, dir: &Path) {
    let files = match replays(dir) {
        Ok(files) => files,
        Err(err) => {
            tracing::error!(error = %err, "cannot list the dead-letter files to replay");
            return;
        }
    };
    for path in files {
        let file = path.display();
        let events = match read_replay(&path) {
            Ok(events) => events,
            Err(err) => {
                tracing::error!(%file, error = %err, "cannot read a dead-letter file to replay; left where it is");
                continue;
            }
        };
        if events.is_empty() {
            // Nothing to append.
        } else if let Err(err) = spool.append(&events).await {
            tracing::error!(%file, error = %err, "cannot append a dead-letter file to the spool; left for the next start");
            continue;
        }
        match remove_replay(&path) {
            Ok(()) => {
                tracing::info!(%file, events = events.len(), "replayed a dead-letter file: its events are in the spool")
            }
            Err(err) => tracing::warn!(
                %file,
                error = %err,
                "replayed a dead-letter file but cannot delete it: it is replayed again at the next start"
            ),
        }
    }
}

/// A query or insert that fails instead of hanging when ClickHouse does.
/// Runs `work` every `period` (the first time at once; a late tick waits
/// for the one before) until `stopping` says stop.
async fn every<F, Fut>(period: Duration, mut stopping: watch::Receiver<bool>, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.changed() => return,
        }
        if *stopping.borrow() {
            return;
        }
        work().await;
    }
}

pub(super) async fn timed<T>(
    work: impl std::future::Future<Output = Result<T, clickhouse::error::Error>>,
) -> Result<T, StoreError> {
    timed_for(REQUEST_TIMEOUT, work).await
}

/// [`timed`], for work that may take up to `limit`.
pub(super) async fn timed_for<T>(
    limit: Duration,
    work: impl std::future::Future<Output = Result<T, clickhouse::error::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, work).await {
        Ok(done) => Ok(done?),
        Err(_) => Err(StoreError::Commit(
            "ClickHouse did not answer in time".to_owned(),
        )),
    }
}
