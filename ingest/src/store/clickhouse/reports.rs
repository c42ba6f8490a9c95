//! The read API's questions of [`crate::read`] in ClickHouse SQL:
//! breakdowns, timeseries, realtime, funnels and profile totals, and the
//! filters every read takes ([`Pick`]).
//!
//! Every question reads the sessions of [`sessions_read_sql`] (one row per
//! visit, of the site only, from `sessions_flat` or merged from
//! `sessions_agg`: see [`super::flat`]) and, for pages
//! and custom events, the visits' events, each counted once by `event_id`
//! (a replayed insert may hold an event twice until parts merge). Values
//! are written into the SQL as literals ([`literal`]) and the queries sent
//! raw, so each text here is the whole query, as ClickHouse 18.16 and
//! current releases both read it. The SQL builders are `pub(crate)` so the
//! queries can be checked on other engines.

use clickhouse::Row;
use serde::Deserialize;

use super::flat::{session_columns, sessions_read_sql};
use super::{timed, ClickHouseStore};
use crate::clock::{Clock, SystemClock};
use crate::read::{
    ratio, Breakdown, BreakdownQuery, BreakdownRow, Counts, Dimension, Filter, Funnel, FunnelQuery,
    FunnelStep, FunnelStepCount, Metrics, PageVisitors, Person, ProfileQuery, ProfileTotals,
    ReadQuery, Realtime, RealtimeQuery, Timeseries, TimeseriesQuery,
};
use crate::store::columns::answer;
use crate::store::StoreError;
use crate::wire::MAX_EVENT_AHEAD_MS;

