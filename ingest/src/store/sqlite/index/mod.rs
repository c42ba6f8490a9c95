//! The read index: the `sessions` table and the page views and custom
//! events of every session, held in memory as fixed-width columns of
//! dictionary ids, so that the read API's aggregate questions (stats,
//! breakdowns, timeseries, funnels) are answered by scanning arrays instead
//! of SQL over the tables (see [`answer`]).
//!
//! It is built at open from the tables by a background thread; until it is
//! ready the store answers in SQL. The writer keeps it current: after each
//! commit it overwrites the rows of the sessions the commit changed and adds
//! their new page views and custom events in the order the SQL reads them
//! (`ts`, `seq`, `event_id`). The commit and that update happen under one
//! gate, which the builder also takes to start its snapshot, so every
//! commit is either in the snapshot or replayed after it, never both.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::Instant;

use rusqlite::{params, Connection};

use crate::metrics::StoreMetrics;
use crate::read::Dimension;
use crate::store::lock;

pub(super) mod answer;
mod steps;

use self::steps::Steps;

/// The dimensions a session row holds one value of, in column order.
pub(super) const ROW_DIMENSIONS: [Dimension; 15] = [
    Dimension::EntryPage,
    Dimension::ExitPage,
    Dimension::Source,
    Dimension::Referrer,
    Dimension::UtmSource,
    Dimension::UtmMedium,
    Dimension::UtmCampaign,
    Dimension::UtmTerm,
    Dimension::UtmContent,
    Dimension::Country,
    Dimension::Region,
    Dimension::City,
    Dimension::Browser,
    Dimension::Os,
    Dimension::DeviceType,
];

/// The `sessions` columns of [`ROW_DIMENSIONS`], in that order.
fn row_dimension_columns() -> String {
    ROW_DIMENSIONS
        .iter()
        .filter_map(|d| d.session_column())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a dimension's ids are in a row, `None` for `page` and
/// `event_name`.
pub(super) fn row_column(dimension: Dimension) -> Option<usize> {
    ROW_DIMENSIONS.iter().position(|d| *d == dimension)
}

/// Strings and their ids: 0 is none, the others are 1, 2, … in order of
/// first sight.
#[derive(Debug, Default)]
pub(super) struct Dict {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Dict {
    fn id(&mut self, name: Option<&str>) -> u32 {
        let Some(name) = name else { return 0 };
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        if self.names.is_empty() {
            self.names.push("".into());
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    /// The id of `name`, if it has been seen.
    pub(super) fn find(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The name of an id other than 0.
    pub(super) fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |n| n)
    }

    /// Ids go up to (not including) this.
    pub(super) fn len(&self) -> usize {
        self.names.len().max(1)
    }

    fn bytes(&self) -> usize {
        self.names.iter().map(|n| 2 * n.len() + 64).sum()
    }

    /// Forgets `name` (an erased visitor id): its id is never given again
    /// and names nothing.
    fn forget(&mut self, name: &str) {
        if let Some(id) = self.ids.remove(name) {
            if let Some(slot) = self.names.get_mut(id as usize) {
                *slot = "".into();
            }
        }
    }
}

/// One page view or custom event of a session: for a page view its path's
/// and its URL key's ids (see [`Columns::pages`], [`Columns::urls`]), for a
/// custom event [`CUSTOM`] set on its name's id and no URL key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Step {
    pub kind: u32,
    pub url: u32,
}

/// The bit of [`Step::kind`] that marks a custom event.
pub(super) const CUSTOM: u32 = 1 << 31;

/// Where a session's last step is in the order: `ts`, `seq`, the first 8
/// bytes of `event_id` (zero padded, so they compare as the id does).
type OrderKey = (u64, u32, u64);

fn order_key(ts: u64, seq: Option<u32>, event_id: &str) -> OrderKey {
    let mut prefix = [0u8; 8];
    for (to, from) in prefix.iter_mut().zip(event_id.bytes()) {
        *to = from;
    }
    (ts, seq.unwrap_or(0), u64::from_be_bytes(prefix))
}

/// A session as the index keeps it, by name: what the writer or the table
/// gives.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SessionRow {
    pub site: String,
    pub session_id: String,
    pub visitor_id: String,
    pub started_at: u64,
    pub duration_ms: u64,
    pub page_views: u64,
    pub is_bot: bool,
    /// The values of [`ROW_DIMENSIONS`].
    pub dims: [Option<String>; 15],
}

/// A stored page view or custom event, by name.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct EventRow {
    pub site: String,
    pub session_id: String,
    pub ts: u64,
    pub seq: Option<u32>,
    pub event_id: String,
    /// A page view (else a custom event).
    pub is_page: bool,
    /// A page view's path.
    pub path: Option<String>,
    /// A page view's URL without query and fragment.
    pub url_key: String,
    /// A custom event's name.
    pub name: Option<String>,
}

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

