//! The read API's and the sweeper's queries: [`Reads`] builds each one with
//! its values bound, exactly as it is sent (the store runs them, and
//! [`super::sql`] lists them for the test that replays them on a current
//! ClickHouse); the store's methods run them and read the rows.

use std::collections::{BTreeSet, HashMap};

use clickhouse::query::Query;
use clickhouse::Client;

use super::flat::{newest_start_sql, sessions_read_sql, started_since_keys};
use super::reports::{literal, Pick, COUNTED};
use super::rows::{
    BucketRow, EventRow, KeyCountRow, SessionRow, Totals, EVENT_COLUMNS, SESSION_COLUMNS,
};
use super::{timed, ClickHouseStore, REQUEST_TIMEOUT};
use crate::event::StoredEvent;
use crate::read::ReadQuery;
use crate::session::{collector_visit_ended, EventKey, MergeKeys, Session, SessionState};
use crate::store::columns::answer;
use crate::store::{
    EventCursor, EventPage, EventSink, KeyCount, SessionPage, SessionQuery, Stats, StatsQuery,
    StoreError, SweepCursor, SweepPage, MAX_EVENTS_PAGE, TOP,
};

/// One session's events, each `event_id` once (its earliest arrival, as
/// [`fold_session`](crate::session::fold_session) keeps it). `{db}` is the database; binds the site
/// and the session id.
const SESSION_EVENTS: &str = "SELECT * FROM {db}.events \
     WHERE site = ? AND session_id = ? \
     ORDER BY event_id, received_at LIMIT 1 BY event_id";

/// `page_key` in SQL: `url` up to its first `?` or `#` (bytes, as
/// `page_key` cuts). For raw queries: the `?` is no bound argument.
pub(crate) const PAGE_KEY: &str = "substring(url, 1, \
     least(position(concat(url, '?'), '?'), position(concat(url, '#'), '#')) - 1)";

/// The most sessions one page of the sessions list holds.
pub(super) const MAX_SESSIONS_PAGE: usize = 500;

/// How many of the newest flat rows (every version) per session on the
/// page the sessions list reads its page from, try by try, before it reads
/// every session (see [`ClickHouseStore::sessions_now`]).
const NEWEST_ROWS_PER_SESSION: [usize; 2] = [4, 128];

/// The statements of the read API and the sweeper on database `db`, each
/// with its values bound: what [`Query::sql_display`] shows is what
/// ClickHouse gets.
pub(super) struct Reads<'a> {
    pub(super) client: &'a Client,
    pub(super) db: &'a str,
}

/// The five statements of one `/v1/stats`.
pub(super) struct StatsReads {
    /// One row: visits, visitors, page views, bounces, the durations' sum.
    pub(super) totals: Query,
    pub(super) sources: Query,
    pub(super) countries: Query,
    pub(super) pages: Query,
    /// Visits by bucket start, in no order.
    pub(super) buckets: Query,
}

