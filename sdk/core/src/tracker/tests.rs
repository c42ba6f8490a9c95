use super::*;
use crate::ids::SeededEntropy;
use crate::storage::{MemoryStorage, StorageError};
use proptest::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

const MIN: u64 = 60_000;
const T0: u64 = 1_700_000_000_000;

/// One browser profile's storage, shared by several tabs.
#[derive(Debug, Clone, Default)]
struct Shared(Rc<RefCell<MemoryStorage>>);

impl Storage for Shared {
    fn get(&self, key: &str) -> Option<String> {
        self.0.borrow().get(key)
    }
    fn set(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        self.0.borrow_mut().set(key, value)
    }
    fn remove(&mut self, key: &str) {
        self.0.borrow_mut().remove(key)
    }
    fn kind(&self) -> &'static str {
        "local"
    }
}

/// Storage whose writes always fail, like a full quota.
#[derive(Debug, Default)]
struct Full;

impl Storage for Full {
    fn get(&self, _: &str) -> Option<String> {
        None
    }
    fn set(&mut self, _: &str, _: &str) -> Result<(), StorageError> {
        Err(StorageError)
    }
    fn remove(&mut self, _: &str) {}
    fn kind(&self) -> &'static str {
        "local"
    }
}

fn tab(storage: &Shared, seed: u64) -> Tracker<Shared, SeededEntropy> {
    Tracker::new(
        Config::new("http://127.0.0.1:8080/", "demo"),
        storage.clone(),
        SeededEntropy(seed),
    )
}

fn page(path: &str) -> Page {
    Page {
        url: format!("http://127.0.0.1:8080{path}"),
        title: Some("T".into()),
        referrer: None,
    }
}

fn drain<S: Storage + 'static, E: Entropy + 'static>(t: &mut Tracker<S, E>) -> Vec<Event> {
    t.take_events()
}

/// Numbers as serde_json writes them (the browser uses JavaScript's).
#[allow(clippy::unwrap_used)]
fn serde_number(n: f64, out: &mut String) {
    out.push_str(&serde_json::to_string(&n).unwrap());
}

/// The request body the SDK would post at `now` for what `t` recorded: the
/// real encoder and send queue, every event in one batch.
#[allow(clippy::unwrap_used)]
fn body<S: Storage + 'static, E: Entropy + 'static>(t: &mut Tracker<S, E>, now: u64) -> String {
    let limits = crate::QueueLimits {
        batch_events: 500,
        ..crate::QueueLimits::default()
    };
    let mut queue = SendQueue::new(limits);
    t.drain_into(&mut queue, now, &mut serde_number);
    queue
        .poll_transmit(now, &t.config().site, crate::Urgency::Now)
        .unwrap()
        .body
}

fn prop<'a>(e: &'a Event, name: &str) -> Option<&'a Value> {
    match e.props.as_ref()? {
        Value::Object(entries) => entries.iter().find(|(k, _)| k == name).map(|(_, v)| v),
        _ => None,
    }
}

#[test]
fn first_page_view_creates_and_persists_a_session() {
    let storage = Shared::default();
    let mut t = tab(&storage, 1);
    assert_eq!(t.session_id(), None);
    t.page_view(T0, &page("/"));
    let events = drain(&mut t);
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(
        (e.kind, e.ts, e.seq, e.session_index),
        (EventType::PageView, T0, 1, 1)
    );
    assert_eq!(Some(e.session_id.clone()), t.session_id());
    assert_eq!(Some(e.visitor_id.clone()), t.visitor_id());
    assert_eq!(t.config().batch_url(), "http://127.0.0.1:8080/v1/batch");
}

