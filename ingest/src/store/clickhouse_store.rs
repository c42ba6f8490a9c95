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
//! A replay can insert an event twice (a crash between the insert and the
//! shipped mark), and several collectors can write the same `visit_ended`.
//! Neither shows: `events` is a `ReplacingMergeTree` keyed by
//! `(site, session_id, event_id)`, which folds duplicates as parts merge,
//! and every read is written to count each `event_id` once before that
//! (`uniqExact`, `argMin`/`argMax`, or [`fold_session`] in Rust).
//!
//! Sessions follow the same rules as the SQLite store's
//! ([`crate::session`]): one session is folded in Rust from its events with
//! [`fold_session`]; lists, stats and sweeps read `sessions_agg`, an
//! `AggregatingMergeTree` a materialised view keeps from every insert into
//! `events` ([`AGGREGATES`]), over per-event keys computed at insert (the
//! merge order key, the end's rank, the landing page's source). Every
//! aggregate is a minimum, a maximum or a distinct count, so the order
//! events arrive in, the collector they arrive at and duplicates change
//! nothing.
//!
//! It speaks ClickHouse's HTTP interface through the official `clickhouse`
//! crate, with schema validation off: the crate's validation asks for
//! `RowBinaryWithNamesAndTypes` and settings that servers before 24.x lack.
//! Types and SQL are those ClickHouse 18.16 and current releases both take:
//! times are epoch milliseconds in `UInt64`.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::spool::{Position, Spool, SpoolReader};
use super::{
    lock, page_key, AppendOutcome, BoxFuture, KeyCount, SessionPage, SessionQuery, Stats,
    StatsQuery, Store, StoreError, TOP,
};
use crate::event::{Enrichment, EventType, StoredEvent};
use crate::metrics::StoreMetrics;
use crate::session::{
    collector_end_id, collector_visit_ended, end_reason, fold_session, source_of, EventKey, Session,
};

/// Events in one insert, at most; the shipper inserts at once when this
/// many are waiting.
const BATCH_EVENTS: usize = 20_000;
/// The longest one insert (or query) may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Backoff between failed inserts: doubling from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_LAST: Duration = Duration::from_secs(5);
/// How long shutdown keeps trying to empty the spool into ClickHouse.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a ClickHouse server's HTTP interface is, and the database to use.
#[derive(Clone, PartialEq, Eq)]
pub struct ClickHouseUrl {
    /// `http://host:port`.
    pub http: String,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for ClickHouseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password.
        write!(f, "{self}")
    }
}

impl fmt::Display for ClickHouseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.http.trim_start_matches("http://");
        match &self.user {
            Some(user) => write!(f, "clickhouse://{user}@{host}/{}", self.database),
            None => write!(f, "clickhouse://{host}/{}", self.database),
        }
    }
}

impl FromStr for ClickHouseUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = "expected clickhouse://[user[:password]@]host:port/database";
        let url = url::Url::parse(s.trim()).map_err(|e| format!("{e}; {usage}"))?;
        if url.scheme() != "clickhouse" {
            return Err(usage.to_owned());
        }
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or(usage)?;
        let port = url.port().unwrap_or(8123);
        let database = url.path().trim_matches('/');
        let valid = |name: &str| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        let database = if database.is_empty() {
            "waymark"
        } else {
            database
        };
        if !valid(database) {
            return Err(format!(
                "database name {database:?}: letters, digits and `_` only"
            ));
        }
        let decode = |text: &str| {
            url::form_urlencoded::parse(format!("x={text}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        Ok(ClickHouseUrl {
            http: format!("http://{host}:{port}"),
            database: database.to_owned(),
            user: Some(url.username()).filter(|u| !u.is_empty()).map(decode),
            password: url.password().map(decode),
        })
    }
}

impl From<clickhouse::error::Error> for StoreError {
    fn from(err: clickhouse::error::Error) -> Self {
        StoreError::Backend {
            backend: "clickhouse",
            message: err.to_string(),
        }
    }
}

