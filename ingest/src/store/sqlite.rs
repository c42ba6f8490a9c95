//! The default store: one SQLite file, written by one thread with group commit.
//!
//! Every append goes through a channel to a single writer thread that owns
//! the write connection. The writer blocks for the first request, then takes
//! whatever else is already queued (up to [`MAX_GROUP_EVENTS`]) and writes it
//! all in one transaction: one `fsync` for many concurrent requests. Each
//! request is answered only after that transaction has committed. The
//! `sessions` table is kept current in the same transaction as the events
//! (see [`crate::session`] for the rules), and the sweeper's writes go
//! through the same writer. Reads use a separate connection, which WAL mode
//! lets run beside the writer.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::types::ToSql;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::{
    lock, page_key, AppendOutcome, BoxFuture, Cursor, KeyCount, SessionPage, SessionQuery, Stats,
    StatsQuery, Store, StoreError, TOP,
};
use crate::event::{Enrichment, EventType, StoredEvent};
use crate::metrics::StoreMetrics;
use crate::session::{
    collector_visit_ended, EndDecision, EventKey, MergeKeys, Session, SessionState,
};

/// The file the store keeps in the data directory.
pub const DB_FILE_NAME: &str = "waymark.db";

/// The schema this build writes, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 2;
/// Events taken into one transaction, at most (one request more may push a
/// group past it; a request is never split).
const MAX_GROUP_EVENTS: usize = 10_000;
/// Append requests waiting for the writer before senders wait for room.
const QUEUE_CAPACITY: usize = 1024;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migrations by the `user_version` they lead to; index 0 leads to 1.
const MIGRATIONS: &[&str] = &[
    r"
    CREATE TABLE events (
        event_id    TEXT PRIMARY KEY NOT NULL,
        site        TEXT NOT NULL,
        type        TEXT NOT NULL,
        name        TEXT,
        ts          INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        session_id  TEXT NOT NULL,
        visitor_id  TEXT NOT NULL,
        user_id     TEXT,
        session_index INTEGER,
        seq         INTEGER,
        previous_session_id TEXT,
        storage     TEXT,
        url         TEXT NOT NULL,
        title       TEXT,
        referrer    TEXT,
        props       TEXT,
        context     TEXT
    );
    CREATE INDEX events_site_session_ts ON events (site, session_id, ts);
    CREATE INDEX events_session_ts ON events (session_id, ts);
",
    r"
    ALTER TABLE events ADD COLUMN client_ts INTEGER;
    ALTER TABLE events ADD COLUMN country TEXT;
    ALTER TABLE events ADD COLUMN region TEXT;
    ALTER TABLE events ADD COLUMN city TEXT;
    ALTER TABLE events ADD COLUMN browser TEXT;
    ALTER TABLE events ADD COLUMN os TEXT;
    ALTER TABLE events ADD COLUMN device_type TEXT;
    ALTER TABLE events ADD COLUMN is_bot INTEGER NOT NULL DEFAULT 0;
    UPDATE events SET client_ts = ts;
    CREATE TABLE sessions (
        session_id    TEXT PRIMARY KEY NOT NULL,
        site          TEXT NOT NULL,
        visitor_id    TEXT NOT NULL,
        user_id       TEXT,
        session_index INTEGER,
        started_at    INTEGER NOT NULL,
        last_seen_at  INTEGER NOT NULL,
        ended_at      INTEGER,
        end_reason    TEXT,
        duration_ms   INTEGER NOT NULL,
        landing_page  TEXT,
        exit_page     TEXT,
        source        TEXT NOT NULL,
        country       TEXT,
        region        TEXT,
        city          TEXT,
        browser       TEXT,
        os            TEXT,
        device_type   TEXT,
        event_count   INTEGER NOT NULL,
        page_views    INTEGER NOT NULL,
        is_bot        INTEGER NOT NULL,
        -- Which event decided each merged field (see session.rs).
        first_key     TEXT,
        last_key      TEXT,
        landing_key   TEXT,
        exit_key      TEXT,
        user_key      TEXT,
        geo_key       TEXT,
        agent_key     TEXT,
        end_key       TEXT,
        end_event_id  TEXT
    );
    CREATE INDEX sessions_started ON sessions (started_at, session_id);
    CREATE INDEX sessions_site_started ON sessions (site, started_at, session_id);
    CREATE INDEX sessions_open ON sessions (last_seen_at) WHERE ended_at IS NULL;
    CREATE INDEX sessions_visitor ON sessions (visitor_id, started_at);
    CREATE INDEX sessions_user ON sessions (user_id, started_at);
",
];

