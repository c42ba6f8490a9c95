//! Getting a batch to the collector: `sendBeacon`, else `fetch` with keepalive.

use crate::prelude::*;

use super::plain_data::{set, to_js};
use crate::Event;
use js_sys::Object;
use wasm_bindgen::prelude::*;

/// One event's JSON text, built by the browser's own `JSON.stringify`: no
/// JSON encoder in the wasm. The object mirrors `Event`'s `Serialize` (field
/// order, skipped `None`s), which the native tests and the collector's golden
/// fixtures pin down; the send queue joins these into a batch.
pub fn encode_event(event: &Event) -> Option<String> {
    js_sys::JSON::stringify(&event_to_js(event)?)
        .ok()?
        .as_string()
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

#[cfg(test)]
mod tests {
    use super::encode_event;
    use crate::{
        Config, MemoryStorage, Page, QueueLimits, SeededEntropy, SendQueue, Tracker, Value,
    };
    use wasm_bindgen_test::*;

    wasm_bindgen_test_configure!(run_in_browser);

    /// The hand-built JSON, joined by the send queue, is byte for byte what
    /// `Serialize` makes of the batch (numbers chosen non-integral: serde_json writes `1.0` where
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
        let mut queue = SendQueue::new(QueueLimits::default());
        for event in &batch.events {
            assert_eq!(
                encode_event(event).unwrap(),
                serde_json::to_string(event).unwrap()
            );
            queue.push(encode_event(event).unwrap(), batch.sent_at);
        }
        let sent = queue
            .poll_transmit(batch.sent_at, "demo", crate::Urgency::Now)
            .unwrap();
        assert_eq!(sent.body, serde_json::to_string(&batch).unwrap());
    }
}