/// Version 1 of the schema: the events. `{db}` is the database.
const EVENTS_TABLE: &str = r"
    CREATE TABLE IF NOT EXISTS {db}.events (
        event_id String,
        site String,
        event_type String,
        name Nullable(String),
        ts UInt64,
        client_ts UInt64,
        received_at UInt64,
        session_id String,
        visitor_id String,
        user_id Nullable(String),
        session_index Nullable(UInt32),
        seq Nullable(UInt32),
        previous_session_id Nullable(String),
        storage Nullable(String),
        url String,
        title Nullable(String),
        referrer Nullable(String),
        props Nullable(String),
        context Nullable(String),
        country Nullable(String),
        region Nullable(String),
        city Nullable(String),
        browser Nullable(String),
        os Nullable(String),
        device_type Nullable(String),
        is_bot UInt8,
        event_key String,
        end_key String,
        source String,
        end_reason String,
        by_collector UInt8
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(toDateTime(intDiv(ts, 1000)))
    ORDER BY (site, session_id, event_id)
";

/// The schema by version, as the statements of each step. Every statement
/// is idempotent, so collectors starting together may all run them.
fn migrations(db: &str) -> Vec<Vec<String>> {
    vec![vec![EVENTS_TABLE.replace("{db}", db)], sessions_schema(db)]
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
}

/// The client and what it knows of the server.
struct Ch {
    /// For queries, which name tables with their database.
    client: Client,
    /// For inserts, which take a bare table name.
    inserter: Client,
    db: String,
    migrated: AtomicBool,
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
    /// starts shipping. Must be called inside a Tokio runtime.
    pub async fn open(
        url: &ClickHouseUrl,
        data_dir: &Path,
        spool_max_bytes: u64,
        flush_interval: Duration,
    ) -> Result<ClickHouseStore, StoreError> {
        let dir = data_dir.join("spool");
        let (spool, reader) =
            tokio::task::spawn_blocking(move || Spool::open(&dir, spool_max_bytes))
                .await
                .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
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
        let shipper = Shipper {
            ch: Arc::clone(&ch),
            spool: Arc::clone(&spool),
            reader,
            shipped: shipped_tx,
            flush_now: Arc::clone(&flush_now),
            stopping,
            flush_interval,
            metrics: metrics.clone(),
        };
        let handle = tokio::spawn(shipper.run());
        Ok(ClickHouseStore {
            ch,
            spool,
            shipped,
            flush_now,
            stop,
            shipper: Mutex::new(Some(handle)),
            metrics,
        })
    }

    /// Events acknowledged and not yet in ClickHouse.
    pub fn spooled_events(&self) -> u64 {
        self.spool.pending_events()
    }

    async fn fetch_session_events(&self, session_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
        // The site from the (much smaller) sessions table first, so the
        // events are found by their sort key's prefix.
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM {db}.events \
             WHERE site IN (SELECT site FROM {db}.sessions_agg WHERE session_id = ?) \
             AND session_id = ?",
            db = self.ch.db
        );
        let rows = timed(
            self.ch
                .client
                .query(&sql)
                .bind(session_id)
                .bind(session_id)
                .fetch_all::<EventRow>(),
        )
        .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    async fn sweep_now(
        &self,
        now: u64,
        idle_before: u64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let sessions = sessions_sql(&self.ch.db, "1");
        let sql = format!(
            "SELECT session_id FROM ({sessions}) WHERE ended_at IS NULL AND last_seen_at < {idle_before} \
             ORDER BY last_seen_at LIMIT {limit}"
        );
        let ids: Vec<String> = timed(self.ch.client.query(&sql).fetch_all::<String>()).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM {}.events WHERE has(?, session_id)",
            self.ch.db
        );
        let rows = timed(
            self.ch
                .client
                .query(&sql)
                .bind(&ids)
                .fetch_all::<EventRow>(),
        )
        .await?;
        let mut by_session: HashMap<String, Vec<StoredEvent>> = HashMap::new();
        for row in rows {
            let event = StoredEvent::from(row);
            by_session
                .entry(event.session_id.clone())
                .or_default()
                .push(event);
        }
        let ends: Vec<StoredEvent> = by_session
            .into_values()
            .filter_map(fold_session)
            .filter(|(state, _)| state.is_idle(idle_before))
            .map(|(state, _)| collector_visit_ended(&state, now))
            .collect();
        let closed = ends.len();
        if closed > 0 {
            self.spool.append(&ends).await?;
            // Readable before the next sweep looks, so it is not written
            // again; bounded, so a ClickHouse gone meanwhile cannot hold up
            // the sweeper (or shutdown, which waits for it).
            tokio::time::timeout(REQUEST_TIMEOUT, self.sync())
                .await
                .map_err(|_| {
                    StoreError::Commit("ClickHouse did not take the sweep in time".to_owned())
                })??;
        }
        Ok(closed)
    }

    async fn stats_now(&self, q: StatsQuery) -> Result<Stats, StoreError> {
        let mut binds = Vec::new();
        let sessions = sessions_sql(&self.ch.db, &site_filter(q.site.as_deref(), &mut binds));
        let mut filter = format!("started_at >= {} AND started_at < {}", q.from, q.to);
        if !q.include_bots {
            filter.push_str(" AND is_bot = 0");
        }
        let client = &self.ch.client;
        let query = |sql: &str| {
            let mut query = client.query(sql);
            for value in &binds {
                query = query.bind(value);
            }
            query
        };
        let in_range = format!("SELECT * FROM ({sessions}) WHERE {filter}");

        let totals: Totals = timed(
            query(&format!(
                "SELECT count(), uniqExact(visitor_id), sum(page_views), \
                 countIf(page_views <= 1), sum(duration_ms) FROM ({in_range})"
            ))
            .fetch_one::<Totals>(),
        )
        .await?;
        let top = |column: &str| {
            query(&format!(
                "SELECT assumeNotNull({column}) AS key, count() AS count FROM ({in_range}) \
                 WHERE isNotNull({column}) GROUP BY key ORDER BY count DESC, key LIMIT {TOP}"
            ))
            .fetch_all::<KeyCountRow>()
        };
        let sources = timed(top("source")).await?;
        let countries = timed(top("country")).await?;
        let sources = sources.into_iter().map(KeyCount::from).collect();
        let countries = countries.into_iter().map(KeyCount::from).collect();

        let events_site = match &q.site {
            Some(_) => "site = ? AND ",
            None => "",
        };
        let mut pages_query = client.query(&format!(
            "SELECT url AS key, uniqExact(event_id) AS count FROM {db}.events \
             WHERE {events_site}event_type = 'page_view' \
             AND session_id IN (SELECT session_id FROM ({in_range})) GROUP BY url",
            db = self.ch.db
        ));
        if let Some(site) = &q.site {
            pages_query = pages_query.bind(site);
        }
        for value in &binds {
            pages_query = pages_query.bind(value);
        }
        let urls = timed(pages_query.fetch_all::<KeyCountRow>()).await?;
        let mut pages: HashMap<String, u64> = HashMap::new();
        for url in urls {
            *pages.entry(page_key(&url.key).to_owned()).or_default() += url.count;
        }

        let width = q.interval.millis();
        let buckets = timed(
            query(&format!(
                "SELECT intDiv(started_at, {width}) * {width} AS start, count() AS visits \
                 FROM ({in_range}) GROUP BY start"
            ))
            .fetch_all::<BucketRow>(),
        )
        .await?;
        let counts: HashMap<u64, u64> = buckets.into_iter().map(|b| (b.start, b.visits)).collect();

        let avg_duration = if totals.visits == 0 {
            0.0
        } else {
            #[allow(clippy::cast_precision_loss)] // Sums far below 2^52.
            let avg = totals.duration_sum as f64 / totals.visits as f64;
            avg
        };
        Ok(Stats::from_parts(
            &q,
            [
                totals.visits,
                totals.visitors,
                totals.page_views,
                totals.bounces,
            ],
            avg_duration,
            pages,
            sources,
            countries,
            &counts,
        ))
    }

    async fn sessions_now(&self, q: SessionQuery) -> Result<SessionPage, StoreError> {
        let mut binds = Vec::new();
        let sessions = sessions_sql(&self.ch.db, &site_filter(q.site.as_deref(), &mut binds));
        let mut clauses = vec!["1".to_owned()];
        if let Some(from) = q.from {
            clauses.push(format!("started_at >= {from}"));
        }
        if let Some(to) = q.to {
            clauses.push(format!("started_at < {to}"));
        }
        if let Some(visitor) = &q.visitor_id {
            clauses.push("visitor_id = ?".to_owned());
            binds.push(visitor.clone());
        }
        if let Some(user) = &q.user_id {
            clauses.push("user_id = ?".to_owned());
            binds.push(user.clone());
        }
        if let Some(is_bot) = q.is_bot {
            clauses.push(format!("is_bot = {}", u8::from(is_bot)));
        }
        if let Some(cursor) = &q.cursor {
            clauses.push(format!(
                "(started_at < {at} OR (started_at = {at} AND session_id < ?))",
                at = cursor.started_at
            ));
            binds.push(cursor.session_id.clone());
        }
        let limit = q.limit.clamp(1, 500);
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM ({sessions}) WHERE {} \
             ORDER BY started_at DESC, session_id DESC LIMIT {}",
            clauses.join(" AND "),
            limit + 1
        );
        let mut query = self.ch.client.query(&sql);
        for value in &binds {
            query = query.bind(value);
        }
        let rows = timed(query.fetch_all::<SessionRow>()).await?;
        let sessions = rows.into_iter().map(Session::from).collect();
        Ok(SessionPage::from_overfetched(sessions, limit))
    }
}

