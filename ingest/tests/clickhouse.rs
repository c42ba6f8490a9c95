//! The ClickHouse store with the real `waymark` binary and a real ClickHouse
//! server: an outage (with a collector crash inside it) loses nothing and
//! doubles nothing, a full spool answers 503 with `Retry-After`, and two
//! collectors on one ClickHouse keep sessions right and write one
//! `visit_ended` per idle session between them.
//!
//! Everything runs on 127.0.0.1; every loop is bounded in count and time.
//! The tests with a ClickHouse server run only with
//! `WAYMARK_TEST_CLICKHOUSE=1` (`cargo xtask test` sets it) and otherwise
//! skip, saying so on stderr (`support/optional.rs`); the full spool needs
//! no server and always runs.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

mod support;
use support::clickhouse::ClickHouse;
use support::collector::{self, exchange, Collector};

const TOKEN: &str = "clickhouse-test-token";
const MIN: u64 = 60_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A collector on the ClickHouse store at `url`, its spool under `data`.
fn collector(root: &Path, name: &str, data: &Path, url: &str, extra: &[&str]) -> Collector {
    let mut args = vec![
        "--store",
        url,
        "--flush-interval-ms",
        "100",
        "--admin-token",
        TOKEN,
        "--sweep-interval-seconds",
        "1",
    ];
    args.extend_from_slice(extra);
    Collector::start_with(root, name, data, &args)
}

fn event(n: u64, session: &str, kind: &str, ts: u64, url: &str) -> Value {
    json!({
        "event_id": uuid::Uuid::from_u64_pair(0x5eed, n).hyphenated().to_string(),
        "type": kind, "name": "step", "ts": ts, "seq": n,
        "session_id": session, "visitor_id": format!("v-{session}"), "session_index": 1,
        "url": url,
    })
}

fn batch(events: &[Value]) -> String {
    json!({"v": 1, "site": "shop", "sent_at": now_ms(), "events": events}).to_string()
}

