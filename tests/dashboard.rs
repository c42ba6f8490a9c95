//! End to end: the dashboard at `/dashboard/` in headless Chromium, reading
//! the real read API, shows the sessions a visit to the demo and a hostile
//! batch created — with the hostile markup as text.
//!
//! Screenshots go to `tests/output/dashboard-overview.png` and
//! `tests/output/dashboard-session.png`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;

use waymark_e2e::{Browser, Collector};

mod dashboard_support;
use dashboard_support::*;

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_shows_the_demo_sessions_and_escapes_what_visitors_sent() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let collector = Collector::start_with_admin_token(TOKEN).await;
    let browser = Browser::start().await;

    // A visit to the demo: home, then pricing (ChromeDriver makes it a bot).
    browser
        .client
        .goto(&collector.url("/"))
        .await
        .expect("open the demo");
    browser
        .wait_until("return window.waymark && window.waymark.sessionId && waymark.sessionId()")
        .await;
    let demo = browser
        .eval("return waymark.sessionId()")
        .await
        .as_str()
        .expect("session id")
        .to_owned();
    browser.click("a[href='/pricing.html']").await;
    collector
        .wait_for("both demo page views", |rows| {
            rows.iter().filter(|r| r.kind == "page_view").count() >= 2
        })
        .await;

    // A hostile page: markup in its URL, its title and a prop, sent by an
    // ordinary desktop Firefox (so no bot).
    let hostile = "0190c0de-0000-7000-8000-00000000b0b0";
    let now = waymark_e2e::now_ms();
    let url = collector.url(&format!("/{MARKUP}"));
    let base = serde_json::json!({
        "session_id": hostile, "visitor_id": "0190c0de-0000-7000-8000-00000000f00d",
        "session_index": 1, "url": url, "title": MARKUP,
    });
    let event = |extra: serde_json::Value| {
        let mut e = base.clone();
        e.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        e
    };
    let batch = serde_json::json!({"v": 1, "site": "demo", "sent_at": now, "events": [
        event(serde_json::json!({"event_id": "0190c0de-0000-7000-8000-000000000001",
            "type": "page_view", "ts": now - 4500, "seq": 1})),
        event(serde_json::json!({"event_id": "0190c0de-0000-7000-8000-000000000002",
            "type": "custom", "name": "signup", "ts": now - 1500, "seq": 2,
            "props": {"note": SCRIPT_PROP, "plan": "pro"}})),
    ]});
    let status = post_batch(&collector, &batch.to_string(), FIREFOX).await;
    assert_eq!(status, 200);
    collector
        .wait_for("the hostile batch", |rows| {
            session_rows(rows, hostile).len() == 2
        })
        .await;

    // Without a trailing slash the collector redirects to the dashboard.
    browser
        .client
        .goto(&collector.url("/dashboard"))
        .await
        .expect("open the dashboard");
    let here = browser.client.current_url().await.expect("url");
    assert_eq!(here.as_str(), collector.url("/dashboard/"));
    browser
        .eval(
            "window.alerts = []; window.alert = (m) => window.alerts.push(String(m)); return null",
        )
        .await;
    // Leaving the pricing page sent its page leave: now the demo session is complete.
    let rows = collector
        .wait_for("the demo's page leaves", |rows| {
            session_rows(rows, &demo)
                .iter()
                .filter(|r| r.kind == "page_leave")
                .count()
                >= 2
        })
        .await;
    let demo_kinds: Vec<String> = session_rows(&rows, &demo)
        .iter()
        .map(|r| r.kind.clone())
        .collect();

    // It asks for the token; a wrong one is refused and asked for again.
    browser
        .wait_until("return !document.querySelector('#login').hidden")
        .await;
    let token_field = browser
        .client
        .find(fantoccini::Locator::Css("#token"))
        .await
        .expect("token field");
    token_field.send_keys("not-the-token").await.expect("type");
    browser.click("#login-form button[type=submit]").await;
    browser
        .wait_until("return !document.querySelector('#login-error').hidden")
        .await;
    assert!(browser.text_of("#login-error").await.contains("refused"));
    token_field.send_keys(TOKEN).await.expect("type");
    browser.click("#login-form button[type=submit]").await;
    wait_drawn(&browser).await;
    assert_eq!(
        browser
            .eval("return localStorage.getItem('waymark.dashboard.token')")
            .await,
        TOKEN
    );

    // The overview leaves bots out by default, like the API.
    let stats = read_api(&browser, "/v1/stats").await;
    assert_eq!(
        stats["visits"], 1,
        "only the hostile visit is no bot: {stats}"
    );
    assert_eq!(
        browser.text_of("[data-metric=visits] .value").await,
        stats["visits"].to_string()
    );

    // With bots: both visits, three page views, the markup as a page's text.
    browser.click("label.toggle").await;
    wait_drawn(&browser).await;
    let stats = read_api(&browser, "/v1/stats?include_bots=true").await;
    assert_eq!(
        (stats["visits"].as_u64(), stats["page_views"].as_u64()),
        (Some(2), Some(3))
    );
    for (metric, field) in [
        ("visits", "visits"),
        ("page_views", "page_views"),
        ("visitors", "visitors"),
    ] {
        assert_eq!(
            browser
                .text_of(&format!("[data-metric={metric}] .value"))
                .await,
            stats[field].to_string(),
            "{metric}"
        );
    }
    let pages = browser.text_of("#list-pages").await;
    assert!(pages.contains(&format!("/{MARKUP}")), "{pages}");
    assert!(pages.contains("/pricing.html"), "{pages}");
    let chart_bars = browser
        .eval("return [...document.querySelectorAll('.chart .bar')].filter(b => +b.getAttribute('height') > 0).length")
        .await;
    assert_eq!(chart_bars, 1, "both visits started in the last hour's bar");
    assert_no_markup_ran(&browser).await;
    browser
        .client
        .set_window_size(1280, 1000)
        .await
        .expect("window size");
    wait_drawn(&browser).await;
    screenshot(&browser, "dashboard-overview.png").await;

    // The sessions list: both sessions, the demo's marked as a bot.
    browser.click(".tabs a[data-tab=sessions]").await;
    wait_drawn(&browser).await;
    let listed = browser
        .eval("return [...document.querySelectorAll('tr.session-row')].map(r => r.dataset.session)")
        .await;
    let listed: BTreeSet<&str> = listed
        .as_array()
        .expect("rows")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(listed, BTreeSet::from([demo.as_str(), hostile]));
    let demo_row = format!("tr[data-session='{demo}']");
    assert_eq!(browser.text_of(&format!("{demo_row} .landing")).await, "/");
    assert_eq!(
        browser.text_of(&format!("{demo_row} .exit")).await,
        "/pricing.html"
    );
    assert_eq!(
        browser.text_of(&format!("{demo_row} .source")).await,
        "direct"
    );
    assert_eq!(
        browser.text_of(&format!("{demo_row} .badge.bot")).await,
        "BOT"
    );
    let hostile_row = format!("tr[data-session='{hostile}']");
    assert_eq!(
        browser.text_of(&format!("{hostile_row} .landing")).await,
        format!("/{MARKUP}")
    );
    assert_eq!(
        browser.text_of(&format!("{hostile_row} .duration")).await,
        "3s"
    );
    assert_no_markup_ran(&browser).await;

    // The hostile session's timeline: its events in order, markup as text.
    browser.click(&format!("{hostile_row} .when a")).await;
    wait_drawn(&browser).await;
    let timeline = browser
        .eval("return [...document.querySelectorAll('.timeline .event')].map(e => e.dataset.type)")
        .await;
    assert_eq!(timeline, serde_json::json!(["page_view", "custom"]));
    assert_eq!(browser.text_of(".timeline .event .title").await, MARKUP);
    let props = browser.text_of(".timeline .type-custom .props").await;
    assert!(props.contains(SCRIPT_PROP), "{props}");
    assert_no_markup_ran(&browser).await;

    // The demo session's timeline lists what the store holds, in its order.
    browser.click("a.back").await;
    wait_drawn(&browser).await;
    browser.click(&format!("{demo_row} .when a")).await;
    wait_drawn(&browser).await;
    let timeline = browser
        .eval("return [...document.querySelectorAll('.timeline .event')].map(e => e.dataset.type)")
        .await;
    assert_eq!(timeline, serde_json::json!(demo_kinds));
    let titles = browser.text_of(".timeline").await;
    assert!(titles.contains("Waymark demo — Home"), "{titles}");
    assert!(titles.contains("demo_loaded"), "{titles}");
    screenshot(&browser, "dashboard-session.png").await;

    // The token is asked for once: a reload goes straight to the view.
    browser.client.refresh().await.expect("reload");
    wait_drawn(&browser).await;
    assert!(
        browser
            .eval("return document.querySelector('#login').hidden")
            .await
            == true
    );
    browser.click("#forget").await;
    browser
        .wait_until("return !document.querySelector('#login').hidden")
        .await;
    assert_eq!(
        browser
            .eval("return localStorage.getItem('waymark.dashboard.token')")
            .await,
        serde_json::Value::Null
    );

    browser.close().await;
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_list_filters_by_site_and_pages_through_the_cursor() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let collector = Collector::start_with_admin_token(TOKEN).await;
    // 30 visits to "shop", one every 20 minutes, from various sources; one to "demo".
    let now = waymark_e2e::now_ms();
    let visit = |i: u64, source: &str| {
        serde_json::json!({
            "event_id": format!("0190c0de-0000-7000-8000-{:012x}", 0x1000 + i),
            "type": "page_view", "ts": now - 60_000 - i * 20 * 60_000, "seq": 1,
            "session_id": format!("0190c0de-0000-7000-9000-{i:012x}"),
            "visitor_id": format!("0190c0de-0000-7000-a000-{:012x}", i % 12),
            "session_index": 1,
            "url": format!("https://shop.example/products/{}?utm_source={source}", i % 4),
            "title": format!("Product {}", i % 4),
        })
    };
    let sources = ["newsletter", "google", "github", "twitter"];
    let shop: Vec<_> = (0..30)
        .map(|i| visit(i, sources[(i % 7 % 4) as usize]))
        .collect();
    let batch = serde_json::json!({"v": 1, "site": "shop", "sent_at": now, "events": shop});
    assert_eq!(
        post_batch(&collector, &batch.to_string(), FIREFOX).await,
        200
    );
    let demo = serde_json::json!({"v": 1, "site": "demo", "sent_at": now,
        "events": [visit(99, "direct")]});
    assert_eq!(
        post_batch(&collector, &demo.to_string(), FIREFOX).await,
        200
    );
    collector
        // `sent`, not every row: the sweep may already have ended the older
        // visits, adding a `visit_ended` row for each.
        .wait_for("31 visits", |rows| sent(rows) == 31)
        .await;

    let browser = Browser::start().await;
    open_dashboard(&browser, &collector).await;
    // The last 24 hours, hour by hour, for the shop only.
    browser.click("#range button[data-range='24h']").await;
    wait_drawn(&browser).await;
    pick_site(&browser, "shop").await;
    browser
        .wait_until(
            "return document.querySelector('[data-metric=visits] .value').textContent === '30'",
        )
        .await;
    let stats = read_api(&browser, "/v1/stats?site=shop&include_bots=false").await;
    assert_eq!(stats["visits"], 30);
    assert_eq!(
        browser.text_of("[data-metric=visitors] .value").await,
        stats["visitors"].to_string()
    );
    let bars = browser
        .eval("return document.querySelectorAll('.chart .bucket').length")
        .await;
    assert!(
        bars.as_u64().is_some_and(|n| (24..=25).contains(&n)),
        "hourly buckets: {bars}"
    );
    browser
        .client
        .set_window_size(1280, 1000)
        .await
        .expect("window size");
    wait_drawn(&browser).await;
    screenshot(&browser, "dashboard-overview-shop.png").await;

    browser.click(".tabs a[data-tab=sessions]").await;
    wait_drawn(&browser).await;
    let page = |n: u64| {
        (0..30)
            .skip(n as usize * 25)
            .take(25)
            .map(|i| format!("0190c0de-0000-7000-9000-{i:012x}"))
            .collect::<Vec<_>>()
    };
    let rows =
        "return [...document.querySelectorAll('tr.session-row')].map(r => r.dataset.session)";
    assert_eq!(
        browser.eval(rows).await,
        serde_json::json!(page(0)),
        "newest first"
    );
    assert_eq!(
        browser
            .eval("return document.querySelector('#newer').disabled")
            .await,
        true
    );
    screenshot(&browser, "dashboard-sessions.png").await;
    browser.click("#older").await;
    wait_drawn(&browser).await;
    assert_eq!(browser.eval(rows).await, serde_json::json!(page(1)));
    assert_eq!(
        browser
            .eval("return document.querySelector('#older').disabled")
            .await,
        true
    );
    browser.click("#newer").await;
    wait_drawn(&browser).await;
    assert_eq!(browser.eval(rows).await, serde_json::json!(page(0)));
    assert_no_markup_ran(&browser).await;

    browser.close().await;
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_session_link_shows_an_error_not_an_exception() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let collector = Collector::start_with_admin_token(TOKEN).await;
    let browser = Browser::start().await;
    open_dashboard_recording_trouble(&browser, &collector).await;

    // `%E0%A4%A` is a cut-off escape: decodeURIComponent throws on it.
    browser
        .eval("location.hash = '#/sessions/%E0%A4%A'; return null")
        .await;
    browser
        .wait_until("return document.querySelector('#view').dataset.state === 'error'")
        .await;
    let shown = browser.text_of("#view").await;
    assert!(shown.contains("not a valid session link"), "{shown}");
    assert_eq!(
        browser.eval("return window.__trouble").await,
        serde_json::json!([]),
        "the dashboard threw or broke its policy"
    );

    // A good link still works after it.
    browser
        .eval("location.hash = '#/sessions'; return null")
        .await;
    wait_drawn(&browser).await;
    browser.close().await;
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_draws_under_its_content_security_policy() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let collector = Collector::start_with_admin_token(TOKEN).await;
    // One visit, so the overview draws its charts and bars.
    let now = waymark_e2e::now_ms();
    let batch = serde_json::json!({"v": 1, "site": "shop", "sent_at": now, "events": [{
        "event_id": "0190c0de-0000-7000-8000-00000000c5c5", "type": "page_view",
        "ts": now - 60_000, "seq": 1, "session_id": "0190c0de-0000-7000-9000-00000000c5c5",
        "visitor_id": "0190c0de-0000-7000-a000-00000000c5c5", "session_index": 1,
        "url": "https://shop.example/?utm_source=csp", "title": "Shop",
    }]});
    assert_eq!(
        post_batch(&collector, &batch.to_string(), FIREFOX).await,
        200
    );
    collector
        .wait_for("the visit", |rows| rows.len() == 1)
        .await;

    let browser = Browser::start().await;
    open_dashboard_recording_trouble(&browser, &collector).await;
    let policy = browser
        .eval_async(
            "const done = arguments[arguments.length - 1];
             fetch('/dashboard/').then(r => done(r.headers.get('content-security-policy')),
                                       e => done(String(e)));",
        )
        .await;
    assert!(
        policy
            .as_str()
            .is_some_and(|p| p.contains("script-src 'self'")),
        "the dashboard is served under its policy: {policy}"
    );
    assert!(
        browser
            .eval("return document.querySelectorAll('.list .bar').length")
            .await
            .as_u64()
            .is_some_and(|n| n > 0),
        "the overview drew its bars"
    );
    browser.click(".tabs a[data-tab=sessions]").await;
    wait_drawn(&browser).await;
    browser.click("tr.session-row a").await;
    wait_drawn(&browser).await;
    assert_eq!(
        browser.eval("return window.__trouble").await,
        serde_json::json!([]),
        "the dashboard threw or broke its policy"
    );
    browser.close().await;
    collector.stop().await;
}

