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
use super::{plain_data, record, Shell};
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
            record(weak, &mut |core| {
                core.set_active(dom::now(), dom::is_active())
            });
            if dom::is_hidden() {
                leaving(weak);
            }
        }
        Kind::Online | Kind::Offline => super::set_online(weak, kind == Kind::Online),
        Kind::Focus => record(weak, &mut |core| {
            core.set_active(dom::now(), dom::is_active())
        }),
        // `a` is the scroll depth in percent (`as` saturates, NaN is 0).
        Kind::Scroll => record(weak, &mut |core| core.scrolled(a as u8)),
        Kind::Navigation => navigated(weak),
        Kind::PageShow => record(weak, &mut |core| {
            core.page_view(dom::now_local(), &dom::page(true))
        }),
        Kind::Click => {
            if let Some(target) = describe_click(&c) {
                let page = dom::page(false);
                record(weak, &mut |core| {
                    core.click(dom::now_local(), &page, &target)
                });
            }
        }
        Kind::Answer => delivery::settle(weak, a as u64, outcome(b, &c)),
        Kind::Settled => record(weak, &mut |_| {}),
        Kind::SendDue => delivery::pump(weak, Send::Due),
    }
}

/// The page is hidden or unloaded: its page leave, and everything queued
/// goes at once, by beacon.
fn leaving(weak: &Weak<RefCell<Shell>>) {
    record(weak, &mut |core| core.leave(dom::now_local()));
    super::flush(weak, Send::Leaving);
}

/// Notes an in-app navigation (its time and URL now); its page view is taken
/// when the app has rendered, [`SETTLE_MS`] later, or before the next event,
/// whichever is first. The same URL twice is skipped by the core.
fn navigated(weak: &Weak<RefCell<Shell>>) {
    let (now, url) = (dom::now_local(), dom::href());
    record(weak, &mut |_| {});
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

/// What a click may record, from the host's description of it.
fn describe_click(described: &JsValue) -> Option<ClickTarget> {
    let read = plain_data::from_js(described)?;
    let data = match read.get("data") {
        Some(Value::Array(pairs)) => pairs
            .iter()
            .filter_map(|pair| match pair {
                Value::Array(kv) => match &kv[..] {
                    [Value::String(k), Value::String(v)] => Some((k.clone(), v.clone())),
                    _ => None,
                },
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let ancestors = match read.get("ancestors") {
        Some(Value::Array(nodes)) => nodes.iter().filter_map(node_of).collect(),
        _ => Vec::new(),
    };
    Some(ClickTarget {
        node: node_of(read.get("node")?)?,
        ancestors,
        text: string(read.get("text")).unwrap_or_default(),
        href: string(read.get("href")),
        input_type: string(read.get("type")),
        data,
    })
}

/// A non-empty string.
fn string(value: Option<&Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// An element's tag, id and classes.
fn node_of(value: &Value) -> Option<Node> {
    let classes = match value.get("classes") {
        Some(Value::Array(list)) => list.iter().filter_map(|c| string(Some(c))).collect(),
        _ => Vec::new(),
    };
    Some(Node {
        tag: string(value.get("tag"))?,
        id: string(value.get("id")),
        classes,
    })
}