impl Store for ClickHouseStore {
    fn append(&self, events: Vec<StoredEvent>) -> BoxFuture<'_, Result<AppendOutcome, StoreError>> {
        Box::pin(async move {
            if events.is_empty() {
                return Ok(AppendOutcome::default());
            }
            self.metrics.queue_depth.inc();
            let appended = self.spool.append(&events).await;
            self.metrics.queue_depth.dec();
            appended?;
            self.metrics
                .spooled_events
                .set(i64::try_from(self.spool.pending_events()).unwrap_or(i64::MAX));
            // Duplicates are only found in ClickHouse, later; they are
            // counted once there.
            Ok(AppendOutcome {
                inserted: events.len(),
                duplicates: 0,
            })
        })
    }

    fn events_for_session<'a>(
        &'a self,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>> {
        Box::pin(async move {
            let events = self.fetch_session_events(session_id).await?;
            Ok(fold_session(events)
                .map(|(_, kept)| kept)
                .unwrap_or_default())
        })
    }

    fn recent_events<'a>(
        &'a self,
        site: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>> {
        Box::pin(async move {
            let mut binds = Vec::new();
            let filter = site_filter(site, &mut binds);
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM {}.events WHERE {filter} \
                 ORDER BY ts DESC, event_id DESC LIMIT 1 BY event_id LIMIT {limit}",
                self.ch.db
            );
            let mut query = self.ch.client.query(&sql);
            for value in &binds {
                query = query.bind(value);
            }
            let rows = timed(query.fetch_all::<EventRow>()).await?;
            Ok(rows.into_iter().map(StoredEvent::from).collect())
        })
    }

    fn sweep(
        &self,
        now: u64,
        idle_before: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(self.sweep_now(now, idle_before, limit))
    }

    fn session<'a>(
        &'a self,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Session>, StoreError>> {
        Box::pin(async move {
            let events = self.fetch_session_events(session_id).await?;
            Ok(fold_session(events).map(|(state, _)| state.session))
        })
    }

    fn sessions(&self, query: SessionQuery) -> BoxFuture<'_, Result<SessionPage, StoreError>> {
        Box::pin(self.sessions_now(query))
    }

    fn stats(&self, query: StatsQuery) -> BoxFuture<'_, Result<Stats, StoreError>> {
        Box::pin(self.stats_now(query))
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
}