#[test]
fn reload_within_timeout_continues_the_session() {
    let storage = Shared::default();
    let mut first = tab(&storage, 1);
    first.page_view(T0, &page("/"));
    let a = drain(&mut first).remove(0);
    let mut reloaded = tab(&storage, 2);
    reloaded.page_view(T0 + 29 * MIN + 59_000, &page("/about"));
    let b = drain(&mut reloaded).remove(0);
    assert_eq!(
        (b.session_id, b.visitor_id, b.seq, b.session_index),
        (a.session_id, a.visitor_id, 2, 1)
    );
}

#[test]
fn idle_gap_rotates_and_closes_the_old_session_once() {
    let storage = Shared::default();
    let mut t = tab(&storage, 1);
    t.page_view(T0, &page("/"));
    t.track(T0 + 10 * MIN, &page("/pricing"), "signup", None);
    let old = drain(&mut t);
    t.page_view(T0 + 10 * MIN + 30 * MIN + 1, &page("/"));
    let events = drain(&mut t);
    assert_eq!(events.len(), 2);
    let (ended, next) = (&events[0], &events[1]);
    assert_eq!(ended.kind, EventType::VisitEnded);
    assert_eq!(ended.session_id, old[0].session_id);
    assert_eq!(
        ended.ts,
        T0 + 10 * MIN,
        "ends at the last activity, not when noticed"
    );
    assert_eq!(ended.url, "http://127.0.0.1:8080/pricing", "exit page");
    assert_eq!(prop(ended, "reason"), Some(&Value::String("idle".into())));
    assert_eq!(
        prop(ended, "duration_ms"),
        Some(&Value::Number((10 * MIN) as f64))
    );
    assert_eq!(prop(ended, "event_count"), Some(&Value::Number(2.0)));
    assert_ne!(next.session_id, old[0].session_id);
    assert_eq!(
        (next.visitor_id.as_str(), next.session_index, next.seq),
        (old[0].visitor_id.as_str(), 2, 1)
    );
}

#[test]
fn another_tab_sees_the_rotation_and_does_not_close_again() {
    let storage = Shared::default();
    let (mut a, mut b) = (tab(&storage, 1), tab(&storage, 2));
    a.page_view(T0, &page("/"));
    b.page_view(T0 + MIN, &page("/b"));
    drain(&mut a);
    drain(&mut b);
    a.page_view(T0 + 40 * MIN, &page("/"));
    b.page_view(T0 + 40 * MIN + 1, &page("/b"));
    let (ea, eb) = (drain(&mut a), drain(&mut b));
    assert_eq!(
        ea.iter()
            .filter(|e| e.kind == EventType::VisitEnded)
            .count(),
        1
    );
    assert!(eb.iter().all(|e| e.kind != EventType::VisitEnded));
    assert_eq!(ea[1].session_id, eb[0].session_id);
}

