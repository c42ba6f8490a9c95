//! The ClickHouse schema: `events`, and `sessions_agg` with the views that
//! keep it; the migrations; the SQL that reads sessions back.

use std::sync::atomic::Ordering;

use super::flat::{drop_session_keys, flat_schema, pages_schema, session_keys_schema};
use super::landing::{landing_schema, LANDING_AGGREGATES};
use super::split::split_schema;
use super::{timed, timed_for, Ch};
use crate::store::StoreError;

/// Version 1 of the schema: the events. `{db}` is the database.
const EVENTS_TABLE: &str = r"
    CREATE TABLE IF NOT EXISTS {db}.events (
        event_id String,
        site String,
        event_type String,
        name Nullable(String),
        ts UInt64,
        client_ts UInt64,
        received_at UInt64,
        session_id String,
        visitor_id String,
        user_id Nullable(String),
        session_index Nullable(UInt32),
        seq Nullable(UInt32),
        previous_session_id Nullable(String),
        storage Nullable(String),
        url String,
        title Nullable(String),
        referrer Nullable(String),
        props Nullable(String),
        context Nullable(String),
        country Nullable(String),
        region Nullable(String),
        city Nullable(String),
        browser Nullable(String),
        os Nullable(String),
        device_type Nullable(String),
        is_bot UInt8,
        event_key String,
        end_key String,
        source String,
        end_reason String,
        by_collector UInt8
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(toDateTime(intDiv(ts, 1000)))
    ORDER BY (site, session_id, event_id)
";

/// One statement of a migration step, idempotent, so collectors starting
/// together may all run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Statement {
    /// SQL that is idempotent by itself (`IF NOT EXISTS`, or an insert of
    /// aggregate states that merge to the same).
    Sql(String),
    /// `ALTER TABLE {db}.{table} ADD COLUMN {column} {definition}`, unless
    /// the column is there: ClickHouse 18.16 has no `ADD COLUMN IF NOT
    /// EXISTS`.
    AddColumn {
        table: &'static str,
        column: String,
        definition: String,
    },
}

impl Statement {
    /// The SQL sent for it on database `db` when it has something to do:
    /// for [`AddColumn`](Self::AddColumn), the `ALTER` sent when the column
    /// is missing.
    pub(crate) fn sql(&self, db: &str) -> String {
        match self {
            Statement::Sql(sql) => sql.clone(),
            Statement::AddColumn {
                table,
                column,
                definition,
            } => format!("ALTER TABLE {db}.{table} ADD COLUMN {column} {definition}"),
        }
    }
}

/// The schema by version, as the statements of each step.
pub(crate) fn migrations(db: &str) -> Vec<Vec<Statement>> {
    let sql = |statements: Vec<String>| statements.into_iter().map(Statement::Sql).collect();
    vec![
        sql(vec![EVENTS_TABLE.replace("{db}", db)]),
        sql(sessions_schema(db)),
        landing_schema(db),
        flat_schema(db),
        session_keys_schema(db),
        pages_schema(db),
        drop_session_keys(db),
        split_schema(db),
    ]
}

/// The statements around the steps: the database and the table of the
/// versions applied, what [`Ch::migrate`] runs before any step.
pub(super) fn bookkeeping(db: &str) -> [String; 2] {
    [
        format!("CREATE DATABASE IF NOT EXISTS {db}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.schema_migrations \
             (version UInt32, applied_at UInt64) ENGINE = TinyLog"
        ),
    ]
}

/// The newest version applied (0 for none): one row.
pub(super) fn applied_version(db: &str) -> String {
    format!("SELECT max(version) FROM {db}.schema_migrations")
}

/// Records that `version` was applied at `now` (epoch ms).
pub(super) fn record_version(db: &str, version: u32, now: u64) -> String {
    format!("INSERT INTO {db}.schema_migrations VALUES ({version}, {now})")
}