/// `value` as an SQL string literal.
pub(crate) fn literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if matches!(c, '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Which sessions a read is about, as SQL: conditions on the sessions'
/// keys, applied to `sessions_agg` rows before they merge (the site, the
/// filters on pages and events), and on the merged sessions' columns.
#[derive(Debug, Clone)]
pub(crate) struct Pick {
    db: String,
    site: Option<String>,
    keys: Vec<String>,
    flat_keys: Vec<String>,
    clauses: Vec<String>,
    /// Whether the flat rows are read in key ranges side by side
    /// ([`split`](super::split)).
    in_ranges: bool,
}

impl Pick {
    /// Every session of `site` (of every site when `None`).
    pub(crate) fn new(db: &str, site: Option<&str>) -> Pick {
        Pick {
            db: db.to_owned(),
            site: site.map(str::to_owned),
            keys: site
                .map(|site| format!("site = {}", literal(site)))
                .into_iter()
                .collect(),
            flat_keys: Vec::new(),
            clauses: Vec::new(),
            in_ranges: false,
        }
    }

    /// The same sessions, with the site's flat rows read in key ranges side
    /// by side ([`split`](super::split)): for a read that is one statement.
    /// Not for `/v1/stats`, whose five statements already run side by side
    /// (ranges made it 1.1–1.2× slower at 1 M visits), nor for reads of a
    /// few sessions (the sessions list among the newest, realtime: slower
    /// too).
    pub(crate) fn in_ranges(mut self) -> Pick {
        self.in_ranges = true;
        self
    }

    /// The sessions a [`ReadQuery`] picks.
    pub(crate) fn read(db: &str, q: &ReadQuery) -> Pick {
        let mut pick = Pick::new(db, q.site.as_deref());
        pick.and(format!(
            "started_at >= {} AND started_at < {}",
            q.from, q.to
        ));
        if !q.include_bots {
            pick.and("is_bot = 0".to_owned());
        }
        pick.filters(&q.filters);
        pick
    }

    /// Also `clause`, on the sessions' keys only (`site`, `session_id`):
    /// applied before the delta's states merge, and through the key on both
    /// tables.
    fn key(&mut self, clause: String) {
        self.keys.push(clause);
    }

    /// Also `clause`, on the keys of the flat rows only (the delta's
    /// sessions are read whatever it says).
    pub(crate) fn flat_key(&mut self, clause: String) {
        self.flat_keys.push(clause);
    }

    /// Also `clause`, on the sessions' columns.
    pub(crate) fn and(&mut self, clause: String) {
        self.clauses.push(clause);
    }

    /// `filter=dimension:value`: a column equal to the value, or for
    /// `page` and `event_name` any page view or custom event of the visit
    /// with it (in the visit's [`PAGE_FIELDS`](super::flat::PAGE_FIELDS)).
    pub(crate) fn filters(&mut self, filters: &[Filter]) {
        for filter in filters {
            let value = literal(&filter.value);
            match (filter.dimension.session_column(), filter.dimension) {
                (Some(column), _) => self.and(format!("{column} = {value}")),
                (None, Dimension::Page) => self.and(format!("has(paths, {value})")),
                (None, _) => self.and(format!("has(goals, {value})")),
            }
        }
    }

    /// `{db}.events`.
    fn events(&self) -> String {
        format!("{}.events", self.db)
    }

    /// `site = '…' AND ` when the read is about one site.
    fn events_site(&self) -> String {
        self.site
            .as_deref()
            .map(|site| format!("site = {} AND ", literal(site)))
            .unwrap_or_default()
    }

    /// The sessions, one row each, with `columns` (comma separated) and
    /// those the conditions use, of
    /// [`sessions_sql`](super::schema::sessions_sql)'s.
    pub(crate) fn sql(&self, columns: &str) -> String {
        let keys = if self.keys.is_empty() {
            "1".to_owned()
        } else {
            self.keys.join(" AND ")
        };
        let clauses = if self.clauses.is_empty() {
            "1".to_owned()
        } else {
            self.clauses.join(" AND ")
        };
        let clause_refs: Vec<&str> = self.clauses.iter().map(String::as_str).collect();
        format!(
            "SELECT * FROM ({}) WHERE {clauses}",
            sessions_read_sql(
                &self.db,
                &keys,
                (!self.flat_keys.is_empty())
                    .then(|| self.flat_keys.join(" AND "))
                    .as_deref(),
                &session_columns(columns, &clause_refs),
                self.site.as_deref().filter(|_| self.in_ranges),
            )
        )
    }

    /// The events of the picked sessions matching `condition`: a `FROM`
    /// and `WHERE` on `{db}.events`.
    pub(crate) fn events_of(&self, condition: &str) -> String {
        format!(
            "{} WHERE {}{condition} AND (site, session_id) IN (SELECT site, session_id FROM ({}))",
            self.events(),
            self.events_site(),
            self.sql("site, session_id")
        )
    }
}

/// The session columns [`counts_sql`] reads.
pub(crate) const COUNTED: &str = "visitor_id, page_views, duration_ms";

/// The [`Counts`] of a set of sessions' rows, over columns named with
/// `prefix`: visits, visitors, page views, bounces, summed durations.
fn counts_sql(prefix: &str) -> String {
    format!(
        "count(), uniqExact({prefix}visitor_id), toUInt64(sum({prefix}page_views)), \
         countIf({prefix}page_views <= 1), toUInt64(sum({prefix}duration_ms))"
    )
}

/// A key and the counts of its visits (and, for `event_name`, events).
#[derive(Debug, Row, Deserialize)]
struct CountsRow {
    key: String,
    visits: u64,
    visitors: u64,
    page_views: u64,
    bounces: u64,
    duration_sum: u64,
    events: u64,
}

impl CountsRow {
    fn counts(&self) -> Counts {
        #[allow(clippy::cast_precision_loss)] // Sums far below 2^52.
        let avg_duration_ms = if self.visits == 0 {
            0.0
        } else {
            self.duration_sum as f64 / self.visits as f64
        };
        Counts {
            visits: self.visits,
            visitors: self.visitors,
            page_views: self.page_views,
            bounces: self.bounces,
            avg_duration_ms,
        }
    }
}

/// The breakdown's SQL: its rows' keys and counts, largest first.
pub(crate) fn breakdown_sql(db: &str, q: &BreakdownQuery) -> String {
    let pick = Pick::read(db, &q.sessions).in_ranges();
    let limit = q.limit;
    if let Some(column) = q.dimension.session_column() {
        return format!(
            "SELECT assumeNotNull({column}) AS k, {}, toUInt64(0) FROM ({}) \
             WHERE isNotNull({column}) GROUP BY k ORDER BY count() DESC, k LIMIT {limit}",
            counts_sql(""),
            pick.sql(&format!("{column}, {COUNTED}"))
        );
    }
    // A row per visit and key (its page views of a page, its events of a
    // name); a page's page views are its own.
    let (keys, hits, page_views, events) = if q.dimension == Dimension::Page {
        ("paths", "path_views", "toUInt64(sum(n))", "toUInt64(0)")
    } else {
        (
            "goals",
            "goal_events",
            "toUInt64(sum(page_views))",
            "toUInt64(sum(n))",
        )
    };
    format!(
        "SELECT k, count(), uniqExact(visitor_id), {page_views}, countIf(page_views <= 1), \
         toUInt64(sum(duration_ms)), {events} FROM ({}) ARRAY JOIN {keys} AS k, {hits} AS n \
         GROUP BY k ORDER BY count() DESC, k LIMIT {limit}",
        pick.sql(&format!("{keys}, {hits}, {COUNTED}"))
    )
}

/// How many visits a [`ReadQuery`] picks: what an `event_name`
/// breakdown's conversion rates are of.
pub(crate) fn visits_sql(db: &str, q: &ReadQuery) -> String {
    format!(
        "SELECT count() FROM ({})",
        Pick::read(db, q).in_ranges().sql("")
    )
}

/// The timeseries' SQL: each bucket's start and counts, the empty ones
/// left out.
pub(crate) fn timeseries_sql(db: &str, q: &TimeseriesQuery) -> String {
    let width = q.interval.millis();
    format!(
        "SELECT toString(intDiv(started_at, {width}) * {width}) AS k, {}, toUInt64(0) \
         FROM ({}) GROUP BY k",
        counts_sql(""),
        Pick::read(db, &q.sessions)
            .in_ranges()
            .sql(&format!("started_at, {COUNTED}"))
    )
}

/// Before a realtime window, on ClickHouse's clock, how far back the
/// sessions touched are also read: for the clocks of several collectors.
const REALTIME_SLACK_SECS: u64 = 600;

/// The longest realtime window read through the sessions touched in it:
/// `sessions_touched` keeps at least the last two days.
const REALTIME_TOUCHED_MAX_MS: u64 = 86_400_000;

/// How many seconds back from ClickHouse's `now()` every session active
/// since `since` was touched, `now_ms` being this collector's clock; `None`
/// when the window is not within the last day (a test's clock, say).
///
/// An event counts as active by its time, which the collector accepts at
/// most [`MAX_EVENT_AHEAD_MS`] after it received the event, and a session
/// is touched when its event is inserted, after that. So a session whose
/// last activity is since `since` was touched at most the window, plus
/// that, before now, whatever the offset between this collector's clock
/// and ClickHouse's (the slack covers other collectors' clocks).
pub(crate) fn realtime_touched_secs(since: u64, now_ms: u64) -> Option<u64> {
    let window = now_ms.checked_sub(since)?;
    (window <= REALTIME_TOUCHED_MAX_MS)
        .then(|| window.div_ceil(1000) + MAX_EVENT_AHEAD_MS / 1000 + REALTIME_SLACK_SECS)
}

/// The sessions active since the realtime window's start. Within the last
/// day (by `now_ms`, this collector's clock), only the sessions touched in
/// the window are read ([`realtime_touched_secs`]): a key range of both
/// tables instead of the site's every visit.
fn realtime_pick(db: &str, q: &RealtimeQuery, now_ms: u64) -> Pick {
    let mut pick = Pick::new(db, q.site.as_deref());
    if let Some(back) = realtime_touched_secs(q.since, now_ms) {
        pick.key(format!(
            "(site, session_id) IN (SELECT site, session_id FROM {db}.sessions_touched \
             WHERE touched_at >= now() - {back})"
        ));
    }
    pick.and(format!("last_seen_at >= {}", q.since));
    if !q.include_bots {
        pick.and("is_bot = 0".to_owned());
    }
    pick.filters(&q.filters);
    pick
}

/// Realtime's SQL: the visitors active since the window's start, and
/// their current pages (each session's exit page), most visitors first;
/// `now_ms` is this collector's clock ([`realtime_pick`]).
pub(crate) fn realtime_sql(db: &str, q: &RealtimeQuery, now_ms: u64) -> [String; 2] {
    let sessions = realtime_pick(db, q, now_ms).sql("visitor_id, exit_path");
    [
        format!("SELECT uniqExact(visitor_id) FROM ({sessions})"),
        format!(
            "SELECT assumeNotNull(exit_path) AS k, uniqExact(visitor_id) AS n FROM ({sessions}) \
             WHERE isNotNull(exit_path) GROUP BY k ORDER BY n DESC, k LIMIT {}",
            q.limit
        ),
    ]
}

/// The funnel's SQL: per step, the visits and visitors that reached it.
///
/// Per visit, the least key (the merge order: time, `seq`, `event_id`) of
/// the first step's events, then step by step the least key of the step's
/// events after the step before's (`''` once a step is missed): the
/// earliest match leaves the most room for the steps after it. On 18.16,
/// no `windowFunnel` (it takes `DateTime` or `UInt32` times only, and
/// orders ties by no key) and no `arrayReduce` over a column of arrays
/// (it crashes the server): the least of an array is its first once
/// sorted.
pub(crate) fn funnel_sql(db: &str, q: &FunnelQuery) -> String {
    let mut pick = Pick::read(db, &q.sessions).in_ranges();
    // A visit without the first step reaches none: only the others' events
    // are read.
    if let Some(first) = q.steps.first() {
        let (dimension, value) = match first {
            FunnelStep::Page(path) => (Dimension::Page, path),
            FunnelStep::Event(name) => (Dimension::EventName, name),
        };
        pick.filters(&[Filter {
            dimension,
            value: value.clone(),
        }]);
    }
    let matches = |step: &FunnelStep| match step {
        FunnelStep::Page(path) => format!("event_type = 'page_view' AND path = {}", literal(path)),
        FunnelStep::Event(name) => format!(
            "event_type = 'custom' AND ifNull(name, '') = {}",
            literal(name)
        ),
    };
    let mut keys = Vec::new();
    let mut reached = Vec::new();
    for (i, step) in q.steps.iter().enumerate() {
        let n = i + 1;
        if n == 1 {
            keys.push(format!("minIf(event_key, {}) AS p1", matches(step)));
        } else {
            let before = n - 1;
            keys.push(format!(
                "groupArrayIf(event_key, {}) AS a{n}",
                matches(step)
            ));
            reached.push(format!(
                "if(p{before} = '', '', arraySort(arrayFilter(x -> x > p{before}, a{n}))[1]) AS p{n}"
            ));
        }
    }
    let steps = 1..=q.steps.len();
    let visits: Vec<String> = steps
        .clone()
        .map(|n| format!("countIf(p{n} != '')"))
        .collect();
    let visitors: Vec<String> = steps
        .map(|n| format!("uniqExactIf(v_visitor_id, p{n} != '')"))
        .collect();
    format!(
        "SELECT [{}], [{}] FROM (\
            SELECT site, session_id, p1, {} FROM (\
                SELECT site, session_id, {} FROM {} GROUP BY site, session_id\
            )\
         ) AS e ALL INNER JOIN (\
            SELECT site, session_id, visitor_id AS v_visitor_id FROM ({})\
         ) AS s USING (site, session_id)",
        visits.join(", "),
        visitors.join(", "),
        reached.join(", "),
        keys.join(", "),
        pick.events_of("event_type IN ('page_view', 'custom')"),
        pick.sql("site, session_id, visitor_id")
    )
}

/// Per step, the visits and the visitors that reached it.
#[derive(Debug, Row, Deserialize)]
struct FunnelRow {
    visits: Vec<u64>,
    visitors: Vec<u64>,
}

/// A person's totals.
#[derive(Debug, Row, Deserialize)]
struct TotalsRow {
    visits: u64,
    first_seen: u64,
    last_seen: u64,
    page_views: u64,
    events: u64,
    duration_ms: u64,
    linked: Vec<String>,
}

/// A profile's SQL: the person's totals and the other side of the link.
pub(crate) fn profile_sql(db: &str, q: &ProfileQuery) -> String {
    let mut pick = Pick::new(db, q.site.as_deref()).in_ranges();
    let linked = match &q.person {
        Person::Visitor(id) => {
            pick.and(format!("visitor_id = {}", literal(id)));
            "user_id"
        }
        Person::User(id) => {
            pick.and(format!("user_id = {}", literal(id)));
            "toNullable(visitor_id)"
        }
    };
    if let Some(from) = q.from {
        pick.and(format!("started_at >= {from}"));
    }
    if let Some(to) = q.to {
        pick.and(format!("started_at < {to}"));
    }
    format!(
        "SELECT count(), min(started_at), max(last_seen_at), toUInt64(sum(page_views)), \
         toUInt64(sum(event_count)), toUInt64(sum(duration_ms)), \
         arraySort(groupUniqArrayIf(assumeNotNull({linked}), isNotNull({linked}))) FROM ({})",
        pick.sql(
            "started_at, last_seen_at, page_views, event_count, duration_ms, visitor_id, user_id"
        )
    )
}

impl ClickHouseStore {
    async fn counts_rows(&self, sql: &str) -> Result<Vec<CountsRow>, StoreError> {
        timed(self.ch.client.query_raw(sql).fetch_all::<CountsRow>()).await
    }

    pub(super) async fn breakdown_now(&self, q: BreakdownQuery) -> Result<Breakdown, StoreError> {
        let site = q.sessions.site.clone();
        let q = match self
            .mirrored()
            .answer(site.as_deref(), q, answer::breakdown)
            .await?
        {
            Ok(answered) => return Ok(answered),
            Err(q) => q,
        };
        let goals = q.dimension == Dimension::EventName;
        let all_visits = async {
            if goals {
                let sql = visits_sql(&self.ch.db, &q.sessions);
                timed(self.ch.client.query_raw(&sql).fetch_one::<u64>()).await
            } else {
                Ok(0)
            }
        };
        let sql = breakdown_sql(&self.ch.db, &q);
        let (rows, all_visits) = tokio::try_join!(self.counts_rows(&sql), all_visits)?;
        let rows = rows
            .into_iter()
            .map(|row| {
                let counts = row.counts();
                BreakdownRow {
                    metrics: Metrics::from(counts),
                    events: goals.then_some(row.events),
                    conversion_rate: goals.then(|| ratio(counts.visits, all_visits)),
                    key: row.key,
                }
            })
            .collect();
        let s = q.sessions;
        Ok(Breakdown {
            site: s.site,
            from: s.from,
            to: s.to,
            dimension: q.dimension,
            rows,
        })
    }

    pub(super) async fn timeseries_now(
        &self,
        q: TimeseriesQuery,
    ) -> Result<Timeseries, StoreError> {
        let site = q.sessions.site.clone();
        let q = match self
            .mirrored()
            .answer(site.as_deref(), q, answer::timeseries)
            .await?
        {
            Ok(answered) => return Ok(answered),
            Err(q) => q,
        };
        let rows = self.counts_rows(&timeseries_sql(&self.ch.db, &q)).await?;
        let counted: Vec<(u64, Counts)> = rows
            .iter()
            .filter_map(|row| Some((row.key.parse().ok()?, row.counts())))
            .collect();
        let s = q.sessions;
        Ok(Timeseries::fill(s.site, s.from, s.to, q.interval, &counted))
    }

    pub(super) async fn realtime_now(&self, q: RealtimeQuery) -> Result<Realtime, StoreError> {
        let [visitors, pages] = realtime_sql(&self.ch.db, &q, SystemClock.now_ms());
        let visitors = timed(self.ch.client.query_raw(&visitors).fetch_one::<u64>()).await?;
        let pages = timed(
            self.ch
                .client
                .query_raw(&pages)
                .fetch_all::<(String, u64)>(),
        )
        .await?
        .into_iter()
        .map(|(key, visitors)| PageVisitors { key, visitors })
        .collect();
        Ok(Realtime {
            site: q.site,
            since: q.since,
            visitors,
            pages,
        })
    }

    pub(super) async fn funnel_now(&self, q: FunnelQuery) -> Result<Funnel, StoreError> {
        let sql = funnel_sql(&self.ch.db, &q);
        let FunnelRow { visits, visitors } =
            timed(self.ch.client.query_raw(&sql).fetch_one::<FunnelRow>()).await?;
        let first = visits.first().copied().unwrap_or(0);
        let steps = q
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let reached = visits.get(i).copied().unwrap_or(0);
                FunnelStepCount {
                    step: i + 1,
                    key: step.key(),
                    visits: reached,
                    visitors: visitors.get(i).copied().unwrap_or(0),
                    conversion_rate: ratio(reached, first),
                }
            })
            .collect();
        let s = q.sessions;
        Ok(Funnel {
            site: s.site,
            from: s.from,
            to: s.to,
            steps,
        })
    }

    pub(super) async fn profile_totals_now(
        &self,
        q: ProfileQuery,
    ) -> Result<Option<ProfileTotals>, StoreError> {
        let sql = profile_sql(&self.ch.db, &q);
        let row = timed(self.ch.client.query_raw(&sql).fetch_one::<TotalsRow>()).await?;
        if row.visits == 0 {
            return Ok(None);
        }
        let mut linked = row.linked;
        linked.sort_unstable();
        Ok(Some(ProfileTotals {
            first_seen: row.first_seen,
            last_seen: row.last_seen,
            visits: row.visits,
            page_views: row.page_views,
            events: row.events,
            duration_ms: row.duration_ms,
            linked,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_quotes_and_backslashes_only() {
        assert_eq!(literal("plain"), "'plain'");
        assert_eq!(literal(r"it's a \ and ?"), r"'it\'s a \\ and ?'");
        assert_eq!(literal("é\n"), "'é\n'");
    }

    #[test]
    fn a_read_selects_only_the_session_columns_it_and_its_conditions_use() {
        let q = TimeseriesQuery {
            sessions: ReadQuery {
                site: Some("shop".to_owned()),
                from: 0,
                to: 10,
                include_bots: false,
                filters: vec![Filter::parse("country:DE").unwrap()],
            },
            interval: crate::store::Interval::Day,
        };
        let sql = timeseries_sql("db", &q);
        // Each key range's select of the flat rows, and the merged ones'.
        let branches: Vec<&str> = sql.split(" FROM db.sessions_flat FINAL").collect();
        assert_eq!(branches.len(), super::super::split::WAYS + 1, "{sql}");
        let mut selects: Vec<&str> = branches[..super::super::split::WAYS]
            .iter()
            .map(|before| before.rsplit("SELECT ").next().unwrap())
            .collect();
        let merged = branches[super::super::split::WAYS];
        let merged = merged.split_once("UNION ALL SELECT ").unwrap().1;
        selects.push(merged.split_once(" FROM (").unwrap().0);
        for selected in selects {
            let mut columns: Vec<&str> = selected.split(", ").collect();
            columns.sort_unstable();
            assert_eq!(
                columns,
                [
                    "country",
                    "duration_ms",
                    "is_bot",
                    "page_views",
                    "started_at",
                    "visitor_id"
                ],
                "{sql}"
            );
        }
        // A count of rows with no condition still selects a column.
        assert_eq!(session_columns("", &[]), "session_id");
        assert_eq!(session_columns("", &["is_bot = 0"]), "is_bot");
    }

    #[test]
    fn one_statement_reads_take_the_flat_rows_in_ranges_and_stats_do_not() {
        let sessions = ReadQuery {
            site: Some("shop".to_owned()),
            from: 0,
            to: 10,
            include_bots: false,
            filters: Vec::new(),
        };
        let ranges = |sql: &str| sql.matches(" FROM db.sessions_flat FINAL").count();
        let breakdown = BreakdownQuery {
            sessions: sessions.clone(),
            dimension: Dimension::Source,
            limit: 10,
        };
        assert_eq!(
            ranges(&breakdown_sql("db", &breakdown)),
            super::super::split::WAYS
        );
        let stats = crate::store::StatsQuery {
            site: sessions.site.clone(),
            from: 0,
            to: 10,
            include_bots: false,
            interval: crate::store::Interval::Day,
            filters: Vec::new(),
        };
        for sql in super::super::queries::stats_sql("db", &stats) {
            assert_eq!(ranges(&sql), 1, "{sql}");
        }
        // Every site's sessions (no cuts to take): one range.
        let everywhere = BreakdownQuery {
            sessions: ReadQuery {
                site: None,
                ..sessions
            },
            ..breakdown
        };
        assert_eq!(ranges(&breakdown_sql("db", &everywhere)), 1);
    }

    /// Whether every read of `{db}.events` in `sql` is of the delta's
    /// sessions only: the first subquery after it is the touched sessions.
    fn events_read_for_the_delta_only(sql: &str) -> bool {
        sql.match_indices("FROM db.events").all(|(at, _)| {
            let rest = &sql[at..];
            rest.find("(SELECT").is_some_and(|sub| {
                rest[sub..].starts_with("(SELECT site, session_id FROM db.sessions_touched")
            })
        })
    }

    #[test]
    fn pages_goals_and_their_filters_read_the_flat_rows_not_every_event() {
        let sessions = |filters: &[&str]| ReadQuery {
            site: Some("shop".to_owned()),
            from: 0,
            to: 10,
            include_bots: false,
            filters: filters.iter().map(|f| Filter::parse(f).unwrap()).collect(),
        };
        for filters in [&[][..], &["page:/a"], &["event_name:signup", "country:DE"]] {
            let mut reads = vec![visits_sql("db", &sessions(filters))];
            for dimension in ["page", "event_name", "source", "entry_page"] {
                reads.push(breakdown_sql(
                    "db",
                    &BreakdownQuery {
                        sessions: sessions(filters),
                        dimension: Dimension::parse(dimension).unwrap(),
                        limit: 10,
                    },
                ));
            }
            let stats = crate::store::StatsQuery {
                site: Some("shop".to_owned()),
                from: 0,
                to: 10,
                include_bots: false,
                interval: crate::store::Interval::Day,
                filters: sessions(filters).filters,
            };
            reads.extend(super::super::queries::stats_sql("db", &stats));
            for sql in reads {
                assert!(events_read_for_the_delta_only(&sql), "{sql}");
            }
        }
        // What a funnel needs, the order of a visit's events, only the
        // events have.
        let funnel = FunnelQuery {
            sessions: sessions(&[]),
            steps: vec![FunnelStep::parse("page:/a").unwrap()],
        };
        let sql = funnel_sql("db", &funnel);
        assert!(!events_read_for_the_delta_only(&sql));
        // Of the visits with the first step only, on both sides of its join.
        assert_eq!(sql.matches("AND has(paths, '/a')").count(), 2, "{sql}");
    }

    #[test]
    fn realtime_reads_the_sessions_touched_in_its_window_within_the_last_day() {
        let now = 1_800_000_000_000;
        // Five minutes, the hour an event may be ahead, ten minutes' slack.
        assert_eq!(realtime_touched_secs(now - 300_000, now), Some(4_500));
        assert_eq!(realtime_touched_secs(now - 300_001, now), Some(4_501));
        assert_eq!(realtime_touched_secs(now - 86_400_000, now), Some(90_600));
        assert_eq!(realtime_touched_secs(now - 86_400_001, now), None);
        assert_eq!(realtime_touched_secs(now + 1, now), None);
        let q = RealtimeQuery {
            site: Some("shop".to_owned()),
            since: now - 300_000,
            include_bots: false,
            filters: Vec::new(),
            limit: 10,
        };
        let touched = "(site, session_id) IN (SELECT site, session_id FROM db.sessions_touched \
                       WHERE touched_at >= now() - 4500)";
        for sql in realtime_sql("db", &q, now) {
            let (flat, merged) = sql.split_once("UNION ALL").unwrap();
            assert!(flat.contains(touched), "{flat}");
            assert!(merged.contains(touched), "{merged}");
        }
        for sql in realtime_sql("db", &q, now + 86_400_000) {
            assert!(!sql.contains("touched_at >= now() -"), "{sql}");
        }
    }

    #[test]
    fn the_sessions_list_orders_one_id_on_two_sites_by_site() {
        let q = crate::store::SessionQuery {
            limit: 25,
            ..crate::store::SessionQuery::default()
        };
        let sql = super::super::queries::sessions_page_sql("db", &q, 26, None);
        assert!(
            sql.ends_with("ORDER BY started_at DESC, session_id DESC, site DESC LIMIT 26"),
            "{sql}"
        );
    }

    #[test]
    fn filters_on_pages_and_events_read_the_visits_arrays_on_both_branches() {
        let mut pick = Pick::new("db", Some("shop"));
        pick.filters(&[
            Filter::parse("page:/a").unwrap(),
            Filter::parse("event_name:signup").unwrap(),
            Filter::parse("country:DE").unwrap(),
        ]);
        let sql = pick.sql("visitor_id");
        let (flat, merged) = sql.split_once("UNION ALL").unwrap();
        for branch in [flat, merged] {
            assert!(
                branch.contains("paths") && branch.contains("goals"),
                "{branch}"
            );
        }
        // The merged branch takes them from the delta's events.
        assert!(merged.contains("ANY LEFT JOIN"), "{merged}");
        assert!(!flat.contains("ANY LEFT JOIN"), "{flat}");
        let after = sql.rsplit_once(") WHERE ").unwrap().1;
        assert_eq!(
            after,
            "has(paths, '/a') AND has(goals, 'signup') AND country = 'DE'"
        );
    }
}
