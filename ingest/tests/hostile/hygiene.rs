//! URL hygiene on the collector's side: a batch that did not come from the
//! SDK (a server, a curl, an old SDK) cannot store a secret or an e-mail
//! address that a page's URL carried. The collector removes the same query
//! parameters the SDK does, with the same code (`waymark_wire::redact_url`),
//! before anything is stored.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::json;

use crate::stores::{admin_get, sqlite, NOW};

const SESSION: &str = "0195f2a4-1111-7000-8000-000000000001";

/// What no stored row and no answer of the read API may hold.
const SECRETS: [&str; 8] = [
    "abc123",
    "a@b.co",
    "jane@example.com",
    "jane%40example.com",
    "s3cr3t",
    "hunter2",
    "424242",
    "bob@mail.example",
];

fn event(n: u64, kind: &str, url: &str) -> serde_json::Value {
    json!({
        "event_id": format!("0195f2a4-2222-7000-8000-00000000000{n}"),
        "type": kind,
        "ts": NOW - 60_000 + n * 1_000,
        "session_id": SESSION,
        "visitor_id": "0195f2a4-3333-4000-8000-000000000001",
        "seq": n,
        "url": url,
    })
}

/// A batch as curl would send it: no SDK ever cleaned these URLs.
fn raw_batch() -> String {
    let mut landing = event(
        1,
        "page_view",
        "https://shop.example/reset?token=abc123&email=a@b.co&utm_source=x&q=jane%40example.com&step=2#/done?otp=424242&tab=1",
    );
    landing["referrer"] =
        json!("https://mail.example/inbox?session=s3cr3t&from=jane@example.com&folder=promo");
    landing["context"] = json!({
        "language": "en",
        "campaign": {"utm_source": "x", "utm_content": "bob@mail.example"},
    });
    let mut click = event(2, "click", "https://shop.example/cart?PassWord=hunter2");
    click["props"] = json!({
        "tag": "a",
        "href": "https://shop.example/account?api_key=abc123&page=2",
    });
    let mut custom = event(3, "custom", "https://shop.example/plain?a=1");
    custom["name"] = json!("signup");
    custom["props"] = json!({"href": "https://shop.example/?keep=jane@example.com"});
    let exit = event(4, "page_view", "https://shop.example/bye?user_email=a@b.co");
    json!({"v": 1, "site": "demo", "sent_at": NOW, "events": [landing, click, custom, exit]})
        .to_string()
}

fn post(body: String) -> Request<Body> {
    Request::post("/v1/batch")
        .header(header::CONTENT_TYPE, "text/plain;charset=UTF-8")
        .body(Body::from(body))
        .unwrap()
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} holds {secret:?}: {text}");
    }
}

#[tokio::test]
async fn a_raw_batch_is_stored_without_its_secrets_and_every_event_is_kept() {
    let app = sqlite();
    let reply = app.send(post(raw_batch())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"accepted": 4, "duplicates": 0, "rejected": []}),
        "redaction keeps the event"
    );

    let stored = app.store.events_for_session("demo", SESSION).await.unwrap();
    let urls: Vec<&str> = stored.iter().map(|e| e.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "https://shop.example/reset?utm_source=x&step=2#/done?tab=1",
            "https://shop.example/cart",
            "https://shop.example/plain?a=1",
            "https://shop.example/bye",
        ]
    );
    assert_eq!(
        stored[0].referrer.as_deref(),
        Some("https://mail.example/inbox?folder=promo")
    );
    let json = |text: &Option<String>| -> serde_json::Value {
        serde_json::from_str(text.as_deref().unwrap()).unwrap()
    };
    assert_eq!(
        json(&stored[0].context)["campaign"],
        json!({"utm_source": "x"})
    );
    assert_eq!(
        json(&stored[1].props),
        json!({"tag": "a", "href": "https://shop.example/account?page=2"})
    );
    // A custom event's props are the page's own data, stored as given.
    assert_eq!(
        json(&stored[2].props)["href"],
        "https://shop.example/?keep=jane@example.com"
    );
    for e in &stored[..2] {
        assert_no_secret("a stored event", &format!("{e:?}"));
    }
    assert_no_secret("a stored event", &format!("{:?}", stored[3]));

    let session = app
        .send(admin_get(&format!("/v1/sessions/{SESSION}")))
        .await;
    assert_eq!(session.status, StatusCode::OK, "{}", session.text());
    let body = session.json();
    assert_eq!(
        body["landing_page"],
        "https://shop.example/reset?utm_source=x&step=2#/done?tab=1"
    );
    assert_eq!(body["exit_page"], "https://shop.example/bye");
    assert_eq!(body["source"], "x");
    let mut shown = body.to_string();
    // The custom event's own props are the one place the address may stay.
    shown = shown.replace("keep=jane@example.com", "");
    assert_no_secret("GET /v1/sessions/{id}", &shown);
    let list = app.send(admin_get("/v1/sessions")).await;
    assert_eq!(list.json()["sessions"][0]["session_id"], SESSION);
    assert_no_secret("GET /v1/sessions", &list.text());

    let metrics = app.send(admin_get("/metrics")).await.text();
    assert!(
        metrics.contains("waymark_urls_redacted_total 6"),
        "url ×3, referrer, a click's href, the context's campaign:\n{metrics}"
    );
}

#[tokio::test]
async fn a_clean_batch_is_stored_byte_for_byte_and_nothing_is_counted() {
    let app = sqlite();
    let url = "https://shop.example/s?q=@handle&utm_source=news&x#/route?y=1";
    let mut page = event(1, "page_view", url);
    page["referrer"] = json!("https://news.example/?id=7");
    let body = json!({"v": 1, "site": "demo", "events": [page]}).to_string();
    let reply = app.send(post(body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let stored = app.store.events_for_session("demo", SESSION).await.unwrap();
    assert_eq!(stored[0].url, url);
    assert_eq!(
        stored[0].referrer.as_deref(),
        Some("https://news.example/?id=7")
    );
    let metrics = app.send(admin_get("/metrics")).await.text();
    assert!(
        metrics.contains("waymark_urls_redacted_total 0"),
        "{metrics}"
    );
}
