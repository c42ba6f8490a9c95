//! The store conformance suite: sessions kept current from events, the
//! sweeper and the read API, driven through `app()` with a clock the test
//! moves, with the same expectations against every store that keeps
//! sessions — the SQLite store in a temporary directory and the ClickHouse
//! store on a real ClickHouse server (one per run of this file, started on
//! a free loopback port; `cargo xtask setup` installs it). Each scenario in
//! `conformance!` runs once per store: `sqlite::<name>` and
//! `clickhouse::<name>`; the ClickHouse ones only with
//! `WAYMARK_TEST_CLICKHOUSE=1` (`cargo xtask test` sets it), and otherwise
//! skip, saying so on stderr (`support/optional.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use proptest::prelude::*;
use serde_json::{json, Value};
use waymark_ingest::{
    collector_end_id, decode_batch, fold_session, sweep_idle_sessions, ClickHouseStore,
    ClickHouseUrl, Config, Session, SessionQuery, SqliteStore,
};

mod support;
use support::app::TestApp;
use support::clickhouse::ClickHouse;

const T0: u64 = 1_700_000_000_000;
const MIN: u64 = 60_000;
const TOKEN: &str = "s3cret-admin-token";
const CHROME_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 \
    (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) \
    AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";

/// The ClickHouse server of this test binary, started on first use; `None`
/// (the test's skip said) unless `WAYMARK_TEST_CLICKHOUSE=1`.
fn clickhouse_server() -> Option<&'static ClickHouse> {
    static SERVER: OnceLock<ClickHouse> = OnceLock::new();
    support::optional::clickhouse().then(|| SERVER.get_or_init(ClickHouse::start))
}

/// The conformance suite's config: the read API's token, all else default.
fn config() -> Config {
    Config {
        admin_token: Some(TOKEN.to_owned()),
        ..Config::default()
    }
}

impl TestApp {
    fn sqlite() -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        TestApp::on_dyn(store, config(), T0, dir)
    }

    /// A ClickHouse store on its own database, named after the scenario;
    /// `None` when the ClickHouse tests are not to run.
    async fn clickhouse(scenario: &str) -> Option<TestApp> {
        let server = clickhouse_server()?;
        // The store's log (insert retries, …) shows with a failing test.
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        let dir = tempfile::tempdir().unwrap();
        let url: ClickHouseUrl = server
            .url(&format!("conformance_{scenario}"))
            .parse()
            .unwrap();
        let store = ClickHouseStore::open(&url, dir.path(), 1 << 30, Duration::from_millis(20))
            .await
            .unwrap();
        Some(TestApp::on_dyn(Arc::new(store), config(), T0, dir))
    }

    /// Posts `events` as one batch sent now (no clock skew) by `user_agent`.
    async fn post(&self, user_agent: &str, events: Vec<Value>) -> Value {
        let now = self.clock.now_ms();
        self.post_sent_at(user_agent, now, events).await
    }

    async fn post_sent_at(&self, user_agent: &str, sent_at: u64, events: Vec<Value>) -> Value {
        let body = json!({"v": 1, "site": "shop", "sent_at": sent_at, "events": events});
        let request = Request::post("/v1/batch")
            .header(header::CONTENT_TYPE, "text/plain")
            .header(header::USER_AGENT, user_agent)
            .body(Body::from(body.to_string()))
            .unwrap();
        let reply = self.send(request).await;
        let body = reply.json();
        assert_eq!(reply.status, StatusCode::OK, "{body}");
        // Readable before the test looks (ClickHouse: out of the spool).
        tokio::time::timeout(Duration::from_secs(20), self.store.sync())
            .await
            .expect("the store takes the batch within 20 s")
            .unwrap();
        body
    }

    /// A read with the admin token: the status and the JSON body.
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let request = Request::get(path)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        let reply = self.send(request).await;
        (reply.status, reply.json())
    }

    /// The session, as `session(id)` gives it — and as the list gives it:
    /// a store that derives lists differently (ClickHouse aggregates in SQL,
    /// folds one session in Rust) must agree with itself.
    async fn session(&self, id: &str) -> Session {
        let one = self.store.session("shop", id).await.unwrap().unwrap();
        let listed = self
            .store
            .sessions(SessionQuery {
                limit: 500,
                ..SessionQuery::default()
            })
            .await
            .unwrap();
        let in_list = listed.sessions.iter().find(|s| s.session_id == id);
        assert_eq!(in_list, Some(&one), "the list and the session agree");
        one
    }
}

