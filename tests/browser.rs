//! End to end: the demo site in headless Chromium, beaconing to the real
//! collector, landing in the real SQLite file.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use waymark_e2e::{serve_page, snippet, Browser, Collector, Row};
use waymark_sdk::Session;

fn of_kind<'a>(rows: &'a [Row], kind: &str) -> Vec<&'a Row> {
    rows.iter().filter(|r| r.kind == kind).collect()
}

/// The session record the SDK keeps in the page's localStorage.
async fn stored_session(browser: &Browser, site: &str) -> Session {
    let record = browser
        .eval(&format!(
            "return localStorage.getItem('waymark.{site}.session')"
        ))
        .await;
    Session::decode(record.as_str().expect("a session in localStorage"))
        .expect("a valid session record")
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_page_view_lands_in_the_store_with_the_ids_the_page_holds() {
    let collector = Collector::start().await;
    let browser = Browser::start().await;
    browser
        .client
        .goto(&collector.url("/"))
        .await
        .expect("open the demo");
    browser
        .wait_until("return window.waymark && window.waymark.tracker")
        .await;

    let rows = collector
        .wait_for("the page view and the queued custom event", |rows| {
            rows.len() >= 2
        })
        .await;
    let session = stored_session(&browser, "demo").await;
    assert_eq!(
        rows.len(),
        2,
        "one page view and one replayed call: {rows:#?}"
    );
    let (view, queued) = (&rows[0], &rows[1]);
    assert_eq!(
        (view.kind.as_str(), view.site.as_str()),
        ("page_view", "demo")
    );
    assert_eq!(view.url, collector.url("/"));
    assert_eq!(view.title.as_deref(), Some("Waymark demo — Home"));
    assert_eq!(
        (view.session_id.as_str(), view.visitor_id.as_str()),
        (session.session_id.as_str(), session.visitor_id.as_str())
    );
    let context = view.context.as_ref().expect("page views carry context");
    assert!(
        context["user_agent"]
            .as_str()
            .is_some_and(|ua| ua.contains("Chrome")),
        "{context}"
    );
    assert_eq!(context["webdriver"], true);

    assert_eq!(
        (queued.kind.as_str(), queued.name.as_deref()),
        ("custom", Some("demo_loaded"))
    );
    assert_eq!(queued.props, Some(serde_json::json!({"queued": true})));
    assert_eq!(queued.session_id, session.session_id);
    assert_eq!(
        browser.eval("return waymark.sessionId()").await,
        session.session_id.as_str()
    );
    assert_eq!(
        browser.eval("return waymark.visitorId()").await,
        session.visitor_id.as_str()
    );

    // A click on a link to the next page: a new page view in the same session.
    browser
        .client
        .find(fantoccini::Locator::LinkText("Pricing"))
        .await
        .expect("link")
        .click()
        .await
        .expect("click");
    let rows = collector
        .wait_for("the second page view", |rows| {
            of_kind(rows, "page_view").len() >= 2
        })
        .await;
    let second = of_kind(&rows, "page_view")[1].clone();
    assert_eq!(second.url, collector.url("/pricing.html"));
    assert_eq!(second.session_id, session.session_id);
    assert_eq!(second.visitor_id, session.visitor_id);
    assert_eq!(stored_session(&browser, "demo").await.seq, 3);

    browser.close().await;
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_on_another_origin_reports_to_the_collector() {
    let collector = Collector::start().await;
    let origin = collector.url("");
    let page = serve_page(format!(
        "<!doctype html><html><head><title>Elsewhere</title>{}\n\
         <script>waymark('track', 'before_load', {{n: 1}}); waymark('flush');</script></head>\
         <body><p>Another site.</p></body></html>",
        snippet(&origin, "elsewhere", "")
    ))
    .await;
    let browser = Browser::start().await;
    let page_url = format!("http://{page}/");
    browser
        .client
        .goto(&page_url)
        .await
        .expect("open the other origin's page");

    let rows = collector
        .wait_for("the other origin's events", |rows| rows.len() >= 2)
        .await;
    assert!(
        rows.iter()
            .all(|r| r.site == "elsewhere" && r.url == page_url),
        "{rows:#?}"
    );
    assert_eq!(
        rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(),
        ["page_view", "custom"]
    );
    let session = stored_session(&browser, "elsewhere").await;
    assert_eq!(rows[0].session_id, session.session_id);
    assert_eq!(rows[1].name.as_deref(), Some("before_load"));

    browser.close().await;
    collector.stop().await;
}