impl Ch {
    /// Creates the database and brings the schema up to date.
    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        if self.migrated.load(Ordering::Acquire) {
            return Ok(());
        }
        let db = &self.db;
        for sql in bookkeeping(db) {
            timed(self.client.query(&sql).execute()).await?;
        }
        let found: u32 = timed(self.client.query(&applied_version(db)).fetch_one::<u32>()).await?;
        for (version, step) in (1u32..)
            .zip(migrations(db))
            .skip_while(|(v, _)| *v <= found)
        {
            for statement in step {
                self.apply(statement).await?;
            }
            let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
            timed(
                self.client
                    .query(&record_version(db, version, now))
                    .execute(),
            )
            .await?;
            tracing::info!(version, "migrated the ClickHouse schema");
        }
        self.migrated.store(true, Ordering::Release);
        Ok(())
    }

    /// Runs one statement of a migration (raw: no `?` is a bound argument).
    async fn apply(&self, statement: Statement) -> Result<(), StoreError> {
        let db = &self.db;
        let sql = statement.sql(db);
        let (table, column) = match &statement {
            Statement::Sql(_) => {
                // A step's fill reads every event or session there is.
                return timed_for(MIGRATION_TIMEOUT, self.client.query_raw(&sql).execute()).await;
            }
            Statement::AddColumn { table, column, .. } => (*table, column),
        };
        let exists = || async {
            timed(
                self.client
                    .query(
                        "SELECT count() FROM system.columns \
                         WHERE database = ? AND table = ? AND name = ?",
                    )
                    .bind(db)
                    .bind(table)
                    .bind(column)
                    .fetch_one::<u64>(),
            )
            .await
            .map(|n| n > 0)
        };
        if exists().await? {
            return Ok(());
        }
        match timed_for(MIGRATION_TIMEOUT, self.client.query_raw(&sql).execute()).await {
            // Another collector may have added it meanwhile.
            Err(err) if exists().await? => {
                tracing::debug!(error = %err, column, "the column was added meanwhile");
                Ok(())
            }
            done => done,
        }
    }
}

/// The longest one migration statement may take: the fills of versions 2
/// and 3 aggregate every event stored, minutes for tens of millions.
const MIGRATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3_600);

/// The conditions the session rules pick events by, over an `events` row.
const ACT: &str = "toUInt8(event_type != 'visit_ended')";
const END: &str = "toUInt8(event_type = 'visit_ended')";
const PV: &str = "toUInt8(event_type = 'page_view')";
const GEO: &str = "toUInt8(isNotNull(country))";
const AGENT: &str = "toUInt8(isNotNull(browser) OR isNotNull(device_type))";
const USER: &str = "toUInt8(isNotNull(user_id))";

/// One aggregate a session keeps in `sessions_agg`: its column, function,
/// arguments over an `events` row (with `{act}`, `{end}`, … for the
/// conditions above) and their types.
pub(super) struct Aggregate(
    pub(super) &'static str,
    pub(super) &'static str,
    pub(super) &'static str,
    pub(super) &'static str,
);