impl Ch {
    /// Creates the database and brings the schema up to date.
    async fn migrate(&self) -> Result<(), StoreError> {
        if self.migrated.load(Ordering::Acquire) {
            return Ok(());
        }
        let db = &self.db;
        timed(
            self.client
                .query(&format!("CREATE DATABASE IF NOT EXISTS {db}"))
                .execute(),
        )
        .await?;
        timed(
            self.client
                .query(&format!(
                    "CREATE TABLE IF NOT EXISTS {db}.schema_migrations \
                     (version UInt32, applied_at UInt64) ENGINE = TinyLog"
                ))
                .execute(),
        )
        .await?;
        let found: u32 = timed(
            self.client
                .query(&format!("SELECT max(version) FROM {db}.schema_migrations"))
                .fetch_one::<u32>(),
        )
        .await?;
        for (version, step) in (1u32..)
            .zip(migrations(db))
            .skip_while(|(v, _)| *v <= found)
        {
            for sql in step {
                timed(self.client.query(&sql).execute()).await?;
            }
            timed(
                self.client
                    .query(&format!(
                        "INSERT INTO {db}.schema_migrations VALUES ({version}, {})",
                        crate::clock::Clock::now_ms(&crate::clock::SystemClock)
                    ))
                    .execute(),
            )
            .await?;
            tracing::info!(version, "migrated the ClickHouse schema");
        }
        self.migrated.store(true, Ordering::Release);
        Ok(())
    }

    async fn insert(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        self.migrate().await?;
        timed(async {
            let mut insert = self.inserter.insert::<EventRow>("events").await?;
            for event in events {
                insert.write(&EventRow::from(event)).await?;
            }
            insert.end().await
        })
        .await
    }
}

/// Moves the spool into ClickHouse; see the module docs.
struct Shipper {
    ch: Arc<Ch>,
    spool: Arc<Spool>,
    reader: SpoolReader,
    shipped: watch::Sender<Position>,
    flush_now: Arc<Notify>,
    stopping: watch::Receiver<bool>,
    flush_interval: Duration,
    metrics: StoreMetrics,
}

impl Shipper {
    async fn run(mut self) {
        let mut durable = self.spool.watch_durable();
        let mut drain_until: Option<Instant> = None;
        loop {
            let stopping = *self.stopping.borrow();
            if stopping && drain_until.is_none() {
                drain_until = Some(Instant::now() + DRAIN_TIMEOUT);
            }
            let end = *durable.borrow_and_update();
            if self.reader.at() >= end {
                if stopping {
                    break;
                }
                tokio::select! {
                    _ = durable.changed() => {}
                    _ = self.stopping.changed() => {}
                    () = self.flush_now.notified() => {}
                }
                continue;
            }
            if !stopping {
                self.gather().await;
            }
            if !self.ship_once(drain_until).await {
                break;
            }
        }
        tracing::debug!("the ClickHouse shipper stopped");
    }