#[test]
fn identify_links_the_user_without_splitting_the_session() {
    let storage = Shared::default();
    let mut t = tab(&storage, 1);
    t.page_view(T0, &page("/"));
    t.identify(
        T0 + 1,
        &page("/"),
        "u-42",
        Some(Value::Object(vec![(
            "plan".into(),
            Value::String("pro".into()),
        )])),
    );
    t.track(T0 + 2, &page("/"), "buy", None);
    let e = drain(&mut t);
    assert_eq!(e[1].kind, EventType::Identify);
    assert!(e[1].props.is_some());
    assert_eq!(e[0].user_id, None);
    assert_eq!(e[1].user_id.as_deref(), Some("u-42"));
    assert_eq!(e[2].user_id.as_deref(), Some("u-42"));
    assert!(e.iter().all(|x| x.session_id == e[0].session_id));
    assert_eq!(e.iter().map(|x| x.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
}

#[test]
fn reset_ends_the_session_and_starts_a_new_visitor() {
    let storage = Shared::default();
    let mut t = tab(&storage, 1);
    t.page_view(T0, &page("/"));
    t.identify(T0 + 1, &page("/"), "u-42", None);
    let before = drain(&mut t);
    t.reset(T0 + 5 * MIN);
    t.page_view(T0 + 3 * 60 * MIN, &page("/"));
    let e = drain(&mut t);
    assert_eq!(e.len(), 2);
    assert_eq!((e[0].kind, e[0].ts), (EventType::VisitEnded, T0 + 1));
    assert_eq!(prop(&e[0], "reason"), Some(&Value::String("reset".into())));
    assert_eq!(e[0].user_id.as_deref(), Some("u-42"));
    assert_ne!(e[1].visitor_id, before[0].visitor_id);
    assert_eq!(
        (e[1].user_id.as_deref(), e[1].session_index, e[1].seq),
        (None, 1, 1)
    );
    assert_eq!(e[1].ts, T0 + 3 * 60 * MIN);
}

#[test]
fn opt_out_is_remembered_across_reloads() {
    let storage = Shared::default();
    let mut t = tab(&storage, 1);
    t.page_view(T0, &page("/"));
    t.opt_out();
    assert_eq!(t.pending_len(), 0);
    let mut reloaded = tab(&storage, 2);
    assert!(reloaded.is_opted_out());
    reloaded.page_view(T0 + 1, &page("/"));
    reloaded.track(T0 + 2, &page("/"), "x", None);
    assert_eq!(reloaded.pending_len(), 0);
    reloaded.opt_in();
    reloaded.page_view(T0 + 3, &page("/"));
    assert_eq!(reloaded.pending_len(), 1);
    assert!(!tab(&storage, 3).is_opted_out());
}

#[test]
fn failing_storage_degrades_to_memory_and_keeps_one_session() {
    let mut t = Tracker::new(Config::new("http://x", "demo"), Full, SeededEntropy(5));
    t.page_view(T0, &page("/"));
    t.page_view(T0 + MIN, &page("/a"));
    let e = drain(&mut t);
    assert_eq!(t.storage_kind(), "memory");
    assert_eq!(e[0].session_id, e[1].session_id);
    assert_eq!(e[1].seq, 2);
}

#[test]
fn events_reach_the_queue_in_order_through_the_encoder() {
    let storage = Shared::default();
    let mut t = tab(&storage, 1);
    for i in 0..57 {
        t.track(T0 + i, &page("/"), "e", None);
    }
    let mut queue = SendQueue::new(crate::QueueLimits::default());
    t.drain_into(&mut queue, T0 + 1_000, &mut serde_number);
    assert_eq!((queue.len(), t.pending_len()), (57, 0));
    let first = queue
        .poll_transmit(T0 + 1_000, "demo", crate::Urgency::Now)
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(
        (json["sent_at"].as_u64(), json["site"].as_str()),
        (Some(T0 + 1_000), Some("demo"))
    );
    let seqs: Vec<u64> = json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
}

#[test]
fn non_object_props_are_dropped() {
    let storage = Shared::default();
    let mut t = tab(&storage, 1);
    t.track(T0, &page("/"), "e", Some(Value::Array(vec![])));
    assert_eq!(drain(&mut t)[0].props, None);
}

#[test]
fn wire_format_of_a_page_view() {
    let storage = Shared::default();
    let mut t = tab(&storage, 1);
    t.set_context(Value::Object(vec![(
        "language".into(),
        Value::String("en".into()),
    )]));
    t.page_view(
        T0,
        &Page {
            url: "http://h/".into(),
            title: Some("Home".into()),
            referrer: None,
        },
    );
    let json: serde_json::Value = serde_json::from_str(&body(&mut t, T0 + 5)).unwrap();
    let e = &json["events"][0];
    assert_eq!(
        (
            json["v"].as_u64(),
            json["site"].as_str(),
            json["sent_at"].as_u64()
        ),
        (Some(1), Some("demo"), Some(T0 + 5))
    );
    assert_eq!(e["type"], "page_view");
    assert_eq!(e["context"]["language"], "en");
    let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "event_id",
        "type",
        "ts",
        "session_id",
        "visitor_id",
        "session_index",
        "seq",
        "url",
        "title",
    ] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    assert!(
        !keys.contains(&"user_id") && !keys.contains(&"referrer"),
        "absent values are omitted"
    );
}

#[test]
fn opt_in_splits_close_the_session_with_their_reason() {
    let mut t = splitting_tab(&Shared::default(), 4);
    let berlin = |ms| Now {
        ms,
        utc_offset_min: 60,
    };
    // 23:50 and 00:05 in Berlin, 15 minutes apart.
    t.page_view(berlin(T0 + 37 * MIN), &page("/?utm_source=a"));
    t.page_view(berlin(T0 + 52 * MIN), &page("/?utm_source=a"));
    t.page_view(berlin(T0 + 53 * MIN), &page("/?utm_source=a"));
    t.page_view(berlin(T0 + 54 * MIN), &page("/?gclid=x"));
    let e = drain(&mut t);
    let reasons: Vec<_> = e.iter().filter_map(|e| prop(e, "reason")).collect();
    let s = |r: &str| Value::String(r.into());
    assert_eq!(reasons, [&s("midnight"), &s("campaign")]);
    let views: Vec<_> = e.iter().filter(|e| e.kind == EventType::PageView).collect();
    let indices: Vec<_> = views.iter().map(|v| v.session_index).collect();
    assert_eq!(indices, [1, 2, 2, 3]);
    assert_eq!(
        views[1].previous_session_id.as_deref(),
        Some(views[0].session_id.as_str())
    );
    assert_eq!(
        views[2].previous_session_id, None,
        "only on a session's first event"
    );
}

/// A tab whose sessions also end at local midnight and on a new campaign.
fn splitting_tab(storage: &Shared, seed: u64) -> Tracker<Shared, SeededEntropy> {
    let mut config = Config::new("http://127.0.0.1:8080/", "demo");
    config.session.split_at_midnight = true;
    config.session.split_on_campaign = true;
    Tracker::new(config, storage.clone(), SeededEntropy(seed))
}

#[derive(Debug, Clone)]
enum Step {
    /// Time moves by this many ms (negative: the clock went backwards).
    Clock(i64),
    /// An event in a tab: a custom event, or a page view with a campaign.
    Event {
        tab: usize,
        campaign: Option<u8>,
    },
    Reload {
        tab: usize,
    },
    Reset {
        tab: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (-10 * MIN as i64..3 * 60 * MIN as i64).prop_map(Step::Clock),
        6 => (0..3usize, prop::option::of(0..3u8))
            .prop_map(|(tab, campaign)| Step::Event { tab, campaign }),
        1 => (0..3usize).prop_map(|tab| Step::Reload { tab }),
        1 => (0..3usize).prop_map(|tab| Step::Reset { tab }),
    ]
}

proptest! {
    /// Over any sequence of tabs, reloads, resets and clock moves: each
    /// visitor's sessions are numbered 1, 2, 3… without gaps, never overlap,
    /// and every closed session has exactly one visit_ended whose end and
    /// duration match its events.
    #[test]
    fn sessions_stay_consistent_across_tabs_and_clock_moves(steps in prop::collection::vec(step(), 1..120)) {
        let storage = Shared::default();
        let mut seed = 10;
        let mut tabs: Vec<_> = (0..3).map(|i| splitting_tab(&storage, i + 1)).collect();
        // Sessions also split at midnight in Berlin and on a new campaign.
        let at = |ms| Now { ms, utc_offset_min: 60 };
        let mut now = T0;
        let mut events = Vec::new();
        for s in steps {
            match s {
                Step::Clock(d) => now = now.saturating_add_signed(d),
                Step::Event { tab: i, campaign: None } => tabs[i].track(at(now), &page("/"), "e", None),
                Step::Event { tab: i, campaign: Some(c) } => {
                    tabs[i].page_view(at(now), &page(&format!("/?utm_source={c}")))
                }
                Step::Reload { tab: i } => {
                    events.extend(drain(&mut tabs[i]));
                    seed += 1;
                    tabs[i] = splitting_tab(&storage, seed);
                    tabs[i].page_view(at(now), &page("/"));
                }
                Step::Reset { tab: i } => tabs[i].reset(at(now)),
            }
            for t in &mut tabs {
                events.extend(drain(t));
            }
        }

        let open = tabs[0].session_id();
        let mut sessions: HashMap<String, Vec<&Event>> = HashMap::new();
        for e in &events {
            sessions.entry(e.session_id.clone()).or_default().push(e);
        }
        let mut by_visitor: HashMap<&str, Vec<(u32, u64, u64)>> = HashMap::new();
        for (id, evs) in &sessions {
            let ended: Vec<_> = evs.iter().filter(|e| e.kind == EventType::VisitEnded).collect();
            let closed = open.as_deref() != Some(id.as_str());
            prop_assert_eq!(ended.len(), usize::from(closed), "session {} closed {} times", id, ended.len());
            let activity: Vec<_> = evs.iter().filter(|e| e.kind != EventType::VisitEnded).collect();
            prop_assert!(!activity.is_empty());
            prop_assert!(activity.iter().all(|e| e.visitor_id == activity[0].visitor_id && e.session_index == activity[0].session_index));
            let seqs: Vec<u32> = activity.iter().map(|e| e.seq).collect();
            prop_assert_eq!(seqs, (1..=activity.len() as u32).collect::<Vec<_>>());
            let start = activity[0].ts;
            let last = activity.iter().map(|e| e.ts).fold(start, u64::max);
            if let Some(end) = ended.first() {
                prop_assert_eq!(end.ts, last);
                prop_assert_eq!(prop(end, "duration_ms"), Some(&Value::Number((last - start) as f64)));
                prop_assert_eq!(prop(end, "event_count"), Some(&Value::Number(activity.len() as f64)));
            }
            by_visitor.entry(activity[0].visitor_id.as_str()).or_default().push((activity[0].session_index, start, last));
        }
        for list in by_visitor.values_mut() {
            list.sort();
            prop_assert_eq!(list.iter().map(|s| s.0).collect::<Vec<_>>(), (1..=list.len() as u32).collect::<Vec<_>>());
            for pair in list.windows(2) {
                prop_assert!(pair[0].2 <= pair[1].1 || pair[1].1 == T0, "sessions overlap: {:?}", pair);
            }
        }
    }
}

/// The golden batch: what this SDK sends for a short visit, a custom event,
/// an identify and a return after the idle timeout. The collector's tests
/// replay the same file (`tests/fixtures/batch-v1.json`), so the two cannot
/// drift. Regenerate with `WAYMARK_BLESS=1 cargo test -p waymark-sdk-core golden`.
#[test]
fn golden_batch_matches_the_fixture() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/batch-v1.json"
    );
    let mut t = Tracker::new(
        Config::new("http://127.0.0.1:8080", "demo"),
        MemoryStorage::default(),
        SeededEntropy(42),
    );
    t.set_context(Value::Object(vec![
        (
            "user_agent".into(),
            Value::String("Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0".into()),
        ),
        ("language".into(), Value::String("en-GB".into())),
        ("screen".into(), Value::String("1920x1080".into())),
        ("time_zone".into(), Value::String("Europe/London".into())),
    ]));
    let home = Page {
        url: "http://127.0.0.1:8080/?utm_source=newsletter".into(),
        title: Some("Home".into()),
        referrer: Some("https://news.example/".into()),
    };
    t.page_view(T0, &home);
    let plan = Value::Object(vec![
        ("plan".into(), Value::String("pro".into())),
        ("seats".into(), Value::Number(3.0)),
    ]);
    t.track(T0 + 1_500, &page("/pricing.html"), "signup", Some(plan));
    t.identify(
        T0 + 2_000,
        &page("/pricing.html"),
        "u-42",
        Some(Value::Object(vec![("verified".into(), Value::Bool(true))])),
    );
    t.page_view(T0 + 2_000 + 31 * MIN, &page("/"));
    let json = body(&mut t, T0 + 2_000 + 31 * MIN + 40) + "\n";
    if std::env::var_os("WAYMARK_BLESS").is_some() {
        std::fs::write(fixture, &json).unwrap();
    }
    let expected = std::fs::read_to_string(fixture).unwrap_or_default();
    assert_eq!(
        json, expected,
        "the SDK's wire format changed: update {fixture} (WAYMARK_BLESS=1) and the collector"
    );
}

