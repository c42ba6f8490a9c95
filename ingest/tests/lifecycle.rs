//! The data lifecycle, on SQLite and on ClickHouse: retention with a clock
//! the test holds, erasure of a visitor and of a user while another
//! visitor's events stream in, export, the tables each store declares
//! against those it has, and a backup taken mid-ingest (SQLite).

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use waymark_ingest::{Clock, Config, StoreKind, TableRole};

use crate::support::app::TestApp;
use crate::support::stores::{clickhouse_app, clickhouse_server, config, sqlite_app, TOKEN};

mod support;

#[path = "lifecycle/backup.rs"]
mod backup;
#[path = "lifecycle/erasure.rs"]
mod erasure;
#[path = "lifecycle/export.rs"]
mod export;
#[path = "lifecycle/retention.rs"]
mod retention;

/// One day in milliseconds.
pub(crate) const DAY: u64 = 24 * 60 * 60 * 1000;

/// [`sqlite_app`] with `config`.
fn sqlite_with(config: Config) -> TestApp {
    sqlite_app(config, |store| store)
}

/// [`clickhouse_app`] with `config` on database `lifecycle_<name>`, which
/// the config's `store` names (for the checks of [`assert_no_row_holds`]).
async fn clickhouse_with(name: &str, mut config: Config) -> Option<TestApp> {
    let server = clickhouse_server()?;
    let db = format!("lifecycle_{name}");
    config.store = StoreKind::ClickHouse(server.url(&db).parse().unwrap());
    Some(clickhouse_app(server, &db, config, |store| store).await)
}

/// For `on_both_stores!`: the default test config.
fn sqlite() -> TestApp {
    sqlite_with(config())
}

async fn clickhouse(name: &str) -> Option<TestApp> {
    clickhouse_with(name, config()).await
}

/// A page view (with a `custom` when `n` is odd: a `signup` with props)
/// numbered `n` of `visitor`'s session `session` at `ts`, carrying `user`.
pub(crate) fn event(n: u64, visitor: &str, session: &str, ts: u64, user: Option<&str>) -> Value {
    let mut e = json!({
        "event_id": uuid::Uuid::from_u64_pair(0x11fe, n).hyphenated().to_string(),
        "type": "page_view", "ts": ts, "seq": n,
        "session_id": session, "visitor_id": visitor, "session_index": 1,
        "url": format!("https://shop.example/p/{n}"),
        "context": {"screen": "1280x800", "language": "de-DE"},
    });
    if n % 2 == 1 {
        e["type"] = json!("custom");
        e["name"] = json!("signup");
        e["props"] = json!({"plan": "pro", "n": n});
    }
    if let Some(user) = user {
        e["user_id"] = json!(user);
    }
    e
}

/// Posts `events` for site `shop`, sent at the app's clock; `Ok(())` once
/// acknowledged (the status and body otherwise).
pub(crate) async fn post(app: &TestApp, events: &[Value]) -> Result<(), String> {
    let now = app.clock.now_ms();
    let body = json!({"v": 1, "site": "shop", "sent_at": now, "events": events});
    let request = Request::post("/v1/batch")
        .header(header::CONTENT_TYPE, "text/plain")
        .header(
            header::USER_AGENT,
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
        )
        .body(Body::from(body.to_string()))
        .unwrap();
    let reply = app.send(request).await;
    if reply.status != StatusCode::OK {
        return Err(format!("{}: {}", reply.status, reply.text()));
    }
    Ok(())
}

/// Waits until everything acknowledged can be read back.
pub(crate) async fn sync(app: &TestApp) {
    tokio::time::timeout(Duration::from_secs(30), app.store.sync())
        .await
        .expect("the store takes the events within 30 s")
        .unwrap();
}

/// A request with the admin token: the status and the JSON body.
pub(crate) async fn admin<S: waymark_ingest::EventSink + ?Sized>(
    app: &TestApp<S>,
    method: &str,
    path: &str,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let reply = app.send(request).await;
    let body = if reply.body.is_empty() {
        Value::Null
    } else {
        reply.json()
    };
    (reply.status, body)
}

/// The ClickHouse database of an app made by [`clickhouse_with`], if it is
/// one.
fn clickhouse_db(app: &TestApp) -> Option<String> {
    match &app.state.config().store {
        StoreKind::ClickHouse(url) => Some(url.database.clone()),
        _ => None,
    }
}

