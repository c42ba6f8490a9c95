//! End to end: the dashboard's views in headless Chromium on the data set
//! of `dashboard_support::seed` — filters from clicks (chips, the hash, a
//! reload), the previous-period comparison, realtime, a panel's details
//! and its CSV export, profiles, funnels, the 375 px layout and dark mode —
//! each number checked against the read API's answer.
//!
//! Screenshots: `tests/output/dashboard-<view>-desktop.png` and
//! `-mobile.png`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod dashboard_support;
use dashboard_support::*;

use waymark_e2e::{Browser, Collector};

/// The text of every element matching `selector`.
async fn texts(browser: &Browser, selector: &str) -> Vec<String> {
    let found = browser
        .eval(&format!(
            "return [...document.querySelectorAll({})].map(e => e.textContent.trim())",
            serde_json::Value::from(selector)
        ))
        .await;
    serde_json::from_value(found).expect("strings")
}

/// Asserts that the cards show the visits, visitors and page views of
/// `/v1/stats?site=shop&<query>`; the answer.
async fn assert_cards(browser: &Browser, query: &str) -> serde_json::Value {
    let stats = read_api(browser, &format!("/v1/stats?site=shop&{query}")).await;
    for metric in ["visits", "visitors", "page_views"] {
        assert_eq!(
            browser
                .text_of(&format!(".card[data-metric={metric}] .value"))
                .await,
            stats[metric].to_string(),
            "{metric} with {query}"
        );
    }
    stats
}

/// The hash without the scope (site, range, bots) every hash carries.
async fn view_hash(browser: &Browser) -> serde_json::Value {
    browser
        .eval(
            "const [path, query = ''] = location.hash.split('?');
             const params = new URLSearchParams(query);
             for (const k of ['site', 'range', 'bots']) params.delete(k);
             const rest = params.toString().replace(/%3A/gi, ':').replace(/%2F/gi, '/');
             return path + (rest ? '?' + rest : '')",
        )
        .await
}

