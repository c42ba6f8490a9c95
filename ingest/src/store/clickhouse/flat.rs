//! Schema version 4: `sessions_flat`, each session once as plain columns,
//! so that a read over a month scans columns instead of merging every
//! session's aggregate states.
//!
//! Merging `sessions_agg` costs tens of microseconds a session, whatever
//! the range asked for (a month of a busy site is seconds). So a
//! compaction ([`Ch::compact`], every [`COMPACT_EVERY`] by each collector)
//! writes the merged values of the sessions changed since the last one
//! into `sessions_flat`, a `ReplacingMergeTree` keyed by `(site,
//! session_id)` that keeps each session's newest version (`version`, the
//! server's clock at the compaction, in seconds). Which sessions changed is
//! `sessions_touched`: a row per session per insert into `events`, with
//! the server's time, kept by a materialised view, partitioned by day and
//! dropped two days after.
//!
//! A read ([`sessions_read_sql`]) is exact whenever it runs: the sessions
//! touched since [`MARGIN_SECS`] before the newest compaction began (the
//! *delta*) are merged from `sessions_agg` as before, every other from
//! `sessions_flat` (`FINAL`: one version each). An event inserted before
//! that point was in `sessions_agg` when the compaction read it, as an
//! insert takes at most [`REQUEST_TIMEOUT`](super::REQUEST_TIMEOUT); so a
//! session outside the delta has no event its flat row lacks. Late,
//! reordered and duplicate events only touch their session again.
//! Collectors compacting at once write the same values; the newest
//! version wins.

use std::time::Duration;

use tokio::sync::watch;

use super::queries::PAGE_KEY;
use super::reports::literal;
use super::schema::{sessions_sql, Statement, SESSION_FIELDS};
use super::split;
use super::{timed, timed_for, Ch};
use crate::store::{lock, StoreError};

/// How often each collector compacts.
pub(super) const COMPACT_EVERY: Duration = Duration::from_secs(10);

/// The longest one compaction's insert may take.
const COMPACT_TIMEOUT: Duration = Duration::from_secs(3_600);

/// How long before a compaction's start a session must have been touched
/// last for reads to take its flat row: twice the longest insert.
pub(crate) const MARGIN_SECS: u64 = 60;

/// Schema version 6: per visit, its page views by page (by path, and by
/// URL without query and fragment as `/v1/stats`' `top_pages` keys them)
/// and its custom events by name, each event once: parallel arrays of keys
/// and counts in the flat rows, so that top pages, page and goal
/// breakdowns and `page`/`event_name` filters read the visits' rows instead
/// of their events. Name and type.
pub(crate) const PAGE_FIELDS: &[(&str, &str)] = &[
    ("paths", "Array(String)"),
    ("path_views", "Array(UInt32)"),
    ("urls", "Array(String)"),
    ("url_views", "Array(UInt32)"),
    ("goals", "Array(String)"),
    ("goal_events", "Array(UInt32)"),
];

/// Every column a read of the sessions may select: [`SESSION_FIELDS`]'
/// names, then [`PAGE_FIELDS`]'.
fn field_names() -> impl Iterator<Item = &'static str> {
    SESSION_FIELDS
        .iter()
        .map(|(name, _, _)| *name)
        .chain(PAGE_FIELDS.iter().map(|(name, _)| *name))
}

/// The flat rows' columns' names, comma separated.
fn names() -> String {
    field_names().collect::<Vec<_>>().join(", ")
}

/// [`PAGE_FIELDS`] of the sessions whose events match `filter`
/// (conditions on `site` and `session_id` only), from their events: a
/// visit's page views of a page, and its custom events of a name, each
/// `event_id` once.
pub(super) fn pages_sql(db: &str, filter: &str) -> String {
    format!(
        "SELECT site, session_id, \
         groupArrayIf(k, t = 0) AS paths, groupArrayIf(n, t = 0) AS path_views, \
         groupArrayIf(k, t = 1) AS urls, groupArrayIf(n, t = 1) AS url_views, \
         groupArrayIf(k, t = 2) AS goals, groupArrayIf(n, t = 2) AS goal_events FROM (\
            SELECT site, session_id, t, k, toUInt32(uniqExact(event_id)) AS n \
            FROM {db}.events ARRAY JOIN [0, 1, 2] AS t, [path, {PAGE_KEY}, ifNull(name, '')] AS k \
            WHERE ({filter}) AND ((event_type = 'page_view' AND t < 2) \
            OR (event_type = 'custom' AND isNotNull(name) AND t = 2)) \
            GROUP BY site, session_id, t, k\
         ) GROUP BY site, session_id"
    )
}

