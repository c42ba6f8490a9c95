//! What the read mirror ([`super::mirror`]) keeps of each visit besides
//! the shared [`Columns`], so that `GET /v1/sessions` is answered from
//! memory too: the session's id, user id, index, last activity, end and
//! its reason, landing and exit URLs and event count, a row each, in the
//! columns' row order. The list is the SQL's
//! ([`super::queries`]' `sessions_page_sql`): the visits picked as the
//! aggregate reads pick them, newest first by `started_at`, then
//! `session_id`, then `site`, all descending, after the cursor.

use crate::read::{Dimension, ReadQuery};
use crate::session::Session;
use crate::store::columns::answer::selected;
use crate::store::columns::{retain, row_column, Columns, Dict};
use crate::store::{SessionPage, SessionQuery};

/// The columns and what the lists add to them, under one lock.
#[derive(Debug)]
pub(super) struct Held {
    pub columns: Columns,
    pub listed: Listed,
}

impl Held {
    pub(super) fn new() -> Held {
        Held {
            columns: Columns::new(),
            listed: Listed::default(),
        }
    }

    /// About how many bytes both take.
    pub(super) fn bytes(&self) -> usize {
        self.columns.bytes() + self.listed.bytes()
    }
}

/// A visit's fields the lists need and the columns lack.
#[derive(Debug)]
pub(super) struct ListFields {
    pub session_id: String,
    pub user_id: Option<String>,
    pub session_index: Option<u32>,
    pub last_seen_at: u64,
    pub ended_at: Option<u64>,
    pub end_reason: Option<String>,
    pub landing_page: Option<String>,
    pub exit_page: Option<String>,
    pub event_count: u64,
}

/// [`ListFields`] by row; strings as dictionary ids (0: none).
#[derive(Debug, Default)]
pub(super) struct Listed {
    session_id: Vec<Box<str>>,
    user: Vec<u32>,
    session_index: Vec<Option<u32>>,
    last_seen_at: Vec<u64>,
    ended_at: Vec<Option<u64>>,
    end_reason: Vec<u32>,
    landing: Vec<u32>,
    exit: Vec<u32>,
    event_count: Vec<u64>,
    users: Dict,
    reasons: Dict,
    /// Landing and exit URLs, whole.
    urls: Dict,
}

impl Listed {
    /// Writes row `row` (the columns' row just written: one past the last
    /// for a new one).
    pub(super) fn set(&mut self, row: usize, f: ListFields) {
        if row == self.session_id.len() {
            self.session_id.push(Box::from(""));
            self.user.push(0);
            self.session_index.push(None);
            self.last_seen_at.push(0);
            self.ended_at.push(None);
            self.end_reason.push(0);
            self.landing.push(0);
            self.exit.push(0);
            self.event_count.push(0);
        }
        if row >= self.session_id.len() {
            return;
        }
        self.session_id[row] = f.session_id.into();
        self.user[row] = self.users.id(f.user_id.as_deref());
        self.session_index[row] = f.session_index;
        self.last_seen_at[row] = f.last_seen_at;
        self.ended_at[row] = f.ended_at;
        self.end_reason[row] = self.reasons.id(f.end_reason.as_deref());
        self.landing[row] = self.urls.id(f.landing_page.as_deref());
        self.exit[row] = self.urls.id(f.exit_page.as_deref());
        self.event_count[row] = f.event_count;
    }

    /// Drops the rows the columns dropped in a compaction.
    pub(super) fn retain(&mut self, keep: &[bool]) {
        retain(&mut self.session_id, keep);
        retain(&mut self.user, keep);
        retain(&mut self.session_index, keep);
        retain(&mut self.last_seen_at, keep);
        retain(&mut self.ended_at, keep);
        retain(&mut self.end_reason, keep);
        retain(&mut self.landing, keep);
        retain(&mut self.exit, keep);
        retain(&mut self.event_count, keep);
    }

    fn bytes(&self) -> usize {
        let rows = self.session_id.len();
        let ids: usize = self.session_id.iter().map(|id| id.len() + 16).sum();
        ids + [&self.users, &self.reasons, &self.urls]
            .into_iter()
            .map(Dict::bytes)
            .sum::<usize>()
            + rows * (4 + 8 + 8 + 16 + 4 + 4 + 4 + 8)
    }
}

/// A dictionary id's name, `None` for 0.
fn named(dict: &Dict, id: u32) -> Option<String> {
    (id != 0).then(|| dict.name(id).to_owned())
}

/// One page of the sessions list `q`, which must name no visitor or user
/// (those lists are read in SQL).
pub(super) fn sessions(held: &Held, q: &SessionQuery) -> SessionPage {
    let (c, l) = (&held.columns, &held.listed);
    let read = ReadQuery {
        site: q.site.clone(),
        from: q.from.unwrap_or(0),
        to: q.to.unwrap_or(u64::MAX),
        include_bots: q.is_bot != Some(false),
        filters: q.filters.clone(),
    };
    let mut rows: Vec<usize> = selected(c, &read)
        .into_iter()
        .map(|row| row as usize)
        .filter(|row| q.is_bot != Some(true) || c.is_bot[*row])
        .filter(|row| {
            q.cursor.as_ref().is_none_or(|cursor| {
                let at = c.started_at[*row];
                at < cursor.started_at
                    || (at == cursor.started_at && *l.session_id[*row] < *cursor.session_id)
            })
        })
        .collect();
    let newest_first = |a: &usize, b: &usize| {
        c.started_at[*b]
            .cmp(&c.started_at[*a])
            .then_with(|| l.session_id[*b].cmp(&l.session_id[*a]))
            .then_with(|| c.sites.name(c.site[*b]).cmp(c.sites.name(c.site[*a])))
    };
    let limit = q.limit.clamp(1, super::queries::MAX_SESSIONS_PAGE);
    if rows.len() > limit + 1 {
        rows.select_nth_unstable_by(limit, newest_first);
        rows.truncate(limit + 1);
    }
    rows.sort_unstable_by(newest_first);
    let dim = |row: usize, dimension: Dimension| {
        row_column(dimension).and_then(|column| named(c.dict(column), c.dims[column][row]))
    };
    let sessions = rows
        .into_iter()
        .map(|row| Session {
            session_id: l.session_id[row].to_string(),
            site: c.sites.name(c.site[row]).to_owned(),
            visitor_id: c.visitors.name(c.visitor[row]).to_owned(),
            user_id: named(&l.users, l.user[row]),
            session_index: l.session_index[row],
            started_at: c.started_at[row],
            last_seen_at: l.last_seen_at[row],
            ended_at: l.ended_at[row],
            end_reason: named(&l.reasons, l.end_reason[row]),
            duration_ms: c.duration_ms[row],
            landing_page: named(&l.urls, l.landing[row]),
            exit_page: named(&l.urls, l.exit[row]),
            source: dim(row, Dimension::Source).unwrap_or_default(),
            country: dim(row, Dimension::Country),
            region: dim(row, Dimension::Region),
            city: dim(row, Dimension::City),
            browser: dim(row, Dimension::Browser),
            os: dim(row, Dimension::Os),
            device_type: dim(row, Dimension::DeviceType),
            event_count: l.event_count[row],
            page_views: c.page_views[row],
            is_bot: c.is_bot[row],
        })
        .collect();
    SessionPage::from_overfetched(sessions, limit)
}
