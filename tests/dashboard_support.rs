//! What the dashboard's end-to-end tests share: the token, opening and
//! logging in, reading the API from the page, posting batches, screenshots
//! at desktop and phone widths, and the data set of `dashboard_views.rs`.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use waymark_e2e::{root, Browser, Collector, Row};

pub const TOKEN: &str = "dashboard-test-token";
/// What a visitor's page may carry as its title, and in its URL.
pub const MARKUP: &str = "<img src=x onerror=alert(1)>";
pub const SCRIPT_PROP: &str = "<script>alert(2)</script>";

pub fn session_rows<'a>(rows: &'a [Row], session_id: &str) -> Vec<&'a Row> {
    rows.iter().filter(|r| r.session_id == session_id).collect()
}

/// `GET path` on the read API from the page, with the token; the JSON answer.
pub async fn read_api(browser: &Browser, path: &str) -> serde_json::Value {
    let answer = browser
        .eval_async(&format!(
            "const done = arguments[arguments.length - 1];
             fetch({path}, {{headers: {{Authorization: 'Bearer {TOKEN}'}}}})
               .then(r => r.json()).then(done, e => done({{error: String(e)}}));",
            path = serde_json::Value::from(path),
        ))
        .await;
    assert!(answer.get("error").is_none(), "{path}: {answer}");
    answer
}

/// Waits until the dashboard has drawn its current view.
pub async fn wait_drawn(browser: &Browser) {
    browser
        .wait_until("return document.querySelector('#view').dataset.state === 'ready'")
        .await;
}

/// What the page did with the markup: alerts raised, images and scripts made.
pub async fn assert_no_markup_ran(browser: &Browser) {
    let seen = browser
        .eval(
            "return {alerts: window.alerts, imgs: document.querySelectorAll('img').length,
                     scripts: document.querySelectorAll('script').length}",
        )
        .await;
    assert_eq!(
        seen,
        serde_json::json!({"alerts": [], "imgs": 0, "scripts": 1}),
        "visitor data was run as markup"
    );
}

