//! Exhausting: one session grown without bound.
//!
//! A session's events are read back whole (its timeline, the ClickHouse
//! store's fold of it, the sweeper's), so a client that keeps sending
//! events under one session id would make every such read of it as big as
//! it likes. Each session holds at most `--max-events-per-session` events
//! (`WAYMARK_MAX_EVENTS_PER_SESSION`, default 10,000) besides its
//! `visit_ended`; each event past that is rejected, per event, with reason
//! `session_full` and counted in `waymark_events_rejected_total`.

use serde_json::{json, Value};
use uuid::Uuid;
use waymark_ingest::Config;

use crate::poisoning::{get, post, session, MIN};
use crate::stores::{
    admin_get, clickhouse_app, clickhouse_server, config as base_config, on_both_stores,
    sqlite_app, NOW,
};
use crate::support::app::TestApp;
use crate::support::collector::Collector;

/// The cap the tests configure.
const CAP: u64 = 5;

fn config() -> Config {
    Config {
        max_events_per_session: CAP,
        ..base_config()
    }
}

fn sqlite() -> TestApp {
    sqlite_app(config(), |store| store.with_max_events_per_session(CAP))
}

async fn clickhouse(name: &str) -> Option<TestApp> {
    let server = clickhouse_server()?;
    let db = format!("exhausting_{name}");
    Some(
        clickhouse_app(server, &db, config(), |store| {
            store.with_max_events_per_session(CAP)
        })
        .await,
    )
}

fn event(n: u128, kind: &str, session: &str) -> Value {
    json!({
        "event_id": Uuid::from_u128(n).to_string(), "type": kind, "name": "tick",
        "ts": NOW - 10 * MIN + n as u64, "seq": n as u64,
        "session_id": session, "visitor_id": "v-1", "session_index": 1,
        "url": "https://shop.example/",
    })
}

/// The `rejected` indexes of an answer, each with reason `session_full`.
fn rejected_full(answer: &Value) -> Vec<u64> {
    answer["rejected"]
        .as_array()
        .unwrap_or_else(|| panic!("no rejected list: {answer}"))
        .iter()
        .map(|r| {
            let reason = r["reason"].as_str().unwrap();
            assert!(reason.starts_with("session_full:"), "{answer}");
            r["index"].as_u64().unwrap()
        })
        .collect()
}

async fn rejected_metric(app: &TestApp) -> String {
    app.send(admin_get("/metrics")).await.text()
}

/// Events past the cap are rejected per event (`session_full`), in the
/// batch that crosses it and in every later one; the session's count stays
/// at the cap; its `visit_ended` and other sessions still get in.
async fn events_past_the_cap_are_rejected(app: TestApp) {
    let first: Vec<Value> = (1..=4).map(|n| event(n, "page_view", "s-full")).collect();
    let answer = post(&app, "shop", &first).await;
    assert_eq!(answer["accepted"], 4, "{answer}");

    let crossing: Vec<Value> = (5..=8).map(|n| event(n, "click", "s-full")).collect();
    let answer = post(&app, "shop", &crossing).await;
    assert_eq!(answer["accepted"], 1, "{answer}");
    assert_eq!(rejected_full(&answer), vec![1, 2, 3], "{answer}");

    let later = vec![
        event(9, "custom", "s-full"),
        event(10, "page_view", "s-other"),
        event(11, "visit_ended", "s-full"),
    ];
    let answer = post(&app, "shop", &later).await;
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(rejected_full(&answer), vec![0], "{answer}");

    let full = session(&app, "shop", "s-full").await;
    assert_eq!(full["event_count"], CAP, "{full}");
    assert_eq!(full["events"].as_array().unwrap().len(), 6, "{full}");
    assert!(
        full["ended_at"].is_u64(),
        "the session can still end: {full}"
    );
    assert_eq!(session(&app, "shop", "s-other").await["event_count"], 1);

    let metrics = rejected_metric(&app).await;
    assert!(
        metrics.contains(r#"waymark_events_rejected_total{reason="session_full"} 4"#),
        "{metrics}"
    );
}

on_both_stores!(events_past_the_cap_are_rejected);

/// The cap is the same for the same session id on another site: each
/// site's session has a cap of its own.
#[tokio::test]
async fn each_sites_session_has_its_own_cap() {
    let app = sqlite();
    let a: Vec<Value> = (1..=5).map(|n| event(n, "click", "s-twin")).collect();
    let b: Vec<Value> = (11..=15).map(|n| event(n, "click", "s-twin")).collect();
    assert_eq!(post(&app, "site-a", &a).await["accepted"], 5);
    assert_eq!(post(&app, "site-b", &b).await["accepted"], 5);
    let (_, page) = get(&app, "/v1/sessions").await;
    let counts: Vec<&Value> = page["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["event_count"])
        .collect();
    assert_eq!(counts, vec![&json!(5), &json!(5)], "{page}");
}

/// The binary takes the cap from `--max-events-per-session`.
#[test]
fn the_cap_is_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start_with(
        dir.path(),
        "cap",
        &dir.path().join("data"),
        &["--max-events-per-session", "2"],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let events: Vec<Value> = (1..=3)
        .map(|n: u64| {
            json!({
                "event_id": Uuid::from_u128(u128::from(n)).to_string(), "type": "click",
                "ts": now - 1_000 + n, "session_id": "s-flag", "visitor_id": "v-1",
                "url": "https://shop.example/",
            })
        })
        .collect();
    let body = json!({"v": 1, "site": "shop", "sent_at": now, "events": events});
    let (status, answer) = collector.post_batch(&body.to_string()).unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(rejected_full(&answer), vec![2], "{answer}");
}
