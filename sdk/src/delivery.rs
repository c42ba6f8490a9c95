//! Delivery: the core's [`SendQueue`] driven by one gloo timer, `fetch`
//! with keepalive while the page lives, `sendBeacon` when it is being left,
//! retries and an offline pause, and a persisted queue per tab under the
//! core's [`QueueLease`]. A write that fails (quota) leaves the queue in
//! memory only.

use std::cell::RefCell;
use std::rc::Weak;

use gloo_timers::callback::Timeout;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use waymark_sdk_core::{outcome, Outcome, QueueLease, QueueLimits, SendQueue, Urgency};
use web_sys::{RequestInit, Response};

use super::page::{self, Warn};
use super::storage::{self, Area};
use super::tracker::Shell;

pub struct Delivery {
    pub queue: SendQueue,
    lease: QueueLease,
    url: String,
    site: String,
    /// The queue changed since it was last written to localStorage.
    unsaved: bool,
    /// The one timer, armed for the queue's next deadline (epoch ms).
    timer: Option<(u64, Timeout)>,
}

impl Delivery {
    /// This tab's queue, with what it left before a reload and what closed
    /// tabs left behind.
    pub fn open(url: String, site: &str, now: u64, tab_id: &str) -> Delivery {
        let lease = QueueLease::new(site, tab_id);
        let mut queue = SendQueue::new(QueueLimits::default());
        let stored = storage::local_entries(lease.prefix());
        let adoption = lease.adopt(
            &mut queue,
            stored.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            now,
        );
        for key in &adoption.adopted {
            storage::remove(Area::Local, key);
        }
        let mut delivery = Delivery {
            queue,
            lease,
            url,
            site: site.to_owned(),
            unsaved: false,
            timer: None,
        };
        delivery.write(now);
        delivery
    }

    /// Drops everything, persisted copy included, at once (opt-out).
    pub fn clear(&mut self, now: u64) {
        self.queue.clear();
        self.write(now);
    }

    /// Notes that the queue changed. It is written once the work in hand is
    /// done (a microtask: before the browser runs anything else, a page
    /// unload included), so a burst of events costs one write of the queue
    /// rather than one each.
    pub fn changed(&mut self, weak: &Weak<RefCell<Shell>>) {
        if self.unsaved {
            return;
        }
        self.unsaved = true;
        let weak = weak.clone();
        wasm_bindgen_futures::spawn_local(async move {
            if let Some(inner) = weak.upgrade() {
                if let Ok(mut shell) = inner.try_borrow_mut() {
                    shell.delivery.save(page::now());
                }
            }
        });
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
        match self.lease.record(&self.queue, now) {
            Some(record) => {
                storage::set(Area::Local, self.lease.key(), &record);
            }
            None => storage::remove(Area::Local, self.lease.key()),
        }
    }
}

impl Drop for Delivery {
    /// A tracker that goes away (a test's, or one the page dropped) leaves
    /// nothing unwritten.
    fn drop(&mut self) {
        self.save(page::now());
    }
}

/// Sends what `send` asks for, then arms the one timer for the next deadline.
pub fn pump(weak: &Weak<RefCell<Shell>>, send: Urgency) {
    let Some(inner) = weak.upgrade() else { return };
    let Ok(mut shell) = inner.try_borrow_mut() else {
        return;
    };
    let delivery = &mut shell.delivery;
    let now = page::now();
    let leaving = send == Urgency::Leaving;
    while let Some(transmit) = delivery.queue.poll_transmit(now, &delivery.site, send) {
        if leaving && beacon(&delivery.url, &transmit.body) {
            // The browser took it and delivers it after the page is gone.
            delivery
                .queue
                .on_result(transmit.id, Outcome::Delivered, now, 0.0);
            delivery.unsaved = true;
            continue;
        }
        // The request starts now (it must, if the page is going away);
        // its answer is awaited and settled later.
        let request = post(&delivery.url, &transmit.body);
        let (weak, id) = (weak.clone(), transmit.id);
        wasm_bindgen_futures::spawn_local(async move {
            settle(&weak, id, answer(request).await);
        });
        break;
    }
    if leaving {
        // This may be the page's last task: write now what is left (beacons
        // only go when leaving, so their acknowledgements are written here).
        delivery.save(now);
    }
    // The one timer, re-armed only when the deadline moves: a burst of
    // events shares one deadline, and each new gloo `Timeout` is a new JS
    // closure to create and, later, to collect.
    let deadline = delivery.queue.poll_timeout();
    if delivery.timer.as_ref().map(|(at, _)| *at) != deadline {
        delivery.timer = deadline.map(|at| {
            // setTimeout fires at once past 2^31 - 1 ms.
            let wait = at.saturating_sub(now).min(i32::MAX as u64) as u32;
            let weak = weak.clone();
            (at, Timeout::new(wait, move || deadline_reached(&weak)))
        });
    }
}

