//! The collector's HTTP API, driven through `app()` without a socket
//! (`support/app.rs`), with a memory store and a fixed clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};
use waymark_ingest::{
    AppendOutcome, BoxFuture, Config, EventSink, EventType, MemoryStore, NullStore, StoreError,
    StoredEvent,
};

const NOW: u64 = 1_732_350_000_999;

mod support;
use support::app::{Reply, TestApp};

impl TestApp<MemoryStore> {
    /// A memory store at `NOW`, serving `www/` (a home page and
    /// `about/index.html`) and `pkg/sdk.js` from a temporary folder.
    fn new() -> Self {
        TestApp::serving(
            &[
                ("www/index.html", b"<h1>demo home</h1>"),
                ("www/about/index.html", b"<h1>about</h1>"),
                ("pkg/sdk.js", b"console.log('waymark')"),
            ],
            NOW,
        )
    }

    async fn post(&self, content_type: Option<&str>, body: impl Into<Body>) -> Reply {
        self.send(post_request(content_type, body)).await
    }
}

/// The app with `config` on `store` at `NOW`, no files.
fn app_on<S: EventSink + 'static>(store: S, config: Config) -> TestApp<S> {
    TestApp::on(Arc::new(store), config, NOW, tempfile::tempdir().unwrap())
}