/// [`sessions_sql`]'s sessions with their [`PAGE_FIELDS`] (empty arrays
/// for a visit without page views or custom events).
fn sessions_with_pages_sql(db: &str, filter: &str) -> String {
    format!(
        "SELECT {} FROM ({}) AS s ANY LEFT JOIN ({}) AS p USING (site, session_id)",
        names(),
        sessions_sql(db, filter),
        pages_sql(db, filter)
    )
}

/// Every session there is marked touched now: reads merge them from
/// `sessions_agg` (and their pages from `events`) until the compactor, in
/// the background, has written them flat.
fn touch_every_session(db: &str) -> String {
    format!(
        "INSERT INTO {db}.sessions_touched SELECT site, session_id, now() \
         FROM {db}.sessions_agg GROUP BY site, session_id"
    )
}

/// The steps of schema version 6: the [`PAGE_FIELDS`] added to
/// `sessions_flat`, then every session marked touched, so that reads take
/// them from the events until the compactor has written them flat again
/// with their pages (a flat row written before has empty arrays).
pub(super) fn pages_schema(db: &str) -> Vec<Statement> {
    PAGE_FIELDS
        .iter()
        .map(|(name, kind)| Statement::AddColumn {
            table: "sessions_flat",
            column: (*name).to_owned(),
            definition: (*kind).to_owned(),
        })
        .chain([Statement::Sql(touch_every_session(db))])
        .collect()
}

/// The session columns (of [`SESSION_FIELDS`] and [`PAGE_FIELDS`], in
/// their order) that
/// `columns` lists or `conditions` mention: what a read of the sessions
/// must select. At least `session_id`, for a read that only counts rows.
///
/// Whether ClickHouse 18.16 drops the columns a query does not use from a
/// subquery under `FINAL` and `UNION ALL` is not to be relied on, so a read
/// names only its own. Measured on one store, the gain was unclear: 1.40 s
/// against 0.27 s for a month's totals on 138 k flat rows with a fill
/// running, no difference beyond the noise (0.7–1.4 s either way) on 830 k
/// rows at rest (BENCHMARKS.md).
pub(crate) fn session_columns(columns: &str, conditions: &[&str]) -> String {
    let words = |sql: &str| -> Vec<String> {
        sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut wanted = words(columns);
    for condition in conditions {
        wanted.extend(words(condition));
    }
    let picked: Vec<&str> = field_names()
        .filter(|name| wanted.iter().any(|w| w == name))
        .collect();
    if picked.is_empty() {
        "session_id".to_owned()
    } else {
        picked.join(", ")
    }
}

/// The steps of schema version 4: the touched sessions and their view,
/// the flat table, the compactions' log, then every session there is
/// marked touched, so that reads merge them until the compactor, in the
/// background, has written them flat (a month of a busy site takes longer
/// than a start should wait).
pub(super) fn flat_schema(db: &str) -> Vec<Statement> {
    let columns: Vec<String> = SESSION_FIELDS
        .iter()
        .map(|(name, kind, _)| format!("{name} {kind}"))
        .collect();
    [
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.sessions_touched \
             (site String, session_id String, touched_at DateTime) \
             ENGINE = MergeTree PARTITION BY toYYYYMMDD(touched_at) \
             ORDER BY (touched_at, site, session_id)"
        ),
        format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.sessions_touched_mv \
             TO {db}.sessions_touched AS SELECT site, session_id, now() AS touched_at \
             FROM {db}.events GROUP BY site, session_id"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.sessions_flat (version UInt64, {}) \
             ENGINE = ReplacingMergeTree(version) ORDER BY (site, session_id)",
            columns.join(", ")
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.compactions (began_at DateTime, margin UInt32) \
             ENGINE = MergeTree PARTITION BY toYYYYMM(began_at) ORDER BY began_at"
        ),
        touch_every_session(db),
    ]
    .into_iter()
    .map(Statement::Sql)
    .collect()
}

/// `session_keys.kind` of a page view's path.
const KEY_PAGE: u8 = 0;
/// `session_keys.kind` of a custom event's name.
const KEY_EVENT: u8 = 1;

