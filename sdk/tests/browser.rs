//! The browser shell against real browser APIs (`wasm-pack test --headless
//! --chrome sdk`): real localStorage, a storage that throws, sendBeacon and
//! its fetch fallback. Network calls are intercepted in the page, so nothing
//! leaves the browser.

#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use js_sys::{Array, Function, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;
use waymark_sdk::init;
use waymark_sdk_core::Session;

wasm_bindgen_test_configure!(run_in_browser);

/// Runs JavaScript in the test page (test-only; the SDK itself never evals).
fn js(body: &str) -> JsValue {
    Function::new_no_args(body).call0(&JsValue::NULL).unwrap()
}

fn config(site: &str) -> JsValue {
    let c = js_sys::Object::new();
    Reflect::set(&c, &"endpoint".into(), &"http://127.0.0.1:9/".into()).unwrap();
    Reflect::set(&c, &"site".into(), &site.into()).unwrap();
    c.into()
}

/// Replaces `navigator.sendBeacon` with a recorder that answers `accept`,
/// and `fetch` with one that answers `window.__status` (200 unless a test
/// changes it; `0` rejects like a network error, `-1` never answers).
fn record_beacons(accept: bool) {
    js(&format!(
        "window.__beacons = []; window.__fetches = []; window.__status = 200; window.__retryAfter = null; window.__answer = '{{}}';
         navigator.sendBeacon = function (url, body) {{ if (!{accept}) return false; __beacons.push([url, body]); return true; }};
         window.fetch = function (url, init) {{
           __fetches.push([url, init.body, init.keepalive, init.method]);
           if (__status === 0) return Promise.reject(new TypeError('offline'));
           if (__status === -1) return new Promise(function () {{}});
           var headers = __retryAfter === null ? {{}} : {{'Retry-After': String(__retryAfter)}};
           return Promise.resolve(new Response(__answer, {{status: __status, headers: headers}}));
         }};"
    ));
}

/// Every request body sent, by beacon or fetch, in order of each kind.
fn sent() -> Vec<(String, serde_json::Value)> {
    let mut all = recorded("__beacons");
    all.extend(recorded("__fetches"));
    all
}

fn recorded(name: &str) -> Vec<(String, serde_json::Value)> {
    let list: Array = js(&format!("return window.{name}")).unchecked_into();
    list.iter()
        .map(|entry| {
            let entry: Array = entry.unchecked_into();
            let body = entry.get(1).as_string().unwrap();
            (
                entry.get(0).as_string().unwrap(),
                serde_json::from_str(&body).unwrap(),
            )
        })
        .collect()
}

fn stored_session(site: &str) -> Option<Session> {
    let record = js(&format!(
        "return localStorage.getItem('waymark.{site}.session')"
    ))
    .as_string()?;
    Session::decode(&record)
}

#[wasm_bindgen_test]
fn init_keeps_the_session_in_local_storage_and_beacons_a_page_view() {
    record_beacons(true);
    let tracker = init(config("t-local"));
    let session = stored_session("t-local").expect("a session record in localStorage");
    assert_eq!(tracker.session_id(), Some(session.session_id.clone()));
    assert_eq!(tracker.visitor_id(), Some(session.visitor_id.clone()));
    assert_eq!(tracker.storage_kind(), "local");

    tracker.flush();
    let beacons = sent();
    assert_eq!(beacons.len(), 1);
    let (url, batch) = &beacons[0];
    assert_eq!(url, "http://127.0.0.1:9/v1/batch");
    assert_eq!(batch["site"], "t-local");
    assert!(batch["sent_at"].as_u64().is_some());
    let view = &batch["events"][0];
    assert_eq!(view["type"], "page_view");
    assert_eq!(view["session_id"], session.session_id.as_str());
    assert_eq!(view["visitor_id"], session.visitor_id.as_str());
    assert_eq!(
        view["url"].as_str(),
        js("return location.href").as_string().as_deref()
    );
    assert!(view["context"]["user_agent"].as_str().is_some());
    uuid_v7(view["event_id"].as_str().unwrap());

    // A second tracker on the same storage (a reload) continues the session.
    let reloaded = init(config("t-local"));
    assert_eq!(reloaded.session_id(), Some(session.session_id));
}

