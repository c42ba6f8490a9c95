//! The writer thread: group commit of appends and sweeps, one transaction
//! per group, with the `sessions` table kept current in the same
//! transaction as the events.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Instant;

use rusqlite::types::{ToSql, Value};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::compact;
use super::index::{url_key, Changes, EventRow, ReadIndex, SessionRow};
use super::lifecycle::{self, Removed};
use super::packed::value_list;
use super::rows::{
    state_from_row, DERIVED_COLUMNS, ENRICHMENT_COLUMNS, EVENT_WRITE_COLUMNS, KEY_COLUMNS,
    KEY_SELECT, SESSION_COLUMNS, SESSION_SELECT,
};
use crate::event::{Enrichment, EventType, StoredEvent};
use crate::metrics::StoreMetrics;
use crate::read::Person;
use crate::read::{page_path, Landing};
use crate::session::{collector_visit_ended, EndDecision, EventKey, SessionState};
use crate::store::lifecycle::{Erasure, Expiry};
use crate::store::{AppendOutcome, StoreError, SweepCursor, SweepPage};

/// Sessions one retention command removes, at most: a few milliseconds of
/// the writer's time.
pub(super) const EXPIRE_BATCH: usize = 50;

/// Events taken into one transaction, at most (one request more may push a
/// group past it; a request is never split).
pub(super) const MAX_GROUP_EVENTS: usize = 10_000;

/// The insert of an event: its [`EVENT_WRITE_COLUMNS`].
static INSERT_EVENT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT OR IGNORE INTO events ({EVENT_WRITE_COLUMNS}) VALUES ({})",
        value_list(EVENT_WRITE_COLUMNS)
    )
});

/// The row of `enrichments` with these values (through its index: a
/// hundred thousand rows at 10 M events).
pub(super) const FIND_ENRICHMENT: &str = "SELECT id FROM enrichments WHERE country IS ?1 \
     AND region IS ?2 AND city IS ?3 AND browser IS ?4 AND os IS ?5 AND device_type IS ?6 \
     AND is_bot = ?7";

/// What the writer thread is asked to do.
pub(super) enum Command {
    Append {
        events: Vec<StoredEvent>,
        reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
    },
    Sweep {
        now: u64,
        idle_before: u64,
        after: Option<SweepCursor>,
        limit: usize,
        reply: oneshot::Sender<Result<SweepPage, StoreError>>,
    },
    /// Removes a person's sessions and events.
    Erase {
        person: Person,
        /// The visitors the reader found linked to a user beforehand.
        linked: Vec<String>,
        reply: oneshot::Sender<Result<Erasure, StoreError>>,
    },
    /// Removes sessions started before a time.
    Expire {
        started_before: u64,
        limit: usize,
        reply: oneshot::Sender<Result<Expiry, StoreError>>,
    },
}

impl Command {
    /// The events the command may write: its weight in a group, which takes
    /// commands up to [`MAX_GROUP_EVENTS`].
    pub(super) fn events(&self) -> usize {
        match self {
            Command::Append { events, .. } => events.len(),
            Command::Sweep { limit, .. } | Command::Expire { limit, .. } => *limit,
            Command::Erase { .. } => 1,
        }
    }

    fn fail(self, err: &StoreError) {
        let err = StoreError::Commit(err.to_string());
        match self {
            Command::Append { reply, .. } => drop(reply.send(Err(err))),
            Command::Sweep { reply, .. } => drop(reply.send(Err(err))),
            Command::Erase { reply, .. } => drop(reply.send(Err(err))),
            Command::Expire { reply, .. } => drop(reply.send(Err(err))),
        }
    }
}

/// What a command did, sent once the transaction has committed.
enum Done {
    Appended(AppendOutcome),
    Swept(SweepPage),
    Erased(Erasure),
    Expired(Expiry),
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Append { events, .. } => f
                .debug_struct("Append")
                .field("events", &events.len())
                .finish_non_exhaustive(),
            Command::Sweep { idle_before, .. } => f
                .debug_struct("Sweep")
                .field("idle_before", idle_before)
                .finish_non_exhaustive(),
            Command::Erase { .. } => f.debug_struct("Erase").finish_non_exhaustive(),
            Command::Expire { started_before, .. } => f
                .debug_struct("Expire")
                .field("started_before", started_before)
                .finish_non_exhaustive(),
        }
    }
}