fn kinds(events: &[Event]) -> Vec<EventType> {
    events.iter().map(|e| e.kind).collect()
}

#[test]
fn in_app_navigation_leaves_the_old_page_and_skips_repeats() {
    let storage = Shared::default();
    let mut t = tab(&storage, 1);
    t.page_view(T0, &page("/"));
    t.scrolled(60);
    t.navigate(T0 + 5_000, &page("/"));
    t.navigate(T0 + 5_000, &page("/products"));
    t.navigate(T0 + 6_000, &page("/products"));
    t.navigate(T0 + 9_000, &page("/products#reviews"));
    let e = drain(&mut t);
    use EventType::{PageLeave, PageView};
    assert_eq!(
        kinds(&e),
        [PageView, PageLeave, PageView, PageLeave, PageView]
    );
    assert_eq!(e[1].url, "http://127.0.0.1:8080/");
    assert_eq!(
        prop(&e[1], "page_view_id"),
        Some(&Value::String(e[0].event_id.clone()))
    );
    assert_eq!(prop(&e[1], "engaged_ms"), Some(&Value::Number(5_000.0)));
    assert_eq!(prop(&e[1], "scroll_pct"), Some(&Value::Number(60.0)));
    assert_eq!(
        e[2].referrer.as_deref(),
        Some("http://127.0.0.1:8080/"),
        "the previous in-app URL"
    );
    assert_eq!(
        e[4].referrer.as_deref(),
        Some("http://127.0.0.1:8080/products")
    );
}