/// The session rules of [`crate::session`] as aggregates: activity is any
/// event but `visit_ended`; the first activity (by event key) gives site,
/// visitor, index and start, the last the last-seen time; the first and last
/// page views the landing and exit pages, the landing page the source; the
/// first event with geo (with a browser or device) the place (the agent);
/// the latest with a user id the user; the least end key the end. Each is a
/// minimum, a maximum or a distinct count, so duplicates and arrival order
/// change nothing, and states merged from any split of the events are the
/// states of all of them.
pub(super) const AGGREGATES: &[Aggregate] = &[
    Aggregate("has_act", "max", "{act}", "UInt8"),
    Aggregate("has_end", "max", "{end}", "UInt8"),
    Aggregate("has_pv", "max", "{pv}", "UInt8"),
    Aggregate("has_geo", "max", "{geo}", "UInt8"),
    Aggregate("has_agent", "max", "{agent}", "UInt8"),
    Aggregate("has_user", "max", "{user}", "UInt8"),
    Aggregate(
        "site_act",
        "argMinIf",
        "site, event_key, {act}",
        "String, String, UInt8",
    ),
    Aggregate(
        "site_end",
        "argMinIf",
        "site, end_key, {end}",
        "String, String, UInt8",
    ),
    Aggregate(
        "visitor_act",
        "argMinIf",
        "visitor_id, event_key, {act}",
        "String, String, UInt8",
    ),
    Aggregate(
        "visitor_end",
        "argMinIf",
        "visitor_id, end_key, {end}",
        "String, String, UInt8",
    ),
    Aggregate(
        "user",
        "argMaxIf",
        "assumeNotNull(user_id), event_key, {user}",
        "String, String, UInt8",
    ),
    Aggregate(
        "index_act",
        "argMinIf",
        "toUInt32(ifNull(session_index, 0)), event_key, {act}",
        "UInt32, String, UInt8",
    ),
    Aggregate(
        "index_end",
        "argMinIf",
        "toUInt32(ifNull(session_index, 0)), end_key, {end}",
        "UInt32, String, UInt8",
    ),
    Aggregate("first_ts", "minIf", "ts, {act}", "UInt64, UInt8"),
    Aggregate("last_ts", "maxIf", "ts, {act}", "UInt64, UInt8"),
    Aggregate(
        "end_ts",
        "argMinIf",
        "ts, end_key, {end}",
        "UInt64, String, UInt8",
    ),
    Aggregate(
        "end_by_collector",
        "argMinIf",
        "by_collector, end_key, {end}",
        "UInt8, String, UInt8",
    ),
    Aggregate(
        "end_reason",
        "argMinIf",
        "end_reason, end_key, {end}",
        "String, String, UInt8",
    ),
    Aggregate(
        "landing",
        "argMinIf",
        "url, event_key, {pv}",
        "String, String, UInt8",
    ),
    Aggregate(
        "exit",
        "argMaxIf",
        "url, event_key, {pv}",
        "String, String, UInt8",
    ),
    Aggregate(
        "source",
        "argMinIf",
        "source, event_key, {pv}",
        "String, String, UInt8",
    ),
    Aggregate(
        "country",
        "argMinIf",
        "assumeNotNull(country), event_key, {geo}",
        "String, String, UInt8",
    ),
    Aggregate(
        "region",
        "argMinIf",
        "ifNull(region, ''), event_key, {geo}",
        "String, String, UInt8",
    ),
    Aggregate(
        "city",
        "argMinIf",
        "ifNull(city, ''), event_key, {geo}",
        "String, String, UInt8",
    ),
    Aggregate(
        "browser",
        "argMinIf",
        "ifNull(browser, ''), event_key, {agent}",
        "String, String, UInt8",
    ),
    Aggregate(
        "os",
        "argMinIf",
        "ifNull(os, ''), event_key, {agent}",
        "String, String, UInt8",
    ),
    Aggregate(
        "device",
        "argMinIf",
        "ifNull(device_type, ''), event_key, {agent}",
        "String, String, UInt8",
    ),
    Aggregate(
        "event_count",
        "uniqExactIf",
        "event_id, {act}",
        "String, UInt8",
    ),
    Aggregate(
        "page_views",
        "uniqExactIf",
        "event_id, {pv}",
        "String, UInt8",
    ),
    Aggregate("is_bot", "max", "is_bot", "UInt8"),
];

impl Aggregate {
    /// Its arguments, with the conditions filled in.
    pub(super) fn args(&self) -> String {
        self.2
            .replace("{act}", ACT)
            .replace("{end}", END)
            .replace("{pv}", PV)
            .replace("{geo}", GEO)
            .replace("{agent}", AGENT)
            .replace("{user}", USER)
    }
}

/// The steps of schema version 2: `sessions_agg`, kept by a materialised
/// view on every insert into `events`, filled from the events already there
/// (which the view may also have seen: the aggregates do not mind).
fn sessions_schema(db: &str) -> Vec<String> {
    let columns: Vec<String> = AGGREGATES
        .iter()
        .map(|a| format!("a_{} AggregateFunction({}, {})", a.0, a.1, a.3))
        .collect();
    let select = sessions_select(db, AGGREGATES.iter());
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.sessions_agg (site String, session_id String, {}) \
             ENGINE = AggregatingMergeTree ORDER BY (site, session_id)",
            columns.join(", ")
        ),
        format!("CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.sessions_mv TO {db}.sessions_agg AS {select}"),
        format!("INSERT INTO {db}.sessions_agg {select}"),
    ]
}

/// The states of `aggregates` per session of `events`: what
/// `sessions_agg` is kept from.
pub(super) fn sessions_select<'a>(
    db: &str,
    aggregates: impl Iterator<Item = &'a Aggregate>,
) -> String {
    let states: Vec<String> = aggregates
        .map(|a| format!("{}State({}) AS a_{}", a.1, a.args(), a.0))
        .collect();
    format!(
        "SELECT site, session_id, {} FROM {db}.events GROUP BY site, session_id",
        states.join(", ")
    )
}