/// Writes one group of commands (see [`GroupCommit`](crate::store::group::GroupCommit))
/// in one transaction and answers each once it has committed.
pub(super) fn commit_group(
    conn: &mut Connection,
    group: Vec<Command>,
    commits: &AtomicU64,
    metrics: &StoreMetrics,
    max_events: u64,
    index: &ReadIndex,
) {
    metrics
        .queue_depth
        .sub(i64::try_from(group.len()).unwrap_or(i64::MAX));

    let started = Instant::now();
    match write_group(conn, &group, max_events, index) {
        Ok(results) => {
            metrics
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
            metrics.commits.inc();
            commits.fetch_add(1, Ordering::Relaxed);
            for (command, done) in group.into_iter().zip(results) {
                // The requester may have gone away; the events are stored
                // all the same.
                match (command, done) {
                    (Command::Append { reply, .. }, Done::Appended(outcome)) => {
                        let _ = reply.send(Ok(outcome));
                    }
                    (Command::Sweep { reply, .. }, Done::Swept(closed)) => {
                        let _ = reply.send(Ok(closed));
                    }
                    (Command::Erase { reply, .. }, Done::Erased(erased)) => {
                        let _ = reply.send(Ok(erased));
                    }
                    (Command::Expire { reply, .. }, Done::Expired(expired)) => {
                        let _ = reply.send(Ok(expired));
                    }
                    (command, _) => command.fail(&StoreError::Commit("mismatch".to_owned())),
                }
            }
        }
        Err(err) => {
            tracing::error!(error = %err, requests = group.len(), "sqlite commit failed");
            let err = StoreError::from(err);
            for command in group {
                command.fail(&err);
            }
        }
    }
}

/// Writes a group in one transaction, then hands what it changed to the
/// read index; the results are in command order.
fn write_group(
    conn: &mut Connection,
    group: &[Command],
    max_events: u64,
    index: &ReadIndex,
) -> Result<Vec<Done>, rusqlite::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(group.len());
    let changes = {
        let mut writer = GroupWriter::new(&tx, max_events);
        for command in group {
            results.push(match command {
                Command::Append { events, .. } => {
                    let mut outcome = AppendOutcome::default();
                    for (i, event) in events.iter().enumerate() {
                        match writer.apply(event)? {
                            Applied::Stored => outcome.inserted += 1,
                            Applied::NotStored => outcome.duplicates += 1,
                            Applied::SessionFull => outcome.session_full.push(i),
                        }
                    }
                    Done::Appended(outcome)
                }
                Command::Sweep {
                    now,
                    idle_before,
                    after,
                    limit,
                    ..
                } => Done::Swept(writer.sweep(*now, *idle_before, after.as_ref(), *limit)?),
                Command::Erase { person, linked, .. } => {
                    writer.flush()?;
                    let removed = lifecycle::erase(&tx, person, linked)?;
                    writer.forget(&removed);
                    Done::Erased(removed.erasure())
                }
                Command::Expire {
                    started_before,
                    limit,
                    ..
                } => {
                    writer.flush()?;
                    let removed = lifecycle::expire(&tx, *started_before, *limit)?;
                    writer.forget(&removed);
                    Done::Expired(removed.expiry(*limit))
                }
            });
        }
        writer.flush()?;
        writer.changes
    };
    let gate = index.gate();
    tx.commit()?;
    gate.apply(conn, changes);
    Ok(results)
}

/// A session's key: its site and its session id.
type SessionKey = (String, String);

fn key_of(event: &StoredEvent) -> SessionKey {
    (event.site.clone(), event.session_id.clone())
}

/// What [`GroupWriter::apply`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    Stored,
    /// Already there, or a `visit_ended` the session does not keep.
    NotStored,
    /// Its session already holds `max_events` events.
    SessionFull,
}

