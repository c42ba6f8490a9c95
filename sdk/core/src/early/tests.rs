#![allow(clippy::unwrap_used)]

use super::*;
use crate::config::Config;
use crate::event::EventType;
use crate::ids::SeededEntropy;
use crate::storage::MemoryStorage;

const MIN: u64 = 60_000;
const T0: u64 = 1_700_000_000_000;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn tracker(storage: MemoryStorage) -> Tracker<MemoryStorage, SeededEntropy> {
    Tracker::new(
        Config::new("http://127.0.0.1:8080/", "demo"),
        storage,
        SeededEntropy(7),
    )
}

fn page(path: &str) -> Page {
    Page {
        url: format!("http://127.0.0.1:8080{path}"),
        title: Some("Now".into()),
        referrer: None,
    }
}

/// What the stub writes for `/pricing.html`, stubbed at `at`, with a
/// `track` 200 ms later and a `flush`.
fn record(at: u64) -> Value {
    json(&format!(
        r#"[[{at}, "http://127.0.0.1:8080/pricing.html?token=s3cret", "http://127.0.0.1:8080/", "Pricing"],
            [["track", "cta_seen", {{"plan": "pro"}}], ["flush"]],
            [{}, {}]]"#,
        at + 200,
        at + 300
    ))
}

#[test]
fn the_stub_record_is_read_with_its_times() {
    let early = EarlyPage::from_value(record(T0)).unwrap();
    assert_eq!(early.at, T0);
    assert_eq!(
        early.page.url,
        "http://127.0.0.1:8080/pricing.html?token=s3cret"
    );
    assert_eq!(
        early.page.referrer.as_deref(),
        Some("http://127.0.0.1:8080/")
    );
    assert_eq!(early.page.title.as_deref(), Some("Pricing"));
    assert_eq!(
        early.calls,
        vec![EarlyCall::Track(
            T0 + 200,
            "cta_seen".into(),
            Some(json(r#"{"plan": "pro"}"#))
        )]
    );
    assert_eq!(early.dropped, 0);

    // Not a record: nothing to replay.
    assert_eq!(EarlyPage::from_value(json("[]")), None);
    assert_eq!(EarlyPage::from_value(json(r#"{"a": 1}"#)), None);
    assert_eq!(EarlyPage::from_value(json(r#"[["x", "u"]]"#)), None);
    // Unknown commands and calls past the cap are counted as dropped.
    let many = format!(
        r#"[[{T0}, "http://a/"], [{}["nonsense"]], []]"#,
        r#"["reset"],"#.repeat(MAX_EARLY_CALLS + 3)
    );
    let early = EarlyPage::from_value(json(&many)).unwrap();
    assert_eq!(early.calls.len(), MAX_EARLY_CALLS);
    assert_eq!(early.dropped, 4);
}

#[test]
fn an_early_page_is_replayed_at_its_own_times_before_the_page_now() {
    let mut t = tracker(MemoryStorage::default());
    t.page_view(T0, &page("/"));
    t.take_events();
    // The visitor went on to /pricing.html a minute later and left it
    // before the SDK ran; the next page load, 2 minutes later, replays it.
    let early = EarlyPage::from_value(record(T0 + MIN)).unwrap();
    t.replay_early(early, 0);
    t.page_view(T0 + 2 * MIN, &page("/about.html"));
    let events = t.take_events();
    let kinds: Vec<_> = events.iter().map(|e| (e.kind, e.ts)).collect();
    assert_eq!(
        kinds,
        vec![
            (EventType::PageView, T0 + MIN),
            (EventType::Custom, T0 + MIN + 200),
            (EventType::PageView, T0 + 2 * MIN),
        ]
    );
    // Same session: the gaps are short. The URL is cleaned as always.
    assert!(events.iter().all(|e| e.session_id == events[0].session_id));
    assert_eq!(events[0].url, "http://127.0.0.1:8080/pricing.html");
    assert_eq!(events[0].title.as_deref(), Some("Pricing"));
    assert_eq!(
        events[0].referrer.as_deref(),
        Some("http://127.0.0.1:8080/")
    );

    // Leaving now concerns the page now, not the replayed one.
    t.leave(T0 + 3 * MIN);
    let leave = t.take_events().pop().unwrap();
    assert_eq!(leave.kind, EventType::PageLeave);
    assert_eq!(leave.url, "http://127.0.0.1:8080/about.html");
    assert_eq!(
        leave.props.unwrap().get("page_view_id"),
        Some(&Value::String(events[2].event_id.clone()))
    );
}

#[test]
fn the_session_rules_decide_the_session_of_an_early_page() {
    let mut t = tracker(MemoryStorage::default());
    t.page_view(T0, &page("/"));
    let first = t.take_events()[0].session_id.clone();
    // Stubbed 31 idle minutes later: a new session, the old one ended at
    // its last activity.
    t.replay_early(EarlyPage::from_value(record(T0 + 31 * MIN)).unwrap(), 0);
    let events = t.take_events();
    let ended = events
        .iter()
        .find(|e| e.kind == EventType::VisitEnded)
        .unwrap();
    assert_eq!(ended.session_id, first);
    assert_eq!(ended.ts, T0);
    let view = events
        .iter()
        .find(|e| e.kind == EventType::PageView)
        .unwrap();
    assert_ne!(view.session_id, first);
    assert_eq!(view.ts, T0 + 31 * MIN);
}

#[test]
fn an_early_page_is_not_replayed_for_an_opted_out_visitor_nor_without_page_views() {
    let mut storage = MemoryStorage::default();
    storage.set("waymark.demo.optout", "1").unwrap();
    let mut t = tracker(storage);
    t.replay_early(EarlyPage::from_value(record(T0)).unwrap(), 0);
    assert!(t.take_events().is_empty());

    let mut config = Config::new("http://127.0.0.1:8080/", "demo");
    config.autocapture = false;
    let mut t = Tracker::new(config, MemoryStorage::default(), SeededEntropy(1));
    t.replay_early(EarlyPage::from_value(record(T0)).unwrap(), 0);
    let kinds: Vec<_> = t.take_events().iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventType::Custom]);
}

const KEY: &str = "9b2f3c1e-7a44-4e0b-9a51-0c6f1d2e3a4b";

fn keyed(at: u64) -> EarlyPage {
    EarlyPage::from_value(record(at)).unwrap().keyed(KEY)
}

#[test]
fn only_a_uuid_keys_a_record() {
    assert!(keyed(T0).key.is_some());
    let plain = EarlyPage::from_value(record(T0)).unwrap();
    // The stub's own key: its time and Math.random()'s digits.
    assert_eq!(plain.clone().keyed("17000000000000.123456789").key, None);
    assert_eq!(plain.clone().keyed("").key, None);
    assert_eq!(plain.keyed(&KEY[1..]).key, None);
}

#[test]
fn a_keyed_page_gives_the_collector_and_the_next_page_the_same_events() {
    let config = Config::new("http://127.0.0.1:8080/", "demo");
    // The collector, from the loader's beacon.
    let beaconed = keyed_replay(&config, keyed(T0), 60).unwrap();
    assert_eq!(beaconed.events.len(), 2);
    assert!(beaconed.events.iter().all(|e| e.context.is_none()));
    assert!(beaconed.events.iter().all(|e| e.storage == "local"));
    assert_eq!(beaconed.events[0].url, "http://127.0.0.1:8080/pricing.html");

    // The visitor's next page, 5 minutes later, replays the saved record:
    // the same events, and the session goes on.
    let mut t = tracker(MemoryStorage::default());
    t.set_context(json(r#"{"screen": "1x1"}"#));
    t.replay_early(keyed(T0), 60);
    t.page_view(T0 + 5 * MIN, &page("/about.html"));
    let mut events = t.take_events();
    let now = events.pop().unwrap();
    assert_eq!(events, beaconed.events);
    assert_eq!(now.session_id, beaconed.events[0].session_id);
    assert_eq!(now.visitor_id, beaconed.events[0].visitor_id);
    assert_eq!(now.seq, 3);
    // This page load's context goes with its own first event.
    assert!(now.context.is_some());

    // Another key: other ids.
    let other = EarlyPage::from_value(record(T0))
        .unwrap()
        .keyed("0b2f3c1e-7a44-4e0b-9a51-0c6f1d2e3a4b");
    let other = keyed_replay(&config, other, 60).unwrap();
    assert_ne!(other.events[0].event_id, beaconed.events[0].event_id);
    assert_ne!(other.events[0].session_id, beaconed.events[0].session_id);
}

#[test]
fn a_keyed_page_keeps_its_ids_when_the_visitor_has_a_session_meanwhile() {
    // Another tab started the SDK between the beacon and the replay: the
    // replay still sends the beacon's events (one copy stored), and this
    // tracker keeps its own session.
    let config = Config::new("http://127.0.0.1:8080/", "demo");
    let beaconed = keyed_replay(&config, keyed(T0), 0).unwrap();
    let mut t = tracker(MemoryStorage::default());
    t.page_view(T0 + MIN, &page("/"));
    let mine = t.take_events().remove(0);
    t.replay_early(keyed(T0), 0);
    assert_eq!(t.take_events(), beaconed.events);
    assert_eq!(t.session_id(), Some(mine.session_id));
}

#[test]
fn a_keyed_page_replays_its_calls_and_their_effects() {
    let config = Config::new("http://127.0.0.1:8080/", "demo");
    let with = |calls: &str| {
        let early = EarlyPage::from_value(json(&format!(
            r#"[[{T0}, "http://127.0.0.1:8080/"], [{calls}], []]"#
        )))
        .unwrap()
        .keyed(KEY);
        keyed_replay(&config, early, 0).unwrap()
    };
    let identified = with(r#"["identify", "u-1"], ["track", "signup"]"#);
    let users: Vec<_> = identified
        .events
        .iter()
        .map(|e| e.user_id.as_deref())
        .collect();
    assert_eq!(users, vec![None, Some("u-1"), Some("u-1")]);
    assert_eq!(identified.session.unwrap().user_id.as_deref(), Some("u-1"));

    let out = with(r#"["optOut"], ["track", "after"]"#);
    // Opting out drops what was recorded and not sent, as it always does.
    assert!(out.opted_out);
    assert!(out.events.is_empty());
    let mut t = tracker(MemoryStorage::default());
    t.replay_early(
        EarlyPage::from_value(json(&format!(
            r#"[[{T0}, "http://127.0.0.1:8080/"], [["optOut"]], []]"#
        )))
        .unwrap()
        .keyed(KEY),
        0,
    );
    assert!(t.is_opted_out());

    // Nothing before consent is given: the page's own tracker holds its
    // calls then, with the same settings (the shell replays nothing under
    // pending consent and the loader sends nothing, but the core does not
    // count on it).
    let mut config = Config::new("http://127.0.0.1:8080/", "demo");
    config.require_consent = true;
    let mut t = Tracker::new(config, MemoryStorage::default(), SeededEntropy(1));
    t.replay_early(keyed(T0), 0);
    assert!(t.take_events().is_empty());
    assert_eq!(t.session_id(), None);

    // Nothing for an opted-out visitor, as for any early page.
    let mut storage = MemoryStorage::default();
    storage.set("waymark.demo.optout", "1").unwrap();
    let mut t = tracker(storage);
    t.replay_early(keyed(T0), 0);
    assert!(t.take_events().is_empty());
}
