//! Erasure: a visitor, then a user with two visitors, while another
//! visitor's events stream in; afterwards no row of any table holds an
//! erased id, and every event of the other visitor is there.

use std::time::Duration;

use axum::http::StatusCode;

use waymark_ingest::Clock;

use crate::support::app::TestApp;
use crate::support::stores::NOW;
use crate::{admin, assert_no_row_holds, clickhouse, event, post, sqlite, sync};

/// Batches the other visitor sends while the erasures run, of 4 events.
const STREAM_BATCHES: u64 = 30;

async fn erasure_removes_every_trace_and_nothing_else(app: TestApp) {
    // Visitor A: two sessions of two events. User U: visitors B1 and B2,
    // one session each, identified in one of their events.
    post(
        &app,
        &[
            event(1, "v-a", "s-a1", NOW, None),
            event(2, "v-a", "s-a1", NOW + 1, None),
        ],
    )
    .await
    .unwrap();
    post(
        &app,
        &[
            event(3, "v-a", "s-a2", NOW + 10, None),
            event(4, "v-a", "s-a2", NOW + 11, None),
        ],
    )
    .await
    .unwrap();
    post(
        &app,
        &[
            event(5, "v-b1", "s-b1", NOW + 20, None),
            event(6, "v-b1", "s-b1", NOW + 21, Some("u-1")),
        ],
    )
    .await
    .unwrap();
    post(&app, &[event(7, "v-b2", "s-b2", NOW + 30, Some("u-1"))])
        .await
        .unwrap();
    sync(&app).await;

    // The other visitor streams in while the erasures run.
    let stream = {
        let router = app.router.clone();
        let clock = app.clock.clone();
        tokio::spawn(async move {
            let mut sent = 0u64;
            for b in 0..STREAM_BATCHES {
                let events: Vec<_> = (0..4)
                    .map(|i| {
                        let n = 1000 + b * 4 + i;
                        event(n, "v-other", &format!("s-o{}", b % 3), NOW + 100 + n, None)
                    })
                    .collect();
                let body = serde_json::json!({
                    "v": 1, "site": "shop", "sent_at": clock.now_ms(), "events": events
                });
                let request = axum::http::Request::post("/v1/batch")
                    .header(axum::http::header::CONTENT_TYPE, "text/plain")
                    .body(axum::body::Body::from(body.to_string()))
                    .unwrap();
                let reply = tower::ServiceExt::oneshot(router.clone(), request)
                    .await
                    .unwrap();
                assert_eq!(reply.status(), StatusCode::OK);
                sent += 4;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            sent
        })
    };

    let (status, erased) = admin(&app, "DELETE", "/v1/visitors/v-a").await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(erased["visitor_id"], "v-a", "{erased}");
    assert_eq!(erased["erased"]["sessions"], 2, "{erased}");
    assert_eq!(erased["erased"]["events"], 4, "{erased}");
    assert_eq!(
        erased["erased"]["visitor_ids"],
        serde_json::json!(["v-a"]),
        "{erased}"
    );
    assert_eq!(
        erased["erased"]["pending"],
        serde_json::json!([]),
        "{erased}"
    );

    let (status, erased) = admin(&app, "DELETE", "/v1/users/u-1").await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(erased["user_id"], "u-1", "{erased}");
    assert_eq!(
        erased["erased"]["visitor_ids"],
        serde_json::json!(["v-b1", "v-b2"]),
        "{erased}"
    );
    assert_eq!(erased["erased"]["sessions"], 2, "{erased}");
    assert_eq!(erased["erased"]["events"], 3, "{erased}");

    let sent = stream.await.unwrap();
    sync(&app).await;

    // Idempotent: nothing more to remove.
    for path in ["/v1/visitors/v-a", "/v1/users/u-1"] {
        let (status, again) = admin(&app, "DELETE", path).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["erased"]["events"], 0, "{again}");
        assert_eq!(again["erased"]["sessions"], 0, "{again}");
    }

    assert_no_row_holds(
        &app,
        &["v-a", "v-b1", "v-b2", "u-1", "s-a1", "s-a2", "s-b1", "s-b2"],
    );
    for path in ["/v1/visitors/v-a", "/v1/visitors/v-b1", "/v1/users/u-1"] {
        let (status, body) = admin(&app, "GET", path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    // Every event of the other visitor is there, and the aggregates (the
    // SQLite read index) count only it.
    let (status, other) = admin(&app, "GET", "/v1/visitors/v-other").await;
    assert_eq!(status, StatusCode::OK, "{other}");
    assert_eq!(other["events"], sent, "{other}");
    assert_eq!(other["visits"], 3, "{other}");
    let (_, stats) = admin(
        &app,
        "GET",
        &format!("/v1/stats?from={}&to={}", NOW - 1000, NOW + 1_000_000),
    )
    .await;
    assert_eq!(stats["visits"], 3, "{stats}");
    assert_eq!(stats["visitors"], 1, "{stats}");
    let metrics = app.state.metrics().render();
    assert!(
        metrics.contains("waymark_erased_total{what=\"requests\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("waymark_erased_total{what=\"events\"} 7"),
        "{metrics}"
    );

    // Events of an erased visitor arriving afterwards start a new history.
    post(&app, &[event(9000, "v-a", "s-a3", NOW + 5000, None)])
        .await
        .unwrap();
    sync(&app).await;
    let (status, again) = admin(&app, "GET", "/v1/visitors/v-a").await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        (again["visits"].clone(), again["events"].clone()),
        (1.into(), 1.into()),
        "{again}"
    );
}

crate::support::stores::on_both_stores!(erasure_removes_every_trace_and_nothing_else);

/// Erasure is behind the admin token, like every read.
#[tokio::test]
async fn erasure_needs_the_admin_token() {
    let app = sqlite();
    post(&app, &[event(1, "v-a", "s-a", NOW, None)])
        .await
        .unwrap();
    let request = axum::http::Request::delete("/v1/visitors/v-a")
        .body(axum::body::Body::empty())
        .unwrap();
    let reply = app.send(request).await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, _) = admin(&app, "GET", "/v1/visitors/v-a").await;
    assert_eq!(status, StatusCode::OK);
}

/// The audit line names the erasure by a hash of the id, never the id.
#[test]
fn the_audit_hash_is_stable_and_is_not_the_id() {
    use waymark_ingest::read::Person;
    let a = waymark_ingest::id_hash(&Person::User("alice@example.com".to_owned()));
    assert_eq!(
        a,
        waymark_ingest::id_hash(&Person::User("alice@example.com".to_owned()))
    );
    assert!(!a.contains("alice"));
    assert_ne!(
        a,
        waymark_ingest::id_hash(&Person::Visitor("alice@example.com".to_owned()))
    );
}
