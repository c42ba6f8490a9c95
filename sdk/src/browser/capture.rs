//! Auto-capture: page views of classic and single-page apps, page leaves
//! with engagement and scroll depth, and clicks.
//!
//! The listeners (and the history API's wrappers) live in the host snippet
//! (`dom.rs`) and report to one dispatcher, [`on_event`]; they are owned by
//! the tracker and removed when it is dropped. Work inside a click or a
//! navigation is bounded: a few DOM reads and one event pushed onto the
//! queue.

use crate::prelude::*;

use super::delivery::{self, Send};
use super::dom::{self, Kind};
use super::{plain_data, record, Command, Shell};
use crate::{ClickTarget, Node, Outcome, Value};
use alloc::rc::Weak;
use core::cell::RefCell;
use wasm_bindgen::prelude::*;

/// How long a navigation settles before its page view is taken, so that the
/// title the app sets after rendering is the one recorded.
const SETTLE_MS: f64 = 100.0;

/// What the host reports: `kind` (a [`Kind`]) and its readings.
pub fn on_event(weak: &Weak<RefCell<Shell>>, kind: u32, a: f64, b: f64, c: JsValue) {
    let Some(kind) = Kind::from_u32(kind) else {
        return;
    };
    match kind {
        Kind::PageHide => leaving(weak),
        Kind::VisibilityChange => {
            record(weak, Command::Active);
            if dom::is_hidden() {
                leaving(weak);
            }
        }
        Kind::Online | Kind::Offline => super::set_online(weak, kind == Kind::Online),
        Kind::Focus => record(weak, Command::Active),
        // `a` is the scroll depth in percent (`as` saturates, NaN is 0).
        Kind::Scroll => record(weak, Command::Scrolled(a as u8)),
        Kind::Navigation => navigated(weak),
        Kind::PageShow => record(weak, Command::PageView),
        Kind::Click => {
            if let Some(target) = describe_click(&c) {
                record(weak, Command::Click(target));
            }
        }
        Kind::Answer => delivery::settle(weak, a as u64, outcome(b, &c)),
        Kind::Settled => record(weak, Command::Settle),
        Kind::SendDue => delivery::pump(weak, Send::Due),
        Kind::Save => {
            if let Some(inner) = weak.upgrade() {
                if let Ok(mut shell) = inner.try_borrow_mut() {
                    shell.delivery.save(dom::now());
                }
            }
        }
    }
}

/// The page is hidden or unloaded: its page leave, and everything queued
/// goes at once, by beacon.
fn leaving(weak: &Weak<RefCell<Shell>>) {
    record(weak, Command::Leave);
    super::flush(weak, Send::Leaving);
}

/// Notes an in-app navigation (its time and URL now); its page view is taken
/// when the app has rendered, [`SETTLE_MS`] later, or before the next event,
/// whichever is first. The same URL twice is skipped by the core.
fn navigated(weak: &Weak<RefCell<Shell>>) {
    let (now, url) = (dom::now_local(), dom::href());
    record(weak, Command::Settle);
    let Some(inner) = weak.upgrade() else { return };
    if let Ok(mut shell) = inner.try_borrow_mut() {
        shell.unsettled = Some((now, url));
        if let Some(host) = &shell.host {
            dom::arm(&host.js, Kind::Settled, SETTLE_MS);
        }
    };
}

/// 2xx delivered; a network error (status 0), 408, 429 and 5xx retried
/// (after `Retry-After` when given, in seconds; the HTTP-date form is
/// treated as absent); any other status refused for good.
fn outcome(status: f64, retry_after: &JsValue) -> Outcome {
    match status as u16 {
        200..=299 => Outcome::Delivered,
        0 | 408 | 429 | 500..=599 => Outcome::Retry {
            retry_after_ms: retry_after
                .as_string()
                .and_then(|s| crate::text::parse_u64(&s))
                .map(|s| s.saturating_mul(1_000)),
        },
        _ => Outcome::Rejected,
    }
}

/// What a click may record, from the host's description of it: `[text,
/// href, type, n, key₁, value₁, … keyₙ, valueₙ, tag, id, classes, …]` — the
/// element's text (empty for inputs), its link and `type`, its `n`
/// `data-waymark-*` attributes without the prefix, then tag, id and
/// space-separated classes of the element and of up to three ancestors.
fn describe_click(described: &JsValue) -> Option<ClickTarget> {
    let Some(Value::Array(items)) = plain_data::from_js(described) else {
        return None;
    };
    let text = |i: usize| match items.get(i) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let pairs = match items.get(3) {
        Some(Value::Number(n)) => *n as usize,
        _ => return None,
    };
    let data = (0..pairs)
        .map(|p| {
            let at = 4 + 2 * p;
            (
                text(at).unwrap_or_default(),
                text(at + 1).unwrap_or_default(),
            )
        })
        .collect();
    let mut nodes = Vec::new();
    let mut at = 4 + 2 * pairs;
    while let Some(tag) = text(at) {
        let classes = text(at + 2).unwrap_or_default();
        nodes.push(Node {
            tag,
            id: text(at + 1),
            classes: crate::text::parts(&classes, b' ')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect(),
        });
        at += 3;
    }
    let mut nodes = nodes.into_iter();
    Some(ClickTarget {
        node: nodes.next()?,
        ancestors: nodes.collect(),
        text: text(0).unwrap_or_default(),
        href: text(1),
        input_type: text(2),
        data,
    })
}
