//! The browser shell against real browser APIs (`wasm-pack test --headless
//! --chrome sdk`): real localStorage, a storage that throws, sendBeacon and
//! its fetch fallback. Network calls are intercepted in the page, so nothing
//! leaves the browser.

#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use js_sys::{Array, Function, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;
use waymark_sdk::{init, Session};

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

/// Replaces `navigator.sendBeacon` with a recorder that answers `accept`.
fn record_beacons(accept: bool) {
    js(&format!(
        "window.__beacons = []; window.__fetches = [];
         navigator.sendBeacon = function (url, body) {{ __beacons.push([url, body]); return {accept}; }};
         window.fetch = function (url, init) {{ __fetches.push([url, init.body, init.keepalive, init.method]); return Promise.reject(new TypeError('offline')); }};"
    ));
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
    let beacons = recorded("__beacons");
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
    assert!(
        cookie.contains(&format!("waymark.t-throws.session=1%7C")),
        "{cookie}"
    );
    assert!(cookie.contains(&session));
    tracker.flush();
    let events = recorded("__beacons")[0].1["events"]
        .as_array()
        .unwrap()
        .clone();
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
    let events = recorded("__beacons")[0].1["events"]
        .as_array()
        .unwrap()
        .clone();
    assert!(events
        .iter()
        .all(|e| e["session_id"] == session.as_str() && e["storage"] == "memory"));
}

#[wasm_bindgen_test]
fn a_refused_beacon_falls_back_to_fetch_with_keepalive() {
    record_beacons(false);
    let tracker = init(config("t-fetch"));
    tracker.flush();
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
    let events = recorded("__beacons")[0].1["events"]
        .as_array()
        .unwrap()
        .clone();
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
    assert!(recorded("__beacons").is_empty());
    let later = init(config("t-optout"));
    later.flush();
    assert!(
        recorded("__beacons").is_empty(),
        "the opt-out survives a reload"
    );
    later.opt_in();
    later.track("visible".into(), JsValue::UNDEFINED);
    later.flush();
    assert_eq!(recorded("__beacons").len(), 1);
}