use waymark_ingest::Clock;

fn uuid(n: u128) -> String {
    uuid::Uuid::from_u128(n).hyphenated().to_string()
}

fn page_view(n: u128, session: &str, ts: u64, url: &str, referrer: Option<&str>) -> Value {
    json!({
        "event_id": uuid(n), "type": "page_view", "ts": ts, "seq": n as u64,
        "session_id": session, "visitor_id": "v-1", "session_index": 1,
        "url": url, "referrer": referrer,
    })
}

fn event(n: u128, kind: &str, session: &str, ts: u64) -> Value {
    json!({
        "event_id": uuid(n), "type": kind, "name": "signup", "ts": ts, "seq": n as u64,
        "session_id": session, "visitor_id": "v-1", "session_index": 1,
        "url": "https://shop.example/pricing",
    })
}

fn sdk_visit_ended(n: u128, session: &str, ended_at: u64, reason: &str) -> Value {
    json!({
        "event_id": uuid(n), "type": "visit_ended", "ts": ended_at, "seq": n as u64,
        "session_id": session, "visitor_id": "v-1", "session_index": 1,
        "url": "https://shop.example/pricing",
        "props": {"reason": reason, "started_at": T0, "ended_at": ended_at,
                  "duration_ms": ended_at - T0, "event_count": 3},
    })
}

fn visit_ended_ids(events: &[waymark_ingest::StoredEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event_type == waymark_ingest::EventType::VisitEnded)
        .map(|e| e.event_id.clone())
        .collect()
}