/// Applies events to `events` and `sessions` within one transaction, with
/// the group's sessions cached in memory until [`flush`](Self::flush).
struct GroupWriter<'t> {
    tx: &'t Transaction<'t>,
    sessions: HashMap<SessionKey, Option<SessionState>>,
    /// Each cached session's `referrer_domain`: as stored, or from the
    /// event that became its landing page view in this group.
    referrers: HashMap<SessionKey, Option<String>>,
    dirty: HashSet<SessionKey>,
    /// Events a session may hold besides its `visit_ended`.
    max_events: u64,
    /// What the read index is to take in once the group has committed.
    changes: Changes,
    /// The `enrichments` row of each enrichment this group met.
    enrichments: HashMap<Enrichment, i64>,
    /// The origin of each site this group met, if it has one yet
    /// ([`compact`](super::compact)).
    origins: HashMap<String, Option<String>>,
}

impl<'t> GroupWriter<'t> {
    fn new(tx: &'t Transaction<'t>, max_events: u64) -> Self {
        GroupWriter {
            tx,
            sessions: HashMap::new(),
            referrers: HashMap::new(),
            dirty: HashSet::new(),
            max_events,
            changes: Changes::default(),
            enrichments: HashMap::new(),
            origins: HashMap::new(),
        }
    }

    fn load(&mut self, key: &SessionKey) -> rusqlite::Result<Option<&mut SessionState>> {
        if !self.sessions.contains_key(key) {
            let sql = format!(
                "SELECT {SESSION_SELECT}, {KEY_SELECT}, referrer_domain FROM sessions \
                 WHERE site = ?1 AND session_id = wm_pack(?2)"
            );
            let found = self
                .tx
                .prepare_cached(&sql)?
                .query_row(params![key.0, key.1], |row| {
                    Ok((state_from_row(row)?, row.get::<_, Option<String>>(31)?))
                })
                .optional()?;
            let (state, referrer) = found.unzip();
            self.referrers.insert(key.clone(), referrer.flatten());
            self.sessions.insert(key.clone(), state);
        }
        Ok(self.sessions.get_mut(key).and_then(Option::as_mut))
    }

