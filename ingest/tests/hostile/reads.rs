//! Reads a client can make huge: a session of thousands of events, a site of
//! thousands of pages. One session's events come in pages (`limit`,
//! `cursor`, `next_cursor`), the sweeper asks for one row per session it
//! closes, however many events the session holds, and `/v1/stats` ranks
//! pages in the database, not in a map of every URL in the range.
//!
//! Every scenario runs on SQLite and on ClickHouse (the latter only with
//! `WAYMARK_TEST_CLICKHOUSE=1`); on ClickHouse, whose server here logs every
//! query, the test also reads `system.query_log` to see how many rows each
//! of the collector's queries answered.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;
use waymark_ingest::{
    collector_end_id, sweep_idle_sessions, ClickHouseStore, ClickHouseUrl, Clock, EventType,
    StoredEvent,
};

use crate::stores::{config, sqlite, NOW, TOKEN};
use crate::support;
use crate::support::app::{Reply, TestApp};
use crate::support::clickhouse::ClickHouse;

/// Late 2024, as a clock the test holds.
const MIN: u64 = 60_000;
const CHROME: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 \
    (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
/// The events of the long session: far more than a page, or ten.
const LONG: u64 = 5_000;

/// This module's ClickHouse server, logging every query.
fn clickhouse_server() -> Option<&'static ClickHouse> {
    static SERVER: OnceLock<ClickHouse> = OnceLock::new();
    support::optional::clickhouse().then(|| SERVER.get_or_init(ClickHouse::start_logging_queries))
}

/// A ClickHouse store on database `reads_<name>`, and that name.
async fn clickhouse(name: &str) -> Option<(TestApp, &'static ClickHouse, String)> {
    let server = clickhouse_server()?;
    // The store's log (a failing query, …) shows with a failing test.
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let db = format!("reads_{name}");
    let dir = tempfile::tempdir().unwrap();
    let url: ClickHouseUrl = server.url(&db).parse().unwrap();
    let store = ClickHouseStore::open(&url, dir.path(), 1 << 30, Duration::from_millis(20))
        .await
        .unwrap();
    Some((
        TestApp::on_dyn(Arc::new(store), config(), NOW, dir),
        server,
        db,
    ))
}

/// The most rows any finished (`type` 2) `SELECT` of the collector on `db` answered
/// whose text contains `needle`.
fn most_rows_answered(server: &ClickHouse, db: &str, needle: &str) -> u64 {
    server.query("SYSTEM FLUSH LOGS");
    let found = server.query(&format!(
        "SELECT count(), max(result_rows) FROM system.query_log \
         WHERE type = 2 AND query LIKE 'SELECT%' \
         AND position(query, '{db}.') > 0 AND position(query, '{needle}') > 0 \
         AND position(query, 'query_log') = 0 FORMAT TSV"
    ));
    let (count, most) = found.trim().split_once('\t').unwrap();
    assert_ne!(count, "0", "no query on {db} with {needle:?} was logged");
    most.parse().unwrap()
}

/// Scatters `n` over the id space, so ids do not sort as they were made.
fn id(n: u64) -> String {
    Uuid::from_u128(u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
        .hyphenated()
        .to_string()
}

fn event(n: u64, session: &str, kind: &str, ts: u64, url: &str) -> Value {
    json!({
        "event_id": id(n), "type": kind, "name": "step", "ts": ts,
        "session_id": session, "visitor_id": format!("v-{session}"), "session_index": 1,
        "url": url,
    })
}

async fn post(app: &TestApp, events: &[Value]) {
    for chunk in events.chunks(500) {
        let body = json!({"v": 1, "site": "shop", "sent_at": app.clock.now_ms(), "events": chunk});
        let request = Request::post("/v1/batch")
            .header(header::CONTENT_TYPE, "text/plain")
            .header(header::USER_AGENT, CHROME)
            .body(Body::from(body.to_string()))
            .unwrap();
        let reply = app.send(request).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        tokio::time::timeout(Duration::from_secs(20), app.store.sync())
            .await
            .expect("the store takes the batch within 20 s")
            .unwrap();
    }
}

async fn get(app: &TestApp, path: &str) -> Reply {
    let request = Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    app.send(request).await
}

/// Sweeps until a sweep closes nothing.
async fn sweep_all(app: &TestApp) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while sweep_idle_sessions(&app.state).await.unwrap() > 0 {}
    })
    .await
    .expect("the sweep finishes");
}

