//! The SQLite store's own tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::packed::select_list;
use super::rows::{
    DERIVED_COLUMNS, ENRICHMENT_COLUMNS, EVENT_COLUMNS, KEY_COLUMNS, KEY_SELECT, SESSION_COLUMNS,
};
use super::schema::{MIGRATIONS, SCHEMA_VERSION};
use super::*;
use crate::event::{Enrichment, EventType};

fn event(n: u128, session: &str, ts: u64) -> StoredEvent {
    StoredEvent {
        event_id: uuid::Uuid::from_u128(n).hyphenated().to_string(),
        site: "demo".to_owned(),
        event_type: EventType::PageView,
        name: None,
        ts,
        client_ts: ts,
        received_at: 99,
        session_id: session.to_owned(),
        visitor_id: "v".to_owned(),
        user_id: None,
        session_index: None,
        seq: None,
        previous_session_id: None,
        storage: None,
        url: format!("http://127.0.0.1/{n}"),
        title: Some("T".to_owned()),
        referrer: None,
        props: Some(r#"{"plan":"pro"}"#.to_owned()),
        context: None,
        enrichment: Enrichment::default(),
    }
}

#[tokio::test]
async fn appended_events_read_back_in_order_with_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let mut custom = event(3, "s1", 10);
    custom.event_type = EventType::Custom;
    custom.name = Some("signup".to_owned());
    custom.user_id = Some("u-1".to_owned());
    custom.context = Some(r#"{"language":"en"}"#.to_owned());
    let events = vec![
        event(1, "s1", 20),
        event(2, "s2", 5),
        custom.clone(),
        event(4, "s1", 10),
    ];
    let outcome = store.append(events.clone()).await.unwrap();
    assert_eq!(
        outcome,
        AppendOutcome {
            inserted: 4,
            duplicates: 0,
            session_full: Vec::new(),
        }
    );

    let s1 = store.events_for_session("demo", "s1").await.unwrap();
    // By ts, and by arrival for equal ts.
    assert_eq!(s1, vec![custom, events[3].clone(), events[0].clone()]);

    let recent = store.recent_events(None, 2).await.unwrap();
    let ids: Vec<u64> = recent.iter().map(|e| e.ts).collect();
    assert_eq!(ids, vec![20, 10]);
    assert_eq!(
        recent[1].event_id, events[3].event_id,
        "the later arrival first"
    );
    assert!(store
        .recent_events(Some("other"), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.recent_events(Some("demo"), 10).await.unwrap().len(),
        4
    );
}

#[tokio::test]
async fn duplicates_are_counted_and_not_stored_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.append(vec![event(1, "s", 1)]).await.unwrap();
    let mut changed = event(1, "s", 1);
    changed.url = "http://changed/".to_owned();
    let outcome = store
        .append(vec![changed, event(2, "s", 2), event(2, "s", 2)])
        .await
        .unwrap();
    assert_eq!(
        outcome,
        AppendOutcome {
            inserted: 1,
            duplicates: 2,
            session_full: Vec::new(),
        }
    );
    let stored = store.events_for_session("demo", "s").await.unwrap();
    assert_eq!(stored, vec![event(1, "s", 1), event(2, "s", 2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_group_committed_and_all_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let tasks: Vec<_> = (0..50u128)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                // Request i re-sends the last event of request i - 1.
                let events = (0..10)
                    .map(|j| event(i * 10 + j, "s", 1))
                    .chain((i > 0).then(|| event(i * 10 - 1, "s", 1)));
                store.append(events.collect()).await.unwrap()
            })
        })
        .collect();
    let mut total = AppendOutcome::default();
    for task in tasks {
        let outcome = task.await.unwrap();
        total.inserted += outcome.inserted;
        total.duplicates += outcome.duplicates;
    }
    assert_eq!(
        total,
        AppendOutcome {
            inserted: 500,
            duplicates: 49,
            session_full: Vec::new(),
        }
    );
    assert_eq!(
        store.events_for_session("demo", "s").await.unwrap().len(),
        500
    );
    let commits = store.commits();
    assert!((1..=50).contains(&commits), "{commits} commits");
}

#[tokio::test]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        store
            .append(vec![event(1, "s", 1), event(2, "s", 2)])
            .await
            .unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(
        store.events_for_session("demo", "s").await.unwrap().len(),
        2
    );
    let outcome = store.append(vec![event(2, "s", 2)]).await.unwrap();
    assert_eq!(
        outcome,
        AppendOutcome {
            inserted: 0,
            duplicates: 1,
            session_full: Vec::new(),
        }
    );
}