fn uuid_v7(id: &str) {
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(&id[14..15], "7", "{id}");
}

/// Makes `localStorage.setItem` throw (a full quota) while `f` runs.
fn with_throwing_local_storage(f: impl FnOnce()) {
    js("window.__setItem = Storage.prototype.setItem;
        Storage.prototype.setItem = function () { throw new DOMException('full', 'QuotaExceededError'); };");
    f();
    js("Storage.prototype.setItem = window.__setItem;");
}

#[wasm_bindgen_test]
fn a_storage_that_throws_falls_back_to_a_cookie_without_throwing() {
    record_beacons(true);
    let mut tracker = None;
    with_throwing_local_storage(|| {
        let t = init(config("t-throws"));
        t.track("after_failure".into(), JsValue::UNDEFINED);
        tracker = Some(t);
    });
    let tracker = tracker.unwrap();
    assert_eq!(tracker.storage_kind(), "cookie");
    let session = tracker.session_id().expect("a session in the cookie");
    let cookie = js("return document.cookie").as_string().unwrap();
    assert!(cookie.contains("waymark.t-throws.session=1%7C"), "{cookie}");
    assert!(cookie.contains(&session));
    tracker.flush();
    let events = sent()[0].1["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 2);
    assert!(events
        .iter()
        .all(|e| e["session_id"] == session.as_str() && e["storage"] == "cookie"));
    assert_eq!(stored_session("t-throws"), None, "nothing in localStorage");
    // A reload finds the session in the cookie.
    let mut again = None;
    with_throwing_local_storage(|| again = Some(init(config("t-throws"))));
    assert_eq!(again.unwrap().session_id(), Some(session));
    js("document.cookie = 'waymark.t-throws.session=; Path=/; Max-Age=0'");
}

#[wasm_bindgen_test]
fn without_local_storage_or_cookies_the_session_lives_in_memory() {
    record_beacons(true);
    js("Object.defineProperty(document, 'cookie', {get: function () { return ''; }, set: function () {}, configurable: true});");
    let mut tracker = None;
    with_throwing_local_storage(|| tracker = Some(init(config("t-memory"))));
    js("delete document.cookie;");
    let tracker = tracker.unwrap();
    assert_eq!(tracker.storage_kind(), "memory");
    let session = tracker.session_id().expect("a session in memory");
    tracker.track("still_counted".into(), JsValue::UNDEFINED);
    tracker.flush();
    let events = sent()[0].1["events"].as_array().unwrap().clone();
    assert!(events
        .iter()
        .all(|e| e["session_id"] == session.as_str() && e["storage"] == "memory"));
}

#[wasm_bindgen_test]
fn leaving_the_page_beacons_and_a_refused_beacon_falls_back_to_fetch() {
    record_beacons(true);
    let tracker = init(config("t-leave"));
    js("window.dispatchEvent(new Event('pagehide'));");
    let beacons = recorded("__beacons");
    assert_eq!(beacons.len(), 1, "pagehide sends at once, by beacon");
    let kinds: Vec<_> = beacons[0].1["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(kinds, ["page_view", "page_leave"]);
    drop(tracker);

    record_beacons(false);
    let tracker = init(config("t-fetch"));
    js("window.dispatchEvent(new Event('pagehide'));");
    let fetches: Array = js("return window.__fetches").unchecked_into();
    assert_eq!(fetches.length(), 1);
    let call: Array = fetches.get(0).unchecked_into();
    assert_eq!(
        call.get(0).as_string().as_deref(),
        Some("http://127.0.0.1:9/v1/batch")
    );
    assert_eq!(call.get(2), JsValue::TRUE, "keepalive");
    assert_eq!(call.get(3).as_string().as_deref(), Some("POST"));
    let batch: serde_json::Value = serde_json::from_str(&call.get(1).as_string().unwrap()).unwrap();
    assert_eq!(batch["events"][0]["type"], "page_view");
    drop(tracker);
}

#[wasm_bindgen_test]
fn bad_arguments_and_props_never_throw_into_the_page() {
    record_beacons(true);
    let tracker = init(config("t-args"));
    let cyclic = js("var o = {a: 1}; o.self = o; return o;");
    tracker.track(JsValue::from_f64(3.0), JsValue::UNDEFINED);
    tracker.track("with_cycle".into(), cyclic);
    tracker.track("with_function".into(), js("return {f: function () {}}"));
    tracker.identify(JsValue::NULL, JsValue::NULL);
    tracker.track("ok".into(), js("return {plan: 'pro', n: 2}"));
    tracker.flush();
    let events = sent()[0].1["events"].as_array().unwrap().clone();
    let names: Vec<_> = events
        .iter()
        .map(|e| e["name"].as_str().unwrap_or(e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(names, ["page_view", "with_cycle", "with_function", "ok"]);
    assert_eq!(events[1].get("props"), None, "cyclic props are dropped");
    assert_eq!(
        events[3]["props"],
        serde_json::json!({"plan": "pro", "n": 2})
    );
}

#[wasm_bindgen_test]
fn opt_out_sends_nothing_and_is_remembered() {
    record_beacons(true);
    let tracker = init(config("t-optout"));
    tracker.opt_out();
    tracker.track("hidden".into(), JsValue::UNDEFINED);
    tracker.flush();
    assert!(sent().is_empty());
    let later = init(config("t-optout"));
    later.flush();
    assert!(sent().is_empty(), "the opt-out survives a reload");
    later.opt_in();
    later.track("visible".into(), JsValue::UNDEFINED);
    later.flush();
    assert_eq!(sent().len(), 1);
}

fn config_with(site: &str, extra: &[(&str, JsValue)]) -> JsValue {
    let c = config(site);
    for (k, v) in extra {
        Reflect::set(&c, &(*k).into(), v).unwrap();
    }
    c
}

/// Every event beaconed so far, flattened.
fn sent_events() -> Vec<serde_json::Value> {
    sent()
        .into_iter()
        .flat_map(|(_, b)| b["events"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn summary(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let path = e["url"]
                .as_str()
                .unwrap_or("")
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_owned();
            format!("{} {}", e["type"].as_str().unwrap_or(""), path)
        })
        .collect()
}

/// Appends HTML to the test page and returns the element with `id`.
fn mount(html: &str, id: &str) -> web_sys::HtmlElement {
    let doc = web_sys::window().unwrap().document().unwrap();
    let host = doc.create_element("div").unwrap();
    host.set_inner_html(html);
    doc.body().unwrap().append_child(&host).unwrap();
    doc.get_element_by_id(id).unwrap().unchecked_into()
}

#[wasm_bindgen_test]
fn history_navigations_are_page_views_once_per_url() {
    record_beacons(true);
    let start = js("return location.pathname + location.search")
        .as_string()
        .unwrap();
    let tracker = init(config("t-spa"));
    js("history.pushState({}, '', 'route-a');");
    js("history.replaceState({}, '', 'route-a');"); // same URL: nothing
    js("history.replaceState({}, '', 'route-b');");
    js("location.hash = 'section';");
    tracker.flush();
    js(&format!("history.replaceState({{}}, '', '{start}');"));
    let events = sent_events();
    let names = summary(&events);
    assert_eq!(
        names.iter().filter(|n| n.starts_with("page_view")).count(),
        4,
        "load, route-a, route-b, #section: {names:?}"
    );
    assert!(
        names.contains(&"page_view route-a".to_owned())
            && names.contains(&"page_view route-b".to_owned()),
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| n.starts_with("page_leave")).count(),
        3,
        "{names:?}"
    );
    let b = events
        .iter()
        .find(|e| e["type"] == "page_view" && e["url"].as_str().unwrap().ends_with("route-b"))
        .unwrap();
    assert!(
        b["referrer"].as_str().unwrap().ends_with("route-a"),
        "the previous in-app URL is the referrer"
    );
}

#[wasm_bindgen_test]
fn clicks_are_described_without_values_and_ignored_where_asked() {
    record_beacons(true);
    let tracker = init(config("t-clicks"));
    mount(
        r#"<a id="t-out" href="https://elsewhere.example/x?token=s" onclick="event.preventDefault()"><span id="t-inner">Leave</span></a>
           <button id="t-buy" class="btn" data-waymark-event="buy" data-waymark-plan="pro">Buy  now</button>
           <input id="t-pw" type="password" value="hunter2">
           <input id="t-submit" type="submit" value="Send hunter2">
           <div data-waymark-ignore><button id="t-hidden">Hidden</button></div>
           <p id="t-text">plain text</p>"#,
        "t-out",
    );
    let doc = web_sys::window().unwrap().document().unwrap();
    for id in ["t-inner", "t-buy", "t-pw", "t-submit", "t-hidden", "t-text"] {
        doc.get_element_by_id(id)
            .unwrap()
            .unchecked_into::<web_sys::HtmlElement>()
            .click();
    }
    tracker.flush();
    let clicks: Vec<_> = sent_events()
        .into_iter()
        .filter(|e| e["type"] == "click")
        .collect();
    let selectors: Vec<_> = clicks
        .iter()
        .map(|c| c["props"]["selector"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        clicks.len(),
        3,
        "link (via its child), button, submit input: {selectors:?}"
    );
    assert_eq!(clicks[0]["props"]["tag"], "a");
    assert_eq!(clicks[0]["props"]["text"], "Leave");
    assert_eq!(clicks[0]["props"]["outbound"], true);
    assert_eq!(clicks[0]["props"]["href"], "https://elsewhere.example/x");
    assert_eq!(clicks[1]["name"], "buy");
    assert_eq!(clicks[1]["props"]["plan"], "pro");
    assert_eq!(clicks[1]["props"]["text"], "Buy now");
    assert_eq!(
        clicks[2]["props"]["selector"]
            .as_str()
            .map(|s| s.ends_with("input#t-submit")),
        Some(true)
    );
    let all = serde_json::to_string(&sent_events()).unwrap();
    assert!(
        !all.contains("hunter2") && !all.contains("Hidden") && !all.contains("token=s"),
        "{all}"
    );
}

#[wasm_bindgen_test]
fn autocapture_off_records_only_what_the_page_asks_for() {
    record_beacons(true);
    let tracker = init(config_with("t-manual", &[("autocapture", JsValue::FALSE)]));
    mount(
        r#"<button id="t-manual-btn">Press</button>"#,
        "t-manual-btn",
    )
    .click();
    tracker.track("by_hand".into(), JsValue::UNDEFINED);
    tracker.flush();
    assert_eq!(
        summary(&sent_events())
            .iter()
            .map(|s| s.split(' ').next().unwrap().to_owned())
            .collect::<Vec<_>>(),
        ["custom"]
    );

    record_beacons(true);
    let clicks_only = init(config_with(
        "t-noviews",
        &[("capturePageViews", JsValue::FALSE)],
    ));
    mount(
        r#"<button id="t-noviews-btn">Press</button>"#,
        "t-noviews-btn",
    )
    .click();
    clicks_only.flush();
    let kinds: Vec<_> = sent_events()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["click"]);
}

/// With `signal_on` run (and `signal_off` after), a tracker that respects
/// DNT stores and sends nothing for `site`, while one that does not
/// (`<site>-ignored`) sends.
fn assert_privacy_signal_honoured(site: &str, signal_on: &str, signal_off: &str) {
    record_beacons(true);
    js(signal_on);
    let honouring = init(config_with(site, &[("respectDnt", JsValue::TRUE)]));
    honouring.track("x".into(), JsValue::UNDEFINED);
    honouring.flush();
    let ignored = format!("{site}-ignored");
    let ignoring = init(config(&ignored));
    ignoring.flush();
    js(signal_off);
    assert_eq!(honouring.session_id(), None);
    assert_eq!(stored_session(site), None, "nothing stored");
    let sites: Vec<_> = sent()
        .iter()
        .map(|(_, b)| b["site"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        sites,
        [ignored],
        "only the tracker that does not respect DNT/GPC sends"
    );
}

#[wasm_bindgen_test]
fn do_not_track_is_honoured_when_asked() {
    assert_privacy_signal_honoured(
        "t-dnt",
        "Object.defineProperty(navigator, 'doNotTrack', {get: function () { return '1'; }, configurable: true});",
        "delete navigator.doNotTrack;",
    );
}

/// Neither `navigator.doNotTrack` nor `window.doNotTrack` says yes, so a
/// test about Global Privacy Control alone really is about GPC alone.
fn assert_dnt_unset() {
    assert_eq!(
        js("var y = function (v) { return v === '1' || v === 'yes'; };
            return y(navigator.doNotTrack) || y(window.doNotTrack);"),
        JsValue::FALSE,
        "DNT must be unset for this test"
    );
}

#[wasm_bindgen_test]
fn global_privacy_control_alone_is_honoured_when_asked() {
    assert_dnt_unset();
    assert_privacy_signal_honoured(
        "t-gpc",
        "Object.defineProperty(navigator, 'globalPrivacyControl', {value: true, configurable: true});",
        "delete navigator.globalPrivacyControl;",
    );
}

#[wasm_bindgen_test]
fn respecting_dnt_still_tracks_without_dnt_or_gpc() {
    // GPC false, then GPC absent (the browser does not implement it).
    for (site, gpc) in [("t-gpc-false", Some(false)), ("t-gpc-unset", None)] {
        record_beacons(true);
        assert_dnt_unset();
        if let Some(value) = gpc {
            js(&format!(
                "Object.defineProperty(navigator, 'globalPrivacyControl', {{value: {value}, configurable: true}});"
            ));
        }
        let tracker = init(config_with(site, &[("respectDnt", JsValue::TRUE)]));
        tracker.track("x".into(), JsValue::UNDEFINED);
        tracker.flush();
        js("delete navigator.globalPrivacyControl;");
        assert!(tracker.session_id().is_some(), "{site}: a session");
        assert!(stored_session(site).is_some(), "{site}: a stored session");
        let kinds: Vec<_> = sent()
            .iter()
            .flat_map(|(_, b)| {
                assert_eq!(b["site"], site);
                b["events"].as_array().cloned().unwrap_or_default()
            })
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kinds, ["page_view", "custom"], "{site}: both events sent");
    }
}

#[wasm_bindgen_test]
fn consent_mode_stores_and_sends_nothing_until_granted() {
    record_beacons(true);
    let tracker = init(config_with(
        "t-consent",
        &[("requireConsent", JsValue::TRUE)],
    ));
    tracker.track("before_consent".into(), JsValue::UNDEFINED);
    tracker.flush();
    assert!(sent().is_empty());
    assert_eq!(stored_session("t-consent"), None);
    assert!(!js("return document.cookie")
        .as_string()
        .unwrap()
        .contains("t-consent"));
    tracker.consent(JsValue::TRUE);
    tracker.flush();
    let names = summary(&sent_events());
    assert_eq!(names.len(), 2, "the held page view and event: {names:?}");
    assert!(stored_session("t-consent").is_some());

    record_beacons(true);
    let refused = init(config_with(
        "t-refused",
        &[("requireConsent", JsValue::TRUE)],
    ));
    refused.consent(JsValue::FALSE);
    refused.track("after_refusal".into(), JsValue::UNDEFINED);
    refused.flush();
    assert!(sent().is_empty());
    assert_eq!(stored_session("t-refused"), None);
}

#[wasm_bindgen_test]
fn sensitive_parameters_are_configurable() {
    record_beacons(true);
    js("history.replaceState({}, '', location.pathname + '?plan=pro&token=t&keep=1');");
    let tracker = init(config_with(
        "t-params",
        &[("sensitiveParams", "plan, keepnothing".into())],
    ));
    tracker.flush();
    js("history.replaceState({}, '', location.pathname);");
    let url = sent_events()[0]["url"].as_str().unwrap().to_owned();
    assert!(
        url.ends_with("?token=t&keep=1"),
        "only the configured words are removed: {url}"
    );
}

#[wasm_bindgen_test]
fn an_email_in_a_campaign_parameter_leaves_neither_url_nor_context() {
    record_beacons(true);
    js("history.replaceState({}, '', location.pathname + '?utm_source=news&utm_content=jane%40example.com');");
    let tracker = init(config_with("t-campaign", &[]));
    tracker.flush();
    js("history.replaceState({}, '', location.pathname);");
    let view = &sent_events()[0];
    assert!(
        view["url"].as_str().unwrap().ends_with("?utm_source=news"),
        "{view}"
    );
    assert_eq!(
        view["context"]["campaign"],
        serde_json::json!({"utm_source": "news"}),
        "{view}"
    );
}

/// The time zone is read from `Temporal` where the browser has it: the
/// start builds no `Intl.DateTimeFormat`, whose first one in a page took
/// 20–46 ms here, half of the start. Without `Temporal`, from the date format.
#[wasm_bindgen_test]
fn the_time_zone_comes_from_temporal_without_a_date_format() {
    assert_eq!(
        js("return typeof Temporal").as_string().as_deref(),
        Some("object"),
        "the test browser has Temporal"
    );
    let zone = js("return Intl.DateTimeFormat().resolvedOptions().timeZone")
        .as_string()
        .unwrap();
    js("window.__dateFormat = Intl.DateTimeFormat; window.__dateFormats = 0;
        Intl.DateTimeFormat = function () { __dateFormats++; return Reflect.construct(__dateFormat, arguments); };");
    let zone_of_start = |site: &str| {
        record_beacons(true);
        js("window.__dateFormats = 0;");
        init(config_with(site, &[])).flush();
        let view = &sent_events()[0];
        let built = js("return __dateFormats").as_f64().unwrap();
        (
            view["context"]["time_zone"].as_str().map(str::to_owned),
            built,
        )
    };
    let with_temporal = zone_of_start("t-zone");
    js("window.__temporal = Temporal; delete globalThis.Temporal;");
    let without = zone_of_start("t-zone-old");
    js("globalThis.Temporal = window.__temporal; Intl.DateTimeFormat = window.__dateFormat;");
    assert_eq!(with_temporal, (Some(zone.clone()), 0.0));
    assert_eq!(without, (Some(zone), 1.0));
}

/// Waits `ms` milliseconds of real time, letting timers and promises run.
async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .unwrap();
    });
    wasm_bindgen_futures::JsFuture::from(promise).await.unwrap();
}

fn fetched_event_ids() -> Vec<Vec<String>> {
    recorded("__fetches")
        .iter()
        .map(|(_, b)| {
            b["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["event_id"].as_str().unwrap().to_owned())
                .collect()
        })
        .collect()
}

#[wasm_bindgen_test]
async fn server_errors_are_retried_with_backoff_and_retry_after() {
    record_beacons(true);
    js("window.__status = 503; window.__retryAfter = 1;");
    let tracker = init(config("t-retry"));
    tracker.flush();
    sleep(50).await;
    assert_eq!(fetched_event_ids().len(), 1);
    sleep(700).await;
    assert_eq!(fetched_event_ids().len(), 1, "not before Retry-After (1 s)");
    js("window.__status = 200; window.__retryAfter = null;");
    sleep(1_000).await;
    let attempts = fetched_event_ids();
    assert_eq!(attempts.len(), 2, "retried once the wait was over");
    assert_eq!(attempts[0], attempts[1], "the same events, same ids");
    sleep(100).await;
    let leftovers = js("return Object.keys(localStorage).filter(function (k) { return k.indexOf('waymark.t-retry.queue.') === 0; }).length");
    assert_eq!(
        leftovers.as_f64(),
        Some(0.0),
        "acknowledged events leave storage"
    );
    drop(tracker);
}

#[wasm_bindgen_test]
async fn a_refusal_drops_the_batch_for_good() {
    record_beacons(true);
    js("window.__status = 400;");
    let tracker = init(config("t-refused-batch"));
    tracker.flush();
    sleep(1_500).await;
    assert_eq!(fetched_event_ids().len(), 1, "a 4xx is never retried");
    js("window.__status = 200;");
    tracker.track("later".into(), JsValue::UNDEFINED);
    tracker.flush();
    sleep(50).await;
    let attempts = fetched_event_ids();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1].len(), 1, "only the new event");
    drop(tracker);
}

#[wasm_bindgen_test]
async fn events_the_collector_rejects_one_by_one_are_counted_and_warned_about() {
    record_beacons(false);
    js("window.__warned = []; window.__warn = console.warn;
        console.warn = function () { __warned.push([].join.call(arguments, ' ')); };
        window.__answer = JSON.stringify({accepted: 1, duplicates: 0,
          rejected: [{index: 1, reason: 'url: longer than 2048 characters'}]});");
    let tracker = init(config("t-rejected"));
    tracker.track("second".into(), JsValue::UNDEFINED);
    tracker.flush();
    sleep(50).await;
    assert_eq!(fetched_event_ids()[0].len(), 2);
    assert_eq!(
        tracker.refused_events(),
        1.0,
        "a 200 with a rejection is no delivery"
    );
    tracker.track("third".into(), JsValue::UNDEFINED);
    tracker.flush();
    sleep(50).await;
    assert_eq!(tracker.refused_events(), 2.0);
    let warned: Vec<String> = Array::from(&js("console.warn = window.__warn; return __warned"))
        .iter()
        .filter_map(|w| w.as_string())
        .filter(|w| w.contains("refused"))
        .collect();
    assert_eq!(warned.len(), 1, "one warning, however many: {warned:?}");
    js("window.__answer = '{}';");
    drop(tracker);
}

#[wasm_bindgen_test]
async fn events_survive_a_failed_send_and_a_reload() {
    record_beacons(true);
    js("window.__status = 0;"); // network down
    let first = init(config("t-persist"));
    first.track("while_down".into(), JsValue::UNDEFINED);
    first.flush();
    sleep(50).await;
    let lost_ids = fetched_event_ids().remove(0);
    drop(first); // the page goes away with the events unsent
    js("window.__status = 200; window.__fetches = [];");
    let reloaded = init(config("t-persist"));
    reloaded.flush();
    sleep(50).await;
    let ids = fetched_event_ids().remove(0);
    assert_eq!(
        &ids[..lost_ids.len()],
        &lost_ids[..],
        "the earlier events go first: {ids:?}"
    );
    assert_eq!(ids.len(), lost_ids.len() + 1, "then the new page view");
    drop(reloaded);
}

#[wasm_bindgen_test]
async fn a_stalled_request_does_not_lose_events_when_the_page_is_left() {
    record_beacons(true);
    js("window.__status = -1;"); // never answers
    let tracker = init(config("t-stall"));
    tracker.flush();
    tracker.track("during_stall".into(), JsValue::UNDEFINED);
    tracker.flush();
    assert_eq!(fetched_event_ids().len(), 1, "one request at a time");
    js("window.dispatchEvent(new Event('pagehide'));");
    let beaconed: Vec<String> = recorded("__beacons")
        .iter()
        .flat_map(|(_, b)| {
            b["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["type"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        beaconed,
        ["page_view", "custom", "page_leave"],
        "the stalled events go again, by beacon"
    );
    drop(tracker);
}

#[wasm_bindgen_test]
async fn offline_pauses_sending_and_online_resumes_it() {
    record_beacons(true);
    let tracker = init(config("t-offline"));
    js("window.dispatchEvent(new Event('offline'));");
    tracker.flush();
    sleep(50).await;
    assert!(fetched_event_ids().is_empty());
    js("window.dispatchEvent(new Event('online'));");
    sleep(50).await;
    assert_eq!(fetched_event_ids().len(), 1);
    drop(tracker);
}

#[wasm_bindgen_test]
fn another_live_tabs_queue_is_left_alone_and_an_abandoned_one_adopted() {
    record_beacons(true);
    let now = js_sys::Date::now() as u64;
    let event = |id: &str| format!("{{\\\"event_id\\\":\\\"{id}\\\",\\\"type\\\":\\\"custom\\\"}}");
    js(&format!(
        "localStorage.setItem('waymark.t-tabs.queue.live', '{now}\\n1|0\\n{}');
         localStorage.setItem('waymark.t-tabs.queue.gone', '{}\\n1|0\\n{}');",
        event("from-live-tab"),
        now - 10 * 60_000,
        event("from-closed-tab")
    ));
    let tracker = init(config("t-tabs"));
    js("window.dispatchEvent(new Event('pagehide'));");
    let all = serde_json::to_string(&sent()).unwrap();
    assert!(all.contains("from-closed-tab"), "{all}");
    assert!(!all.contains("from-live-tab"), "{all}");
    assert!(js("return localStorage.getItem('waymark.t-tabs.queue.gone')").is_null());
    assert!(!js("return localStorage.getItem('waymark.t-tabs.queue.live')").is_null());
    js("localStorage.removeItem('waymark.t-tabs.queue.live');");
    drop(tracker);
}

/// What the tracker of `site` has written to localStorage as its send queue.
fn stored_queue(site: &str) -> String {
    js(&format!(
        "return Object.keys(localStorage).filter(function (k) {{ return k.indexOf('waymark.{site}.queue.') === 0; }})
           .map(function (k) {{ return localStorage.getItem(k); }}).join('\\n')"
    ))
    .as_string()
    .unwrap()
}

#[wasm_bindgen_test]
async fn a_burst_is_written_once_and_leaving_or_dropping_writes_at_once() {
    record_beacons(false);
    js("window.__status = -1;"); // requests never answer: nothing leaves the queue
    let tracker = init(config("t-burst"));
    sleep(0).await;
    js(
        "window.__queueWrites = 0; window.__setItem = Storage.prototype.setItem;
        Storage.prototype.setItem = function (k) {
          if (k.indexOf('waymark.t-burst.queue.') === 0) __queueWrites++;
          return __setItem.apply(this, arguments);
        };",
    );
    for _ in 0..50 {
        tracker.track("burst".into(), JsValue::UNDEFINED);
    }
    let during = js("return __queueWrites").as_f64();
    sleep(0).await;
    let after = js("return __queueWrites").as_f64();
    js("Storage.prototype.setItem = window.__setItem;");
    assert_eq!(during, Some(0.0), "nothing is written inside the burst");
    assert_eq!(after, Some(1.0), "one write once the burst's task is done");
    assert_eq!(
        stored_queue("t-burst").matches("\"burst\"").count(),
        50,
        "with every event of the burst"
    );

    tracker.track("last".into(), JsValue::UNDEFINED);
    js("window.dispatchEvent(new Event('pagehide'));");
    let stored = stored_queue("t-burst");
    assert!(
        stored.contains("\"last\"") && stored.contains("page_leave"),
        "leaving writes before returning: {stored}"
    );
    tracker.track("before_drop".into(), JsValue::UNDEFINED);
    drop(tracker);
    assert!(
        stored_queue("t-burst").contains("\"before_drop\""),
        "a dropped tracker writes what it had"
    );
    js("Object.keys(localStorage).forEach(function (k) { if (k.indexOf('waymark.t-burst.') === 0) localStorage.removeItem(k); });");
}