#[test]
fn leaving_twice_without_engagement_sends_one_page_leave() {
    let storage = Shared::default();
    let mut t = tab(&storage, 1);
    t.page_view(T0, &page("/"));
    t.set_active(T0 + 2_000, false);
    t.leave(T0 + 2_000); // hidden
    t.leave(T0 + 9_000); // then closed
    t.set_active(T0 + 20_000, true);
    t.leave(T0 + 21_000); // back, then hidden again
    let leaves: Vec<_> = drain(&mut t)
        .into_iter()
        .filter(|e| e.kind == EventType::PageLeave)
        .collect();
    assert_eq!(leaves.len(), 2);
    assert_eq!(
        prop(&leaves[1], "engaged_ms"),
        Some(&Value::Number(3_000.0)),
        "cumulative"
    );
}

#[test]
fn secrets_in_urls_and_referrers_never_leave() {
    let storage = Shared::default();
    let mut t = tab(&storage, 1);
    let login = Page {
        url: "http://127.0.0.1:8080/reset?token=abc&step=2".into(),
        title: None,
        referrer: Some("https://mail.example/?email=jane%40example.com".into()),
    };
    t.page_view(T0, &login);
    t.navigate(T0 + 1, &page("/done?password=hunter2"));
    let e = drain(&mut t);
    let text = serde_json::to_string(&e).unwrap();
    assert!(
        !text.contains("abc") && !text.contains("hunter2") && !text.contains("jane"),
        "{text}"
    );
    assert_eq!(e[0].url, "http://127.0.0.1:8080/reset?step=2");
    assert_eq!(e[0].referrer.as_deref(), Some("https://mail.example/"));
    // The collector runs the same rule again: it finds nothing to remove.
    for url in e.iter().map(|e| &e.url).chain(e[0].referrer.as_ref()) {
        assert_eq!(
            &waymark_wire::redact_url(url, crate::DEFAULT_SENSITIVE_PARAMS),
            url
        );
    }
    let session = Session::decode(&storage.get("waymark.demo.session").unwrap()).unwrap();
    assert_eq!(session.last_url, "http://127.0.0.1:8080/done");
}