#[tokio::test]
async fn a_closed_store_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.close();
    store.close();
    assert!(matches!(
        store.append(vec![event(1, "s", 1)]).await,
        Err(StoreError::Closed)
    ));
    // Reads still work.
    assert!(store
        .events_for_session("demo", "s")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_version_1_file_gets_its_sessions_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = super::connect(&dir.path().join(DB_FILE_NAME)).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        for (id, kind, ts, url) in [
            (1, "page_view", 1_000, "https://a.example/?utm_source=x"),
            (2, "page_view", 5_000, "https://a.example/b"),
            (3, "visit_ended", 5_000, "https://a.example/b"),
        ] {
            conn.execute(
                "INSERT INTO events (event_id, site, type, ts, received_at, session_id, \
                 visitor_id, url, props) VALUES (?1, 'demo', ?2, ?3, 9, 's', 'v', ?4, ?5)",
                params![
                    uuid::Uuid::from_u128(id).to_string(),
                    kind,
                    ts,
                    url,
                    (kind == "visit_ended").then_some(r#"{"reason":"reset"}"#)
                ],
            )
            .unwrap();
        }
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    let session = store.session("demo", "s").await.unwrap().unwrap();
    assert_eq!(
        session.landing_page.as_deref(),
        Some("https://a.example/?utm_source=x")
    );
    assert_eq!(session.exit_page.as_deref(), Some("https://a.example/b"));
    assert_eq!((session.source.as_str(), session.duration_ms), ("x", 4_000));
    assert_eq!(session.end_reason.as_deref(), Some("reset"));
    let events = store.events_for_session("demo", "s").await.unwrap();
    assert_eq!(events[0].client_ts, 1_000, "client_ts filled from ts");
}

#[test]
fn a_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conn = super::connect(&dir.path().join(DB_FILE_NAME)).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    assert!(matches!(
        SqliteStore::open(dir.path()),
        Err(StoreError::SchemaTooNew { found: 99, .. })
    ));
}

#[test]
fn the_file_uses_wal_and_the_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let conn = super::connect(store.path()).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

/// A version-2 file, whose sessions were keyed by `session_id` alone:
/// every session row is copied over as it was; a session two sites' events
/// were merged into is rebuilt, one per site; afterwards the same id on
/// another site is another session.
#[tokio::test]
async fn a_version_2_file_keeps_its_sessions_keyed_by_site() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = super::connect(&dir.path().join(DB_FILE_NAME)).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(MIGRATIONS[1]).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        for (id, site, session, ts) in [
            (1, "demo", "kept", 1_000),
            (2, "demo", "kept", 3_000),
            (3, "a", "shared", 2_000),
            (4, "b", "shared", 1_500),
            (5, "b", "shared", 4_000),
        ] {
            conn.execute(
                "INSERT INTO events (event_id, site, type, ts, client_ts, received_at, \
                 session_id, visitor_id, url) VALUES (?1, ?2, 'page_view', ?3, ?3, 9, ?4, 'v', \
                 'https://a.example/')",
                params![uuid::Uuid::from_u128(id).to_string(), site, ts, session],
            )
            .unwrap();
        }
        // As the version-2 writer left them: `kept` with every column set,
        // `shared` one session of both sites' events.
        conn.execute(
            "INSERT INTO sessions VALUES ('kept', 'demo', 'v', 'u-1', 2, 1000, 3000, 3000, 'reset', \
             2000, 'https://a.example/', 'https://a.example/b', 'newsletter', 'DE', 'Lower Saxony', \
             'Hanover', 'Chrome', 'Linux', 'desktop', 2, 2, 0, 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', \
             'k7', 'k8', 'end-id')",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO sessions (session_id, site, visitor_id, started_at, last_seen_at, \
             duration_ms, source, event_count, page_views, is_bot) \
             VALUES ('shared', 'b', 'v', 1500, 4000, 2500, 'direct', 3, 3, 0)",
            [],
        )
        .unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    let kept = store.session("demo", "kept").await.unwrap().unwrap();
    assert_eq!(
        kept,
        Session {
            session_id: "kept".to_owned(),
            site: "demo".to_owned(),
            visitor_id: "v".to_owned(),
            user_id: Some("u-1".to_owned()),
            session_index: Some(2),
            started_at: 1_000,
            last_seen_at: 3_000,
            ended_at: Some(3_000),
            end_reason: Some("reset".to_owned()),
            duration_ms: 2_000,
            landing_page: Some("https://a.example/".to_owned()),
            exit_page: Some("https://a.example/b".to_owned()),
            source: "newsletter".to_owned(),
            country: Some("DE".to_owned()),
            region: Some("Lower Saxony".to_owned()),
            city: Some("Hanover".to_owned()),
            browser: Some("Chrome".to_owned()),
            os: Some("Linux".to_owned()),
            device_type: Some("desktop".to_owned()),
            event_count: 2,
            page_views: 2,
            is_bot: false,
        },
        "copied as it was"
    );
    let a = store.session("a", "shared").await.unwrap().unwrap();
    let b = store.session("b", "shared").await.unwrap().unwrap();
    assert_eq!((a.started_at, a.event_count), (2_000, 1), "{a:?}");
    assert_eq!((b.started_at, b.event_count), (1_500, 2), "{b:?}");

    let mut other = event(6, "kept", 5_000);
    other.site = "other".to_owned();
    store.append(vec![other]).await.unwrap();
    assert_eq!(store.session("demo", "kept").await.unwrap().unwrap(), kept);
    let other = store.session("other", "kept").await.unwrap().unwrap();
    assert_eq!((other.started_at, other.event_count), (5_000, 1));
}

