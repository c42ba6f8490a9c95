//! Every statement the ClickHouse store sends, as the text ClickHouse gets,
//! for the tests that run them on other ClickHouse versions
//! (`ingest/tests/chdb.rs`: Debian's 18.16 and a current one in-process).
//! Built by the very functions the store runs them from (`schema.rs`,
//! `Reads` in `queries.rs`, the report builders of `reports.rs`), so a
//! change to the store's SQL is a change to what the tests run. Not part
//! of the collector's API.

use clickhouse::Client;

use super::flat::{compact_sql, stale_touched_sql};
use super::mirror::{bound_sql, delta_sql, logged_sql, mutations_sql, rows_sql};
use super::queries::Reads;
use super::reports::{
    breakdown_sql, funnel_sql, profile_sql, realtime_sql, timeseries_sql, visits_sql,
};
use super::rows::{EventRow, EVENT_COLUMNS};
use super::schema::{applied_version, bookkeeping, migrations, record_version};
use super::split::write_splits_sql;
use crate::event::StoredEvent;
use crate::read::{
    BreakdownQuery, Dimension, FunnelQuery, ProfileQuery, RealtimeQuery, TimeseriesQuery,
    REALTIME_WINDOW_MS,
};
use crate::store::{EventCursor, SessionQuery, StatsQuery, SweepCursor};

/// One statement as sent, values bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// What the store sends it for, e.g. `stats.sources`.
    pub name: &'static str,
    pub sql: String,
    /// Whether the order of its rows is part of the answer (it has an
    /// `ORDER BY` the store relies on); otherwise the store takes them as
    /// a set.
    pub ordered: bool,
}

/// A read the store makes, with the values it is made with.
#[derive(Debug, Clone)]
pub enum Read {
    /// One session (`GET /v1/sessions/{id}`).
    Session { site: String, session_id: String },
    /// The two statements of one page of a session's events: the kept end
    /// and last activity, then the page, here made with `end` (what the
    /// first answers, as the store would pass it on).
    SessionEvents {
        site: String,
        session_id: String,
        end: (String, u64),
        after: Option<EventCursor>,
        limit: usize,
    },
    /// Every stored row of a session (`events_for_session`).
    SessionRows { site: String, session_id: String },
    /// The sites holding a session id.
    SessionSites { session_id: String, limit: usize },
    /// The newest events.
    RecentEvents { site: Option<String>, limit: usize },
    /// The two statements of one sweep page: the idle sessions, then the
    /// last activity keys of `sessions` (site, session id), which the store
    /// takes from the first answer.
    Sweep {
        idle_before: u64,
        after: Option<SweepCursor>,
        limit: usize,
        sessions: Vec<(String, String)>,
    },
    /// The sessions list (`GET /v1/sessions`), every session read.
    Sessions(SessionQuery),
    /// The two statements of a page of the sessions list read among the
    /// newest sessions: the start of the `rows`-th newest flat row, then
    /// the page among the sessions started since `since` (what the first
    /// answers, as the store would pass it on).
    NewestSessions {
        query: SessionQuery,
        rows: usize,
        since: u64,
    },
    /// The five statements of `GET /v1/stats`.
    Stats(StatsQuery),
    /// `GET /v1/breakdown`: its rows, and for `event_name` the visits its
    /// conversion rates are of.
    Breakdown(BreakdownQuery),
    /// `GET /v1/timeseries`.
    Timeseries(TimeseriesQuery),
    /// The two statements of `GET /v1/realtime`: the visitors, their pages.
    Realtime(RealtimeQuery),
    /// `GET /v1/funnel`.
    Funnel(FunnelQuery),
    /// The totals of `GET /v1/visitors/{id}` and `GET /v1/users/{id}`.
    Profile(ProfileQuery),
    /// What the read mirror reads: the mutations it checks, the point the
    /// compactions vouch for, those logged and their flat rows since
    /// `since` (the build reads the same rows with no `WHERE`), and the
    /// delta of `site` since `bound`, versioned `version` (the store's
    /// reads take the server's clock).
    Mirror {
        site: Option<String>,
        since: u64,
        bound: u64,
        version: u64,
    },
}

/// The newest schema version, which a migrated database records.
pub fn latest_version() -> u32 {
    u32::try_from(migrations("db").len()).unwrap_or(u32::MAX)
}

/// The schema's statements in the order a first start runs them on an
/// empty server: the database and version table, the version found, every
/// migration step, each followed by its version's record (made at time 0).
/// A column a step adds is its `ALTER … ADD COLUMN`, as sent when the
/// column is missing (the store asks `system.columns` first).
pub fn schema(db: &str) -> Vec<String> {
    let mut statements: Vec<String> = bookkeeping(db).into();
    statements.push(applied_version(db));
    for (version, step) in (1u32..).zip(migrations(db)) {
        statements.extend(step.iter().map(|statement| statement.sql(db)));
        statements.push(record_version(db, version, 0));
    }
    statements
}