    /// Waits for a full insert's worth of events, the flush interval, a
    /// `sync` or shutdown, whichever comes first.
    async fn gather(&mut self) {
        let deadline = Instant::now() + self.flush_interval;
        while self.spool.pending_events() < BATCH_EVENTS as u64 {
            let mut durable = self.spool.watch_durable();
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return,
                () = self.flush_now.notified() => return,
                _ = self.stopping.changed() => return,
                _ = durable.changed() => {}
            }
        }
    }

    /// Inserts the next batch, retrying until it is in; false when shutdown
    /// gave up on it (it stays in the spool).
    async fn ship_once(&mut self, mut drain_until: Option<Instant>) -> bool {
        let (events, bytes, next) = match self.reader.read(self.spool.durable(), BATCH_EVENTS) {
            Ok(read) => read,
            Err(err) => {
                tracing::error!(error = %err, "cannot read the spool; shipping stopped");
                return false;
            }
        };
        let mut wait = RETRY_FIRST;
        loop {
            let started = std::time::Instant::now();
            match self.ch.insert(&events).await {
                Ok(()) => {
                    self.metrics
                        .commit_seconds
                        .observe(started.elapsed().as_secs_f64());
                    self.metrics.commits.inc();
                    break;
                }
                Err(err) => {
                    tracing::warn!(
                        error = %err,
                        events = events.len(),
                        spooled = self.spool.pending_events(),
                        "the ClickHouse insert failed; retrying"
                    );
                    if *self.stopping.borrow() && drain_until.is_none() {
                        drain_until = Some(Instant::now() + DRAIN_TIMEOUT);
                    }
                    if drain_until.is_some_and(|until| Instant::now() + wait > until) {
                        return false;
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_LAST);
                }
            }
        }
        if let Err(err) = self.reader.commit(next, bytes, events.len() as u64) {
            // The events are in ClickHouse; a replay after a restart is
            // deduplicated.
            tracing::error!(error = %err, "cannot move the spool's shipped mark");
            return false;
        }
        self.shipped.send_replace(next);
        self.metrics
            .spooled_events
            .set(i64::try_from(self.spool.pending_events()).unwrap_or(i64::MAX));
        true
    }
}

/// A query or insert that fails instead of hanging when ClickHouse does.
async fn timed<T>(
    work: impl std::future::Future<Output = Result<T, clickhouse::error::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, work).await {
        Ok(done) => Ok(done?),
        Err(_) => Err(StoreError::Commit(
            "ClickHouse did not answer in time".to_owned(),
        )),
    }
}

/// `site = ?` with its value, or `1`.
fn site_filter(site: Option<&str>, binds: &mut Vec<String>) -> String {
    match site {
        Some(site) => {
            binds.push(site.to_owned());
            "site = ?".to_owned()
        }
        None => "1".to_owned(),
    }
}

/// One row of `events`: a [`StoredEvent`] and the keys the session
/// aggregation needs.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct EventRow {
    event_id: String,
    site: String,
    event_type: String,
    name: Option<String>,
    ts: u64,
    client_ts: u64,
    received_at: u64,
    session_id: String,
    visitor_id: String,
    user_id: Option<String>,
    session_index: Option<u32>,
    seq: Option<u32>,
    previous_session_id: Option<String>,
    storage: Option<String>,
    url: String,
    title: Option<String>,
    referrer: Option<String>,
    props: Option<String>,
    context: Option<String>,
    country: Option<String>,
    region: Option<String>,
    city: Option<String>,
    browser: Option<String>,
    os: Option<String>,
    device_type: Option<String>,
    is_bot: bool,
    /// [`EventKey`]: the order sessions are merged by.
    event_key: String,
    /// For a `visit_ended`: `0` (the SDK's) or `1` (the collector's), then
    /// the event key; the least is the end a session keeps. Empty otherwise.
    end_key: String,
    /// For a page view: the source it would give its session.
    source: String,
    /// For a `visit_ended`: its reason.
    end_reason: String,
    by_collector: bool,
}

/// The columns of [`EventRow`], in order.
const EVENT_COLUMNS: &str = "event_id, site, event_type, name, ts, client_ts, received_at, \
     session_id, visitor_id, user_id, session_index, seq, previous_session_id, storage, url, \
     title, referrer, props, context, country, region, city, browser, os, device_type, is_bot, \
     event_key, end_key, source, end_reason, by_collector";