#[tokio::test]
async fn the_top_pages_query_answers_the_top_ten_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    // 30 pages, page `k` viewed `k % 4` times, under a different query
    // string each time: 30 keys, 45 URLs.
    let mut events = Vec::new();
    let mut n = 0;
    for page in 0..30u64 {
        for view in 0..page % 4 {
            n += 1;
            let mut e = event(n, "s", n as u64);
            e.url = format!("http://127.0.0.1/p{page:02}?v={view}");
            events.push(e);
        }
    }
    store.append(events).await.unwrap();
    let conn = lock(&store.reader);
    let mut stmt = conn.prepare(&queries::top_pages_sql("1")).unwrap();
    let rows: Vec<(String, u64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expected: Vec<(String, u64)> = [3, 7, 11, 15, 19, 23, 27, 2, 6, 10]
        .iter()
        .map(|page| (format!("http://127.0.0.1/p{page:02}"), page % 4))
        .collect();
    assert_eq!(rows, expected, "by count, then page; ten of them");
}

#[test]
fn the_page_key_in_sql_cuts_where_page_key_does() {
    let conn = {
        let c = Connection::open_in_memory().unwrap();
        packed::register(&c).unwrap();
        c
    };
    let sql = format!(
        "SELECT {} FROM (SELECT ?1 AS url) e",
        queries::page_key_sql("e.url")
    );
    for url in [
        "",
        "?",
        "#",
        "https://shop.example/a",
        "https://shop.example/a?x=1",
        "https://shop.example/a#top",
        "https://shop.example/a?x=1#top",
        "https://shop.example/a#top?x=1",
        "https://shop.example/é/ü?q=ß#ç",
    ] {
        let cut: String = conn.query_row(&sql, [url], |r| r.get(0)).unwrap();
        assert_eq!(cut, crate::store::page_key(url), "{url:?}");
    }
}

/// The read API's columns of a session, as stored: entry and exit paths,
/// referrer domain, `utm_*`.
fn derived(store: &SqliteStore, site: &str, id: &str) -> Vec<Option<String>> {
    let conn = lock(&store.reader);
    let sql = format!(
        "SELECT {} FROM sessions WHERE site = ?1 AND session_id = ?2",
        rows::DERIVED_COLUMNS
    );
    conn.query_row(&sql, params![site, id], |r| {
        (0..8).map(|i| r.get(i)).collect()
    })
    .unwrap()
}

fn strings(values: &[Option<&str>]) -> Vec<Option<String>> {
    values.iter().map(|v| v.map(str::to_owned)).collect()
}

/// The landing page view decides the campaign and the referrer as it
/// decides the landing page and the source: an earlier page view arriving
/// later takes over, a later one arriving later does not.
#[tokio::test]
async fn the_landing_event_decides_the_campaign_and_referrer_in_any_arrival_order() {
    let page = |n, ts, url: &str, referrer: Option<&str>| {
        let mut e = event(n, "s", ts);
        e.url = url.to_owned();
        e.referrer = referrer.map(str::to_owned);
        e
    };
    let first = page(
        1,
        1_000,
        "https://shop.example/a?utm_source=news&utm_campaign=spring",
        Some("https://www.mail.example/x"),
    );
    let second = page(
        2,
        2_000,
        "https://shop.example/b/?utm_source=ads",
        Some("https://google.com/"),
    );
    let mut custom = event(3, "s", 3_000);
    custom.event_type = EventType::Custom;
    custom.name = Some("signup".to_owned());
    let expected = strings(&[
        Some("/a"),
        Some("/b/"),
        Some("mail.example"),
        Some("news"),
        None,
        Some("spring"),
        None,
        None,
    ]);
    for order in [
        vec![vec![first.clone()], vec![second.clone(), custom.clone()]],
        vec![
            vec![second.clone()],
            vec![custom.clone()],
            vec![first.clone()],
        ],
        vec![vec![custom.clone(), second.clone(), first.clone()]],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        for batch in order {
            store.append(batch).await.unwrap();
        }
        assert_eq!(derived(&store, "demo", "s"), expected);
        let session = store.session("demo", "s").await.unwrap().unwrap();
        assert_eq!(session.source, "news");
    }
}

