//! The read API's queries: sessions by filter, and stats.

use std::collections::HashMap;

use rusqlite::types::ToSql;
use rusqlite::Connection;

use super::rows::{session_from_row, SESSION_COLUMNS};
use crate::store::{
    page_key, Cursor, KeyCount, SessionPage, SessionQuery, Stats, StatsQuery, StoreError, TOP,
};

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

pub(super) fn list_sessions(
    conn: &Connection,
    q: &SessionQuery,
) -> Result<SessionPage, StoreError> {
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

pub(super) fn stats(conn: &Connection, q: &StatsQuery) -> Result<Stats, StoreError> {
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
            "SELECT e.url, COUNT(*) FROM events e \
             JOIN sessions s ON s.site = e.site AND s.session_id = e.session_id \
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