/// The columns of [`Session`], in order.
const SESSION_COLUMNS: &str = "session_id, site, visitor_id, user_id, session_index, started_at, \
     last_seen_at, ended_at, end_reason, duration_ms, landing_page, exit_page, source, country, \
     region, city, browser, os, device_type, event_count, page_views, is_bot";

impl From<&StoredEvent> for EventRow {
    fn from(e: &StoredEvent) -> Self {
        let key = EventKey::of(e).0;
        let is_end = e.event_type == EventType::VisitEnded;
        let by_collector = is_end && e.event_id == collector_end_id(&e.session_id);
        let en = &e.enrichment;
        EventRow {
            event_id: e.event_id.clone(),
            site: e.site.clone(),
            event_type: e.event_type.as_str().to_owned(),
            name: e.name.clone(),
            ts: e.ts,
            client_ts: e.client_ts,
            received_at: e.received_at,
            session_id: e.session_id.clone(),
            visitor_id: e.visitor_id.clone(),
            user_id: e.user_id.clone(),
            session_index: e.session_index,
            seq: e.seq,
            previous_session_id: e.previous_session_id.clone(),
            storage: e.storage.clone(),
            url: e.url.clone(),
            title: e.title.clone(),
            referrer: e.referrer.clone(),
            props: e.props.clone(),
            context: e.context.clone(),
            country: en.country.clone(),
            region: en.region.clone(),
            city: en.city.clone(),
            browser: en.browser.clone(),
            os: en.os.clone(),
            device_type: en.device_type.clone(),
            is_bot: en.is_bot,
            end_key: if is_end {
                format!("{}{key}", u8::from(by_collector))
            } else {
                String::new()
            },
            event_key: key,
            source: if e.event_type == EventType::PageView {
                source_of(&e.url, e.referrer.as_deref())
            } else {
                String::new()
            },
            end_reason: if is_end { end_reason(e) } else { String::new() },
            by_collector,
        }
    }
}

impl From<EventRow> for StoredEvent {
    fn from(r: EventRow) -> Self {
        StoredEvent {
            event_id: r.event_id,
            site: r.site,
            // Only this collector writes the column, from `as_str`.
            event_type: EventType::from_name(&r.event_type).unwrap_or(EventType::Custom),
            name: r.name,
            ts: r.ts,
            client_ts: r.client_ts,
            received_at: r.received_at,
            session_id: r.session_id,
            visitor_id: r.visitor_id,
            user_id: r.user_id,
            session_index: r.session_index,
            seq: r.seq,
            previous_session_id: r.previous_session_id,
            storage: r.storage,
            url: r.url,
            title: r.title,
            referrer: r.referrer,
            props: r.props,
            context: r.context,
            enrichment: Enrichment {
                country: r.country,
                region: r.region,
                city: r.city,
                browser: r.browser,
                os: r.os,
                device_type: r.device_type,
                is_bot: r.is_bot,
            },
        }
    }
}

/// A row of the sessions query ([`sessions_sql`]): a [`Session`], by
/// position.
#[derive(Debug, Row, Deserialize)]
struct SessionRow {
    session_id: String,
    site: String,
    visitor_id: String,
    user_id: Option<String>,
    session_index: Option<u32>,
    started_at: u64,
    last_seen_at: u64,
    ended_at: Option<u64>,
    end_reason: Option<String>,
    duration_ms: u64,
    landing_page: Option<String>,
    exit_page: Option<String>,
    source: String,
    country: Option<String>,
    region: Option<String>,
    city: Option<String>,
    browser: Option<String>,
    os: Option<String>,
    device_type: Option<String>,
    event_count: u64,
    page_views: u64,
    is_bot: bool,
}

impl From<SessionRow> for Session {
    fn from(r: SessionRow) -> Self {
        Session {
            session_id: r.session_id,
            site: r.site,
            visitor_id: r.visitor_id,
            user_id: r.user_id,
            session_index: r.session_index,
            started_at: r.started_at,
            last_seen_at: r.last_seen_at,
            ended_at: r.ended_at,
            end_reason: r.end_reason,
            duration_ms: r.duration_ms,
            landing_page: r.landing_page,
            exit_page: r.exit_page,
            source: r.source,
            country: r.country,
            region: r.region,
            city: r.city,
            browser: r.browser,
            os: r.os,
            device_type: r.device_type,
            event_count: r.event_count,
            page_views: r.page_views,
            is_bot: r.is_bot,
        }
    }
}

/// A key and its count (`key`, `count`): a [`KeyCount`].
#[derive(Debug, Row, Deserialize)]
struct KeyCountRow {
    key: String,
    count: u64,
}