/// The long session: `LONG` events, three to a millisecond, some without
/// `seq` (which sorts first), sent twice over; closed by the sweeper, then
/// one late event, which moves the collector's end after it.
async fn store_long_session(app: &TestApp) {
    let start = NOW - 3 * 60 * MIN;
    let events: Vec<Value> = (0..LONG)
        .map(|n| {
            let kind = if n % 10 == 0 { "page_view" } else { "custom" };
            let mut e = event(
                n,
                "long",
                kind,
                start + n / 3,
                &format!("https://shop.example/p/{}", n / 10),
            );
            if n % 7 != 0 {
                e["seq"] = json!(n + 1);
            }
            e
        })
        .collect();
    post(app, &events).await;
    post(app, &events[..1_000]).await; // A retry: stored once.
    sweep_all(app).await;
    post(
        app,
        &[event(
            LONG,
            "long",
            "custom",
            NOW - 10 * MIN,
            "https://shop.example/late",
        )],
    )
    .await;
}

/// `text` as a query value.
fn encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn events_of(body: &Value) -> Vec<StoredEvent> {
    serde_json::from_value(body["events"].clone()).unwrap()
}

/// Walking `/v1/sessions/long?limit=100` gives every event once, in order,
/// as the store's whole list has them; a page is 100 by default. `before`
/// runs after the walk, before the test reads the whole list itself.
async fn pages_of_a_long_session_walk_every_event_once(app: TestApp, before: impl FnOnce()) {
    store_long_session(&app).await;
    let first = get(&app, "/v1/sessions/long").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let body = first.json();
    assert_eq!(body["session_id"], "long");
    assert_eq!(body["event_count"], LONG + 1);
    assert_eq!(events_of(&body).len(), 100, "the default page");
    assert!(body["next_cursor"].is_string(), "{}", body["next_cursor"]);

    let mut walked: Vec<StoredEvent> = Vec::new();
    let mut pages = 0;
    let mut path = "/v1/sessions/long?limit=100".to_owned();
    loop {
        let reply = get(&app, &path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
        let body = reply.json();
        let page = events_of(&body);
        pages += 1;
        assert!(pages <= 60, "the walk does not end");
        match body["next_cursor"].as_str() {
            Some(cursor) => {
                assert_eq!(page.len(), 100, "a full page before the last");
                path = format!("/v1/sessions/long?limit=100&cursor={}", encoded(cursor));
            }
            None => {
                assert!(!page.is_empty() && page.len() <= 100, "{}", page.len());
                walked.extend(page);
                break;
            }
        }
        walked.extend(page);
    }
    assert_eq!(pages, 51);
    assert_eq!(
        walked.len() as u64,
        LONG + 2,
        "the events, the late one, the end"
    );
    let ids: BTreeSet<&str> = walked.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), walked.len(), "no event twice");
    let order: Vec<_> = walked.iter().map(|e| (e.ts, e.seq, &e.event_id)).collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "by ts, seq, event_id"
    );
    before();
    let whole = app.store.events_for_session("shop", "long").await.unwrap();
    assert_eq!(walked, whole, "the walk is the whole list");
    let end = walked
        .iter()
        .find(|e| e.event_type == EventType::VisitEnded)
        .unwrap();
    assert_eq!(end.event_id, collector_end_id("shop", "long"));
    assert_eq!(end.ts, NOW - 10 * MIN, "moved to the late event");
}

