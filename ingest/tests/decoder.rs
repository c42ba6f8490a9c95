//! Property tests of the batch decoder and validator: whatever arrives, it
//! never panics, and it answers with events to store or a 4xx error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use waymark_ingest::{decode_batch, DecodeError, Error};

const NOW: u64 = 1_700_000_000_000;

fn check(result: Result<waymark_ingest::DecodedBatch, DecodeError>, events_sent: Option<usize>) {
    match result {
        Ok(batch) => {
            assert!(!batch.events.is_empty());
            if let Some(sent) = events_sent {
                assert_eq!(batch.events.len() + batch.rejected.len(), sent);
            }
            for e in &batch.events {
                assert!(e.ts > 0 && e.client_ts > 0);
                assert!(uuid::Uuid::parse_str(&e.event_id).is_ok());
            }
        }
        Err(err) => {
            let err = Error::from(err);
            assert!(err.status().is_client_error(), "{err:?} is not a 4xx");
        }
    }
}

/// JSON values of every kind, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("page_view"),
            Just("custom"),
            Just("visit_ended"),
            Just("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
            Just("demo"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((field_name(), inner), 0..8)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("event_id"),
        Just("type"),
        Just("name"),
        Just("ts"),
        Just("session_id"),
        Just("visitor_id"),
        Just("user_id"),
        Just("url"),
        Just("props"),
        Just("context"),
        Just("seq"),
        Just("session_index"),
        Just("referrer"),
        Just("title"),
        Just("x"),
    ]
    .prop_map(str::to_owned)
}

/// Events that are mostly right, with fields replaced by arbitrary values.
fn event_like() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec((field_name(), json_value()), 0..4),
        any::<u128>(),
    )
        .prop_map(|(edits, id)| {
            let mut e = json!({
                "event_id": uuid::Uuid::from_u128(id).to_string(), "type": "page_view",
                "ts": 1_700_000_000_000u64, "session_id": "s", "visitor_id": "v",
                "url": "https://a.example/",
            });
            for (k, v) in edits {
                e[k] = v;
            }
            e
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check(decode_batch(&body, NOW), None);
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value()) {
        check(decode_batch(value.to_string().as_bytes(), NOW), None);
    }

    #[test]
    fn arbitrary_envelopes_never_panic(
        site in json_value(), sent_at in json_value(), events in json_value(), v in json_value(),
    ) {
        let body = json!({"v": v, "site": site, "sent_at": sent_at, "events": events});
        check(decode_batch(body.to_string().as_bytes(), NOW), None);
    }

    #[test]
    fn every_event_is_stored_or_rejected_by_index(
        events in prop::collection::vec(event_like(), 1..20),
        sent_at in prop::option::of(any::<u64>()),
    ) {
        let body = json!({"site": "demo", "sent_at": sent_at, "events": events});
        let n = events.len();
        let result = decode_batch(body.to_string().as_bytes(), NOW);
        if let Ok(batch) = &result {
            let mut indexes: Vec<usize> = batch.rejected.iter().map(|r| r.index).collect();
            indexes.dedup();
            prop_assert!(indexes.iter().all(|i| *i < n));
            prop_assert_eq!(indexes.len(), batch.rejected.len());
        }
        check(result, Some(n));
    }
}
