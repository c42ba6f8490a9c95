//! Wedging: requests that stop the collector's background work for good.
//!
//! The sweeper closes idle sessions by writing a `visit_ended` whose id the
//! collector derives from the session id, and skips a session whose such id
//! is already stored. A client that stores events under those ids itself
//! must neither make the sweeper give up on every other session nor keep it
//! sweeping the same sessions for ever.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request};
use serde_json::{json, Value};
use uuid::Uuid;
use waymark_ingest::{decode_batch, sweep_idle_sessions, Config, StoredEvent};

use crate::stores::{clickhouse, config, on_both_stores, sqlite, sqlite_app, NOW};
use crate::support::app::TestApp;

const MIN: u64 = 60_000;
/// More sessions than the sweeper looks at per store call (1,000).
const FORGED: usize = 1_001;

/// The namespace the collector derived its `visit_ended` ids from: public,
/// in the source, so any client can compute them.
const VISIT_ENDED_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_9a55_3b8e_4d1e_9a0f_7e2b_5c4d_0a11);

/// The id of the collector's `visit_ended` for a session of site `shop`
/// (a UUID v5 of the session id in the site's namespace, itself a v5 of the
/// site in the collector's).
fn forged_end_id(session_id: &str) -> String {
    let site = Uuid::new_v5(&VISIT_ENDED_NAMESPACE, b"shop");
    Uuid::new_v5(&site, session_id.as_bytes())
        .hyphenated()
        .to_string()
}

fn page_view(event_id: &str, session: &str, ts: u64) -> Value {
    json!({
        "event_id": event_id, "type": "page_view", "ts": ts,
        "session_id": session, "visitor_id": format!("v-{session}"), "session_index": 1,
        "url": "https://shop.example/",
    })
}

/// Page views of `FORGED` sessions, an hour old (older than any honest
/// session), each under the id of its session's collector `visit_ended`.
fn forged_page_views() -> Vec<Value> {
    (0..FORGED)
        .map(|i| {
            let session = format!("forged-{i:05}");
            page_view(
                &forged_end_id(&session),
                &session,
                NOW - 60 * MIN + i as u64,
            )
        })
        .collect()
}

/// An honest page view, 40 minutes old: idle past the 30-minute timeout.
fn honest_page_view() -> Value {
    page_view(&Uuid::new_v4().to_string(), "honest", NOW - 40 * MIN)
}

async fn post(app: &TestApp, events: &[Value]) -> Value {
    let body = json!({"v": 1, "site": "shop", "sent_at": NOW, "events": events});
    let request = Request::post("/v1/batch")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(body.to_string()))
        .unwrap();
    let reply = app.send(request).await;
    tokio::time::timeout(Duration::from_secs(20), app.store.sync())
        .await
        .expect("the store takes the batch within 20 s")
        .unwrap();
    reply.json()
}

/// Sweeps until the sweep closes nothing, within a bound: a sweep that
/// never ends is a wedge too.
async fn sweep_all(app: &TestApp) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while sweep_idle_sessions(&app.state).await.unwrap() > 0 {}
    })
    .await
    .expect("the sweep finishes");
}

async fn assert_honest_session_closed(app: &TestApp) {
    let honest = app.store.session("shop", "honest").await.unwrap().unwrap();
    assert_eq!(honest.end_reason.as_deref(), Some("idle"), "{honest:?}");
    assert_eq!(honest.ended_at, Some(NOW - 40 * MIN));
}

/// The attack through the front door: the forged page views, then an
/// honest session; the sweep must still close the honest one.
async fn forged_batches_do_not_stop_the_sweeper(app: TestApp) {
    for chunk in forged_page_views().chunks(500) {
        post(&app, chunk).await;
    }
    post(&app, &[honest_page_view()]).await;
    sweep_all(&app).await;
    assert_honest_session_closed(&app).await;
}

