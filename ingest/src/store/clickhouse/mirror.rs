//! The read mirror: every compacted session (`sessions_flat`) held in this
//! collector's memory as the shared [`Columns`] (and, for the sessions
//! list, [`listed`]'s fields), so that `/v1/stats`, `/v1/breakdown`,
//! `/v1/timeseries` and `/v1/sessions` scan arrays instead of asking
//! ClickHouse 18.16 to merge a month of flat rows `FINAL` on one thread
//! (over a second at a million visits here; see BENCHMARKS.md).
//!
//! **Exact whenever a read runs**, as the SQL reads are ([`super::flat`]):
//! - The mirror holds, per session, its newest flat row among those it has
//!   read, and `bound`: the latest point (a compaction's start less its
//!   margin) that a compaction it has taken in vouches for. Every session
//!   touched before `bound` is in the mirror with every event it has.
//! - Every [`REFRESH_EVERY`] it takes in the flat rows of the compactions
//!   logged since (`compactions`). A read first reads the *delta*, the
//!   sessions of its site touched since `bound`, merged from `sessions_agg`
//!   now, and writes them over their rows with the server's clock as their
//!   version; then it answers from the columns. A compaction begun later writes newer
//!   values, so its rows win over a delta's; a delta's over older ones.
//! - A removal (erasure, retention: `ALTER … DELETE` mutations, by this
//!   collector or another) shows in `system.mutations`: each read compares
//!   the mutations of `sessions_flat` with those the mirror was built
//!   under, and on a difference the mirror is built anew while reads go to
//!   SQL.
//!
//!   This collector's own retention takes its sessions out directly.
//!
//! Funnels (the flat rows keep a visit's page views by page, not in
//! order), profiles, a person's sessions, realtime and one session stay in
//! SQL. A page
//! view is a step of its path and a step of its URL key, each repeated as
//! many times as the visit viewed it; a custom event a step of its name.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use clickhouse::Row;
use serde::Deserialize;
use tokio::sync::watch;

use super::flat::pages_sql;
use super::listed::{self, Held, ListFields};
use super::reports::literal;
use super::schema::sessions_sql;
use super::{timed, timed_for, Ch};
use crate::metrics::StoreMetrics;
use crate::store::columns::{Columns, SessionRow, Step, CUSTOM};
use crate::store::{lock, StoreError};
use crate::store::{SessionPage, SessionQuery};

/// How far before the newest compaction taken in the mirror looks for
/// compactions logged since: one may take up to an hour
/// ([`super::flat`]'s `COMPACT_TIMEOUT`) before it is logged.
const WINDOW_SECS: u64 = 7_200;

/// How often the mirror takes in new compactions between reads: as often
/// as a collector compacts.
const REFRESH_EVERY: Duration = super::flat::COMPACT_EVERY;

/// The longest a build may take.
const BUILD_TIMEOUT: Duration = Duration::from_secs(3_600);

/// What a read of the mirror's rows selects of a session, in
/// [`FlatRow`]'s order, after the version: every dimension nullable, as
/// the columns take them.
const SESSION_COLUMNS: &str = "site, session_id, visitor_id, started_at, duration_ms, \
    page_views, is_bot, entry_path, exit_path, toNullable(source), referrer_domain, utm_source, \
    utm_medium, utm_campaign, utm_term, utm_content, country, region, city, browser, os, \
    device_type, user_id, session_index, last_seen_at, ended_at, end_reason, landing_page, \
    exit_page, event_count";

/// Then its page views and custom events ([`super::flat::PAGE_FIELDS`]).
const PAGE_COLUMNS: &str = "paths, path_views, urls, url_views, goals, goal_events";

/// A flat row, as [`FlatRow`] reads it.
fn flat_columns() -> String {
    format!("{SESSION_COLUMNS}, {PAGE_COLUMNS}")
}