/// The tables the store really has (`sqlite_master`, `system.tables`).
fn actual_tables(app: &TestApp) -> BTreeSet<String> {
    match clickhouse_db(app) {
        Some(db) => clickhouse_server()
            .unwrap()
            .query(&format!(
                "SELECT name FROM system.tables WHERE database = '{db}' ORDER BY name"
            ))
            .lines()
            .map(str::to_owned)
            .collect(),
        None => {
            let conn = sqlite_conn(app);
            let mut stmt = conn
                .prepare(
                    "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') \
                     AND name NOT LIKE 'sqlite_%'",
                )
                .unwrap();
            let names = stmt.query_map([], |r| r.get(0)).unwrap();
            names.map(Result::unwrap).collect()
        }
    }
}

fn sqlite_conn(app: &TestApp) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(app.root().join(waymark_ingest::DB_FILE_NAME)).unwrap();
    waymark_ingest::SqliteStore::register_functions(&conn).unwrap();
    conn
}

/// Asserts that no row of any table the store has holds one of `ids` in
/// any of its text columns (ClickHouse's aggregate states hold no text
/// column: their rows are found by their `session_id`, which `ids` lists).
pub(crate) fn assert_no_row_holds(app: &TestApp, ids: &[&str]) {
    let list = ids
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(", ");
    for table in actual_tables(app) {
        let holding = match clickhouse_db(app) {
            Some(db) => {
                let server = clickhouse_server().unwrap();
                let columns = server.query(&format!(
                    "SELECT name FROM system.columns WHERE database = '{db}' AND table = '{table}' \
                     AND type IN ('String', 'Nullable(String)')"
                ));
                let engine = server.query(&format!(
                    "SELECT engine FROM system.tables WHERE database = '{db}' AND name = '{table}'"
                ));
                if engine.contains("View") || columns.trim().is_empty() {
                    continue;
                }
                let any = columns
                    .lines()
                    .map(|c| format!("ifNull({c}, '') IN ({list})"))
                    .collect::<Vec<_>>()
                    .join(" OR ");
                server
                    .query(&format!("SELECT count() FROM {db}.{table} WHERE {any}"))
                    .trim()
                    .parse::<u64>()
                    .unwrap()
            }
            None => {
                let conn = sqlite_conn(app);
                let kind: String = conn
                    .query_row(
                        "SELECT type FROM sqlite_master WHERE name = ?1",
                        [&table],
                        |r| r.get(0),
                    )
                    .unwrap();
                if kind == "view" {
                    continue;
                }
                let columns: Vec<String> = conn
                    .prepare(&format!(
                        "SELECT name FROM pragma_table_info('{table}') \
                         WHERE type IN ('TEXT', 'BLOB')"
                    ))
                    .unwrap()
                    .query_map([], |r| r.get(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                let any = columns
                    .iter()
                    .map(|c| format!("wm_text({c}) IN ({list})"))
                    .collect::<Vec<_>>()
                    .join(" OR ");
                conn.query_row(
                    &format!("SELECT COUNT(*) FROM {table} WHERE {any}"),
                    [],
                    |r| r.get::<_, u64>(0),
                )
                .unwrap()
            }
        };
        assert_eq!(
            holding, 0,
            "{holding} rows of {table} still hold one of {ids:?}"
        );
    }
}

/// Every table the store has is in its lifecycle's list, and every listed
/// one exists: a table added later without a place in the list fails here.
async fn every_table_is_covered(app: TestApp) {
    // The schema exists once something was stored.
    post(
        &app,
        &[event(2, "v-cover", "s-cover", app.clock.now_ms(), None)],
    )
    .await
    .unwrap();
    sync(&app).await;
    let lifecycle = app
        .store
        .clone()
        .lifecycle()
        .expect("the store has a lifecycle");
    let listed: BTreeSet<String> = lifecycle
        .tables()
        .iter()
        .map(|t| t.name.to_owned())
        .collect();
    assert_eq!(
        actual_tables(&app),
        listed,
        "the store's tables and its lifecycle's list"
    );
    assert!(lifecycle
        .tables()
        .iter()
        .any(|t| t.role == TableRole::Personal));
}

crate::support::stores::on_both_stores!(every_table_is_covered);

/// Without a lifecycle (the null store) erasure and export answer 501
/// with a reason.
#[tokio::test]
async fn a_store_without_a_lifecycle_answers_501() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::on(
        std::sync::Arc::new(waymark_ingest::NullStore),
        config(),
        crate::support::stores::NOW,
        dir,
    );
    for (method, path) in [
        ("DELETE", "/v1/visitors/v-1"),
        ("DELETE", "/v1/users/u-1"),
        ("GET", "/v1/visitors/v-1/export"),
    ] {
        let (status, body) = admin(&app, method, path).await;
        assert_eq!(
            status,
            StatusCode::NOT_IMPLEMENTED,
            "{method} {path}: {body}"
        );
        assert_eq!(body["error"], "not_implemented", "{body}");
    }
}
