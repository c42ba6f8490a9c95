//! Delivery: the core's [`SendQueue`] driven by one timer, `fetch` with
//! keepalive while the page lives, `sendBeacon` when it is being left,
//! retries and an offline pause, and a persisted queue per tab.
//!
//! Each tab keeps its unacknowledged events in localStorage under
//! `waymark.<site>.queue.<tab>`, the tab id living in sessionStorage so a
//! reload finds its own queue and sends it first. A queue whose tab has not
//! written for [`LEASE_MS`] (closed, crashed) is adopted by the next tab that
//! starts; two tabs never send from the same key at once. A write that fails
//! (quota) leaves the queue in memory only.

use super::dom;
use super::Shell;
pub use crate::Urgency as Send;
use crate::{Outcome, QueueLimits, SendQueue, Transmit};
use std::cell::RefCell;
use std::rc::Weak;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::RequestInit;

/// A tab's persisted queue older than this is another tab's to adopt.
pub const LEASE_MS: u64 = 2 * 60_000;

pub struct Delivery {
    queue: SendQueue,
    url: String,
    site: String,
    key: String,
    local: Option<web_sys::Storage>,
    timer: Option<dom::Timeout>,
    /// A refused batch was already reported on the console.
    pub warned_rejected: bool,
}

impl Delivery {
    /// This tab's queue, with what it left before a reload and what closed
    /// tabs left behind.
    pub fn open(url: String, site: &str, now: u64, tab_id: &str) -> Delivery {
        let local = web_sys::window().and_then(|w| w.local_storage().ok().flatten());
        let prefix = queue_prefix(site);
        let key = [prefix.as_str(), tab_id].concat();
        let mut delivery = Delivery {
            queue: SendQueue::new(QueueLimits::default()),
            url,
            site: site.to_owned(),
            key,
            local,
            timer: None,
            warned_rejected: false,
        };
        delivery.adopt(&prefix, now);
        delivery
    }

    /// Takes over this tab's own queue and any abandoned one.
    fn adopt(&mut self, prefix: &str, now: u64) {
        let Some(local) = self.local.clone() else {
            return;
        };
        let keys: Vec<String> = (0..local.length().unwrap_or(0))
            .filter_map(|i| local.key(i).ok().flatten())
            .collect();
        for key in keys.iter().filter(|k| k.starts_with(prefix)) {
            let Some(value) = local.get_item(key).ok().flatten() else {
                continue;
            };
            let (heartbeat, persisted) = value.split_once('\n').unwrap_or(("", ""));
            let heartbeat = crate::text::parse_u64(heartbeat).unwrap_or(0);
            let own = *key == self.key;
            if own || now.saturating_sub(heartbeat) > LEASE_MS {
                let _ = local.remove_item(key);
                self.queue.restore(persisted, now);
            }
        }
        self.persist(now);
    }

    pub fn push(&mut self, event_json: String, now: u64) {
        self.queue.push(event_json, now);
    }

    /// Drops everything, persisted copy included (opt-out).
    pub fn clear(&mut self, now: u64) {
        self.queue.clear();
        self.persist(now);
    }

    pub fn set_online(&mut self, online: bool, now: u64) {
        self.queue.set_online(online, now);
    }

    /// Writes the queue (or removes it when empty); a refusal leaves it in memory.
    pub fn persist(&self, now: u64) {
        let Some(local) = &self.local else { return };
        if self.queue.is_empty() {
            let _ = local.remove_item(&self.key);
            return;
        }
        let mut value = String::new();
        crate::text::push_u64(&mut value, now);
        value.push('\n');
        value.push_str(&self.queue.encode());
        let _ = local.set_item(&self.key, &value);
    }
}

fn queue_prefix(site: &str) -> String {
    ["waymark.", site, ".queue."].concat()
}