pub const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// `POST /v1/batch` as a server would send it (no `Origin`), with `user_agent`;
/// the response's status code.
pub async fn post_batch(collector: &Collector, body: &str, user_agent: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(collector.addr)
        .await
        .expect("connect");
    let request = format!(
        "POST /v1/batch HTTP/1.1\r\nHost: {}\r\nUser-Agent: {user_agent}\r\n\
         Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        collector.addr,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("answer");
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"))
}

/// Picks `site` in the site field, as a person would: types it and presses
/// Enter.
pub async fn pick_site(browser: &Browser, site: &str) {
    browser
        .client
        .find(fantoccini::Locator::Css("#site"))
        .await
        .expect("site field")
        .send_keys(&format!("{site}\u{e007}"))
        .await
        .expect("type the site");
}

/// Opens `/dashboard/` with the alert recorder in place and gives it the token.
pub async fn open_dashboard(browser: &Browser, collector: &Collector) {
    open_dashboard_with(
        browser,
        collector,
        "window.alerts = []; window.alert = (m) => window.alerts.push(String(m)); return null",
    )
    .await;
}

/// Opens `/dashboard/`, runs `recorder` (a script that installs what the
/// test records), then logs in with the token and waits for the overview.
pub async fn open_dashboard_with(browser: &Browser, collector: &Collector, recorder: &str) {
    browser
        .client
        .goto(&collector.url("/dashboard/"))
        .await
        .expect("open the dashboard");
    browser.eval(recorder).await;
    browser
        .wait_until("return !document.querySelector('#login').hidden")
        .await;
    browser
        .client
        .find(fantoccini::Locator::Css("#token"))
        .await
        .expect("token field")
        .send_keys(TOKEN)
        .await
        .expect("type");
    browser.click("#login-form button[type=submit]").await;
    wait_drawn(browser).await;
}

pub async fn screenshot(browser: &Browser, name: &str) {
    let png = browser.client.screenshot().await.expect("screenshot");
    let dir = root().join("tests/output");
    std::fs::create_dir_all(&dir).expect("tests/output");
    std::fs::write(dir.join(name), png).expect("write screenshot");
}

/// Opens `/dashboard/`, records every uncaught error, unhandled rejection
/// and Content-Security-Policy violation from then on (in
/// `window.__trouble`), and gives it the token.
pub async fn open_dashboard_recording_trouble(browser: &Browser, collector: &Collector) {
    open_dashboard_with(
        browser,
        collector,
        "const t = window.__trouble = [];
             window.addEventListener('error', (e) => t.push('error: ' + e.message));
             window.addEventListener('unhandledrejection', (e) => t.push('rejection: ' + e.reason));
             document.addEventListener('securitypolicyviolation', (e) =>
               t.push('csp: ' + e.effectiveDirective + ' ' + e.blockedURI));
             return null",
    )
    .await;
}

/// The number of the view the dashboard drew last (0 before the first).
pub async fn drawn(browser: &Browser) -> u64 {
    browser
        .eval("return +(document.querySelector('#view').dataset.drawn || 0)")
        .await
        .as_u64()
        .expect("a number")
}

/// Waits until the dashboard has drawn a view newer than `after`.
pub async fn wait_redrawn(browser: &Browser, after: u64) {
    browser
        .wait_until(&format!(
            "const v = document.querySelector('#view');
             return v.dataset.state === 'ready' && +(v.dataset.drawn || 0) > {after}"
        ))
        .await;
}

/// Clicks `selector` and waits for the view it leads to.
pub async fn click_and_wait(browser: &Browser, selector: &str) {
    let before = drawn(browser).await;
    browser.click(selector).await;
    wait_redrawn(browser, before).await;
}

/// Sets the hash to `hash` and waits for the view it leads to.
pub async fn go(browser: &Browser, hash: &str) {
    let before = drawn(browser).await;
    browser
        .eval(&format!(
            "location.hash = {}; return null",
            serde_json::Value::from(hash)
        ))
        .await;
    wait_redrawn(browser, before).await;
}

/// The page's viewport as a phone (`width` 375) or a desktop (1440), through
/// Chrome's device emulation; waits for the redraw a width change causes.
pub async fn viewport(browser: &Browser, width: u32) {
    let before = drawn(browser).await;
    let redraws = browser
        .eval(&format!(
            "return document.body.dataset.view === 'overview' && window.innerWidth !== {width}"
        ))
        .await
        == true;
    browser
        .cdp(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({"width": width, "height": if width < 600 { 812 } else { 1000 },
                "deviceScaleFactor": 1, "mobile": width < 600}),
        )
        .await;
    if redraws {
        // The chart is drawn for the width: the overview draws again.
        wait_redrawn(browser, before).await;
    }
    wait_drawn(browser).await;
}

/// Screenshots of the current view at 1440 px and 375 px wide:
/// `tests/output/<name>-desktop.png` and `<name>-mobile.png`; at 375 px the
/// page must not scroll sideways. Leaves the desktop width.
pub async fn screenshots(browser: &Browser, name: &str) {
    viewport(browser, 1440).await;
    screenshot(browser, &format!("{name}-desktop.png")).await;
    viewport(browser, 375).await;
    let wide = browser
        .eval("return document.documentElement.scrollWidth")
        .await;
    assert!(
        wide.as_u64().is_some_and(|w| w <= 375),
        "{name}: the page is {wide} px wide at 375 px"
    );
    screenshot(browser, &format!("{name}-mobile.png")).await;
    viewport(browser, 1440).await;
}

pub const IPHONE: &str =
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
     (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
pub const ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 \
     (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36";

/// Alice's visitor id (two visits, the second identified as `u-alice`).
pub const ALICE: &str = "0190c0de-0000-7000-a000-00000000a11c";
/// A visitor on an iPhone from google.com who signs up and buys.
pub const BOB: &str = "0190c0de-0000-7000-a000-000000000b0b";

/// The data set of the dashboard's views, site `shop`, sent by ordinary
/// browsers (no bots). This week: Alice (Firefox, desktop; from google.com
/// to `/pricing` and `signup`, then, a day later and identified as
/// `u-alice`, `/pricing` directly), Bob (iPhone; from google.com: `/`,
/// `/checkout`, `signup`, `purchase`), Carol (Android; from Hacker News to
/// `/blog`), Dave (Firefox; `/pricing` a minute ago: the one visitor now).
/// The week before: two visits (`/`; `/` and `/pricing`).
pub async fn seed(collector: &Collector) {
    let now = waymark_e2e::now_ms();
    let mut n = 0;
    let mut event = |session: u32, visitor: &str, ts: u64, kind: &str, path: &str| {
        n += 1;
        serde_json::json!({
            "event_id": format!("0190c0de-0000-7000-8000-{n:012x}"),
            "type": kind, "ts": ts, "seq": n,
            "session_id": format!("0190c0de-0000-7000-9000-{session:012x}"),
            "visitor_id": visitor, "session_index": 1,
            "url": format!("https://shop.example{path}"), "title": format!("Shop {path}"),
        })
    };
    let hour = 3_600_000;
    let day = 24 * hour;
    let google = "/?utm_source=google.com&utm_medium=cpc&utm_campaign=spring";
    let named = |mut e: serde_json::Value, name: &str| {
        e["name"] = name.into();
        e
    };
    let with = |mut e: serde_json::Value, key: &str, value: &str| {
        e[key] = value.into();
        e
    };
    let firefox = vec![
        event(1, ALICE, now - 2 * hour, "page_view", google),
        event(1, ALICE, now - 2 * hour + 20_000, "page_view", "/pricing"),
        named(
            event(1, ALICE, now - 2 * hour + 30_000, "custom", "/pricing"),
            "signup",
        ),
        with(
            event(2, ALICE, now - day - hour, "page_view", "/pricing"),
            "user_id",
            "u-alice",
        ),
        event(
            5,
            "0190c0de-0000-7000-a000-00000000da7e",
            now - 60_000,
            "page_view",
            "/pricing",
        ),
        event(
            6,
            "0190c0de-0000-7000-a000-00000000000e",
            now - 9 * day,
            "page_view",
            "/",
        ),
        event(
            7,
            "0190c0de-0000-7000-a000-00000000000f",
            now - 10 * day,
            "page_view",
            "/",
        ),
        event(
            7,
            "0190c0de-0000-7000-a000-00000000000f",
            now - 10 * day + 40_000,
            "page_view",
            "/pricing",
        ),
    ];
    let iphone = vec![
        event(3, BOB, now - 3 * hour, "page_view", google),
        event(3, BOB, now - 3 * hour + 15_000, "page_view", "/checkout"),
        named(
            event(3, BOB, now - 3 * hour + 25_000, "custom", "/checkout"),
            "signup",
        ),
        named(
            event(3, BOB, now - 3 * hour + 45_000, "custom", "/checkout"),
            "purchase",
        ),
    ];
    let android = vec![with(
        event(
            4,
            "0190c0de-0000-7000-a000-0000000ca201",
            now - 5 * hour,
            "page_view",
            "/blog",
        ),
        "referrer",
        "https://news.ycombinator.com/item?id=1",
    )];
    for (events, agent) in [(firefox, FIREFOX), (iphone, IPHONE), (android, ANDROID)] {
        let batch = serde_json::json!({"v": 1, "site": "shop", "sent_at": now, "events": events});
        assert_eq!(post_batch(collector, &batch.to_string(), agent).await, 200);
    }
    collector
        // The sweeper adds a `visit_ended` to each idle visit meanwhile.
        .wait_for("the data set", |rows| sent(rows) == 13)
        .await;
}

/// The events sent (not the `visit_ended` the collector adds to idle visits).
pub fn sent(rows: &[Row]) -> usize {
    rows.iter().filter(|r| r.kind != "visit_ended").count()
}

/// A screenshot of the current view `width` × `height` px (the README's):
/// `tests/output/<name>`. Leaves the page 1440 px wide.
pub async fn tall_screenshot(browser: &Browser, name: &str, width: u32, height: u32) {
    let before = drawn(browser).await;
    browser
        .cdp(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
    if width != 1440 {
        wait_redrawn(browser, before).await;
    }
    browser
        .eval("window.scrollTo(0, 0); document.activeElement.blur(); return null")
        .await;
    // The pointer off the chart, so no bucket shows its hover.
    browser
        .cdp(
            "Input.dispatchMouseEvent",
            serde_json::json!({"type": "mouseMoved", "x": 0, "y": 0}),
        )
        .await;
    screenshot(browser, name).await;
    viewport(browser, 1440).await;
}