/// A compacted session (or one of the delta) as the mirror reads it.
#[derive(Debug, Row, Deserialize)]
struct FlatRow {
    version: u64,
    site: String,
    session_id: String,
    visitor_id: String,
    started_at: u64,
    duration_ms: u64,
    page_views: u64,
    is_bot: u8,
    entry_path: Option<String>,
    exit_path: Option<String>,
    source: Option<String>,
    referrer_domain: Option<String>,
    utm_source: Option<String>,
    utm_medium: Option<String>,
    utm_campaign: Option<String>,
    utm_term: Option<String>,
    utm_content: Option<String>,
    country: Option<String>,
    region: Option<String>,
    city: Option<String>,
    browser: Option<String>,
    os: Option<String>,
    device_type: Option<String>,
    user_id: Option<String>,
    session_index: Option<u32>,
    last_seen_at: u64,
    ended_at: Option<u64>,
    end_reason: Option<String>,
    landing_page: Option<String>,
    exit_page: Option<String>,
    event_count: u64,
    paths: Vec<String>,
    path_views: Vec<u32>,
    urls: Vec<String>,
    url_views: Vec<u32>,
    goals: Vec<String>,
    goal_events: Vec<u32>,
}

impl FlatRow {
    /// Into the columns, unless they hold a newer version of it.
    fn put(self, held: &mut Held) {
        let listed = ListFields {
            session_id: self.session_id.clone(),
            user_id: self.user_id,
            session_index: self.session_index,
            last_seen_at: self.last_seen_at,
            ended_at: self.ended_at,
            end_reason: self.end_reason,
            landing_page: self.landing_page,
            exit_page: self.exit_page,
            event_count: self.event_count,
        };
        let row = SessionRow {
            site: self.site,
            session_id: self.session_id,
            visitor_id: self.visitor_id,
            started_at: self.started_at,
            duration_ms: self.duration_ms,
            page_views: self.page_views,
            is_bot: self.is_bot != 0,
            dims: [
                self.entry_path,
                self.exit_path,
                self.source,
                self.referrer_domain,
                self.utm_source,
                self.utm_medium,
                self.utm_campaign,
                self.utm_term,
                self.utm_content,
                self.country,
                self.region,
                self.city,
                self.browser,
                self.os,
                self.device_type,
            ],
        };
        let (paths, urls, goals) = (
            (self.paths, self.path_views),
            (self.urls, self.url_views),
            (self.goals, self.goal_events),
        );
        let written = held.columns.put_newer(&row, self.version, |c| {
            let mut steps = Vec::new();
            let repeat = |steps: &mut Vec<Step>, step: Step, n: u32| {
                steps.extend(std::iter::repeat_n(step, n as usize));
            };
            for (path, n) in paths.0.iter().zip(&paths.1) {
                let kind = c.pages.id(Some(path));
                repeat(&mut steps, Step { kind, url: 0 }, *n);
            }
            for (url, n) in urls.0.iter().zip(&urls.1) {
                let url = c.urls.id(Some(url));
                repeat(&mut steps, Step { kind: 0, url }, *n);
            }
            for (goal, n) in goals.0.iter().zip(&goals.1) {
                let kind = CUSTOM | c.names.id(Some(goal));
                repeat(&mut steps, Step { kind, url: 0 }, *n);
            }
            steps
        });
        if let Some(row) = written {
            held.listed.set(row, listed);
        }
    }
}

/// Keeps the mirror current until `stopping` says stop: every
/// [`REFRESH_EVERY`], builds it if it is not built (a build at open that
/// failed, say while ClickHouse was down) or [refreshes](Mirror::refresh) it.
pub(super) async fn run(mirror: Arc<Mirror>, ch: Arc<Ch>, stopping: watch::Receiver<bool>) {
    super::every(REFRESH_EVERY, stopping, || async {
        if !mirror.on.load(Ordering::Acquire) {
            return;
        }
        if !mirror.ready.load(Ordering::Acquire) {
            mirror.start_build(&ch);
        } else if let Err(err) = mirror.refresh(&ch).await {
            tracing::warn!(error = %err, "cannot refresh the ClickHouse read mirror; reads catch up themselves");
        }
    })
    .await;
}

/// A delta session's page views and custom events, as [`PAGE_COLUMNS`].
#[derive(Debug, Row, Deserialize)]
struct Pages {
    site: String,
    session_id: String,
    paths: Vec<String>,
    path_views: Vec<u32>,
    urls: Vec<String>,
    url_views: Vec<u32>,
    goals: Vec<String>,
    goal_events: Vec<u32>,
}