impl Reads<'_> {
    /// `sql` with `binds` bound in order.
    fn bound(&self, sql: &str, binds: &[String]) -> Query {
        binds
            .iter()
            .fold(self.client.query(sql), |query, value| query.bind(value))
    }

    /// One session: one row (or none), its flat row, or merged from
    /// `sessions_agg` when it is in the delta. (Merging its states alone
    /// took 0.14–0.22 s at 10 M events, against 0.04–0.06 s this way: a
    /// key's granule of `sessions_agg` is 8,192 visits' states.) Raw SQL,
    /// values as literals: the key is in both branches.
    pub(super) fn session(&self, site: &str, session_id: &str) -> Query {
        let key = format!(
            "site = {} AND session_id = {}",
            literal(site),
            literal(session_id)
        );
        let sessions = sessions_read_sql(self.db, &key, None, SESSION_COLUMNS, None);
        self.client
            .query_raw(&format!("SELECT {SESSION_COLUMNS} FROM ({sessions})"))
    }

    /// The end key of the `visit_ended` a session keeps (the least) and the
    /// time of its last activity: one row.
    pub(super) fn session_end(&self, site: &str, session_id: &str) -> Query {
        let kept = SESSION_EVENTS.replace("{db}", self.db);
        self.client
            .query(&format!(
                "SELECT minIf(end_key, event_type = 'visit_ended'), \
                 maxIf(ts, event_type != 'visit_ended') FROM ({kept})"
            ))
            .bind(site)
            .bind(session_id)
    }

    /// `limit` events of a session after `after`, in the timeline's order,
    /// given what [`session_end`](Self::session_end) found.
    pub(super) fn session_events_page(
        &self,
        site: &str,
        session_id: &str,
        (end_key, last_activity): (&str, u64),
        after: Option<&EventCursor>,
        limit: usize,
    ) -> Query {
        let kept = SESSION_EVENTS.replace("{db}", self.db);
        // The event columns, with the collector's end at its moved time.
        let columns = EVENT_COLUMNS.replacen(
            " ts, client_ts,",
            " page_ts, if(by_collector = 1, page_ts, client_ts),",
            1,
        );
        let after_clause = if after.is_some() {
            "WHERE (page_ts, page_seq, event_id) > (?, ?, ?)"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {columns} FROM (\
                SELECT *, if(by_collector = 1, greatest(ts, {last_activity}), ts) AS page_ts, \
                ifNull(toInt64(seq), -1) AS page_seq \
                FROM ({kept}) WHERE event_type != 'visit_ended' OR end_key = ?\
             ) {after_clause} ORDER BY page_ts, page_seq, event_id LIMIT {limit}"
        );
        let query = self
            .client
            .query(&sql)
            .bind(site)
            .bind(session_id)
            .bind(end_key);
        match after {
            Some(c) => query.bind(c.ts).bind(c.seq_rank()).bind(&c.event_id),
            None => query,
        }
    }

    /// Every stored row of a session, duplicates too, in no order.
    pub(super) fn session_rows(&self, site: &str, session_id: &str) -> Query {
        self.client
            .query(&format!(
                "SELECT {EVENT_COLUMNS} FROM {}.events WHERE site = ? AND session_id = ?",
                self.db
            ))
            .bind(site)
            .bind(session_id)
    }

    /// The sites that hold a session under `session_id`, in order.
    pub(super) fn session_sites(&self, session_id: &str, limit: usize) -> Query {
        self.client
            .query(&format!(
                "SELECT DISTINCT site FROM {}.sessions_agg WHERE session_id = ? \
                 ORDER BY site LIMIT {limit}",
                self.db
            ))
            .bind(session_id)
    }

    /// The newest `limit` events (of `site`, or of all), each once: its
    /// earliest arrival, as `fold_session` and a session's event pages keep
    /// it (which copy came first was arbitrary otherwise).
    pub(super) fn recent_events(&self, site: Option<&str>, limit: usize) -> Query {
        let mut binds = Vec::new();
        let filter = site_filter(site, &mut binds);
        self.bound(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM {}.events WHERE {filter} \
                 ORDER BY ts DESC, event_id DESC, received_at LIMIT 1 BY event_id LIMIT {limit}",
                self.db
            ),
            &binds,
        )
    }

    /// Up to `limit` open sessions last seen before `idle_before`, after
    /// `after`, in the sweep's order.
    pub(super) fn sweep(
        &self,
        idle_before: u64,
        after: Option<&SweepCursor>,
        limit: usize,
    ) -> Query {
        let sessions = sessions_read_sql(self.db, "1", None, SESSION_COLUMNS, None);
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM ({sessions}) \
             WHERE ended_at IS NULL AND last_seen_at < {idle_before} \
             AND (last_seen_at, site, session_id) > (?, ?, ?) \
             ORDER BY last_seen_at, site, session_id LIMIT {limit}"
        );
        let (seen, site, id) = after.map_or((0, "", ""), |c| {
            (c.last_seen_at, c.site.as_str(), c.session_id.as_str())
        });
        self.client.query(&sql).bind(seen).bind(site).bind(id)
    }

    /// The greatest activity key of each of the sessions `ids` of `sites`
    /// (site, session id, key), in no order.
    pub(super) fn last_activity_keys(&self, sites: &[&str], ids: &[&str]) -> Query {
        self.client
            .query(&format!(
                "SELECT site, session_id, max(event_key) FROM {}.events \
                 WHERE site IN (SELECT arrayJoin(?)) AND session_id IN (SELECT arrayJoin(?)) \
                 AND event_type != 'visit_ended' GROUP BY site, session_id",
                self.db
            ))
            .bind(sites)
            .bind(ids)
    }

    /// One page of the sessions list, `limit + 1` rows at most (the limit
    /// clamped to 1–500). Raw SQL, values as literals ([`sessions_page_sql`]).
    pub(super) fn sessions(&self, q: &SessionQuery) -> Query {
        let sql = sessions_page_sql(self.db, q, page_rows(q), None);
        self.client.query_raw(&sql)
    }

    /// The start of the `rows`-th newest flat row the sessions list `q`
    /// could show, and how many there were (up to `rows`): one row.
    pub(super) fn newest_start(&self, q: &SessionQuery, rows: usize) -> Query {
        self.client.query_raw(&newest_start_sql(
            self.db,
            q.site.as_deref(),
            newest_possible(q),
            rows,
        ))
    }

    /// One page of the sessions list `q` among the sessions that started
    /// at or after `since` ([`newest_start`](Self::newest_start)).
    pub(super) fn sessions_since(&self, q: &SessionQuery, since: u64) -> Query {
        let sql = sessions_page_sql(self.db, q, page_rows(q), Some(since));
        self.client.query_raw(&sql)
    }

    /// The statements of `/v1/stats` for `q`. Raw SQL, values as literals
    /// ([`stats_sql`]).
    pub(super) fn stats(&self, q: &StatsQuery) -> StatsReads {
        let [totals, sources, countries, pages, buckets] =
            stats_sql(self.db, q).map(|sql| self.client.query_raw(&sql));
        StatsReads {
            totals,
            sources,
            countries,
            pages,
            buckets,
        }
    }
}