async fn start() -> (Collector, Browser) {
    let collector = Collector::start_with_admin_token(TOKEN).await;
    seed(&collector).await;
    let browser = Browser::start().await;
    open_dashboard(&browser, &collector).await;
    // The site picked, as a person would.
    pick_site(&browser, "shop").await;
    // The shop's five visits of this week.
    browser
        .wait_until(
            "const v = document.querySelector('#view');
             return v.dataset.state === 'ready'
               && v.querySelector('.card[data-metric=visits] .value').textContent === '5'",
        )
        .await;
    (collector, browser)
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_from_clicks_combine_live_in_the_hash_and_come_off() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let (collector, browser) = start().await;
    assert_cards(&browser, "").await;
    // A marker that a reload would lose.
    browser.eval("window.__same_page = true; return null").await;

    // A source's row filters the whole dashboard.
    click_and_wait(&browser, "#list-sources li[data-key='google.com'] .key").await;
    let hash = view_hash(&browser).await;
    assert_eq!(hash, "#/?filter=source:google.com");
    assert_eq!(
        texts(&browser, "#chips .chip").await,
        vec!["Source is google.com×"]
    );
    let stats = assert_cards(&browser, "filter=source:google.com").await;
    assert_eq!(stats["visits"], 2, "Alice's first visit and Bob's");
    let pages = texts(&browser, "#list-pages li .key").await;
    let api_pages = read_api(
        &browser,
        "/v1/breakdown?site=shop&dimension=page&filter=source:google.com",
    )
    .await;
    let expected: Vec<String> = api_pages["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(pages, expected, "the pages panel is filtered too");

    // A tab of the devices panel, then its row: the filters combine.
    browser
        .click("#list-devices [data-dimension=device_type]")
        .await;
    browser
        .wait_until("return document.querySelector(\"#list-devices li[data-key='mobile']\")")
        .await;
    click_and_wait(&browser, "#list-devices li[data-key='mobile'] .key").await;
    assert_eq!(
        view_hash(&browser).await,
        "#/?filter=source:google.com&filter=device_type:mobile"
    );
    let stats = assert_cards(
        &browser,
        "filter=source:google.com&filter=device_type:mobile",
    )
    .await;
    assert_eq!(stats["visits"], 1, "Bob's visit");
    assert_eq!(
        browser.eval("return window.__same_page === true").await,
        true,
        "a filter click re-renders without reloading the page"
    );
    screenshots(&browser, "dashboard-filters").await;

    // The view survives a reload.
    browser.client.refresh().await.expect("reload");
    wait_drawn(&browser).await;
    assert_eq!(
        browser
            .eval("return document.querySelectorAll('#chips .chip').length")
            .await,
        2
    );
    assert_cards(
        &browser,
        "filter=source:google.com&filter=device_type:mobile",
    )
    .await;

    // Taking the source filter off leaves the device filter.
    click_and_wait(
        &browser,
        "#chips .chip[data-filter='source:google.com'] .remove",
    )
    .await;
    assert_eq!(view_hash(&browser).await, "#/?filter=device_type:mobile");
    let stats = assert_cards(&browser, "filter=device_type:mobile").await;
    assert_eq!(stats["visits"], 2, "Bob's and Carol's visits");
    click_and_wait(&browser, "#chips .chip .remove").await;
    assert_eq!(
        browser
            .eval("return document.querySelector('#chips').hidden")
            .await,
        true
    );
    assert_cards(&browser, "").await;

    browser.close().await;
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copied_address_opens_the_same_site_range_and_bots_in_another_browser() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let (collector, browser) = start().await;
    // The month, bots included: the address says so.
    click_and_wait(&browser, "#range button[data-range='30d']").await;
    // The switch drawn over the checkbox takes the click, as for a person.
    click_and_wait(&browser, "label.toggle .switch").await;
    let href = browser.eval("return location.href").await;
    let href = href.as_str().expect("href").to_owned();
    let query = href.split('?').nth(1).unwrap_or_default().to_owned();
    for part in ["site=shop", "range=30d", "bots=1"] {
        assert!(query.split('&').any(|p| p == part), "{part} in {href}");
    }

    // A fresh profile: no preferences of its own, so it shows every site and
    // the last 7 days until it opens the link.
    let other = Browser::start().await;
    open_dashboard(&other, &collector).await;
    assert_eq!(
        other
            .eval("return document.querySelector('#site').value")
            .await,
        ""
    );
    let before = drawn(&other).await;
    other
        .client
        .goto(&href)
        .await
        .expect("open the copied address");
    wait_redrawn(&other, before).await;
    assert_eq!(
        other
            .eval("return document.querySelector('#site').value")
            .await,
        "shop"
    );
    assert_eq!(
        other
            .eval("return document.querySelector('#bots').checked")
            .await,
        true
    );
    assert_eq!(
        other
            .eval("return document.querySelector(\"#range button[aria-pressed='true']\").dataset.range")
            .await,
        "30d"
    );
    let now = waymark_e2e::now_ms();
    let query = format!(
        "from={}&to={}&include_bots=true",
        now - 30 * 86_400_000,
        now + 60_000
    );
    let stats = assert_cards(&other, &query).await;
    assert!(
        stats["visits"].as_u64() > Some(5),
        "the month holds more than the week's five visits: {stats}"
    );
    // Its own picks from here on are its own: the hash follows them.
    click_and_wait(&other, "#range button[data-range='7d']").await;
    let href = other.eval("return location.href").await;
    assert!(
        href.as_str()
            .is_some_and(|h| h.contains("range=7d") && !h.contains("range=30d")),
        "{href}"
    );

    other.close().await;
    browser.close().await;
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_and_cards_compare_with_the_previous_period_and_realtime_refreshes() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let (collector, browser) = start().await;
    let stats = read_api(&browser, "/v1/stats?site=shop&compare=previous_period").await;
    assert_eq!(
        (
            stats["visits"].as_u64(),
            stats["previous"]["visits"].as_u64()
        ),
        (Some(5), Some(2))
    );
    for metric in [
        "visits",
        "visitors",
        "page_views",
        "bounce_rate",
        "avg_duration_ms",
    ] {
        let now = stats[metric].as_f64().unwrap();
        let before = stats["previous"][metric].as_f64().unwrap();
        let expected = ((now - before) / before * 100.0).round() as i64;
        let shown = browser
            .eval(&format!("return document.querySelector('.card[data-metric={metric}] .change').dataset.change"))
            .await;
        assert_eq!(
            shown,
            expected.to_string(),
            "{metric}: {now} against {before}"
        );
    }
    assert!(browser
        .text_of(".card[data-metric=visits] .change")
        .await
        .starts_with("↑ 150%"));

    // The chart: this week's visits per day, the week before as ghost bars,
    // the same figures in its table.
    let series = read_api(&browser, "/v1/timeseries?site=shop&interval=day").await;
    let buckets = series["buckets"].as_array().unwrap();
    let table = texts(&browser, ".chart-table tbody td:nth-of-type(1)").await;
    let expected: Vec<String> = buckets.iter().map(|b| b["visits"].to_string()).collect();
    assert_eq!(table, expected);
    let ghosts = browser
        .eval("return [...document.querySelectorAll('.chart .prev')].filter(b => +b.getAttribute('height') > 0).length")
        .await;
    assert_eq!(ghosts, 2, "the two days of the week before with visits");
    let previous: u64 = texts(&browser, ".chart-table tbody td:nth-of-type(2)")
        .await
        .iter()
        .map(|t| t.parse::<u64>().unwrap_or(0))
        .sum();
    assert_eq!(previous, 2);
    screenshots(&browser, "dashboard-comparison").await;
    // The README's picture (docs/dashboard.png, compressed).
    tall_screenshot(&browser, "dashboard-readme.png", 1440, 1340).await;

    // Another metric, hour by hour.
    click_and_wait(&browser, ".card[data-metric=visitors]").await;
    click_and_wait(&browser, "#interval button[data-interval=hour]").await;
    assert_eq!(
        browser
            .eval("return document.querySelector('.chart').dataset.metric")
            .await,
        "visitors"
    );
    let hourly = read_api(&browser, "/v1/timeseries?site=shop&interval=hour").await;
    let count = browser
        .eval("return document.querySelectorAll('.chart .bucket').length")
        .await;
    assert_eq!(
        count.as_u64(),
        Some(hourly["buckets"].as_array().unwrap().len() as u64)
    );
    let hash = view_hash(&browser).await;
    assert_eq!(hash, "#/?metric=visitors&interval=hour");
    // Without the comparison: no ghost bars.
    click_and_wait(&browser, "#compare").await;
    assert_eq!(
        browser
            .eval("return document.querySelectorAll('.chart .prev').length")
            .await,
        0
    );

    // Visitors now: Dave; another visitor arrives and the card follows
    // within its 10 s refresh.
    let now = read_api(&browser, "/v1/realtime?site=shop").await;
    assert_eq!(now["visitors"], 1);
    browser
        .wait_until("return document.querySelector('#now-card .value').textContent === '1'")
        .await;
    let t = waymark_e2e::now_ms();
    let batch = serde_json::json!({"v": 1, "site": "shop", "sent_at": t, "events": [{
        "event_id": "0190c0de-0000-7000-8000-0000000000ff", "type": "page_view", "ts": t - 1000,
        "seq": 1, "session_id": "0190c0de-0000-7000-9000-0000000000ff",
        "visitor_id": "0190c0de-0000-7000-a000-0000000000ff", "session_index": 1,
        "url": "https://shop.example/checkout", "title": "Checkout"}]});
    assert_eq!(
        post_batch(&collector, &batch.to_string(), FIREFOX).await,
        200
    );
    collector
        .wait_for("the new visitor", |rows| sent(rows) == 14)
        .await;
    browser
        .wait_until("return document.querySelector('#now-card .value').textContent === '2'")
        .await;
    click_and_wait(&browser, "#now-card").await;
    let live = read_api(&browser, "/v1/realtime?site=shop&limit=100").await;
    let keys: Vec<String> = live["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts(&browser, "#realtime li .key").await, keys);
    assert_eq!(browser.text_of("#realtime .big .value").await, "2");
    screenshots(&browser, "dashboard-realtime").await;

    browser.close().await;
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn details_export_csv_profiles_and_funnels_show_what_the_api_answers() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let (collector, browser) = start().await;

    // Goals: conversion rates as the API gives them.
    let goals = read_api(&browser, "/v1/breakdown?site=shop&dimension=event_name").await;
    let rates: Vec<String> = goals["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}%",
                (r["conversion_rate"].as_f64().unwrap() * 100.0).round()
            )
        })
        .collect();
    assert_eq!(
        rates,
        ["40%", "20%"],
        "signup: 2 of 5 visits, purchase: 1 of 5"
    );
    assert_eq!(texts(&browser, "#list-goals li .rate").await, rates);

    // The sources panel's details: every row, and its CSV.
    click_and_wait(&browser, "#list-sources a.details").await;
    let rows = read_api(
        &browser,
        "/v1/breakdown?site=shop&dimension=source&limit=100",
    )
    .await;
    let keys: Vec<String> = rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts(&browser, ".details-panel tbody tr th").await, keys);
    assert_eq!(
        texts(&browser, ".details-panel tbody td.visits").await,
        rows["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["visits"].to_string())
            .collect::<Vec<_>>()
    );
    browser
        .eval(
            "window.__csv = [];
             const make = URL.createObjectURL;
             URL.createObjectURL = (blob) => { blob.text().then(t => window.__csv.push(t)); return make(blob); };
             window.__csp = [];
             document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.effectiveDirective));
             return null",
        )
        .await;
    browser.click("#export").await;
    browser.wait_until("return window.__csv.length === 1").await;
    let csv = browser.eval("return window.__csv[0]").await;
    let expected = browser
        .eval_async(&format!(
            "const done = arguments[arguments.length - 1];
             fetch('/v1/breakdown?site=shop&dimension=source&limit=1000&format=csv',
                   {{headers: {{Authorization: 'Bearer {TOKEN}'}}}}).then(r => r.text()).then(done);"
        ))
        .await;
    assert_eq!(csv, expected);
    assert_eq!(
        browser.eval("return window.__csp").await,
        serde_json::json!([]),
        "the download breaks no policy"
    );
    assert!(
        csv.as_str().unwrap().starts_with("key,visits,visitors,"),
        "{csv}"
    );
    assert!(browser
        .text_of("#export-status")
        .await
        .contains("Exported 3 rows"));
    screenshots(&browser, "dashboard-details").await;

    // A visitor's profile from the sessions list: every visit.
    go(&browser, "#/sessions").await;
    let alice_link = format!("tr.session-row td.visitor a[href='#/visitors/{ALICE}']");
    click_and_wait(&browser, &alice_link).await;
    let profile = read_api(&browser, &format!("/v1/visitors/{ALICE}")).await;
    assert_eq!(profile["visits"], 2);
    for (fact, field) in [
        ("visits", "visits"),
        ("page_views", "page_views"),
        ("events", "events"),
    ] {
        assert_eq!(
            browser.text_of(&format!("[data-fact={fact}] dd")).await,
            profile[field].to_string(),
            "{fact}"
        );
    }
    let ids: Vec<String> = profile["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap().to_owned())
        .collect();
    let shown = browser
        .eval("return [...document.querySelectorAll('tr.session-row')].map(r => r.dataset.session)")
        .await;
    assert_eq!(shown, serde_json::json!(ids));
    assert_eq!(
        browser.text_of("[data-fact=user_ids] dd").await,
        "u-alice",
        "the user id the visitor identified as"
    );
    screenshots(&browser, "dashboard-profile").await;
    // Its user's profile, then a session's timeline from it.
    click_and_wait(&browser, "[data-fact=user_ids] a").await;
    let user = read_api(&browser, "/v1/users/u-alice").await;
    assert_eq!(
        browser.text_of("[data-fact=visits] dd").await,
        user["visits"].to_string()
    );
    assert_eq!(browser.text_of("[data-fact=visitor_ids] dd").await, ALICE);
    click_and_wait(&browser, "tr.session-row .when a").await;
    assert_eq!(
        browser.eval("return [...document.querySelectorAll('.timeline .event')].map(e => e.dataset.type)").await,
        serde_json::json!(["page_view"])
    );
    assert_eq!(browser.text_of(".fact a.person.user").await, "u-alice");

    // A funnel: the home page, signup, purchase.
    go(&browser, "#/funnels").await;
    let fill = |i: usize, kind: &'static str, value: &'static str| {
        format!(
            "const li = document.querySelectorAll('.steps .step')[{i}];
             li.querySelector('.kind').value = '{kind}';
             li.querySelector('.kind').dispatchEvent(new Event('change'));
             li.querySelector('.value').value = '{value}'; return null"
        )
    };
    browser.eval(&fill(0, "page", "/")).await;
    browser.eval(&fill(1, "event", "signup")).await;
    browser.click("#add-step").await;
    browser.eval(&fill(2, "event", "purchase")).await;
    click_and_wait(&browser, "#show-funnel").await;
    assert_eq!(
        view_hash(&browser).await,
        "#/funnels?step=page:/&step=event:signup&step=event:purchase"
    );
    let funnel = read_api(
        &browser,
        "/v1/funnel?site=shop&step=page:/&step=event:signup&step=event:purchase",
    )
    .await;
    let visits: Vec<String> = funnel["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| match s["visits"].as_u64() {
            Some(1) => "1 visit".to_owned(),
            n => format!("{} visits", n.unwrap()),
        })
        .collect();
    assert_eq!(visits, ["2 visits", "2 visits", "1 visit"]);
    assert_eq!(texts(&browser, "#funnel .visits").await, visits);
    assert_eq!(
        texts(&browser, "#funnel .drop").await,
        ["0 dropped (0%)", "1 dropped (50%)"]
    );
    // The definition survives a reload.
    browser.client.refresh().await.expect("reload");
    wait_drawn(&browser).await;
    assert_eq!(texts(&browser, "#funnel .visits").await, visits);
    assert_eq!(
        browser
            .eval("return document.querySelectorAll('.steps .step').length")
            .await,
        3
    );
    screenshots(&browser, "dashboard-funnel").await;

    browser.close().await;
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_view_fits_375_px_and_follows_dark_mode() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let (collector, browser) = start().await;
    let light = browser
        .eval("return getComputedStyle(document.body).backgroundColor")
        .await;
    browser
        .cdp(
            "Emulation.setEmulatedMedia",
            serde_json::json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
        )
        .await;
    let dark = browser
        .eval("return getComputedStyle(document.body).backgroundColor")
        .await;
    assert_eq!(light, "rgb(245, 246, 250)");
    assert_eq!(dark, "rgb(16, 19, 28)", "the dark palette");
    let panel = browser
        .eval("return getComputedStyle(document.querySelector('.panel')).backgroundColor")
        .await;
    assert_eq!(panel, "rgb(24, 28, 40)");
    go(&browser, "#/?filter=source:google.com").await;
    screenshots(&browser, "dashboard-dark").await;
    browser
        .cdp(
            "Emulation.setEmulatedMedia",
            serde_json::json!({"features": []}),
        )
        .await;

    // Every view at 375 px: no sideways scrolling (`screenshots` checks it).
    for (hash, name) in [
        ("#/", "dashboard-overview"),
        ("#/details/page", "dashboard-details-pages"),
        ("#/sessions", "dashboard-sessions-list"),
        (
            &format!("#/visitors/{BOB}") as &str,
            "dashboard-profile-bob",
        ),
        (
            "#/funnels?step=page:/&step=event:signup",
            "dashboard-funnel-short",
        ),
        ("#/realtime", "dashboard-realtime-only"),
    ] {
        go(&browser, hash).await;
        screenshots(&browser, name).await;
    }
    go(&browser, "#/sessions").await;
    click_and_wait(&browser, "tr.session-row .when a").await;
    screenshots(&browser, "dashboard-timeline").await;

    // The keyboard: Tab reaches a panel row and Enter filters by it.
    go(&browser, "#/").await;
    let before = drawn(&browser).await;
    browser
        .eval("document.querySelector('#list-sources li .key').focus(); return null")
        .await;
    browser
        .client
        .active_element()
        .await
        .expect("focused")
        .send_keys("\u{e007}")
        .await
        .expect("enter");
    wait_redrawn(&browser, before).await;
    assert_eq!(
        browser
            .eval("return document.querySelectorAll('#chips .chip').length")
            .await,
        1
    );

    browser.close().await;
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_pages_lead_to_the_dashboard_whose_prompt_says_where_the_token_is() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let collector = Collector::start_with_admin_token(TOKEN).await;
    let browser = Browser::start().await;
    for page in ["/", "/pricing.html", "/about.html", "/app/"] {
        browser
            .client
            .goto(&collector.url(page))
            .await
            .expect("open the demo page");
        browser.click("#to-dashboard").await;
        browser
            .wait_until("return location.pathname === '/dashboard/' && !document.querySelector('#login').hidden")
            .await;
        let hint = browser.text_of("#login .hint").await;
        assert!(
            hint.contains("cargo xtask demo") && hint.contains("Admin token"),
            "{page}: {hint}"
        );
    }
    browser.close().await;
    collector.stop().await;
}