/// The timer fired: it is no longer armed (so the same deadline, if not yet
/// due by the clock, arms it again), then whatever is due goes.
fn deadline_reached(weak: &Weak<RefCell<Shell>>) {
    if let Some(inner) = weak.upgrade() {
        if let Ok(mut shell) = inner.try_borrow_mut() {
            // Dropped while it runs: wasm-bindgen frees the closure after it returns.
            shell.delivery.timer = None;
        }
    }
    pump(weak, Urgency::Due);
}

/// `navigator.sendBeacon`: whether the browser took the batch.
fn beacon(url: &str, body: &str) -> bool {
    web_sys::window()
        .and_then(|w| w.navigator().send_beacon_with_opt_str(url, Some(body)).ok())
        .unwrap_or(false)
}

/// The collector's answer to one batch.
struct Answer {
    /// HTTP status; 0 for a network error.
    status: u16,
    retry_after: Option<String>,
    /// Events of an acknowledged batch that the collector refused one by one.
    rejected: usize,
}

/// Starts a `fetch` of a batch as `text/plain` (a string body: no CORS
/// preflight) with keepalive, so it survives a navigation.
fn post(url: &str, body: &str) -> Option<js_sys::Promise> {
    let window = web_sys::window()?;
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(body));
    // web-sys's `RequestInit` has no `keepalive` (js-sys's Reflect instead).
    let _ = js_sys::Reflect::set(&init, &"keepalive".into(), &JsValue::TRUE);
    Some(window.fetch_with_str_and_init(url, &init))
}

/// The answer to a request [`post`] started.
async fn answer(request: Option<js_sys::Promise>) -> Answer {
    let failed = Answer {
        status: 0,
        retry_after: None,
        rejected: 0,
    };
    let Some(request) = request else {
        return failed;
    };
    let Ok(response) = JsFuture::from(request).await else {
        return failed;
    };
    let Ok(response) = response.dyn_into::<Response>() else {
        return failed;
    };
    let status = response.status();
    let retry_after = response.headers().get("retry-after").ok().flatten();
    let mut rejected = 0;
    if response.ok() {
        if let Ok(json) = response.json() {
            if let Ok(value) = JsFuture::from(json).await {
                rejected = rejected_events(&value);
            }
        }
    }
    Answer {
        status,
        retry_after,
        rejected,
    }
}

/// What of the collector's JSON answer matters here: how many events it
/// refused one by one (`"rejected": [{"index": …, "reason": …}, …]`), read
/// with js-sys (this is the collector's answer, not a value of the page's).
fn rejected_events(answer: &JsValue) -> usize {
    js_sys::Reflect::get(answer, &"rejected".into())
        .ok()
        .and_then(|list| list.dyn_into::<js_sys::Array>().ok())
        .map_or(0, |list| list.length() as usize)
}

/// The answer to request `id`; then whatever is due next.
fn settle(weak: &Weak<RefCell<Shell>>, id: u64, answer: Answer) {
    let Some(inner) = weak.upgrade() else { return };
    if let Ok(mut shell) = inner.try_borrow_mut() {
        let now = page::now();
        let Shell {
            delivery, warned, ..
        } = &mut *shell;
        let outcome = outcome(answer.status, answer.retry_after.as_deref());
        let refused = delivery
            .queue
            .on_result(id, outcome, now, js_sys::Math::random());
        if outcome == Outcome::Delivered && answer.rejected > 0 {
            delivery.queue.on_rejected_events(answer.rejected);
            warned.warn(
                Warn::Refused,
                "the collector refused some events; see the `rejected` list of its answer",
            );
        }
        if !matches!(outcome, Outcome::Retry { .. }) {
            // Acknowledged or refused events leave the queue.
            delivery.changed(weak);
        }
        if refused > 0 {
            warned.warn(Warn::Send, "the collector refused a batch; it was dropped");
        }
    }
    pump(weak, Urgency::Due);
}