#[test]
fn context_goes_once_per_page_load_and_once_per_session() {
    let storage = Shared::default();
    let mut t = tab(&storage, 1);
    t.set_context(Value::Object(vec![(
        "language".into(),
        Value::String("de".into()),
    )]));
    t.page_view(T0, &page("/"));
    t.track(T0 + 1, &page("/"), "a", None);
    t.navigate(T0 + 2, &page("/b"));
    t.track(T0 + 40 * MIN, &page("/b"), "after_idle", None);
    let e = drain(&mut t);
    let with: Vec<_> = e
        .iter()
        .filter(|e| e.context.is_some())
        .map(|e| (e.kind, e.seq))
        .collect();
    assert_eq!(with, [(EventType::PageView, 1), (EventType::Custom, 1)]);
}

#[test]
fn clicks_become_click_events_named_by_data_attribute() {
    use crate::click::{ClickTarget, Node};
    let storage = Shared::default();
    let mut t = tab(&storage, 1);
    let button = ClickTarget {
        node: Node {
            tag: "button".into(),
            id: Some("buy".into()),
            classes: vec![],
        },
        text: "Buy now".into(),
        data: vec![("event".into(), "purchase".into())],
        ..ClickTarget::default()
    };
    t.click(T0, &page("/cart"), &button);
    let e = drain(&mut t);
    assert_eq!(
        (e[0].kind, e[0].name.as_deref()),
        (EventType::Click, Some("purchase"))
    );
    assert_eq!(prop(&e[0], "text"), Some(&Value::String("Buy now".into())));
}

