//! The SDK's golden batch (`tests/fixtures/batch-v1.json`, pinned by the
//! SDK's own test) replayed through `app()`: the collector accepts every
//! event the SDK sends and keeps every field.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use std::sync::Arc;
use tower::ServiceExt;
use waymark_ingest::{app, AppState, Config, EventType, FixedClock, MemoryStore};

const FIXTURE: &str = include_str!("../../tests/fixtures/batch-v1.json");

#[tokio::test]
async fn the_sdk_golden_batch_is_stored_whole() {
    let store = Arc::new(MemoryStore::new());
    let router = app(AppState::new(
        Config::default(),
        store.clone(),
        Arc::new(FixedClock(1_700_001_862_100)),
    ));
    let post = |body: &'static str| {
        Request::post("/v1/batch")
            .header(header::CONTENT_TYPE, "text/plain;charset=UTF-8")
            .body(Body::from(body))
            .unwrap()
    };

    let response = router.clone().oneshot(post(FIXTURE)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        body,
        serde_json::json!({"accepted": 5, "duplicates": 0, "rejected": []})
    );

    let sent: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    let first_session = sent["events"][0]["session_id"].as_str().unwrap();
    let stored = store.events_for_session(first_session).await.unwrap();
    let kinds: Vec<EventType> = stored.iter().map(|e| e.event_type).collect();
    assert_eq!(
        kinds,
        [
            EventType::PageView,
            EventType::Custom,
            EventType::Identify,
            EventType::VisitEnded
        ]
    );
    for (e, wire) in stored.iter().zip(sent["events"].as_array().unwrap()) {
        assert_eq!(e.event_id, wire["event_id"].as_str().unwrap());
        assert_eq!(
            (e.site.as_str(), e.received_at),
            ("demo", 1_700_001_862_100)
        );
        assert_eq!(Some(e.ts), wire["ts"].as_u64());
        assert_eq!(
            e.session_index.map(u64::from),
            wire["session_index"].as_u64()
        );
        assert_eq!(e.seq.map(u64::from), wire["seq"].as_u64());
        assert_eq!(
            e.previous_session_id.as_deref(),
            wire["previous_session_id"].as_str()
        );
        assert_eq!(e.storage.as_deref(), wire["storage"].as_str());
        assert_eq!(e.user_id.as_deref(), wire["user_id"].as_str());
        assert_eq!(e.url, wire["url"].as_str().unwrap());
        let json = |text: &Option<String>| {
            text.as_deref()
                .map(|t| serde_json::from_str::<serde_json::Value>(t).unwrap())
        };
        assert_eq!(json(&e.props), wire.get("props").cloned());
        assert_eq!(json(&e.context), wire.get("context").cloned());
    }
    let ended = &stored[3];
    assert_eq!(
        ended
            .props
            .as_deref()
            .map(|p| p.contains(r#""reason":"idle""#)),
        Some(true)
    );

    let second_session = sent["events"][4]["session_id"].as_str().unwrap();
    let next = store.events_for_session(second_session).await.unwrap();
    assert_eq!((next.len(), next[0].session_index), (1, Some(2)));
    assert_eq!(next[0].previous_session_id.as_deref(), Some(first_session));

    // A retry of the same batch (a beacon sent twice) stores nothing new.
    let retry = router.oneshot(post(FIXTURE)).await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(
        &axum::body::to_bytes(retry.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["duplicates"], 5);
    assert_eq!(store.len(), 5);
}