impl From<KeyCountRow> for KeyCount {
    fn from(r: KeyCountRow) -> Self {
        KeyCount {
            key: r.key,
            count: r.count,
        }
    }
}

/// Visits by bucket start (`start`, `visits`).
#[derive(Debug, Row, Deserialize)]
struct BucketRow {
    start: u64,
    visits: u64,
}

/// The totals of `/v1/stats` (by position: an alias equal to a column
/// name would shadow it in ClickHouse).
#[derive(Debug, Row, Deserialize)]
struct Totals {
    visits: u64,
    visitors: u64,
    page_views: u64,
    bounces: u64,
    duration_sum: u64,
}

/// The conditions the session rules pick events by, over an `events` row.
const ACT: &str = "toUInt8(event_type != 'visit_ended')";
const END: &str = "toUInt8(event_type = 'visit_ended')";
const PV: &str = "toUInt8(event_type = 'page_view')";
const GEO: &str = "toUInt8(isNotNull(country))";
const AGENT: &str = "toUInt8(isNotNull(browser) OR isNotNull(device_type))";
const USER: &str = "toUInt8(isNotNull(user_id))";

/// One aggregate a session keeps in `sessions_agg`: its column, function,
/// arguments over an `events` row (with `{act}`, `{end}`, … for the
/// conditions above) and their types.
struct Aggregate(&'static str, &'static str, &'static str, &'static str);

/// The session rules of [`crate::session`] as aggregates: activity is any
/// event but `visit_ended`; the first activity (by event key) gives site,
/// visitor, index and start, the last the last-seen time; the first and last
/// page views the landing and exit pages, the landing page the source; the
/// first event with geo (with a browser or device) the place (the agent);
/// the latest with a user id the user; the least end key the end. Each is a
/// minimum, a maximum or a distinct count, so duplicates and arrival order
/// change nothing, and states merged from any split of the events are the
/// states of all of them.
const AGGREGATES: &[Aggregate] = &[
    Aggregate("has_act", "max", "{act}", "UInt8"),
    Aggregate("has_end", "max", "{end}", "UInt8"),
    Aggregate("has_pv", "max", "{pv}", "UInt8"),
    Aggregate("has_geo", "max", "{geo}", "UInt8"),
    Aggregate("has_agent", "max", "{agent}", "UInt8"),
    Aggregate("has_user", "max", "{user}", "UInt8"),
    Aggregate(
        "site_act",
        "argMinIf",
        "site, event_key, {act}",
        "String, String, UInt8",
    ),
    Aggregate(
        "site_end",
        "argMinIf",
        "site, end_key, {end}",
        "String, String, UInt8",
    ),
    Aggregate(
        "visitor_act",
        "argMinIf",
        "visitor_id, event_key, {act}",
        "String, String, UInt8",
    ),
    Aggregate(
        "visitor_end",
        "argMinIf",
        "visitor_id, end_key, {end}",
        "String, String, UInt8",
    ),
    Aggregate(
        "user",
        "argMaxIf",
        "assumeNotNull(user_id), event_key, {user}",
        "String, String, UInt8",
    ),
    Aggregate(
        "index_act",
        "argMinIf",
        "toUInt32(ifNull(session_index, 0)), event_key, {act}",
        "UInt32, String, UInt8",
    ),
    Aggregate(
        "index_end",
        "argMinIf",
        "toUInt32(ifNull(session_index, 0)), end_key, {end}",
        "UInt32, String, UInt8",
    ),
    Aggregate("first_ts", "minIf", "ts, {act}", "UInt64, UInt8"),
    Aggregate("last_ts", "maxIf", "ts, {act}", "UInt64, UInt8"),
    Aggregate(
        "end_ts",
        "argMinIf",
        "ts, end_key, {end}",
        "UInt64, String, UInt8",
    ),
    Aggregate(
        "end_by_collector",
        "argMinIf",
        "by_collector, end_key, {end}",
        "UInt8, String, UInt8",
    ),
    Aggregate(
        "end_reason",
        "argMinIf",
        "end_reason, end_key, {end}",
        "String, String, UInt8",
    ),
    Aggregate(
        "landing",
        "argMinIf",
        "url, event_key, {pv}",
        "String, String, UInt8",
    ),
    Aggregate(
        "exit",
        "argMaxIf",
        "url, event_key, {pv}",
        "String, String, UInt8",
    ),
    Aggregate(
        "source",
        "argMinIf",
        "source, event_key, {pv}",
        "String, String, UInt8",
    ),
    Aggregate(
        "country",
        "argMinIf",
        "assumeNotNull(country), event_key, {geo}",
        "String, String, UInt8",
    ),
    Aggregate(
        "region",
        "argMinIf",
        "ifNull(region, ''), event_key, {geo}",
        "String, String, UInt8",
    ),
    Aggregate(
        "city",
        "argMinIf",
        "ifNull(city, ''), event_key, {geo}",
        "String, String, UInt8",
    ),
    Aggregate(
        "browser",
        "argMinIf",
        "ifNull(browser, ''), event_key, {agent}",
        "String, String, UInt8",
    ),
    Aggregate(
        "os",
        "argMinIf",
        "ifNull(os, ''), event_key, {agent}",
        "String, String, UInt8",
    ),
    Aggregate(
        "device",
        "argMinIf",
        "ifNull(device_type, ''), event_key, {agent}",
        "String, String, UInt8",
    ),
    Aggregate(
        "event_count",
        "uniqExactIf",
        "event_id, {act}",
        "String, UInt8",
    ),
    Aggregate(
        "page_views",
        "uniqExactIf",
        "event_id, {pv}",
        "String, UInt8",
    ),
    Aggregate("is_bot", "max", "is_bot", "UInt8"),
];