#[test]
fn consent_mode_holds_everything_until_granted() {
    let storage = Shared::default();
    let mut config = Config::new("http://x", "demo");
    config.require_consent = true;
    let mut t = Tracker::new(config.clone(), storage.clone(), SeededEntropy(1));
    t.page_view(T0, &page("/"));
    t.track(T0 + 5, &page("/"), "early", None);
    assert_eq!(t.consent_state(), Consent::Pending);
    assert_eq!((t.pending_len(), t.session_id()), (0, None));
    assert!(
        storage.0.borrow().get("waymark.demo.session").is_none(),
        "nothing stored"
    );
    t.consent(true);
    let e = drain(&mut t);
    assert_eq!(kinds(&e), [EventType::PageView, EventType::Custom]);
    assert_eq!(
        (e[0].ts, e[1].ts),
        (T0, T0 + 5),
        "held calls keep their time"
    );
    assert!(t.session_id().is_some());

    let mut refused = Tracker::new(config, Shared::default(), SeededEntropy(2));
    refused.page_view(T0, &page("/"));
    refused.consent(false);
    refused.track(T0 + 1, &page("/"), "x", None);
    refused.consent(true);
    assert_eq!(refused.pending_len(), 0, "a refusal drops what was held");
}

#[test]
fn do_not_track_is_honoured_only_when_asked() {
    let mut config = Config::new("http://x", "demo");
    config.do_not_track = true;
    let mut ignoring = Tracker::new(config.clone(), Shared::default(), SeededEntropy(1));
    ignoring.page_view(T0, &page("/"));
    assert_eq!(ignoring.pending_len(), 1);
    config.respect_dnt = true;
    let storage = Shared::default();
    let mut honouring = Tracker::new(config, storage.clone(), SeededEntropy(1));
    honouring.page_view(T0, &page("/"));
    honouring.identify(T0, &page("/"), "u", None);
    assert!(honouring.is_blocked());
    assert_eq!(honouring.pending_len(), 0);
    assert!(storage.0.borrow().get("waymark.demo.session").is_none());
}