/// Posts and expects 200; the event ids acknowledged.
fn post(collector: &Collector, events: &[Value]) -> Vec<String> {
    let (status, answer) = collector.post_batch(&batch(events)).unwrap();
    assert_eq!(status, 200, "{answer}");
    events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The session as the read API shows it, with all its events (every page).
fn session(collector: &Collector, id: &str) -> Value {
    let mut path = format!("/v1/sessions/{id}?limit=1000");
    let mut events = Vec::new();
    loop {
        let (status, mut body) = collector.get(&path, TOKEN).unwrap();
        assert_eq!(status, 200, "{id}: {body}");
        events.extend(body["events"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/sessions/{id}?limit=1000&cursor={cursor}"),
            None => {
                body["events"] = Value::Array(events);
                return body;
            }
        }
    }
}

/// Polls `done` every 100 ms for up to 60 s.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn acknowledged_events_survive_a_clickhouse_outage_and_a_collector_crash_exactly_once() {
    let Some(mut clickhouse) = ClickHouse::start_if_wanted() else {
        return;
    };
    let url = clickhouse.url("outage");
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let sessions = ["s-0", "s-1", "s-2", "s-3"];
    let mut acked = Vec::new();
    let mut n = 0;
    let mut sent_batches = 0;
    let mut send = |collector: &Collector, batches: usize| {
        for _ in 0..batches {
            let session = sessions[sent_batches % sessions.len()];
            sent_batches += 1;
            let events: Vec<Value> = (0..10)
                .map(|i| {
                    n += 1;
                    let kind = if i == 0 { "page_view" } else { "click" };
                    event(
                        n,
                        session,
                        kind,
                        now_ms(),
                        &format!("https://shop.example/{n}"),
                    )
                })
                .collect();
            acked.extend(post(collector, &events));
        }
    };

    let mut first = collector(root.path(), "first", &data, &url, &[]);
    send(&first, 20);
    clickhouse.kill();
    // ClickHouse is gone: the collector keeps acknowledging from its spool.
    send(&first, 20);
    // And the collector crashes with the spool full of events.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let second = collector(root.path(), "second", &data, &url, &[]);
    send(&second, 20);
    clickhouse.resume();
    send(&second, 20);
    assert_eq!(acked.len(), 800);

    let count = |sql: &str| -> usize { clickhouse.query(sql).trim().parse().unwrap() };
    // An insert's rows show in `events` before its views have written the
    // sessions' states: wait for both.
    wait_for("every acknowledged event in ClickHouse", || {
        count("SELECT uniqExact(event_id) FROM outage.events") >= acked.len()
            && count(
                "SELECT sum(n) FROM (SELECT uniqExactIfMerge(a_event_count) AS n \
                 FROM outage.sessions_agg GROUP BY site, session_id)",
            ) >= acked.len()
    });
    // The read API shows each acknowledged event exactly once…
    let mut seen = Vec::new();
    for id in sessions {
        let body = session(&second, id);
        let events = body["events"].as_array().unwrap();
        assert_eq!(body["event_count"], events.len(), "{id}");
        seen.extend(
            events
                .iter()
                .map(|e| e["event_id"].as_str().unwrap().to_owned()),
        );
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no event is shown twice");
    assert_eq!(
        unique,
        acked.iter().collect(),
        "no event is lost or made up"
    );
    // …and once merged, ClickHouse holds each once.
    clickhouse.query("OPTIMIZE TABLE outage.events FINAL");
    assert_eq!(count("SELECT count() FROM outage.events"), acked.len());
    let log = std::fs::read_to_string(root.path().join("second.log")).unwrap();
    assert!(
        log.contains("the spool holds events not yet in ClickHouse"),
        "{log}"
    );
}

#[test]
fn a_full_spool_answers_503_with_retry_after() {
    let root = tempfile::tempdir().unwrap();
    // Nothing listens there: every event stays in the spool.
    let dead = format!("clickhouse://127.0.0.1:{}/gone", collector::free_port());
    let c = collector(
        root.path(),
        "full",
        &root.path().join("data"),
        &dead,
        &["--spool-max-bytes", "5000"],
    );
    let mut statuses = Vec::new();
    for n in 1..=40 {
        let events = [event(
            n,
            "s-full",
            "page_view",
            now_ms(),
            "https://shop.example/",
        )];
        let (status, head, body) =
            exchange(c.port, "POST", "/v1/batch", &batch(&events), "").unwrap();
        if status == 503 {
            assert!(
                head.to_ascii_lowercase().contains("retry-after: 30"),
                "{head}"
            );
            assert!(body.contains("store_unavailable"), "{body}");
        }
        statuses.push(status);
    }
    let accepted = statuses.iter().take_while(|s| **s == 200).count();
    assert!(accepted > 5, "the spool takes events first: {statuses:?}");
    assert!(
        statuses[accepted..].iter().all(|s| *s == 503),
        "then refuses them all: {statuses:?}"
    );
}

#[test]
fn two_collectors_on_one_clickhouse_keep_sessions_right() {
    let Some(clickhouse) = ClickHouse::start_if_wanted() else {
        return;
    };
    let url = clickhouse.url("shared");
    let root = tempfile::tempdir().unwrap();
    let a = collector(root.path(), "a", &root.path().join("a"), &url, &[]);
    let b = collector(root.path(), "b", &root.path().join("b"), &url, &[]);

    // An active session whose batches alternate between the collectors, out
    // of order, with a retry sent to the other collector.
    let t = now_ms() - 5 * MIN;
    let active = [
        event(
            1,
            "s-live",
            "page_view",
            t,
            "https://shop.example/?utm_source=news",
        ),
        event(
            2,
            "s-live",
            "click",
            t + 1000,
            "https://shop.example/?utm_source=news",
        ),
        event(
            3,
            "s-live",
            "page_view",
            t + 60_000,
            "https://shop.example/pricing",
        ),
        event(
            4,
            "s-live",
            "page_view",
            t + 120_000,
            "https://shop.example/checkout",
        ),
    ];
    post(&b, &active[2..4]);
    post(&a, &active[0..2]);
    post(&b, &active[0..2]);
    // Idle sessions, each half through A and half through B: both sweepers
    // see them, and between them write one visit_ended each.
    let old = now_ms() - 45 * MIN;
    for s in 0..6u64 {
        let id = format!("s-idle-{s}");
        post(
            &a,
            &[event(
                100 + s * 2,
                &id,
                "page_view",
                old,
                "https://shop.example/a",
            )],
        );
        post(
            &b,
            &[event(
                101 + s * 2,
                &id,
                "page_view",
                old + 2 * MIN,
                "https://shop.example/b",
            )],
        );
    }

    wait_for("both sweepers to close the six idle sessions", || {
        let (_, page) = a.get("/v1/sessions?site=shop&limit=100", TOKEN).unwrap();
        page["sessions"]
            .as_array()
            .is_some_and(|s| s.iter().filter(|s| !s["ended_at"].is_null()).count() == 6)
    });
    // Let both sweepers run a few more rounds.
    thread::sleep(Duration::from_secs(3));

    for reader in [&a, &b] {
        let live = session(reader, "s-live");
        assert_eq!(live["event_count"], 4);
        assert_eq!(live["page_views"], 3);
        assert_eq!(
            live["landing_page"],
            "https://shop.example/?utm_source=news"
        );
        assert_eq!(live["exit_page"], "https://shop.example/checkout");
        assert_eq!(live["source"], "news");
        assert_eq!(live["duration_ms"], 120_000);
        assert!(live["ended_at"].is_null());
        for s in 0..6 {
            let idle = session(reader, &format!("s-idle-{s}"));
            assert_eq!(idle["event_count"], 2);
            assert_eq!(idle["landing_page"], "https://shop.example/a");
            assert_eq!(idle["exit_page"], "https://shop.example/b");
            assert_eq!(idle["ended_at"], idle["last_seen_at"]);
            assert_eq!(idle["end_reason"], "idle");
            let ends = idle["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["type"] == "visit_ended")
                .count();
            assert_eq!(ends, 1, "one visit_ended for s-idle-{s}");
        }
        let (status, list) = reader
            .get("/v1/sessions?site=shop&limit=100", TOKEN)
            .unwrap();
        assert_eq!(status, 200);
        assert_eq!(list["sessions"].as_array().unwrap().len(), 7);
    }
    // However many times the sweepers wrote it, each end is one row once
    // merged.
    clickhouse.query("OPTIMIZE TABLE shared.events FINAL");
    let ends: usize = clickhouse
        .query("SELECT count() FROM shared.events WHERE event_type = 'visit_ended'")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(ends, 6);
}

#[tokio::test]
async fn sessions_are_rebuilt_from_the_events_of_a_version_1_database() {
    use waymark_ingest::{ClickHouseStore, EventSink, SessionQuery, SessionReader};
    let Some(clickhouse) = ClickHouse::start_if_wanted() else {
        return;
    };
    let url: waymark_ingest::ClickHouseUrl = clickhouse.url("legacy").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let open = || ClickHouseStore::open(&url, dir.path(), 1 << 20, Duration::from_millis(20));
    let t = now_ms();
    let body = batch(&[
        event(1, "s-old", "page_view", t, "https://shop.example/a"),
        event(2, "s-old", "page_view", t + 1000, "https://shop.example/b"),
    ]);
    let decoded = waymark_ingest::decode_batch(body.as_bytes(), t).unwrap();
    let store = open().await.unwrap();
    store.append(decoded.events).await.unwrap();
    store.sync().await.unwrap();
    std::sync::Arc::new(store).shutdown().await;

    // Back to version 1: events only.
    for sql in [
        "DROP TABLE legacy.sessions_mv",
        "DROP TABLE legacy.sessions_agg",
        "DROP TABLE legacy.schema_migrations",
        "CREATE TABLE legacy.schema_migrations (version UInt32, applied_at UInt64) ENGINE = TinyLog",
        "INSERT INTO legacy.schema_migrations VALUES (1, 0)",
    ] {
        clickhouse.query(sql);
    }
    let store = open().await.unwrap();
    let page = store
        .sessions(SessionQuery {
            limit: 10,
            ..SessionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.sessions.len(), 1);
    let s = &page.sessions[0];
    assert_eq!((s.event_count, s.page_views, s.duration_ms), (2, 2, 1000));
    assert_eq!(s.exit_page.as_deref(), Some("https://shop.example/b"));
    assert_eq!(
        clickhouse
            .query("SELECT max(version) FROM legacy.schema_migrations")
            .trim(),
        waymark_ingest::clickhouse_sql::latest_version().to_string(),
        "migrated through every version"
    );
}

/// URLs and referrers as browsers send them, and a few odder ones: each
/// the landing page view of its own session.
const LANDINGS: &[(&str, Option<&str>)] = &[
    (
        "https://shop.example/pricing?plan=pro#faq",
        Some("https://WWW.Google.com/search?q=x"),
    ),
    ("https://shop.example", None),
    (
        "http://127.0.0.1:8080/a/b/?utm_source=%20news%20&utm_source=x",
        Some("http://127.0.0.1:8080/other"),
    ),
    (
        "https://shop.example/é?utm_campaign=a%2Cb+c&utm_source=&utm_source=second",
        Some("https://user:pw@mail.example.com:8443/inbox"),
    ),
    (
        "https://shop.example/x y\"<>`{}?utm_medium=e%2Dmail&utm_medium=other",
        Some("android-app://com.google.android.gm/"),
    ),
    (
        "HTTPS://Shop.Example/Case?utm_term=&utm_term=+shoes+#utm_content=no",
        Some("https://www.shop.example/"),
    ),
    (
        "https://shop.example/%c3%a9/?utm_content=top&utm%5Fsource=encoded",
        Some("not a url"),
    ),
    ("https://shop.example\\back\\slash?utm_source=bs", None),
    (
        "/relative/only?utm_source=rel",
        Some("https://ref.example/"),
    ),
    ("  https://shop.example/trimmed\t ", None),
    ("mailto:someone@example.com", None),
];

/// A page view of `url` on site `shop` at `ts`, the first event of visit
/// `s{visit}` of visitor `v{visit}`.
fn shop_page_view(id: uuid::Uuid, visit: u64, ts: u64, url: &str) -> waymark_ingest::StoredEvent {
    waymark_ingest::StoredEvent {
        event_id: id.hyphenated().to_string(),
        site: "shop".to_owned(),
        event_type: waymark_ingest::EventType::PageView,
        name: None,
        ts,
        client_ts: ts,
        received_at: ts,
        session_id: format!("s{visit}"),
        visitor_id: format!("v{visit}"),
        user_id: None,
        session_index: Some(1),
        seq: Some(1),
        previous_session_id: None,
        storage: None,
        url: url.to_owned(),
        title: None,
        referrer: None,
        props: None,
        context: None,
        enrichment: waymark_ingest::Enrichment::default(),
    }
}

/// Each dimension's rows as `key → visits`.
async fn breakdowns(
    store: &waymark_ingest::ClickHouseStore,
) -> Vec<(String, std::collections::BTreeMap<String, u64>)> {
    use waymark_ingest::read::{BreakdownQuery, Dimension, ReadQuery};
    use waymark_ingest::SessionReader;
    let mut all = Vec::new();
    for dimension in Dimension::ALL {
        let answer = store
            .breakdown(BreakdownQuery {
                sessions: ReadQuery {
                    site: Some("shop".to_owned()),
                    from: 0,
                    to: u64::MAX / 2,
                    include_bots: false,
                    filters: Vec::new(),
                },
                dimension,
                limit: 1000,
            })
            .await
            .unwrap();
        let rows = answer.rows.into_iter().map(|r| (r.key, r.metrics.visits));
        all.push((dimension.name().to_owned(), rows.collect()));
    }
    all
}

/// A version-2 database (events without their page keys and landing
/// fields, sessions without their aggregates) answers every dimension after
/// the upgrade: the SQL that derives them for rows stored before gives what
/// Rust gives new rows, on the URLs of [`LANDINGS`].
#[tokio::test]
async fn a_version_2_database_answers_every_dimension_as_new_rows_do() {
    use waymark_ingest::read::{page_path, Landing};
    use waymark_ingest::{ClickHouseStore, EventSink, StoredEvent};
    let Some(clickhouse) = ClickHouse::start_if_wanted() else {
        return;
    };
    let url: waymark_ingest::ClickHouseUrl = clickhouse.url("v2").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let open = || ClickHouseStore::open(&url, dir.path(), 1 << 20, Duration::from_millis(20));
    let t = now_ms();
    let events: Vec<StoredEvent> = (0u64..)
        .zip(LANDINGS)
        .map(|(n, (url, referrer))| StoredEvent {
            referrer: referrer.map(str::to_owned),
            ..shop_page_view(uuid::Uuid::from_u64_pair(0x2, n), n, t + n, url)
        })
        .collect();
    let store = open().await.unwrap();
    store.append(events).await.unwrap();
    store.sync().await.unwrap();
    let new_rows = breakdowns(&store).await;
    std::sync::Arc::new(store).shutdown().await;

    // What Rust derives, by hand.
    let mut expected: std::collections::BTreeMap<&str, std::collections::BTreeMap<String, u64>> =
        std::collections::BTreeMap::new();
    for (url, referrer) in LANDINGS {
        let landing = Landing::of(url, *referrer);
        let path = page_path(url);
        for (dimension, value) in [
            ("page", Some(path.clone())),
            ("entry_page", Some(path.clone())),
            ("exit_page", Some(path)),
            ("referrer", landing.referrer_domain),
            ("utm_source", landing.utm_source),
            ("utm_medium", landing.utm_medium),
            ("utm_campaign", landing.utm_campaign),
            ("utm_term", landing.utm_term),
            ("utm_content", landing.utm_content),
        ] {
            let rows = expected.entry(dimension).or_default();
            if let Some(value) = value {
                *rows.entry(value).or_default() += 1;
            }
        }
    }
    for (dimension, rows) in &new_rows {
        if let Some(want) = expected.get(dimension.as_str()) {
            assert_eq!(rows, want, "{dimension}, new rows");
        }
    }

    // Back to version 2: no page keys, no landing fields, no view.
    let columns = "path utm_source utm_medium utm_campaign utm_term utm_content referrer_domain";
    let mut downgrade = vec![
        "DROP TABLE v2.sessions_mv".to_owned(),
        "DROP TABLE v2.schema_migrations".to_owned(),
        "CREATE TABLE v2.schema_migrations (version UInt32, applied_at UInt64) ENGINE = TinyLog"
            .to_owned(),
        "INSERT INTO v2.schema_migrations VALUES (1, 0), (2, 0)".to_owned(),
    ];
    for column in columns.split(' ') {
        downgrade.push(format!("ALTER TABLE v2.events DROP COLUMN {column}"));
        let aggregate = column.replace("path", "entry_path");
        downgrade.push(format!(
            "ALTER TABLE v2.sessions_agg DROP COLUMN a_{aggregate}"
        ));
    }
    downgrade.push("ALTER TABLE v2.sessions_agg DROP COLUMN a_exit_path".to_owned());
    for sql in &downgrade {
        clickhouse.query(sql);
    }
    let store = open().await.unwrap();
    assert_eq!(
        breakdowns(&store).await,
        new_rows,
        "after the upgrade, as new rows"
    );
    assert_eq!(
        clickhouse
            .query("SELECT max(version) FROM v2.schema_migrations")
            .trim(),
        waymark_ingest::clickhouse_sql::latest_version().to_string()
    );
}

/// Top pages and the page and goal breakdowns of the visits of `shop` a
/// day either side of `around`, unfiltered and with `page:/pricing`, as
/// text to compare.
async fn pages_and_goals(store: &waymark_ingest::ClickHouseStore, around: u64) -> Vec<String> {
    let (from, to) = (around - 86_400_000, around + 86_400_000);
    use waymark_ingest::read::{BreakdownQuery, Dimension, Filter, ReadQuery};
    use waymark_ingest::{SessionReader, StatsQuery};
    let mut out = Vec::new();
    for filters in [vec![], vec![Filter::parse("page:/pricing").unwrap()]] {
        for dimension in [Dimension::Page, Dimension::EventName] {
            let q = BreakdownQuery {
                sessions: ReadQuery {
                    site: Some("shop".to_owned()),
                    from,
                    to,
                    include_bots: false,
                    filters: filters.clone(),
                },
                dimension,
                limit: 10,
            };
            out.push(format!("{:?}", store.breakdown(q).await.unwrap().rows));
        }
        let stats = StatsQuery {
            site: Some("shop".to_owned()),
            from,
            to,
            include_bots: false,
            interval: waymark_ingest::Interval::Day,
            filters,
        };
        let stats = store.stats(stats).await.unwrap();
        out.push(format!("{:?} {:?}", stats.top_pages, stats.visits));
    }
    out
}

/// A version-5 database (flat rows without their pages and goals) answers
/// top pages, page and goal breakdowns and page filters the same once
/// upgraded: its sessions are read from their events until the compactor
/// has written them flat again, with their pages, and after.
#[tokio::test]
async fn a_version_5_database_answers_pages_and_goals_before_and_after_the_compactor_rewrites_it() {
    use waymark_ingest::{ClickHouseStore, EventSink, EventType, StoredEvent};
    let Some(clickhouse) = ClickHouse::start_if_wanted() else {
        return;
    };
    let url: waymark_ingest::ClickHouseUrl = clickhouse.url("v5").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let open = || ClickHouseStore::open(&url, dir.path(), 1 << 20, Duration::from_millis(20));
    let t = now_ms();
    let visits: [&[(&str, &str)]; 3] = [
        &[
            ("page", "/"),
            ("page", "/pricing?plan=pro"),
            ("custom", "signup"),
        ],
        &[
            ("page", "/pricing"),
            ("custom", "signup"),
            ("custom", "signup"),
        ],
        &[("page", "/docs#intro"), ("page", "/docs"), ("page", "/")],
    ];
    let mut events = Vec::new();
    for (s, visit) in (0u64..).zip(visits) {
        for (n, (kind, what)) in (0u64..).zip(visit.iter()) {
            let page = *kind == "page";
            let id = uuid::Uuid::from_u64_pair(0x5, s * 100 + n);
            let url = format!("https://shop.example{}", if page { what } else { "/" });
            events.push(StoredEvent {
                event_type: if page {
                    EventType::PageView
                } else {
                    EventType::Custom
                },
                name: (!page).then(|| (*what).to_owned()),
                seq: Some(u32::try_from(n).unwrap() + 1),
                ..shop_page_view(id, s, t + n, &url)
            });
        }
    }
    let store = open().await.unwrap();
    store.append(events).await.unwrap();
    store.sync().await.unwrap();
    // Touch times are whole seconds: vouch for everything so far.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    store.compact_with_margin(0).await.unwrap();
    let expected = pages_and_goals(&store, t).await;
    assert!(
        expected[0].contains("/pricing") && expected[1].contains("signup"),
        "{expected:?}"
    );
    assert!(
        expected[2].contains("https://shop.example/docs"),
        "{expected:?}"
    );
    std::sync::Arc::new(store).shutdown().await;

    // Back to version 5: flat rows without their pages and goals.
    for column in "paths path_views urls url_views goals goal_events".split(' ') {
        clickhouse.query(&format!(
            "ALTER TABLE v5.sessions_flat DROP COLUMN {column}"
        ));
    }
    clickhouse.query("DROP TABLE v5.schema_migrations");
    clickhouse.query(
        "CREATE TABLE v5.schema_migrations (version UInt32, applied_at UInt64) ENGINE = TinyLog",
    );
    clickhouse
        .query("INSERT INTO v5.schema_migrations VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0)");

    let store = open().await.unwrap();
    assert_eq!(
        pages_and_goals(&store, t).await,
        expected,
        "upgraded, not compacted yet"
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    store.compact_with_margin(0).await.unwrap();
    assert_eq!(
        pages_and_goals(&store, t).await,
        expected,
        "upgraded and compacted"
    );
    assert_eq!(
        clickhouse
            .query("SELECT count() FROM v5.sessions_flat FINAL WHERE notEmpty(paths)")
            .trim(),
        "3"
    );
    std::sync::Arc::new(store).shutdown().await;
}