/// A version-3 file gets the read API's columns: every page view's path,
/// and per session its entry and exit paths, its landing page view's
/// campaign and referrer's domain (that event found by the session's
/// landing key), so a breakdown by `utm_source` answers after the upgrade.
#[tokio::test]
async fn a_version_3_file_answers_utm_breakdowns_after_the_upgrade() {
    use crate::read::{BreakdownQuery, Dimension, ReadQuery};

    let dir = tempfile::tempdir().unwrap();
    {
        // The version-3 writer's own rows, written by a version-3 store.
        let mut conn = super::connect(&dir.path().join(DB_FILE_NAME)).unwrap();
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        let tx = conn.transaction().unwrap();
        let mut events = Vec::new();
        for (n, session, ts, url, referrer) in [
            (
                1,
                "s1",
                1_000,
                "https://shop.example/?utm_source=news&utm_medium=email",
                Some("https://www.google.com/"),
            ),
            (2, "s1", 2_000, "https://shop.example/pricing?x=1", None),
            (3, "s2", 1_500, "https://shop.example/docs#a", None),
        ] {
            let mut e = event(n, session, ts);
            e.url = url.to_owned();
            e.referrer = referrer.map(str::to_owned);
            events.push(e);
        }
        for e in &events {
            tx.execute(
                "INSERT INTO events (event_id, site, type, ts, client_ts, received_at, \
                 session_id, visitor_id, url, referrer, is_bot) \
                 VALUES (?1, ?2, 'page_view', ?3, ?3, 9, ?4, ?5, ?6, ?7, 0)",
                params![
                    e.event_id,
                    e.site,
                    e.ts,
                    e.session_id,
                    e.visitor_id,
                    e.url,
                    e.referrer
                ],
            )
            .unwrap();
        }
        for id in ["s1", "s2"] {
            let mine: Vec<StoredEvent> = events
                .iter()
                .filter(|e| e.session_id == id)
                .cloned()
                .collect();
            let (state, _) = crate::session::fold_session(mine).unwrap();
            writer::write_session(&tx, &state, writer::Derived::NotYet).unwrap();
        }
        tx.commit().unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(
        derived(&store, "demo", "s1"),
        strings(&[
            Some("/"),
            Some("/pricing"),
            Some("google.com"),
            Some("news"),
            Some("email"),
            None,
            None,
            None
        ])
    );
    assert_eq!(
        derived(&store, "demo", "s2"),
        strings(&[
            Some("/docs"),
            Some("/docs"),
            None,
            None,
            None,
            None,
            None,
            None
        ])
    );
    let query = |dimension| BreakdownQuery {
        sessions: ReadQuery {
            site: Some("demo".to_owned()),
            from: 0,
            to: 10_000,
            include_bots: false,
            filters: Vec::new(),
        },
        dimension,
        limit: 10,
    };
    let keys = |b: crate::read::Breakdown| -> Vec<(String, u64)> {
        b.rows
            .into_iter()
            .map(|r| (r.key, r.metrics.visits))
            .collect()
    };
    let utm = store.breakdown(query(Dimension::UtmSource)).await.unwrap();
    assert_eq!(keys(utm), [("news".to_owned(), 1)]);
    let pages = store.breakdown(query(Dimension::Page)).await.unwrap();
    assert_eq!(
        keys(pages),
        [
            ("/".to_owned(), 1),
            ("/docs".to_owned(), 1),
            ("/pricing".to_owned(), 1)
        ]
    );
    // Later events of an upgraded session keep what the backfill derived.
    let mut later = event(4, "s1", 3_000);
    later.url = "https://shop.example/thanks".to_owned();
    store.append(vec![later]).await.unwrap();
    assert_eq!(derived(&store, "demo", "s1")[1].as_deref(), Some("/thanks"));
    assert_eq!(
        derived(&store, "demo", "s1")[2].as_deref(),
        Some("google.com")
    );
}

/// SQLite's plan of `sql` with `f`'s parameters, one line per step.
fn plan(conn: &Connection, sql: &str, f: &queries::Filter) -> String {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let rows = stmt
        .query_map(f.params().as_slice(), |r| r.get::<_, String>(3))
        .unwrap();
    rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
}

/// A profile (`/v1/visitors/{id}`, `/v1/users/{id}`) and its sessions are
/// found through the person's own index, with or without a site. With the
/// site's index SQLite walked every session of the site to find a person's
/// few: the profiles took 250–290 ms at 100 k sessions, seconds at a million.
#[test]
fn a_persons_sessions_and_totals_are_found_by_the_persons_index() {
    use crate::read::{Person, ProfileQuery};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let conn = super::connect(store.path()).unwrap();
    for (person, index) in [
        (Person::Visitor("v-1".to_owned()), "sessions_visitor"),
        (Person::User("u-1".to_owned()), "sessions_user"),
    ] {
        for (site, from) in [(Some("shop"), None), (Some("shop"), Some(5)), (None, None)] {
            let (visitor_id, user_id) = match &person {
                Person::Visitor(id) => (Some(id.clone()), None),
                Person::User(id) => (None, Some(id.clone())),
            };
            let sessions = SessionQuery {
                site: site.map(str::to_owned),
                from,
                visitor_id,
                user_id,
                limit: 25,
                ..SessionQuery::default()
            };
            let (sql, f) = queries::list_sessions_sql(&sessions);
            let shown = plan(&conn, &sql, &f);
            assert!(shown.contains(index), "{site:?} {from:?}: {shown}");
            let profile = ProfileQuery {
                person: person.clone(),
                site: site.map(str::to_owned),
                from,
                to: None,
            };
            let (totals, linked, f) = reports::profile_sql(&profile);
            for sql in [totals, linked] {
                let shown = plan(&conn, &sql, &f);
                assert!(shown.contains(index), "{site:?} {from:?}: {shown}");
            }
        }
    }
}

/// The indexes of `events`, by name.
fn event_indexes(conn: &Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' ORDER BY name")
        .unwrap();
    let names = stmt.query_map([], |r| r.get(0)).unwrap();
    names.map(Result::unwrap).collect()
}

/// Version 5 dropped `events (session_id, ts)`: every read of a session's
/// events names its site, so `(site, session_id, ts)` served them, and the
/// second index took about 55 B of the 600 B an event cost on disk. A
/// version-4 file lost it on open. Version 7 keeps one index again, without
/// the site (the rows say it): `(session_id, ts)`, 6 B less per event.
#[test]
fn a_sessions_events_are_read_through_one_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let conn = super::connect(store.path()).unwrap();
    let current = [
        "events_session_ts".to_owned(),
        "sqlite_autoindex_events_1".to_owned(),
    ];
    assert_eq!(event_indexes(&conn), current);
    let cursor = EventCursor {
        ts: 5,
        seq: Some(2),
        event_id: "e".to_owned(),
    };
    for after in [None, Some(&cursor)] {
        let (sql, f) = queries::session_events_sql("demo", "s1", after, 50);
        let shown = plan(&conn, &sql, &f);
        assert!(shown.contains("events_session_ts"), "{shown}");
    }
    drop((conn, store));
    // A version-4 file, with the index.
    let dir = tempfile::tempdir().unwrap();
    let conn = super::connect(&dir.path().join(DB_FILE_NAME)).unwrap();
    for sql in &MIGRATIONS[..4] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", 4).unwrap();
    assert!(event_indexes(&conn).contains(&"events_session_ts".to_owned()));
    drop(conn);
    let store = SqliteStore::open(dir.path()).unwrap();
    let conn = super::connect(store.path()).unwrap();
    assert_eq!(event_indexes(&conn), current);
}