impl ClickHouseStore {
    /// The statements on this store's client and database.
    fn reads(&self) -> Reads<'_> {
        Reads {
            client: &self.ch.client,
            db: &self.ch.db,
        }
    }

    /// One session, from `sessions_agg`: one row, however many events.
    pub(super) async fn session_now(
        &self,
        site: &str,
        session_id: &str,
    ) -> Result<Option<Session>, StoreError> {
        let query = self.reads().session(site, session_id);
        let rows = timed(query.fetch_all::<SessionRow>()).await?;
        Ok(rows.into_iter().next().map(Session::from))
    }

    /// A page of one session's events as [`fold_session`](crate::session::fold_session) keeps them, in
    /// SQL: each event once, the one `visit_ended` the session keeps (the
    /// least end key: the SDK's earliest, else the collector's), the
    /// collector's moved to the last activity when that is later. Asks
    /// ClickHouse for the kept end and last activity (one row), then for
    /// `limit + 1` events.
    pub(super) async fn session_events_now(
        &self,
        site: &str,
        session_id: &str,
        after: Option<EventCursor>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let limit = limit.clamp(1, MAX_EVENTS_PAGE);
        let reads = self.reads();
        let (end_key, last_activity): (String, u64) = timed(
            reads
                .session_end(site, session_id)
                .fetch_one::<(String, u64)>(),
        )
        .await?;
        let query = reads.session_events_page(
            site,
            session_id,
            (&end_key, last_activity),
            after.as_ref(),
            limit + 1,
        );
        let rows = timed(query.fetch_all::<EventRow>()).await?;
        let events = rows.into_iter().map(StoredEvent::from).collect();
        Ok(EventPage::from_overfetched(events, limit))
    }

    pub(super) async fn fetch_session_events(
        &self,
        site: &str,
        session_id: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let query = self.reads().session_rows(site, session_id);
        let rows = timed(query.fetch_all::<EventRow>()).await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    pub(super) async fn session_sites_now(
        &self,
        session_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        timed(
            self.reads()
                .session_sites(session_id, limit)
                .fetch_all::<String>(),
        )
        .await
    }

    pub(super) async fn recent_events_now(
        &self,
        site: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let query = self.reads().recent_events(site, limit);
        let rows = timed(query.fetch_all::<EventRow>()).await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    pub(super) async fn sweep_now(
        &self,
        now: u64,
        idle_before: u64,
        after: Option<SweepCursor>,
        limit: usize,
    ) -> Result<SweepPage, StoreError> {
        let reads = self.reads();
        // One row per session: the session as `sessions_agg` has it…
        let query = reads.sweep(idle_before, after.as_ref(), limit);
        let found: Vec<Session> = timed(query.fetch_all::<SessionRow>())
            .await?
            .into_iter()
            .map(Session::from)
            .collect();
        let next = (found.len() >= limit)
            .then(|| found.last())
            .flatten()
            .map(|s| SweepCursor {
                last_seen_at: s.last_seen_at,
                site: s.site.clone(),
                session_id: s.session_id.clone(),
            });
        if found.is_empty() {
            return Ok(SweepPage { closed: 0, next });
        }
        // …and the key of its last activity (the end is numbered after its
        // `seq`), the greatest: never the events themselves.
        let sites: BTreeSet<&str> = found.iter().map(|s| s.site.as_str()).collect();
        let sites: Vec<&str> = sites.into_iter().collect();
        let ids: Vec<&str> = found.iter().map(|s| s.session_id.as_str()).collect();
        let query = reads.last_activity_keys(&sites, &ids);
        let last_keys: HashMap<(String, String), String> =
            timed(query.fetch_all::<(String, String, String)>())
                .await?
                .into_iter()
                .map(|(site, id, key)| ((site, id), key))
                .collect();
        let ends: Vec<StoredEvent> = found
            .into_iter()
            .map(|session| {
                let last = last_keys
                    .get(&(session.site.clone(), session.session_id.clone()))
                    .cloned()
                    .map(EventKey);
                let state = SessionState {
                    session,
                    keys: MergeKeys {
                        last,
                        ..MergeKeys::default()
                    },
                };
                collector_visit_ended(&state, now)
            })
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
        Ok(SweepPage { closed, next })
    }

    pub(super) async fn stats_now(&self, q: StatsQuery) -> Result<Stats, StoreError> {
        let site = q.site.clone();
        let q = match self
            .mirrored()
            .answer(site.as_deref(), q, answer::stats)
            .await?
        {
            Ok(answered) => return Ok(answered),
            Err(q) => q,
        };
        let reads = self.reads().stats(&q);
        // Side by side: each reads the same sessions, and ClickHouse 18.16
        // merges a `FINAL` read on one thread.
        let (totals, sources, countries, top_pages, buckets) = tokio::try_join!(
            timed(reads.totals.fetch_one::<Totals>()),
            timed(reads.sources.fetch_all::<KeyCountRow>()),
            timed(reads.countries.fetch_all::<KeyCountRow>()),
            timed(reads.pages.fetch_all::<KeyCountRow>()),
            timed(reads.buckets.fetch_all::<BucketRow>()),
        )?;
        let sources = sources.into_iter().map(KeyCount::from).collect();
        let countries = countries.into_iter().map(KeyCount::from).collect();
        let top_pages = top_pages.into_iter().map(KeyCount::from).collect();
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
            top_pages,
            sources,
            countries,
            &counts,
        ))
    }

    /// A page of the sessions list, newest first. Sorting every session of
    /// the site for it took 1.8–2 s at 7 M events, so it first reads only
    /// the sessions that started since the start of the site's `rows`-th
    /// newest flat row (with those of the delta): up to a few hundred
    /// visits. That page is the page when [`newest_page_is_whole`] says
    /// so; otherwise a try with more rows, then every session.
    /// A person's sessions (`visitor_id`, `user_id`) are read whole at
    /// once: they are seldom among a site's newest.
    pub(super) async fn sessions_now(&self, q: SessionQuery) -> Result<SessionPage, StoreError> {
        let q = match self.mirrored().sessions(q).await? {
            Ok(page) => return Ok(page),
            Err(q) => q,
        };
        let reads = self.reads();
        let page = |rows: Vec<SessionRow>| {
            let sessions = rows.into_iter().map(Session::from).collect();
            SessionPage::from_overfetched(sessions, q.limit.clamp(1, MAX_SESSIONS_PAGE))
        };
        // A filter, or bots only, keeps few of the newest rows: such a
        // list starts with the larger try (0.31–0.38 s at 980 k visits
        // for `country:DE` with both).
        let tries = if q.filters.is_empty() && q.is_bot != Some(true) {
            &NEWEST_ROWS_PER_SESSION[..]
        } else {
            &NEWEST_ROWS_PER_SESSION[1..]
        };
        if q.visitor_id.is_none() && q.user_id.is_none() {
            for &per_session in tries {
                let rows = page_rows(&q) * per_session;
                let (since, seen) =
                    timed(reads.newest_start(&q, rows).fetch_one::<(u64, u64)>()).await?;
                let found =
                    timed(reads.sessions_since(&q, since).fetch_all::<SessionRow>()).await?;
                if newest_page_is_whole(&q, found.len(), (since, seen), rows) {
                    return Ok(page(found));
                }
            }
        }
        Ok(page(
            timed(reads.sessions(&q).fetch_all::<SessionRow>()).await?,
        ))
    }
}

