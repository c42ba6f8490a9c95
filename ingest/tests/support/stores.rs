//! The stores a suite's tests run on: SQLite in a temporary directory and
//! ClickHouse on the suite's one server, each behind the router with the
//! test's config; and [`on_both_stores!`], one test body run on both (the
//! calling module gives `sqlite()` and `clickhouse(name)`, e.g. with its
//! own database prefix). Shared by the adversarial suite and the data
//! lifecycle tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, Request};
use serde_json::json;
use waymark_ingest::{ClickHouseStore, ClickHouseUrl, Config, SqliteStore, StoredEvent};

use super::app::TestApp;
use super::clickhouse::ClickHouse;

/// Late 2024, as a clock the tests hold.
pub const NOW: u64 = 1_732_350_000_000;

/// The admin token of [`config`].
pub const TOKEN: &str = "hostile-admin-token-0123456789";

/// The default config with [`TOKEN`] as its admin token, and a rate limit
/// that a test's handful of batches from one address stays under.
pub fn config() -> Config {
    Config {
        admin_token: Some(TOKEN.to_owned()),
        rate_limit_per_second: 1_000,
        rate_limit_burst: 1_000,
        ..Config::default()
    }
}

/// `GET path` with [`TOKEN`].
pub fn admin_get(path: &str) -> Request<Body> {
    Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap()
}

/// The ClickHouse server the suite's tests share; `None` (the test's skip
/// said) unless `WAYMARK_TEST_CLICKHOUSE=1`.
pub fn clickhouse_server() -> Option<&'static ClickHouse> {
    static SERVER: OnceLock<ClickHouse> = OnceLock::new();
    super::optional::clickhouse().then(|| SERVER.get_or_init(ClickHouse::start))
}

/// A SQLite store, set up by `tune`, behind `app()` with `config` at [`NOW`].
pub fn sqlite_app(config: Config, tune: impl FnOnce(SqliteStore) -> SqliteStore) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let store = tune(SqliteStore::open(dir.path()).unwrap());
    TestApp::on_dyn(Arc::new(store), config, NOW, dir)
}

/// A ClickHouse store on database `db` of `server` (a spool flushed every
/// 20 ms), set up by `tune`, behind `app()` with `config` at [`NOW`].
pub async fn clickhouse_app(
    server: &ClickHouse,
    db: &str,
    config: Config,
    tune: impl FnOnce(ClickHouseStore) -> ClickHouseStore,
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let url: ClickHouseUrl = server.url(db).parse().unwrap();
    let store = ClickHouseStore::open(&url, dir.path(), 1 << 30, Duration::from_millis(20))
        .await
        .unwrap();
    TestApp::on_dyn(Arc::new(tune(store)), config, NOW, dir)
}

/// The system clock, in epoch milliseconds (for stores that run on it).
pub fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// `count` page views of one session on `https://shop.example/<path>`, now,
/// their ids numbered from `first` in the UUID namespace `ids`, as the
/// collector stores them (for the store's own tests, past the router).
pub fn stored_page_views(ids: u64, first: u64, count: u64, path: &str) -> Vec<StoredEvent> {
    let now = now_ms();
    let events: Vec<_> = (first..first + count)
        .map(|n| {
            json!({
                "event_id": uuid::Uuid::from_u64_pair(ids, n).hyphenated().to_string(),
                "type": "page_view", "ts": now, "seq": n,
                "session_id": "s-store", "visitor_id": "v-store", "session_index": 1,
                "url": format!("https://shop.example/{path}"),
            })
        })
        .collect();
    let body = json!({"v": 1, "site": "shop", "sent_at": now, "events": events}).to_string();
    waymark_ingest::decode_batch(body.as_bytes(), now)
        .unwrap()
        .events
}

/// Waits up to `within` for `done`, then fails the test naming `what`: a
/// store held up for ever fails rather than hangs.
pub async fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// For each `body` (an `async fn(TestApp)` of the calling module), a module
/// of that name with two tests: `sqlite`, on the module's `sqlite()`, and
/// `clickhouse`, on its `clickhouse(name)` (which skips without a server).
#[allow(unused_macros)]
macro_rules! on_both_stores {
    ($($body:ident),+ $(,)?) => {$(
        mod $body {
            #[tokio::test]
            async fn sqlite() {
                super::$body(super::sqlite()).await;
            }

            #[tokio::test]
            async fn clickhouse() {
                if let Some(app) = super::clickhouse(stringify!($body)).await {
                    super::$body(app).await;
                }
            }
        }
    )+};
}
#[allow(unused_imports)]
pub(crate) use on_both_stores;