/// Events as the SDK sends them, by the hundred: UUIDv7 event and session
/// ids, UUIDv4 visitors, a site's URLs, titles, referrers, click and goal
/// properties, and the device context on each visit's first page view.
fn realistic_events(sessions: u64) -> Vec<StoredEvent> {
    let uuid = |ms: u64, n: u64| {
        uuid::Uuid::from_u128((u128::from(ms) << 80) | (0x7 << 76) | (0x8 << 60) | u128::from(n))
            .hyphenated()
            .to_string()
    };
    let paths = [
        "/",
        "/pricing",
        "/docs/guides/topic-",
        "/blog/post-",
        "/signup",
    ];
    let mut events = Vec::new();
    for s in 0..sessions {
        let start = 1_780_000_000_000 + s * 97_000;
        let session_id = uuid(start, s);
        let visitor_id = uuid::Uuid::from_u128(u128::from(s % 700) * 0x9e37_79b9_7f4a_7c15)
            .hyphenated()
            .to_string();
        for i in 0..10_u64 {
            let ts = start + i * 7_000;
            let path = paths[((s + i) % 5) as usize];
            let mut e = event(0, &session_id, ts);
            e.event_id = uuid(ts, s * 10 + i);
            e.visitor_id = visitor_id.clone();
            e.session_index = Some(1 + (s % 3) as u32);
            e.seq = Some(i as u32 + 1);
            e.storage = Some("local".to_owned());
            e.received_at = ts + 40;
            e.url = format!("https://www.example.com{path}{}", (s * 7 + i) % 50);
            e.enrichment = Enrichment {
                country: Some("DE".to_owned()),
                region: Some("Berlin".to_owned()),
                city: Some("Berlin".to_owned()),
                browser: Some("Chrome".to_owned()),
                os: Some("Android".to_owned()),
                device_type: Some("mobile".to_owned()),
                is_bot: false,
            };
            (e.event_type, e.title, e.props) = match i % 10 {
                0 | 2 | 4 | 6 | 8 => (EventType::PageView, Some(format!("Page {i}")), None),
                1 | 3 | 7 => (
                    EventType::Click,
                    None,
                    Some(r#"{"href":"/pricing","tag":"a","text":"Read more"}"#.to_owned()),
                ),
                _ => (EventType::Custom, None, Some(r#"{"value":153}"#.to_owned())),
            };
            if e.event_type == EventType::Custom {
                e.name = Some("signup".to_owned());
            }
            if i == 0 {
                e.referrer = Some("https://www.google.com/".to_owned());
                e.context = Some(
                    r#"{"language":"en-US","screen":"412x915","user_agent":"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"}"#
                        .to_owned(),
                );
            }
            events.push(e);
        }
    }
    events
}

/// What an event costs on disk, the file compacted as `waymark backup`
/// writes it (`VACUUM INTO`): its row, its id in the primary key's index,
/// its session in `(site, session_id, ts)`, and its share of its session's
/// row and indexes. With ids and merge keys as text (version 5) these
/// events took 519 B each; in version 6 (ids and keys packed, a key equal
/// to the visit's first kept empty, enrichments once, `client_ts` only
/// where it differs), 321 B; in version 7 (URLs of the site's origin kept
/// as their rest, the type and storage as numbers, a path only where the
/// URL does not say it, a session's events indexed without the site),
/// 269 B.
#[tokio::test]
async fn an_event_takes_at_most_275_bytes_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let events = realistic_events(500);
    let n = events.len() as u64;
    for chunk in events.chunks(1_000) {
        let outcome = store.append(chunk.to_vec()).await.unwrap();
        assert_eq!(outcome.inserted, chunk.len());
    }
    let copy = dir.path().join("compact.db");
    SqliteStore::backup(dir.path(), &copy).unwrap();
    let per_event = std::fs::metadata(&copy).unwrap().len() / n;
    eprintln!("{per_event} B per event");
    assert!(per_event <= 275, "{per_event} B per event");
}

/// Only a canonical UUID is packed: an id in any other spelling is kept as
/// the text it came as, so two spellings of one UUID stay two sessions (as
/// they were as text) and every id reads back exactly, through every read.
#[tokio::test]
async fn ids_in_any_spelling_read_back_exactly_and_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let lower = "01a19fe1-0dae-7b6c-9ff9-6c41308e285f";
    let upper = "01A19FE1-0DAE-7B6C-9FF9-6C41308E285F";
    let mut events = Vec::new();
    for (n, session, visitor) in [(1, lower, upper), (2, upper, lower), (3, "s-1", "v 1")] {
        let mut e = event(n, session, 1_000 * n as u64);
        e.visitor_id = visitor.to_owned();
        e.previous_session_id = Some(upper.to_owned());
        events.push(e);
    }
    store.append(events.clone()).await.unwrap();
    for e in &events {
        let session = store.session("demo", &e.session_id).await.unwrap().unwrap();
        assert_eq!(
            (session.session_id.as_str(), session.visitor_id.as_str()),
            (e.session_id.as_str(), e.visitor_id.as_str())
        );
        let stored = store
            .events_for_session("demo", &e.session_id)
            .await
            .unwrap();
        assert_eq!(stored, vec![e.clone()]);
        let page = store
            .sessions(SessionQuery {
                site: Some("demo".to_owned()),
                visitor_id: Some(e.visitor_id.clone()),
                limit: 25,
                ..SessionQuery::default()
            })
            .await
            .unwrap();
        let ids: Vec<&str> = page
            .sessions
            .iter()
            .map(|s| s.session_id.as_str())
            .collect();
        assert_eq!(ids, [e.session_id.as_str()]);
    }
    let conn = super::connect(store.path()).unwrap();
    let kinds: Vec<(String, String)> = conn
        .prepare("SELECT wm_text(session_id), typeof(session_id) FROM events ORDER BY ts")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let expected = [(lower, "blob"), (upper, "text"), ("s-1", "text")];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(id, kind)| ((*id).to_owned(), (*kind).to_owned()))
        .collect();
    assert_eq!(kinds, expected);
}

