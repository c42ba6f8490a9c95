//! Retention and erasure of the ClickHouse store: `ALTER TABLE … DELETE`
//! mutations (ClickHouse 18.16 has them; it has no table TTL, which came in
//! 19.6, and the monthly partitions of `events`, by event time, are not
//! exact for a retention in days by session start).
//!
//! Both first ship the spool ([`EventSink::sync`]): every event
//! acknowledged before the call is in ClickHouse before the deletes are
//! asked for, so none of those can come back from the spool afterwards.
//! Then they find the sessions (by `(site, session_id)`), count their rows
//! and ask each table of [`TABLES`] that holds personal data to delete
//! them, and wait for the mutations (up to [`MUTATION_WAIT`], so the
//! answer comes within the request timeout); those still
//! running are reported as pending. A mutation applies to the parts that
//! exist when it is made: events inserted after it (acknowledged after the
//! call began) stay, and start a new history.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::flat::sessions_read_sql;
use super::reports::literal;
use super::{timed, ClickHouseStore};
use crate::read::Person;
use crate::store::lifecycle::{Erasure, Expiry, Table, TableRole};
use crate::store::{EventSink, StoreError};

/// What [`ClickHouseStore::remove_selected`] did: the sessions' keys, the
/// rows removed from each table, and the tables still deleting.
struct Removed {
    keys: Vec<(String, String)>,
    tables: BTreeMap<&'static str, u64>,
    pending: Vec<String>,
}

impl Removed {
    /// The sessions removed (rows of `sessions_agg`).
    fn sessions(&self) -> u64 {
        self.tables.get("sessions_agg").copied().unwrap_or(0)
    }

    /// The events removed.
    fn events(&self) -> u64 {
        self.tables.get("events").copied().unwrap_or(0)
    }
}

/// Every table of the ClickHouse store's database; a test compares this
/// list with `system.tables`.
pub(super) const TABLES: &[Table] = &[
    Table {
        name: "events",
        role: TableRole::Personal,
    },
    Table {
        name: "sessions_agg",
        role: TableRole::Personal,
    },
    Table {
        name: "sessions_mv",
        role: TableRole::View,
    },
    Table {
        name: "sessions_touched",
        role: TableRole::Personal,
    },
    Table {
        name: "sessions_touched_mv",
        role: TableRole::View,
    },
    Table {
        name: "sessions_flat",
        role: TableRole::Personal,
    },
    Table {
        name: "compactions",
        role: TableRole::NoPersonalData,
    },
    // Cuts between session ids, each a prefix of one (`split.rs`).
    Table {
        name: "flat_splits",
        role: TableRole::NoPersonalData,
    },
    Table {
        name: "schema_migrations",
        role: TableRole::NoPersonalData,
    },
];

/// How long an erasure or a retention pass waits for its mutations.
pub(super) const MUTATION_WAIT: Duration = Duration::from_secs(15);

/// How long the spool may take to ship before an erasure gives up (and
/// the caller retries): ClickHouse is unreachable.
const SHIP_WAIT: Duration = Duration::from_secs(10);

/// Sessions named in one `DELETE` mutation.
const KEYS_PER_MUTATION: usize = 1000;

impl ClickHouseStore {
    /// Ships what the spool holds, within [`SHIP_WAIT`].
    async fn ship_first(&self) -> Result<(), StoreError> {
        match tokio::time::timeout(SHIP_WAIT, self.sync()).await {
            Ok(done) => done,
            Err(_) => Err(StoreError::Commit(
                "the spool could not be shipped to ClickHouse in time; nothing was erased, retry"
                    .to_owned(),
            )),
        }
    }

    /// The visitor ids of a person: a visitor, or every visitor whose
    /// events ever carried the user id.
    async fn visitors_of(&self, person: &Person) -> Result<Vec<String>, StoreError> {
        match person {
            Person::Visitor(id) => Ok(vec![id.clone()]),
            Person::User(id) => {
                let sql = format!(
                    "SELECT DISTINCT visitor_id FROM {}.events WHERE user_id = {} \
                     ORDER BY visitor_id",
                    self.ch.db,
                    literal(id)
                );
                timed(self.ch.client.query_raw(&sql).fetch_all::<String>()).await
            }
        }
    }

