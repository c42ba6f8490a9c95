//! An event's JSON text, written by hand.
//!
//! The send queue keeps and sends events as JSON text. The browser build has
//! no JSON encoder (serde_json would be most of the download), and building
//! JS objects for `JSON.stringify` costs a binding per step; writing the
//! text here costs a string escaper. The output is byte for byte what
//! `serde_json::to_string` makes of the same [`Event`] (the tests check), but
//! for the formatting of numbers that are not integers, which the caller
//! supplies: the browser shell uses JavaScript's, as `JSON.stringify` does.

use crate::prelude::*;

use crate::event::Event;
use crate::text::{push_i64, push_u64, HEX_DIGITS};
use crate::value::Value;

/// Writes a number that is not a whole number of safe size (finite).
pub type NumberFormat<'a> = &'a mut dyn FnMut(f64, &mut String);

impl Event {
    /// This event's JSON text: the fields of its `Serialize` in the same
    /// order, `None`s left out.
    pub fn to_json(&self, number: NumberFormat<'_>) -> String {
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
        } = self;
        let mut out = String::with_capacity(256);
        out.push_str("{\"event_id\":");
        push_string(&mut out, event_id);
        let text = |out: &mut String, name: &str, value: Option<&str>| {
            if let Some(value) = value {
                push_key(out, name);
                push_string(out, value);
            }
        };
        let integer = |out: &mut String, name: &str, value: u64| {
            push_key(out, name);
            push_u64(out, value);
        };
        text(&mut out, "type", Some(kind.as_str()));
        text(&mut out, "name", name.as_deref());
        integer(&mut out, "ts", *ts);
        text(&mut out, "session_id", Some(session_id));
        text(&mut out, "visitor_id", Some(visitor_id));
        text(&mut out, "user_id", user_id.as_deref());
        integer(&mut out, "session_index", (*session_index).into());
        integer(&mut out, "seq", (*seq).into());
        text(&mut out, "url", Some(url));
        text(&mut out, "title", title.as_deref());
        text(&mut out, "referrer", referrer.as_deref());
        text(
            &mut out,
            "previous_session_id",
            previous_session_id.as_deref(),
        );
        text(&mut out, "storage", Some(storage));
        for (name, value) in [("props", props), ("context", context)] {
            if let Some(value) = value {
                push_key(&mut out, name);
                push_value(&mut out, value, number);
            }
        }
        out.push('}');
        out
    }
}

/// `,"name":` (field names are plain ASCII).
fn push_key(out: &mut String, name: &str) {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":");
}

/// A value as JSON: whole numbers of safe size as integers (as `Serialize`
/// does), other finite numbers by `number`, the rest `null`.
pub fn push_value(out: &mut String, value: &Value, number: NumberFormat<'_>) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) if n.abs() < 9_007_199_254_740_992.0 && (*n as i64) as f64 == *n => {
            push_i64(out, *n as i64)
        }
        Value::Number(n) if n.is_finite() => number(*n, out),
        Value::Number(_) => out.push_str("null"),
        Value::String(s) => push_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_value(out, item, number);
            }
            out.push(']');
        }
        Value::Object(entries) => {
            out.push('{');
            for (i, (key, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_string(out, key);
                out.push(':');
                push_value(out, item, number);
            }
            out.push('}');
        }
    }
}

/// A JSON string: quotes, backslashes and control characters escaped, as
/// serde_json and `JSON.stringify` both do (`\n`, `\u001f`, …).
pub fn push_string(out: &mut String, s: &str) {
    out.push('"');
    let mut plain = 0;
    for (i, byte) in s.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        // Escaped bytes are ASCII, so these are character boundaries.
        out.push_str(s.get(plain..i).unwrap_or_default());
        plain = i + 1;
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(HEX_DIGITS[usize::from(byte & 15)]));
        } else {
            out.push_str(escape);
        }
    }
    out.push_str(s.get(plain..).unwrap_or_default());
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    /// serde_json's own number formatting, so the texts can be compared.
    fn serde_number(n: f64, out: &mut String) {
        out.push_str(&serde_json::to_string(&n).unwrap());
    }

    fn event(text: &str, props: Option<Value>) -> Event {
        Event {
            event_id: "e".into(),
            kind: EventType::Custom,
            name: Some(text.into()),
            ts: 1_700_000_000_000,
            session_id: "s".into(),
            visitor_id: "v".into(),
            user_id: None,
            session_index: 2,
            seq: 3,
            url: text.into(),
            title: Some(text.into()),
            referrer: None,
            previous_session_id: Some("p".into()),
            storage: "local",
            props,
            context: None,
        }
    }

    #[test]
    fn writes_what_serde_json_writes() {
        let props = Value::Object(vec![
            ("n".into(), Value::Number(2.0)),
            ("f".into(), Value::Number(-0.25)),
            ("big".into(), Value::Number(1e300)),
            (
                "list".into(),
                Value::Array(vec![Value::Null, Value::Bool(false)]),
            ),
            (
                "quote \"\\\u{1}\u{7f}".into(),
                Value::String("é\n\u{2028}".into()),
            ),
        ]);
        let e = event("a\u{0}b\tc\u{1f}\"", Some(props));
        assert_eq!(
            e.to_json(&mut serde_number),
            serde_json::to_string(&e).unwrap()
        );
        let bare = Event {
            name: None,
            title: None,
            previous_session_id: None,
            kind: EventType::PageView,
            ..event("", None)
        };
        assert_eq!(
            bare.to_json(&mut serde_number),
            serde_json::to_string(&bare).unwrap()
        );
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<f64>()
                    .prop_filter("finite", |n| n.is_finite())
                    .prop_map(Value::Number),
                any::<i32>().prop_map(|n| Value::Number(n.into())),
                any::<String>().prop_map(Value::String),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::vec((any::<String>(), inner), 0..4).prop_map(Value::Object),
                ]
            })
        }

        proptest! {
            #[test]
            fn any_event_is_written_as_serde_json_writes_it(text in any::<String>(), props in value()) {
                let e = event(&text, Some(props));
                prop_assert_eq!(e.to_json(&mut serde_number), serde_json::to_string(&e).unwrap());
            }
        }
    }
}
