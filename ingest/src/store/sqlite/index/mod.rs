//! The SQLite store's read index: the `sessions` table and the page views
//! and custom events of every session, held in memory as the shared
//! [`Columns`], so that the read API's aggregate questions (stats,
//! breakdowns, timeseries, funnels) are answered by scanning arrays instead
//! of SQL over the tables (see [`answer`](crate::store::columns::answer)).
//!
//! It is built at open from the tables by a background thread; until it is
//! ready the store answers in SQL. The writer keeps it current: after each
//! commit it overwrites the rows of the sessions the commit changed and adds
//! their new page views and custom events in the order the SQL reads them
//! (`ts`, `seq`, `event_id`). The commit and that update happen under one
//! gate, which the builder also takes to start its snapshot, so every
//! commit is either in the snapshot or replayed after it, never both.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::Instant;

use rusqlite::{params, Connection};

use crate::metrics::StoreMetrics;
use crate::store::columns::{order_key, row_dimension_columns, OrderKey, Step};
pub(super) use crate::store::columns::{url_key, Columns, EventRow, SessionRow};
use crate::store::lock;

/// What one commit changed: the sessions it removed (retention, erasure)
/// and the visitor ids it erased, taken in first, then the sessions it
/// wrote and the events it added.
#[derive(Debug, Default)]
pub(super) struct Changes {
    pub sessions: Vec<SessionRow>,
    pub events: Vec<EventRow>,
    /// Sessions removed, by site and session id.
    pub removed: Vec<(String, String)>,
    /// Visitor ids erased: forgotten by the index's dictionary too.
    pub forgotten: Vec<String>,
}

impl Changes {
    /// Records that these sessions were removed after what is recorded so
    /// far: drops what was recorded of them (it is gone from the tables).
    pub(super) fn remove(&mut self, keys: &[(String, String)], visitors: &[String]) {
        let gone: HashSet<(&str, &str)> = keys
            .iter()
            .map(|(site, id)| (site.as_str(), id.as_str()))
            .collect();
        self.sessions
            .retain(|s| !gone.contains(&(s.site.as_str(), s.session_id.as_str())));
        self.events
            .retain(|e| !gone.contains(&(e.site.as_str(), e.session_id.as_str())));
        self.removed.extend(keys.iter().cloned());
        self.forgotten.extend(visitors.iter().cloned());
    }
}

/// `page_views` and `custom` events in the order the SQL reads them.
const EVENT_ORDER: &str = "ORDER BY ts, ifnull(seq, 0), event_id";

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    let kind: String = r.get(2)?;
    let url: String = r.get(5)?;
    Ok(EventRow {
        site: r.get(0)?,
        session_id: r.get(1)?,
        is_page: kind == "page_view",
        path: r.get(3)?,
        url_key: url_key(&url).to_owned(),
        name: r.get(4)?,
        ts: r.get(6)?,
        seq: r.get(7)?,
        event_id: r.get(8)?,
    })
}

/// What [`event_row`] reads, the URL whole
/// ([`url_of`](super::compact::url_of)).
fn event_select() -> String {
    format!(
        "SELECT site, wm_text(session_id), type, path, name, {}, ts, seq, wm_text(event_id) \
         FROM events",
        super::compact::url_of("site", "url")
    )
}

/// One session's page views and custom events, in order.
fn session_events(conn: &Connection, site: &str, id: &str) -> rusqlite::Result<Vec<EventRow>> {
    let sql = format!(
        "{} WHERE site = ?1 AND session_id = wm_pack(?2) \
         AND type IN ('page_view', 'custom') {EVENT_ORDER}",
        event_select()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![site, id], event_row)?;
    rows.collect()
}

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    let mut dims: [Option<String>; 15] = Default::default();
    for (c, dim) in dims.iter_mut().enumerate() {
        *dim = r.get(7 + c)?;
    }
    Ok(SessionRow {
        site: r.get(0)?,
        session_id: r.get(1)?,
        visitor_id: r.get(2)?,
        started_at: r.get(3)?,
        duration_ms: r.get(4)?,
        page_views: r.get(5)?,
        is_bot: r.get(6)?,
        dims,
    })
}

/// Reads the whole index from the tables (in the caller's transaction).
fn load(conn: &Connection) -> rusqlite::Result<Columns> {
    let mut columns = Columns::new();
    let sql = format!(
        "SELECT site, wm_text(session_id), wm_text(visitor_id), started_at, duration_ms, \
         page_views, is_bot, \
         {} FROM sessions",
        row_dimension_columns()
    );
    let mut stmt = conn.prepare(&sql)?;
    for row in stmt.query_map([], session_row)? {
        columns.put(&row?);
    }
    // Every event in table order, then each session's sorted; an order the
    // keys cannot tell (same time, seq and id prefix) is read again in SQL.
    let mut pending: Vec<Vec<(OrderKey, Step)>> = vec![Vec::new(); columns.len()];
    let mut stmt = conn.prepare(&format!(
        "{} WHERE type IN ('page_view', 'custom')",
        event_select()
    ))?;
    for e in stmt.query_map([], event_row)? {
        let e = e?;
        if let Some(row) = columns.row_of(&e.site, &e.session_id) {
            let step = columns.step(&e);
            pending[row as usize].push((order_key(e.ts, e.seq, &e.event_id), step));
        }
    }
    let mut unclear = HashSet::new();
    columns.steps.reserve(pending.iter().map(Vec::len).sum());
    for (row, mut events) in pending.into_iter().enumerate() {
        events.sort_unstable_by_key(|(k, _)| *k);
        if events.windows(2).any(|w| w[0].0 == w[1].0) {
            unclear.insert(row);
        }
        columns.events += events.len();
        columns.last[row] = events.last().map(|(k, _)| *k);
        columns.steps.set(row, events.into_iter().map(|(_, s)| s));
    }
    let mut keys = Vec::new();
    for (site, sessions) in columns.by_key.iter().enumerate() {
        for (id, row) in sessions {
            if unclear.contains(&(*row as usize)) {
                keys.push((site, id.clone()));
            }
        }
    }
    for (site, id) in keys {
        let site = columns
            .sites
            .name(u32::try_from(site).unwrap_or(u32::MAX))
            .to_owned();
        let events = session_events(conn, &site, &id)?;
        columns.set_steps(&site, &id, &events);
    }
    Ok(columns)
}

