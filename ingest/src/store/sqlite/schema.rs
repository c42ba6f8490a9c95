//! The SQLite schema: its migrations, the rebuild of sessions from the
//! events stored before sessions were kept, and the backfill of what the
//! read API groups by (version 4).

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, Transaction, TransactionBehavior};

use super::rows::event_from_row;
use super::writer::{derived_columns, write_session, Derived};
use crate::read::{page_path, Landing};
use crate::session::{EndDecision, SessionState};
use crate::store::StoreError;

/// The schema this build writes, kept in `PRAGMA user_version`.
pub(super) const SCHEMA_VERSION: i64 = 7;

/// Rows the version-4 backfill reads and updates at a time.
const BACKFILL_CHUNK: i64 = 10_000;

/// Migrations by the `user_version` they lead to; index 0 leads to 1.
pub(super) const MIGRATIONS: &[&str] = &[
    r"
    CREATE TABLE events (
        event_id    TEXT PRIMARY KEY NOT NULL,
        site        TEXT NOT NULL,
        type        TEXT NOT NULL,
        name        TEXT,
        ts          INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        session_id  TEXT NOT NULL,
        visitor_id  TEXT NOT NULL,
        user_id     TEXT,
        session_index INTEGER,
        seq         INTEGER,
        previous_session_id TEXT,
        storage     TEXT,
        url         TEXT NOT NULL,
        title       TEXT,
        referrer    TEXT,
        props       TEXT,
        context     TEXT
    );
    CREATE INDEX events_site_session_ts ON events (site, session_id, ts);
    CREATE INDEX events_session_ts ON events (session_id, ts);
",
    r"
    ALTER TABLE events ADD COLUMN client_ts INTEGER;
    ALTER TABLE events ADD COLUMN country TEXT;
    ALTER TABLE events ADD COLUMN region TEXT;
    ALTER TABLE events ADD COLUMN city TEXT;
    ALTER TABLE events ADD COLUMN browser TEXT;
    ALTER TABLE events ADD COLUMN os TEXT;
    ALTER TABLE events ADD COLUMN device_type TEXT;
    ALTER TABLE events ADD COLUMN is_bot INTEGER NOT NULL DEFAULT 0;
    UPDATE events SET client_ts = ts;
    CREATE TABLE sessions (
        session_id    TEXT PRIMARY KEY NOT NULL,
        site          TEXT NOT NULL,
        visitor_id    TEXT NOT NULL,
        user_id       TEXT,
        session_index INTEGER,
        started_at    INTEGER NOT NULL,
        last_seen_at  INTEGER NOT NULL,
        ended_at      INTEGER,
        end_reason    TEXT,
        duration_ms   INTEGER NOT NULL,
        landing_page  TEXT,
        exit_page     TEXT,
        source        TEXT NOT NULL,
        country       TEXT,
        region        TEXT,
        city          TEXT,
        browser       TEXT,
        os            TEXT,
        device_type   TEXT,
        event_count   INTEGER NOT NULL,
        page_views    INTEGER NOT NULL,
        is_bot        INTEGER NOT NULL,
        -- Which event decided each merged field (see session.rs).
        first_key     TEXT,
        last_key      TEXT,
        landing_key   TEXT,
        exit_key      TEXT,
        user_key      TEXT,
        geo_key       TEXT,
        agent_key     TEXT,
        end_key       TEXT,
        end_event_id  TEXT
    );
    CREATE INDEX sessions_started ON sessions (started_at, session_id);
    CREATE INDEX sessions_site_started ON sessions (site, started_at, session_id);
    CREATE INDEX sessions_open ON sessions (last_seen_at) WHERE ended_at IS NULL;
    CREATE INDEX sessions_visitor ON sessions (visitor_id, started_at);
    CREATE INDEX sessions_user ON sessions (user_id, started_at);
",
    // Sessions keyed by (site, session_id), not session_id alone: every row
    // copied over as it is; the sessions of ids more than one site used are
    // then rebuilt from their events, per site (see `migrate`).
    r"
    CREATE TABLE sessions_by_site (
        session_id    TEXT NOT NULL,
        site          TEXT NOT NULL,
        visitor_id    TEXT NOT NULL,
        user_id       TEXT,
        session_index INTEGER,
        started_at    INTEGER NOT NULL,
        last_seen_at  INTEGER NOT NULL,
        ended_at      INTEGER,
        end_reason    TEXT,
        duration_ms   INTEGER NOT NULL,
        landing_page  TEXT,
        exit_page     TEXT,
        source        TEXT NOT NULL,
        country       TEXT,
        region        TEXT,
        city          TEXT,
        browser       TEXT,
        os            TEXT,
        device_type   TEXT,
        event_count   INTEGER NOT NULL,
        page_views    INTEGER NOT NULL,
        is_bot        INTEGER NOT NULL,
        first_key     TEXT,
        last_key      TEXT,
        landing_key   TEXT,
        exit_key      TEXT,
        user_key      TEXT,
        geo_key       TEXT,
        agent_key     TEXT,
        end_key       TEXT,
        end_event_id  TEXT,
        PRIMARY KEY (site, session_id)
    );
    INSERT INTO sessions_by_site SELECT * FROM sessions;
    DROP TABLE sessions;
    ALTER TABLE sessions_by_site RENAME TO sessions;
    CREATE INDEX sessions_id ON sessions (session_id);
    CREATE INDEX sessions_started ON sessions (started_at, session_id);
    CREATE INDEX sessions_site_started ON sessions (site, started_at, session_id);
    CREATE INDEX sessions_open ON sessions (last_seen_at) WHERE ended_at IS NULL;
    CREATE INDEX sessions_visitor ON sessions (visitor_id, started_at);
    CREATE INDEX sessions_user ON sessions (user_id, started_at);
",
    // What the read API groups and filters by: each page view's path, and
    // per session the paths of its entry and exit pages and its landing
    // page view's campaign and referrer's domain (filled in by `backfill`).
    r"
    ALTER TABLE events ADD COLUMN path TEXT;
    ALTER TABLE sessions ADD COLUMN entry_path TEXT;
    ALTER TABLE sessions ADD COLUMN exit_path TEXT;
    ALTER TABLE sessions ADD COLUMN referrer_domain TEXT;
    ALTER TABLE sessions ADD COLUMN utm_source TEXT;
    ALTER TABLE sessions ADD COLUMN utm_medium TEXT;
    ALTER TABLE sessions ADD COLUMN utm_campaign TEXT;
    ALTER TABLE sessions ADD COLUMN utm_term TEXT;
    ALTER TABLE sessions ADD COLUMN utm_content TEXT;
    CREATE INDEX sessions_site_seen ON sessions (site, last_seen_at);
",
    // Every read of a session's events names its site, which
    // `events_site_session_ts` serves; this second index cost about 55 B
    // of the 600 B an event took.
    r"
    DROP INDEX IF EXISTS events_session_ts;
",
];

