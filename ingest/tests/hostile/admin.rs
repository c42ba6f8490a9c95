//! The admin surface: the admin token, the read API's query parameters, the
//! headers of the collector's own pages, `/healthz`.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use waymark_ingest::{
    AppState, AppendOutcome, BoxFuture, Config, EventSink, FixedClock, MemoryStore, SqliteStore,
    StoreError, StoredEvent,
};

use crate::stores::{admin_get, sqlite, NOW, TOKEN};
use crate::support::app::TestApp;

/// Runs the `waymark` binary with `args` and `env` until it exits (at most
/// 20 s; then it is killed and the test fails): its stderr.
fn refused_at_start(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_waymark"))
        .args(["--addr", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .args(args)
        .env_remove("WAYMARK_ADMIN_TOKEN")
        .env_remove("WAYMARK_STORE")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the collector started with {args:?} {env:?} instead of refusing it");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_short_admin_token_flag_is_refused_at_start_without_echoing_it() {
    let said = refused_at_start(&["--admin-token", "short-token-15c"], &[]);
    assert!(said.contains("at least 16"), "{said}");
    assert!(!said.contains("short-token-15c"), "{said}");
}

#[test]
fn a_short_admin_token_in_the_environment_is_refused_at_start() {
    let env = [("WAYMARK_ADMIN_TOKEN", "hunter2")];
    let said = refused_at_start(&[], &env);
    assert!(said.contains("WAYMARK_ADMIN_TOKEN"), "{said}");
    assert!(said.contains("at least 16"), "{said}");
    assert!(!said.contains("hunter2"), "{said}");
}

#[tokio::test]
async fn serve_refuses_a_short_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        data_dir: dir.path().join("data"),
        admin_token: Some("t".to_owned()),
        ..Config::default()
    };
    let served = tokio::time::timeout(
        Duration::from_secs(20),
        waymark_ingest::serve(config, listener, std::future::pending()),
    )
    .await
    .expect("serve refuses a short token instead of serving");
    let err = served.expect_err("a one-character token is refused");
    assert!(err.to_string().contains("at least 16"), "{err}");
}

#[test]
fn debug_of_config_and_app_state_hides_the_admin_token() {
    let config = Config {
        admin_token: Some(TOKEN.to_owned()),
        ..Config::default()
    };
    let shown = format!("{config:?} {config:#?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(shown.contains("admin_token"), "{shown}");
    let state = AppState::new(
        config,
        Arc::new(MemoryStore::new()),
        Arc::new(FixedClock(NOW)),
    );
    let shown = format!("{state:?} {state:#?}");
    assert!(!shown.contains(TOKEN), "{shown}");
}

/// One past `i64::MAX`: fits a `u64`, not the store's integers.
const BEYOND_I64: &str = "9223372036854775808";

#[tokio::test]
async fn sessions_from_beyond_i64_is_an_invalid_query() {
    let app = sqlite();
    let reply = app
        .send(admin_get(&format!("/v1/sessions?from={BEYOND_I64}")))
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, "invalid_query");
}

#[tokio::test]
async fn sessions_to_beyond_i64_is_an_invalid_query() {
    let app = sqlite();
    let reply = app
        .send(admin_get(&format!("/v1/sessions?to={BEYOND_I64}")))
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, "invalid_query");
}

#[tokio::test]
async fn a_cursor_beyond_i64_is_an_invalid_query() {
    let app = sqlite();
    let reply = app
        .send(admin_get(&format!(
            "/v1/sessions?cursor={BEYOND_I64}.some-session"
        )))
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, "invalid_query");
}

#[tokio::test]
async fn stats_from_and_to_beyond_i64_are_an_invalid_query() {
    let app = sqlite();
    let reply = app
        .send(admin_get(&format!(
            "/v1/stats?from={BEYOND_I64}&to=9223372036854775809"
        )))
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, "invalid_query");
    let reply = app
        .send(admin_get(&format!("/v1/stats?to={BEYOND_I64}")))
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, "invalid_query");
}