/// The columns: one entry per session in every `Vec`.
#[derive(Debug, Default)]
pub(super) struct Columns {
    pub sites: Dict,
    pub visitors: Dict,
    /// Paths: `entry_page`, `exit_page` and `page`.
    pub pages: Dict,
    /// URLs without query and fragment, as `/v1/stats`' `top_pages` keys
    /// them.
    pub urls: Dict,
    /// Custom event names.
    pub names: Dict,
    /// One per row dimension other than the paths (those use `pages`).
    pub dicts: Vec<Dict>,
    /// Each site's sessions' rows, by session id.
    by_key: Vec<HashMap<Box<str>, u32>>,
    pub site: Vec<u32>,
    pub started_at: Vec<u64>,
    pub visitor: Vec<u32>,
    pub duration_ms: Vec<u64>,
    pub page_views: Vec<u64>,
    pub is_bot: Vec<bool>,
    /// `dims[c][row]`: the id of [`ROW_DIMENSIONS`]`[c]`.
    pub dims: Vec<Vec<u32>>,
    /// Each session's page views and custom events, in order.
    pub steps: Steps,
    last: Vec<Option<OrderKey>>,
    events: usize,
    /// Rows of removed sessions (site 0), skipped by every read until
    /// [`compact`](Self::compact) drops them.
    removed: usize,
}

impl Columns {
    fn new() -> Columns {
        Columns {
            dicts: (0..ROW_DIMENSIONS.len()).map(|_| Dict::default()).collect(),
            dims: vec![Vec::new(); ROW_DIMENSIONS.len()],
            ..Columns::default()
        }
    }

    /// The dictionary of a row dimension's column.
    pub(super) fn dict(&self, column: usize) -> &Dict {
        if column < 2 {
            &self.pages
        } else {
            &self.dicts[column]
        }
    }

    /// Sessions held.
    pub(super) fn len(&self) -> usize {
        self.started_at.len()
    }

    /// Whether a row is that of a removed session.
    pub(super) fn is_removed(&self, row: usize) -> bool {
        self.site[row] == 0
    }

    /// Removes a session: its row is left empty, with site 0, until enough
    /// are to [`compact`](Self::compact).
    fn remove(&mut self, site: &str, session_id: &str) {
        let Some(site) = self.sites.find(site) else {
            return;
        };
        let Some(row) = self
            .by_key
            .get_mut(site as usize)
            .and_then(|rows| rows.remove(session_id))
        else {
            return;
        };
        let row = row as usize;
        self.site[row] = 0;
        self.visitor[row] = 0;
        self.events -= self.steps.of(row).len();
        self.steps.clear(row);
        self.last[row] = None;
        for column in &mut self.dims {
            column[row] = 0;
        }
        self.removed += 1;
    }

    /// Drops the rows of removed sessions once they are over half the rows
    /// (and more than a few): one pass over the columns.
    fn compact(&mut self) {
        if self.removed < 1024 || self.removed * 2 < self.len() {
            return;
        }
        let keep: Vec<bool> = self.site.iter().map(|s| *s != 0).collect();
        let mut new_row = Vec::with_capacity(keep.len());
        let mut next = 0u32;
        for kept in &keep {
            new_row.push(next);
            next += u32::from(*kept);
        }
        fn retain<T>(column: &mut Vec<T>, keep: &[bool]) {
            let mut i = 0;
            column.retain(|_| {
                i += 1;
                keep[i - 1]
            });
        }
        retain(&mut self.site, &keep);
        retain(&mut self.started_at, &keep);
        retain(&mut self.visitor, &keep);
        retain(&mut self.duration_ms, &keep);
        retain(&mut self.page_views, &keep);
        retain(&mut self.is_bot, &keep);
        self.steps.compact(Some(&keep));
        retain(&mut self.last, &keep);
        for column in &mut self.dims {
            retain(column, &keep);
        }
        for rows in &mut self.by_key {
            for row in rows.values_mut() {
                *row = new_row[*row as usize];
            }
        }
        self.removed = 0;
    }