/// The statements of a compaction begun at `began_at` (epoch seconds)
/// vouching for every session touched before it, then the query for the
/// touched sessions' days it may drop, then the flat rows' cuts.
pub fn compaction(db: &str, began_at: u64) -> Vec<String> {
    let mut statements: Vec<String> = compact_sql(db, began_at, 0).into();
    statements.push(stale_touched_sql(db, began_at));
    statements.push(write_splits_sql(db));
    statements
}

/// The insert of `events` into `events`, as `JSONEachRow`: the columns
/// and values the store's `RowBinary` insert (which cannot be replayed as
/// text) writes for them.
pub fn insert(db: &str, events: &[StoredEvent]) -> Result<String, serde_json::Error> {
    let mut sql = format!("INSERT INTO {db}.events ({EVENT_COLUMNS}) FORMAT JSONEachRow\n");
    for event in events {
        sql.push_str(&serde_json::to_string(&EventRow::from(event))?);
        sql.push('\n');
    }
    Ok(sql)
}

/// The statements of `read` on database `db`.
pub fn statements(db: &str, read: &Read) -> Vec<Statement> {
    let client = Client::default();
    let reads = Reads {
        client: &client,
        db,
    };
    let one = |name, query: clickhouse::query::Query, ordered| Statement {
        name,
        sql: query.sql_display().to_string(),
        ordered,
    };
    // The read API's reports are sent raw, as built.
    let raw = |name, sql: String, ordered| Statement { name, sql, ordered };
    match read {
        Read::Session { site, session_id } => {
            vec![one("session", reads.session(site, session_id), false)]
        }
        Read::SessionEvents {
            site,
            session_id,
            end,
            after,
            limit,
        } => vec![
            one("session_end", reads.session_end(site, session_id), false),
            one(
                "session_events_page",
                reads.session_events_page(
                    site,
                    session_id,
                    (&end.0, end.1),
                    after.as_ref(),
                    *limit,
                ),
                true,
            ),
        ],
        Read::SessionRows { site, session_id } => {
            vec![one(
                "session_rows",
                reads.session_rows(site, session_id),
                false,
            )]
        }
        Read::SessionSites { session_id, limit } => vec![one(
            "session_sites",
            reads.session_sites(session_id, *limit),
            true,
        )],
        Read::RecentEvents { site, limit } => vec![one(
            "recent_events",
            reads.recent_events(site.as_deref(), *limit),
            true,
        )],
        Read::Sweep {
            idle_before,
            after,
            limit,
            sessions,
        } => {
            let sites: Vec<&str> = sessions.iter().map(|s| s.0.as_str()).collect();
            let ids: Vec<&str> = sessions.iter().map(|s| s.1.as_str()).collect();
            vec![
                one(
                    "sweep",
                    reads.sweep(*idle_before, after.as_ref(), *limit),
                    true,
                ),
                one(
                    "last_activity_keys",
                    reads.last_activity_keys(&sites, &ids),
                    false,
                ),
            ]
        }
        Read::Sessions(q) => vec![one("sessions", reads.sessions(q), true)],
        Read::NewestSessions { query, rows, since } => vec![
            one(
                "sessions.newest_start",
                reads.newest_start(query, *rows),
                false,
            ),
            one("sessions.since", reads.sessions_since(query, *since), true),
        ],
        Read::Stats(q) => {
            let stats = reads.stats(q);
            vec![
                one("stats.totals", stats.totals, false),
                one("stats.sources", stats.sources, true),
                one("stats.countries", stats.countries, true),
                one("stats.pages", stats.pages, true),
                one("stats.buckets", stats.buckets, false),
            ]
        }
        Read::Breakdown(q) => {
            let mut statements = vec![raw("breakdown", breakdown_sql(db, q), true)];
            if q.dimension == Dimension::EventName {
                statements.push(raw("breakdown.visits", visits_sql(db, &q.sessions), false));
            }
            statements
        }
        Read::Timeseries(q) => vec![raw("timeseries", timeseries_sql(db, q), false)],
        Read::Realtime(q) => {
            // At the window's end: through the sessions touched in it.
            let [visitors, pages] = realtime_sql(db, q, q.since + REALTIME_WINDOW_MS);
            vec![
                raw("realtime.visitors", visitors, false),
                raw("realtime.pages", pages, true),
            ]
        }
        Read::Funnel(q) => vec![raw("funnel", funnel_sql(db, q), false)],
        Read::Profile(q) => vec![raw("profile", profile_sql(db, q), false)],
        Read::Mirror {
            site,
            since,
            bound,
            version,
        } => {
            let [touched, sessions, pages] = delta_sql(db, site.as_deref(), *bound, Some(*version));
            vec![
                raw("mirror.mutations", mutations_sql(db), true),
                raw("mirror.bound", bound_sql(db), false),
                raw("mirror.logged", logged_sql(db, *since), false),
                raw("mirror.rows", rows_sql(db, Some(*since)), false),
                raw("mirror.touched", touched, false),
                raw("mirror.delta_sessions", sessions, false),
                raw("mirror.delta_pages", pages, false),
            ]
        }
    }
}

/// The `end_key` column the store writes for `event` (empty but for a
/// `visit_ended`): what [`Read::SessionEvents`]'s `end` holds.
pub fn end_key(event: &StoredEvent) -> String {
    EventRow::from(event).end_key
}
