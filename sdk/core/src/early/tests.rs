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
