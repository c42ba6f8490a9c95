//! The read API's questions of [`crate::read`] in SQL: breakdowns,
//! timeseries, realtime, funnels and profile totals. Every one reads the
//! `sessions` table (one row per visit) and, for pages and custom events,
//! the visits' events through the `(site, session_id, ts)` index.

use rusqlite::{Connection, Row};

use super::queries::{session_column, site_clause, Filter, EVENTS_OF_S};
use crate::read::{
    ratio, Breakdown, BreakdownQuery, BreakdownRow, Counts, Dimension, Funnel, FunnelQuery,
    FunnelStep, FunnelStepCount, Metrics, PageVisitors, Person, ProfileQuery, ProfileTotals,
    Realtime, RealtimeQuery, Timeseries, TimeseriesQuery,
};
use crate::store::StoreError;

/// The [`Counts`] of the sessions `s` a query groups: visits, visitors,
/// page views, bounces, mean duration.
const COUNTS: &str = "COUNT(*), COUNT(DISTINCT s.visitor_id), COALESCE(SUM(s.page_views), 0), \
     COALESCE(SUM(s.page_views <= 1), 0), COALESCE(AVG(s.duration_ms), 0)";

/// [`COUNTS`] from the row's columns `at..at + 5`.
fn counts(row: &Row<'_>, at: usize) -> rusqlite::Result<Counts> {
    Ok(Counts {
        visits: row.get(at)?,
        visitors: row.get(at + 1)?,
        page_views: row.get(at + 2)?,
        bounces: row.get(at + 3)?,
        avg_duration_ms: row.get(at + 4)?,
    })
}

/// An event's place in the order sessions are merged by (time, `seq`,
/// `event_id`: [`EventKey`](crate::session::EventKey)), as text that sorts
/// the same way.
const EVENT_ORDER: &str = "printf('%016x%08x%s', e.ts, ifnull(e.seq, 0), wm_text(e.event_id))";