/// A mutation of `sessions_flat`: its id and whether it is done.
pub(super) type Mutation = (String, u8);

/// What the mirror has taken in.
#[derive(Debug, Default)]
struct Tail {
    /// The starts of the logged compactions taken in, within
    /// [`WINDOW_SECS`] of the newest.
    taken: BTreeSet<u64>,
    /// Sessions touched before this (the server's clock, epoch seconds)
    /// are in the columns with every event they have.
    bound: u64,
    /// The mutations of `sessions_flat` when the columns were read.
    mutations: Vec<Mutation>,
    /// How many builds have swapped their columns in: rows read for one
    /// set of columns are not written into another's.
    generation: u64,
}

/// The mirror, shared by the store's reads and its builder. Whoever writes
/// both takes `tail` first, then `columns`.
#[derive(Debug)]
pub(super) struct Mirror {
    columns: RwLock<Held>,
    tail: Mutex<Tail>,
    /// Whether the columns answer reads.
    ready: AtomicBool,
    /// Whether a build is under way.
    building: AtomicBool,
    /// Whether reads may use the mirror at all (tests turn it off).
    on: AtomicBool,
    metrics: StoreMetrics,
}

/// What a read of the mirror needs of the store.
pub(super) struct Read<'a> {
    pub ch: &'a Arc<Ch>,
    pub mirror: &'a Arc<Mirror>,
}

impl Mirror {
    pub(super) fn new(metrics: StoreMetrics) -> Arc<Mirror> {
        Arc::new(Mirror {
            columns: RwLock::new(Held::new()),
            tail: Mutex::new(Tail::default()),
            ready: AtomicBool::new(false),
            building: AtomicBool::new(false),
            on: AtomicBool::new(true),
            metrics,
        })
    }

    /// Whether reads are answered from the mirror.
    pub(super) fn is_ready(&self) -> bool {
        self.on.load(Ordering::Acquire) && self.ready.load(Ordering::Acquire)
    }

    pub(super) fn set_on(&self, on: bool) {
        self.on.store(on, Ordering::Release);
    }

    /// Sessions held, and the bound.
    pub(super) fn held(&self) -> (usize, u64) {
        let sessions = self
            .columns
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .columns
            .live();
        (sessions, lock(&self.tail).bound)
    }

    fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
        self.metrics.read_index_ready.set(i64::from(ready));
    }

    /// Builds the mirror in the background unless a build is under way;
    /// reads go to SQL until it is done.
    pub(super) fn start_build(self: &Arc<Self>, ch: &Arc<Ch>) {
        if self.building.swap(true, Ordering::AcqRel) {
            return;
        }
        let (mirror, ch) = (Arc::clone(self), Arc::clone(ch));
        tokio::spawn(async move {
            let started = Instant::now();
            match mirror.build(&ch).await {
                Ok(()) => {
                    let (sessions, bound) = mirror.held();
                    tracing::info!(
                        sessions,
                        bound,
                        seconds = started.elapsed().as_secs_f64(),
                        "ClickHouse read mirror built"
                    );
                }
                Err(err) => {
                    tracing::warn!(error = %err, "ClickHouse read mirror not built; reads use SQL until the next try");
                }
            }
            mirror.building.store(false, Ordering::Release);
        });
    }

    /// The flat rows of the compactions in `logged` not yet taken in, then
    /// their bound.
    async fn take_in(self: &Arc<Self>, ch: &Ch, logged: Vec<(u64, u64)>) -> Result<(), StoreError> {
        let (new, generation): (Vec<(u64, u64)>, u64) = {
            let tail = lock(&self.tail);
            let new = logged
                .into_iter()
                .filter(|(began, _)| !tail.taken.contains(began))
                .collect();
            (new, tail.generation)
        };
        let Some(first) = new.iter().map(|(began, _)| *began).min() else {
            return Ok(());
        };
        let sql = rows_sql(&ch.db, Some(first));
        let rows = timed(ch.client.query_raw(&sql).fetch_all::<FlatRow>()).await?;
        let mirror = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            // The rows and the bound they vouch for go in together, into
            // the columns they were read for (a build may have swapped
            // others in meanwhile: then it read them itself).
            let mut tail = lock(&mirror.tail);
            if tail.generation != generation {
                return;
            }
            let mut held = mirror.columns.write().unwrap_or_else(|p| p.into_inner());
            for row in rows {
                row.put(&mut held);
            }
            let bytes = held.bytes();
            drop(held);
            for (began, margin) in new {
                tail.taken.insert(began);
                tail.bound = tail.bound.max(began.saturating_sub(margin));
            }
            let newest = tail.taken.last().copied().unwrap_or(0);
            tail.taken = tail.taken.split_off(&newest.saturating_sub(WINDOW_SECS));
            mirror
                .metrics
                .read_index_bytes
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        })
        .await
        .map_err(|err| StoreError::Io(std::io::Error::other(err)))?;
        Ok(())
    }

    /// The mutations of `sessions_flat` now, for [`expired`](Self::expired).
    pub(super) async fn mutations_now(&self, ch: &Ch) -> Result<Vec<Mutation>, StoreError> {
        mutations(ch).await
    }

    /// A retention pass of this collector removed `keys` with its own
    /// mutations (one per `per_mutation` keys), listed since `before`:
    /// they leave the columns too, and those mutations are taken as seen,
    /// so that retention every minute does not rebuild the mirror every
    /// minute. When anything else changed (another mutation, one not done,
    /// the mirror built on other mutations) it does nothing, and the next
    /// read builds anew.
    pub(super) async fn expired(
        &self,
        ch: &Ch,
        keys: &[(String, String)],
        per_mutation: usize,
        before: &[Mutation],
    ) {
        if keys.is_empty() {
            return;
        }
        let Ok(after) = mutations(ch).await else {
            return;
        };
        let own: Vec<&Mutation> = after.iter().filter(|m| !before.contains(m)).collect();
        let mut tail = lock(&self.tail);
        if !unchanged(&tail.mutations, before)
            || own.len() != keys.len().div_ceil(per_mutation.max(1))
            || own.iter().any(|(_, done)| *done == 0)
        {
            return;
        }
        let mut held = self.columns.write().unwrap_or_else(|p| p.into_inner());
        for (site, id) in keys {
            held.columns.remove(site, id);
        }
        if let Some(keep) = held.columns.compact() {
            held.listed.retain(&keep);
        }
        tail.mutations = after;
    }

    /// Between reads: whether the columns still hold only what is there
    /// (else they are built anew), then the compactions logged since taken
    /// in, so that reads seldom have rows to wait for.
    pub(super) async fn refresh(self: &Arc<Self>, ch: &Arc<Ch>) -> Result<(), StoreError> {
        let (newest, seen) = {
            let tail = lock(&self.tail);
            (
                tail.taken.last().copied().unwrap_or(0),
                tail.mutations.clone(),
            )
        };
        if !unchanged(&seen, &mutations(ch).await?) {
            self.set_ready(false);
            self.start_build(ch);
            return Ok(());
        }
        let logged = logged(ch, newest.saturating_sub(WINDOW_SECS)).await?;
        self.take_in(ch, logged).await
    }

    /// Reads every flat row anew (see the module docs): first what vouches
    /// for them (the compactions logged, the mutations), then the rows.
    async fn build(&self, ch: &Ch) -> Result<(), StoreError> {
        self.set_ready(false);
        ch.migrate().await?;
        let db = &ch.db;
        let mutations = mutations(ch).await?;
        let (bound, taken) = {
            let sql = bound_sql(db);
            let bound: u64 = timed(ch.client.query_raw(&sql).fetch_one::<u64>()).await?;
            (bound, logged(ch, bound.saturating_sub(WINDOW_SECS)).await?)
        };
        let mut columns = Held::new();
        let sql = rows_sql(db, None);
        timed_for(BUILD_TIMEOUT, read_rows(ch, &sql, &mut columns)).await?;
        let bytes = columns.bytes();
        let mut tail = lock(&self.tail);
        *self.columns.write().unwrap_or_else(|p| p.into_inner()) = columns;
        *tail = Tail {
            taken: taken.iter().map(|(began, _)| *began).collect(),
            bound,
            mutations,
            generation: tail.generation + 1,
        };
        drop(tail);
        self.metrics
            .read_index_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.set_ready(true);
        Ok(())
    }
}

