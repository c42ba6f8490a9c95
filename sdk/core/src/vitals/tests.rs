#![allow(clippy::unwrap_used)]

use super::*;
use crate::config::Config;
use crate::event::{EventType, Page};
use crate::ids::SeededEntropy;
use crate::storage::MemoryStorage;
use crate::tracker::Tracker;

const T0: u64 = 1_700_000_000_000;

fn page(path: &str) -> Page {
    Page {
        url: format!("http://127.0.0.1:8080{path}"),
        ..Page::default()
    }
}

fn measured() -> Vitals {
    Vitals {
        lcp_ms: Some(812.4),
        inp_ms: Some(47.6),
        cls: Some(0.012_345),
        ttfb_ms: Some(305.0),
    }
}

#[test]
fn vitals_become_page_leave_props_rounded_and_within_the_wire_limits() {
    let mut props = Vec::new();
    measured().push_props(&mut props);
    let keys: Vec<(&str, f64)> = props
        .iter()
        .map(|(k, v)| match v {
            Value::Number(n) => (k.as_str(), *n),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("lcp_ms", 812.0),
            ("inp_ms", 48.0),
            ("cls", 0.0123),
            ("ttfb_ms", 305.0)
        ]
    );
    // Not measured: left out. Out of range (a tab left open for days):
    // held at the limit the collector takes.
    let mut props = Vec::new();
    Vitals {
        lcp_ms: Some(1e12),
        cls: Some(-3.0),
        ..Vitals::default()
    }
    .push_props(&mut props);
    assert_eq!(
        props,
        vec![
            ("lcp_ms".into(), Value::Number(f64::from(MAX_VITAL_MS))),
            ("cls".into(), Value::Number(0.0)),
        ]
    );
}

#[test]
fn the_page_loads_leave_carries_its_vitals_and_an_in_app_page_does_not() {
    let mut t = Tracker::new(
        Config::new("http://127.0.0.1:8080/", "demo"),
        MemoryStorage::default(),
        SeededEntropy(3),
    );
    t.page_view(T0, &page("/"));
    t.set_vitals(measured());
    t.navigate(T0 + 1_000, &page("/app/next"));
    t.leave(T0 + 2_000);
    let leaves: Vec<_> = t
        .take_events()
        .into_iter()
        .filter(|e| e.kind == EventType::PageLeave)
        .map(|e| e.props.unwrap())
        .collect();
    assert_eq!(leaves.len(), 2);
    assert_eq!(leaves[0].get("lcp_ms"), Some(&Value::Number(812.0)));
    assert_eq!(leaves[0].get("ttfb_ms"), Some(&Value::Number(305.0)));
    assert_eq!(leaves[1].get("lcp_ms"), None, "{:?}", leaves[1]);
}
