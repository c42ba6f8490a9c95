//! The default store: one SQLite file, written by one thread with group commit.
//!
//! Every append goes through a channel to a single writer thread that owns
//! the write connection. The writer blocks for the first request, then takes
//! whatever else is already queued (up to
//! [`MAX_GROUP_EVENTS`]) and writes it
//! all in one transaction: one `fsync` for many concurrent requests. Each
//! request is answered only after that transaction has committed. The
//! `sessions` table is kept current in the same transaction as the events
//! (see [`crate::session`] for the rules), and the sweeper's writes go
//! through the same writer. Reads use a separate connection, which WAL mode
//! lets run beside the writer.
//!
//! [`schema`] holds the migrations, [`writer`] the writer thread, [`rows`]
//! the columns and row decoding, [`queries`] the SQL of the sessions, their
//! events, stats and filters, [`reports`] that of the read API's other
//! questions. [`index`] keeps the read index, which answers stats,
//! breakdowns, timeseries and funnels from memory once it is built; until
//! then, and for every other question, the SQL answers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use self::index::ReadIndex;
use self::queries::{list_sessions, session_events, stats};
use self::rows::{event_from_row, session_from_row, EVENTS_FROM, EVENT_SELECT, SESSION_SELECT};
use self::schema::migrate;
use self::writer::{commit_group, Command, MAX_GROUP_EVENTS};
use super::group::GroupCommit;
use super::lifecycle::{Erasure, Expiry, Lifecycle, Table};
use super::{
    lock, AppendOutcome, BoxFuture, EventCursor, EventPage, EventSink, SessionPage, SessionQuery,
    SessionReader, SessionSweeper, Stats, StatsQuery, StoreError, SweepCursor, SweepPage,
};
use crate::config::DEFAULT_MAX_EVENTS_PER_SESSION;
use crate::event::StoredEvent;
use crate::metrics::StoreMetrics;
use crate::read::{
    Breakdown, BreakdownQuery, Funnel, FunnelQuery, Person, ProfileQuery, ProfileTotals, Realtime,
    RealtimeQuery, Timeseries, TimeseriesQuery,
};
use crate::session::Session;

mod compact;
mod index;
mod lifecycle;
mod packed;
mod queries;
mod reports;
mod rows;
mod schema;
#[cfg(test)]
mod tests;
mod writer;

/// The file the store keeps in the data directory.
pub const DB_FILE_NAME: &str = "waymark.db";

/// One commit running longer than this makes the store unhealthy
/// (`/healthz` 503): well past the busy timeout and a slow `fsync`.
pub(crate) const STUCK_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// Append requests waiting for the writer before senders wait for room.
const QUEUE_CAPACITY: usize = 1024;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError::Backend {
            backend: "sqlite",
            message: err.to_string(),
        }
    }
}

/// Events and sessions in `<data_dir>/waymark.db`.
///
/// Dropping the store (or calling [`close`](SqliteStore::close)) lets the
/// writer finish what is queued and waits for it.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writer: GroupCommit<Command>,
    reader: Arc<Mutex<Connection>>,
    commits: Arc<AtomicU64>,
    metrics: StoreMetrics,
    /// Events one session may hold besides its `visit_ended`, shared with
    /// the writer thread.
    max_events: Arc<AtomicU64>,
    /// The read index, shared with the writer and the builder.
    index: Arc<ReadIndex>,
}