/// Version 6, made in a new file (`up`, attached) from the version-5 tables:
/// ids and merge keys packed into their bytes (see `packed`; a merge key
/// equal to the visit's first as the empty blob), each distinct
/// enrichment kept once, `client_ts` only where it differs from `ts`. Both
/// tables are copied in their order and their indexes made anew, so the
/// file is as compact as a `VACUUM` would leave it. `events_readable` and
/// `sessions_readable` show the rows as before, in plain SQL, for a client
/// without the collector's functions (the `sqlite3` shell).
pub(super) const REBUILD_6: &str = r"
    CREATE TABLE up.enrichments (
        id          INTEGER PRIMARY KEY,
        country     TEXT,
        region      TEXT,
        city        TEXT,
        browser     TEXT,
        os          TEXT,
        device_type TEXT,
        is_bot      INTEGER NOT NULL
    );
    CREATE INDEX up.enrichments_values
        ON enrichments (country, region, city, browser, os, device_type, is_bot);
    INSERT INTO up.enrichments (country, region, city, browser, os, device_type, is_bot)
        SELECT DISTINCT country, region, city, browser, os, device_type, is_bot FROM main.events;
    CREATE TABLE up.events (
        event_id    BLOB PRIMARY KEY NOT NULL,
        site        TEXT NOT NULL,
        type        TEXT NOT NULL,
        name        TEXT,
        ts          INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        session_id  BLOB NOT NULL,
        visitor_id  BLOB NOT NULL,
        user_id     TEXT,
        session_index INTEGER,
        seq         INTEGER,
        previous_session_id BLOB,
        storage     TEXT,
        url         TEXT NOT NULL,
        title       TEXT,
        referrer    TEXT,
        props       TEXT,
        context     TEXT,
        client_ts   INTEGER,
        enrichment  INTEGER NOT NULL,
        path        TEXT
    );
    INSERT INTO up.events SELECT wm_pack(e.event_id), e.site, e.type, e.name, e.ts,
        e.received_at, wm_pack(e.session_id), wm_pack(e.visitor_id), e.user_id,
        e.session_index, e.seq, wm_pack(e.previous_session_id), e.storage, e.url, e.title,
        e.referrer, e.props, e.context, NULLIF(e.client_ts, e.ts),
        (SELECT n.id FROM up.enrichments n WHERE n.country IS e.country AND n.region IS e.region
            AND n.city IS e.city AND n.browser IS e.browser AND n.os IS e.os
            AND n.device_type IS e.device_type AND n.is_bot IS e.is_bot),
        e.path
        FROM main.events e ORDER BY e.rowid;
    CREATE INDEX up.events_site_session_ts ON events (site, session_id, ts);

    CREATE TABLE up.sessions (
        session_id    BLOB NOT NULL,
        site          TEXT NOT NULL,
        visitor_id    BLOB NOT NULL,
        user_id       TEXT,
        session_index INTEGER,
        started_at    INTEGER NOT NULL,
        last_seen_at  INTEGER NOT NULL,
        ended_at      INTEGER,
        end_reason    TEXT,
        duration_ms   INTEGER NOT NULL,
        landing_page  TEXT,
        exit_page     TEXT,
        source        TEXT NOT NULL,
        country       TEXT,
        region        TEXT,
        city          TEXT,
        browser       TEXT,
        os            TEXT,
        device_type   TEXT,
        event_count   INTEGER NOT NULL,
        page_views    INTEGER NOT NULL,
        is_bot        INTEGER NOT NULL,
        first_key     BLOB,
        last_key      BLOB,
        landing_key   BLOB,
        exit_key      BLOB,
        user_key      BLOB,
        geo_key       BLOB,
        agent_key     BLOB,
        end_key       BLOB,
        end_event_id  BLOB,
        entry_path    TEXT,
        exit_path     TEXT,
        referrer_domain TEXT,
        utm_source    TEXT,
        utm_medium    TEXT,
        utm_campaign  TEXT,
        utm_term      TEXT,
        utm_content   TEXT,
        PRIMARY KEY (site, session_id)
    );
    INSERT INTO up.sessions SELECT wm_pack(session_id), site, wm_pack(visitor_id), user_id,
        session_index, started_at, last_seen_at, ended_at, end_reason, duration_ms,
        landing_page, exit_page, source, country, region, city, browser, os, device_type,
        event_count, page_views, is_bot, wm_pack(first_key),
        CASE WHEN last_key = first_key THEN x'' ELSE wm_pack(last_key) END,
        CASE WHEN landing_key = first_key THEN x'' ELSE wm_pack(landing_key) END,
        CASE WHEN exit_key = first_key THEN x'' ELSE wm_pack(exit_key) END,
        CASE WHEN user_key = first_key THEN x'' ELSE wm_pack(user_key) END,
        CASE WHEN geo_key = first_key THEN x'' ELSE wm_pack(geo_key) END,
        CASE WHEN agent_key = first_key THEN x'' ELSE wm_pack(agent_key) END,
        CASE WHEN end_key = first_key THEN x'' ELSE wm_pack(end_key) END,
        wm_pack(end_event_id), entry_path, exit_path,
        referrer_domain, utm_source, utm_medium, utm_campaign, utm_term, utm_content
        FROM main.sessions ORDER BY rowid;
    CREATE INDEX up.sessions_id ON sessions (session_id);
    CREATE INDEX up.sessions_started ON sessions (started_at, session_id);
    CREATE INDEX up.sessions_site_started ON sessions (site, started_at, session_id);
    CREATE INDEX up.sessions_open ON sessions (last_seen_at) WHERE ended_at IS NULL;
    CREATE INDEX up.sessions_visitor ON sessions (visitor_id, started_at);
    CREATE INDEX up.sessions_user ON sessions (user_id, started_at);
    CREATE INDEX up.sessions_site_seen ON sessions (site, last_seen_at);
    -- For any SQLite client: the ids as text, the enrichment in the row.
    CREATE VIEW up.events_readable AS SELECT
        CASE WHEN typeof(e.event_id) = 'blob' AND length(e.event_id) = 16 THEN lower(substr(hex(e.event_id), 1, 8) || '-' ||
            substr(hex(e.event_id), 9, 4) || '-' || substr(hex(e.event_id), 13, 4) || '-' || substr(hex(e.event_id), 17, 4) || '-' ||
            substr(hex(e.event_id), 21)) ELSE e.event_id END AS event_id,
        e.site, e.type, e.name, e.ts, ifnull(e.client_ts, e.ts) AS client_ts, e.received_at,
        CASE WHEN typeof(e.session_id) = 'blob' AND length(e.session_id) = 16 THEN lower(substr(hex(e.session_id), 1, 8) || '-' ||
            substr(hex(e.session_id), 9, 4) || '-' || substr(hex(e.session_id), 13, 4) || '-' || substr(hex(e.session_id), 17, 4) || '-' ||
            substr(hex(e.session_id), 21)) ELSE e.session_id END AS session_id,
        CASE WHEN typeof(e.visitor_id) = 'blob' AND length(e.visitor_id) = 16 THEN lower(substr(hex(e.visitor_id), 1, 8) || '-' ||
            substr(hex(e.visitor_id), 9, 4) || '-' || substr(hex(e.visitor_id), 13, 4) || '-' || substr(hex(e.visitor_id), 17, 4) || '-' ||
            substr(hex(e.visitor_id), 21)) ELSE e.visitor_id END AS visitor_id,
        e.user_id, e.session_index, e.seq,
        CASE WHEN typeof(e.previous_session_id) = 'blob' AND length(e.previous_session_id) = 16 THEN lower(substr(hex(e.previous_session_id), 1, 8) || '-' ||
            substr(hex(e.previous_session_id), 9, 4) || '-' || substr(hex(e.previous_session_id), 13, 4) || '-' || substr(hex(e.previous_session_id), 17, 4) || '-' ||
            substr(hex(e.previous_session_id), 21)) ELSE e.previous_session_id END AS previous_session_id,
        e.storage, e.url, e.title, e.referrer, e.props, e.context, n.country, n.region, n.city,
        n.browser, n.os, n.device_type, n.is_bot, e.path
        FROM events e LEFT JOIN enrichments n ON n.id = e.enrichment;
    CREATE VIEW up.sessions_readable AS SELECT
        CASE WHEN typeof(session_id) = 'blob' AND length(session_id) = 16 THEN lower(substr(hex(session_id), 1, 8) || '-' ||
            substr(hex(session_id), 9, 4) || '-' || substr(hex(session_id), 13, 4) || '-' || substr(hex(session_id), 17, 4) || '-' ||
            substr(hex(session_id), 21)) ELSE session_id END AS session_id,
        site,
        CASE WHEN typeof(visitor_id) = 'blob' AND length(visitor_id) = 16 THEN lower(substr(hex(visitor_id), 1, 8) || '-' ||
            substr(hex(visitor_id), 9, 4) || '-' || substr(hex(visitor_id), 13, 4) || '-' || substr(hex(visitor_id), 17, 4) || '-' ||
            substr(hex(visitor_id), 21)) ELSE visitor_id END AS visitor_id,
        user_id, session_index, started_at, last_seen_at, ended_at, end_reason, duration_ms,
        landing_page, exit_page, source, country, region, city, browser, os, device_type,
        event_count, page_views, is_bot, entry_path, exit_path, referrer_domain, utm_source,
        utm_medium, utm_campaign, utm_term, utm_content
        FROM sessions;
    PRAGMA up.user_version = 6;