/// Whether `now` holds no mutation of `sessions_flat` that `seen` lacks,
/// or that was not done then and is now: nothing removed since. (One
/// `seen` holds that `now` does not is an old finished one ClickHouse no
/// longer lists.)
fn unchanged(seen: &[Mutation], now: &[Mutation]) -> bool {
    now.iter().all(|m| seen.contains(m))
}

/// The mutations of `sessions_flat`, in id order: their ids and whether
/// each is done.
pub(crate) fn mutations_sql(db: &str) -> String {
    format!(
        "SELECT mutation_id, toUInt8(is_done) FROM system.mutations \
         WHERE database = {} AND table = 'sessions_flat' ORDER BY mutation_id",
        literal(db)
    )
}

/// The latest point a logged compaction vouches for (epoch seconds; 0
/// before any).
pub(crate) fn bound_sql(db: &str) -> String {
    format!("SELECT toUInt64(max(toUInt64(began_at) - margin)) FROM {db}.compactions")
}

/// The compactions logged that began at or after `since` (epoch seconds):
/// their starts and margins.
pub(crate) fn logged_sql(db: &str, since: u64) -> String {
    format!(
        "SELECT toUInt64(began_at), toUInt64(margin) FROM {db}.compactions \
         WHERE began_at >= toDateTime({since})"
    )
}

/// The flat rows as [`FlatRow`]s: every one, or those of versions from
/// `since` on.
pub(crate) fn rows_sql(db: &str, since: Option<u64>) -> String {
    let since = since
        .map(|since| format!(" WHERE version >= {since}"))
        .unwrap_or_default();
    format!(
        "SELECT version, {} FROM {db}.sessions_flat{since}",
        flat_columns()
    )
}

async fn mutations(ch: &Ch) -> Result<Vec<Mutation>, StoreError> {
    let sql = mutations_sql(&ch.db);
    timed(ch.client.query_raw(&sql).fetch_all::<Mutation>()).await
}

async fn logged(ch: &Ch, since: u64) -> Result<Vec<(u64, u64)>, StoreError> {
    let sql = logged_sql(&ch.db, since);
    timed(ch.client.query_raw(&sql).fetch_all::<(u64, u64)>()).await
}

/// Every row `sql` selects (a [`FlatRow`] each), into `columns`.
async fn read_rows(ch: &Ch, sql: &str, columns: &mut Held) -> Result<(), clickhouse::error::Error> {
    let mut cursor = ch.client.query_raw(sql).fetch::<FlatRow>()?;
    while let Some(row) = cursor.next().await? {
        row.put(columns);
    }
    Ok(())
}

