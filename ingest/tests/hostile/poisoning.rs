//! Poisoning: a batch for one site that changes another site's data.
//!
//! Session ids are the SDK's, so anyone can send a batch for their own site
//! under another site's session id (seen in a page, a log, a shared link).
//! Sessions are keyed by `(site, session_id)`: such a batch makes a session
//! of its own site and leaves the other site's session — its site, start,
//! landing page, event count, events and `visit_ended` — exactly as it was,
//! on every store. Two sites' idle sessions with the same id are each closed
//! by the sweeper with their own `visit_ended`.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;
use waymark_ingest::sweep_idle_sessions;

use crate::stores::{clickhouse, on_both_stores, sqlite, NOW, TOKEN};
use crate::support::app::TestApp;
pub(crate) const MIN: u64 = 60_000;

/// The victim's session id, which the attacker reuses.
const SHARED: &str = "018bcfe5-6800-71bb-89b4-35474e17fc8f";

fn id(n: u128) -> String {
    Uuid::from_u128(n).to_string()
}

fn page_view(n: u128, session: &str, ts: u64, url: &str) -> Value {
    json!({
        "event_id": id(n), "type": "page_view", "ts": ts, "seq": n as u64,
        "session_id": session, "visitor_id": format!("v-{n}"), "session_index": 1,
        "url": url,
    })
}

fn click(n: u128, session: &str, ts: u64) -> Value {
    json!({
        "event_id": id(n), "type": "click", "ts": ts, "seq": n as u64,
        "session_id": session, "visitor_id": format!("v-{n}"), "session_index": 1,
        "url": "https://a.example/landing",
    })
}

fn sdk_visit_ended(n: u128, session: &str, ts: u64, reason: &str) -> Value {
    json!({
        "event_id": id(n), "type": "visit_ended", "ts": ts, "seq": n as u64,
        "session_id": session, "visitor_id": format!("v-{n}"), "session_index": 1,
        "url": "https://b.example/",
        "props": {"reason": reason},
    })
}

/// Posts `events` for `site`; the answer, once the store can read them back.
pub(crate) async fn post(app: &TestApp, site: &str, events: &[Value]) -> Value {
    let body = json!({"v": 1, "site": site, "sent_at": NOW, "events": events});
    let request = Request::post("/v1/batch")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(body.to_string()))
        .unwrap();
    let reply = app.send(request).await;
    let body = reply.json();
    assert_eq!(reply.status, StatusCode::OK, "{body}");
    tokio::time::timeout(Duration::from_secs(20), app.store.sync())
        .await
        .expect("the store takes the batch within 20 s")
        .unwrap();
    body
}

/// A read with the admin token: the status and the JSON body.
pub(crate) async fn get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let request = Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let reply = app.send(request).await;
    (reply.status, reply.json())
}

/// `GET /v1/sessions/{id}?site=` — the session with its events; it must be there.
pub(crate) async fn session(app: &TestApp, site: &str, id: &str) -> Value {
    let (status, body) = get(app, &format!("/v1/sessions/{id}?site={site}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn sweep_all(app: &TestApp) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while sweep_idle_sessions(&app.state).await.unwrap() > 0 {}
    })
    .await
    .expect("the sweep finishes");
}