/// The steps of schema version 5: `session_keys`, the sessions by the
/// paths of their page views and the names of their custom events, kept by
/// a view from every insert into `events` and filled from the events
/// already there, so that a `page` or `event_name` filter reads a range of
/// its key instead of every event (duplicates fold as parts merge, and an
/// `IN` set does not mind them).
pub(super) fn session_keys_schema(db: &str) -> Vec<Statement> {
    let select = format!(
        "SELECT site, if(event_type = 'page_view', {KEY_PAGE}, {KEY_EVENT}) AS kind, \
         if(event_type = 'page_view', path, assumeNotNull(name)) AS key, session_id \
         FROM {db}.events \
         WHERE event_type = 'page_view' OR (event_type = 'custom' AND isNotNull(name))"
    );
    [
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.session_keys \
             (site String, kind UInt8, key String, session_id String) \
             ENGINE = ReplacingMergeTree ORDER BY (site, kind, key, session_id)"
        ),
        format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.session_keys_mv \
             TO {db}.session_keys AS {select}"
        ),
        format!("INSERT INTO {db}.session_keys {select}"),
    ]
    .into_iter()
    .map(Statement::Sql)
    .collect()
}

/// The steps of schema version 7: `session_keys` and its view dropped.
/// Version 6's flat rows answer the `page` and `event_name` filters (faster:
/// 0.85 against 1.5 s for a filtered breakdown over 757 k visits, measured
/// side by side on ClickHouse 18.16), so nothing reads it any more.
pub(super) fn drop_session_keys(db: &str) -> Vec<Statement> {
    ["session_keys_mv", "session_keys"]
        .into_iter()
        .map(|table| Statement::Sql(format!("DROP TABLE IF EXISTS {db}.{table}")))
        .collect()
}

/// The sessions whose flat rows may be behind (see the module docs): an
/// `IN` set of `(site, session_id)`, those touched since the latest point
/// a compaction vouches for (its start less its margin; every one before
/// the first compaction).
fn delta(db: &str) -> String {
    format!(
        "(SELECT site, session_id FROM {db}.sessions_touched \
         WHERE touched_at >= (SELECT max(began_at - margin) FROM {db}.compactions))"
    )
}

/// `site = '…'`, or `1` for every site.
fn site_keys(site: Option<&str>) -> String {
    site.map_or_else(
        || "1".to_owned(),
        |site| format!("site = {}", literal(site)),
    )
}

/// ` AND started_at <= {until}`, or nothing.
fn started_until(until: Option<u64>) -> String {
    until
        .map(|until| format!(" AND started_at <= {until}"))
        .unwrap_or_default()
}

/// A condition on the flat rows' keys that holds for the sessions whose
/// current flat row started between `since` and `until` (inclusive; no end
/// when `None`), of `site` (every site when `None`): a key range holding
/// every such session, whichever of its flat versions is current. For the
/// flat rows only ([`sessions_read_sql`]): on the delta's it would keep
/// 18.16 from reading `sessions_agg` through the key.
pub(crate) fn started_since_keys(
    db: &str,
    site: Option<&str>,
    since: u64,
    until: Option<u64>,
) -> String {
    format!(
        "(site, session_id) IN (SELECT site, session_id FROM {db}.sessions_flat \
         WHERE {} AND started_at >= {since}{})",
        site_keys(site),
        started_until(until),
    )
}

/// One row: the start of the `rows`-th newest row of `sessions_flat`
/// (every version) of `site` that started at or before `until`, and how
/// many such rows there were, up to `rows`. The start is 0 when there were
/// fewer: the delta's sessions may have started before every flat row.
pub(crate) fn newest_start_sql(
    db: &str,
    site: Option<&str>,
    until: Option<u64>,
    rows: usize,
) -> String {
    format!(
        "SELECT if(count() < {rows}, 0, toUInt64(min(started_at))), count() \
         FROM (SELECT started_at FROM {db}.sessions_flat WHERE {}{} \
         ORDER BY started_at DESC LIMIT {rows})",
        site_keys(site),
        started_until(until)
    )
}

/// The sessions picked by `keys` (conditions on `site` and `session_id`
/// only), one row each, with `columns` (names of [`SESSION_FIELDS`],
/// comma separated, as [`session_columns`] lists them): those of the delta
/// merged from `sessions_agg`, the others from `sessions_flat`, where
/// `flat_keys` (on the keys too) also picks them. With `site` (which
/// `keys` must hold to), the flat rows are read in that site's
/// [`split::WAYS`] key ranges side by side.
pub(crate) fn sessions_read_sql(
    db: &str,
    keys: &str,
    flat_keys: Option<&str>,
    columns: &str,
    site: Option<&str>,
) -> String {
    let delta = delta(db);
    let flat_keys = flat_keys
        .map(|flat_keys| format!(" AND {flat_keys}"))
        .unwrap_or_default();
    let of_delta = format!("{keys} AND (site, session_id) IN {delta}");
    let pages = columns
        .split(", ")
        .any(|column| PAGE_FIELDS.iter().any(|(name, _)| *name == column));
    let merged = if pages {
        sessions_with_pages_sql(db, &of_delta)
    } else {
        sessions_sql(db, &of_delta)
    };
    let flat = |range: &str| {
        format!(
            "SELECT {columns} FROM {db}.sessions_flat FINAL \
             WHERE {keys}{range}{flat_keys} AND (site, session_id) NOT IN {delta}"
        )
    };
    let flat: Vec<String> = match site {
        Some(site) => split::ranges(db, site)
            .iter()
            .map(|range| flat(&format!(" AND {range}")))
            .collect(),
        None => vec![flat("")],
    };
    format!(
        "{} UNION ALL SELECT {columns} FROM ({merged})",
        flat.join(" UNION ALL ")
    )
}