/// A connection to the database file, with the busy timeout and the
/// functions of [`packed`] and [`compact`] every statement may use.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    SqliteStore::register_functions(&conn)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating when needed) `<data_dir>/waymark.db`, brings its
    /// schema up to date and starts the writer thread.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let data_dir = data_dir.as_ref();
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(DB_FILE_NAME);

        let mut writer = connect(&path)?;
        migrate(&mut writer)?;
        // WAL: readers do not block the writer. FULL: a commit is on disk
        // before it is acknowledged.
        writer.pragma_update(None, "journal_mode", "WAL")?;
        writer.pragma_update(None, "synchronous", "FULL")?;

        let reader = connect(&path)?;
        reader.pragma_update(None, "query_only", true)?;

        let commits = Arc::new(AtomicU64::new(0));
        let metrics = StoreMetrics::new();
        let max_events = Arc::new(AtomicU64::new(DEFAULT_MAX_EVENTS_PER_SESSION));
        let writer_commits = Arc::clone(&commits);
        let writer_metrics = metrics.clone();
        let writer_max_events = Arc::clone(&max_events);
        let index = ReadIndex::new(metrics.clone());
        let writer_index = Arc::clone(&index);
        let empty = !writer.query_row("SELECT EXISTS (SELECT 1 FROM sessions)", [], |r| {
            r.get::<_, bool>(0)
        })?;
        let mut conn = writer;
        let writer = GroupCommit::spawn(
            "sqlite writer",
            QUEUE_CAPACITY,
            MAX_GROUP_EVENTS,
            Command::events,
            move |group| {
                let max_events = writer_max_events.load(Ordering::Relaxed);
                commit_group(
                    &mut conn,
                    group,
                    &writer_commits,
                    &writer_metrics,
                    max_events,
                    &writer_index,
                );
            },
        )?;
        let mut builder = connect(&path)?;
        builder.pragma_update(None, "query_only", true)?;
        if empty {
            // Nothing to read: ready before the first append.
            index.build(&mut builder)?;
        } else {
            let building = Arc::clone(&index);
            std::thread::Builder::new()
                .name("read index".to_owned())
                .spawn(move || {
                    if let Err(err) = building.build(&mut builder) {
                        tracing::error!(error = %err, "read index not built; reads use SQL");
                    }
                })?;
        }

        Ok(SqliteStore {
            path,
            writer,
            reader: Arc::new(Mutex::new(reader)),
            commits,
            metrics,
            max_events,
            index,
        })
    }

    /// SQL that reads the URL column `column` of `events` or `sessions`
    /// (`url`, `referrer`, `landing_page`, `exit_page`) whole, from a
    /// `SELECT` on that table (schema version 7 keeps a URL of its site's
    /// origin as the rest of it): for tools and tests that read
    /// `waymark.db` directly.
    pub fn url_sql(column: &str) -> String {
        compact::url_of("site", column)
    }

    /// Registers on a connection of one's own the SQL functions that read
    /// the store's packed ids and keys as text, `wm_text(column)`, and pack
    /// text to compare with them, `wm_pack(text)` (schema version 6: a
    /// canonical UUID is kept as its 16 bytes, any other id as its text),
    /// and those the upgrade to version 7 calls (`wm_kept_url` and the
    /// like): for tools and tests that read `waymark.db` directly.
    pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
        packed::register(conn)?;
        compact::register(conn)
    }

    /// Whether the read index answers the aggregate reads yet (it is built
    /// in the background at open).
    pub fn read_index_ready(&self) -> bool {
        self.index.is_ready()
    }

    /// The store with each session holding at most `max` events besides
    /// its `visit_ended` (default [`DEFAULT_MAX_EVENTS_PER_SESSION`]); the
    /// appends of further ones list them in
    /// [`AppendOutcome::session_full`].
    #[must_use]
    pub fn with_max_events_per_session(self, max: u64) -> Self {
        self.max_events.store(max, Ordering::Relaxed);
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Transactions committed by the writer since the store was opened.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Stops taking appends, lets the writer commit everything already
    /// queued and waits for it to finish. Later appends fail with
    /// [`StoreError::Closed`]. Blocks: from async code, call it inside
    /// `spawn_blocking`. Calling it again does nothing.
    pub fn close(&self) {
        self.writer.close();
    }

    fn read<T, F>(&self, query: F) -> BoxFuture<'_, Result<T, StoreError>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let reader = Arc::clone(&self.reader);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || query(&lock(&reader)))
                .await
                .map_err(|err| StoreError::Io(std::io::Error::other(err)))?
        })
    }

    /// An aggregate read: from the read index once it is ready, else in SQL.
    fn aggregate<Q, T>(
        &self,
        query: Q,
        from_index: fn(&crate::store::columns::Columns, &Q) -> T,
        from_sql: fn(&Connection, &Q) -> Result<T, StoreError>,
    ) -> BoxFuture<'_, Result<T, StoreError>>
    where
        Q: Send + 'static,
        T: Send + 'static,
    {
        if !self.index.is_ready() {
            return self.read(move |conn| from_sql(conn, &query));
        }
        let index = Arc::clone(&self.index);
        let reader = Arc::clone(&self.reader);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || match index.columns() {
                Some(columns) => Ok(from_index(&columns, &query)),
                None => from_sql(&lock(&reader), &query),
            })
            .await
            .map_err(|err| StoreError::Io(std::io::Error::other(err)))?
        })
    }

    /// Sends a command to the writer and waits for its committed result.
    fn command<T: Send + 'static>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command + Send + 'static,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        let sender = self.writer.sender();
        let depth = self.metrics.queue_depth.clone();
        Box::pin(async move {
            let sender = sender.ok_or(StoreError::Closed)?;
            let (reply, answer) = oneshot::channel();
            depth.inc();
            if sender.send(make(reply)).await.is_err() {
                depth.dec();
                return Err(StoreError::Closed);
            }
            drop(sender);
            // The writer drops the reply only if it died mid-group.
            answer.await.map_err(|_| StoreError::Closed)?
        })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