/// The SQL of `/v1/stats`: the totals, the top sources, countries and
/// pages, and the visits per bucket.
pub(crate) fn stats_sql(db: &str, q: &StatsQuery) -> [String; 5] {
    let pick = Pick::read(
        db,
        &ReadQuery {
            site: q.site.clone(),
            from: q.from,
            to: q.to,
            include_bots: q.include_bots,
            filters: q.filters.clone(),
        },
    );
    let top = |column: &str| {
        format!(
            "SELECT assumeNotNull({column}) AS key, count() AS count FROM ({}) \
             WHERE isNotNull({column}) GROUP BY key ORDER BY count DESC, key LIMIT {TOP}",
            pick.sql(column)
        )
    };
    let width = q.interval.millis();
    [
        format!(
            "SELECT count(), uniqExact(visitor_id), toUInt64(sum(page_views)), \
             countIf(page_views <= 1), toUInt64(sum(duration_ms)) FROM ({})",
            pick.sql(COUNTED)
        ),
        top("source"),
        top("country"),
        format!(
            "SELECT u AS key, toUInt64(sum(n)) AS count FROM ({}) \
             ARRAY JOIN urls AS u, url_views AS n \
             GROUP BY key ORDER BY count DESC, key LIMIT {TOP}",
            pick.sql("urls, url_views")
        ),
        format!(
            "SELECT toUInt64(intDiv(started_at, {width}) * {width}) AS start, count() AS visits \
             FROM ({}) GROUP BY start",
            pick.sql("started_at")
        ),
    ]
}

