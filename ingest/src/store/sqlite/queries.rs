//! The read API's queries: sessions by filter, one session's events a page
//! at a time, and stats; the SQL of the read API's filters
//! ([`Filter::add_read_filters`]), shared with [`super::reports`].

use std::collections::HashMap;

use rusqlite::types::ToSql;
use rusqlite::Connection;

use super::rows::{event_from_row, session_from_row, EVENTS_FROM, EVENT_SELECT, SESSION_SELECT};
use crate::read::{self, Dimension, ReadQuery};
use crate::store::{
    Cursor, EventCursor, EventPage, KeyCount, SessionPage, SessionQuery, Stats, StatsQuery,
    StoreError, MAX_EVENTS_PAGE, TOP,
};

/// SQL conditions and their parameters, built up filter by filter.
#[derive(Default)]
pub(super) struct Filter {
    clauses: Vec<String>,
    params: Vec<Box<dyn ToSql>>,
}

/// The column of `sessions s` a dimension of one value per visit is kept
/// in; `None` for `page` and `event_name`, which are the visit's events'.
pub(super) fn session_column(dimension: Dimension) -> Option<String> {
    dimension
        .session_column()
        .map(|column| format!("s.{column}"))
}

/// The events of the session `s`: `e`, joined or in a subquery.
pub(super) const EVENTS_OF_S: &str = "e.site = s.site AND e.session_id = s.session_id";

impl Filter {
    /// The conditions of a [`ReadQuery`] on `sessions s`.
    pub(super) fn of(q: &ReadQuery) -> Filter {
        Filter::started_in(q.from, q.to).and_read(q.site.as_deref(), q.include_bots, &q.filters)
    }

    /// Sessions `s` started in `[from, to)`.
    pub(super) fn started_in(from: u64, to: u64) -> Filter {
        let mut f = Filter::default();
        f.add("s.started_at >= ?", vec![Box::new(from)]);
        f.add("s.started_at < ?", vec![Box::new(to)]);
        f
    }

    /// What every read adds to its time bounds: the site (all sites when
    /// `None`), bots left out unless `include_bots`, and the `filters`.
    pub(super) fn and_read(
        mut self,
        site: Option<&str>,
        include_bots: bool,
        filters: &[read::Filter],
    ) -> Filter {
        if let Some(site) = site {
            self.add("s.site = ?", vec![Box::new(site.to_owned())]);
        }
        if !include_bots {
            self.add("s.is_bot = 0", vec![]);
        }
        self.add_read_filters(filters);
        self
    }

    /// `filter=dimension:value` on `sessions s`: a column equal to the
    /// value, or for `page` and `event_name` any page view or custom event
    /// of the session with it.
    pub(super) fn add_read_filters(&mut self, filters: &[read::Filter]) {
        for filter in filters {
            let value = Box::new(filter.value.clone());
            match (session_column(filter.dimension), filter.dimension) {
                (Some(column), _) => self.add(&format!("{column} = ?"), vec![value]),
                (None, Dimension::Page) => self.add(
                    &format!(
                        "EXISTS (SELECT 1 FROM events e WHERE {EVENTS_OF_S} \
                         AND e.type = 'page_view' AND e.path = ?)"
                    ),
                    vec![value],
                ),
                (None, _) => self.add(
                    &format!(
                        "EXISTS (SELECT 1 FROM events e WHERE {EVENTS_OF_S} \
                         AND e.type = 'custom' AND e.name = ?)"
                    ),
                    vec![value],
                ),
            }
        }
    }

    /// A parameter for SQL written around the conditions: its placeholder.
    pub(super) fn bind(&mut self, value: Box<dyn ToSql>) -> String {
        self.params.push(value);
        format!("?{}", self.params.len())
    }

    /// `clause` with one `?` per value; each becomes a numbered parameter.
    pub(super) fn add(&mut self, clause: &str, values: Vec<Box<dyn ToSql>>) {
        let mut pieces = clause.split('?');
        let mut numbered = pieces.next().unwrap_or_default().to_owned();
        for (value, piece) in values.into_iter().zip(pieces) {
            self.params.push(value);
            numbered.push_str(&format!("?{}{piece}", self.params.len()));
        }
        self.clauses.push(numbered);
    }

    pub(super) fn sql(&self) -> String {
        if self.clauses.is_empty() {
            "1".to_owned()
        } else {
            self.clauses.join(" AND ")
        }
    }

    pub(super) fn params(&self) -> Vec<&dyn ToSql> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &dyn ToSql)
            .collect()
    }
}

/// `s.site = ?`, or, where a person's index (`visitor_id` or `user_id`, then
/// `started_at`) finds the rows, `+s.site = ?`: the unary `+` keeps SQLite
/// from taking the site's index instead, which walks every session of the
/// site (seconds at a million sessions) to find a person's few.
pub(super) fn site_clause(by_person: bool) -> &'static str {
    if by_person {
        "+s.site = ?"
    } else {
        "s.site = ?"
    }
}