pub(super) fn breakdown(conn: &Connection, q: &BreakdownQuery) -> Result<Breakdown, StoreError> {
    let f = Filter::of(&q.sessions);
    let limit = q.limit;
    let filter = f.sql();
    // Per visit and key first (its page views of a page, its events of a
    // name), then per key.
    let per_visit = |kind: &str, column: &str| {
        format!(
            "WITH v AS (SELECT {column} AS k, s.visitor_id AS visitor_id, \
             s.page_views AS page_views, s.duration_ms AS duration_ms, COUNT(*) AS n \
             FROM sessions s JOIN events e ON {EVENTS_OF_S} \
             WHERE {filter} AND e.type = '{kind}' AND {column} IS NOT NULL \
             GROUP BY s.site, s.session_id, {column}) "
        )
    };
    let sql = match (session_column(q.dimension), q.dimension) {
        (Some(column), _) => format!(
            "SELECT {column} AS k, {COUNTS}, 0 FROM sessions s \
             WHERE {filter} AND {column} IS NOT NULL \
             GROUP BY k ORDER BY 2 DESC, k LIMIT {limit}"
        ),
        // A page's page views are its own.
        (None, Dimension::Page) => format!(
            "{} SELECT k, COUNT(*), COUNT(DISTINCT visitor_id), SUM(n), SUM(page_views <= 1), \
             AVG(duration_ms), 0 FROM v GROUP BY k ORDER BY 2 DESC, k LIMIT {limit}",
            per_visit("page_view", "e.path")
        ),
        (None, _) => format!(
            "{} SELECT k, COUNT(*), COUNT(DISTINCT visitor_id), SUM(page_views), \
             SUM(page_views <= 1), AVG(duration_ms), SUM(n) FROM v \
             GROUP BY k ORDER BY 2 DESC, k LIMIT {limit}",
            per_visit("custom", "e.name")
        ),
    };
    let params = f.params();
    let goals = q.dimension == Dimension::EventName;
    let all_visits: u64 = if goals {
        conn.query_row(
            &format!("SELECT COUNT(*) FROM sessions s WHERE {filter}"),
            params.as_slice(),
            |r| r.get(0),
        )?
    } else {
        0
    };
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(params.as_slice(), |r| {
            let c = counts(r, 1)?;
            let events: u64 = r.get(6)?;
            Ok(BreakdownRow {
                key: r.get(0)?,
                metrics: Metrics::from(c),
                events: goals.then_some(events),
                conversion_rate: goals.then(|| ratio(c.visits, all_visits)),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Breakdown {
        site: q.sessions.site.clone(),
        from: q.sessions.from,
        to: q.sessions.to,
        dimension: q.dimension,
        rows,
    })
}

pub(super) fn timeseries(conn: &Connection, q: &TimeseriesQuery) -> Result<Timeseries, StoreError> {
    let f = Filter::of(&q.sessions);
    let width = q.interval.millis();
    let sql = format!(
        "SELECT (s.started_at / {width}) * {width} AS b, {COUNTS} FROM sessions s \
         WHERE {} GROUP BY b",
        f.sql()
    );
    let mut stmt = conn.prepare(&sql)?;
    let counted = stmt
        .query_map(f.params().as_slice(), |r| Ok((r.get(0)?, counts(r, 1)?)))?
        .collect::<Result<Vec<(u64, Counts)>, _>>()?;
    let s = &q.sessions;
    Ok(Timeseries::fill(
        s.site.clone(),
        s.from,
        s.to,
        q.interval,
        &counted,
    ))
}

pub(super) fn realtime(conn: &Connection, q: &RealtimeQuery) -> Result<Realtime, StoreError> {
    let mut f = Filter::default();
    f.add("s.last_seen_at >= ?", vec![Box::new(q.since)]);
    let f = f.and_read(q.site.as_deref(), q.include_bots, &q.filters);
    let filter = f.sql();
    let params = f.params();
    let visitors: u64 = conn.query_row(
        &format!("SELECT COUNT(DISTINCT s.visitor_id) FROM sessions s WHERE {filter}"),
        params.as_slice(),
        |r| r.get(0),
    )?;
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare(&format!(
        "SELECT s.exit_path AS k, COUNT(DISTINCT s.visitor_id) AS n FROM sessions s \
         WHERE {filter} AND s.exit_path IS NOT NULL GROUP BY k ORDER BY n DESC, k LIMIT {limit}"
    ))?;
    let pages = stmt
        .query_map(params.as_slice(), |r| {
            Ok(PageVisitors {
                key: r.get(0)?,
                visitors: r.get(1)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Realtime {
        site: q.site.clone(),
        since: q.since,
        visitors,
        pages,
    })
}

/// Each step finds, per visit that reached the one before, the earliest
/// matching event after that step's event ([`EVENT_ORDER`]); the earliest
/// match is the one that leaves the most room for the steps after it.
pub(super) fn funnel(conn: &Connection, q: &FunnelQuery) -> Result<Funnel, StoreError> {
    let mut f = Filter::of(&q.sessions);
    let mut sql = format!(
        "WITH r0 AS (SELECT s.site AS site, s.session_id AS session_id, \
         s.visitor_id AS visitor_id, '' AS k FROM sessions s WHERE {})",
        f.sql()
    );
    for (i, step) in q.steps.iter().enumerate() {
        let matches = match step {
            FunnelStep::Page(path) => format!(
                "e.type = 'page_view' AND e.path = {}",
                f.bind(Box::new(path.clone()))
            ),
            FunnelStep::Event(name) => format!(
                "e.type = 'custom' AND e.name = {}",
                f.bind(Box::new(name.clone()))
            ),
        };
        sql.push_str(&format!(
            ", r{n} AS (SELECT p.site AS site, p.session_id AS session_id, \
             p.visitor_id AS visitor_id, \
             (SELECT MIN({EVENT_ORDER}) FROM events e WHERE e.site = p.site \
              AND e.session_id = p.session_id AND {matches} AND {EVENT_ORDER} > p.k) AS k \
             FROM r{i} p WHERE p.k IS NOT NULL)",
            n = i + 1
        ));
    }
    let counts = (1..=q.steps.len())
        .map(|n| {
            format!(
                "SELECT {n}, COUNT(k), COUNT(DISTINCT CASE WHEN k IS NOT NULL \
                 THEN visitor_id END) FROM r{n}"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    sql.push(' ');
    sql.push_str(&counts);
    let mut stmt = conn.prepare(&sql)?;
    let mut reached = stmt
        .query_map(f.params().as_slice(), |r| {
            Ok((
                r.get::<_, usize>(0)?,
                r.get::<_, u64>(1)?,
                r.get::<_, u64>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    reached.sort_unstable();
    let first = reached.first().map_or(0, |r| r.1);
    let steps = q
        .steps
        .iter()
        .zip(reached)
        .map(|(step, (n, visits, visitors))| FunnelStepCount {
            step: n,
            key: step.key(),
            visits,
            visitors,
            conversion_rate: ratio(visits, first),
        })
        .collect();
    let s = &q.sessions;
    Ok(Funnel {
        site: s.site.clone(),
        from: s.from,
        to: s.to,
        steps,
    })
}

/// The SQL of a person's totals and of their linked ids (the other kind:
/// a visitor's user ids, a user's visitor ids), with their parameters.
pub(super) fn profile_sql(q: &ProfileQuery) -> (String, String, Filter) {
    let mut f = Filter::default();
    let linked = match &q.person {
        Person::Visitor(id) => {
            f.add("s.visitor_id = wm_pack(?)", vec![Box::new(id.clone())]);
            "s.user_id"
        }
        Person::User(id) => {
            f.add("s.user_id = ?", vec![Box::new(id.clone())]);
            "wm_text(s.visitor_id)"
        }
    };
    if let Some(site) = &q.site {
        f.add(site_clause(true), vec![Box::new(site.clone())]);
    }
    if let Some(from) = q.from {
        f.add("s.started_at >= ?", vec![Box::new(from)]);
    }
    if let Some(to) = q.to {
        f.add("s.started_at < ?", vec![Box::new(to)]);
    }
    let filter = f.sql();
    let totals = format!(
        "SELECT COUNT(*), COALESCE(MIN(s.started_at), 0), COALESCE(MAX(s.last_seen_at), 0), \
         COALESCE(SUM(s.page_views), 0), COALESCE(SUM(s.event_count), 0), \
         COALESCE(SUM(s.duration_ms), 0) FROM sessions s WHERE {filter}"
    );
    let linked = format!(
        "SELECT DISTINCT {linked} FROM sessions s WHERE {filter} AND {linked} IS NOT NULL \
         ORDER BY 1"
    );
    (totals, linked, f)
}

pub(super) fn profile_totals(
    conn: &Connection,
    q: &ProfileQuery,
) -> Result<Option<ProfileTotals>, StoreError> {
    let (totals, linked, f) = profile_sql(q);
    let params = f.params();
    let totals = conn.query_row(&totals, params.as_slice(), |r| {
        Ok(ProfileTotals {
            visits: r.get(0)?,
            first_seen: r.get(1)?,
            last_seen: r.get(2)?,
            page_views: r.get(3)?,
            events: r.get(4)?,
            duration_ms: r.get(5)?,
            linked: Vec::new(),
        })
    })?;
    if totals.visits == 0 {
        return Ok(None);
    }
    let mut stmt = conn.prepare(&linked)?;
    let linked = stmt
        .query_map(params.as_slice(), |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(Some(ProfileTotals { linked, ..totals }))
}