/// Events stored under the collector's ids before the door checked (or by
/// any other way in): the sweep pages past the sessions it cannot close.
async fn forged_events_already_stored_do_not_stop_the_sweeper(app: TestApp) {
    let mut events = forged_page_views();
    events.push(honest_page_view());
    let mut stored: Vec<StoredEvent> = Vec::new();
    for chunk in events.chunks(500) {
        // Decoded under fresh ids (the door refuses the forged ones), then
        // the forged ids put back: the store takes what it is given.
        let fresh: Vec<Value> = chunk
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e["event_id"] = json!(Uuid::new_v4().to_string());
                e
            })
            .collect();
        let body = json!({"v": 1, "site": "shop", "sent_at": NOW, "events": fresh});
        let decoded = decode_batch(body.to_string().as_bytes(), NOW).unwrap();
        for (mut event, value) in decoded.events.into_iter().zip(chunk) {
            event.event_id = value["event_id"].as_str().unwrap().to_owned();
            stored.push(event);
        }
    }
    assert_eq!(stored.len(), FORGED + 1);
    app.store.append(stored).await.unwrap();
    app.store.sync().await.unwrap();
    sweep_all(&app).await;
    assert_honest_session_closed(&app).await;
}

on_both_stores!(
    forged_batches_do_not_stop_the_sweeper,
    forged_events_already_stored_do_not_stop_the_sweeper,
);

/// A client cannot store an event under the id of a collector `visit_ended`.
#[tokio::test]
async fn the_collectors_own_event_ids_are_rejected() {
    let app = sqlite();
    let forged = page_view(&forged_end_id("s-1"), "s-1", NOW - MIN);
    let honest = page_view(&Uuid::new_v4().to_string(), "s-1", NOW - MIN);
    let body = post(&app, &[forged, honest]).await;
    let rejected = body["rejected"].as_array().expect("a rejected list");
    assert_eq!(rejected.len(), 1, "{body}");
    assert_eq!(rejected[0]["index"], 0, "{body}");
    assert!(
        rejected[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("event_id"),
        "{body}"
    );
}

const DAY: u64 = 24 * 60 * MIN;

/// The `rejected` indexes of a reply and whether each reason names `ts`.
fn rejected_ts(body: &Value) -> Vec<u64> {
    body["rejected"]
        .as_array()
        .unwrap_or_else(|| panic!("no rejected list: {body}"))
        .iter()
        .map(|r| {
            assert!(r["reason"].as_str().unwrap().starts_with("ts"), "{body}");
            r["index"].as_u64().unwrap()
        })
        .collect()
}

/// Events spread over many months would make as many ClickHouse parts per
/// batch (it partitions by month): times far in the past or in the future
/// are rejected, per event, with reason `ts`.
#[tokio::test]
async fn events_too_old_or_in_the_future_are_rejected() {
    let app = sqlite();
    let at = |n: u128, ts: u64| page_view(&Uuid::from_u128(n).to_string(), "s-time", ts);
    let body = post(
        &app,
        &[
            at(1, NOW - 40 * DAY),
            at(2, NOW - 10 * DAY),
            at(3, NOW + 2 * 60 * MIN),
            at(4, 1),
            at(5, NOW + 30 * MIN),
            at(6, (1 << 53) - 1),
            at(7, NOW - 30 * DAY),
        ],
    )
    .await;
    assert_eq!(rejected_ts(&body), vec![0, 2, 3, 5], "{body}");
    assert_eq!(body["accepted"], 3, "{body}");
}

/// The bounds apply after the clock-skew correction: a device whose clock
/// is 50 days behind sends events that are recent once corrected.
#[tokio::test]
async fn the_time_bounds_apply_after_the_skew_correction() {
    let app = sqlite();
    let skewed = NOW - 50 * DAY;
    let events = [page_view(
        &Uuid::new_v4().to_string(),
        "s-skew",
        skewed - MIN,
    )];
    let body = json!({"v": 1, "site": "shop", "sent_at": skewed, "events": events});
    let request = Request::post("/v1/batch")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(body.to_string()))
        .unwrap();
    let body = app.send(request).await.json();
    assert_eq!(body["accepted"], 1, "{body}");
}

/// `--max-event-age-days` moves the bound back.
#[tokio::test]
async fn the_age_bound_is_configurable() {
    let config = Config {
        max_event_age_days: 5,
        ..config()
    };
    let app = sqlite_app(config, |store| store);
    let at = |n: u128, ts: u64| page_view(&Uuid::from_u128(n).to_string(), "s-age", ts);
    let body = post(&app, &[at(1, NOW - 6 * DAY), at(2, NOW - 4 * DAY)]).await;
    assert_eq!(rejected_ts(&body), vec![0], "{body}");
}