    fn row_of(&mut self, site: &str, session_id: &str) -> Option<u32> {
        let site = self.sites.find(site)?;
        self.by_key.get(site as usize)?.get(session_id).copied()
    }

    /// Writes (over) a session's row.
    fn put(&mut self, s: &SessionRow) {
        let site = self.sites.id(Some(&s.site));
        if self.by_key.len() <= site as usize {
            self.by_key.resize_with(site as usize + 1, HashMap::new);
        }
        let row = match self.by_key[site as usize].get(s.session_id.as_str()) {
            Some(row) => *row as usize,
            None => {
                let row = self.len();
                self.by_key[site as usize].insert(
                    s.session_id.as_str().into(),
                    u32::try_from(row).unwrap_or(u32::MAX),
                );
                self.site.push(site);
                self.started_at.push(0);
                self.visitor.push(0);
                self.duration_ms.push(0);
                self.page_views.push(0);
                self.is_bot.push(false);
                for column in &mut self.dims {
                    column.push(0);
                }
                self.steps.add_row();
                self.last.push(None);
                row
            }
        };
        self.started_at[row] = s.started_at;
        self.visitor[row] = self.visitors.id(Some(&s.visitor_id));
        self.duration_ms[row] = s.duration_ms;
        self.page_views[row] = s.page_views;
        self.is_bot[row] = s.is_bot;
        for (c, value) in s.dims.iter().enumerate() {
            let id = if c < 2 {
                self.pages.id(value.as_deref())
            } else {
                self.dicts[c].id(value.as_deref())
            };
            self.dims[c][row] = id;
        }
    }

    fn step(&mut self, e: &EventRow) -> Step {
        if e.is_page {
            Step {
                kind: self.pages.id(e.path.as_deref()),
                url: self.urls.id(Some(&e.url_key)),
            }
        } else {
            Step {
                kind: CUSTOM | self.names.id(e.name.as_deref()),
                url: 0,
            }
        }
    }

    /// Adds an event after the session's last one; `false` (nothing done)
    /// when it does not surely come after it.
    fn append(&mut self, e: &EventRow) -> bool {
        let Some(row) = self.row_of(&e.site, &e.session_id) else {
            return false;
        };
        let row = row as usize;
        let key = order_key(e.ts, e.seq, &e.event_id);
        if self.last[row].is_some_and(|last| last >= key) {
            return false;
        }
        let step = self.step(e);
        self.steps.push(row, step);
        self.last[row] = Some(key);
        self.events += 1;
        true
    }

    /// Replaces a session's steps with those `events` (already in order).
    fn set_steps(&mut self, site: &str, session_id: &str, events: &[EventRow]) {
        let Some(row) = self.row_of(site, session_id) else {
            return;
        };
        let steps: Vec<Step> = events.iter().map(|e| self.step(e)).collect();
        let row = row as usize;
        self.events = self.events - self.steps.of(row).len() + steps.len();
        self.steps.set(row, steps);
        self.last[row] = events.last().map(|e| order_key(e.ts, e.seq, &e.event_id));
    }

    /// About how many bytes the index takes.
    pub(super) fn bytes(&self) -> usize {
        let rows = self.len();
        let dicts: usize = [
            &self.sites,
            &self.visitors,
            &self.pages,
            &self.urls,
            &self.names,
        ]
        .into_iter()
        .chain(self.dicts.iter())
        .map(Dict::bytes)
        .sum();
        dicts
            + self.steps.bytes()
            + rows * (4 + 8 + 4 + 8 + 8 + 1 + 4 * ROW_DIMENSIONS.len() + 24 + 32 + 56)
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

/// A page as `/v1/stats`' `top_pages` keys it: the URL without query and
/// fragment (the SQL's `page_key_sql`).
pub(super) fn url_key(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
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
mod scale;
#[cfg(test)]
mod tests;