#[test]
fn long_urls_titles_referrers_and_names_are_cut_to_the_wire_limits() {
    use waymark_wire::{MAX_NAME_CHARS, MAX_REFERRER_CHARS, MAX_TITLE_CHARS, MAX_URL_CHARS};
    let storage = Shared::default();
    let mut t = tab(&storage, 1);
    let long = Page {
        url: format!("http://h/?q={}", "é".repeat(3_000)),
        title: Some("t".repeat(1_500)),
        referrer: Some(format!("http://r/{}", "x".repeat(3_000))),
    };
    t.page_view(T0, &long);
    t.track(T0 + 1, &long, &"n".repeat(300), None);
    t.navigate(
        T0 + 2,
        &Page {
            url: format!("http://h/?q={}", "é".repeat(2_999)),
            ..Page::default()
        },
    );
    let events = drain(&mut t);
    let chars = |s: &str| s.chars().count();
    assert_eq!(events.len(), 2, "the same URL, cut, is no new page view");
    for e in &events {
        assert_eq!(chars(&e.url), MAX_URL_CHARS);
        assert!(long.url.starts_with(&e.url));
        assert_eq!(chars(e.title.as_deref().unwrap()), MAX_TITLE_CHARS);
    }
    assert_eq!(
        chars(events[0].referrer.as_deref().unwrap()),
        MAX_REFERRER_CHARS
    );
    assert_eq!(chars(events[1].name.as_deref().unwrap()), MAX_NAME_CHARS);
    assert!(
        t.take_problems().is_empty(),
        "cutting text is no problem to report"
    );
}

#[test]
fn oversized_props_and_context_are_dropped_and_their_events_kept() {
    let storage = Shared::default();
    let mut t = tab(&storage, 1);
    let big = |n: usize| Value::Object(vec![("blob".into(), Value::String("x".repeat(n)))]);
    t.set_context(big(20_000));
    t.track(T0, &page("/"), "big", Some(big(16 * 1024)));
    t.track(T0 + 1, &page("/"), "fits", Some(big(16 * 1024 - 11)));
    let json: serde_json::Value = serde_json::from_str(&body(&mut t, T0 + 2)).unwrap();
    let events = json["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        (
            events[0]["name"].as_str(),
            events[0].get("props"),
            events[0].get("context")
        ),
        (Some("big"), None, None)
    );
    assert_eq!(
        events[1]["props"].to_string().len(),
        16 * 1024,
        "exactly at the limit is kept"
    );
    assert_eq!(
        t.take_problems(),
        [Problem::PropsTooLarge, Problem::ContextTooLarge]
    );
    assert!(t.take_problems().is_empty());
}

#[test]
fn a_user_id_over_the_limit_is_refused_with_a_problem() {
    let storage = Shared::default();
    let mut t = tab(&storage, 1);
    t.identify(T0, &page("/"), &"u".repeat(257), None);
    t.identify(T0 + 1, &page("/"), &"u".repeat(256), None);
    let events = drain(&mut t);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].user_id.as_deref().map(str::len), Some(256));
    assert_eq!(t.take_problems(), [Problem::UserIdTooLong]);
}

#[test]
fn events_dropped_before_the_queue_are_reported_with_the_next_batch() {
    let storage = Shared::default();
    let mut t = tab(&storage, 1);
    for i in 0..(MAX_PENDING_EVENTS as u64 + 3) {
        t.track(T0 + i, &page("/"), "e", None);
    }
    let mut queue = SendQueue::new(crate::QueueLimits {
        stored_events: 2_000,
        stored_bytes: 1 << 20,
        ..crate::QueueLimits::default()
    });
    t.drain_into(&mut queue, T0, &mut serde_number);
    assert_eq!((queue.len(), queue.dropped()), (MAX_PENDING_EVENTS, 3));
}