/// A `limit` or `cursor` the API cannot use is the client's mistake.
async fn a_bad_limit_or_cursor_is_an_invalid_query(app: TestApp) {
    post(
        &app,
        &[event(
            1,
            "short",
            "page_view",
            NOW - MIN,
            "https://shop.example/",
        )],
    )
    .await;
    let ok = get(&app, "/v1/sessions/short?limit=1000").await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(ok.json()["next_cursor"], Value::Null);
    for query in [
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=ten",
        "limit=99999999999999999999999",
        "limit=10&limit=20",
        "cursor=garbage",
        "cursor=12.3",
        "cursor=x.0.abc",
        "cursor=1.x.abc",
        "cursor=9223372036854775808.0.abc",
        "cursor=1.99999999999.abc",
        "cursor=1.0.",
        "page=2",
    ] {
        let reply = get(&app, &format!("/v1/sessions/short?{query}")).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_query");
    }
    let missing = get(&app, "/v1/sessions/nobody?limit=10").await;
    missing.assert_error(StatusCode::NOT_FOUND, "not_found");
}

/// The start of the heavy sessions.
const HEAVY_START: u64 = NOW - 2 * 60 * MIN;
/// Events in each heavy session.
const HEAVY: u64 = 1_500;

/// Three idle sessions of `HEAVY` events each, then a sweep.
async fn store_and_sweep_heavy_sessions(app: &TestApp) {
    let mut n = 0;
    let mut events = Vec::new();
    for s in 0..3 {
        for i in 0..HEAVY {
            n += 1;
            let kind = if i % 5 == 0 { "page_view" } else { "custom" };
            let mut e = event(
                n,
                &format!("heavy-{s}"),
                kind,
                HEAVY_START + i,
                &format!("https://shop.example/{s}/{i}"),
            );
            e["seq"] = json!(i + 1);
            events.push(e);
        }
    }
    post(app, &events).await;
    sweep_all(app).await;
}

/// Each heavy session is closed at its last event, with the end the
/// sweeper writes: numbered after it, at the exit page, with the counts.
async fn heavy_sessions_are_closed_right(app: &TestApp) {
    let last = HEAVY_START + HEAVY - 1;
    for s in 0..3 {
        let id = format!("heavy-{s}");
        let exit = format!("https://shop.example/{s}/{}", HEAVY - 5);
        let session = app.store.session("shop", &id).await.unwrap().unwrap();
        assert_eq!(session.end_reason.as_deref(), Some("idle"), "{session:?}");
        assert_eq!(session.ended_at, Some(last));
        assert_eq!(session.exit_page.as_deref(), Some(&*exit));
        let first = get(app, &format!("/v1/sessions/{id}?limit=1000"))
            .await
            .json();
        let cursor = encoded(first["next_cursor"].as_str().unwrap());
        let second = get(
            app,
            &format!("/v1/sessions/{id}?limit=1000&cursor={cursor}"),
        )
        .await
        .json();
        assert_eq!(second["next_cursor"], Value::Null);
        let events = events_of(&second);
        assert_eq!(events.len() as u64, HEAVY + 1 - 1_000);
        let end = events.last().unwrap();
        assert_eq!(end.event_id, collector_end_id("shop", &id), "{end:?}");
        assert_eq!(end.ts, last);
        assert_eq!(
            end.seq,
            u32::try_from(HEAVY + 1).ok(),
            "numbered after the last event"
        );
        assert_eq!(end.url, exit);
        let props: Value = serde_json::from_str(end.props.as_deref().unwrap()).unwrap();
        assert_eq!(props["event_count"], HEAVY);
        assert_eq!(props["duration_ms"], HEAVY - 1);
    }
}