const INSERT_EVENT: &str = "INSERT OR IGNORE INTO events (event_id, site, type, name, ts, \
     received_at, session_id, visitor_id, user_id, session_index, seq, previous_session_id, storage, url, \
     title, referrer, props, context, client_ts, country, region, city, browser, os, device_type, is_bot) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
     ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)";

const EVENT_COLUMNS: &str = "event_id, site, type, name, ts, received_at, session_id, \
     visitor_id, user_id, session_index, seq, previous_session_id, storage, url, title, referrer, \
     props, context, client_ts, country, region, city, browser, os, device_type, is_bot";

const SESSION_COLUMNS: &str = "session_id, site, visitor_id, user_id, session_index, started_at, \
     last_seen_at, ended_at, end_reason, duration_ms, landing_page, exit_page, source, country, \
     region, city, browser, os, device_type, event_count, page_views, is_bot";

const KEY_COLUMNS: &str = "first_key, last_key, landing_key, exit_key, user_key, geo_key, \
     agent_key, end_key, end_event_id";

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        StoreError::Backend {
            backend: "sqlite",
            message: err.to_string(),
        }
    }
}

/// What the writer thread is asked to do.
enum Command {
    Append {
        events: Vec<StoredEvent>,
        reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
    },
    Sweep {
        now: u64,
        idle_before: u64,
        limit: usize,
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
}

impl Command {
    fn events(&self) -> usize {
        match self {
            Command::Append { events, .. } => events.len(),
            Command::Sweep { limit, .. } => *limit,
        }
    }

    fn fail(self, err: &StoreError) {
        let err = StoreError::Commit(err.to_string());
        match self {
            Command::Append { reply, .. } => drop(reply.send(Err(err))),
            Command::Sweep { reply, .. } => drop(reply.send(Err(err))),
        }
    }
}

/// What a command did, sent once the transaction has committed.
enum Done {
    Appended(AppendOutcome),
    Swept(usize),
}

/// Events and sessions in `<data_dir>/waymark.db`.
///
/// Dropping the store (or calling [`close`](SqliteStore::close)) lets the
/// writer finish what is queued and waits for it.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    sender: Mutex<Option<mpsc::Sender<Command>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    reader: Arc<Mutex<Connection>>,
    commits: Arc<AtomicU64>,
    metrics: StoreMetrics,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Append { events, .. } => f
                .debug_struct("Append")
                .field("events", &events.len())
                .finish_non_exhaustive(),
            Command::Sweep { idle_before, .. } => f
                .debug_struct("Sweep")
                .field("idle_before", idle_before)
                .finish_non_exhaustive(),
        }
    }
}

impl SqliteStore {
    /// Opens (creating when needed) `<data_dir>/waymark.db`, brings its
    /// schema up to date and starts the writer thread.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let data_dir = data_dir.as_ref();
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(DB_FILE_NAME);

        let mut writer = Connection::open(&path)?;
        writer.busy_timeout(BUSY_TIMEOUT)?;
        // WAL: readers do not block the writer. FULL: a commit is on disk
        // before it is acknowledged.
        writer.pragma_update(None, "journal_mode", "WAL")?;
        writer.pragma_update(None, "synchronous", "FULL")?;
        migrate(&mut writer)?;

        let reader = Connection::open(&path)?;
        reader.busy_timeout(BUSY_TIMEOUT)?;
        reader.pragma_update(None, "query_only", true)?;

        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let commits = Arc::new(AtomicU64::new(0));
        let metrics = StoreMetrics::new();
        let writer_commits = Arc::clone(&commits);
        let writer_metrics = metrics.clone();
        let handle = std::thread::Builder::new()
            .name("waymark-sqlite-writer".to_owned())
            .spawn(move || run_writer(writer, receiver, &writer_commits, &writer_metrics))?;

