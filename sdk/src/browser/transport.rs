//! Getting a batch to the collector: `sendBeacon`, else `fetch` with keepalive.

use super::plain_data::{set, to_js};
use crate::{Batch, Event};
use js_sys::{Array, Object};
use wasm_bindgen::prelude::*;
use web_sys::RequestInit;

/// Sends one batch as `text/plain` JSON (no CORS preflight). The error is a
/// console-ready explanation.
pub fn send(url: &str, batch: &Batch) -> Result<(), &'static str> {
    let body = encode(batch).ok_or("could not encode a batch")?;
    let window = web_sys::window().ok_or("no window to send from")?;
    if window
        .navigator()
        .send_beacon_with_opt_str(url, Some(&body))
        .unwrap_or(false)
    {
        return Ok(());
    }
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(&body));
    // `keepalive` lets the request outlive the page; set by name because
    // web-sys marks the setter unstable.
    let _ = js_sys::Reflect::set(&init, &"keepalive".into(), &JsValue::TRUE);
    let pending = window.fetch_with_str_and_init(url, &init);
    IGNORE.with(|ignore| {
        let _ = pending.catch(ignore);
    });
    Ok(())
}

/// JSON text built by the browser's own `JSON.stringify`: no JSON encoder in
/// the wasm. The objects mirror `Batch`'s and `Event`'s `Serialize` (field
/// order, skipped `None`s), which the native tests and the collector's golden
/// fixtures pin down.
fn encode(batch: &Batch) -> Option<String> {
    let Batch {
        v,
        site,
        sent_at,
        events,
    } = batch;
    let object = Object::new();
    set(&object, "v", &JsValue::from(*v));
    set(&object, "site", &JsValue::from_str(site));
    set(&object, "sent_at", &number(*sent_at)?);
    let list = Array::new();
    for event in events {
        list.push(&event_to_js(event)?);
    }
    set(&object, "events", &list);
    js_sys::JSON::stringify(&object).ok()?.as_string()
}

fn event_to_js(event: &Event) -> Option<JsValue> {
    // Destructured in full so that a new field cannot be forgotten here.
    let Event {
        event_id,
        kind,
        name,
        ts,
        session_id,
        visitor_id,
        user_id,
        session_index,
        seq,
        url,
        title,
        referrer,
        previous_session_id,
        storage,
        props,
        context,
    } = event;
    let object = Object::new();
    let text = |key: &str, value: &str| set(&object, key, &JsValue::from_str(value));
    let optional = |key: &str, value: &Option<String>| {
        if let Some(value) = value {
            text(key, value);
        }
    };
    text("event_id", event_id);
    text("type", kind.as_str());
    optional("name", name);
    set(&object, "ts", &number(*ts)?);
    text("session_id", session_id);
    text("visitor_id", visitor_id);
    optional("user_id", user_id);
    set(&object, "session_index", &JsValue::from(*session_index));
    set(&object, "seq", &JsValue::from(*seq));
    text("url", url);
    optional("title", title);
    optional("referrer", referrer);
    optional("previous_session_id", previous_session_id);
    text("storage", storage);
    for (key, value) in [("props", props), ("context", context)] {
        if let Some(value) = value {
            set(&object, key, &to_js(value));
        }
    }
    Some(object.into())
}

/// A JS number, if `n` is exactly representable as one.
fn number(n: u64) -> Option<JsValue> {
    const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
    (n <= MAX_SAFE_INTEGER).then(|| JsValue::from_f64(n as f64))
}

thread_local! {
    /// One shared rejection handler, so a failed fetch never shows up as an
    /// unhandled rejection in the host page.
    static IGNORE: Closure<dyn FnMut(JsValue)> = Closure::new(|_| {});
}

#[cfg(test)]
mod tests {
    use super::encode;
    use crate::{Config, MemoryStorage, Page, SeededEntropy, Tracker, Value};
    use wasm_bindgen_test::*;

    wasm_bindgen_test_configure!(run_in_browser);

    /// The hand-built JSON is byte for byte what `Serialize` makes of the
    /// batch (numbers chosen non-integral: serde_json writes `1.0` where
    /// JavaScript writes `1`).
    #[wasm_bindgen_test]
    fn encodes_batches_exactly_as_serialize_does() {
        let mut tracker = Tracker::new(
            Config::new("http://h", "demo"),
            MemoryStorage::default(),
            SeededEntropy(5),
        );
        tracker.set_context(Value::Object(vec![(
            "language".into(),
            Value::String("en".into()),
        )]));
        let page = Page {
            url: "http://h/a?q=1".into(),
            title: Some("T \"quoted\" \u{1}".into()),
            referrer: Some("http://r/".into()),
        };
        tracker.page_view(1_700_000_000_000, &page);
        let props = Value::Object(vec![
            ("price".into(), Value::Number(9.5)),
            (
                "list".into(),
                Value::Array(vec![
                    Value::Null,
                    Value::Bool(true),
                    Value::String("é\n".into()),
                ]),
            ),
            (
                "nested".into(),
                Value::Object(vec![("x".into(), Value::Number(-0.25))]),
            ),
        ]);
        tracker.track(1_700_000_000_001, &Page::default(), "buy", Some(props));
        tracker.identify(1_700_000_000_002, &page, "user-1", None);
        let batch = tracker.take_batch(1_700_000_000_003).unwrap();
        assert_eq!(
            encode(&batch).unwrap(),
            serde_json::to_string(&batch).unwrap()
        );
    }
}
