//! The SDK on a slow connection: Chromium throttled through ChromeDriver's
//! DevTools protocol to Chrome's "Fast 3G" with a 4x CPU slowdown, loading
//! the demo pages (the README's snippet) from the real collector.
//!
//! - The SDK arrives brotli-compressed, the wasm's download starts alongside
//!   `sdk.js`'s (not after it ran), and a repeat visit costs one revalidation
//!   per file, no body.
//! - A visitor who hops to another page of the site before the SDK started
//!   on the first loses nothing: both page views are stored, once each.
//! - A first visit left for another site before the SDK started is stored
//!   at once (the loader beacons it), and still once if the visitor comes
//!   back.
//! - The home page's leave carries its Core Web Vitals.
//! - The snippet as first published (a stub that only queues) still works.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;
use waymark_e2e::{root, Browser, Collector, Row};

/// What the page's resource timing says of `sdk.js` and `sdk.wasm`.
const SDK_FETCHES: &str = "return performance.getEntriesByType('resource')
    .filter(e => /\\/sdk\\.(js|wasm)/.test(e.name))
    .map(e => ({ name: e.name.replace(/^.*\\//, ''), start: e.startTime, end: e.responseEnd,
                 transfer: e.transferSize, encoded: e.encodedBodySize, decoded: e.decodedBodySize,
                 status: e.responseStatus }))";

fn file_len(name: &str) -> u64 {
    std::fs::metadata(root().join("www/pkg").join(name))
        .unwrap_or_else(|e| panic!("www/pkg/{name}: {e} (run `cargo xtask build-sdk`)"))
        .len()
}

/// The one fetch of `file` (`sdk.js`, `sdk.wasm`) among `fetches`.
fn fetch_of<'a>(fetches: &'a [Value], file: &str) -> &'a Value {
    let found: Vec<&Value> = fetches
        .iter()
        .filter(|f| f["name"].as_str().unwrap().starts_with(file))
        .collect();
    assert_eq!(found.len(), 1, "one fetch of {file}: {fetches:#?}");
    found[0]
}

fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("a number: {v}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_arrives_compressed_with_its_wasm_alongside_and_a_repeat_visit_is_revalidated() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let collector = Collector::start().await;
    let browser = Browser::start().await;
    browser.throttle_fast_3g().await;

    browser.client.goto(&collector.url("/")).await.unwrap();
    browser
        .wait_until("return window.waymark && window.waymark.tracker")
        .await;
    let first = browser.eval(SDK_FETCHES).await;
    let first = first.as_array().unwrap();
    println!("first visit: {first:#?}");
    let (js, wasm) = (fetch_of(first, "sdk.js"), fetch_of(first, "sdk.wasm"));
    // Brotli: the bytes of the `.br` files build-sdk wrote, not the files.
    assert_eq!(number(&js["encoded"]) as u64, file_len("sdk.js.br"));
    assert_eq!(number(&wasm["encoded"]) as u64, file_len("sdk.wasm.br"));
    assert_eq!(number(&wasm["decoded"]) as u64, file_len("sdk.wasm"));
    // The wasm's request went out before sdk.js had even arrived.
    assert!(
        number(&wasm["start"]) < number(&js["end"]),
        "the wasm was fetched after sdk.js: {first:#?}"
    );
    let bytes: f64 = first.iter().map(|f| number(&f["transfer"])).sum();
    println!("first visit: {bytes} bytes of SDK on the wire");

    // An interaction, for INP; then a repeat visit, warm cache:
    // revalidations, no body.
    browser.click("#signup").await;
    browser
        .client
        .goto(&collector.url("/about.html"))
        .await
        .unwrap();
    browser
        .wait_until("return window.waymark && window.waymark.tracker")
        .await;
    let repeat = browser.eval(SDK_FETCHES).await;
    let repeat = repeat.as_array().unwrap();
    println!("repeat visit: {repeat:#?}");
    // Revalidated (Chromium counts 300 bytes of headers per response):
    // no body came, neither for sdk.js nor for the preloaded wasm.
    for fetch in repeat {
        assert!(number(&fetch["transfer"]) <= 300.0, "{fetch:#?}");
    }
    let bytes: f64 = repeat.iter().map(|f| number(&f["transfer"])).sum();
    println!("repeat visit: {bytes} bytes of SDK on the wire");
    assert!(bytes <= 1000.0, "repeat visit: {bytes} bytes: {repeat:#?}");

    // The home page's leave carries its Core Web Vitals.
    browser.eval("waymark('flush')").await;
    let rows = collector
        .wait_for("the home page's leave", |rows| {
            rows.iter()
                .any(|r| r.kind == "page_leave" && r.url.ends_with('/'))
        })
        .await;
    let leave = rows
        .iter()
        .find(|r| r.kind == "page_leave" && r.url.ends_with('/'))
        .unwrap();
    let props = leave.props.as_ref().unwrap();
    println!("the home page's vitals: {props}");
    let ms = |key: &str| {
        props[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {props}"))
    };
    // (DevTools' throttling delays the document after its first byte is
    // timed: the TTFB is the loopback's.)
    assert!(ms("ttfb_ms") > 0.0, "{props}");
    assert!(ms("lcp_ms") > ms("ttfb_ms"), "{props}");
    assert!(ms("inp_ms") > 0.0, "{props}");
    assert!((0.0..=1.0).contains(&ms("cls")), "{props}");

    browser.close().await;
    collector.stop().await;
}

fn page_views_of<'a>(rows: &'a [Row], path: &str) -> Vec<&'a Row> {
    rows.iter()
        .filter(|r| r.kind == "page_view" && r.url.ends_with(path))
        .collect()
}

