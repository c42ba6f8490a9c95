//! Delivery: the core's [`SendQueue`] driven by one timer, `fetch` with
//! keepalive while the page lives, `sendBeacon` when it is being left,
//! retries and an offline pause, and a persisted queue per tab. The
//! requests and the timer are the host snippet's (`dom.rs`).
//!
//! Each tab keeps its unacknowledged events in localStorage under
//! `waymark.<site>.queue.<tab>`, the tab id living in sessionStorage so a
//! reload finds its own queue and sends it first. A queue whose tab has not
//! written for [`LEASE_MS`] (closed, crashed) is adopted by the next tab that
//! starts; two tabs never send from the same key at once. A write that fails
//! (quota) leaves the queue in memory only.

use crate::prelude::*;

use super::dom::{self, Area, Kind};
use super::Shell;
pub use crate::Urgency as Send;
use crate::{Outcome, QueueLimits, SendQueue};
use alloc::rc::Weak;
use core::cell::RefCell;
use wasm_bindgen::JsValue;

/// A tab's persisted queue older than this is another tab's to adopt.
pub const LEASE_MS: u64 = 2 * 60_000;

pub struct Delivery {
    queue: SendQueue,
    url: String,
    site: String,
    key: String,
    /// The queue changed since it was last written to localStorage.
    unsaved: bool,
    /// A refused batch was already reported on the console.
    pub warned_rejected: bool,
}

impl Delivery {
    /// This tab's queue, with what it left before a reload and what closed
    /// tabs left behind.
    pub fn open(url: String, site: &str, now: u64, tab_id: &str) -> Delivery {
        let prefix = queue_prefix(site);
        let key = crate::text::concat(&[&prefix, tab_id]);
        let mut delivery = Delivery {
            queue: SendQueue::new(QueueLimits::default()),
            url,
            site: site.to_owned(),
            key,
            unsaved: false,
            warned_rejected: false,
        };
        delivery.adopt(&prefix, now);
        delivery
    }

    /// Takes over this tab's own queue and any abandoned one.
    fn adopt(&mut self, prefix: &str, now: u64) {
        for key in dom::local_keys(prefix) {
            let Some(value) = dom::store_get(Area::Local, &key) else {
                continue;
            };
            let (heartbeat, persisted) = crate::text::split_at(&value, b'\n').unwrap_or(("", ""));
            let heartbeat = crate::text::parse_u64(heartbeat).unwrap_or(0);
            let own = key == self.key;
            if own || now.saturating_sub(heartbeat) > LEASE_MS {
                dom::store_remove(Area::Local, &key);
                self.queue.restore(persisted, now);
            }
        }
        self.write(now);
    }

    /// Adds one event; written to localStorage with the rest of the burst
    /// (see [`Delivery::changed`]).
    pub fn push(&mut self, event_json: String, now: u64) {
        self.queue.push(event_json, now);
    }

    /// Drops everything, persisted copy included, at once (opt-out).
    pub fn clear(&mut self, now: u64) {
        self.queue.clear();
        self.write(now);
    }

    pub fn set_online(&mut self, online: bool, now: u64) {
        self.queue.set_online(online, now);
    }

    /// Notes that the queue changed. It is written once the work in hand is
    /// done (a microtask: before the browser runs anything else, a page
    /// unload included), so a burst of events costs one write of the queue
    /// rather than one each; without a host, at once.
    pub fn changed(&mut self, host: Option<&JsValue>, now: u64) {
        match host {
            Some(host) if !self.unsaved => {
                self.unsaved = true;
                dom::soon(host, Kind::Save);
            }
            Some(_) => {}
            None => self.write(now),
        }
    }

    /// Writes the queue if it changed since the last write.
    pub fn save(&mut self, now: u64) {
        if self.unsaved {
            self.write(now);
        }
    }

    /// Writes the queue (or removes it when empty); a refusal leaves it in memory.
    fn write(&mut self, now: u64) {
        self.unsaved = false;
        if self.queue.is_empty() {
            dom::store_remove(Area::Local, &self.key);
            return;
        }
        let mut value = String::new();
        crate::text::push_u64(&mut value, now);
        value.push('\n');
        value.push_str(&self.queue.encode());
        dom::store_set(Area::Local, &self.key, &value);
    }
}

impl Drop for Delivery {
    /// A tracker that goes away (a test's, or one the page dropped) leaves
    /// nothing unwritten.
    fn drop(&mut self) {
        self.save(dom::now());
    }
}

fn queue_prefix(site: &str) -> String {
    crate::text::concat(&["waymark.", site, ".queue."])
}

/// Sends what `send` asks for, then arms the one timer for the next deadline.
pub fn pump(weak: &Weak<RefCell<Shell>>, send: Send) {
    let Some(inner) = weak.upgrade() else { return };
    let Ok(mut shell) = inner.try_borrow_mut() else {
        return;
    };
    let Shell { delivery, host, .. } = &mut *shell;
    let Some(host) = host else { return };
    let now = dom::now();
    let leaving = send == Send::Leaving;
    while let Some(transmit) = delivery.queue.poll_transmit(now, &delivery.site, send) {
        if leaving && dom::beacon(&delivery.url, &transmit.body) {
            // The browser took it and delivers it after the page is gone.
            delivery
                .queue
                .on_result(transmit.id, Outcome::Delivered, now, 0.0);
            delivery.changed(Some(&host.js), now);
            continue;
        }
        // Answered through the host's dispatcher: see `settle`.
        dom::fetch(&host.js, &delivery.url, &transmit.body, transmit.id);
        break;
    }
    if leaving {
        // This may be the page's last task: write now what is left.
        delivery.save(now);
    }
    let wait = delivery.queue.poll_timeout().map_or(-1.0, |at| {
        // setTimeout fires at once past 2^31 - 1 ms.
        at.saturating_sub(now).min(i32::MAX as u64) as f64
    });
    dom::arm(&host.js, Kind::SendDue, wait);
}

/// The answer to request `id`; then whatever is due next.
pub fn settle(weak: &Weak<RefCell<Shell>>, id: u64, outcome: Outcome) {
    let Some(inner) = weak.upgrade() else { return };
    if let Ok(mut shell) = inner.try_borrow_mut() {
        let now = dom::now();
        let Shell {
            delivery,
            host,
            warned,
            ..
        } = &mut *shell;
        let refused = delivery
            .queue
            .on_result(id, outcome, now, js_sys::Math::random());
        if !matches!(outcome, Outcome::Retry { .. }) {
            // Acknowledged or refused events leave the queue.
            delivery.changed(host.as_ref().map(|h| &h.js), now);
        }
        if refused > 0 && !delivery.warned_rejected {
            delivery.warned_rejected = true;
            warned.warn(
                dom::Warn::Send,
                "the collector refused a batch; it was dropped",
            );
        }
    }
    pump(weak, Send::Due);
}

/// This tab's id: kept in sessionStorage, so it survives reloads but not the tab.
pub fn tab_id(fresh: impl FnOnce() -> String) -> String {
    const KEY: &str = "waymark.tab";
    if let Some(id) = dom::store_get(Area::Session, KEY) {
        return id;
    }
    let id = fresh();
    dom::store_set(Area::Session, KEY, &id);
    id
}