/// What the store shares with the writer and the builder.
#[derive(Debug)]
pub(crate) struct ReadIndex {
    columns: RwLock<Columns>,
    ready: AtomicBool,
    /// Held by the writer from its commit until the index has taken it in;
    /// holds the commits the builder has not yet replayed while it runs.
    gate: Mutex<Option<Vec<Changes>>>,
    metrics: StoreMetrics,
}

/// The gate, held: see [`ReadIndex::gate`].
pub(super) struct Gate<'a> {
    index: &'a ReadIndex,
    pending: MutexGuard<'a, Option<Vec<Changes>>>,
}

impl Gate<'_> {
    /// Takes in a commit's changes (call once it has committed); `conn`
    /// reads back a session whose new events are not all after its last.
    pub(super) fn apply(mut self, conn: &Connection, changes: Changes) {
        if let Some(pending) = self.pending.as_mut() {
            pending.push(changes);
            return;
        }
        let mut columns = self
            .index
            .columns
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if let Err(err) = apply(&mut columns, conn, changes) {
            tracing::error!(error = %err, "read index update failed; reads use SQL");
            self.index.ready.store(false, Ordering::Release);
            self.index.metrics.read_index_ready.set(0);
        }
        self.index
            .metrics
            .read_index_bytes
            .set(i64::try_from(columns.bytes()).unwrap_or(i64::MAX));
    }
}

fn apply(columns: &mut Columns, conn: &Connection, changes: Changes) -> rusqlite::Result<()> {
    take_removals(columns, &changes);
    for s in &changes.sessions {
        columns.put(s);
    }
    let mut reread = HashSet::new();
    for e in &changes.events {
        if reread.contains(&(e.site.as_str(), e.session_id.as_str())) {
            continue;
        }
        if !columns.append(e) {
            reread.insert((e.site.as_str(), e.session_id.as_str()));
        }
    }
    for (site, id) in reread {
        let events = session_events(conn, site, id)?;
        columns.set_steps(site, id, &events);
    }
    Ok(())
}

/// The sessions and visitor ids a commit removed, out of the columns.
fn take_removals(columns: &mut Columns, changes: &Changes) {
    for (site, id) in &changes.removed {
        columns.remove(site, id);
    }
    for visitor in &changes.forgotten {
        columns.visitors.forget(visitor);
    }
    columns.compact();
}

impl ReadIndex {
    /// An empty index, not ready, recording commits until [`build`](Self::build).
    pub(super) fn new(metrics: StoreMetrics) -> Arc<ReadIndex> {
        Arc::new(ReadIndex {
            columns: RwLock::new(Columns::new()),
            ready: AtomicBool::new(false),
            gate: Mutex::new(Some(Vec::new())),
            metrics,
        })
    }

    /// The gate, for the writer: take it before the commit, then
    /// [`Gate::apply`] the commit's changes.
    pub(super) fn gate(&self) -> Gate<'_> {
        Gate {
            index: self,
            pending: lock(&self.gate),
        }
    }

    /// The columns to answer from, while the index is ready.
    pub(super) fn columns(&self) -> Option<RwLockReadGuard<'_, Columns>> {
        if !self.ready.load(Ordering::Acquire) {
            return None;
        }
        Some(self.columns.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Whether reads are answered from the index.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Reads the tables through `conn` (a connection of its own) and makes
    /// the index ready; logs how long it took.
    pub(super) fn build(&self, conn: &mut Connection) -> rusqlite::Result<()> {
        let started = Instant::now();
        let tx = conn.transaction()?;
        {
            // The snapshot starts with the first read, under the gate: the
            // commits recorded before it are in it.
            let mut pending = lock(&self.gate);
            tx.query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get::<_, i64>(0))?;
            *pending = Some(Vec::new());
        }
        let mut columns = load(&tx)?;
        tx.finish()?;
        let mut pending = lock(&self.gate);
        let recorded = pending.take().unwrap_or_default();
        // Every recorded commit is in the tables now and no other can
        // commit while the gate is held: read their sessions' steps anew.
        let mut touched = HashSet::new();
        for changes in recorded {
            take_removals(&mut columns, &changes);
            for s in &changes.sessions {
                columns.put(s);
                touched.insert((s.site.clone(), s.session_id.clone()));
            }
            for e in &changes.events {
                touched.insert((e.site.clone(), e.session_id.clone()));
            }
        }
        for (site, id) in touched {
            let events = session_events(conn, &site, &id)?;
            columns.set_steps(&site, &id, &events);
        }
        let (sessions, events, bytes) = (columns.len(), columns.events, columns.bytes());
        *self.columns.write().unwrap_or_else(|p| p.into_inner()) = columns;
        self.ready.store(true, Ordering::Release);
        drop(pending);
        self.metrics
            .read_index_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.metrics.read_index_ready.set(1);
        tracing::info!(
            sessions,
            events,
            bytes,
            seconds = started.elapsed().as_secs_f64(),
            "read index built"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests;
