//! Compressed serving: the SDK's precompressed `.br` and `.gz` files chosen
//! by `Accept-Encoding`, each encoding with its own `ETag`, and the
//! collector's own pages and files (dashboard, demo) compressed on the fly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use waymark_ingest::MemoryStore;

mod support;
use support::app::{Reply, TestApp};

const NOW: u64 = 1_732_350_000_999;
const JS: &str = "console.log('waymark, the script-tag SDK, uncompressed')";
const WASM: &[u8] = b"\0asm\x01\0\0\0 the SDK's wasm, uncompressed";

/// An app whose `pkg/` holds `sdk.js` and `sdk.wasm` with a `.br` and a
/// `.gz` beside each (their bodies stand for the compressed files: the
/// collector serves them as they are), and whose `www/` holds a demo page
/// and a dashboard script.
fn app() -> TestApp<MemoryStore> {
    TestApp::serving(
        &[
            ("pkg/sdk.js", JS.as_bytes()),
            ("pkg/sdk.js.br", b"js as brotli"),
            ("pkg/sdk.js.gz", b"js as gzip"),
            ("pkg/sdk.wasm", WASM),
            ("pkg/sdk.wasm.br", b"wasm as brotli"),
            ("pkg/sdk.wasm.gz", b"wasm as gzip"),
            ("www/index.html", demo_page().as_bytes()),
            ("www/dashboard/app.js", dashboard_script().as_bytes()),
        ],
        NOW,
    )
}

fn demo_page() -> String {
    let tag = r#"<script async src="http://127.0.0.1:8080/sdk.js" data-site="demo"></script>"#;
    format!("<!doctype html><title>demo</title>{}", tag.repeat(20))
}

fn dashboard_script() -> String {
    "function render(rows) { return rows.map(String); }\n".repeat(40)
}

async fn get(app: &TestApp<MemoryStore>, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    app.send(request.body(Body::empty()).unwrap()).await
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("a gzip body");
    text
}

#[tokio::test]
async fn the_sdk_script_is_served_in_the_best_encoding_the_browser_accepts() {
    let app = app();
    let chromium = [("accept-encoding", "gzip, deflate, br, zstd")];
    let br = get(&app, "/sdk.js", &chromium).await;
    assert_eq!(br.status, StatusCode::OK);
    assert_eq!(br.header("content-encoding"), "br");
    assert_eq!(br.body, b"js as brotli");
    assert!(br.header("content-type").starts_with("text/javascript"));
    assert_eq!(br.header("vary"), "accept-encoding");
    assert_eq!(br.header("cache-control"), "no-cache");

    let gz = get(&app, "/sdk.js", &[("accept-encoding", "gzip")]).await;
    assert_eq!(gz.header("content-encoding"), "gzip");
    assert_eq!(gz.body, b"js as gzip");
    // A refused encoding (q=0) is not chosen; case and spaces do not matter.
    let gz2 = get(
        &app,
        "/sdk.js",
        &[("accept-encoding", "BR;q=0, GZip ;q=0.5")],
    )
    .await;
    assert_eq!(gz2.body, b"js as gzip");

    let plain = get(&app, "/sdk.js", &[]).await;
    assert!(plain.headers.get("content-encoding").is_none());
    assert_eq!(plain.body, JS.as_bytes());
    assert_eq!(plain.header("vary"), "accept-encoding");

    // One ETag per encoding: a cache holding one representation never
    // gets a 304 for another.
    let tags = [br.header("etag"), gz.header("etag"), plain.header("etag")];
    assert_ne!(tags[0], tags[1]);
    assert_ne!(tags[0], tags[2]);
    assert_ne!(tags[1], tags[2]);
    let again = get(&app, "/sdk.js", &[chromium[0], ("if-none-match", tags[0])]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), tags[0]);
    assert_eq!(again.header("vary"), "accept-encoding");
    let other = get(&app, "/sdk.js", &[chromium[0], ("if-none-match", tags[2])]).await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(other.body, b"js as brotli");

    // Without its `.br`, the next best encoding.
    std::fs::remove_file(app.root().join("pkg/sdk.js.br")).unwrap();
    let fallback = get(&app, "/sdk.js", &chromium).await;
    assert_eq!(fallback.header("content-encoding"), "gzip");
    assert_eq!(fallback.body, b"js as gzip");
}

#[tokio::test]
async fn the_wasm_named_by_its_hash_stays_immutable_in_every_encoding() {
    let app = app();
    let plain = get(&app, "/sdk.wasm", &[]).await;
    let hash = plain.header("etag").trim_matches('"').to_owned();
    let path = format!("/sdk.wasm?v={hash}");
    let br = get(&app, &path, &[("accept-encoding", "br")]).await;
    assert_eq!(br.status, StatusCode::OK);
    assert_eq!(br.header("content-encoding"), "br");
    assert_eq!(br.header("content-type"), "application/wasm");
    assert_eq!(
        br.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(br.body, b"wasm as brotli");
    assert_eq!(br.header("vary"), "accept-encoding");
    // The ETag still names the content hash, which the loader checks
    // against the one it was built with.
    assert!(br.header("etag").contains(&hash), "{}", br.header("etag"));
}

#[tokio::test]
async fn a_page_on_another_origin_can_read_the_sdk_etag() {
    let app = app();
    let reply = get(
        &app,
        "/sdk.wasm",
        &[("origin", "http://shop.example"), ("accept-encoding", "br")],
    )
    .await;
    let exposed = reply.header("access-control-expose-headers").to_lowercase();
    assert!(exposed.contains("etag"), "{exposed}");
}

#[tokio::test]
async fn the_collectors_own_pages_and_files_are_compressed_on_the_fly() {
    let app = app();
    let script = get(&app, "/dashboard/app.js", &[("accept-encoding", "gzip")]).await;
    assert_eq!(script.status, StatusCode::OK);
    assert_eq!(script.header("content-encoding"), "gzip");
    assert_eq!(script.header("vary"), "accept-encoding");
    assert_eq!(gunzip(&script.body), dashboard_script());
    assert!(script.body.len() < dashboard_script().len() / 4);
    let br = get(&app, "/dashboard/app.js", &[("accept-encoding", "br")]).await;
    assert_eq!(br.header("content-encoding"), "br");
    assert!(br.body.len() < dashboard_script().len() / 4);

    // The demo page names the collector that serves it, then is compressed.
    let page = get(
        &app,
        "/",
        &[("accept-encoding", "gzip"), ("host", "127.0.0.1:49152")],
    )
    .await;
    assert_eq!(page.header("content-encoding"), "gzip");
    assert_eq!(
        gunzip(&page.body),
        demo_page().replace("127.0.0.1:8080", "127.0.0.1:49152")
    );
    assert!(page.headers.get("content-security-policy").is_some());

    let plain = get(&app, "/dashboard/app.js", &[]).await;
    assert!(plain.headers.get("content-encoding").is_none());
    assert_eq!(plain.text(), dashboard_script());
}