        Ok(SqliteStore {
            path,
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(handle)),
            reader: Arc::new(Mutex::new(reader)),
            commits,
            metrics,
        })
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
        drop(lock(&self.sender).take());
        let handle = lock(&self.writer).take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                tracing::error!("the sqlite writer thread panicked");
            }
        }
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

    /// Sends a command to the writer and waits for its committed result.
    fn command<T: Send + 'static>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command + Send + 'static,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        let sender = lock(&self.sender).clone();
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

impl Store for SqliteStore {
    fn append(&self, events: Vec<StoredEvent>) -> BoxFuture<'_, Result<AppendOutcome, StoreError>> {
        if events.is_empty() {
            return Box::pin(std::future::ready(Ok(AppendOutcome::default())));
        }
        self.command(move |reply| Command::Append { events, reply })
    }

    fn sweep(
        &self,
        now: u64,
        idle_before: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<usize, StoreError>> {
        self.command(move |reply| Command::Sweep {
            now,
            idle_before,
            limit,
            reply,
        })
    }

    fn events_for_session<'a>(
        &'a self,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>> {
        let session_id = session_id.to_owned();
        self.read(move |conn| {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE session_id = ?1 ORDER BY ts, seq, event_id"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![session_id], event_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
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
                "SELECT {EVENT_COLUMNS} FROM events WHERE ?1 IS NULL OR site = ?1 \
                 ORDER BY ts DESC, event_id DESC LIMIT ?2"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![site, limit], event_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn session<'a>(
        &'a self,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Session>, StoreError>> {
        let session_id = session_id.to_owned();
        self.read(move |conn| {
            let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = ?1");
            let mut stmt = conn.prepare_cached(&sql)?;
            Ok(stmt
                .query_row(params![session_id], session_from_row)
                .optional()?)
        })
    }

    fn sessions(&self, query: SessionQuery) -> BoxFuture<'_, Result<SessionPage, StoreError>> {
        self.read(move |conn| list_sessions(conn, &query))
    }

    fn stats(&self, query: StatsQuery) -> BoxFuture<'_, Result<Stats, StoreError>> {
        self.read(move |conn| stats(conn, &query))
    }

    fn metrics(&self) -> Option<&StoreMetrics> {
        Some(&self.metrics)
    }

    fn shutdown(self: Arc<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Err(err) = tokio::task::spawn_blocking(move || self.close()).await {
                tracing::error!(error = %err, "closing the sqlite store failed");
            }
        })
    }
}

/// Brings the schema to [`SCHEMA_VERSION`], one transaction per step.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, sql) in (1..).zip(MIGRATIONS).skip_while(|(v, _)| *v <= found) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        if version == 2 {
            rebuild_sessions(&tx)?;
        }
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "migrated the sqlite schema");
    }
    Ok(())
}

/// Derives the sessions of events stored before sessions were kept.
fn rebuild_sessions(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events ORDER BY session_id, ts, seq, rowid");
    let mut stmt = tx.prepare(&sql)?;
    let events = stmt.query_map([], event_from_row)?;
    let mut current: Option<SessionState> = None;
    for event in events {
        let event = event?;
        match &mut current {
            Some(state) if state.session.session_id == event.session_id => {}
            _ => {
                if let Some(done) = current.take() {
                    write_session(tx, &done)?;
                }
                current = Some(SessionState::new(&event));
            }
        }
        if let Some(state) = &mut current {
            if event.is_activity() || state.offer_end(&event) == EndDecision::Keep {
                state.absorb(&event);
            }
        }
    }
    if let Some(done) = current {
        write_session(tx, &done)?;
    }
    Ok(())
}