    pub(super) async fn erase_now(&self, person: Person) -> Result<Erasure, StoreError> {
        self.ship_first().await?;
        self.ch.migrate().await?;
        let visitors = self.visitors_of(&person).await?;
        if visitors.is_empty() {
            return Ok(Erasure::default());
        }
        let list = visitors
            .iter()
            .map(|v| literal(v))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT DISTINCT site, session_id FROM {}.events WHERE visitor_id IN ({list})",
            self.ch.db
        );
        let removed = self.remove_selected(&sql).await?;
        Ok(Erasure {
            visitor_ids: visitors,
            sessions: removed.sessions(),
            events: removed.events(),
            tables: removed.tables,
            pending: removed.pending,
        })
    }

    pub(super) async fn expire_now(
        &self,
        started_before: u64,
        limit: usize,
    ) -> Result<Expiry, StoreError> {
        self.ship_first().await?;
        self.ch.migrate().await?;
        let before = self.mirror.mutations_now(&self.ch).await?;
        let sql = format!(
            "SELECT site, session_id FROM ({}) WHERE started_at < {started_before} \
             ORDER BY started_at, session_id LIMIT {limit}",
            sessions_read_sql(&self.ch.db, "1", None, "site, session_id, started_at", None)
        );
        let removed = self.remove_selected(&sql).await?;
        self.mirror
            .expired(&self.ch, &removed.keys, KEYS_PER_MUTATION, &before)
            .await;
        if !removed.pending.is_empty() {
            tracing::warn!(tables = ?removed.pending, "retention: ClickHouse is still deleting");
        }
        Ok(Expiry {
            sessions: removed.sessions(),
            events: removed.events(),
            more: removed.keys.len() >= limit,
        })
    }

    /// Removes the sessions `sql` selects (rows of `site, session_id`) from
    /// every table that holds personal data and forgets their cached counts.
    async fn remove_selected(&self, sql: &str) -> Result<Removed, StoreError> {
        let keys = timed(
            self.ch
                .client
                .query_raw(sql)
                .fetch_all::<(String, String)>(),
        )
        .await?;
        let (tables, pending) = self.remove_sessions(&keys).await?;
        self.counts.forget(&keys);
        Ok(Removed {
            keys,
            tables,
            pending,
        })
    }

    /// Counts the rows of these sessions in each personal table, asks each
    /// to delete them and waits for the mutations: the counts, and the
    /// tables whose mutations were still running.
    async fn remove_sessions(
        &self,
        keys: &[(String, String)],
    ) -> Result<(BTreeMap<&'static str, u64>, Vec<String>), StoreError> {
        let db = &self.ch.db;
        let mut counts = BTreeMap::new();
        let personal: Vec<&Table> = TABLES
            .iter()
            .filter(|t| t.role == TableRole::Personal)
            .collect();
        for table in &personal {
            counts.insert(table.name, 0);
        }
        if keys.is_empty() {
            return Ok((counts, Vec::new()));
        }
        // No compaction of this collector's until the deletes are done
        // ([`Ch::removing`](super::Ch)).
        let _no_compaction = self.ch.removing.lock().await;
        let started = Instant::now();
        for chunk in keys.chunks(KEYS_PER_MUTATION) {
            let tuples = chunk
                .iter()
                .map(|(site, id)| format!("({}, {})", literal(site), literal(id)))
                .collect::<Vec<_>>()
                .join(", ");
            let filter = format!("(site, session_id) IN ({tuples})");
            for table in &personal {
                // Rows not yet merged are counted once.
                let distinct = match table.name {
                    "events" => "event_id",
                    _ => "site, session_id",
                };
                let sql = format!(
                    "SELECT uniqExact({distinct}) FROM {db}.{} WHERE {filter}",
                    table.name
                );
                let n = timed(self.ch.client.query_raw(&sql).fetch_one::<u64>()).await?;
                *counts.entry(table.name).or_default() += n;
                let sql = format!("ALTER TABLE {db}.{} DELETE WHERE {filter}", table.name);
                timed(self.ch.client.query_raw(&sql).execute()).await?;
            }
        }
        let pending = self.wait_for_mutations(started + MUTATION_WAIT).await?;
        Ok((counts, pending))
    }

    /// Waits until no mutation of the database's tables is running, or
    /// `deadline`: the tables still being mutated then.
    async fn wait_for_mutations(&self, deadline: Instant) -> Result<Vec<String>, StoreError> {
        let sql = format!(
            "SELECT DISTINCT table FROM system.mutations \
             WHERE database = {} AND is_done = 0 ORDER BY table",
            literal(&self.ch.db)
        );
        loop {
            let running = timed(self.ch.client.query_raw(&sql).fetch_all::<String>()).await?;
            if running.is_empty() || Instant::now() >= deadline {
                return Ok(running);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