/// Each of these sessions with its events, and the list of all sessions.
async fn answers(store: &SqliteStore, ids: &[String]) -> Vec<String> {
    let mut answers = Vec::new();
    for id in ids {
        let session = store.session("demo", id).await.unwrap();
        let events = store.events_for_session("demo", id).await.unwrap();
        answers.push(format!("{session:?} {events:?}"));
    }
    let page = store
        .sessions(SessionQuery {
            site: Some("demo".to_owned()),
            limit: 500,
            ..SessionQuery::default()
        })
        .await
        .unwrap();
    answers.push(format!("{page:?}"));
    answers
}

/// A current store holding `events`, the ids of their sessions, and its
/// [`answers`] about them.
async fn stored(events: &[StoredEvent]) -> (tempfile::TempDir, Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.append(events.to_vec()).await.unwrap();
    let ids: Vec<String> = events.iter().map(|e| e.session_id.clone()).collect();
    let before = answers(&store, &ids).await;
    (dir, ids, before)
}

/// An empty store file at schema version 5, as a collector of then left it.
fn version_5_file() -> (tempfile::TempDir, Connection) {
    let old = tempfile::tempdir().unwrap();
    let conn = super::connect(&old.path().join(DB_FILE_NAME)).unwrap();
    for sql in &MIGRATIONS[..5] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", 5).unwrap();
    (old, conn)
}