/// Replaces `performance.mark` with one that first records, in
/// `window.__marks`, what the page shows at that instant.
const MARK_RECORDER: &str = "window.__marks = [];
    const mark = performance.mark.bind(performance);
    const text = (s) => (document.querySelector(s) || {}).textContent;
    performance.mark = (name, options) => {
      const v = document.querySelector('#view');
      window.__marks.push({
        name, detail: options && options.detail, state: v.dataset.state,
        drawn: +(v.dataset.drawn || 0), now: text('#now-value'),
        visits: text('.card[data-metric=visits] .value'),
        sources: document.querySelectorAll('#list-sources li').length,
        bars: document.querySelectorAll('.chart-panel svg rect.bar').length,
      });
      return mark(name, options);
    };
    return null";

/// The marks recorded so far.
async fn marks(browser: &Browser) -> Vec<serde_json::Value> {
    serde_json::from_value(browser.eval("return window.__marks").await).expect("marks")
}

/// Waits for the `waymark:view-ready` mark of the view drawn after `after`;
/// what the page showed then.
async fn wait_ready_mark(browser: &Browser, after: u64) -> serde_json::Value {
    browser
        .wait_until(&format!(
            "return window.__marks.some(m => m.detail && m.detail.generation > {after})"
        ))
        .await;
    let found = marks(browser).await;
    let last = found.last().expect("a mark").clone();
    assert_eq!(last["name"], "waymark:view-ready", "{found:?}");
    last
}