impl Read<'_> {
    /// The columns brought up to the read's start for `site` (every site
    /// when `None`), then `answer` from them; the query back when the
    /// mirror is not ready (the read goes to SQL).
    pub(super) async fn answer<Q, T>(
        &self,
        site: Option<&str>,
        query: Q,
        answer: fn(&Columns, &Q) -> T,
    ) -> Result<Result<T, Q>, StoreError>
    where
        Q: Send + 'static,
        T: Send + 'static,
    {
        self.held(site, query, move |held, q| answer(&held.columns, q))
            .await
    }

    /// A page of the sessions list from the mirror ([`listed`]), brought up
    /// to the read's start as [`answer`](Self::answer) does; the query back
    /// when the mirror is not ready, or for a person's sessions (read
    /// whole, in SQL).
    pub(super) async fn sessions(
        &self,
        query: SessionQuery,
    ) -> Result<Result<SessionPage, SessionQuery>, StoreError> {
        if query.visitor_id.is_some() || query.user_id.is_some() {
            return Ok(Err(query));
        }
        let site = query.site.clone();
        self.held(site.as_deref(), query, listed::sessions).await
    }

    async fn held<Q, T>(
        &self,
        site: Option<&str>,
        query: Q,
        answer: impl FnOnce(&Held, &Q) -> T + Send + 'static,
    ) -> Result<Result<T, Q>, StoreError>
    where
        Q: Send + 'static,
        T: Send + 'static,
    {
        if !self.mirror.on.load(Ordering::Acquire) {
            return Ok(Err(query));
        }
        if !self.mirror.is_ready() {
            return Ok(Err(query));
        }
        let (bound, seen) = {
            let tail = lock(&self.mirror.tail);
            (tail.bound, tail.mutations.clone())
        };
        let ch = &**self.ch;
        let [touched, sessions, pages] = delta_sql(&ch.db, site, bound, None);
        let (mutations, touched) = tokio::try_join!(
            mutations(ch),
            timed(ch.client.query_raw(&touched).fetch_one::<u64>())
        )?;
        if !unchanged(&seen, &mutations) {
            // A removal: the columns may hold what it removed.
            self.mirror.set_ready(false);
            self.mirror.start_build(self.ch);
            return Ok(Err(query));
        }
        let rows = if touched == 0 {
            Vec::new()
        } else {
            // The two halves side by side: one query would run them one
            // after the other.
            let (mut rows, pages) = tokio::try_join!(
                timed(ch.client.query_raw(&sessions).fetch_all::<FlatRow>()),
                timed(ch.client.query_raw(&pages).fetch_all::<Pages>()),
            )?;
            let mut pages: HashMap<(String, String), Pages> = pages
                .into_iter()
                .map(|p| ((p.site.clone(), p.session_id.clone()), p))
                .collect();
            for row in &mut rows {
                let key = (row.site.clone(), row.session_id.clone());
                if let Some(p) = pages.remove(&key) {
                    (row.paths, row.path_views) = (p.paths, p.path_views);
                    (row.urls, row.url_views) = (p.urls, p.url_views);
                    (row.goals, row.goal_events) = (p.goals, p.goal_events);
                }
            }
            rows
        };
        let mirror = Arc::clone(self.mirror);
        let answered = tokio::task::spawn_blocking(move || {
            // The write lock waits for every scan under way: only when
            // there is a delta to write.
            if !rows.is_empty() {
                let mut columns = mirror.columns.write().unwrap_or_else(|p| p.into_inner());
                for row in rows {
                    row.put(&mut columns);
                }
            }
            let held = mirror.columns.read().unwrap_or_else(|p| p.into_inner());
            answer(&held, &query)
        })
        .await
        .map_err(|err| StoreError::Io(std::io::Error::other(err)))?;
        Ok(Ok(answered))
    }
}

