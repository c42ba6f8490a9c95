//! An event's JSON text for the send queue, which joins these into a batch.

use crate::prelude::*;

use super::dom;
use crate::Event;

/// One event's JSON text ([`Event::to_json`]), numbers that are not whole
/// written by JavaScript's `String(n)`, as `JSON.stringify` writes them.
pub fn encode_event(event: &Event) -> String {
    event.to_json(&mut |n, out| out.push_str(&dom::number_text(n)))
}

#[cfg(test)]
mod tests {
    use super::encode_event;
    use crate::{
        Config, MemoryStorage, Page, QueueLimits, SeededEntropy, SendQueue, Tracker, Value,
    };
    use wasm_bindgen_test::*;

    wasm_bindgen_test_configure!(run_in_browser);

    /// The hand-written JSON, with JavaScript's numbers, joined by the send
    /// queue, is byte for byte what `Serialize` makes of the batch (numbers
    /// chosen where JavaScript and serde_json agree: not `1e21`).
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
            ("tiny".into(), Value::Number(1e-7)),
            ("tenth".into(), Value::Number(0.1)),
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
            assert_eq!(encode_event(event), serde_json::to_string(event).unwrap());
            queue.push(encode_event(event), batch.sent_at);
        }
        let sent = queue
            .poll_transmit(batch.sent_at, "demo", crate::Urgency::Now)
            .unwrap();
        assert_eq!(sent.body, serde_json::to_string(&batch).unwrap());
    }
}
