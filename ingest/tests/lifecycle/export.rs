//! Export: everything stored of a visitor or a user as one JSON document.

use axum::http::StatusCode;
use serde_json::json;

use waymark_ingest::Clock;

use crate::support::app::TestApp;
use crate::support::stores::NOW;
use crate::{admin, clickhouse, event, post, sqlite, sync};

async fn export_hands_over_every_session_and_event(app: TestApp) {
    post(
        &app,
        &[
            event(1, "v-x", "s-x1", NOW, None),
            event(2, "v-x", "s-x1", NOW + 1, None),
        ],
    )
    .await
    .unwrap();
    post(&app, &[event(4, "v-x", "s-x2", NOW + 100, Some("u-x"))])
        .await
        .unwrap();
    post(&app, &[event(6, "v-y", "s-y1", NOW + 200, Some("u-x"))])
        .await
        .unwrap();
    post(&app, &[event(8, "v-z", "s-z1", NOW + 300, None)])
        .await
        .unwrap();
    sync(&app).await;

    let (status, doc) = admin(&app, "GET", "/v1/visitors/v-x/export").await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["visitor_id"], "v-x", "{doc}");
    assert_eq!(doc["visitor_ids"], json!(["v-x"]), "{doc}");
    assert_eq!(doc["user_ids"], json!(["u-x"]), "{doc}");
    assert_eq!(doc["exported_at"], app.clock.now_ms(), "{doc}");
    let sessions = doc["sessions"].as_array().unwrap();
    let ids: Vec<_> = sessions.iter().map(|s| s["session_id"].clone()).collect();
    assert_eq!(
        ids,
        vec![json!("s-x2"), json!("s-x1")],
        "newest first: {doc}"
    );
    let first = &sessions[1];
    assert_eq!(first["visitor_id"], "v-x");
    let events = first["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{doc}");
    assert_eq!(events[1]["type"], "page_view");
    assert_eq!(events[1]["url"], "https://shop.example/p/2");
    // Props and context as the objects the SDK sent, enrichment beside.
    let custom = events.iter().find(|e| e["type"] == "custom").unwrap();
    assert_eq!(custom["props"], json!({"plan": "pro", "n": 1}), "{custom}");
    assert_eq!(custom["context"]["language"], "de-DE", "{custom}");
    assert_eq!(custom["browser"], "Firefox", "{custom}");
    assert!(custom.get("is_bot").is_some(), "{custom}");

    let (status, doc) = admin(&app, "GET", "/v1/users/u-x/export").await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["user_id"], "u-x", "{doc}");
    assert_eq!(doc["visitor_ids"], json!(["v-x", "v-y"]), "{doc}");
    let sessions: Vec<_> = doc["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sessions, ["s-y1", "s-x2", "s-x1"], "{doc}");
    let events: usize = doc["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["events"].as_array().unwrap().len())
        .sum();
    assert_eq!(events, 4, "{doc}");

    let (status, body) = admin(&app, "GET", "/v1/visitors/v-nobody/export").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "not_found", "{body}");
}

crate::support::stores::on_both_stores!(export_hands_over_every_session_and_event);