/// Top pages: many distinct URLs, one page under six of them (query and
/// fragment differ), ties broken by the page, bytewise.
async fn top_pages_are_ranked_with_ties_broken_by_page(app: &TestApp) {
    let base = "https://shop.example";
    let mut urls: Vec<String> = ["?a=1", "?a=2", "?b", "#top", "?a=1#x", "#x?y"]
        .iter()
        .map(|tail| format!("{base}/hot{tail}"))
        .collect();
    let ties = ["m", "Z", "b", "y", "a", "k", "c", "x", "B", "d", "l", "e"];
    for tie in ties {
        urls.push(format!("{base}/tie-{tie}?v=1"));
        urls.push(format!("{base}/tie-{tie}?v=2"));
    }
    for single in 0..50 {
        urls.push(format!("{base}/once-{single:02}"));
    }
    let events: Vec<Value> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            event(
                90_000 + i as u64,
                "pages",
                "page_view",
                NOW - 30 * MIN + i as u64,
                url,
            )
        })
        .collect();
    post(app, &events).await;
    let reply = get(app, &format!("/v1/stats?from={}&to={NOW}", NOW - 60 * MIN)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let top: Vec<(String, u64)> = reply.json()["top_pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key"].as_str().unwrap().to_owned(),
                k["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut tied: Vec<&str> = ties.to_vec();
    tied.sort_unstable();
    let mut expected = vec![(format!("{base}/hot"), 6)];
    expected.extend(tied[..9].iter().map(|t| (format!("{base}/tie-{t}"), 2)));
    assert_eq!(top, expected);
}

#[tokio::test]
async fn sqlite_pages_of_a_long_session_walk_every_event_once() {
    pages_of_a_long_session_walk_every_event_once(sqlite(), || {}).await;
}

#[tokio::test]
async fn clickhouse_pages_of_a_long_session_walk_every_event_once() {
    let Some((app, server, db)) = clickhouse("long").await else {
        return;
    };
    // No query of the collector (sweep, session, pages) answers more than
    // a page and one more: none loads the session's events.
    pages_of_a_long_session_walk_every_event_once(app, || {
        let most = most_rows_answered(server, &db, "events");
        assert!(most <= 101, "a query answered {most} rows");
    })
    .await;
}

#[tokio::test]
async fn sqlite_a_bad_limit_or_cursor_is_an_invalid_query() {
    a_bad_limit_or_cursor_is_an_invalid_query(sqlite()).await;
}

#[tokio::test]
async fn clickhouse_a_bad_limit_or_cursor_is_an_invalid_query() {
    let Some((app, _, _)) = clickhouse("bad_page").await else {
        return;
    };
    a_bad_limit_or_cursor_is_an_invalid_query(app).await;
}

#[tokio::test]
async fn sqlite_the_sweep_closes_sessions_of_many_events() {
    let app = sqlite();
    store_and_sweep_heavy_sessions(&app).await;
    heavy_sessions_are_closed_right(&app).await;
}

/// The sweep closes sessions of 1,500 events each while every query it
/// makes answers at most a row per session.
#[tokio::test]
async fn clickhouse_the_sweep_fetches_a_row_per_session_not_its_events() {
    let Some((app, server, db)) = clickhouse("sweep").await else {
        return;
    };
    store_and_sweep_heavy_sessions(&app).await;
    let most = most_rows_answered(server, &db, "events");
    assert!(
        most <= 3,
        "a sweep query answered {most} rows for 3 sessions"
    );
    heavy_sessions_are_closed_right(&app).await;
}

#[tokio::test]
async fn sqlite_top_pages_are_ranked_with_ties_broken_by_page() {
    top_pages_are_ranked_with_ties_broken_by_page(&sqlite()).await;
}

/// The same answer, and the page query answers the top ten only.
#[tokio::test]
async fn clickhouse_top_pages_are_ranked_in_the_database() {
    let Some((app, server, db)) = clickhouse("top_pages").await else {
        return;
    };
    top_pages_are_ranked_with_ties_broken_by_page(&app).await;
    let most = most_rows_answered(server, &db, "page_view");
    assert!(most <= 10, "the top-pages query answered {most} rows");
}