/// The statements of one compaction begun at `began_at` (the server's
/// clock, epoch seconds): the flat rows of the delta, then its own log
/// line, vouching for every session touched `margin` seconds before it
/// began.
pub(crate) fn compact_sql(db: &str, began_at: u64, margin: u64) -> [String; 2] {
    [
        format!(
            "INSERT INTO {db}.sessions_flat (version, {names}) SELECT {began_at}, {names} \
             FROM ({})",
            sessions_with_pages_sql(db, &format!("(site, session_id) IN {}", delta(db))),
            names = names()
        ),
        format!("INSERT INTO {db}.compactions VALUES ({began_at}, {margin})"),
    ]
}

/// The days of `sessions_touched` no read or compaction needs any more
/// (older than two days before `now`, epoch seconds).
pub(crate) fn stale_touched_sql(db: &str, now: u64) -> String {
    let before = now.saturating_sub(2 * 86_400);
    format!(
        "SELECT DISTINCT partition FROM system.parts WHERE database = '{db}' \
         AND table = 'sessions_touched' AND active \
         AND partition < toString(toYYYYMMDD(toDateTime({before})))"
    )
}

impl Ch {
    /// One compaction (see the module docs) vouching for the sessions
    /// touched `margin` seconds before it began ([`MARGIN_SECS`] but in
    /// tests), then the touched sessions' days no longer needed dropped.
    pub(crate) async fn compact(&self, margin: u64) -> Result<(), StoreError> {
        // Not while a removal is deleting ([`Ch::removing`]).
        let _removal_done = self.removing.lock().await;
        self.migrate().await?;
        let db = &self.db;
        let began_at: u64 = timed(
            self.client
                .query("SELECT toUInt64(now())")
                .fetch_one::<u64>(),
        )
        .await?;
        for sql in compact_sql(db, began_at, margin) {
            // The first compaction of a big store writes every session.
            timed_for(COMPACT_TIMEOUT, self.client.query_raw(&sql).execute()).await?;
        }
        let stale: Vec<String> = timed(
            self.client
                .query_raw(&stale_touched_sql(db, began_at))
                .fetch_all::<String>(),
        )
        .await?;
        // A day's partition is its `YYYYMMDD`, a number.
        for partition in stale
            .iter()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        {
            let drop = format!("ALTER TABLE {db}.sessions_touched DROP PARTITION {partition}");
            timed(self.client.query_raw(&drop).execute()).await?;
        }
        if let Err(err) = self.write_splits().await {
            // The flat rows are written; reads stay exact with old cuts or
            // none, only less evenly shared. Tried again next time.
            tracing::warn!(error = %err, "cannot write the ClickHouse flat rows' cuts; reads use the ones before");
        }
        Ok(())
    }

    /// The flat rows' cuts ([`split`]) written anew when this collector
    /// has not in [`split::SPLIT_EVERY`].
    async fn write_splits(&self) -> Result<(), StoreError> {
        let due = {
            let split_at = lock(&self.split_at);
            split_at.is_none_or(|at| at.elapsed() >= split::SPLIT_EVERY)
        };
        if due {
            let sql = split::write_splits_sql(&self.db);
            timed_for(COMPACT_TIMEOUT, self.client.query_raw(&sql).execute()).await?;
            *lock(&self.split_at) = Some(std::time::Instant::now());
        }
        Ok(())
    }
}

/// Compacts every [`COMPACT_EVERY`] until `stopping` says stop; a failed
/// compaction is logged and tried at the next tick (reads stay exact, only
/// slower, as the delta grows).
pub(super) async fn run(ch: std::sync::Arc<Ch>, stopping: watch::Receiver<bool>) {
    super::every(COMPACT_EVERY, stopping, || async {
        if let Err(err) = ch.compact(MARGIN_SECS).await {
            tracing::warn!(error = %err, "cannot compact the ClickHouse sessions; reads merge more until the next try");
        }
    })
    .await;
}