/// The SQL of a page of [`list_sessions`], with its parameters.
pub(super) fn list_sessions_sql(q: &SessionQuery) -> (String, Filter) {
    let mut f = Filter::default();
    if let Some(site) = &q.site {
        let by_person = q.visitor_id.is_some() || q.user_id.is_some();
        f.add(site_clause(by_person), vec![Box::new(site.clone())]);
    }
    if let Some(from) = q.from {
        f.add("s.started_at >= ?", vec![Box::new(from)]);
    }
    if let Some(to) = q.to {
        f.add("s.started_at < ?", vec![Box::new(to)]);
    }
    if let Some(visitor) = &q.visitor_id {
        f.add("s.visitor_id = wm_pack(?)", vec![Box::new(visitor.clone())]);
    }
    if let Some(user) = &q.user_id {
        f.add("s.user_id = ?", vec![Box::new(user.clone())]);
    }
    if let Some(is_bot) = q.is_bot {
        f.add("s.is_bot = ?", vec![Box::new(is_bot)]);
    }
    if let Some(Cursor {
        started_at,
        session_id,
    }) = &q.cursor
    {
        f.add(
            "(s.started_at < ? OR (s.started_at = ? AND s.session_id < wm_pack(?)))",
            vec![
                Box::new(*started_at),
                Box::new(*started_at),
                Box::new(session_id.clone()),
            ],
        );
    }
    f.add_read_filters(&q.filters);
    let sql = format!(
        "SELECT {SESSION_SELECT} FROM sessions s WHERE {} \
         ORDER BY s.started_at DESC, s.session_id DESC, s.site DESC LIMIT {}",
        f.sql(),
        q.limit.clamp(1, 500) + 1
    );
    (sql, f)
}

pub(super) fn list_sessions(
    conn: &Connection,
    q: &SessionQuery,
) -> Result<SessionPage, StoreError> {
    let (sql, f) = list_sessions_sql(q);
    let mut stmt = conn.prepare(&sql)?;
    let sessions = stmt
        .query_map(f.params().as_slice(), session_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SessionPage::from_overfetched(
        sessions,
        q.limit.clamp(1, 500),
    ))
}

/// The SQL of [`session_events`], with its parameters.
pub(super) fn session_events_sql(
    site: &str,
    session_id: &str,
    after: Option<&EventCursor>,
    limit: usize,
) -> (String, Filter) {
    let mut f = Filter::default();
    f.add("site = ?", vec![Box::new(site.to_owned())]);
    f.add(
        "session_id = wm_pack(?)",
        vec![Box::new(session_id.to_owned())],
    );
    if let Some(c) = after {
        // `ts >= ?` lets the (site, session_id, ts) index narrow the scan.
        f.add(
            "ts >= ? AND (ts, ifnull(seq, -1), event_id) > (?, ?, wm_pack(?))",
            vec![
                Box::new(c.ts),
                Box::new(c.ts),
                Box::new(c.seq_rank()),
                Box::new(c.event_id.clone()),
            ],
        );
    }
    let sql = format!(
        "SELECT {EVENT_SELECT} FROM {EVENTS_FROM} WHERE {} \
         ORDER BY ts, ifnull(seq, -1), event_id LIMIT {}",
        f.sql(),
        limit.clamp(1, MAX_EVENTS_PAGE) + 1
    );
    (sql, f)
}

/// Up to `limit` events of a session after `after`, by `ts`, `seq` (none
/// first) and `event_id`: one more is read to learn whether a page follows.
pub(super) fn session_events(
    conn: &Connection,
    site: &str,
    session_id: &str,
    after: Option<&EventCursor>,
    limit: usize,
) -> Result<EventPage, StoreError> {
    let (sql, f) = session_events_sql(site, session_id, after, limit);
    let mut stmt = conn.prepare(&sql)?;
    let events = stmt
        .query_map(f.params().as_slice(), event_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EventPage::from_overfetched(
        events,
        limit.clamp(1, MAX_EVENTS_PAGE),
    ))
}

/// `page_key` in SQL: the URL `url` (SQL) up to its first `?` or `#`.
pub(super) fn page_key_sql(url: &str) -> String {
    format!("substr({url}, 1, min(instr({url} || '?', '?'), instr({url} || '#', '#')) - 1)")
}

/// The [`TOP`] pages by page views among the sessions `filter` (on `s`)
/// picks, ranked in SQL (ties by page, bytewise): the answer is ten rows
/// however many distinct URLs the range holds.
pub(super) fn top_pages_sql(filter: &str) -> String {
    let page = page_key_sql(&super::compact::url_of("e.site", "e.url"));
    format!(
        "SELECT {page} AS page, COUNT(*) AS n \
         FROM events e JOIN sessions s ON s.site = e.site AND s.session_id = e.session_id \
         WHERE {filter} AND e.type = 'page_view' GROUP BY page ORDER BY n DESC, page LIMIT {TOP}"
    )
}

pub(super) fn stats(conn: &Connection, q: &StatsQuery) -> Result<Stats, StoreError> {
    let f =
        Filter::started_in(q.from, q.to).and_read(q.site.as_deref(), q.include_bots, &q.filters);
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

    let top_pages = {
        let mut stmt = conn.prepare(&top_pages_sql(&filter))?;
        let rows = stmt.query_map(params.as_slice(), |r| {
            Ok(KeyCount {
                key: r.get(0)?,
                count: r.get(1)?,
            })
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
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
        top_pages,
        sources,
        countries,
        &counts,
    ))
}