fn post_request(content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut builder = Request::post("/v1/batch");
    if let Some(content_type) = content_type {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    builder.body(body.into()).unwrap()
}

fn uuid(n: u128) -> String {
    uuid::Uuid::from_u128(n).hyphenated().to_string()
}

fn event(n: u128) -> Value {
    json!({
        "event_id": uuid(n),
        "type": "page_view",
        "name": null,
        "ts": 1_732_350_000_000u64 + n as u64,
        "session_id": "s-1",
        "visitor_id": "v-1",
        "user_id": null,
        "url": format!("http://127.0.0.1:8080/page-{n}.html"),
        "title": "Page",
        "referrer": "http://127.0.0.1:8080/",
        "props": {"plan": "pro"},
        "context": {"language": "en-US", "screen": "1920x1080"}
    })
}

fn batch(events: Vec<Value>) -> String {
    json!({"v": 1, "site": "demo", "sent_at": 1_732_350_000_123u64, "events": events}).to_string()
}

#[tokio::test]
async fn a_beacon_batch_as_text_plain_is_stored_and_acknowledged() {
    let app = TestApp::new();
    let reply = app
        .post(
            Some("text/plain;charset=UTF-8"),
            batch(vec![event(1), event(2)]),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json());
    assert_eq!(
        reply.json(),
        json!({"accepted": 2, "duplicates": 0, "rejected": []})
    );

    let stored = app.store.events();
    assert_eq!(stored.len(), 2);
    let first = &stored[0];
    assert_eq!(first.event_id, uuid(1));
    assert_eq!(first.site, "demo");
    assert_eq!(first.event_type, EventType::PageView);
    assert_eq!(first.ts, 1_732_350_000_001);
    assert_eq!(
        first.received_at, NOW,
        "received_at comes from the injected clock"
    );
    assert_eq!(first.url, "http://127.0.0.1:8080/page-1.html");
    assert_eq!(first.props.as_deref(), Some(r#"{"plan":"pro"}"#));
    let context: Value = serde_json::from_str(first.context.as_deref().unwrap()).unwrap();
    assert_eq!(context, json!({"language": "en-US", "screen": "1920x1080"}));
}

#[tokio::test]
async fn application_json_and_a_missing_content_type_are_accepted() {
    let app = TestApp::new();
    let reply = app
        .post(
            Some("application/json; charset=utf-8"),
            batch(vec![event(1)]),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = app.post(None, batch(vec![event(2)])).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(app.store.len(), 2);
}

#[tokio::test]
async fn other_content_types_are_refused_with_415() {
    let app = TestApp::new();
    for content_type in [
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "text/html",
    ] {
        let reply = app.post(Some(content_type), batch(vec![event(1)])).await;
        reply.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    }
    assert!(app.store.is_empty());
}

#[tokio::test]
async fn a_cors_preflight_from_another_origin_is_allowed() {
    let app = TestApp::new();
    let request = Request::builder()
        .method(Method::OPTIONS)
        .uri("/v1/batch")
        .header(header::ORIGIN, "http://shop.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
        .body(Body::empty())
        .unwrap();
    let reply = app.send(request).await;
    assert!(reply.status.is_success(), "{:?}", reply.status);
    assert_eq!(reply.header("access-control-allow-origin"), "*");
    assert!(reply
        .header("access-control-allow-methods")
        .contains("POST"));
    assert!(reply
        .header("access-control-allow-headers")
        .to_ascii_lowercase()
        .contains("content-type"));
    assert_eq!(reply.header("access-control-max-age"), "86400");
    assert!(reply
        .headers
        .get("access-control-allow-credentials")
        .is_none());
}

#[tokio::test]
async fn responses_to_other_origins_carry_cors_headers_even_on_errors() {
    let app = TestApp::new();
    for (body, status) in [
        (batch(vec![event(1)]), StatusCode::OK),
        ("nope".to_owned(), StatusCode::BAD_REQUEST),
    ] {
        let mut request = post_request(Some("text/plain"), body);
        request
            .headers_mut()
            .insert(header::ORIGIN, "http://shop.example".parse().unwrap());
        let reply = app.send(request).await;
        assert_eq!(reply.status, status);
        assert_eq!(reply.header("access-control-allow-origin"), "*");
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_400_invalid_json() {
    let app = TestApp::new();
    for body in ["", "not json", "{\"site\": \"demo\", \"events\": ["] {
        app.post(Some("text/plain"), body)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    }
    assert!(app.store.is_empty());
}

#[tokio::test]
async fn a_batch_of_the_wrong_shape_is_a_400_invalid_batch() {
    let app = TestApp::new();
    let too_many = batch((0..501).map(event).collect());
    for body in [
        "[]".to_owned(),
        json!({"events": [event(1)]}).to_string(),
        json!({"site": "demo"}).to_string(),
        json!({"site": "demo", "events": "x"}).to_string(),
        json!({"v": 2, "site": "demo", "events": [event(1)]}).to_string(),
        json!({"site": "no spaces allowed", "events": [event(1)]}).to_string(),
        too_many,
    ] {
        let reply = app.post(Some("text/plain"), body.clone()).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_batch");
    }
    assert!(
        app.store.is_empty(),
        "nothing from a refused batch is stored"
    );
}

#[tokio::test]
async fn a_batch_without_events_is_a_400_empty_batch() {
    let app = TestApp::new();
    app.post(Some("text/plain"), batch(vec![]))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "empty_batch");
}

#[tokio::test]
async fn the_body_limit_is_exactly_one_mebibyte() {
    let app = TestApp::new();
    let limit = 1024 * 1024;
    // A valid batch padded with JSON whitespace to exactly the limit.
    let mut body = batch(vec![event(1)]);
    body.push_str(&" ".repeat(limit - body.len()));
    let reply = app.post(Some("text/plain"), body.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json());

    body.push(' ');
    let second = body.replace(&uuid(1), &uuid(2));
    assert_eq!(second.len(), limit + 1);
    app.post(Some("text/plain"), second.clone())
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    assert_eq!(app.store.len(), 1);
}

#[tokio::test]
async fn bad_events_are_listed_and_good_ones_stored() {
    let app = TestApp::new();
    let mut bad_id = event(2);
    bad_id["event_id"] = json!("not-a-uuid");
    let mut custom_without_name = event(4);
    custom_without_name["type"] = json!("custom");
    let body = batch(vec![
        event(1),
        bad_id,
        event(3),
        custom_without_name,
        json!(42),
    ]);
    let reply = app.post(Some("text/plain"), body).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({
            "accepted": 2,
            "duplicates": 0,
            "rejected": [
                {"index": 1, "reason": "event_id: not a UUID"},
                {"index": 3, "reason": "name: required for custom events"},
                {"index": 4, "reason": "not a JSON object"},
            ]
        })
    );
    let ids: Vec<String> = app.store.events().into_iter().map(|e| e.event_id).collect();
    assert_eq!(ids, vec![uuid(1), uuid(3)]);
}

#[tokio::test]
async fn a_batch_of_only_bad_events_is_a_400_and_stores_nothing() {
    let app = TestApp::new();
    let mut no_ts = event(1);
    no_ts.as_object_mut().unwrap().remove("ts");
    let reply = app
        .post(Some("text/plain"), batch(vec![no_ts, json!([])]))
        .await;
    let body = reply.assert_error(StatusCode::BAD_REQUEST, "all_events_rejected");
    assert_eq!(
        body["rejected"],
        json!([
            {"index": 0, "reason": "ts: missing"},
            {"index": 1, "reason": "not a JSON object"},
        ])
    );
    assert!(app.store.is_empty());
}

#[tokio::test]
async fn a_resent_event_is_stored_once_and_reported_as_duplicate() {
    let app = TestApp::new();
    let first = app
        .post(Some("text/plain"), batch(vec![event(1), event(2)]))
        .await;
    assert_eq!(
        first.json(),
        json!({"accepted": 2, "duplicates": 0, "rejected": []})
    );
    let second = app
        .post(Some("text/plain"), batch(vec![event(2), event(3)]))
        .await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(
        second.json(),
        json!({"accepted": 1, "duplicates": 1, "rejected": []})
    );
    let ids: Vec<String> = app.store.events().into_iter().map(|e| e.event_id).collect();
    assert_eq!(ids, vec![uuid(1), uuid(2), uuid(3)]);
}

/// What the loader beacons for a page left before the SDK started: the
/// stub's record of `/pricing.html?token=…` with a `track` call, under `key`.
fn early_beacon(key: &str) -> Value {
    json!({"v": 1, "site": "demo", "sent_at": NOW - 500, "events": [], "early": {
        "key": key,
        "utc_offset_min": 60,
        "config": {"endpoint": "http://127.0.0.1:8080", "sessionTimeoutMinutes": 30},
        "record": [[NOW - 900, "http://127.0.0.1:8080/pricing.html?token=s3cret", "https://search.example/", "Pricing"],
                   [["track", "cta_seen", {"plan": "pro"}]], [NOW - 700]]
    }})
}

const EARLY_KEY: &str = "9b2f3c1e-7a44-4e0b-9a51-0c6f1d2e3a4b";

#[tokio::test]
async fn a_page_left_before_the_sdk_started_is_stored_once_from_the_beacon_and_the_replay() {
    let app = TestApp::new();
    let reply = app
        .post(Some("text/plain"), early_beacon(EARLY_KEY).to_string())
        .await;
    assert_eq!(
        reply.json(),
        json!({"accepted": 2, "duplicates": 0, "rejected": []})
    );
    let stored = app.store.events();
    assert_eq!(stored[0].event_type, EventType::PageView);
    assert_eq!(stored[0].url, "http://127.0.0.1:8080/pricing.html");
    assert_eq!(stored[1].name.as_deref(), Some("cta_seen"));
    assert_eq!(stored[0].session_id, stored[1].session_id);

    // The visitor comes back: the SDK replays the record the stub saved
    // under the same key, with its own code, and sends it with its page
    // view. The replayed events are the beacon's.
    use waymark_sdk_core as core;
    let record = early_beacon(EARLY_KEY)["early"]["record"].clone();
    let early = core::EarlyPage::from_value(serde_json::from_value(record).unwrap())
        .unwrap()
        .keyed(EARLY_KEY);
    let config = core::Config::new("http://127.0.0.1:8080", "demo");
    let mut sdk = core::Tracker::new(
        config,
        core::MemoryStorage::default(),
        core::SeededEntropy(3),
    );
    sdk.replay_early(early, 60);
    let url = "http://127.0.0.1:8080/about.html";
    sdk.page_view(
        NOW - 100,
        &core::Page {
            url: url.into(),
            ..core::Page::default()
        },
    );
    let events: Vec<Value> = sdk
        .take_events()
        .iter()
        .map(|e| {
            serde_json::from_str(&e.to_json(&mut |n, out| out.push_str(&n.to_string()))).unwrap()
        })
        .collect();
    let reply = app.post(Some("text/plain"), batch(events)).await;
    assert_eq!(
        reply.json(),
        json!({"accepted": 1, "duplicates": 2, "rejected": []})
    );
    let stored = app.store.events();
    assert_eq!(stored.len(), 3);
    // The page after it continues its session.
    assert_eq!(stored[2].url, url);
    assert_eq!(stored[2].session_id, stored[0].session_id);
}

#[tokio::test]
async fn a_bad_early_page_is_a_400_that_names_what_is_wrong() {
    let app = TestApp::new();
    let mut cases = Vec::new();
    let mut bad_key = early_beacon("17000000000000.123");
    cases.push((bad_key.take(), "early.key: not a UUID"));
    let mut bad_record = early_beacon(EARLY_KEY);
    bad_record["early"]["record"] = json!([["yesterday", "http://a/"]]);
    cases.push((bad_record, "early.record: not a stub record"));
    let mut bad_config = early_beacon(EARLY_KEY);
    bad_config["early"]["config"] = json!({"sessionTimeoutMinutes": "thirty"});
    cases.push((bad_config, "early.config: not the script tag's settings"));
    let mut bad_offset = early_beacon(EARLY_KEY);
    bad_offset["early"]["utc_offset_min"] = json!(100_000);
    cases.push((bad_offset, "early.utc_offset_min"));
    let mut no_record = early_beacon(EARLY_KEY);
    no_record["early"].as_object_mut().unwrap().remove("record");
    cases.push((no_record, "record"));
    for (body, reason) in cases {
        let reply = app.post(Some("text/plain"), body.to_string()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(reply.text().contains(reason), "{reason}: {}", reply.text());
    }
    assert!(app.store.events().is_empty());
}

/// A store whose disk is gone.
#[derive(Debug)]
struct BrokenStore;

impl EventSink for BrokenStore {
    fn append(&self, _: Vec<StoredEvent>) -> BoxFuture<'_, Result<AppendOutcome, StoreError>> {
        Box::pin(async {
            Err(StoreError::Commit(
                "disk I/O error at /secret/path/waymark.db".to_owned(),
            ))
        })
    }
}

#[tokio::test]
async fn a_failing_store_is_a_503_that_leaks_nothing() {
    let app = app_on(BrokenStore, Config::default());
    let reply = app
        .send(post_request(Some("text/plain"), batch(vec![event(1)])))
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let text = reply.text();
    assert_eq!(reply.json()["error"], "store_unavailable");
    assert!(!text.contains("secret") && !text.contains("disk"), "{text}");
}

#[tokio::test]
async fn the_null_store_acknowledges_valid_events_refuses_bad_ones_and_reads_nothing() {
    let config = Config {
        admin_token: Some("t".into()),
        ..Config::default()
    };
    let app = app_on(NullStore, config);
    let mut bad = event(3);
    bad["type"] = json!("nonsense");
    let reply = app
        .send(post_request(
            Some("text/plain"),
            batch(vec![event(1), event(2), bad]),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["accepted"], 2, "{body}");
    assert_eq!(body["rejected"].as_array().map(Vec::len), Some(1), "{body}");

    let reply = app.send(admin_get("/v1/sessions")).await;
    // The null store reads nothing back, so there is no read API: 404.
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn healthz_says_ok() {
    let app = TestApp::new();
    let reply = app
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"status": "ok"}));
}

#[tokio::test]
async fn the_sdk_is_served_uncached_and_a_missing_build_says_how_to_build_it() {
    let app = TestApp::new();
    let reply = app
        .send(Request::get("/sdk.js").body(Body::empty()).unwrap())
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header("content-type").starts_with("text/javascript"));
    assert_eq!(reply.header("cache-control"), "no-cache");
    assert_eq!(reply.body, b"console.log('waymark')");

    // No sdk.wasm was built.
    let reply = app
        .send(Request::get("/sdk.wasm").body(Body::empty()).unwrap())
        .await;
    let body = reply.assert_error(StatusCode::NOT_FOUND, "sdk_not_built");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("cargo xtask build-sdk"));

    std::fs::write(app.root().join("pkg/sdk.wasm"), b"\0asm").unwrap();
    let reply = app
        .send(Request::get("/sdk.wasm").body(Body::empty()).unwrap())
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), "application/wasm");
    assert_eq!(reply.body, b"\0asm");
}

