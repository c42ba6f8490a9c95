//! The read API's and the sweeper's queries.

use std::collections::HashMap;

use super::rows::{
    BucketRow, EventRow, KeyCountRow, SessionRow, Totals, EVENT_COLUMNS, SESSION_COLUMNS,
};
use super::schema::sessions_sql;
use super::{timed, ClickHouseStore, REQUEST_TIMEOUT};
use crate::event::StoredEvent;
use crate::session::{collector_visit_ended, fold_session, Session};
use crate::store::{
    page_key, EventSink, KeyCount, SessionPage, SessionQuery, Stats, StatsQuery, StoreError,
    SweepCursor, SweepPage, TOP,
};

impl ClickHouseStore {
    pub(super) async fn fetch_session_events(
        &self,
        site: &str,
        session_id: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM {db}.events WHERE site = ? AND session_id = ?",
            db = self.ch.db
        );
        let rows = timed(
            self.ch
                .client
                .query(&sql)
                .bind(site)
                .bind(session_id)
                .fetch_all::<EventRow>(),
        )
        .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    pub(super) async fn session_sites_now(
        &self,
        session_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let sql = format!(
            "SELECT DISTINCT site FROM {}.sessions_agg WHERE session_id = ? \
             ORDER BY site LIMIT {limit}",
            self.ch.db
        );
        timed(
            self.ch
                .client
                .query(&sql)
                .bind(session_id)
                .fetch_all::<String>(),
        )
        .await
    }

    pub(super) async fn sweep_now(
        &self,
        now: u64,
        idle_before: u64,
        after: Option<SweepCursor>,
        limit: usize,
    ) -> Result<SweepPage, StoreError> {
        let sessions = sessions_sql(&self.ch.db, "1");
        let sql = format!(
            "SELECT last_seen_at, site, session_id FROM ({sessions}) \
             WHERE ended_at IS NULL AND last_seen_at < {idle_before} \
             AND (last_seen_at, site, session_id) > (?, ?, ?) \
             ORDER BY last_seen_at, site, session_id LIMIT {limit}"
        );
        let (after_seen, after_site, after_id) = after
            .map_or((0, String::new(), String::new()), |c| {
                (c.last_seen_at, c.site, c.session_id)
            });
        let found: Vec<(u64, String, String)> = timed(
            self.ch
                .client
                .query(&sql)
                .bind(after_seen)
                .bind(after_site)
                .bind(after_id)
                .fetch_all::<(u64, String, String)>(),
        )
        .await?;
        let next = (found.len() >= limit).then(|| found.last()).flatten().map(
            |(last_seen_at, site, session_id)| SweepCursor {
                last_seen_at: *last_seen_at,
                site: site.clone(),
                session_id: session_id.clone(),
            },
        );
        if found.is_empty() {
            return Ok(SweepPage { closed: 0, next });
        }
        let mut by_session: HashMap<(String, String), Vec<StoredEvent>> = found
            .into_iter()
            .map(|(_, site, id)| ((site, id), Vec::new()))
            .collect();
        let sites: Vec<&String> = by_session.keys().map(|(site, _)| site).collect();
        let ids: Vec<&String> = by_session.keys().map(|(_, id)| id).collect();
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM {}.events WHERE has(?, site) AND has(?, session_id)",
            self.ch.db
        );
        let rows = timed(
            self.ch
                .client
                .query(&sql)
                .bind(&sites)
                .bind(&ids)
                .fetch_all::<EventRow>(),
        )
        .await?;
        for row in rows {
            let event = StoredEvent::from(row);
            // Only the sessions found: not another site's under the same id.
            if let Some(events) =
                by_session.get_mut(&(event.site.clone(), event.session_id.clone()))
            {
                events.push(event);
            }
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
        Ok(SweepPage { closed, next })
    }

    pub(super) async fn stats_now(&self, q: StatsQuery) -> Result<Stats, StoreError> {
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
             AND (site, session_id) IN (SELECT site, session_id FROM ({in_range})) \
             GROUP BY url",
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

    pub(super) async fn sessions_now(&self, q: SessionQuery) -> Result<SessionPage, StoreError> {
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

/// `site = ?` with its value, or `1`.
pub(super) fn site_filter(site: Option<&str>, binds: &mut Vec<String>) -> String {
    match site {
        Some(site) => {
            binds.push(site.to_owned());
            "site = ?".to_owned()
        }
        None => "1".to_owned(),
    }
}