";

/// Version 7, built beside the store as version 6 was ([`REBUILD_6`]):
/// URLs of each site's origin, the event type, the storage and page paths
/// kept shorter ([`compact`](super::compact)); a session's events found
/// by `(session_id, ts)`, without the site; and `sessions_user` only over
/// sessions with a user id.
fn rebuild_7() -> String {
    use super::compact::{url_of, PATH_OF_ROW, STORAGE_OF_ROW, TYPE_OF_KIND};
    let readable_id = |c: &str| {
        format!(
            "CASE WHEN typeof({c}) = 'blob' AND length({c}) = 16 THEN lower(substr(hex({c}), 1, 8) \
             || '-' || substr(hex({c}), 9, 4) || '-' || substr(hex({c}), 13, 4) || '-' || \
             substr(hex({c}), 17, 4) || '-' || substr(hex({c}), 21)) ELSE {c} END"
        )
    };
    let (event_id, session_id, visitor_id, previous) = (
        readable_id("e.event_id"),
        readable_id("e.session_id"),
        readable_id("e.visitor_id"),
        readable_id("e.previous_session_id"),
    );
    let (url, referrer) = (url_of("e.site", "e.url"), url_of("e.site", "e.referrer"));
    let (s_session_id, s_visitor_id) = (readable_id("s.session_id"), readable_id("s.visitor_id"));
    let (landing, exit) = (
        url_of("s.site", "s.landing_page"),
        url_of("s.site", "s.exit_page"),
    );
    format!(
        r"
    -- Each site's origin: its first event's (the writer gives one to a
    -- site without, from its next event that has one).
    CREATE TABLE up.origins (
        of_site TEXT PRIMARY KEY NOT NULL,
        origin  TEXT NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO up.origins SELECT site, wm_origin(url) FROM main.events
        WHERE rowid IN (SELECT min(rowid) FROM main.events GROUP BY site)
        AND wm_origin(url) IS NOT NULL;
    CREATE TABLE up.enrichments (
        id          INTEGER PRIMARY KEY,
        country     TEXT,
        region      TEXT,
        city        TEXT,
        browser     TEXT,
        os          TEXT,
        device_type TEXT,
        is_bot      INTEGER NOT NULL
    );
    INSERT INTO up.enrichments SELECT * FROM main.enrichments ORDER BY id;
    CREATE INDEX up.enrichments_values
        ON enrichments (country, region, city, browser, os, device_type, is_bot);
    -- A column declared BLOB keeps each value as written: TEXT or BLOB.
    CREATE TABLE up.events (
        event_id    BLOB PRIMARY KEY NOT NULL,
        site        TEXT NOT NULL,
        kind        INTEGER NOT NULL,
        name        TEXT,
        ts          INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        session_id  BLOB NOT NULL,
        visitor_id  BLOB NOT NULL,
        user_id     TEXT,
        session_index INTEGER,
        seq         INTEGER,
        previous_session_id BLOB,
        kept_in     BLOB,
        url         BLOB NOT NULL,
        title       TEXT,
        referrer    BLOB,
        props       TEXT,
        context     TEXT,
        client_ts   INTEGER,
        enrichment  INTEGER NOT NULL,
        path_kept   TEXT,
        type        TEXT GENERATED ALWAYS AS ({TYPE_OF_KIND}) VIRTUAL,
        storage     TEXT GENERATED ALWAYS AS ({STORAGE_OF_ROW}) VIRTUAL,
        path        TEXT GENERATED ALWAYS AS ({PATH_OF_ROW}) VIRTUAL
    );
    INSERT INTO up.events (event_id, site, kind, name, ts, received_at, session_id,
        visitor_id, user_id, session_index, seq, previous_session_id, kept_in, url, title,
        referrer, props, context, client_ts, enrichment, path_kept)
        SELECT e.event_id, e.site, wm_kind(e.type), e.name, e.ts, e.received_at, e.session_id,
        e.visitor_id, e.user_id, e.session_index, e.seq, e.previous_session_id,
        wm_kept_in(e.storage), wm_kept_url(o.origin, e.url), e.title,
        wm_kept_url(o.origin, e.referrer), e.props, e.context, e.client_ts, e.enrichment,
        wm_kept_path(e.path, wm_kept_url(o.origin, e.url))
        FROM main.events e LEFT JOIN up.origins o ON o.of_site = e.site ORDER BY e.rowid;
    -- A session's events: every read names its site too, which the rows
    -- say (a session id two sites share only costs them a longer walk).
    CREATE INDEX up.events_session_ts ON events (session_id, ts);

    CREATE TABLE up.sessions (
        session_id    BLOB NOT NULL,
        site          TEXT NOT NULL,
        visitor_id    BLOB NOT NULL,
        user_id       TEXT,
        session_index INTEGER,
        started_at    INTEGER NOT NULL,
        last_seen_at  INTEGER NOT NULL,
        ended_at      INTEGER,
        end_reason    TEXT,
        duration_ms   INTEGER NOT NULL,
        landing_page  BLOB,
        exit_page     BLOB,
        source        TEXT NOT NULL,
        country       TEXT,
        region        TEXT,
        city          TEXT,
        browser       TEXT,
        os            TEXT,
        device_type   TEXT,
        event_count   INTEGER NOT NULL,
        page_views    INTEGER NOT NULL,
        is_bot        INTEGER NOT NULL,
        first_key     BLOB,
        last_key      BLOB,
        landing_key   BLOB,
        exit_key      BLOB,
        user_key      BLOB,
        geo_key       BLOB,
        agent_key     BLOB,
        end_key       BLOB,
        end_event_id  BLOB,
        entry_path    TEXT,
        exit_path     TEXT,
        referrer_domain TEXT,
        utm_source    TEXT,
        utm_medium    TEXT,
        utm_campaign  TEXT,
        utm_term      TEXT,
        utm_content   TEXT,
        PRIMARY KEY (site, session_id)
    );
    INSERT INTO up.sessions SELECT s.session_id, s.site, s.visitor_id, s.user_id,
        s.session_index, s.started_at, s.last_seen_at, s.ended_at, s.end_reason, s.duration_ms,
        wm_kept_url(o.origin, s.landing_page), wm_kept_url(o.origin, s.exit_page), s.source,
        s.country, s.region, s.city, s.browser, s.os, s.device_type, s.event_count,
        s.page_views, s.is_bot, s.first_key, s.last_key, s.landing_key, s.exit_key, s.user_key,
        s.geo_key, s.agent_key, s.end_key, s.end_event_id, s.entry_path, s.exit_path,
        s.referrer_domain, s.utm_source, s.utm_medium, s.utm_campaign, s.utm_term,
        s.utm_content
        FROM main.sessions s LEFT JOIN up.origins o ON o.of_site = s.site ORDER BY s.rowid;
    CREATE INDEX up.sessions_id ON sessions (session_id);
    CREATE INDEX up.sessions_started ON sessions (started_at, session_id);
    CREATE INDEX up.sessions_site_started ON sessions (site, started_at, session_id);
    CREATE INDEX up.sessions_open ON sessions (last_seen_at) WHERE ended_at IS NULL;
    CREATE INDEX up.sessions_visitor ON sessions (visitor_id, started_at);
    CREATE INDEX up.sessions_user ON sessions (user_id, started_at) WHERE user_id IS NOT NULL;
    CREATE INDEX up.sessions_site_seen ON sessions (site, last_seen_at);
    -- For any SQLite client: ids and URLs as text, the enrichment in the row.
    CREATE VIEW up.events_readable AS SELECT {event_id} AS event_id,
        e.site, e.type, e.name, e.ts, ifnull(e.client_ts, e.ts) AS client_ts, e.received_at,
        {session_id} AS session_id, {visitor_id} AS visitor_id,
        e.user_id, e.session_index, e.seq, {previous} AS previous_session_id,
        e.storage, {url} AS url, e.title, {referrer} AS referrer, e.props, e.context,
        n.country, n.region, n.city, n.browser, n.os, n.device_type, n.is_bot, e.path
        FROM events e LEFT JOIN enrichments n ON n.id = e.enrichment;
    CREATE VIEW up.sessions_readable AS SELECT {s_session_id} AS session_id,
        s.site, {s_visitor_id} AS visitor_id,
        s.user_id, s.session_index, s.started_at, s.last_seen_at, s.ended_at, s.end_reason,
        s.duration_ms, {landing} AS landing_page, {exit} AS exit_page, s.source, s.country,
        s.region, s.city, s.browser, s.os, s.device_type, s.event_count, s.page_views,
        s.is_bot, s.entry_path, s.exit_path, s.referrer_domain, s.utm_source, s.utm_medium,
        s.utm_campaign, s.utm_term, s.utm_content
        FROM sessions s;
    PRAGMA up.user_version = 7;
"
    )
}

/// The session ids events of more than one site carry (packed on both
/// sides: the sessions the migration to version 2 rebuilt are written
/// packed, the events are packed from version 6 on).
const SHARED_IDS: &str = "wm_pack(session_id) IN (SELECT wm_pack(session_id) FROM events \
     GROUP BY session_id HAVING COUNT(DISTINCT site) > 1)";

/// Brings the schema to [`SCHEMA_VERSION`], one transaction per step.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, sql) in (1..).zip(MIGRATIONS).skip_while(|(v, _)| *v <= found) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        match version {
            2 => rebuild_sessions(&tx, "1")?,
            3 => {
                // Before sessions were keyed by site, two sites' events
                // under one session id made one session of both; their
                // events say which is whose.
                tx.execute(&format!("DELETE FROM sessions WHERE {SHARED_IDS}"), [])?;
                rebuild_sessions(&tx, SHARED_IDS)?;
            }
            4 => backfill(&tx)?,
            _ => {}
        }
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "migrated the sqlite schema");
    }
    for (version, sql) in [(6, REBUILD_6.to_owned()), (7, rebuild_7())] {
        if found < version {
            let started = std::time::Instant::now();
            rebuild(conn, version, &sql)?;
            tracing::info!(
                version,
                seconds = started.elapsed().as_secs_f64(),
                "migrated the sqlite schema (a new file, which replaced the old)"
            );
        }
    }
    Ok(())
}