/// The writer thread: group commit until every sender is gone.
fn run_writer(
    mut conn: Connection,
    mut receiver: mpsc::Receiver<Command>,
    commits: &AtomicU64,
    metrics: &StoreMetrics,
) {
    while let Some(first) = receiver.blocking_recv() {
        let mut queued = first.events();
        let mut group = vec![first];
        while queued < MAX_GROUP_EVENTS {
            match receiver.try_recv() {
                Ok(command) => {
                    queued += command.events();
                    group.push(command);
                }
                Err(_) => break,
            }
        }
        metrics
            .queue_depth
            .sub(i64::try_from(group.len()).unwrap_or(i64::MAX));

        let started = Instant::now();
        match write_group(&mut conn, &group) {
            Ok(results) => {
                metrics
                    .commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                metrics.commits.inc();
                commits.fetch_add(1, Ordering::Relaxed);
                for (command, done) in group.into_iter().zip(results) {
                    // The requester may have gone away; the events are stored
                    // all the same.
                    match (command, done) {
                        (Command::Append { reply, .. }, Done::Appended(outcome)) => {
                            let _ = reply.send(Ok(outcome));
                        }
                        (Command::Sweep { reply, .. }, Done::Swept(closed)) => {
                            let _ = reply.send(Ok(closed));
                        }
                        (command, _) => command.fail(&StoreError::Commit("mismatch".to_owned())),
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, requests = group.len(), "sqlite commit failed");
                let err = StoreError::from(err);
                for command in group {
                    command.fail(&err);
                }
            }
        }
    }
    tracing::debug!("sqlite writer stopped");
}

/// Writes a group in one transaction; the results are in command order.
fn write_group(conn: &mut Connection, group: &[Command]) -> Result<Vec<Done>, rusqlite::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(group.len());
    {
        let mut writer = GroupWriter::new(&tx);
        for command in group {
            results.push(match command {
                Command::Append { events, .. } => {
                    let mut outcome = AppendOutcome::default();
                    for event in events {
                        if writer.apply(event)? {
                            outcome.inserted += 1;
                        } else {
                            outcome.duplicates += 1;
                        }
                    }
                    Done::Appended(outcome)
                }
                Command::Sweep {
                    now,
                    idle_before,
                    limit,
                    ..
                } => Done::Swept(writer.sweep(*now, *idle_before, *limit)?),
            });
        }
        writer.flush()?;
    }
    tx.commit()?;
    Ok(results)
}

/// Applies events to `events` and `sessions` within one transaction, with
/// the group's sessions cached in memory until [`flush`](Self::flush).
struct GroupWriter<'t> {
    tx: &'t Transaction<'t>,
    sessions: HashMap<String, Option<SessionState>>,
    dirty: HashSet<String>,
}

impl<'t> GroupWriter<'t> {
    fn new(tx: &'t Transaction<'t>) -> Self {
        GroupWriter {
            tx,
            sessions: HashMap::new(),
            dirty: HashSet::new(),
        }
    }

    fn load(&mut self, session_id: &str) -> rusqlite::Result<Option<&mut SessionState>> {
        if !self.sessions.contains_key(session_id) {
            let sql = format!(
                "SELECT {SESSION_COLUMNS}, {KEY_COLUMNS} FROM sessions WHERE session_id = ?1"
            );
            let state = self
                .tx
                .prepare_cached(&sql)?
                .query_row(params![session_id], state_from_row)
                .optional()?;
            self.sessions.insert(session_id.to_owned(), state);
        }
        Ok(self.sessions.get_mut(session_id).and_then(Option::as_mut))
    }

    /// Stores one event and folds it into its session; false when it was
    /// not stored (already there, or a `visit_ended` the session does not
    /// keep).
    fn apply(&mut self, event: &StoredEvent) -> rusqlite::Result<bool> {
        if event.event_type == EventType::VisitEnded {
            let exists = self
                .tx
                .prepare_cached("SELECT 1 FROM events WHERE event_id = ?1")?
                .exists(params![event.event_id])?;
            if exists {
                return Ok(false);
            }
            let decision = match self.load(&event.session_id)? {
                Some(state) => state.offer_end(event),
                None => EndDecision::Keep,
            };
            match decision {
                EndDecision::Drop => return Ok(false),
                EndDecision::Replace(old) => {
                    self.tx
                        .prepare_cached("DELETE FROM events WHERE event_id = ?1")?
                        .execute(params![old])?;
                }
                EndDecision::Keep => {}
            }
        }
        if !insert_event(self.tx, event)? {
            return Ok(false);
        }
        self.load(&event.session_id)?;
        let slot = self.sessions.entry(event.session_id.clone()).or_default();
        slot.get_or_insert_with(|| SessionState::new(event))
            .absorb(event);
        self.dirty.insert(event.session_id.clone());
        Ok(true)
    }