#[tokio::test]
async fn other_paths_are_static_files_from_www() {
    let app = TestApp::new();
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    let reply = app.send(get("/")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, b"<h1>demo home</h1>");
    assert!(reply.header("content-type").starts_with("text/html"));
    let reply = app.send(get("/about/")).await;
    assert_eq!(reply.body, b"<h1>about</h1>");
    let reply = app.send(get("/missing.html")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = app
        .send(Request::head("/").body(Body::empty()).unwrap())
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
}

#[tokio::test]
async fn demo_pages_name_the_collector_that_serves_them() {
    let app = TestApp::new();
    let page = r#"<script async src="http://127.0.0.1:8080/sdk.js" data-endpoint="http://127.0.0.1:8080"></script>"#;
    std::fs::write(app.root().join("www/demo.html"), page).unwrap();
    let get = |host: &str| {
        Request::get("/demo.html")
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap()
    };

    let moved = app.send(get("127.0.0.1:49152")).await;
    assert_eq!(moved.status, StatusCode::OK);
    assert_eq!(
        moved.text(),
        r#"<script async src="http://127.0.0.1:49152/sdk.js" data-endpoint="http://127.0.0.1:49152"></script>"#
    );
    assert_eq!(app.send(get("127.0.0.1:8080")).await.text(), page);
    // A Host header that is not a plain host:port is not reflected into HTML.
    assert_eq!(app.send(get("evil\"><script>")).await.text(), page);
}

fn from_origin(origin: &str, site: &str) -> Request<Body> {
    let body = json!({"site": site, "events": [event(1)]}).to_string();
    let mut request = post_request(Some("text/plain"), body);
    request
        .headers_mut()
        .insert(header::ORIGIN, origin.parse().unwrap());
    request
}

#[tokio::test]
async fn unknown_sites_and_origins_are_a_403_with_the_reason() {
    let app = app_on(
        MemoryStore::new(),
        Config {
            sites: "demo=http://127.0.0.1:8080,https://*.example.com;shop=*"
                .parse()
                .unwrap(),
            ..Config::default()
        },
    );
    let reply = app.send(from_origin("https://evil.test", "blog")).await;
    let body = reply.assert_error(StatusCode::FORBIDDEN, "unknown_site");
    assert!(body["message"].as_str().unwrap().contains("blog"));
    assert_eq!(reply.header("access-control-allow-origin"), "*");
    app.send(from_origin("https://evil.test", "demo"))
        .await
        .assert_error(StatusCode::FORBIDDEN, "origin_not_allowed");
    assert!(app.store.is_empty());

    for (origin, site) in [
        ("http://127.0.0.1:8080", "demo"),
        ("https://www.example.com", "demo"),
        ("https://anything.test", "shop"),
    ] {
        let reply = app.send(from_origin(origin, site)).await;
        assert_eq!(reply.status, StatusCode::OK, "{origin} {site}");
    }
    // Without an Origin (a server, not a page): the site must still be known.
    let reply = app
        .send(post_request(
            Some("text/plain"),
            json!({"site": "demo", "events": [event(2)]}).to_string(),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn without_sites_any_site_from_any_origin_is_accepted() {
    let app = TestApp::new();
    let reply = app
        .send(from_origin("https://random.test", "whatever"))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn gzip_request(body: Vec<u8>, encoding: &str) -> Request<Body> {
    let mut request = post_request(Some("application/json"), body);
    request
        .headers_mut()
        .insert(header::CONTENT_ENCODING, encoding.parse().unwrap());
    request
}

#[tokio::test]
async fn gzip_bodies_are_accepted_and_a_gzip_bomb_is_a_413() {
    let app = TestApp::new();
    let reply = app
        .send(gzip_request(gzip(batch(vec![event(1)]).as_bytes()), "gzip"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(app.store.len(), 1);

    // 16 MiB of whitespace inside a valid batch, about 16 KiB compressed.
    let mut bomb = batch(vec![event(2)]).into_bytes();
    bomb.splice(1..1, std::iter::repeat_n(b' ', 16 << 20));
    let compressed = gzip(&bomb);
    assert!(compressed.len() < 1 << 20, "{}", compressed.len());
    app.send(gzip_request(compressed, "gzip"))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    app.send(gzip_request(b"not gzip at all".to_vec(), "gzip"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    app.send(gzip_request(batch(vec![event(3)]).into_bytes(), "br"))
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_encoding");
    assert_eq!(app.store.len(), 1);
}

#[tokio::test]
async fn too_many_batches_from_one_address_are_a_429_with_retry_after() {
    let app = app_on(
        MemoryStore::new(),
        Config {
            rate_limit_per_second: 1,
            rate_limit_burst: 3,
            trust_proxy: 1,
            ..Config::default()
        },
    );
    let from = |ip: &str, n: u128| {
        let mut request = post_request(Some("text/plain"), batch(vec![event(n)]));
        request.headers_mut().insert(
            "x-forwarded-for",
            format!("203.0.113.9, {ip}").parse().unwrap(),
        );
        request
    };
    for n in 0..3 {
        assert_eq!(
            app.send(from("198.51.100.1", n)).await.status,
            StatusCode::OK
        );
    }
    let reply = app.send(from("198.51.100.1", 3)).await;
    reply.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry_after: u64 = reply.header("retry-after").parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // Another address (the proxy's last hop) has its own allowance.
    assert_eq!(
        app.send(from("198.51.100.2", 4)).await.status,
        StatusCode::OK
    );
    assert_eq!(app.store.len(), 4);
}

#[test]
fn the_client_address_is_the_peer_unless_proxies_are_trusted() {
    use axum::extract::ConnectInfo;
    let request = |xff: Option<&str>| {
        let mut r = Request::get("/").body(Body::empty()).unwrap();
        r.extensions_mut().insert(ConnectInfo(
            "10.0.0.1:1234".parse::<std::net::SocketAddr>().unwrap(),
        ));
        if let Some(xff) = xff {
            r.headers_mut()
                .insert("x-forwarded-for", xff.parse().unwrap());
        }
        r
    };
    let ip = |s: &str| Ok(Some(s.parse().unwrap()));
    let chain = Some("1.1.1.1, 2.2.2.2, 3.3.3.3");
    assert_eq!(
        waymark_ingest::client_ip(&request(chain), 0).map_err(|e| e.code()),
        ip("10.0.0.1")
    );
    let client = |xff, hops| waymark_ingest::client_ip(&request(xff), hops).map_err(|e| e.code());
    assert_eq!(client(chain, 1), ip("3.3.3.3"));
    assert_eq!(client(chain, 2), ip("2.2.2.2"));
    // Fewer entries than trusted hops (none at all: not through the
    // proxies): the peer.
    assert_eq!(client(chain, 5), ip("10.0.0.1"));
    assert_eq!(client(None, 1), ip("10.0.0.1"));
    // Garbage where the trusted proxy's entry should be: refused, never
    // the proxy's own address (the hostile suite's network tests).
    assert_eq!(client(Some("nonsense"), 1), Err("invalid_forwarded_for"));
    assert_eq!(client(Some("1.1.1.1:80, [::1]:443"), 1), ip("::1"));
}

#[tokio::test]
async fn metrics_count_requests_events_and_rejections_behind_the_token() {
    let app = app_on(
        MemoryStore::new(),
        Config {
            admin_token: Some("t0ken".to_owned()),
            ..Config::default()
        },
    );
    let mut bad = event(2);
    bad["event_id"] = json!("nope");
    app.send(post_request(Some("text/plain"), batch(vec![event(1), bad])))
        .await;
    app.send(post_request(Some("text/plain"), batch(vec![event(1)])))
        .await;
    app.send(post_request(Some("text/plain"), "not json")).await;

    let unauthorised = app
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    unauthorised.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let reply = app
        .send(
            Request::get("/metrics")
                .header(header::AUTHORIZATION, "Bearer t0ken")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header("content-type").starts_with("text/plain"));
    let text = reply.text();
    for line in [
        r#"waymark_http_requests_total{route="/v1/batch",status="200"} 2"#,
        r#"waymark_http_requests_total{route="/v1/batch",status="400"} 1"#,
        r#"waymark_http_requests_total{route="/metrics",status="401"} 1"#,
        "waymark_events_accepted_total 1",
        "waymark_events_duplicate_total 1",
        r#"waymark_events_rejected_total{reason="event_id"} 1"#,
        r#"waymark_events_rejected_total{reason="invalid_json"} 1"#,
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
}

/// `/metrics` as the admin (token `t`) sees it.
async fn metrics_of<S: EventSink + ?Sized>(app: &TestApp<S>) -> String {
    let reply = app.send(admin_get("/metrics")).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.text()
}

/// A GET of `path` with the tests' admin token (`t`).
fn admin_get(path: &str) -> Request<Body> {
    Request::get(path)
        .header(header::AUTHORIZATION, "Bearer t")
        .body(Body::empty())
        .unwrap()
}

/// `waymark_events_dropped_by_client_total` reads `count` on `/metrics`.
async fn assert_dropped_by_client<S: EventSink + ?Sized>(app: &TestApp<S>, count: u64) {
    let text = metrics_of(app).await;
    let line = format!("waymark_events_dropped_by_client_total {count}\n");
    assert!(text.contains(&line), "{line:?} not in\n{text}");
}

/// A batch of `events` that reports `dropped` events the SDK dropped for space.
fn batch_dropping(dropped: Value, events: Vec<Value>) -> String {
    json!({"v": 1, "site": "demo", "sent_at": 1_732_350_000_123u64, "dropped": dropped, "events": events})
        .to_string()
}

#[tokio::test]
async fn events_the_sdk_dropped_for_space_are_counted_once_per_valid_batch() {
    let app = app_on(
        MemoryStore::new(),
        Config {
            admin_token: Some("t".to_owned()),
            ..Config::default()
        },
    );
    let reply = app
        .send(post_request(
            Some("text/plain"),
            batch_dropping(json!(7), vec![event(1)]),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(app.store.events().len(), 1);
    assert_dropped_by_client(&app, 7).await;
    let text = metrics_of(&app).await;
    assert!(
        text.contains("# HELP waymark_events_dropped_by_client_total "),
        "no help text in\n{text}"
    );

    // A valid envelope whose events are all rejected (400, not retried by
    // the SDK): its report still counts.
    let mut bad = event(2);
    bad["event_id"] = json!("nope");
    app.send(post_request(
        Some("text/plain"),
        batch_dropping(json!(3), vec![bad]),
    ))
    .await
    .assert_error(StatusCode::BAD_REQUEST, "all_events_rejected");
    // Not a non-negative integer: ignored, and the batch is still taken.
    for dropped in [json!(-1), json!(2.5), json!("4"), json!(null), json!({})] {
        let reply = app
            .send(post_request(
                Some("text/plain"),
                batch_dropping(dropped, vec![event(3)]),
            ))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    // An invalid envelope: nothing counts.
    app.send(post_request(
        Some("text/plain"),
        json!({"v": 2, "site": "demo", "dropped": 100, "events": [event(4)]}).to_string(),
    ))
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_batch");
    assert_dropped_by_client(&app, 10).await;
}

#[tokio::test]
async fn a_batch_the_sdk_will_retry_does_not_count_its_dropped_events_yet() {
    let app = app_on(
        BrokenStore,
        Config {
            admin_token: Some("t".to_owned()),
            ..Config::default()
        },
    );
    app.send(post_request(
        Some("text/plain"),
        batch_dropping(json!(5), vec![event(1)]),
    ))
    .await
    .assert_error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable");
    assert_dropped_by_client(&app, 0).await;
}

#[tokio::test]
async fn the_sqlite_store_reports_commit_latency_and_queue_depth() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(waymark_ingest::SqliteStore::open(dir.path()).unwrap());
    let config = Config {
        admin_token: Some("t".to_owned()),
        ..Config::default()
    };
    let app = TestApp::on(store, config, NOW, dir);
    app.send(post_request(Some("text/plain"), batch(vec![event(1)])))
        .await;
    let text = app.send(admin_get("/metrics")).await.text();
    for line in [
        "waymark_store_commit_seconds_count 1",
        "waymark_store_queue_depth 0",
        "waymark_store_commits_total 1",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
}

#[tokio::test]
async fn the_memory_store_has_no_read_api() {
    let app = app_on(
        MemoryStore::new(),
        Config {
            admin_token: Some("t".to_owned()),
            ..Config::default()
        },
    );
    let reply = app.send(admin_get("/v1/sessions")).await;
    // The memory store keeps no sessions: the read API's routes are not
    // mounted, so the path is not found (and the admin token is not asked).
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_sdk_has_a_content_etag_and_answers_304_when_it_is_unchanged() {
    let app = TestApp::new();
    let get = |path: &str, if_none_match: Option<&str>| {
        let mut request = Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header("if-none-match", tag);
        }
        app.send(request.body(Body::empty()).unwrap())
    };
    let first = get("/sdk.js", None).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("cache-control"), "no-cache");
    let etag = first.header("etag").to_owned();
    assert!(
        etag.len() == 18 && etag.starts_with('"') && etag.ends_with('"'),
        "a strong ETag: {etag}"
    );

    // Revalidation of an unchanged file: 304, no body, same validators.
    for tag in [
        etag.clone(),
        format!("\"other\", {etag}"),
        format!("W/{etag}"),
        "*".into(),
    ] {
        let reply = get("/sdk.js", Some(&tag)).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_MODIFIED,
            "If-None-Match: {tag}"
        );
        assert!(reply.body.is_empty());
        assert_eq!(reply.header("etag"), etag);
        assert_eq!(reply.header("cache-control"), "no-cache");
    }

    // A new build: another ETag, the new body.
    std::fs::write(app.root().join("pkg/sdk.js"), "console.log('waymark 2')").unwrap();
    let reply = get("/sdk.js", Some(&etag)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_ne!(reply.header("etag"), etag);
    assert_eq!(reply.body, b"console.log('waymark 2')");
}

#[tokio::test]
async fn the_wasm_named_by_its_hash_is_immutable_and_any_other_name_is_revalidated() {
    let app = TestApp::new();
    std::fs::write(app.root().join("pkg/sdk.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let get = |path: String| app.send(Request::get(path).body(Body::empty()).unwrap());

    let plain = get("/sdk.wasm".into()).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.header("cache-control"), "no-cache");
    let hash = plain.header("etag").trim_matches('"').to_owned();

    let current = get(format!("/sdk.wasm?v={hash}")).await;
    assert_eq!(current.status, StatusCode::OK);
    assert_eq!(current.header("content-type"), "application/wasm");
    assert_eq!(
        current.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(current.body, b"\0asm\x01\0\0\0");

    // A loader from another build asks for a hash that is not the file's:
    // it gets the file, but nothing may keep it under that name.
    let stale = get("/sdk.wasm?v=0123456789abcdef".into()).await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.header("cache-control"), "no-cache");
}