fn visit_ended_ids(session: &Value) -> Vec<String> {
    session["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "visit_ended")
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Site A's visit, closed by the sweeper; then site B's batch under the
/// same session id, earlier (it would take the start, site and landing
/// page), later, and with the SDK's own `visit_ended` (it would replace the
/// collector's). A's session and its events stay exactly as they were; B's
/// is B's alone.
async fn another_sites_batch_leaves_the_session_alone(app: TestApp) {
    post(
        &app,
        "site-a",
        &[
            page_view(1, SHARED, NOW - 40 * MIN, "https://a.example/landing"),
            click(2, SHARED, NOW - 39 * MIN),
        ],
    )
    .await;
    sweep_all(&app).await;
    let before = session(&app, "site-a", SHARED).await;
    assert_eq!(before["site"], "site-a", "{before}");
    assert_eq!(before["started_at"], NOW - 40 * MIN, "{before}");
    assert_eq!(before["landing_page"], "https://a.example/landing");
    assert_eq!(before["event_count"], 2, "{before}");
    assert_eq!(before["ended_at"], NOW - 39 * MIN, "{before}");
    assert_eq!(before["end_reason"], "idle", "{before}");
    assert_eq!(visit_ended_ids(&before).len(), 1, "{before}");

    let answer = post(
        &app,
        "site-b",
        &[
            page_view(11, SHARED, NOW - 50 * MIN, "https://b.example/"),
            page_view(12, SHARED, NOW - 36 * MIN, "https://b.example/next"),
            sdk_visit_ended(13, SHARED, NOW - 35 * MIN, "reset"),
        ],
    )
    .await;
    assert_eq!(answer["accepted"], 3, "{answer}");
    sweep_all(&app).await;

    let after = session(&app, "site-a", SHARED).await;
    assert_eq!(after, before, "site A's session is untouched");
    let (_, listed) = get(&app, "/v1/sessions?site=site-a").await;
    let listed = listed["sessions"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["started_at"], NOW - 40 * MIN, "{listed:?}");
    assert_eq!(listed[0]["event_count"], 2, "{listed:?}");
    assert_eq!(listed[0]["end_reason"], "idle", "{listed:?}");

    let b = session(&app, "site-b", SHARED).await;
    assert_eq!(b["site"], "site-b", "{b}");
    assert_eq!(b["started_at"], NOW - 50 * MIN, "{b}");
    assert_eq!(b["landing_page"], "https://b.example/", "{b}");
    assert_eq!(b["exit_page"], "https://b.example/next", "{b}");
    assert_eq!(b["event_count"], 2, "{b}");
    assert_eq!(b["end_reason"], "reset", "{b}");
    let b_events = b["events"].as_array().unwrap();
    assert_eq!(b_events.len(), 3, "{b}");
    assert!(b_events.iter().all(|e| e["site"] == "site-b"), "{b}");
}

/// Two sites' idle sessions with the same id: one sweep closes both, each
/// with a `visit_ended` of its own.
async fn each_sites_session_gets_its_own_visit_ended(app: TestApp) {
    post(
        &app,
        "site-a",
        &[page_view(21, SHARED, NOW - 45 * MIN, "https://a.example/")],
    )
    .await;
    post(
        &app,
        "site-b",
        &[page_view(22, SHARED, NOW - 42 * MIN, "https://b.example/")],
    )
    .await;
    sweep_all(&app).await;

    let a = session(&app, "site-a", SHARED).await;
    let b = session(&app, "site-b", SHARED).await;
    for (s, started) in [(&a, NOW - 45 * MIN), (&b, NOW - 42 * MIN)] {
        assert_eq!(s["started_at"], started, "{s}");
        assert_eq!(s["event_count"], 1, "{s}");
        assert_eq!(s["ended_at"], started, "{s}");
        assert_eq!(s["end_reason"], "idle", "{s}");
    }
    let (a_end, b_end) = (visit_ended_ids(&a), visit_ended_ids(&b));
    assert_eq!((a_end.len(), b_end.len()), (1, 1), "{a}\n{b}");
    assert_ne!(a_end, b_end, "each session has its own visit_ended");
}

/// Without `site`, `/v1/sessions/{id}` never answers with another site's
/// session or a mix: an id two sites use needs `site`.
async fn an_id_two_sites_use_needs_the_site(app: TestApp) {
    post(
        &app,
        "site-a",
        &[page_view(31, SHARED, NOW - 5 * MIN, "https://a.example/")],
    )
    .await;
    let (status, body) = get(&app, &format!("/v1/sessions/{SHARED}")).await;
    assert_eq!(status, StatusCode::OK, "one site: found without site=");
    assert_eq!(body["site"], "site-a", "{body}");
    let (status, _) = get(&app, &format!("/v1/sessions/{SHARED}?site=site-b")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not a session of site-b");

    post(
        &app,
        "site-b",
        &[page_view(32, SHARED, NOW - 4 * MIN, "https://b.example/")],
    )
    .await;
    let (status, body) = get(&app, &format!("/v1/sessions/{SHARED}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_query", "{body}");
}

on_both_stores!(
    another_sites_batch_leaves_the_session_alone,
    each_sites_session_gets_its_own_visit_ended,
    an_id_two_sites_use_needs_the_site,
);
