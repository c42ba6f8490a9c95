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

/// Moves the page's clock (what the SDK reads through `Date.now`) forward.
async fn skew_clock(browser: &Browser, minutes: u64) {
    let script = format!(
        "var real = Date.now.bind(Date); Date.now = function () {{ return real() + {}; }};",
        minutes * 60_000
    );
    browser.eval(&script).await;
}

async fn open_demo(collector: &Collector, browser: &Browser, path: &str) {
    browser.client.goto(&collector.url(path)).await.expect("open the demo");
    browser.wait_until("return window.waymark && window.waymark.tracker").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_one_idle_minutes_start_a_new_session_and_close_the_first() {
    let collector = Collector::start().await;
    let browser = Browser::start().await;
    open_demo(&collector, &browser, "/").await;
    let first = collector.wait_for("the first visit", |rows| rows.len() >= 2).await;
    let first_session = first[0].session_id.clone();

    skew_clock(&browser, 31).await;
    browser.eval("waymark('track', 'back_after_lunch'); waymark('flush');").await;
    let rows = collector.wait_for("the second session", |rows| rows.len() >= 4).await;

    let ended = of_kind(&rows, "visit_ended");
    assert_eq!(ended.len(), 1, "{rows:#?}");
    let ended = ended[0];
    assert_eq!(ended.session_id, first_session);
    let props = ended.props.as_ref().expect("visit_ended props");
    let (start, last) = (first[0].ts, first[1].ts);
    assert_eq!(props["reason"], "idle");
    assert_eq!(props["started_at"], start);
    assert_eq!(props["ended_at"], last);
    assert_eq!(props["duration_ms"], last - start);
    assert_eq!(props["event_count"], 2);
    assert_eq!(ended.ts, last, "a session ends at its last activity");

    let back = rows.iter().find(|r| r.name.as_deref() == Some("back_after_lunch")).expect("the new event");
    assert_ne!(back.session_id, first_session);
    assert_eq!(back.visitor_id, first[0].visitor_id, "one visitor, two sessions");
    assert_eq!(back.session_index, Some(2));
    assert_eq!(back.previous_session_id.as_deref(), Some(first_session.as_str()));
    assert!(back.ts >= last + 31 * 60_000);
    let sessions: std::collections::BTreeSet<_> = rows.iter().map(|r| &r.session_id).collect();
    assert_eq!(sessions.len(), 2);

    browser.close().await;
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn identify_links_the_user_and_reset_starts_a_new_visitor() {
    let collector = Collector::start().await;
    let browser = Browser::start().await;
    open_demo(&collector, &browser, "/about.html").await;
    browser
        .eval(
            "waymark('identify', 'u-7', {plan: 'pro'}); waymark('track', 'after_login');
             waymark('reset'); waymark('track', 'after_logout'); waymark('flush');",
        )
        .await;
    let rows = collector.wait_for("identify and reset", |rows| rows.iter().any(|r| r.name.as_deref() == Some("after_logout"))).await;
    let named = |n: &str| rows.iter().find(|r| r.name.as_deref() == Some(n)).unwrap_or_else(|| panic!("no {n} in {rows:#?}"));
    let view = &of_kind(&rows, "page_view")[0];
    let identify = of_kind(&rows, "identify")[0];
    assert_eq!(identify.user_id.as_deref(), Some("u-7"));
    assert_eq!(identify.props, Some(serde_json::json!({"plan": "pro"})));
    assert_eq!(identify.session_id, view.session_id, "identify does not split the session");
    assert_eq!(named("after_login").user_id.as_deref(), Some("u-7"));

    let ended = of_kind(&rows, "visit_ended");
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].session_id, view.session_id);
    assert_eq!(ended[0].props.as_ref().map(|p| p["reason"].clone()), Some("reset".into()));

    let after = named("after_logout");
    assert_eq!(after.user_id, None, "reset forgets the user");
    assert_ne!(after.visitor_id, view.visitor_id, "reset starts a new visitor");
    assert_ne!(after.session_id, view.session_id);
    assert_eq!(after.session_index, Some(1));
    assert_eq!(browser.eval("return waymark.visitorId()").await, after.visitor_id.as_str());

    browser.close().await;
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_windows_share_one_session_and_close_it_once() {
    let collector = Collector::start().await;
    let browser = Browser::start().await;
    open_demo(&collector, &browser, "/").await;
    let first = browser.client.window().await.expect("window handle");
    let second = browser.client.new_window(false).await.expect("a second window").handle;
    browser.client.switch_to_window(second.clone()).await.expect("switch");
    open_demo(&collector, &browser, "/pricing.html").await;
    let rows = collector.wait_for("both page views", |rows| of_kind(rows, "page_view").len() >= 2).await;
    let views = of_kind(&rows, "page_view");
    assert_eq!(views[0].session_id, views[1].session_id, "a second window joins the session");
    let session = views[0].session_id.clone();

    // Both windows come back after 40 idle minutes.
    for window in [&first, &second] {
        browser.client.switch_to_window(window.clone()).await.expect("switch");
        skew_clock(&browser, 40).await;
        browser.eval("waymark('track', 'came_back'); waymark('flush');").await;
    }
    let rows = collector
        .wait_for("both windows' new events", |rows| rows.iter().filter(|r| r.name.as_deref() == Some("came_back")).count() == 2)
        .await;
    let ended = of_kind(&rows, "visit_ended");
    assert_eq!(ended.len(), 1, "one visit_ended for one closed session: {rows:#?}");
    assert_eq!(ended[0].session_id, session);
    let back: Vec<_> = rows.iter().filter(|r| r.name.as_deref() == Some("came_back")).collect();
    assert_eq!(back[0].session_id, back[1].session_id, "both windows continue in one new session");
    assert_ne!(back[0].session_id, session);
    let ids = browser.eval("return waymark.sessionId()").await;
    assert_eq!(ids, back[0].session_id.as_str());

    browser.close().await;
    collector.stop().await;
}