#[tokio::test(flavor = "multi_thread")]
async fn each_view_marks_itself_ready_once_everything_it_reads_is_drawn() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let collector = Collector::start_with_admin_token(TOKEN).await;
    seed(&collector).await;
    let browser = Browser::start().await;
    open_dashboard_with(&browser, &collector, MARK_RECORDER).await;
    let before = drawn(&browser).await;
    pick_site(&browser, "shop").await;

    // The overview: its cards, chart, panels and "visitors now" (Dave) all
    // drawn when it marks itself ready — the benchmark's readiness signal.
    let overview = wait_ready_mark(&browser, before).await;
    let generation = overview["detail"]["generation"].as_u64().expect("number");
    assert_eq!(overview["detail"]["view"], "overview");
    assert_eq!(overview["state"], "ready");
    assert_eq!(
        overview["drawn"], generation,
        "the mark names the view drawn"
    );
    assert_eq!(overview["visits"], "5", "the shop's cards");
    assert_eq!(overview["now"], "1", "visitors now came in before the mark");
    assert!(overview["sources"].as_u64() > Some(0), "{overview}");
    assert!(overview["bars"].as_u64() > Some(0), "{overview}");

    // A filter click: the same mark once the filtered overview is drawn.
    browser
        .click("#list-sources li[data-key='google.com'] .key")
        .await;
    let filtered = wait_ready_mark(&browser, generation).await;
    assert_eq!(filtered["detail"]["view"], "overview");
    assert_eq!(filtered["visits"], "2", "the filtered cards");
    assert_ne!(filtered["now"], "…", "visitors now came in before the mark");

    // Another view marks itself too.
    let before = drawn(&browser).await;
    browser.click(".tabs a[data-tab=sessions]").await;
    let sessions = wait_ready_mark(&browser, before).await;
    assert_eq!(sessions["detail"]["view"], "sessions");
    assert_eq!(sessions["state"], "ready");

    // One mark per view drawn.
    let generations: Vec<u64> = marks(&browser)
        .await
        .iter()
        .map(|m| m["detail"]["generation"].as_u64().expect("generation"))
        .collect();
    let unique: BTreeSet<u64> = generations.iter().copied().collect();
    assert_eq!(unique.len(), generations.len(), "{generations:?}");
    browser.close().await;
    collector.stop().await;
}