/// A version-5 file, its ids and keys as text, is packed on open (every
/// row copied, in order, into a new file with its indexes made again, which
/// replaces the old) and answers as it did.
#[tokio::test]
async fn a_version_5_file_gets_its_ids_packed_and_answers_the_same() {
    let mut events = realistic_events(30);
    events[3].session_id = "a custom client's id".to_owned();
    events[13].visitor_id = "V-13".to_owned();
    let (dir, ids, before) = stored(&events).await;

    // The same rows in a version-5 file: every packed value as its text,
    // the enrichment in each event's row, `client_ts` always written.
    let (old, conn) = version_5_file();
    let v6 = dir.path().join(DB_FILE_NAME);
    conn.execute("ATTACH ?1 AS v6", [v6.to_string_lossy()])
        .unwrap();
    let sessions = format!("{SESSION_COLUMNS}, {KEY_COLUMNS}, {DERIVED_COLUMNS}");
    let session_values = format!(
        "{}, {KEY_SELECT}, {DERIVED_COLUMNS}",
        select_list(SESSION_COLUMNS)
    );
    let values = select_list(EVENT_COLUMNS).replace("client_ts", "COALESCE(client_ts, ts)");
    conn.execute_batch(&format!(
        "INSERT INTO events ({EVENT_COLUMNS}, {ENRICHMENT_COLUMNS}, path) \
         SELECT {values}, n.country, n.region, n.city, n.browser, n.os, n.device_type, \
         n.is_bot, path FROM v6.events e LEFT JOIN v6.enrichments n ON n.id = e.enrichment \
         ORDER BY e.rowid; \
         INSERT INTO sessions ({sessions}) SELECT {session_values} FROM v6.sessions \
         ORDER BY rowid; \
         DETACH v6;"
    ))
    .unwrap();
    let dir = old;
    let blobs = |conn: &Connection| -> i64 {
        conn.query_row(
            "SELECT (SELECT COUNT(*) FROM events WHERE typeof(event_id) = 'blob' \
             OR typeof(session_id) = 'blob' OR typeof(visitor_id) = 'blob') + \
             (SELECT COUNT(*) FROM sessions WHERE typeof(session_id) = 'blob' \
             OR typeof(first_key) = 'blob')",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(blobs(&conn), 0);
    drop(conn);

    // What a crash in the middle of an earlier upgrade left.
    let upgrade = dir.path().join(format!("{DB_FILE_NAME}.upgrade"));
    std::fs::write(&upgrade, b"half a database").unwrap();

    let store = SqliteStore::open(dir.path()).unwrap();
    assert!(!upgrade.exists(), "the new file replaced the old");
    let conn = super::connect(store.path()).unwrap();
    let texts: i64 = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM events WHERE typeof(event_id) = 'text') + \
             (SELECT COUNT(*) FROM sessions WHERE typeof(landing_key) = 'text')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(texts, 0, "every event id and merge key packed");
    // 300 events; 30 visits and the one of the custom id, each with its keys.
    assert_eq!(blobs(&conn), 300 + 31);
    let kept: Vec<String> = conn
        .prepare(
            "SELECT session_id FROM sessions WHERE typeof(session_id) = 'text' UNION ALL \
             SELECT visitor_id FROM events WHERE typeof(visitor_id) = 'text'",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        kept,
        ["a custom client's id", "V-13"],
        "any other id kept as text"
    );
    let counts: (i64, i64, i64) = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM events WHERE client_ts IS NOT NULL), \
             (SELECT COUNT(*) FROM enrichments), \
             (SELECT COUNT(*) FROM sessions WHERE landing_key = x'' AND geo_key = x'')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    // No event's device clock differed; one enrichment for every event;
    // each visit's landing page and geo decided by its first event (all
    // but the custom id's, a click alone, which has no landing page).
    assert_eq!(counts, (0, 1, 30));
    assert_eq!(answers(&store, &ids).await, before);
    // The views show what the functions read, in plain SQL.
    let conn = Connection::open(store.path()).unwrap();
    let plain: Vec<String> = conn
        .prepare(
            "SELECT event_id || session_id || visitor_id || country FROM events_readable \
             ORDER BY event_id",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut expected: Vec<String> = events
        .iter()
        .map(|e| {
            let country = e.enrichment.country.as_deref().unwrap_or_default();
            format!("{}{}{}{country}", e.event_id, e.session_id, e.visitor_id)
        })
        .collect();
    expected.sort();
    assert_eq!(plain, expected);
}

/// A version-6 file (URLs whole, the type, storage and path as text) is
/// rebuilt as version 7 on open and answers as it did: URLs of the site's
/// origin kept as their rest, any other URL, storage or path as it came.
#[tokio::test]
async fn a_version_6_file_keeps_its_urls_shorter_and_answers_the_same() {
    let mut events = realistic_events(20);
    events[1].url = "https://shop.example.net/elsewhere?x=1".to_owned();
    events[2].storage = Some("indexeddb".to_owned());
    events[4].referrer = Some("https://www.example.com/pricing?from=4".to_owned());
    events[10].url = "https://www.example.com/a/../b%20c".to_owned();
    let (dir, ids, before) = stored(&events).await;

    // The same rows in a version-6 file.
    let (old, mut conn) = version_5_file();
    super::schema::rebuild(&mut conn, 6, super::schema::REBUILD_6).unwrap();
    let v7 = dir.path().join(DB_FILE_NAME);
    conn.execute("ATTACH ?1 AS v7", [v7.to_string_lossy()])
        .unwrap();
    let whole = |c: &str| super::compact::url_of("e.site", &format!("e.{c}"));
    let sessions = format!("{SESSION_COLUMNS}, {KEY_COLUMNS}, {DERIVED_COLUMNS}");
    let session_values = format!(
        "{}, {KEY_COLUMNS}, {DERIVED_COLUMNS}",
        SESSION_COLUMNS
            .replace("landing_page", &whole("landing_page"))
            .replace("exit_page", &whole("exit_page"))
    );
    conn.execute_batch(&format!(
        "INSERT INTO enrichments SELECT * FROM v7.enrichments; \
         INSERT INTO events ({EVENT_COLUMNS}, enrichment, path) SELECT event_id, site, type, \
         name, ts, received_at, session_id, visitor_id, user_id, session_index, seq, \
         previous_session_id, storage, {}, title, {}, props, context, client_ts, enrichment, \
         path FROM v7.events e ORDER BY e.rowid; \
         INSERT INTO sessions ({sessions}) SELECT {session_values} FROM v7.sessions e \
         ORDER BY rowid; \
         DETACH v7;",
        whole("url"),
        whole("referrer"),
    ))
    .unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 6);
    let blobs: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM events WHERE typeof(url) = 'blob' OR typeof(referrer) = 'blob'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(blobs, 0);
    drop(conn);

    let store = SqliteStore::open(old.path()).unwrap();
    let conn = super::connect(store.path()).unwrap();
    let kept = |sql: &str| -> Vec<String> {
        conn.prepare(sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        kept("SELECT of_site || ' ' || origin FROM origins"),
        ["demo https://www.example.com"]
    );
    assert_eq!(
        kept("SELECT url FROM events WHERE typeof(url) = 'text'"),
        ["https://shop.example.net/elsewhere?x=1"],
        "a URL of another origin kept whole"
    );
    assert_eq!(
        kept("SELECT CAST(referrer AS TEXT) FROM events WHERE typeof(referrer) = 'blob'"),
        ["/pricing?from=4"]
    );
    assert_eq!(
        kept("SELECT kept_in FROM events WHERE typeof(kept_in) = 'text'"),
        ["indexeddb"]
    );
    assert_eq!(
        kept("SELECT path_kept FROM events WHERE path_kept IS NOT NULL"),
        ["/b%20c"],
        "a path kept only where the URL's rest does not say it"
    );
    let counts: (i64, i64, i64) = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM events WHERE typeof(url) = 'blob'), \
             (SELECT COUNT(*) FROM events WHERE typeof(kind) = 'integer'), \
             (SELECT COUNT(*) FROM sessions WHERE typeof(landing_page) = 'blob' \
              AND typeof(exit_page) = 'blob')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(counts, (199, 200, 20));
    assert_eq!(answers(&store, &ids).await, before);
    // The views read the URLs whole, in plain SQL.
    let plain = Connection::open(store.path()).unwrap();
    let urls: Vec<String> = plain
        .prepare("SELECT url || ifnull(referrer, '') || type || ifnull(storage, '') FROM events_readable ORDER BY event_id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut expected: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e.event_id.clone(),
                format!(
                    "{}{}{}{}",
                    e.url,
                    e.referrer.as_deref().unwrap_or_default(),
                    e.event_type.as_str(),
                    e.storage.as_deref().unwrap_or_default()
                ),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(
        urls,
        expected.into_iter().map(|(_, v)| v).collect::<Vec<_>>()
    );

    // A site whose first event has no origin gets its next event's.
    let mut fresh = realistic_events(1);
    for (i, e) in fresh.iter_mut().enumerate() {
        e.site = "fresh".to_owned();
        e.event_id = format!("fresh-{i}");
    }
    fresh[0].url = "android-app://com.example/home".to_owned();
    fresh[1].url = "https://fresh.example.org:8443/x".to_owned();
    store.append(fresh.clone()).await.unwrap();
    assert_eq!(
        kept("SELECT origin FROM origins WHERE of_site = 'fresh'"),
        ["https://fresh.example.org:8443"]
    );
    let back = store
        .events_for_session("fresh", &fresh[0].session_id)
        .await
        .unwrap();
    let urls: Vec<&str> = back.iter().map(|e| e.url.as_str()).collect();
    let sent: Vec<&str> = fresh.iter().map(|e| e.url.as_str()).collect();
    assert_eq!(urls, sent);
}

/// The upgrade to version 6 replaces the file, so it refuses while another
/// connection (another process's, in life) has the file open: the old
/// file stays as it was, at version 5, and a later start upgrades it.
#[tokio::test]
async fn the_upgrade_waits_for_a_file_nobody_else_has_open() {
    let (dir, conn) = version_5_file();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    // A read in WAL mode: the connection now holds the file as another
    // collector, a backup or a `sqlite3` shell does.
    conn.query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get::<_, i64>(0))
        .unwrap();
    let version = |conn: &Connection| -> i64 {
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    };

    let refused = SqliteStore::open(dir.path()).err().map(|e| e.to_string());
    assert!(
        refused
            .as_deref()
            .is_some_and(|e| e.contains("open in another process")),
        "{refused:?}"
    );
    assert_eq!(version(&conn), 5);
    assert!(!dir.path().join(format!("{DB_FILE_NAME}.upgrade")).exists());

    drop(conn);
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(
        version(&super::connect(store.path()).unwrap()),
        SCHEMA_VERSION
    );
}

/// The writer finds an event's enrichment through the index of
/// `enrichments`, not by reading the table (119 k rows at 10 M events).
#[test]
fn an_enrichment_is_found_through_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let conn = super::connect(store.path()).unwrap();
    let mut f = queries::Filter::default();
    f.add(
        "? AND ? AND ? AND ? AND ? AND ? AND ?",
        vec![
            Box::new("DE"),
            Box::new("Berlin"),
            Box::new("Berlin"),
            Box::new("Chrome"),
            Box::new(None::<String>),
            Box::new("mobile"),
            Box::new(false),
        ],
    );
    let shown = plan(&conn, writer::FIND_ENRICHMENT, &f);
    assert!(
        shown.contains("USING COVERING INDEX enrichments_values"),
        "{shown}"
    );
}