/// A file beside the store's: `waymark.db` with `suffix` appended.
fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Builds `version` in `waymark.db.upgrade` (`sql`: [`REBUILD_6`],
/// [`rebuild_7`]) and moves it over the store's file, then reopens `conn` on
/// it. The old file is untouched until the rename, so a crash on the way
/// leaves the store at the version before (the next start builds again);
/// the disk needs room for the new file, smaller than the old, until then.
pub(super) fn rebuild(conn: &mut Connection, version: i64, sql: &str) -> Result<(), StoreError> {
    let db = PathBuf::from(conn.path().unwrap_or_default());
    let upgrade = beside(&db, ".upgrade");
    if upgrade.exists() {
        std::fs::remove_file(&upgrade)?;
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    conn.execute("ATTACH ?1 AS up", [upgrade.to_string_lossy()])?;
    // A scratch file until it is complete: no journal, one sync at the end.
    conn.execute_batch("PRAGMA up.journal_mode = OFF; PRAGMA up.synchronous = OFF;")?;
    let built = conn.execute_batch(&format!("BEGIN IMMEDIATE; {sql} COMMIT;"));
    if let Err(err) = built {
        let _ = conn.execute_batch("ROLLBACK");
        let _ = conn.execute("DETACH up", []);
        let _ = std::fs::remove_file(&upgrade);
        return Err(err.into());
    }
    conn.execute("DETACH up", [])?;
    std::fs::File::open(&upgrade)?.sync_all()?;
    // The last connection to close removes the WAL; one still there is
    // another process's, which the old file must stay for.
    let old = std::mem::replace(conn, Connection::open_in_memory()?);
    old.close().map_err(|(_, err)| err)?;
    if beside(&db, "-wal").exists() || beside(&db, "-shm").exists() {
        let _ = std::fs::remove_file(&upgrade);
        *conn = super::connect(&db)?;
        return Err(StoreError::Io(std::io::Error::other(format!(
            "{} is open in another process: stop it, then start the collector again \
             to upgrade the store to version {version}",
            db.display()
        ))));
    }
    std::fs::rename(&upgrade, &db)?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    *conn = super::connect(&db)?;
    Ok(())
}

/// An event's columns as versions 1 to 5 kept them, each in its row (the
/// only ones [`rebuild_sessions`] meets).
const LEGACY_EVENT_SELECT: &str = "wm_text(event_id), site, type, name, ts, received_at, \
     wm_text(session_id), wm_text(visitor_id), user_id, session_index, seq, \
     wm_text(previous_session_id), storage, url, title, referrer, props, context, client_ts, \
     country, region, city, browser, os, device_type, is_bot";

/// Derives the sessions of the events matching `filter` (SQL over
/// `events`): those stored before sessions were kept, or those of session
/// ids two sites shared before sessions were keyed by site.
fn rebuild_sessions(tx: &Transaction<'_>, filter: &str) -> Result<(), StoreError> {
    let sql = format!(
        "SELECT {LEGACY_EVENT_SELECT} FROM events WHERE {filter} \
         ORDER BY site, session_id, ts, seq, rowid"
    );
    let mut stmt = tx.prepare(&sql)?;
    let events = stmt.query_map([], event_from_row)?;
    let mut current: Option<SessionState> = None;
    for event in events {
        let event = event?;
        match &mut current {
            Some(state)
                if state.session.session_id == event.session_id
                    && state.session.site == event.site => {}
            _ => {
                if let Some(done) = current.take() {
                    write_session(tx, &done, Derived::NotYet)?;
                }
                current = Some(SessionState::new(&event));
            }
        }
        if let Some(state) = &mut current {
            if event.is_activity() || state.offer_end(&event) == EndDecision::Keep {
                state.absorb(&event);
            }
        }
    }
    if let Some(done) = current {
        write_session(tx, &done, Derived::NotYet)?;
    }
    Ok(())
}

/// Version 4: the path of every page view, and per session what the writer
/// now derives from its landing and exit page views (the landing one found
/// by its key: time, `seq`, then its event id from the 25th character).
fn backfill(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let mut after = 0_i64;
    loop {
        let pages: Vec<(i64, String)> = tx
            .prepare(
                "SELECT rowid, url FROM events WHERE type = 'page_view' AND rowid > ?1 \
                 ORDER BY rowid LIMIT ?2",
            )?
            .query_map(params![after, BACKFILL_CHUNK], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        let Some((last, _)) = pages.last() else { break };
        after = *last;
        let mut update = tx.prepare_cached("UPDATE events SET path = ?1 WHERE rowid = ?2")?;
        for (rowid, url) in &pages {
            update.execute(params![page_path(url), rowid])?;
        }
    }
    let mut after = 0_i64;
    loop {
        type Row = (i64, Option<String>, Option<String>, Option<String>);
        let sessions: Vec<Row> = tx
            .prepare(
                "SELECT s.rowid, s.landing_page, s.exit_page, e.referrer FROM sessions s \
                 LEFT JOIN events e ON e.event_id = substr(wm_text(CASE WHEN s.landing_key = x'' \
                 THEN s.first_key ELSE s.landing_key END), 25) \
                 WHERE s.rowid > ?1 ORDER BY s.rowid LIMIT ?2",
            )?
            .query_map(params![after, BACKFILL_CHUNK], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<_, _>>()?;
        let Some((last, ..)) = sessions.last() else {
            break;
        };
        after = *last;
        let sql = format!(
            "UPDATE sessions SET ({}) = (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) WHERE rowid = ?9",
            super::rows::DERIVED_COLUMNS
        );
        let mut update = tx.prepare_cached(&sql)?;
        for (rowid, landing, exit, referrer) in &sessions {
            let referrer_domain = landing
                .as_deref()
                .and_then(|url| Landing::of(url, referrer.as_deref()).referrer_domain);
            let d = derived_columns(
                landing.as_deref(),
                exit.as_deref(),
                referrer_domain.as_deref(),
            );
            update.execute(params![
                d.entry_path,
                d.exit_path,
                d.landing.referrer_domain,
                d.landing.utm_source,
                d.landing.utm_medium,
                d.landing.utm_campaign,
                d.landing.utm_term,
                d.landing.utm_content,
                rowid
            ])?;
        }
    }
    Ok(())
}