/// The app with a demo page, the dashboard's page and a built SDK on disk.
fn app_with_pages() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir_all(www.join("dashboard")).unwrap();
    std::fs::write(www.join("index.html"), "<!doctype html><title>demo</title>").unwrap();
    std::fs::write(
        www.join("dashboard/index.html"),
        "<!doctype html><title>dashboard</title>",
    )
    .unwrap();
    std::fs::write(www.join("dashboard/app.js"), "void 0;").unwrap();
    let pkg = dir.path().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("sdk.js"), "void 0;").unwrap();
    std::fs::write(pkg.join("sdk.wasm"), b"\0asm").unwrap();
    let config = Config {
        www_dir: www,
        sdk_dir: pkg,
        admin_token: Some(TOKEN.to_owned()),
        ..Config::default()
    };
    let store = Arc::new(SqliteStore::open(dir.path().join("data")).unwrap());
    TestApp::on_dyn(store, config, NOW, dir)
}

fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header(header::ORIGIN, "https://shop.example")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn the_dashboard_is_served_under_a_strict_policy() {
    let app = app_with_pages();
    for path in ["/dashboard/", "/dashboard/index.html", "/dashboard/app.js"] {
        let reply = app.send(get(path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        let csp = reply.header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {directive} in {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(reply.header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(reply.header("referrer-policy"), "no-referrer", "{path}");
    }
}

#[tokio::test]
async fn demo_pages_and_missing_files_may_not_be_framed_or_sniffed() {
    let app = app_with_pages();
    for path in ["/", "/index.html", "/no-such-page.html"] {
        let reply = app.send(get(path)).await;
        let csp = reply.header("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(reply.header("x-content-type-options"), "nosniff", "{path}");
        assert!(reply.headers.contains_key("referrer-policy"), "{path}");
    }
}

#[tokio::test]
async fn the_sdk_and_the_apis_get_nosniff_but_no_page_policy() {
    let app = app_with_pages();
    for path in ["/sdk.js", "/sdk.wasm", "/healthz"] {
        let reply = app.send(get(path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(reply.header("x-content-type-options"), "nosniff", "{path}");
        assert!(
            !reply.headers.contains_key("content-security-policy"),
            "{path}: other sites load it"
        );
        assert!(!reply.headers.contains_key("referrer-policy"), "{path}");
        assert_eq!(reply.header("access-control-allow-origin"), "*", "{path}");
    }
    let reply = app.send(admin_get("/v1/sessions")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("x-content-type-options"), "nosniff");
}

#[tokio::test]
async fn healthz_is_503_with_the_reason_once_the_sqlite_writer_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("data")).unwrap());
    let app = TestApp::on(store, Config::default(), NOW, dir);
    let reply = app.send(get("/healthz")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["status"], "ok");

    // The writer thread ends, as it does when it panics or is closed: every
    // batch would now get 503, and so must the probe.
    app.store.close();
    let reply = app.send(get("/healthz")).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    let body = reply.json();
    assert_eq!(body["status"], "unavailable", "{body}");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("sqlite writer")),
        "{body}"
    );
}

/// A store that takes nothing and says why.
#[derive(Debug)]
struct SickStore;

impl EventSink for SickStore {
    fn append(
        &self,
        _events: Vec<StoredEvent>,
    ) -> BoxFuture<'_, Result<AppendOutcome, StoreError>> {
        Box::pin(std::future::ready(Err(StoreError::Closed)))
    }

    fn health(&self) -> Result<(), String> {
        Err("the disk is on fire".to_owned())
    }
}

#[tokio::test]
async fn healthz_reports_what_the_store_says_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::on(Arc::new(SickStore), Config::default(), NOW, dir);
    let reply = app.send(get("/healthz")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.json(),
        serde_json::json!({"status": "unavailable", "reason": "the disk is on fire"})
    );
}