/// A session's columns as reads see them, in order: name, type, and the
/// SQL that makes it from the merged aggregates (`m_*`) of `sessions_agg`
/// (an expression may use a column named before it). `sessions_flat` has
/// the same columns.
pub(super) const SESSION_FIELDS: &[(&str, &str, &str)] = &[
    ("session_id", "String", "session_id"),
    ("site", "String", "site"),
    ("visitor_id", "String", "if(m_has_act, m_visitor_act, m_visitor_end)"),
    ("user_id", "Nullable(String)", "if(m_has_user, toNullable(m_user), NULL)"),
    ("session_index", "Nullable(UInt32)", "nullIf(if(m_has_act, m_index_act, m_index_end), 0)"),
    ("started_at", "UInt64", "if(m_has_act, m_first_ts, m_end_ts)"),
    ("last_seen_at", "UInt64", "if(m_has_act, m_last_ts, m_end_ts)"),
    ("ended_at", "Nullable(UInt64)", "if(m_has_end, toNullable(if(m_end_by_collector = 1, greatest(m_end_ts, last_seen_at), m_end_ts)), NULL)"),
    ("end_reason", "Nullable(String)", "if(m_has_end, toNullable(m_end_reason), NULL)"),
    ("duration_ms", "UInt64", "toUInt64(last_seen_at - started_at)"),
    ("landing_page", "Nullable(String)", "if(m_has_pv, toNullable(m_landing), NULL)"),
    ("exit_page", "Nullable(String)", "if(m_has_pv, toNullable(m_exit), NULL)"),
    ("source", "String", "if(m_has_pv, m_source, 'direct')"),
    ("country", "Nullable(String)", "if(m_has_geo, toNullable(m_country), NULL)"),
    ("region", "Nullable(String)", "if(m_has_geo, nullIf(m_region, ''), NULL)"),
    ("city", "Nullable(String)", "if(m_has_geo, nullIf(m_city, ''), NULL)"),
    ("browser", "Nullable(String)", "if(m_has_agent, nullIf(m_browser, ''), NULL)"),
    ("os", "Nullable(String)", "if(m_has_agent, nullIf(m_os, ''), NULL)"),
    ("device_type", "Nullable(String)", "if(m_has_agent, nullIf(m_device, ''), NULL)"),
    ("event_count", "UInt64", "m_event_count"),
    ("page_views", "UInt64", "m_page_views"),
    ("is_bot", "UInt8", "m_is_bot"),
    ("entry_path", "Nullable(String)", "if(m_has_pv, toNullable(m_entry_path), NULL)"),
    ("exit_path", "Nullable(String)", "if(m_has_pv, toNullable(m_exit_path), NULL)"),
    ("referrer_domain", "Nullable(String)", "if(m_has_pv, nullIf(m_referrer_domain, ''), NULL)"),
    ("utm_source", "Nullable(String)", "if(m_has_pv, nullIf(m_utm_source, ''), NULL)"),
    ("utm_medium", "Nullable(String)", "if(m_has_pv, nullIf(m_utm_medium, ''), NULL)"),
    ("utm_campaign", "Nullable(String)", "if(m_has_pv, nullIf(m_utm_campaign, ''), NULL)"),
    ("utm_term", "Nullable(String)", "if(m_has_pv, nullIf(m_utm_term, ''), NULL)"),
    ("utm_content", "Nullable(String)", "if(m_has_pv, nullIf(m_utm_content, ''), NULL)"),
];

/// The sessions of `sessions_agg` rows matching `filter` (on `site`), as
/// [`Session`](crate::Session) columns, the read API's per-session
/// dimensions (`entry_path`, `exit_path`, `referrer_domain`, `utm_*`) and
/// the merged aggregates, `m_*`:
/// one per `(site, session_id)`, so another site's events under the same
/// session id never merge into a session.
pub(crate) fn sessions_sql(db: &str, filter: &str) -> String {
    let merged: Vec<String> = AGGREGATES
        .iter()
        .chain(LANDING_AGGREGATES)
        .map(|a| format!("{}Merge(a_{}) AS m_{}", a.1, a.0, a.0))
        .collect();
    let columns: Vec<String> = SESSION_FIELDS
        .iter()
        .map(|(name, _, sql)| {
            if name == sql {
                (*name).to_owned()
            } else {
                format!("{sql} AS {name}")
            }
        })
        .collect();
    format!(
        "SELECT {} FROM (SELECT site, session_id, {} FROM {db}.sessions_agg WHERE {filter} \
         GROUP BY site, session_id)",
        columns.join(", "),
        merged.join(", ")
    )
}