impl Aggregate {
    fn args(&self) -> String {
        self.2
            .replace("{act}", ACT)
            .replace("{end}", END)
            .replace("{pv}", PV)
            .replace("{geo}", GEO)
            .replace("{agent}", AGENT)
            .replace("{user}", USER)
    }
}

/// The steps of schema version 2: `sessions_agg`, kept by a materialised
/// view on every insert into `events`, filled from the events already there
/// (which the view may also have seen: the aggregates do not mind).
fn sessions_schema(db: &str) -> Vec<String> {
    let columns: Vec<String> = AGGREGATES
        .iter()
        .map(|a| format!("a_{} AggregateFunction({}, {})", a.0, a.1, a.3))
        .collect();
    let states: Vec<String> = AGGREGATES
        .iter()
        .map(|a| format!("{}State({}) AS a_{}", a.1, a.args(), a.0))
        .collect();
    let select = format!(
        "SELECT site, session_id, {} FROM {db}.events GROUP BY site, session_id",
        states.join(", ")
    );
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.sessions_agg (site String, session_id String, {}) \
             ENGINE = AggregatingMergeTree ORDER BY (site, session_id)",
            columns.join(", ")
        ),
        format!("CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.sessions_mv TO {db}.sessions_agg AS {select}"),
        format!("INSERT INTO {db}.sessions_agg {select}"),
    ]
}

/// The sessions of `sessions_agg` rows matching `filter` (on `site`), as
/// [`Session`] columns (and the merged aggregates, `m_*`).
fn sessions_sql(db: &str, filter: &str) -> String {
    let merged: Vec<String> = AGGREGATES
        .iter()
        .map(|a| format!("{}Merge(a_{}) AS m_{}", a.1, a.0, a.0))
        .collect();
    format!(
        "SELECT session_id,
            if(m_has_act, m_site_act, m_site_end) AS site,
            if(m_has_act, m_visitor_act, m_visitor_end) AS visitor_id,
            if(m_has_user, toNullable(m_user), NULL) AS user_id,
            nullIf(if(m_has_act, m_index_act, m_index_end), 0) AS session_index,
            if(m_has_act, m_first_ts, m_end_ts) AS started_at,
            if(m_has_act, m_last_ts, m_end_ts) AS last_seen_at,
            if(m_has_end, toNullable(if(m_end_by_collector = 1,
                greatest(m_end_ts, last_seen_at), m_end_ts)), NULL) AS ended_at,
            if(m_has_end, toNullable(m_end_reason), NULL) AS end_reason,
            toUInt64(last_seen_at - started_at) AS duration_ms,
            if(m_has_pv, toNullable(m_landing), NULL) AS landing_page,
            if(m_has_pv, toNullable(m_exit), NULL) AS exit_page,
            if(m_has_pv, m_source, 'direct') AS source,
            if(m_has_geo, toNullable(m_country), NULL) AS country,
            if(m_has_geo, nullIf(m_region, ''), NULL) AS region,
            if(m_has_geo, nullIf(m_city, ''), NULL) AS city,
            if(m_has_agent, nullIf(m_browser, ''), NULL) AS browser,
            if(m_has_agent, nullIf(m_os, ''), NULL) AS os,
            if(m_has_agent, nullIf(m_device, ''), NULL) AS device_type,
            m_event_count AS event_count,
            m_page_views AS page_views,
            m_is_bot AS is_bot
        FROM (SELECT session_id, {} FROM {db}.sessions_agg WHERE {filter} GROUP BY session_id)",
        merged.join(", ")
    )
}
