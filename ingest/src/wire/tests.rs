//! The decoder's own tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use super::*;

const ID: &str = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

fn event() -> Value {
    json!({
        "event_id": ID,
        "type": "page_view",
        "name": null,
        "ts": 1_732_350_000_000u64,
        "session_id": "s-1",
        "visitor_id": "v-1",
        "user_id": "u-42",
        "url": "http://127.0.0.1:8080/about.html",
        "title": "About",
        "referrer": "http://127.0.0.1:8080/",
        "props": {"plan": "pro"},
        "context": {"language": "en-US"}
    })
}

fn batch(events: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"v": 1, "site": "demo", "sent_at": 5, "events": events})).unwrap()
}

/// The reason the single event of a batch was rejected.
fn reason_for(mut event: Value, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
    edit(event.as_object_mut().unwrap());
    match decode_batch(&batch(vec![event]), 7) {
        Err(DecodeError::AllEventsRejected(rejected)) => rejected[0].reason.clone(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn a_full_event_is_decoded_field_by_field() {
    let decoded = decode_batch(&batch(vec![event()]), 7).unwrap();
    assert_eq!(decoded.site, "demo");
    assert_eq!(decoded.sent_at, Some(5));
    assert!(decoded.rejected.is_empty());
    assert_eq!(
        decoded.events,
        vec![StoredEvent {
            event_id: ID.to_owned(),
            site: "demo".to_owned(),
            event_type: EventType::PageView,
            name: None,
            ts: 1_732_350_000_000,
            client_ts: 1_732_350_000_000,
            received_at: 7,
            session_id: "s-1".to_owned(),
            visitor_id: "v-1".to_owned(),
            user_id: Some("u-42".to_owned()),
            session_index: None,
            seq: None,
            previous_session_id: None,
            storage: None,
            url: "http://127.0.0.1:8080/about.html".to_owned(),
            title: Some("About".to_owned()),
            referrer: Some("http://127.0.0.1:8080/".to_owned()),
            props: Some(r#"{"plan":"pro"}"#.to_owned()),
            context: Some(r#"{"language":"en-US"}"#.to_owned()),
            enrichment: Enrichment::default(),
        }]
    );
}

#[test]
fn event_ids_are_stored_lowercase_hyphenated() {
    let mut e = event();
    e["event_id"] = json!("0193A1B2C3D47E5F8A9B0C1D2E3F4A5B");
    let decoded = decode_batch(&batch(vec![e]), 7).unwrap();
    assert_eq!(decoded.events[0].event_id, ID);
}

#[test]
fn unknown_fields_are_ignored_and_v_defaults_to_1() {
    let mut e = event();
    e["future_field"] = json!([1, 2]);
    let body = json!({"site": "demo", "events": [e], "extra": true});
    let decoded = decode_batch(&serde_json::to_vec(&body).unwrap(), 7).unwrap();
    assert_eq!(decoded.events.len(), 1);
    assert_eq!(decoded.sent_at, None);
}

#[test]
fn dropped_is_read_when_a_count_and_ignored_otherwise() {
    let dropped = |value: Value| {
        let body = json!({"site": "demo", "dropped": value, "events": [event()]});
        let decoded = decode_batch(&serde_json::to_vec(&body).unwrap(), 7).unwrap();
        assert_eq!(decoded.events.len(), 1);
        decoded.dropped
    };
    assert_eq!(dropped(json!(7)), 7);
    assert_eq!(dropped(json!(0)), 0);
    assert_eq!(dropped(json!(u64::MAX)), u64::MAX);
    for garbled in [
        json!(-1),
        json!(2.5),
        json!(1e30),
        json!("4"),
        json!(null),
        json!(true),
        json!([3]),
        json!({"n": 3}),
    ] {
        assert_eq!(dropped(garbled.clone()), 0, "{garbled}");
    }
    assert_eq!(decode_batch(&batch(vec![event()]), 7).unwrap().dropped, 0);
    let envelope = Envelope::parse(br#"{"site": "demo", "dropped": 3, "events": [{}]}"#);
    assert_eq!(envelope.unwrap().dropped, 3);
}

#[test]
fn envelope_errors() {
    let check = |body: &[u8], code: &str| {
        let err = decode_batch(body, 7).unwrap_err();
        let kind = match &err {
            DecodeError::InvalidJson(_) => "invalid_json",
            DecodeError::InvalidBatch(_) => "invalid_batch",
            DecodeError::EmptyBatch => "empty_batch",
            DecodeError::AllEventsRejected(_) => "all_events_rejected",
        };
        assert_eq!(kind, code, "{}: {err}", String::from_utf8_lossy(body));
    };
    check(b"", "invalid_json");
    check(b"{\"site\":", "invalid_json");
    check(b"not json", "invalid_json");
    check(b"[]", "invalid_batch");
    check(b"{\"events\": []}", "invalid_batch");
    check(b"{\"site\": \"demo\"}", "invalid_batch");
    check(b"{\"site\": \"demo\", \"events\": {}}", "invalid_batch");
    check(
        b"{\"v\": 2, \"site\": \"demo\", \"events\": [{}]}",
        "invalid_batch",
    );
    check(b"{\"site\": \"\", \"events\": [{}]}", "invalid_batch");
    check(b"{\"site\": \"de mo\", \"events\": [{}]}", "invalid_batch");
    check(&batch(vec![]), "empty_batch");
    check(
        &batch(vec![event(); MAX_EVENTS_PER_BATCH + 1]),
        "invalid_batch",
    );
    let long_site = format!("{{\"site\": \"{}\", \"events\": [{{}}]}}", "a".repeat(65));
    check(long_site.as_bytes(), "invalid_batch");
}

#[test]
fn site_may_use_letters_digits_and_punctuation() {
    let body = json!({"site": "My_site-2.example", "events": [event()]});
    assert!(decode_batch(&serde_json::to_vec(&body).unwrap(), 7).is_ok());
    let body = json!({"site": "a".repeat(64), "events": [event()]});
    assert!(decode_batch(&serde_json::to_vec(&body).unwrap(), 7).is_ok());
}

#[test]
fn per_event_reasons_name_the_field() {
    type Edit = Box<dyn FnOnce(&mut Map<String, Value>)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|e| e["event_id"] = json!("nope")),
            "event_id: not a UUID",
        ),
        (
            Box::new(|e| drop(e.remove("event_id"))),
            "event_id: missing",
        ),
        (
            Box::new(|e| e["type"] = json!("pageview")),
            "type: unknown type",
        ),
        (Box::new(|e| e["type"] = json!(3)), "type: must be a string"),
        (
            Box::new(|e| e["type"] = json!("custom")),
            "name: required for custom",
        ),
        (
            Box::new(|e| e["name"] = json!("n".repeat(201))),
            "name: longer than 200",
        ),
        (
            Box::new(|e| e["ts"] = json!(0)),
            "ts: must be a positive integer",
        ),
        (
            Box::new(|e| e["ts"] = json!(-5)),
            "ts: must be a positive integer",
        ),
        (
            Box::new(|e| e["ts"] = json!(u64::MAX)),
            "ts: must be a positive integer",
        ),
        (
            Box::new(|e| e["ts"] = json!(1.5)),
            "ts: must be a positive integer",
        ),
        (
            Box::new(|e| e["ts"] = json!("1")),
            "ts: must be a positive integer",
        ),
        (Box::new(|e| drop(e.remove("ts"))), "ts: missing"),
        (
            Box::new(|e| e["session_id"] = json!("")),
            "session_id: must not be empty",
        ),
        (
            Box::new(|e| e["session_id"] = json!("s".repeat(65))),
            "session_id: longer than 64",
        ),
        (
            Box::new(|e| drop(e.remove("visitor_id"))),
            "visitor_id: missing",
        ),
        (
            Box::new(|e| e["user_id"] = json!("u".repeat(257))),
            "user_id: longer than 256",
        ),
        (Box::new(|e| e["url"] = json!("")), "url: must not be empty"),
        (
            Box::new(|e| e["url"] = json!("u".repeat(2049))),
            "url: longer than 2048",
        ),
        (
            Box::new(|e| e["title"] = json!("t".repeat(1025))),
            "title: longer than 1024",
        ),
        (
            Box::new(|e| e["referrer"] = json!(false)),
            "referrer: must be a string",
        ),
        (
            Box::new(|e| e["props"] = json!([1])),
            "props: must be a JSON object",
        ),
        (
            Box::new(|e| e["context"] = json!("x")),
            "context: must be a JSON object",
        ),
        (
            Box::new(|e| e["props"] = json!({"big": "x".repeat(16 * 1024)})),
            "props: larger than 16384 bytes",
        ),
    ];
    for (edit, expected) in cases {
        let reason = reason_for(event(), edit);
        assert!(
            reason.starts_with(expected),
            "{reason:?} should start with {expected:?}"
        );
    }
}

#[test]
fn limits_are_inclusive() {
    let mut e = event();
    e["session_id"] = json!("s".repeat(64));
    e["name"] = json!("n".repeat(200));
    e["url"] = json!("u".repeat(2048));
    // Characters, not bytes: 64 two-byte characters still fit.
    e["visitor_id"] = json!("é".repeat(64));
    assert!(decode_batch(&batch(vec![e]), 7).is_ok());
}

#[test]
fn custom_events_with_a_name_and_every_type_are_accepted() {
    for t in EventType::ALL {
        let mut e = event();
        e["type"] = json!(t.as_str());
        e["name"] = json!("signup");
        let decoded = decode_batch(&batch(vec![e]), 7).unwrap();
        assert_eq!(decoded.events[0].event_type, t);
    }
}

#[test]
fn bad_events_are_reported_by_index_and_good_ones_kept() {
    let mut second = event();
    second["event_id"] = json!("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c");
    let decoded =
        decode_batch(&batch(vec![json!("not an object"), second, json!(null)]), 7).unwrap();
    assert_eq!(decoded.events.len(), 1);
    assert_eq!(
        decoded.rejected,
        vec![
            Rejection {
                index: 0,
                reason: "not a JSON object".to_owned()
            },
            Rejection {
                index: 2,
                reason: "not a JSON object".to_owned()
            },
        ]
    );
}

/// A valid event's URLs are cleaned and counted; a rejected event's are not counted.
#[test]
fn urls_of_valid_events_are_redacted_and_counted() {
    let mut secret = event();
    secret["url"] = json!("http://127.0.0.1:8080/?token=t&a=1");
    secret["referrer"] = json!("https://mail.example/?to=jane@example.com");
    let mut rejected = secret.clone();
    rejected["ts"] = json!(0);
    let decoded = decode_batch(&batch(vec![secret, rejected, event()]), 7).unwrap();
    assert_eq!(decoded.events[0].url, "http://127.0.0.1:8080/?a=1");
    assert_eq!(
        decoded.events[0].referrer.as_deref(),
        Some("https://mail.example/")
    );
    assert_eq!(decoded.events[1].url, "http://127.0.0.1:8080/about.html");
    assert_eq!((decoded.rejected.len(), decoded.urls_redacted), (1, 2));
}

proptest::proptest! {
    /// The collector stores what the SDK's rule gives, the same function
    /// with the built-in words: for what the SDK sent, that is what it sent.
    #[test]
    fn stored_urls_are_the_shared_rules_output(
        url in "https://x\\.test/[a-z]{0,3}(\\?(token|q|utm_source|Email)=(a|jane%40b\\.co|x@y\\.z)(&[a-z]=1)?)?(#/r\\?(otp|k)=1)?",
    ) {
        let mut e = event();
        e["url"] = json!(url);
        e["referrer"] = json!(url);
        let decoded = decode_batch(&batch(vec![e]), 7).unwrap();
        let expected = waymark_wire::redact_url(&url, waymark_wire::DEFAULT_SENSITIVE_PARAMS);
        proptest::prop_assert_eq!(&decoded.events[0].url, &expected);
        proptest::prop_assert_eq!(decoded.events[0].referrer.as_deref(), Some(expected.as_str()));
        proptest::prop_assert_eq!(decoded.urls_redacted, if expected == url { 0 } else { 2 });
    }
}

/// A page leave with `props`.
fn leave(props: Value) -> Value {
    let mut e = event();
    e["type"] = json!("page_leave");
    e["props"] = props;
    e
}

#[test]
fn a_page_leave_keeps_its_core_web_vitals_in_its_props() {
    let props = json!({"page_view_id": ID, "engaged_ms": 1200, "scroll_pct": 40,
        "duration_ms": 3000, "lcp_ms": 812, "inp_ms": 48, "cls": 0.0125, "ttfb_ms": 305});
    let decoded = decode_batch(&batch(vec![leave(props.clone())]), 7).unwrap();
    let stored: Value = serde_json::from_str(decoded.events[0].props.as_deref().unwrap()).unwrap();
    assert_eq!(stored, props);
    // Each is optional: a page left before its LCP, or never interacted with.
    let some = json!({"page_view_id": ID, "ttfb_ms": 305, "cls": 0});
    assert!(decode_batch(&batch(vec![leave(some)]), 7).is_ok());
}

#[test]
fn a_page_leave_with_a_vital_out_of_range_is_rejected_saying_which() {
    for (key, value, expected) in [
        (
            "lcp_ms",
            json!(-1),
            "props: lcp_ms must be a number of milliseconds from 0 to 3600000",
        ),
        (
            "inp_ms",
            json!("48"),
            "props: inp_ms must be a number of milliseconds from 0 to 3600000",
        ),
        (
            "ttfb_ms",
            json!(3_600_001),
            "props: ttfb_ms must be a number of milliseconds from 0 to 3600000",
        ),
        (
            "cls",
            json!(101),
            "props: cls must be a number from 0 to 100",
        ),
        (
            "cls",
            json!(null),
            "props: cls must be a number from 0 to 100",
        ),
    ] {
        let mut props = json!({"page_view_id": ID});
        props[key] = value;
        let reason = reason_for(leave(props), |_| {});
        assert_eq!(reason, expected);
    }
    // Other events' props are the page's own: a custom `lcp_ms` is theirs.
    let mut custom = event();
    custom["type"] = json!("custom");
    custom["name"] = json!("perf");
    custom["props"] = json!({"lcp_ms": "slow"});
    assert!(decode_batch(&batch(vec![custom]), 7).is_ok());
}

/// Any JSON, up to three levels deep, of the kinds an early record holds.
fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<f64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(Value::from),
        (0u64..4_000_000_000_000).prop_map(Value::from),
        "(track|identify|reset|optOut|optIn|flush|http://a/\\?utm_source=x|)".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(("[a-zA-Z]{1,20}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    /// Whatever an anonymous client puts in `early`, the batch is decoded
    /// or refused with a reason: nothing panics, and every event built is
    /// checked like a sent one.
    #[test]
    fn any_early_member_is_decoded_or_refused(
        record in any_json(),
        config in any_json(),
        offset in proptest::prop_oneof![proptest::prelude::any::<i32>(), -900i32..900],
        at in proptest::prop_oneof![
            proptest::prelude::any::<u64>(),
            0u64..(1 << 53),
            1_690_000_000_000u64..1_710_000_000_000,
        ],
        calls in any_json(),
    ) {
        let mut decoded = 0;
        for record in [record, json!([[at, "http://a/", "", "t"], calls, [at]])] {
            let body = json!({"v": 1, "site": "demo", "sent_at": 5, "events": [], "early": {
                "key": "9b2f3c1e-7a44-4e0b-9a51-0c6f1d2e3a4b", "utc_offset_min": offset,
                "config": config, "record": record,
            }});
            match decode_batch(&serde_json::to_vec(&body).unwrap(), 1_700_000_000_000) {
                Ok(batch) => {
                    proptest::prop_assert!(!batch.events.is_empty());
                    decoded += 1;
                }
                Err(
                    DecodeError::InvalidBatch(_)
                    | DecodeError::EmptyBatch
                    | DecodeError::AllEventsRejected(_),
                ) => {}
                Err(other) => proptest::prop_assert!(false, "{other:?}"),
            }
        }
        // The realistic case (a time of 2023, a valid offset, settings of
        // unknown keys or none, no opt-out, which drops what was recorded)
        // decodes.
        let settings = (config.is_null() || config.is_object()) && !calls.to_string().contains("optOut");
        if (1_690_000_000_000..1_710_000_000_000).contains(&at) && offset.abs() <= 840 && settings {
            proptest::prop_assert!(decoded >= 1);
        }
    }
}
