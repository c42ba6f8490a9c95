//! The read model's columns: every session held in memory as fixed-width
//! columns of dictionary ids, with the ordered page views and custom events
//! of each, so that the read API's aggregate questions (stats, breakdowns,
//! timeseries, funnels) are answered by scanning arrays instead of SQL
//! ([`answer`]). Shared by the stores: the SQLite store keeps them from its
//! writer ([`crate::store::sqlite`]'s read index), the ClickHouse store
//! from its compacted rows (its mirror).

use std::collections::HashMap;

use crate::read::Dimension;

pub(crate) mod answer;
#[cfg(test)]
mod scale;
mod steps;

use self::steps::Steps;

/// The dimensions a session row holds one value of, in column order.
pub(crate) const ROW_DIMENSIONS: [Dimension; 15] = [
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
pub(crate) fn row_dimension_columns() -> String {
    ROW_DIMENSIONS
        .iter()
        .filter_map(|d| d.session_column())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a dimension's ids are in a row, `None` for `page` and
/// `event_name`.
pub(crate) fn row_column(dimension: Dimension) -> Option<usize> {
    ROW_DIMENSIONS.iter().position(|d| *d == dimension)
}

/// Strings and their ids: 0 is none, the others are 1, 2, … in order of
/// first sight.
#[derive(Debug, Default)]
pub(crate) struct Dict {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Dict {
    pub(crate) fn id(&mut self, name: Option<&str>) -> u32 {
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
    pub(crate) fn find(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The name of an id other than 0.
    pub(crate) fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |n| n)
    }

    /// Ids go up to (not including) this.
    pub(crate) fn len(&self) -> usize {
        self.names.len().max(1)
    }

    pub(crate) fn bytes(&self) -> usize {
        self.names.iter().map(|n| 2 * n.len() + 64).sum()
    }

    /// Forgets `name` (an erased visitor id): its id is never given again
    /// and names nothing.
    pub(crate) fn forget(&mut self, name: &str) {
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
pub(crate) struct Step {
    pub kind: u32,
    pub url: u32,
}

/// The bit of [`Step::kind`] that marks a custom event.
pub(crate) const CUSTOM: u32 = 1 << 31;

/// Where a session's last step is in the order: `ts`, `seq`, the first 8
/// bytes of `event_id` (zero padded, so they compare as the id does).
pub(crate) type OrderKey = (u64, u32, u64);

pub(crate) fn order_key(ts: u64, seq: Option<u32>, event_id: &str) -> OrderKey {
    let mut prefix = [0u8; 8];
    for (to, from) in prefix.iter_mut().zip(event_id.bytes()) {
        *to = from;
    }
    (ts, seq.unwrap_or(0), u64::from_be_bytes(prefix))
}

/// A session as the index keeps it, by name: what the writer or the table
/// gives.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SessionRow {
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
pub(crate) struct EventRow {
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

/// The columns: one entry per session in every `Vec`.
#[derive(Debug, Default)]
pub(crate) struct Columns {
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
    pub(crate) by_key: Vec<HashMap<Box<str>, u32>>,
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
    pub(crate) last: Vec<Option<OrderKey>>,
    /// Each row's version, for rows written by
    /// [`put_newer`](Self::put_newer) (0 for the others).
    version: Vec<u64>,
    pub(crate) events: usize,
    /// Rows of removed sessions (site 0), skipped by every read until
    /// [`compact`](Self::compact) drops them.
    removed: usize,
}

impl Columns {
    pub(crate) fn new() -> Columns {
        Columns {
            dicts: (0..ROW_DIMENSIONS.len()).map(|_| Dict::default()).collect(),
            dims: vec![Vec::new(); ROW_DIMENSIONS.len()],
            ..Columns::default()
        }
    }

    /// The dictionary of a row dimension's column.
    pub(crate) fn dict(&self, column: usize) -> &Dict {
        if column < 2 {
            &self.pages
        } else {
            &self.dicts[column]
        }
    }

    /// Sessions held.
    pub(crate) fn len(&self) -> usize {
        self.started_at.len()
    }

    /// Sessions held, less those removed.
    pub(crate) fn live(&self) -> usize {
        self.len() - self.removed
    }

    /// Whether a row is that of a removed session.
    pub(crate) fn is_removed(&self, row: usize) -> bool {
        self.site[row] == 0
    }

    /// Removes a session: its row is left empty, with site 0, until enough
    /// are to [`compact`](Self::compact).
    pub(crate) fn remove(&mut self, site: &str, session_id: &str) {
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
    /// Which rows it kept, when it compacted: a caller holding more per
    /// row drops the same ones ([`retain`]).
    pub(crate) fn compact(&mut self) -> Option<Vec<bool>> {
        if self.removed < 1024 || self.removed * 2 < self.len() {
            return None;
        }
        let keep: Vec<bool> = self.site.iter().map(|s| *s != 0).collect();
        let mut new_row = Vec::with_capacity(keep.len());
        let mut next = 0u32;
        for kept in &keep {
            new_row.push(next);
            next += u32::from(*kept);
        }
        retain(&mut self.site, &keep);
        retain(&mut self.started_at, &keep);
        retain(&mut self.visitor, &keep);
        retain(&mut self.duration_ms, &keep);
        retain(&mut self.page_views, &keep);
        retain(&mut self.is_bot, &keep);
        self.steps.compact(Some(&keep));
        retain(&mut self.last, &keep);
        retain(&mut self.version, &keep);
        for column in &mut self.dims {
            retain(column, &keep);
        }
        for rows in &mut self.by_key {
            for row in rows.values_mut() {
                *row = new_row[*row as usize];
            }
        }
        self.removed = 0;
        Some(keep)
    }

    pub(crate) fn row_of(&mut self, site: &str, session_id: &str) -> Option<u32> {
        let site = self.sites.find(site)?;
        self.by_key.get(site as usize)?.get(session_id).copied()
    }

    /// Writes (over) a session's row.
    pub(crate) fn put(&mut self, s: &SessionRow) {
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
                self.version.push(0);
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

    /// Writes (over) a session's row and its steps, `steps` (given the
    /// columns, for their dictionaries), unless the row holds a newer
    /// version: for rows that come in any order, each whole (the ClickHouse
    /// store's compacted sessions). The row it wrote.
    pub(crate) fn put_newer(
        &mut self,
        s: &SessionRow,
        version: u64,
        steps: impl FnOnce(&mut Columns) -> Vec<Step>,
    ) -> Option<usize> {
        if let Some(row) = self.row_of(&s.site, &s.session_id) {
            if self.version[row as usize] > version {
                return None;
            }
        }
        self.put(s);
        let row = self.row_of(&s.site, &s.session_id)?;
        let row = row as usize;
        let steps = steps(self);
        self.events = self.events - self.steps.of(row).len() + steps.len();
        self.steps.set(row, steps);
        self.version[row] = version;
        Some(row)
    }

    pub(crate) fn step(&mut self, e: &EventRow) -> Step {
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
    pub(crate) fn append(&mut self, e: &EventRow) -> bool {
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
    pub(crate) fn set_steps(&mut self, site: &str, session_id: &str, events: &[EventRow]) {
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
    pub(crate) fn bytes(&self) -> usize {
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
            + rows * (4 + 8 + 4 + 8 + 8 + 1 + 4 * ROW_DIMENSIONS.len() + 24 + 32 + 8 + 56)
    }
}

/// Keeps the entries of `column` that `keep` says (a row each).
pub(crate) fn retain<T>(column: &mut Vec<T>, keep: &[bool]) {
    let mut i = 0;
    column.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

/// A page as `/v1/stats`' `top_pages` keys it: the URL without query and
/// fragment (the SQL's `page_key_sql`).
pub(crate) fn url_key(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}