/// The delta of `site` (every site when `None`): the sessions touched
/// since `bound` (epoch seconds), merged now: how many were touched, the
/// sessions as [`FlatRow`]s versioned by the server's clock (`version`
/// for a replay that must answer alike every time), with no page views
/// yet, and their [`Pages`].
pub(crate) fn delta_sql(
    db: &str,
    site: Option<&str>,
    bound: u64,
    version: Option<u64>,
) -> [String; 3] {
    let version = version.map_or_else(|| "toUInt64(now())".to_owned(), |v| v.to_string());
    let site = site.map_or_else(
        || "1".to_owned(),
        |site| format!("site = {}", literal(site)),
    );
    let since = format!("touched_at >= toDateTime({bound}) AND {site}");
    let touched = format!(
        "{site} AND (site, session_id) IN \
         (SELECT site, session_id FROM {db}.sessions_touched WHERE {since})"
    );
    [
        format!("SELECT count() FROM {db}.sessions_touched WHERE {since}"),
        format!(
            "SELECT {version} AS version, {SESSION_COLUMNS}, \
             emptyArrayString(), emptyArrayUInt32(), emptyArrayString(), emptyArrayUInt32(), \
             emptyArrayString(), emptyArrayUInt32() FROM ({})",
            sessions_sql(db, &touched)
        ),
        format!(
            "SELECT site, session_id, {PAGE_COLUMNS} FROM ({})",
            pages_sql(db, &touched)
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delta_reads_the_sites_touched_sessions_merged() {
        let [touched, sessions, pages] = delta_sql("wm", Some("a.example"), 1_700_000_000, None);
        let since = "touched_at >= toDateTime(1700000000) AND site = 'a.example'";
        for sql in [&touched, &sessions, &pages] {
            assert!(sql.contains(since), "{sql}");
            assert!(!sql.contains("sessions_flat"), "{sql}");
        }
        assert!(sessions.contains("FROM wm.sessions_agg"));
        assert!(pages.contains("FROM wm.events"));
        let [touched, _, _] = delta_sql("wm", None, 5, None);
        assert!(touched.contains("touched_at >= toDateTime(5) AND 1"));
    }

    fn flat(site: &str, id: &str, started_at: u64, version: u64, views: u32) -> FlatRow {
        FlatRow {
            version,
            site: site.to_owned(),
            session_id: id.to_owned(),
            visitor_id: "v".to_owned(),
            started_at,
            duration_ms: 2,
            page_views: u64::from(views),
            is_bot: 0,
            entry_path: Some("/".to_owned()),
            exit_path: Some("/".to_owned()),
            source: Some("direct".to_owned()),
            referrer_domain: None,
            utm_source: None,
            utm_medium: None,
            utm_campaign: None,
            utm_term: None,
            utm_content: None,
            country: None,
            region: None,
            city: None,
            browser: None,
            os: None,
            device_type: None,
            user_id: None,
            session_index: Some(1),
            last_seen_at: 3,
            ended_at: None,
            end_reason: None,
            landing_page: Some("https://s/?a=b".to_owned()),
            exit_page: Some("https://s/".to_owned()),
            event_count: u64::from(views) + 1,
            paths: vec!["/".to_owned()],
            path_views: vec![views],
            urls: vec!["https://s/".to_owned()],
            url_views: vec![views],
            goals: vec!["buy".to_owned()],
            goal_events: vec![1],
        }
    }

    #[test]
    fn the_list_is_newest_first_by_start_then_id_then_site_and_goes_on_after_the_cursor() {
        let mut held = Held::new();
        for (site, id, at) in [
            ("a", "s1", 5),
            ("a", "s2", 5),
            ("b", "s2", 5),
            ("a", "s3", 4),
        ] {
            flat(site, id, at, 1, 1).put(&mut held);
        }
        let page = |cursor: Option<crate::store::Cursor>| {
            let page = listed::sessions(
                &held,
                &SessionQuery {
                    limit: 2,
                    cursor,
                    ..SessionQuery::default()
                },
            );
            let keys: Vec<String> = page
                .sessions
                .iter()
                .map(|s| format!("{}@{}", s.session_id, s.site))
                .collect();
            (keys, page.next_cursor)
        };
        let (first, next) = page(None);
        assert_eq!(first, ["s2@b", "s2@a"]);
        let cursor = crate::store::Cursor::decode(&next.unwrap()).unwrap();
        let (second, next) = page(Some(cursor));
        assert_eq!(
            second,
            ["s1@a", "s3@a"],
            "both s2 are before the cursor, as in SQL"
        );
        assert_eq!(next, None);
    }

    #[test]
    fn a_flat_row_puts_a_step_per_page_view_url_and_event_and_an_older_one_loses() {
        let row = |version: u64, views: u32| flat("s", "a", 1, version, views);
        let mut held = Held::new();
        row(10, 3).put(&mut held);
        let c = &held.columns;
        assert_eq!(c.len(), 1);
        assert_eq!(c.steps.of(0).len(), 3 + 3 + 1);
        row(9, 1).put(&mut held);
        assert_eq!(
            held.columns.page_views[0], 3,
            "an older version does not win"
        );
        row(10, 2).put(&mut held);
        assert_eq!(held.columns.page_views[0], 2, "the same version does");
        assert_eq!(held.columns.steps.of(0).len(), 2 + 2 + 1);
        let page = listed::sessions(
            &held,
            &SessionQuery {
                limit: 5,
                ..SessionQuery::default()
            },
        );
        assert_eq!(page.sessions.len(), 1);
        let s = &page.sessions[0];
        assert_eq!(
            (s.event_count, s.landing_page.as_deref(), s.source.as_str()),
            (3, Some("https://s/?a=b"), "direct"),
            "the list's fields follow the newest version"
        );
    }
}