    fn sweep(&mut self, now: u64, idle_before: u64, limit: usize) -> rusqlite::Result<usize> {
        let ids: Vec<String> = self
            .tx
            .prepare_cached(
                "SELECT session_id FROM sessions WHERE ended_at IS NULL AND last_seen_at < ?1 \
                 ORDER BY last_seen_at LIMIT ?2",
            )?
            .query_map(
                params![idle_before, i64::try_from(limit).unwrap_or(i64::MAX)],
                |row| row.get(0),
            )?
            .collect::<Result<_, _>>()?;
        let mut closed = 0;
        for id in ids {
            // This group may have brought news of the session already.
            let Some(state) = self.load(&id)? else {
                continue;
            };
            if !state.is_idle(idle_before) {
                continue;
            }
            let end = collector_visit_ended(state, now);
            if self.apply(&end)? {
                closed += 1;
            }
        }
        Ok(closed)
    }

    /// Writes every changed session back.
    fn flush(&mut self) -> rusqlite::Result<()> {
        for id in self.dirty.drain() {
            if let Some(Some(state)) = self.sessions.get(&id) {
                write_session(self.tx, state)?;
            }
        }
        Ok(())
    }
}

fn insert_event(tx: &Transaction<'_>, e: &StoredEvent) -> rusqlite::Result<bool> {
    let en = &e.enrichment;
    let changed = tx.prepare_cached(INSERT_EVENT)?.execute(params![
        e.event_id,
        e.site,
        e.event_type.as_str(),
        e.name,
        e.ts,
        e.received_at,
        e.session_id,
        e.visitor_id,
        e.user_id,
        e.session_index,
        e.seq,
        e.previous_session_id,
        e.storage,
        e.url,
        e.title,
        e.referrer,
        e.props,
        e.context,
        e.client_ts,
        en.country,
        en.region,
        en.city,
        en.browser,
        en.os,
        en.device_type,
        en.is_bot,
    ])?;
    Ok(changed > 0)
}

fn write_session(tx: &Transaction<'_>, state: &SessionState) -> rusqlite::Result<()> {
    let s = &state.session;
    let k = &state.keys;
    let key = |k: &Option<EventKey>| k.as_ref().map(|k| k.0.clone());
    let sql = format!(
        "INSERT OR REPLACE INTO sessions ({SESSION_COLUMNS}, {KEY_COLUMNS}) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, \
          ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31)"
    );
    tx.prepare_cached(&sql)?.execute(params![
        s.session_id,
        s.site,
        s.visitor_id,
        s.user_id,
        s.session_index,
        s.started_at,
        s.last_seen_at,
        s.ended_at,
        s.end_reason,
        s.duration_ms,
        s.landing_page,
        s.exit_page,
        s.source,
        s.country,
        s.region,
        s.city,
        s.browser,
        s.os,
        s.device_type,
        s.event_count,
        s.page_views,
        s.is_bot,
        key(&k.first),
        key(&k.last),
        key(&k.landing),
        key(&k.exit),
        key(&k.user),
        key(&k.geo),
        key(&k.agent),
        key(&k.end),
        k.end_event_id,
    ])?;
    if state.ended_by_collector() {
        // The sweeper's visit_ended follows late activity.
        if let (Some(ended_at), Some(id)) = (s.ended_at, &k.end_event_id) {
            tx.prepare_cached(
                "UPDATE events SET ts = ?1, client_ts = ?1 WHERE event_id = ?2 AND ts <> ?1",
            )?
            .execute(params![ended_at, id])?;
        }
    }
    Ok(())
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    let type_text: String = row.get(2)?;
    let event_type = EventType::from_name(&type_text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Text,
            format!("unknown event type {type_text:?}").into(),
        )
    })?;
    let ts: u64 = row.get(4)?;
    Ok(StoredEvent {
        event_id: row.get(0)?,
        site: row.get(1)?,
        event_type,
        name: row.get(3)?,
        ts,
        received_at: row.get(5)?,
        session_id: row.get(6)?,
        visitor_id: row.get(7)?,
        user_id: row.get(8)?,
        session_index: row.get(9)?,
        seq: row.get(10)?,
        previous_session_id: row.get(11)?,
        storage: row.get(12)?,
        url: row.get(13)?,
        title: row.get(14)?,
        referrer: row.get(15)?,
        props: row.get(16)?,
        context: row.get(17)?,
        client_ts: row.get::<_, Option<u64>>(18)?.unwrap_or(ts),
        enrichment: Enrichment {
            country: row.get(19)?,
            region: row.get(20)?,
            city: row.get(21)?,
            browser: row.get(22)?,
            os: row.get(23)?,
            device_type: row.get(24)?,
            is_bot: row.get(25)?,
        },
    })
}

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        session_id: row.get(0)?,
        site: row.get(1)?,
        visitor_id: row.get(2)?,
        user_id: row.get(3)?,
        session_index: row.get(4)?,
        started_at: row.get(5)?,
        last_seen_at: row.get(6)?,
        ended_at: row.get(7)?,
        end_reason: row.get(8)?,
        duration_ms: row.get(9)?,
        landing_page: row.get(10)?,
        exit_page: row.get(11)?,
        source: row.get(12)?,
        country: row.get(13)?,
        region: row.get(14)?,
        city: row.get(15)?,
        browser: row.get(16)?,
        os: row.get(17)?,
        device_type: row.get(18)?,
        event_count: row.get(19)?,
        page_views: row.get(20)?,
        is_bot: row.get(21)?,
    })
}