/// The rows a page of the sessions list reads: one more than it shows,
/// to know whether a next page starts after it.
fn page_rows(q: &SessionQuery) -> usize {
    q.limit.clamp(1, MAX_SESSIONS_PAGE) + 1
}

/// The latest start a session on the list `q`'s page can have: before
/// `to`, and at most the cursor's.
fn newest_possible(q: &SessionQuery) -> Option<u64> {
    let before_to = q.to.map(|to| to.saturating_sub(1));
    let cursor = q.cursor.as_ref().map(|c| c.started_at);
    match (before_to, cursor) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether the `found` rows read from the sessions that started at or
/// after `since` are the list's page, where `since` is the start of the
/// `rows`-th newest flat row up to [`newest_possible`] and `seen` the rows
/// there were. Every session that started at or after `since` was read:
/// its current flat row started then, or it is in the delta. So the page
/// is whole when it is full (every session left out started earlier than
/// all of it), when fewer than `rows` rows were there (then `since` is 0),
/// or when the list's range begins at or after `since`.
fn newest_page_is_whole(
    q: &SessionQuery,
    found: usize,
    (since, seen): (u64, u64),
    rows: usize,
) -> bool {
    found >= page_rows(q) || seen < rows as u64 || q.from.is_some_and(|from| from >= since)
}

/// The SQL of one page of `/v1/sessions`, `limit` rows, newest first:
/// of every session, or of those that started at or after `since` (see
/// [`started_since_keys`]).
pub(crate) fn sessions_page_sql(
    db: &str,
    q: &SessionQuery,
    limit: usize,
    since: Option<u64>,
) -> String {
    let mut pick = Pick::new(db, q.site.as_deref());
    // Every session of the site (a person's, or a list the newest rows did
    // not fill): one statement over the site's flat rows, read in ranges.
    if since.is_none() {
        pick = pick.in_ranges();
    }
    if let Some(since) = since {
        pick.flat_key(started_since_keys(
            db,
            q.site.as_deref(),
            since,
            newest_possible(q),
        ));
        pick.and(format!("started_at >= {since}"));
    }
    if let Some(from) = q.from {
        pick.and(format!("started_at >= {from}"));
    }
    if let Some(to) = q.to {
        pick.and(format!("started_at < {to}"));
    }
    if let Some(visitor) = &q.visitor_id {
        pick.and(format!("visitor_id = {}", literal(visitor)));
    }
    if let Some(user) = &q.user_id {
        pick.and(format!("user_id = {}", literal(user)));
    }
    if let Some(is_bot) = q.is_bot {
        pick.and(format!("is_bot = {}", u8::from(is_bot)));
    }
    if let Some(cursor) = &q.cursor {
        pick.and(format!(
            "(started_at < {at} OR (started_at = {at} AND session_id < {id}))",
            at = cursor.started_at,
            id = literal(&cursor.session_id)
        ));
    }
    pick.filters(&q.filters);
    // One pass: picking the page's keys first and then reading only their
    // rows took twice as long on 18.16 when the keys were the page's 25
    // among every session.
    // The site last: one session id on two sites with one start (every
    // site's list) comes in one order, whichever branch each row is from.
    format!(
        "SELECT {SESSION_COLUMNS} FROM ({}) \
         ORDER BY started_at DESC, session_id DESC, site DESC LIMIT {limit}",
        pick.sql(SESSION_COLUMNS)
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Cursor;

    #[test]
    fn a_page_among_the_newest_sessions_is_the_page_only_when_nothing_older_can_be_on_it() {
        let q = SessionQuery {
            limit: 2,
            ..SessionQuery::default()
        };
        // Three rows read (a next page): whole, however many flat rows.
        assert!(newest_page_is_whole(&q, 3, (500, 12), 12));
        // Two: an older session could follow them.
        assert!(!newest_page_is_whole(&q, 2, (500, 12), 12));
        // Unless the flat rows ran out (the bound is then 0) ...
        assert!(newest_page_is_whole(&q, 2, (0, 11), 12));
        // ... or the range begins at or after 500.
        let from = |from| SessionQuery {
            from: Some(from),
            ..q.clone()
        };
        assert!(newest_page_is_whole(&from(500), 0, (500, 12), 12));
        assert!(!newest_page_is_whole(&from(499), 0, (500, 12), 12));
    }

    #[test]
    fn the_newest_start_a_page_can_hold_is_before_to_and_at_most_the_cursors() {
        let cursor = |started_at| {
            Some(Cursor {
                started_at,
                session_id: "s".to_owned(),
            })
        };
        let q = |to, cursor| SessionQuery {
            to,
            cursor,
            ..SessionQuery::default()
        };
        assert_eq!(newest_possible(&q(None, None)), None);
        assert_eq!(newest_possible(&q(Some(100), None)), Some(99));
        assert_eq!(newest_possible(&q(None, cursor(100))), Some(100));
        assert_eq!(newest_possible(&q(Some(100), cursor(50))), Some(50));
        assert_eq!(newest_possible(&q(Some(50), cursor(100))), Some(49));
        // The page's SQL reads the flat rows of the sessions that started
        // since the bound, up to the newest possible, and the delta's.
        let sql = sessions_page_sql("db", &q(Some(100), cursor(50)), 3, Some(7));
        let (flat, merged) = sql.split_once("UNION ALL").unwrap();
        let since = "(site, session_id) IN (SELECT site, session_id FROM db.sessions_flat \
                     WHERE 1 AND started_at >= 7 AND started_at <= 50)";
        assert!(flat.contains(since), "{flat}");
        assert!(!merged.contains(since), "{merged}");
        assert!(sql.contains(") WHERE started_at >= 7 AND"), "{sql}");
    }
}