#[tokio::test]
async fn the_read_api_needs_the_admin_token() {
    let app = TestApp::sqlite();
    for path in ["/v1/sessions", "/v1/sessions/x", "/v1/stats", "/metrics"] {
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Basic czNjcmV0"),
            Some(TOKEN),
        ] {
            let mut request = Request::get(path);
            if let Some(auth) = auth {
                request = request.header(header::AUTHORIZATION, auth);
            }
            let reply = app.send(request.body(Body::empty()).unwrap()).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path} {auth:?}");
            assert_eq!(reply.header("www-authenticate"), "Bearer");
            assert_eq!(reply.json()["error"], "unauthorized");
        }
    }
    // No token configured: nobody gets in, not even with an empty one.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let open = TestApp::on(store, Config::default(), T0, dir);
    let reply = open
        .send(
            Request::get("/v1/sessions")
                .header(header::AUTHORIZATION, "Bearer ")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

/// Each scenario once per store, as `sqlite::<name>` and `clickhouse::<name>`
/// (which skip, saying so, unless `WAYMARK_TEST_CLICKHOUSE=1`: see
/// `support/optional.rs`).
macro_rules! conformance {
    ($(async fn $name:ident($app:ident) $body:block)*) => {
        mod sqlite {
            use super::*;
            /// Whether `append` tells duplicates apart: SQLite does.
            const COUNTS_DUPLICATES: bool = true;
            $(
                #[tokio::test]
                async fn $name() {
                    let $app = TestApp::sqlite();
                    $body
                }
            )*
        }
        mod clickhouse {
            use super::*;
            /// Whether `append` tells duplicates apart: the ClickHouse store
            /// acknowledges from its spool and folds duplicates in
            /// ClickHouse, so it counts every event as accepted.
            const COUNTS_DUPLICATES: bool = false;
            $(
                #[tokio::test]
                async fn $name() {
                    let Some($app) = TestApp::clickhouse(stringify!($name)).await else {
                        return;
                    };
                    $body
                }
            )*
        }
    };
}

conformance! {
    async fn a_session_has_landing_exit_source_duration_counts_and_device(app) {
        let mut first = page_view(
            1,
            "s-1",
            T0,
            "https://shop.example/?utm_source=newsletter&utm_medium=email",
            Some("https://mail.example/"),
        );
        first["context"] = json!({"user_agent": CHROME_MAC, "language": "en-GB"});
        first["user_id"] = Value::Null;
        let mut identify = event(3, "identify", "s-1", T0 + 2 * MIN);
        identify["user_id"] = json!("u-42");
        app.post(
            SAFARI_IPHONE, // The context's user agent wins over the request's.
            vec![
                first,
                event(2, "custom", "s-1", T0 + MIN),
                identify,
                page_view(
                    4,
                    "s-1",
                    T0 + 5 * MIN,
                    "https://shop.example/checkout?step=2",
                    None,
                ),
                event(5, "page_leave", "s-1", T0 + 6 * MIN),
            ],
        )
        .await;

        let s = app.session("s-1").await;
        assert_eq!(s.site, "shop");
        assert_eq!(s.visitor_id, "v-1");
        assert_eq!(s.user_id.as_deref(), Some("u-42"));
        assert_eq!(s.session_index, Some(1));
        assert_eq!(
            s.landing_page.as_deref(),
            Some("https://shop.example/?utm_source=newsletter&utm_medium=email")
        );
        assert_eq!(
            s.exit_page.as_deref(),
            Some("https://shop.example/checkout?step=2")
        );
        assert_eq!(s.source, "newsletter");
        assert_eq!((s.started_at, s.last_seen_at), (T0, T0 + 6 * MIN));
        assert_eq!(s.duration_ms, 6 * MIN);
        assert_eq!((s.event_count, s.page_views), (5, 2));
        assert_eq!((s.ended_at, s.end_reason.as_deref()), (None, None));
        assert_eq!(s.browser.as_deref(), Some("Chrome"));
        assert_eq!(s.os.as_deref(), Some("Mac OSX"));
        assert_eq!(s.device_type.as_deref(), Some("desktop"));
        assert!(!s.is_bot);
        assert_eq!(s.country, None, "no GeoIP database, no geo, no error");
    }

    async fn source_is_the_referrer_domain_else_direct_and_the_request_agent_is_used_without_context(app) {
        app.post(
            SAFARI_IPHONE,
            vec![page_view(
                1,
                "s-ref",
                T0,
                "https://shop.example/a",
                Some("https://www.google.com/search?q=x"),
            )],
        )
        .await;
        app.post(
            SAFARI_IPHONE,
            vec![page_view(
                2,
                "s-self",
                T0,
                "https://shop.example/b",
                Some("https://shop.example/a"),
            )],
        )
        .await;
        let s = app.session("s-ref").await;
        assert_eq!(s.source, "google.com");
        assert_eq!(
            (
                s.browser.as_deref(),
                s.os.as_deref(),
                s.device_type.as_deref()
            ),
            (Some("Safari"), Some("iPhone"), Some("mobile"))
        );
        assert_eq!(app.session("s-self").await.source, "direct");
    }

    async fn webdriver_and_crawler_sessions_are_flagged_as_bots(app) {
        let mut driven = page_view(1, "s-driven", T0, "https://shop.example/", None);
        driven["context"] = json!({"user_agent": CHROME_MAC, "webdriver": true});
        app.post(CHROME_MAC, vec![driven]).await;
        app.post(
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            vec![page_view(2, "s-crawler", T0, "https://shop.example/", None)],
        )
        .await;
        for id in ["s-driven", "s-crawler"] {
            let s = app.session(id).await;
            assert!(s.is_bot, "{id}");
            assert_eq!(s.device_type.as_deref(), Some("bot"), "{id}");
        }
    }

    async fn a_device_clock_off_by_more_than_a_minute_is_corrected_and_the_original_kept(app) {
        // The device is two hours behind: it sent at T0 - 2h, we got it at T0.
        let sent_at = T0 - 120 * MIN;
        app.post_sent_at(
            CHROME_MAC,
            sent_at,
            vec![page_view(
                1,
                "s-skew",
                sent_at - 30_000,
                "https://shop.example/",
                None,
            )],
        )
        .await;
        let events = app.store.events_for_session("shop", "s-skew").await.unwrap();
        assert_eq!(events[0].ts, T0 - 30_000);
        assert_eq!(events[0].client_ts, sent_at - 30_000);
        assert_eq!(app.session("s-skew").await.started_at, T0 - 30_000);

        // Within a minute: left alone (network delay, not skew).
        app.post_sent_at(
            CHROME_MAC,
            T0 - 50_000,
            vec![page_view(
                2,
                "s-close",
                T0 - 55_000,
                "https://shop.example/",
                None,
            )],
        )
        .await;
        let events = app.store.events_for_session("shop", "s-close").await.unwrap();
        assert_eq!(
            (events[0].ts, events[0].client_ts),
            (T0 - 55_000, T0 - 55_000)
        );
    }

    async fn the_sweeper_closes_an_idle_session_once(app) {
        app.post(
            CHROME_MAC,
            vec![
                page_view(1, "s-idle", T0, "https://shop.example/", None),
                page_view(2, "s-idle", T0 + 4 * MIN, "https://shop.example/b", None),
            ],
        )
        .await;
        app.post(
            CHROME_MAC,
            vec![page_view(
                3,
                "s-busy",
                T0 + 20 * MIN,
                "https://shop.example/",
                None,
            )],
        )
        .await;

        // 30 minutes after the last activity is not yet past the timeout.
        app.clock.set(T0 + 34 * MIN);
        assert_eq!(sweep_idle_sessions(&app.state).await.unwrap(), 0);
        app.clock.set(T0 + 34 * MIN + 1);
        assert_eq!(sweep_idle_sessions(&app.state).await.unwrap(), 1);
        // Again, and later: nothing more.
        assert_eq!(sweep_idle_sessions(&app.state).await.unwrap(), 0);
        app.clock.set(T0 + 51 * MIN);
        assert_eq!(
            sweep_idle_sessions(&app.state).await.unwrap(),
            1,
            "s-busy now"
        );
        assert_eq!(sweep_idle_sessions(&app.state).await.unwrap(), 0);

        let s = app.session("s-idle").await;
        assert_eq!(s.ended_at, Some(T0 + 4 * MIN), "ended at the last activity");
        assert_eq!(s.end_reason.as_deref(), Some("idle"));
        assert_eq!(s.event_count, 2, "visit_ended is not counted as activity");
        let events = app.store.events_for_session("shop", "s-idle").await.unwrap();
        assert_eq!(visit_ended_ids(&events), vec![collector_end_id("shop", "s-idle")]);
        let ended = events.last().unwrap();
        assert_eq!(
            (ended.ts, ended.received_at),
            (T0 + 4 * MIN, T0 + 34 * MIN + 1)
        );
        let props: Value = serde_json::from_str(ended.props.as_deref().unwrap()).unwrap();
        assert_eq!(props["reason"], "idle");
        assert_eq!(props["duration_ms"], 4 * MIN);
        assert_eq!(app.state.metrics().sessions_swept.get(), 2);
    }

    async fn the_sweeper_writes_nothing_when_the_sdk_already_ended_the_session(app) {
        app.post(
            CHROME_MAC,
            vec![
                page_view(1, "s-1", T0, "https://shop.example/", None),
                sdk_visit_ended(2, "s-1", T0, "reset"),
            ],
        )
        .await;
        app.clock.set(T0 + 120 * MIN);
        assert_eq!(sweep_idle_sessions(&app.state).await.unwrap(), 0);
        let events = app.store.events_for_session("shop", "s-1").await.unwrap();
        assert_eq!(visit_ended_ids(&events), vec![uuid(2)]);
        let s = app.session("s-1").await;
        assert_eq!(
            (s.ended_at, s.end_reason.as_deref()),
            (Some(T0), Some("reset"))
        );
    }

    async fn a_late_sdk_visit_ended_replaces_the_sweepers_and_a_second_one_is_a_duplicate(app) {
        app.post(
            CHROME_MAC,
            vec![page_view(1, "s-1", T0, "https://shop.example/", None)],
        )
        .await;
        app.clock.set(T0 + 31 * MIN);
        assert_eq!(sweep_idle_sessions(&app.state).await.unwrap(), 1);

        // The tab wakes up an hour later, notices the rotation, sends its own.
        app.clock.set(T0 + 90 * MIN);
        let answer = app
            .post(CHROME_MAC, vec![sdk_visit_ended(9, "s-1", T0, "idle")])
            .await;
        assert_eq!(answer["accepted"], 1);
        let events = app.store.events_for_session("shop", "s-1").await.unwrap();
        assert_eq!(
            visit_ended_ids(&events),
            vec![uuid(9)],
            "exactly one, the SDK's"
        );

        // Another tab's (later) visit_ended for the same session: still one.
        let answer = app
            .post(CHROME_MAC, vec![sdk_visit_ended(10, "s-1", T0 + 1, "idle")])
            .await;
        if COUNTS_DUPLICATES {
            assert_eq!(
                (answer["accepted"].clone(), answer["duplicates"].clone()),
                (json!(0), json!(1))
            );
        }
        assert_eq!(sweep_idle_sessions(&app.state).await.unwrap(), 0);
        let events = app.store.events_for_session("shop", "s-1").await.unwrap();
        assert_eq!(visit_ended_ids(&events), vec![uuid(9)]);
    }

    async fn late_activity_moves_the_sweepers_end(app) {
        app.post(
            CHROME_MAC,
            vec![page_view(1, "s-1", T0, "https://shop.example/", None)],
        )
        .await;
        app.clock.set(T0 + 31 * MIN);
        sweep_idle_sessions(&app.state).await.unwrap();
        // A batch the device held back arrives late.
        app.post_sent_at(
            CHROME_MAC,
            T0 + 31 * MIN,
            vec![page_view(
                2,
                "s-1",
                T0 + 3 * MIN,
                "https://shop.example/late",
                None,
            )],
        )
        .await;
        let s = app.session("s-1").await;
        assert_eq!(
            (s.last_seen_at, s.ended_at),
            (T0 + 3 * MIN, Some(T0 + 3 * MIN))
        );
        let events = app.store.events_for_session("shop", "s-1").await.unwrap();
        assert_eq!(events.last().unwrap().ts, T0 + 3 * MIN);
        assert_eq!(visit_ended_ids(&events).len(), 1);
    }

    async fn sessions_are_listed_newest_first_filtered_and_paginated(app) {
        for i in 0..7u128 {
            let mut pv = page_view(
                i + 1,
                &format!("s-{i}"),
                T0 + i as u64 * MIN,
                "https://shop.example/",
                None,
            );
            pv["visitor_id"] = json!(if i % 2 == 0 { "v-even" } else { "v-odd" });
            if i == 3 {
                pv["user_id"] = json!("u-3");
            }
            app.post(CHROME_MAC, vec![pv]).await;
        }

        let (status, page) = app.get("/v1/sessions?site=shop&limit=3").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let ids = |page: &Value| -> Vec<String> {
            page["sessions"]
                .as_array()
                .unwrap_or_else(|| panic!("{page}"))
                .iter()
                .map(|s| s["session_id"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(ids(&page), ["s-6", "s-5", "s-4"]);
        let first = &page["sessions"][0];
        for field in [
            "session_id",
            "site",
            "visitor_id",
            "user_id",
            "started_at",
            "last_seen_at",
            "ended_at",
            "end_reason",
            "duration_ms",
            "landing_page",
            "exit_page",
            "source",
            "country",
            "region",
            "city",
            "browser",
            "os",
            "device_type",
            "event_count",
            "page_views",
            "is_bot",
            "session_index",
        ] {
            assert!(first.get(field).is_some(), "{field} missing in {first}");
        }
        let mut seen = ids(&page);
        let mut cursor = page["next_cursor"].as_str().unwrap().to_owned();
        loop {
            let (_, next) = app
                .get(&format!("/v1/sessions?site=shop&limit=3&cursor={cursor}"))
                .await;
            seen.extend(ids(&next));
            match next["next_cursor"].as_str() {
                Some(c) => cursor = c.to_owned(),
                None => break,
            }
        }
        assert_eq!(seen, ["s-6", "s-5", "s-4", "s-3", "s-2", "s-1", "s-0"]);

        let (_, page) = app.get("/v1/sessions?visitor_id=v-odd").await;
        assert_eq!(ids(&page), ["s-5", "s-3", "s-1"]);
        assert_eq!(page["next_cursor"], Value::Null);
        let (_, page) = app.get("/v1/sessions?user_id=u-3").await;
        assert_eq!(ids(&page), ["s-3"]);
        let (_, page) = app
            .get(&format!(
                "/v1/sessions?from={}&to={}",
                T0 + MIN,
                T0 + 3 * MIN
            ))
            .await;
        assert_eq!(ids(&page), ["s-2", "s-1"]);
        let (_, page) = app.get("/v1/sessions?site=other").await;
        assert_eq!(ids(&page), Vec::<String>::new());

        for bad in [
            "limit=0",
            "limit=501",
            "from=x",
            "from=5&to=5",
            "cursor=nope",
            "colour=red",
            "site=a&site=b",
        ] {
            let (status, body) = app.get(&format!("/v1/sessions?{bad}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
            assert_eq!(body["error"], "invalid_query", "{bad}");
        }
    }

    async fn one_session_comes_with_its_events_in_order(app) {
        app.post(
            CHROME_MAC,
            vec![
                event(3, "click", "s-1", T0 + 2000),
                page_view(1, "s-1", T0, "https://shop.example/", None),
                event(2, "custom", "s-1", T0 + 1000),
            ],
        )
        .await;
        let (status, body) = app.get("/v1/sessions/s-1").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["session_id"], "s-1");
        assert_eq!(body["landing_page"], "https://shop.example/");
        let events = body["events"].as_array().unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["page_view", "custom", "click"]);
        for field in [
            "event_id",
            "type",
            "name",
            "ts",
            "session_id",
            "visitor_id",
            "url",
            "props",
            "context",
        ] {
            assert!(events[0].get(field).is_some(), "{field}");
        }
        let (status, body) = app.get("/v1/sessions/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "not_found");
    }

    async fn stats_count_visits_visitors_pages_bounces_sources_and_buckets_without_bots(app) {
        // s-a: two page views over 4 minutes (no bounce), from google.
        app.post(
            CHROME_MAC,
            vec![
                page_view(
                    1,
                    "s-a",
                    T0,
                    "https://shop.example/?utm_source=google",
                    None,
                ),
                page_view(
                    2,
                    "s-a",
                    T0 + 4 * MIN,
                    "https://shop.example/pricing#plans",
                    None,
                ),
            ],
        )
        .await;
        // s-b: one page view (a bounce), direct, another visitor, an hour later.
        let mut b = page_view(
            3,
            "s-b",
            T0 + 60 * MIN,
            "https://shop.example/pricing?x=1",
            None,
        );
        b["visitor_id"] = json!("v-2");
        app.post(CHROME_MAC, vec![b]).await;
        // Started before the range, busy inside it: not a visit of the range.
        let mut early = vec![
            page_view(5, "s-early", T0 - 10 * MIN, "https://shop.example/early", None),
            page_view(6, "s-early", T0 + 20 * MIN, "https://shop.example/early", None),
        ];
        for e in &mut early {
            e["visitor_id"] = json!("v-3");
        }
        app.post(CHROME_MAC, early).await;
        // A bot: not counted.
        app.post(
            "curl/8.4.0",
            vec![page_view(
                4,
                "s-bot",
                T0 + 10 * MIN,
                "https://shop.example/",
                None,
            )],
        )
        .await;

        let (status, stats) = app
            .get(&format!(
                "/v1/stats?site=shop&from={T0}&to={}",
                T0 + 3 * 60 * MIN
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{stats}");
        assert_eq!(stats["visits"], 2);
        assert_eq!(stats["visitors"], 2);
        assert_eq!(stats["page_views"], 3);
        assert_eq!(stats["bounce_rate"], 0.5);
        assert_eq!(stats["avg_duration_ms"], 2 * MIN);
        assert_eq!(
            stats["top_pages"],
            json!([{"key": "https://shop.example/pricing", "count": 2}, {"key": "https://shop.example/", "count": 1}])
        );
        assert_eq!(
            stats["sources"],
            json!([{"key": "direct", "count": 1}, {"key": "google", "count": 1}])
        );
        assert_eq!(stats["countries"], json!([]));
        assert_eq!(stats["interval"], "hour");
        // Every hour from the one holding `from` to the one holding `to - 1`,
        // zeros included. T0 (2023-11-14 22:13:20 UTC) is not on the hour, so
        // the three hours of the range touch four: 22:00, 23:00, 00:00 and
        // 01:00 (the range ends at 01:13:20). s-a started in the first, s-b
        // in the second; s-early started before the range and s-bot is a bot.
        // Nothing here depends on timing: both stores count started sessions
        // per bucket, and a bucket list of any other length is wrong.
        let hour = 3_600_000;
        let first = T0 / hour * hour;
        assert_eq!(first, T0 - (13 * MIN + 20_000));
        assert_eq!(
            stats["visits_over_time"],
            json!([
                {"start": first, "visits": 1},
                {"start": first + hour, "visits": 1},
                {"start": first + 2 * hour, "visits": 0},
                {"start": first + 3 * hour, "visits": 0},
            ])
        );

        let (_, with_bots) = app
            .get(&format!(
                "/v1/stats?site=shop&from={T0}&to={}&include_bots=true",
                T0 + 3 * 60 * MIN
            ))
            .await;
        assert_eq!(with_bots["visits"], 3);

        // Without a range: the last seven days, in days.
        app.clock.set(T0 + 24 * 60 * MIN);
        let (_, week) = app.get("/v1/stats").await;
        assert_eq!(week["interval"], "day");
        assert_eq!(week["visits"], 3, "s-early too");
        assert_eq!(week["visits_over_time"].as_array().unwrap().len(), 8);
    }
}

/// What one session looks like after `batches` arrive in the given order.
fn session_after(batches: &[Vec<Value>], now: u64) -> Session {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use waymark_ingest::{EventSink, SessionReader};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut every_copy = Vec::new();
        for batch in batches {
            let body = json!({"site": "shop", "sent_at": now, "events": batch}).to_string();
            let decoded = decode_batch(body.as_bytes(), now).unwrap();
            every_copy.extend(decoded.events.clone());
            store.append(decoded.events).await.unwrap();
        }
        let folded = fold_session(every_copy).unwrap();
        let session = store.session("shop", "s-p").await.unwrap().unwrap();
        // What a store keeping every copy (ClickHouse) folds on read is what
        // SQLite folded on write, and so are the events it keeps.
        assert_eq!(folded.0.session, session);
        assert_eq!(
            folded.1,
            store.events_for_session("shop", "s-p").await.unwrap()
        );
        session
    })
}

fn arbitrary_session() -> impl Strategy<Value = Vec<Value>> {
    let one = (0..6u8, 0..3_600_000u64, 0..4u8, prop::option::of(0..3u8));
    prop::collection::vec(one, 1..14).prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (kind, offset, page, user))| {
                let kind = ["page_view", "page_view", "click", "custom", "identify", "page_leave"][kind as usize];
                let mut e = json!({
                    "event_id": uuid(1000 + i as u128), "type": kind, "name": "n",
                    "ts": T0 + offset, "seq": i as u64 + 1,
                    "session_id": "s-p", "visitor_id": "v-p", "session_index": 2,
                    "url": format!("https://shop.example/p{page}?utm_source=src{page}"),
                    "referrer": format!("https://ref{page}.example/"),
                    "context": {"user_agent": if page % 2 == 0 { CHROME_MAC } else { SAFARI_IPHONE }},
                });
                if let Some(user) = user {
                    e["user_id"] = json!(format!("u-{user}"));
                }
                e
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Events split over batches, in any order, with retries and a late
    /// visit_ended, give the same session as one batch in order.
    #[test]
    fn arrival_order_does_not_change_the_session(
        events in arbitrary_session(),
        with_end in any::<bool>(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        order in any::<prop::sample::Index>(),
        retries in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let mut events = events;
        if with_end {
            let mut end = sdk_visit_ended(2000, "s-p", T0 + 3_600_000, "max_length");
            end["visitor_id"] = json!("v-p");
            end["session_index"] = json!(2);
            events.push(end);
        }
        let now = T0 + 7_200_000;
        let in_order = session_after(&[events.clone()], now);

        let mut shuffled = events.clone();
        let n = shuffled.len();
        shuffled.rotate_left(order.index(n));
        shuffled.reverse();
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(n + 1)).collect();
        bounds.extend([0, n]);
        bounds.sort_unstable();
        bounds.dedup();
        let mut batches: Vec<Vec<Value>> =
            bounds.windows(2).map(|w| shuffled[w[0]..w[1]].to_vec()).collect();
        for retry in &retries {
            let again = batches[retry.index(batches.len())].clone();
            batches.push(again);
        }
        let out_of_order = session_after(&batches, now);
        prop_assert_eq!(in_order, out_of_order);
    }
}