fn state_from_row(row: &Row<'_>) -> rusqlite::Result<SessionState> {
    let key = |i: usize| -> rusqlite::Result<Option<EventKey>> {
        Ok(row.get::<_, Option<String>>(i)?.map(EventKey))
    };
    Ok(SessionState {
        session: session_from_row(row)?,
        keys: MergeKeys {
            first: key(22)?,
            last: key(23)?,
            landing: key(24)?,
            exit: key(25)?,
            user: key(26)?,
            geo: key(27)?,
            agent: key(28)?,
            end: key(29)?,
            end_event_id: row.get(30)?,
        },
    })
}

/// SQL conditions and their parameters, built up filter by filter.
#[derive(Default)]
struct Filter {
    clauses: Vec<String>,
    params: Vec<Box<dyn ToSql>>,
}

impl Filter {
    /// `clause` with one `?` per value; each becomes a numbered parameter.
    fn add(&mut self, clause: &str, values: Vec<Box<dyn ToSql>>) {
        let mut pieces = clause.split('?');
        let mut numbered = pieces.next().unwrap_or_default().to_owned();
        for (value, piece) in values.into_iter().zip(pieces) {
            self.params.push(value);
            numbered.push_str(&format!("?{}{piece}", self.params.len()));
        }
        self.clauses.push(numbered);
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            "1".to_owned()
        } else {
            self.clauses.join(" AND ")
        }
    }

    fn params(&self) -> Vec<&dyn ToSql> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &dyn ToSql)
            .collect()
    }
}

fn list_sessions(conn: &Connection, q: &SessionQuery) -> Result<SessionPage, StoreError> {
    let mut f = Filter::default();
    if let Some(site) = &q.site {
        f.add("site = ?", vec![Box::new(site.clone())]);
    }
    if let Some(from) = q.from {
        f.add("started_at >= ?", vec![Box::new(from)]);
    }
    if let Some(to) = q.to {
        f.add("started_at < ?", vec![Box::new(to)]);
    }
    if let Some(visitor) = &q.visitor_id {
        f.add("visitor_id = ?", vec![Box::new(visitor.clone())]);
    }
    if let Some(user) = &q.user_id {
        f.add("user_id = ?", vec![Box::new(user.clone())]);
    }
    if let Some(is_bot) = q.is_bot {
        f.add("is_bot = ?", vec![Box::new(is_bot)]);
    }
    if let Some(Cursor {
        started_at,
        session_id,
    }) = &q.cursor
    {
        f.add(
            "(started_at < ? OR (started_at = ? AND session_id < ?))",
            vec![
                Box::new(*started_at),
                Box::new(*started_at),
                Box::new(session_id.clone()),
            ],
        );
    }
    let limit = q.limit.clamp(1, 500);
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE {} \
         ORDER BY started_at DESC, session_id DESC LIMIT {}",
        f.sql(),
        limit + 1
    );
    let mut stmt = conn.prepare(&sql)?;
    let sessions = stmt
        .query_map(f.params().as_slice(), session_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SessionPage::from_overfetched(sessions, limit))
}