impl EventSink for SqliteStore {
    fn append(&self, events: Vec<StoredEvent>) -> BoxFuture<'_, Result<AppendOutcome, StoreError>> {
        if events.is_empty() {
            return Box::pin(std::future::ready(Ok(AppendOutcome::default())));
        }
        self.command(move |reply| Command::Append { events, reply })
    }

    fn metrics(&self) -> Option<&StoreMetrics> {
        Some(&self.metrics)
    }

    /// Unhealthy while the writer thread is gone or one commit has taken
    /// longer than 30 s (`STUCK_AFTER`).
    fn health(&self) -> Result<(), String> {
        self.writer.health(STUCK_AFTER)
    }

    fn shutdown(self: Arc<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Err(err) = tokio::task::spawn_blocking(move || self.close()).await {
                tracing::error!(error = %err, "closing the sqlite store failed");
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

impl SqliteStore {
    /// Copies the store in `data_dir` into the new file `to`,
    /// consistently, while a collector may be writing it: SQLite's `VACUUM
    /// INTO` reads one snapshot (every transaction committed before it
    /// started, none after) in a read transaction, which WAL mode runs
    /// beside the writer. Refuses to write over an existing file. The copy
    /// is a store: name it `waymark.db` in a data directory.
    pub fn backup(data_dir: &Path, to: &Path) -> Result<(), StoreError> {
        lifecycle::backup(data_dir, to)
    }
}

impl Lifecycle for SqliteStore {
    fn tables(&self) -> &'static [Table] {
        lifecycle::TABLES
    }

    fn erase(&self, person: Person) -> BoxFuture<'_, Result<Erasure, StoreError>> {
        Box::pin(async move {
            let linked = match &person {
                Person::Visitor(_) => Vec::new(),
                Person::User(id) => {
                    let id = id.clone();
                    self.read(move |conn| Ok(lifecycle::linked_visitors(conn, &id)?))
                        .await?
                }
            };
            self.command(move |reply| Command::Erase {
                person,
                linked,
                reply,
            })
            .await
        })
    }

    fn expire(
        &self,
        started_before: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Expiry, StoreError>> {
        self.command(move |reply| Command::Expire {
            started_before,
            limit: limit.clamp(1, writer::EXPIRE_BATCH),
            reply,
        })
    }
}

impl SessionReader for SqliteStore {
    fn events_for_session<'a>(
        &'a self,
        site: &'a str,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>> {
        let (site, session_id) = (site.to_owned(), session_id.to_owned());
        self.read(move |conn| {
            let sql = format!(
                "SELECT {EVENT_SELECT} FROM {EVENTS_FROM} WHERE site = ?1 AND session_id = wm_pack(?2) \
                 ORDER BY ts, seq, event_id"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![site, session_id], event_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn session_events<'a>(
        &'a self,
        site: &'a str,
        session_id: &'a str,
        after: Option<EventCursor>,
        limit: usize,
    ) -> BoxFuture<'a, Result<EventPage, StoreError>> {
        let (site, session_id) = (site.to_owned(), session_id.to_owned());
        self.read(move |conn| session_events(conn, &site, &session_id, after.as_ref(), limit))
    }

    fn recent_events<'a>(
        &'a self,
        site: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>> {
        let site = site.map(str::to_owned);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let sql = format!(
                "SELECT {EVENT_SELECT} FROM {EVENTS_FROM} WHERE ?1 IS NULL OR site = ?1 \
                 ORDER BY ts DESC, event_id DESC LIMIT ?2"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![site, limit], event_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn session<'a>(
        &'a self,
        site: &'a str,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Session>, StoreError>> {
        let (site, session_id) = (site.to_owned(), session_id.to_owned());
        self.read(move |conn| {
            let sql = format!(
                "SELECT {SESSION_SELECT} FROM sessions WHERE site = ?1 AND session_id = wm_pack(?2)"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            Ok(stmt
                .query_row(params![site, session_id], session_from_row)
                .optional()?)
        })
    }

    fn session_sites<'a>(
        &'a self,
        session_id: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        let session_id = session_id.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT site FROM sessions WHERE session_id = wm_pack(?1) ORDER BY site LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![session_id, limit], |row| row.get(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn sessions(&self, query: SessionQuery) -> BoxFuture<'_, Result<SessionPage, StoreError>> {
        self.read(move |conn| list_sessions(conn, &query))
    }

    fn stats(&self, query: StatsQuery) -> BoxFuture<'_, Result<Stats, StoreError>> {
        self.aggregate(query, crate::store::columns::answer::stats, stats)
    }

    fn breakdown(&self, query: BreakdownQuery) -> BoxFuture<'_, Result<Breakdown, StoreError>> {
        self.aggregate(
            query,
            crate::store::columns::answer::breakdown,
            reports::breakdown,
        )
    }

    fn timeseries(&self, query: TimeseriesQuery) -> BoxFuture<'_, Result<Timeseries, StoreError>> {
        self.aggregate(
            query,
            crate::store::columns::answer::timeseries,
            reports::timeseries,
        )
    }

    fn realtime(&self, query: RealtimeQuery) -> BoxFuture<'_, Result<Realtime, StoreError>> {
        self.read(move |conn| reports::realtime(conn, &query))
    }

    fn funnel(&self, query: FunnelQuery) -> BoxFuture<'_, Result<Funnel, StoreError>> {
        self.aggregate(
            query,
            crate::store::columns::answer::funnel,
            reports::funnel,
        )
    }

    fn profile_totals(
        &self,
        query: ProfileQuery,
    ) -> BoxFuture<'_, Result<Option<ProfileTotals>, StoreError>> {
        self.read(move |conn| reports::profile_totals(conn, &query))
    }
}

impl SessionSweeper for SqliteStore {
    fn sweep(
        &self,
        now: u64,
        idle_before: u64,
        after: Option<SweepCursor>,
        limit: usize,
    ) -> BoxFuture<'_, Result<SweepPage, StoreError>> {
        self.command(move |reply| Command::Sweep {
            now,
            idle_before,
            after,
            limit,
            reply,
        })
    }
}
