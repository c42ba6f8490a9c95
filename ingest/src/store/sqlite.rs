//! The default store: one SQLite file, written by one thread with group commit.
//!
//! Every append goes through a channel to a single writer thread that owns
//! the write connection. The writer blocks for the first request, then takes
//! whatever else is already queued (up to [`MAX_GROUP_EVENTS`]) and writes it
//! all in one transaction: one `fsync` for many concurrent requests. Each
//! request is answered only after that transaction has committed. Reads use a
//! separate connection, which WAL mode lets run beside the writer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{params, Connection, Row, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::{AppendOutcome, BoxFuture, Store, StoreError};
use crate::event::StoredEvent;

/// The file the store keeps in the data directory.
pub const DB_FILE_NAME: &str = "waymark.db";

/// The schema this build writes, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;
/// Events taken into one transaction, at most (one request more may push a
/// group past it; a request is never split).
const MAX_GROUP_EVENTS: usize = 10_000;
/// Append requests waiting for the writer before senders wait for room.
const QUEUE_CAPACITY: usize = 1024;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migrations by the `user_version` they lead to; index 0 leads to 1.
const MIGRATIONS: &[&str] = &[r"
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
"];

const INSERT_EVENT: &str = "INSERT OR IGNORE INTO events (event_id, site, type, name, ts, \
     received_at, session_id, visitor_id, user_id, session_index, seq, previous_session_id, storage, url, \
     title, referrer, props, context) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";

const EVENT_COLUMNS: &str = "event_id, site, type, name, ts, received_at, session_id, \
     visitor_id, user_id, session_index, seq, previous_session_id, storage, url, title, referrer, \
     props, context";

struct AppendRequest {
    events: Vec<StoredEvent>,
    reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

/// Events in `<data_dir>/waymark.db`.
///
/// Dropping the store (or calling [`close`](SqliteStore::close)) lets the
/// writer finish what is queued and waits for it.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    sender: Mutex<Option<mpsc::Sender<AppendRequest>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    reader: Arc<Mutex<Connection>>,
    commits: Arc<AtomicU64>,
}

impl std::fmt::Debug for AppendRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppendRequest")
            .field("events", &self.events.len())
            .finish_non_exhaustive()
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
        let writer_commits = Arc::clone(&commits);
        let handle = std::thread::Builder::new()
            .name("waymark-sqlite-writer".to_owned())
            .spawn(move || run_writer(writer, receiver, &writer_commits))?;

        Ok(SqliteStore {
            path,
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(handle)),
            reader: Arc::new(Mutex::new(reader)),
            commits,
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
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

impl Store for SqliteStore {
    fn append(&self, events: Vec<StoredEvent>) -> BoxFuture<'_, Result<AppendOutcome, StoreError>> {
        let sender = lock(&self.sender).clone();
        Box::pin(async move {
            if events.is_empty() {
                return Ok(AppendOutcome::default());
            }
            let sender = sender.ok_or(StoreError::Closed)?;
            let (reply, answer) = oneshot::channel();
            sender
                .send(AppendRequest { events, reply })
                .await
                .map_err(|_| StoreError::Closed)?;
            drop(sender);
            // The writer drops the reply only if it died mid-group.
            answer.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn events_for_session<'a>(
        &'a self,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>> {
        let session_id = session_id.to_owned();
        self.read(move |conn| {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE session_id = ?1 ORDER BY ts, seq, rowid"
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
                 ORDER BY ts DESC, rowid DESC LIMIT ?2"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![site, limit], event_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
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
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "migrated the sqlite schema");
    }
    Ok(())
}

/// The writer thread: group commit until every sender is gone.
fn run_writer(
    mut conn: Connection,
    mut receiver: mpsc::Receiver<AppendRequest>,
    commits: &AtomicU64,
) {
    while let Some(first) = receiver.blocking_recv() {
        let mut queued = first.events.len();
        let mut group = vec![first];
        while queued < MAX_GROUP_EVENTS {
            match receiver.try_recv() {
                Ok(request) => {
                    queued += request.events.len();
                    group.push(request);
                }
                Err(_) => break,
            }
        }

        match write_group(&mut conn, &group) {
            Ok(outcomes) => {
                commits.fetch_add(1, Ordering::Relaxed);
                for (request, outcome) in group.into_iter().zip(outcomes) {
                    // The requester may have gone away; the events are stored
                    // all the same.
                    let _ = request.reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                tracing::error!(error = %err, requests = group.len(), "sqlite commit failed");
                let message = err.to_string();
                for request in group {
                    let _ = request.reply.send(Err(StoreError::Commit(message.clone())));
                }
            }
        }
    }
    tracing::debug!("sqlite writer stopped");
}

/// Writes a group in one transaction; the outcomes are in request order.
fn write_group(
    conn: &mut Connection,
    group: &[AppendRequest],
) -> Result<Vec<AppendOutcome>, rusqlite::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(group.len());
    {
        let mut insert = tx.prepare_cached(INSERT_EVENT)?;
        for request in group {
            let mut outcome = AppendOutcome::default();
            for e in &request.events {
                let changed = insert.execute(params![
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
                ])?;
                if changed == 0 {
                    outcome.duplicates += 1;
                } else {
                    outcome.inserted += 1;
                }
            }
            outcomes.push(outcome);
        }
    }
    tx.commit()?;
    Ok(outcomes)
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    let type_text: String = row.get(2)?;
    let event_type = type_text.parse().map_err(|()| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Text,
            format!("unknown event type {type_text:?}").into(),
        )
    })?;
    Ok(StoredEvent {
        event_id: row.get(0)?,
        site: row.get(1)?,
        event_type,
        name: row.get(3)?,
        ts: row.get(4)?,
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
    })
}

/// Locks a mutex whose data stays consistent even if a holder panicked
/// (an `Option` taken whole, or a connection SQLite itself keeps consistent).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