/// Sends what `send` asks for, then arms the one timer for the next deadline.
pub fn pump(weak: &Weak<RefCell<Shell>>, send: Send) {
    let Some(inner) = weak.upgrade() else { return };
    let Ok(mut shell) = inner.try_borrow_mut() else {
        return;
    };
    let delivery = &mut shell.delivery;
    let now = dom::now();
    let leaving = send == Send::Leaving;
    while let Some(transmit) = delivery.queue.poll_transmit(now, &delivery.site, send) {
        if leaving && beacon(&delivery.url, &transmit.body) {
            // The browser took it and delivers it after the page is gone.
            delivery
                .queue
                .on_result(transmit.id, Outcome::Delivered, now, 0.0);
            continue;
        }
        fetch(weak, &delivery.url, transmit);
        break;
    }
    delivery.persist(now);
    delivery.timer = delivery.queue.poll_timeout().and_then(|at| {
        let weak = weak.clone();
        let wait = at.saturating_sub(now).min(i32::MAX as u64) as i32;
        dom::Timeout::new(wait, move || pump(&weak, Send::Due))
    });
}

fn beacon(url: &str, body: &str) -> bool {
    web_sys::window().is_some_and(|w| {
        w.navigator()
            .send_beacon_with_opt_str(url, Some(body))
            .unwrap_or(false)
    })
}

/// `fetch` as `text/plain` (no CORS preflight) with keepalive; the answer
/// goes back to the queue.
fn fetch(weak: &Weak<RefCell<Shell>>, url: &str, transmit: Transmit) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(&transmit.body));
    // `keepalive` lets the request outlive the page; set by name because
    // web-sys marks the setter unstable.
    let _ = js_sys::Reflect::set(&init, &"keepalive".into(), &JsValue::TRUE);
    let id = transmit.id;
    let answered = {
        let weak = weak.clone();
        Closure::once_into_js(move |response: JsValue| settle(&weak, id, outcome_of(&response)))
    };
    let failed = {
        let weak = weak.clone();
        Closure::once_into_js(move |_: JsValue| {
            settle(
                &weak,
                id,
                Outcome::Retry {
                    retry_after_ms: None,
                },
            )
        })
    };
    let promise: JsValue = window.fetch_with_str_and_init(url, &init).into();
    // `then` called by name: its typed binding wants closures we would have
    // to keep alive, these free themselves once called.
    if let Some(then) = js_sys::Reflect::get(&promise, &"then".into())
        .ok()
        .and_then(|t| t.dyn_into::<js_sys::Function>().ok())
    {
        let _ = then.call2(&promise, &answered, &failed);
    }
}

/// 2xx delivered; 408, 429 and 5xx retried (after `Retry-After` when given);
/// any other status refused for good.
fn outcome_of(response: &JsValue) -> Outcome {
    let Some(response) = response.dyn_ref::<web_sys::Response>() else {
        return Outcome::Retry {
            retry_after_ms: None,
        };
    };
    match response.status() {
        200..=299 => Outcome::Delivered,
        408 | 429 | 500..=599 => {
            let header = response.headers().get("retry-after").ok().flatten();
            Outcome::Retry {
                retry_after_ms: header.as_deref().and_then(retry_after_ms),
            }
        }
        _ => Outcome::Rejected,
    }
}

/// `Retry-After` in seconds (the HTTP-date form is treated as absent).
fn retry_after_ms(value: &str) -> Option<u64> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| s.saturating_mul(1_000))
}

fn settle(weak: &Weak<RefCell<Shell>>, id: u64, outcome: Outcome) {
    let Some(inner) = weak.upgrade() else { return };
    if let Ok(mut shell) = inner.try_borrow_mut() {
        let now = dom::now();
        let refused = shell
            .delivery
            .queue
            .on_result(id, outcome, now, js_sys::Math::random());
        if refused > 0 && !shell.delivery.warned_rejected {
            shell.delivery.warned_rejected = true;
            shell.warned.warn(
                dom::Warn::Send,
                "the collector refused a batch; it was dropped",
            );
        }
    }
    pump(weak, Send::Due);
}

/// This tab's id: kept in sessionStorage, so it survives reloads but not the tab.
pub fn tab_id(fresh: impl FnOnce() -> String) -> String {
    let session = web_sys::window().and_then(|w| w.session_storage().ok().flatten());
    if let Some(id) = session
        .as_ref()
        .and_then(|s| s.get_item("waymark.tab").ok().flatten())
    {
        return id;
    }
    let id = fresh();
    if let Some(s) = session {
        let _ = s.set_item("waymark.tab", &id);
    }
    id
}