fn stats(conn: &Connection, q: &StatsQuery) -> Result<Stats, StoreError> {
    let mut f = Filter::default();
    f.add("s.started_at >= ?", vec![Box::new(q.from)]);
    f.add("s.started_at < ?", vec![Box::new(q.to)]);
    if let Some(site) = &q.site {
        f.add("s.site = ?", vec![Box::new(site.clone())]);
    }
    if !q.include_bots {
        f.add("s.is_bot = 0", vec![]);
    }
    let filter = f.sql();
    let params = f.params();

    let (visits, visitors, page_views, bounces, avg_duration): (u64, u64, u64, u64, f64) = conn
        .query_row(
            &format!(
                "SELECT COUNT(*), COUNT(DISTINCT s.visitor_id), COALESCE(SUM(s.page_views), 0), \
                 COALESCE(SUM(s.page_views <= 1), 0), COALESCE(AVG(s.duration_ms), 0) \
                 FROM sessions s WHERE {filter}"
            ),
            params.as_slice(),
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?;

    let top = |column: &str| -> Result<Vec<KeyCount>, StoreError> {
        let sql = format!(
            "SELECT {column}, COUNT(*) AS n FROM sessions s WHERE {filter} AND {column} IS NOT NULL \
             GROUP BY {column} ORDER BY n DESC, {column} LIMIT {TOP}"
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params.as_slice(), |r| {
            Ok(KeyCount {
                key: r.get(0)?,
                count: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    };
    let sources = top("s.source")?;
    let countries = top("s.country")?;

    let mut pages: HashMap<String, u64> = HashMap::new();
    {
        let sql = format!(
            "SELECT e.url, COUNT(*) FROM events e JOIN sessions s ON s.session_id = e.session_id \
             WHERE {filter} AND e.type = 'page_view' GROUP BY e.url"
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params.as_slice(), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?))
        })?;
        for row in rows {
            let (url, n) = row?;
            *pages.entry(page_key(&url).to_owned()).or_default() += n;
        }
    }
    let width = q.interval.millis();
    let mut counts: HashMap<u64, u64> = HashMap::new();
    {
        let sql = format!(
            "SELECT (s.started_at / {width}) * {width} AS b, COUNT(*) FROM sessions s \
             WHERE {filter} GROUP BY b"
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params.as_slice(), |r| {
            Ok((r.get::<_, u64>(0)?, r.get::<_, u64>(1)?))
        })?;
        for row in rows {
            let (bucket, n) = row?;
            counts.insert(bucket, n);
        }
    }
    Ok(Stats::from_parts(
        q,
        [visits, visitors, page_views, bounces],
        avg_duration,
        pages,
        sources,
        countries,
        &counts,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::event::EventType;

    fn event(n: u128, session: &str, ts: u64) -> StoredEvent {
        StoredEvent {
            event_id: uuid::Uuid::from_u128(n).hyphenated().to_string(),
            site: "demo".to_owned(),
            event_type: EventType::PageView,
            name: None,
            ts,
            client_ts: ts,
            received_at: 99,
            session_id: session.to_owned(),
            visitor_id: "v".to_owned(),
            user_id: None,
            session_index: None,
            seq: None,
            previous_session_id: None,
            storage: None,
            url: format!("http://127.0.0.1/{n}"),
            title: Some("T".to_owned()),
            referrer: None,
            props: Some(r#"{"plan":"pro"}"#.to_owned()),
            context: None,
            enrichment: Enrichment::default(),
        }
    }

    #[tokio::test]
    async fn appended_events_read_back_in_order_with_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut custom = event(3, "s1", 10);
        custom.event_type = EventType::Custom;
        custom.name = Some("signup".to_owned());
        custom.user_id = Some("u-1".to_owned());
        custom.context = Some(r#"{"language":"en"}"#.to_owned());
        let events = vec![
            event(1, "s1", 20),
            event(2, "s2", 5),
            custom.clone(),
            event(4, "s1", 10),
        ];
        let outcome = store.append(events.clone()).await.unwrap();
        assert_eq!(
            outcome,
            AppendOutcome {
                inserted: 4,
                duplicates: 0
            }
        );

        let s1 = store.events_for_session("s1").await.unwrap();
        // By ts, and by arrival for equal ts.
        assert_eq!(s1, vec![custom, events[3].clone(), events[0].clone()]);

        let recent = store.recent_events(None, 2).await.unwrap();
        let ids: Vec<u64> = recent.iter().map(|e| e.ts).collect();
        assert_eq!(ids, vec![20, 10]);
        assert_eq!(
            recent[1].event_id, events[3].event_id,
            "the later arrival first"
        );
        assert!(store
            .recent_events(Some("other"), 10)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            store.recent_events(Some("demo"), 10).await.unwrap().len(),
            4
        );
    }

    #[tokio::test]
    async fn duplicates_are_counted_and_not_stored_twice() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store.append(vec![event(1, "s", 1)]).await.unwrap();
        let mut changed = event(1, "s", 1);
        changed.url = "http://changed/".to_owned();
        let outcome = store
            .append(vec![changed, event(2, "s", 2), event(2, "s", 2)])
            .await
            .unwrap();
        assert_eq!(
            outcome,
            AppendOutcome {
                inserted: 1,
                duplicates: 2
            }
        );
        let stored = store.events_for_session("s").await.unwrap();
        assert_eq!(stored, vec![event(1, "s", 1), event(2, "s", 2)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_are_group_committed_and_all_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let tasks: Vec<_> = (0..50u128)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    // Request i re-sends the last event of request i - 1.
                    let events = (0..10)
                        .map(|j| event(i * 10 + j, "s", 1))
                        .chain((i > 0).then(|| event(i * 10 - 1, "s", 1)));
                    store.append(events.collect()).await.unwrap()
                })
            })
            .collect();
        let mut total = AppendOutcome::default();
        for task in tasks {
            let outcome = task.await.unwrap();
            total.inserted += outcome.inserted;
            total.duplicates += outcome.duplicates;
        }
        assert_eq!(
            total,
            AppendOutcome {
                inserted: 500,
                duplicates: 49
            }
        );
        assert_eq!(store.events_for_session("s").await.unwrap().len(), 500);
        let commits = store.commits();
        assert!((1..=50).contains(&commits), "{commits} commits");
    }

    #[tokio::test]
    async fn data_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SqliteStore::open(dir.path()).unwrap();
            store
                .append(vec![event(1, "s", 1), event(2, "s", 2)])
                .await
                .unwrap();
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(store.events_for_session("s").await.unwrap().len(), 2);
        let outcome = store.append(vec![event(2, "s", 2)]).await.unwrap();
        assert_eq!(
            outcome,
            AppendOutcome {
                inserted: 0,
                duplicates: 1
            }
        );
    }

    #[tokio::test]
    async fn a_closed_store_refuses_appends() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store.close();
        store.close();
        assert!(matches!(
            store.append(vec![event(1, "s", 1)]).await,
            Err(StoreError::Closed)
        ));
        // Reads still work.
        assert!(store.events_for_session("s").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_version_1_file_gets_its_sessions_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            for (id, kind, ts, url) in [
                (1, "page_view", 1_000, "https://a.example/?utm_source=x"),
                (2, "page_view", 5_000, "https://a.example/b"),
                (3, "visit_ended", 5_000, "https://a.example/b"),
            ] {
                conn.execute(
                    "INSERT INTO events (event_id, site, type, ts, received_at, session_id, \
                     visitor_id, url, props) VALUES (?1, 'demo', ?2, ?3, 9, 's', 'v', ?4, ?5)",
                    params![
                        uuid::Uuid::from_u128(id).to_string(),
                        kind,
                        ts,
                        url,
                        (kind == "visit_ended").then_some(r#"{"reason":"reset"}"#)
                    ],
                )
                .unwrap();
            }
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        let session = store.session("s").await.unwrap().unwrap();
        assert_eq!(
            session.landing_page.as_deref(),
            Some("https://a.example/?utm_source=x")
        );
        assert_eq!(session.exit_page.as_deref(), Some("https://a.example/b"));
        assert_eq!((session.source.as_str(), session.duration_ms), ("x", 4_000));
        assert_eq!(session.end_reason.as_deref(), Some("reset"));
        let events = store.events_for_session("s").await.unwrap();
        assert_eq!(events[0].client_ts, 1_000, "client_ts filled from ts");
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(
            SqliteStore::open(dir.path()),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
    }

    #[test]
    fn the_file_uses_wal_and_the_current_schema() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let conn = Connection::open(store.path()).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }
}
