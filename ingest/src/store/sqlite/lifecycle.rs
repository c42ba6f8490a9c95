//! Retention, erasure and backup of the SQLite store.
//!
//! Every table is in [`TABLES`]; those holding personal data are keyed by
//! `(site, session_id)`, and both erasure and retention remove whole
//! sessions from each of them, in the writer's transaction (so an append
//! never sees half an erasure), then from the read index. Retention goes
//! a few hundred sessions at a time, so no transaction holds the writer
//! for long.

use std::path::Path;

use rusqlite::{params, params_from_iter, Connection, OpenFlags, Transaction};

use crate::read::Person;
use crate::store::lifecycle::{Erasure, Expiry, Table, TableRole};
use crate::store::StoreError;

/// Every table of the SQLite store; a test compares this list with
/// `sqlite_master`. `events` and `sessions` hold personal data, keyed by
/// `(site, session_id)`. `enrichments` is a dictionary of the distinct
/// (country, region, city, browser, OS, device type, bot) combinations the
/// events name: a row names no one once its events are gone, and it stays.
/// `origins` holds each site's own origin, which its URLs are kept under
/// (schema version 7): the site's address, no visitor's, and it stays.
/// `events_readable` and `sessions_readable` are views of the two.
pub(super) const TABLES: &[Table] = &[
    Table {
        name: "events",
        role: TableRole::Personal,
    },
    Table {
        name: "sessions",
        role: TableRole::Personal,
    },
    Table {
        name: "enrichments",
        role: TableRole::NoPersonalData,
    },
    Table {
        name: "origins",
        role: TableRole::NoPersonalData,
    },
    Table {
        name: "events_readable",
        role: TableRole::View,
    },
    Table {
        name: "sessions_readable",
        role: TableRole::View,
    },
];

/// What the writer removed, for the read index and the answer.
#[derive(Debug, Default)]
pub(super) struct Removed {
    /// The sessions removed, by site and session id.
    pub keys: Vec<(String, String)>,
    /// The visitor ids erased (none for retention).
    pub visitors: Vec<String>,
    /// Rows removed per personal table, in [`TABLES`] order.
    pub rows: Vec<(&'static str, u64)>,
}

impl Removed {
    fn count(&self, table: &str) -> u64 {
        self.rows
            .iter()
            .filter(|(t, _)| *t == table)
            .map(|(_, n)| n)
            .sum()
    }

    /// The answer of an erasure.
    pub(super) fn erasure(&self) -> Erasure {
        Erasure {
            visitor_ids: self.visitors.clone(),
            sessions: self.count("sessions"),
            events: self.count("events"),
            tables: self.rows.iter().copied().collect(),
            pending: Vec::new(),
        }
    }

    /// The answer of a retention pass of `limit` sessions.
    pub(super) fn expiry(&self, limit: usize) -> Expiry {
        Expiry {
            sessions: self.count("sessions"),
            events: self.count("events"),
            more: self.keys.len() >= limit,
        }
    }
}

/// The visitors ever linked to a user id: those of its events, read
/// before the erasure by the reader (a scan of `events`, which has no
/// index on `user_id`, kept out of the writer).
pub(super) fn linked_visitors(conn: &Connection, user_id: &str) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached("SELECT DISTINCT wm_text(visitor_id) FROM events WHERE user_id = ?1")?
        .query_map(params![user_id], |r| r.get(0))?
        .collect()
}

/// The visitors a person is: a visitor; or for a user `linked` (see
/// [`linked_visitors`]) and each visitor with a session whose user id is
/// the user's (which takes in the events since `linked` was read).
fn visitors_of(
    tx: &Transaction<'_>,
    person: &Person,
    linked: &[String],
) -> rusqlite::Result<Vec<String>> {
    let mut visitors = match person {
        Person::Visitor(id) => vec![id.clone()],
        Person::User(id) => tx
            .prepare_cached("SELECT DISTINCT wm_text(visitor_id) FROM sessions WHERE user_id = ?1")?
            .query_map(params![id], |r| r.get(0))?
            .collect::<Result<_, _>>()?,
    };
    visitors.extend(linked.iter().cloned());
    visitors.sort_unstable();
    visitors.dedup();
    Ok(visitors)
}

/// Removes every session of the person's visitors (`linked`: those read
/// before, see [`visitors_of`]), with its events, from every table of
/// [`TABLES`].
pub(super) fn erase(
    tx: &Transaction<'_>,
    person: &Person,
    linked: &[String],
) -> rusqlite::Result<Removed> {
    let visitors = visitors_of(tx, person, linked)?;
    let mut keys = Vec::new();
    for visitor in &visitors {
        let mut stmt = tx.prepare_cached(
            "SELECT site, wm_text(session_id) FROM sessions WHERE visitor_id = wm_pack(?1) \
             ORDER BY started_at",
        )?;
        let found = stmt.query_map(params![visitor], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for key in found {
            keys.push(key?);
        }
    }
    let mut removed = remove_sessions(tx, keys)?;
    removed.visitors = visitors;
    Ok(removed)
}

/// Removes up to `limit` sessions started before `started_before`, oldest
/// first, with their events.
pub(super) fn expire(
    tx: &Transaction<'_>,
    started_before: u64,
    limit: usize,
) -> rusqlite::Result<Removed> {
    let keys: Vec<(String, String)> = tx
        .prepare_cached(
            "SELECT site, wm_text(session_id) FROM sessions WHERE started_at < ?1 \
             ORDER BY started_at, session_id LIMIT ?2",
        )?
        .query_map(
            params![started_before, i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .collect::<Result<_, _>>()?;
    remove_sessions(tx, keys)
}

/// Deletes the rows of these sessions from every personal table.
fn remove_sessions(tx: &Transaction<'_>, keys: Vec<(String, String)>) -> rusqlite::Result<Removed> {
    let mut rows = Vec::new();
    for table in TABLES.iter().filter(|t| t.role == TableRole::Personal) {
        let sql = format!(
            "DELETE FROM {} WHERE site = ?1 AND session_id = wm_pack(?2)",
            table.name
        );
        let mut stmt = tx.prepare_cached(&sql)?;
        let mut n = 0u64;
        for (site, id) in &keys {
            n += stmt.execute(params![site, id])? as u64;
        }
        rows.push((table.name, n));
    }
    Ok(Removed {
        keys,
        visitors: Vec::new(),
        rows,
    })
}

/// Copies the store in `data_dir` into a new file `to`, consistently, while
/// a collector may be writing it: SQLite's `VACUUM INTO` reads one snapshot
/// (every transaction committed before it started, none after) in a read
/// transaction, which WAL mode runs beside the writer. Refuses to write
/// over an existing file. The copy is a store: open its folder as `--data`
/// (after naming it `waymark.db`).
pub fn backup(data_dir: &Path, to: &Path) -> Result<(), StoreError> {
    let path = data_dir.join(super::DB_FILE_NAME);
    if !path.is_file() {
        return Err(StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no store at {}", path.display()),
        )));
    }
    if to.exists() {
        return Err(StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} exists; the backup writes a new file", to.display()),
        )));
    }
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(super::BUSY_TIMEOUT)?;
    let target = to.to_string_lossy().into_owned();
    conn.execute("VACUUM INTO ?1", params_from_iter([target]))?;
    Ok(())
}