/// Flushes the page's SDK and waits until the page views of `first` and
/// `second` are both stored, then two seconds more (anything sent twice
/// would have arrived by then); answers the stored events.
async fn flush_and_settle(
    browser: &Browser,
    collector: &Collector,
    first: &str,
    second: &str,
) -> Vec<Row> {
    browser.eval("waymark('flush')").await;
    collector
        .wait_for("both page views", |rows| {
            !page_views_of(rows, first).is_empty() && !page_views_of(rows, second).is_empty()
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    collector.events()
}

/// Makes every request for the wasm fail (`block`) or lets them through.
async fn block_the_wasm(browser: &Browser, block: bool) {
    let urls: &[&str] = if block { &["*sdk.wasm*"] } else { &[] };
    let urls = serde_json::json!({ "urls": urls });
    browser.cdp("Network.setBlockedURLs", urls).await;
}

/// The visitor goes on to the pricing page (the wasm let through again if
/// it was `blocked`); answers the stored events once its SDK has sent its
/// own and the home page's.
async fn on_to_pricing(browser: &Browser, collector: &Collector, blocked: bool) -> Vec<Row> {
    if blocked {
        block_the_wasm(browser, false).await;
    }
    browser
        .client
        .goto(&collector.url("/pricing.html"))
        .await
        .unwrap();
    browser
        .wait_until("return window.waymark && window.waymark.tracker")
        .await;
    flush_and_settle(browser, collector, "/", "/pricing.html").await
}

/// Home, left for the pricing page `hop` after DOMContentLoaded; when
/// `wasm_blocked`, the home page cannot fetch the wasm (its SDK never
/// starts there, so only the stub can save its page view). Answers the
/// stored events once the pricing page's SDK has sent its own, and the
/// time the home page was left.
async fn hop(hop: Duration, wasm_blocked: bool) -> (Vec<Row>, i64) {
    let collector = Collector::start().await;
    let browser = Browser::start_eager().await;
    browser.throttle_fast_3g().await;
    if wasm_blocked {
        block_the_wasm(&browser, true).await;
    }
    browser.client.goto(&collector.url("/")).await.unwrap();
    tokio::time::sleep(hop).await;
    let started = browser
        .eval("return !!(window.waymark && window.waymark.tracker)")
        .await;
    assert_eq!(started, false, "the SDK must not have started yet");
    let left_at = waymark_e2e::now_ms() as i64;
    let rows = on_to_pricing(&browser, &collector, wasm_blocked).await;
    browser.close().await;
    collector.stop().await;
    (rows, left_at)
}

/// Both page views, once each, in one session, and the call the home page
/// queued before its SDK started, once; answers the home page's view.
fn both_page_views_once(rows: &[Row]) -> Row {
    let home = page_views_of(rows, "/");
    let pricing = page_views_of(rows, "/pricing.html");
    assert_eq!((home.len(), pricing.len()), (1, 1), "{rows:#?}");
    let (home, pricing) = (home[0], pricing[0]);
    assert!(home.client_ts < pricing.client_ts);
    assert_eq!(home.session_id, pricing.session_id);
    assert_eq!(home.title.as_deref(), Some("Waymark demo — Home"));
    let queued: Vec<&Row> = rows
        .iter()
        .filter(|r| r.name.as_deref() == Some("demo_loaded"))
        .collect();
    assert_eq!(queued.len(), 1, "{rows:#?}");
    assert_eq!(queued[0].session_id, home.session_id);
    home.clone()
}

/// A site of two pages on its own origin, each with the README's snippet
/// naming `collector`: `/`, which leaves itself for `/next` 150 ms after
/// DOMContentLoaded (timed by the page, not by the test), and `/next`.
async fn hopping_site(collector: &Collector) -> std::net::SocketAddr {
    let snippet = waymark_e2e::snippet(&collector.url(""), "hop", "");
    let home = format!(
        "<!doctype html><title>Home</title>{snippet}<script>waymark('track', 'queued_early');\
         addEventListener('DOMContentLoaded', function () {{\
           setTimeout(function () {{ location.href = '/next'; }}, 150);\
         }});</script><h1>Home</h1>"
    );
    let next = format!("<!doctype html><title>Next</title>{snippet}<h1>Next</h1>");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(move || async move { axum::response::Html(home) }),
        )
        .route(
            "/next",
            axum::routing::get(move || async move { axum::response::Html(next) }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn a_visitor_who_hops_to_another_page_150_ms_after_domcontentloaded_loses_nothing() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let collector = Collector::start().await;
    let site = hopping_site(&collector).await;
    let browser = Browser::start_eager().await;
    browser.throttle_fast_3g().await;
    browser
        .client
        .goto(&format!("http://{site}/"))
        .await
        .unwrap();
    browser
        .wait_until(
            "return location.pathname == '/next' && window.waymark && window.waymark.tracker",
        )
        .await;
    let rows = flush_and_settle(&browser, &collector, "/", "/next").await;
    // The home page's SDK may still start while the next page loads (the
    // page lives until then), or not: either way, each page view once.
    let home = page_views_of(&rows, "/");
    let next = page_views_of(&rows, "/next");
    assert_eq!((home.len(), next.len()), (1, 1), "{rows:#?}");
    assert_eq!(home[0].session_id, next[0].session_id);
    assert!(home[0].client_ts < next[0].client_ts);
    let queued = rows
        .iter()
        .filter(|r| r.name.as_deref() == Some("queued_early"))
        .count();
    assert_eq!(queued, 1, "{rows:#?}");
    println!(
        "home page view at {} ms before the next one",
        next[0].client_ts - home[0].client_ts
    );
    browser.close().await;
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_whose_sdk_never_started_is_replayed_by_the_next_with_its_own_times() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let (rows, left_at) = hop(Duration::from_millis(150), true).await;
    let home = both_page_views_once(&rows);
    // Recorded by the stub before the visitor left, at its own time.
    assert!(home.client_ts < left_at, "{home:#?}");
    let queued = rows
        .iter()
        .find(|r| r.name.as_deref() == Some("demo_loaded"))
        .unwrap();
    assert!(queued.client_ts < left_at, "{queued:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_visit_left_for_another_site_before_the_sdk_started_is_stored_at_once() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let collector = Collector::start().await;
    let browser = Browser::start_eager().await;
    browser.throttle_fast_3g().await;
    // The wasm never comes: the SDK cannot start on this page, only its
    // loader (`sdk.js`) runs.
    block_the_wasm(&browser, true).await;
    browser.client.goto(&collector.url("/")).await.unwrap();
    // Left once `sdk.js` has come and run (its wasm never does).
    browser
        .wait_until(
            "return performance.getEntriesByType('resource')
             .some(e => /sdk\\.js$/.test(e.name) && e.responseEnd > 0)",
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let left_at = waymark_e2e::now_ms() as i64;
    browser.client.goto("about:blank").await.unwrap();
    // Stored without the visitor coming back.
    let rows = collector
        .wait_for("the home page view, from the loader's beacon", |rows| {
            !page_views_of(rows, "/").is_empty()
                && rows
                    .iter()
                    .any(|r| r.name.as_deref() == Some("demo_loaded"))
        })
        .await;
    let home = page_views_of(&rows, "/");
    assert_eq!(home.len(), 1, "{rows:#?}");
    assert!(home[0].client_ts < left_at, "{rows:#?}");

    // The visitor comes back: the next page replays the record the stub
    // saved into the same events (stored once) and goes on in the session.
    let rows = on_to_pricing(&browser, &collector, true).await;
    both_page_views_once(&rows);
    browser.close().await;
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_left_while_its_wasm_arrives_does_not_count_its_view_twice() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let collector = Collector::start().await;
    let browser = Browser::start_eager().await;
    browser.throttle_fast_3g().await;
    // A link slower than "Fast 3G" (20 kB/s): the wasm comes seconds after
    // `sdk.js`, time to leave the page between the two.
    let slow = serde_json::json!({
        "offline": false, "latency": 562.5, "downloadThroughput": 20_000, "uploadThroughput": 84_375,
    });
    browser.cdp("Network.emulateNetworkConditions", slow).await;
    browser.client.goto(&collector.url("/")).await.unwrap();
    // Once the loader has run, the page is hidden as when the visitor
    // leaves it (the page lives on until the next one arrives, and the
    // wasm may come meanwhile), or as when it goes into the back/forward
    // cache: its record is saved and sent.
    browser
        .wait_until(
            "return /^waymark\\.early\\.[0-9a-f-]{36}$/.test(window.waymark && window.waymark.k)",
        )
        .await;
    browser
        .eval("window.dispatchEvent(new PageTransitionEvent('pagehide', { persisted: true }))")
        .await;
    browser
        .wait_until(
            "return performance.getEntriesByType('resource')
             .some(e => /sdk\\.wasm/.test(e.name) && e.responseEnd > 0)",
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rows = collector
        .wait_for("the home page view", |rows| {
            !page_views_of(rows, "/").is_empty()
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = browser
        .eval("return !!(window.waymark && window.waymark.tracker)")
        .await;
    let rows = [rows, collector.events()].concat();
    assert_eq!(
        (page_views_of(&collector.events(), "/").len(), started),
        (1, Value::Bool(false)),
        "a hidden page's SDK must wait until it is shown again: {rows:#?}"
    );
    // Shown again: the SDK starts, and counts the view a running one
    // would have counted, one for the return.
    browser
        .eval("window.dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true }))")
        .await;
    browser
        .wait_until("return window.waymark && window.waymark.tracker")
        .await;
    browser.eval("waymark('flush')").await;
    collector
        .wait_for("the view of the return", |rows| {
            page_views_of(rows, "/").len() >= 2
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rows = collector.events();
    let home = page_views_of(&rows, "/");
    assert_eq!(home.len(), 2, "{rows:#?}");
    assert_eq!(home[0].session_id, home[1].session_id);
    let queued = rows
        .iter()
        .filter(|r| r.name.as_deref() == Some("demo_loaded"))
        .count();
    assert_eq!(queued, 1, "{rows:#?}");
    browser.close().await;
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_published_snippet_still_works() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let collector = Collector::start().await;
    let origin = collector.url("");
    let html = format!(
        "<!doctype html><title>Old</title>{}<script>waymark('track', 'old_stub', {{n: 1}});</script>",
        waymark_e2e::legacy_snippet(&origin, "legacy", "")
    );
    let page = waymark_e2e::serve_page(html).await;
    let browser = Browser::start().await;
    browser
        .client
        .goto(&format!("http://{page}/"))
        .await
        .unwrap();
    browser
        .wait_until("return window.waymark && window.waymark.tracker")
        .await;
    browser.eval("waymark('flush')").await;
    let rows = collector
        .wait_for("the page view and the queued call", |rows| {
            rows.iter().any(|r| r.kind == "page_view")
                && rows.iter().any(|r| r.name.as_deref() == Some("old_stub"))
        })
        .await;
    assert!(rows.iter().all(|r| r.site == "legacy"));
    browser.close().await;
    collector.stop().await;
}