    /// The row of `enrichments` with these values, added when there is
    /// none.
    fn enrichment(&mut self, en: &Enrichment) -> rusqlite::Result<i64> {
        if let Some(id) = self.enrichments.get(en) {
            return Ok(*id);
        }
        let values = params![
            en.country,
            en.region,
            en.city,
            en.browser,
            en.os,
            en.device_type,
            en.is_bot
        ];
        let found = self
            .tx
            .prepare_cached(FIND_ENRICHMENT)?
            .query_row(values, |r| r.get(0))
            .optional()?;
        let id = match found {
            Some(id) => id,
            None => {
                self.tx
                    .prepare_cached(&format!(
                        "INSERT INTO enrichments ({ENRICHMENT_COLUMNS}) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                    ))?
                    .execute(values)?;
                self.tx.last_insert_rowid()
            }
        };
        self.enrichments.insert(en.clone(), id);
        Ok(id)
    }

    /// Caches the origin `site`'s URLs are kept under (in
    /// [`origins`](Self::origins)): as stored, or else this URL's, stored
    /// for good.
    fn find_origin(&mut self, site: &str, url: &str) -> rusqlite::Result<()> {
        if !self.origins.contains_key(site) {
            let stored = self
                .tx
                .prepare_cached("SELECT origin FROM origins WHERE of_site = ?1")?
                .query_row([site], |r| r.get(0))
                .optional()?;
            self.origins.insert(site.to_owned(), stored);
        }
        if let Some(slot @ None) = self.origins.get_mut(site) {
            if let Some(origin) = compact::origin_of(url) {
                self.tx
                    .prepare_cached("INSERT INTO origins (of_site, origin) VALUES (?1, ?2)")?
                    .execute([site, origin])?;
                *slot = Some(origin.to_owned());
            }
        }
        Ok(())
    }

    fn stored(&self, event_id: &str) -> rusqlite::Result<bool> {
        self.tx
            .prepare_cached("SELECT 1 FROM events WHERE event_id = wm_pack(?1)")?
            .exists(params![event_id])
    }

    /// Stores one event and folds it into its session (the event's site's
    /// session with its id: no other site's).
    fn apply(&mut self, event: &StoredEvent) -> rusqlite::Result<Applied> {
        let key = key_of(event);
        if event.event_type == EventType::VisitEnded {
            if self.stored(&event.event_id)? {
                return Ok(Applied::NotStored);
            }
            let decision = match self.load(&key)? {
                Some(state) => state.offer_end(event),
                None => EndDecision::Keep,
            };
            match decision {
                EndDecision::Drop => return Ok(Applied::NotStored),
                EndDecision::Replace(old) => {
                    self.tx
                        .prepare_cached("DELETE FROM events WHERE event_id = wm_pack(?1)")?
                        .execute(params![old])?;
                }
                EndDecision::Keep => {}
            }
        } else {
            let max_events = self.max_events;
            let full = self
                .load(&key)?
                .is_some_and(|state| state.session.event_count >= max_events);
            if full {
                // A retry of an event stored before is a duplicate still.
                return Ok(if self.stored(&event.event_id)? {
                    Applied::NotStored
                } else {
                    Applied::SessionFull
                });
            }
        }
        let enrichment = self.enrichment(&event.enrichment)?;
        self.find_origin(&event.site, &event.url)?;
        let origin = self.origins.get(&event.site).and_then(Option::as_deref);
        if !insert_event(self.tx, event, enrichment, origin)? {
            return Ok(Applied::NotStored);
        }
        if matches!(event.event_type, EventType::PageView | EventType::Custom) {
            let is_page = event.event_type == EventType::PageView;
            self.changes.events.push(EventRow {
                site: event.site.clone(),
                session_id: event.session_id.clone(),
                ts: event.ts,
                seq: event.seq,
                event_id: event.event_id.clone(),
                is_page,
                path: is_page.then(|| page_path(&event.url)),
                url_key: url_key(&event.url).to_owned(),
                name: event.name.clone(),
            });
        }
        self.load(&key)?;
        let slot = self.sessions.entry(key.clone()).or_default();
        let state = slot.get_or_insert_with(|| SessionState::new(event));
        state.absorb(event);
        if event.event_type == EventType::PageView
            && state.keys.landing.as_ref() == Some(&EventKey::of(event))
        {
            // The same event decides the landing page, the source and this.
            let landing = Landing::of(&event.url, event.referrer.as_deref());
            self.referrers.insert(key.clone(), landing.referrer_domain);
        }
        self.dirty.insert(key);
        Ok(Applied::Stored)
    }

    fn sweep(
        &mut self,
        now: u64,
        idle_before: u64,
        after: Option<&SweepCursor>,
        limit: usize,
    ) -> rusqlite::Result<SweepPage> {
        let (after_seen, after_site, after_id) = after.map_or((-1, "", ""), |c| {
            (
                i64::try_from(c.last_seen_at).unwrap_or(i64::MAX),
                c.site.as_str(),
                c.session_id.as_str(),
            )
        });
        let found: Vec<(u64, String, String)> = self
            .tx
            .prepare_cached(
                "SELECT last_seen_at, site, wm_text(session_id) FROM sessions \
                 WHERE ended_at IS NULL AND last_seen_at < ?1 \
                 AND (last_seen_at, site, session_id) > (?2, ?3, wm_pack(?4)) \
                 ORDER BY last_seen_at, site, session_id LIMIT ?5",
            )?
            .query_map(
                params![
                    idle_before,
                    after_seen,
                    after_site,
                    after_id,
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )?
            .collect::<Result<_, _>>()?;
        let next = (found.len() >= limit).then(|| found.last()).flatten().map(
            |(last_seen_at, site, session_id)| SweepCursor {
                last_seen_at: *last_seen_at,
                site: site.clone(),
                session_id: session_id.clone(),
            },
        );
        let mut closed = 0;
        for (_, site, id) in found {
            // This group may have brought news of the session already.
            let Some(state) = self.load(&(site, id))? else {
                continue;
            };
            if !state.is_idle(idle_before) {
                continue;
            }
            let end = collector_visit_ended(state, now);
            if self.apply(&end)? == Applied::Stored {
                closed += 1;
            }
        }
        Ok(SweepPage { closed, next })
    }

    /// After [`flush`](Self::flush) and a removal: drops the cached
    /// sessions (those left are read again) and what the read index was to
    /// take in of the removed ones.
    fn forget(&mut self, removed: &Removed) {
        self.sessions.clear();
        self.referrers.clear();
        self.changes.remove(&removed.keys, &removed.visitors);
    }

    /// Writes every changed session back.
    fn flush(&mut self) -> rusqlite::Result<()> {
        for key in self.dirty.drain() {
            if let Some(Some(state)) = self.sessions.get(&key) {
                let referrer_domain = self.referrers.get(&key).and_then(Option::as_deref);
                let origin = self.origins.get(&key.0).and_then(Option::as_deref);
                write_session(
                    self.tx,
                    state,
                    Derived::With {
                        referrer_domain,
                        origin,
                    },
                )?;
                self.changes
                    .sessions
                    .push(index_row(&state.session, referrer_domain));
            }
        }
        Ok(())
    }
}

/// A session's row in the read index.
fn index_row(s: &crate::session::Session, referrer_domain: Option<&str>) -> SessionRow {
    let d = derived_columns(
        s.landing_page.as_deref(),
        s.exit_page.as_deref(),
        referrer_domain,
    );
    let l = d.landing;
    SessionRow {
        site: s.site.clone(),
        session_id: s.session_id.clone(),
        visitor_id: s.visitor_id.clone(),
        started_at: s.started_at,
        duration_ms: s.duration_ms,
        page_views: s.page_views,
        is_bot: s.is_bot,
        dims: [
            d.entry_path,
            d.exit_path,
            Some(s.source.clone()),
            l.referrer_domain,
            l.utm_source,
            l.utm_medium,
            l.utm_campaign,
            l.utm_term,
            l.utm_content,
            s.country.clone(),
            s.region.clone(),
            s.city.clone(),
            s.browser.clone(),
            s.os.clone(),
            s.device_type.clone(),
        ],
    }
}

/// Stores an event whose enrichment is the row `enrichment` of
/// `enrichments`, and whose site's URLs are kept under `origin`; `client_ts`
/// only where it differs from `ts`.
fn insert_event(
    tx: &Transaction<'_>,
    e: &StoredEvent,
    enrichment: i64,
    origin: Option<&str>,
) -> rusqlite::Result<bool> {
    let url = compact::kept_url(origin, &e.url);
    let path = (e.event_type == EventType::PageView).then(|| page_path(&e.url));
    let changed = tx.prepare_cached(&INSERT_EVENT)?.execute(params![
        e.event_id,
        e.site,
        compact::kind(e.event_type),
        e.name,
        e.ts,
        e.received_at,
        e.session_id,
        e.visitor_id,
        e.user_id,
        e.session_index,
        e.seq,
        e.previous_session_id,
        compact::kept_in(e.storage.as_deref()),
        url,
        e.title,
        e.referrer.as_deref().map(|r| compact::kept_url(origin, r)),
        e.props,
        e.context,
        (e.client_ts != e.ts).then_some(e.client_ts),
        enrichment,
        compact::kept_path(path.as_deref(), &url),
    ])?;
    Ok(changed > 0)
}

/// What [`write_session`] writes besides the session and its merge keys.
#[derive(Debug, Clone, Copy)]
pub(super) enum Derived<'a> {
    /// Nothing: for the migrations to versions 2 and 3, whose table has no
    /// other columns yet (the one to version 4 derives them for every row).
    NotYet,
    /// The [`DERIVED_COLUMNS`], with the landing page view's referrer's
    /// domain (the rest follow from the session); the landing and exit
    /// pages kept under the site's `origin` (schema version 7).
    With {
        referrer_domain: Option<&'a str>,
        origin: Option<&'a str>,
    },
}

/// The [`DERIVED_COLUMNS`] of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct DerivedColumns {
    pub entry_path: Option<String>,
    pub exit_path: Option<String>,
    /// The campaign of the landing URL and the referrer's domain.
    pub landing: Landing,
}

/// What a session with these landing and exit URLs, whose landing page view
/// had a referrer of `referrer_domain` ([`Landing::of`]), keeps for the
/// read API.
pub(super) fn derived_columns(
    landing_page: Option<&str>,
    exit_page: Option<&str>,
    referrer_domain: Option<&str>,
) -> DerivedColumns {
    let mut landing = landing_page
        .map(|url| Landing::of(url, None))
        .unwrap_or_default();
    landing.referrer_domain = referrer_domain.map(str::to_owned);
    DerivedColumns {
        entry_path: landing_page.map(page_path),
        exit_path: exit_page.map(page_path),
        landing,
    }
}

pub(super) fn write_session(
    tx: &Transaction<'_>,
    state: &SessionState,
    derived: Derived<'_>,
) -> rusqlite::Result<()> {
    let s = &state.session;
    let k = &state.keys;
    // A key equal to the first is kept as the empty blob (`KEY_SELECT`
    // reads it back as the first): most of a visit's keys are.
    let key = |k: &Option<EventKey>| match k {
        Some(k) if k.0.is_empty() || Some(k) != state.keys.first.as_ref() => {
            Some(Value::Text(k.0.clone()))
        }
        Some(_) => Some(Value::Blob(Vec::new())),
        None => None,
    };
    let keys = [
        k.first.as_ref().map(|k| Value::Text(k.0.clone())),
        key(&k.last),
        key(&k.landing),
        key(&k.exit),
        key(&k.user),
        key(&k.geo),
        key(&k.agent),
        key(&k.end),
        k.end_event_id.clone().map(Value::Text),
    ];
    // Written whole before version 7 (`NotYet`: the migrations' tables).
    let origin = match derived {
        Derived::NotYet => None,
        Derived::With { origin, .. } => origin,
    };
    let kept = |url: &Option<String>| url.as_deref().map(|u| compact::kept_url(origin, u));
    let (landing_page, exit_page) = (kept(&s.landing_page), kept(&s.exit_page));
    let mut values: Vec<&dyn ToSql> = vec![
        &s.session_id,
        &s.site,
        &s.visitor_id,
        &s.user_id,
        &s.session_index,
        &s.started_at,
        &s.last_seen_at,
        &s.ended_at,
        &s.end_reason,
        &s.duration_ms,
        &landing_page,
        &exit_page,
        &s.source,
        &s.country,
        &s.region,
        &s.city,
        &s.browser,
        &s.os,
        &s.device_type,
        &s.event_count,
        &s.page_views,
        &s.is_bot,
    ];
    values.extend(keys.iter().map(|k| k as &dyn ToSql));
    let columns = match derived {
        Derived::NotYet => format!("{SESSION_COLUMNS}, {KEY_COLUMNS}"),
        Derived::With { .. } => format!("{SESSION_COLUMNS}, {KEY_COLUMNS}, {DERIVED_COLUMNS}"),
    };
    let d = match derived {
        Derived::NotYet => None,
        Derived::With {
            referrer_domain, ..
        } => Some(derived_columns(
            s.landing_page.as_deref(),
            s.exit_page.as_deref(),
            referrer_domain,
        )),
    };
    if let Some(d) = &d {
        values.extend([
            &d.entry_path as &dyn ToSql,
            &d.exit_path,
            &d.landing.referrer_domain,
            &d.landing.utm_source,
            &d.landing.utm_medium,
            &d.landing.utm_campaign,
            &d.landing.utm_term,
            &d.landing.utm_content,
        ]);
    }
    let sql = format!(
        "INSERT OR REPLACE INTO sessions ({columns}) VALUES ({})",
        value_list(&columns)
    );
    tx.prepare_cached(&sql)?.execute(values.as_slice())?;
    if state.ended_by_collector() {
        // The sweeper's visit_ended follows late activity.
        if let (Some(ended_at), Some(id)) = (s.ended_at, &k.end_event_id) {
            tx.prepare_cached(
                "UPDATE events SET ts = ?1, client_ts = NULL WHERE event_id = wm_pack(?2) AND ts <> ?1",
            )?
            .execute(params![ended_at, id])?;
        }
    }
    Ok(())
}
