//! The send queue: when to send, what goes in a request, what to do with the
//! answer, and what survives the page.
//!
//! Push/poll with time passed in, no timers inside (like quinn-proto): the
//! shell pushes encoded events, asks [`SendQueue::poll_transmit`] for a
//! request, reports each answer with [`SendQueue::on_result`], and arms one
//! timer for [`SendQueue::poll_timeout`].
//!
//! Events stay in the queue until the collector acknowledges them; the queue's
//! persisted form ([`SendQueue::encode`]) lets a reload, a crash or a closed
//! tab lose nothing: the next page load sends them first. Every event carries
//! its `event_id`, so a request that was stored but whose answer was lost is
//! deduplicated by the collector when it comes again.

use crate::prelude::*;

use crate::text::{self, parse_u64, push_u64};

/// When to send and how much to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Send as soon as this many events wait.
    pub batch_events: usize,
    /// Keep each request body under this many bytes (sendBeacon and
    /// keepalive fetches share a 64 KiB budget per page).
    pub batch_bytes: usize,
    /// Send at most this long after the oldest waiting event arrived.
    pub max_wait_ms: u64,
    /// Most events kept unacknowledged; the oldest go first past it.
    pub stored_events: usize,
    /// Most bytes of events kept unacknowledged.
    pub stored_bytes: usize,
    /// First retry delay; it doubles per attempt, with jitter.
    pub backoff_min_ms: u64,
    /// Longest retry delay.
    pub backoff_max_ms: u64,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            batch_events: 20,
            batch_bytes: 60 * 1024,
            max_wait_ms: 5_000,
            stored_events: 500,
            stored_bytes: 256 * 1024,
            backoff_min_ms: 1_000,
            backoff_max_ms: 5 * 60_000,
        }
    }
}

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the events are stored.
    Delivered,
    /// Network error, 5xx, 408 or 429: try again later, not before
    /// `retry_after_ms` when the collector said so.
    Retry { retry_after_ms: Option<u64> },
    /// Any other 4xx: it will never succeed; the events are dropped.
    Rejected,
}

/// How urgently to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// What the batching rules say is due.
    Due,
    /// Everything waiting, now (`flush()`), after the request in flight.
    Now,
    /// Everything, now: the page is being hidden or unloaded and this may be
    /// the last chance. A request still in flight is given up and its events
    /// go again (a stalled request must not take them down with the page;
    /// the collector deduplicates).
    Leaving,
}

/// One request to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Identifies the request in [`SendQueue::on_result`].
    pub id: u64,
    /// The JSON body.
    pub body: String,
    /// Events in it.
    pub events: usize,
}

/// Unacknowledged events, oldest first; the first `in_flight` are being sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendQueue {
    limits: QueueLimits,
    /// A `Vec` rather than a `VecDeque`: at most a few hundred short
    /// strings, and a `Vec` ships less code.
    events: Vec<String>,
    bytes: usize,
    in_flight: Option<(u64, usize)>,
    next_id: u64,
    /// When the oldest event not yet in a request arrived.
    waiting_since: Option<u64>,
    retry: Option<Retry>,
    /// Events dropped for space, reported with the next request.
    dropped: u64,
    /// Dropped events already reported by the request in flight.
    dropped_in_flight: u64,
    /// Events the collector refused (see [`SendQueue::refused`]).
    refused: u64,
    offline: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Retry {
    at: u64,
    attempts: u32,
}

impl SendQueue {
    pub fn new(limits: QueueLimits) -> SendQueue {
        SendQueue {
            limits,
            events: Vec::new(),
            bytes: 0,
            in_flight: None,
            next_id: 1,
            waiting_since: None,
            retry: None,
            dropped: 0,
            dropped_in_flight: 0,
            refused: 0,
            offline: false,
        }
    }

    /// Unacknowledged events, in flight included.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Forgets everything (opt-out).
    pub fn clear(&mut self) {
        *self = SendQueue::new(self.limits);
    }

    /// Counts `n` events dropped before they reached the queue; they are
    /// reported with the next request like the queue's own.
    pub fn count_dropped(&mut self, n: u64) {
        self.dropped += n;
    }

    /// The collector acknowledged a request but refused `n` of its events
    /// one by one (its answer's `rejected` list): they are not stored.
    pub fn on_rejected_events(&mut self, n: usize) {
        self.refused += n as u64;
    }

    /// Events the collector refused, whole requests or one by one, since
    /// this queue was made.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Events dropped for space and not yet reported.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Adds one event (its JSON text). Past the storage bounds the oldest
    /// events not in flight go first, counted in `dropped`.
    pub fn push(&mut self, event_json: String, now: u64) {
        self.bytes += event_json.len();
        self.events.push(event_json);
        if self.waiting_since.is_none() {
            self.waiting_since = Some(now);
        }
        let protected = self.in_flight.map_or(0, |(_, n)| n);
        while (self.events.len() > self.limits.stored_events
            || self.bytes > self.limits.stored_bytes)
            && self.events.len() > protected + 1
        {
            self.bytes -= self.events.get(protected).map_or(0, String::len);
            text::remove_range(&mut self.events, protected, protected + 1);
            self.dropped += 1;
        }
    }

    /// `navigator.onLine` changed: while offline nothing is sent.
    pub fn set_online(&mut self, online: bool, now: u64) {
        self.offline = !online;
        if online {
            // Back online: retry now rather than at the end of a long backoff.
            if let Some(retry) = &mut self.retry {
                retry.at = retry.at.min(now);
            }
        }
    }

    /// The request to make now, if one is due: see [`Urgency`]. One request
    /// is in flight at a time (except when leaving); `Now` and `Leaving`
    /// ignore the batching delay and any backoff.
    pub fn poll_transmit(&mut self, now: u64, site: &str, urgency: Urgency) -> Option<Transmit> {
        if urgency == Urgency::Leaving {
            self.in_flight = None;
        }
        if self.in_flight.is_some() || self.events.is_empty() || self.offline {
            return None;
        }
        if urgency == Urgency::Due && !self.due(now) {
            return None;
        }
        let mut count = 0;
        let mut size = 0;
        for event in &self.events {
            if count == self.limits.batch_events
                || (count > 0 && size + event.len() + 1 > self.body_budget(site))
            {
                break;
            }
            count += 1;
            size += event.len() + 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.in_flight = Some((id, count));
        self.dropped_in_flight = self.dropped;
        Some(Transmit {
            id,
            body: self.body(site, now, count),
            events: count,
        })
    }

    fn due(&self, now: u64) -> bool {
        match self.retry {
            Some(retry) => now >= retry.at,
            None => {
                self.events.len() >= self.limits.batch_events
                    || self.bytes >= self.limits.batch_bytes
                    || self
                        .waiting_since
                        .is_some_and(|t| now >= t.saturating_add(self.limits.max_wait_ms))
            }
        }
    }

    /// Bytes left for events once the envelope is written.
    fn body_budget(&self, site: &str) -> usize {
        self.limits
            .batch_bytes
            .saturating_sub(ENVELOPE_BYTES + site.len())
    }

    fn body(&self, site: &str, now: u64, count: usize) -> String {
        let mut body = String::with_capacity(
            ENVELOPE_BYTES + site.len() + self.bytes.min(self.limits.batch_bytes),
        );
        body.push_str("{\"v\":1,\"site\":\"");
        // Site ids are plain (`A-Z a-z 0-9 _ . -`); anything else is the
        // collector's to refuse, but it must not break the JSON.
        body.extend(
            site.chars()
                .filter(|c| *c != '"' && *c != '\\' && !c.is_control()),
        );
        body.push_str("\",\"sent_at\":");
        push_u64(&mut body, now);
        if self.dropped > 0 {
            body.push_str(",\"dropped\":");
            push_u64(&mut body, self.dropped);
        }
        body.push_str(",\"events\":[");
        for (i, event) in self.events.iter().take(count).enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(event);
        }
        body.push_str("]}");
        body
    }

    /// The answer to request `id`. `jitter` in `0.0..1.0` spreads retries
    /// of many visitors after an outage. Returns the events dropped because
    /// the collector refused them for good.
    pub fn on_result(&mut self, id: u64, outcome: Outcome, now: u64, jitter: f64) -> usize {
        let Some((in_flight, count)) = self.in_flight else {
            return 0;
        };
        if in_flight != id {
            return 0;
        }
        self.in_flight = None;
        match outcome {
            Outcome::Delivered | Outcome::Rejected => {
                let acknowledged: usize = self.events.iter().take(count).map(String::len).sum();
                self.bytes -= acknowledged;
                text::remove_range(&mut self.events, 0, count);
                self.dropped -= self.dropped_in_flight.min(self.dropped);
                self.dropped_in_flight = 0;
                self.retry = None;
                self.waiting_since = (!self.events.is_empty()).then_some(now);
                if outcome == Outcome::Rejected {
                    self.refused += count as u64;
                    count
                } else {
                    0
                }
            }
            Outcome::Retry { retry_after_ms } => {
                let attempts = self.retry.map_or(1, |r| r.attempts.saturating_add(1));
                let backoff = self.backoff_ms(attempts, jitter);
                let delay = retry_after_ms.map_or(backoff, |after| after.max(backoff / 2));
                self.retry = Some(Retry {
                    at: now.saturating_add(delay),
                    attempts,
                });
                0
            }
        }
    }

    /// Exponential backoff with "equal jitter": half fixed, half random.
    fn backoff_ms(&self, attempts: u32, jitter: f64) -> u64 {
        let exp = self
            .limits
            .backoff_min_ms
            .saturating_mul(1 << attempts.saturating_sub(1).min(20));
        let capped = exp.min(self.limits.backoff_max_ms);
        let half = capped / 2;
        half + (half as f64 * jitter.clamp(0.0, 1.0)) as u64
    }

    /// When the shell should call [`poll_transmit`](Self::poll_transmit)
    /// next, if anything waits and nothing is in flight.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.in_flight.is_some() || self.events.is_empty() || self.offline {
            return None;
        }
        match self.retry {
            Some(retry) => Some(retry.at),
            None => self
                .waiting_since
                .map(|t| t.saturating_add(self.limits.max_wait_ms)),
        }
    }

    /// A request is in flight.
    pub fn sending(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The persisted form: a header line `1|<dropped>` then one event per
    /// line (JSON text never contains a raw newline).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(self.bytes + self.events.len() + 24);
        out.push_str("1|");
        push_u64(&mut out, self.dropped);
        for event in &self.events {
            out.push('\n');
            out.push_str(event);
        }
        out
    }

    /// Adds the events of a persisted queue (this tab's after a reload, or an
    /// abandoned tab's), oldest first, ahead of nothing already sent.
    pub fn restore(&mut self, persisted: &str, now: u64) {
        let mut lines = text::parts(persisted, b'\n');
        let Some(header) = lines.next() else { return };
        let Some(dropped) = header.strip_prefix("1|").and_then(parse_u64) else {
            return;
        };
        self.dropped += dropped;
        for event in lines.filter(|l| l.starts_with('{') && l.ends_with('}')) {
            self.push(event.to_owned(), now);
        }
    }
}

/// `{"v":1,"site":"","sent_at":…,"dropped":…,"events":[]}` with room for the numbers.
const ENVELOPE_BYTES: usize = 80;

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    fn event(i: usize) -> String {
        format!("{{\"event_id\":\"e{i}\"}}")
    }

    fn queue() -> SendQueue {
        SendQueue::new(QueueLimits::default())
    }

    fn ids(t: &Transmit) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&t.body).unwrap();
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_id"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn waits_for_the_batching_delay_then_sends_everything_waiting() {
        let mut q = queue();
        q.push(event(1), T0);
        q.push(event(2), T0 + 1_000);
        assert_eq!(q.poll_timeout(), Some(T0 + 5_000));
        assert_eq!(q.poll_transmit(T0 + 4_999, "demo", Urgency::Due), None);
        let t = q.poll_transmit(T0 + 5_000, "demo", Urgency::Due).unwrap();
        assert_eq!(ids(&t), ["e1", "e2"]);
        let body: serde_json::Value = serde_json::from_str(&t.body).unwrap();
        assert_eq!(
            (
                body["v"].as_u64(),
                body["site"].as_str(),
                body["sent_at"].as_u64()
            ),
            (Some(1), Some("demo"), Some(T0 + 5_000))
        );
        assert_eq!(
            q.poll_timeout(),
            None,
            "nothing is timed while a request is in flight"
        );
        assert_eq!(q.on_result(t.id, Outcome::Delivered, T0 + 5_100, 0.5), 0);
        assert!(q.is_empty());
    }

    #[test]
    fn a_full_batch_goes_at_once() {
        let mut q = queue();
        for i in 0..19 {
            q.push(event(i), T0);
        }
        assert_eq!(q.poll_transmit(T0, "demo", Urgency::Due), None);
        q.push(event(19), T0);
        let t = q.poll_transmit(T0, "demo", Urgency::Due).unwrap();
        assert_eq!(t.events, 20);
    }

    #[test]
    fn requests_stay_under_the_byte_budget() {
        let mut q = queue();
        let big = format!("{{\"event_id\":\"x\",\"pad\":\"{}\"}}", "a".repeat(9_000));
        for _ in 0..12 {
            q.push(big.clone(), T0);
        }
        let t = q.poll_transmit(T0, "demo", Urgency::Due).unwrap();
        assert!(t.body.len() < 60 * 1024, "{}", t.body.len());
        assert_eq!(t.events, 6);
        q.on_result(t.id, Outcome::Delivered, T0, 0.0);
        assert_eq!(q.len(), 6);
    }

    #[test]
    fn leaving_sends_now_even_while_backing_off() {
        let mut q = queue();
        q.push(event(1), T0);
        let t = q.poll_transmit(T0, "demo", Urgency::Leaving).unwrap();
        q.on_result(
            t.id,
            Outcome::Retry {
                retry_after_ms: None,
            },
            T0,
            0.0,
        );
        assert_eq!(q.poll_transmit(T0 + 10, "demo", Urgency::Due), None);
        assert!(q.poll_transmit(T0 + 10, "demo", Urgency::Leaving).is_some());
    }

    #[test]
    fn leaving_takes_over_a_stalled_request() {
        let mut q = queue();
        q.push(event(1), T0);
        let stalled = q.poll_transmit(T0, "demo", Urgency::Leaving).unwrap();
        q.push(event(2), T0 + 1);
        let last = q.poll_transmit(T0 + 2, "demo", Urgency::Leaving).unwrap();
        assert_eq!(ids(&last), ["e1", "e2"]);
        q.on_result(last.id, Outcome::Delivered, T0 + 3, 0.0);
        assert_eq!(
            q.on_result(stalled.id, Outcome::Delivered, T0 + 4, 0.0),
            0,
            "a late answer changes nothing"
        );
        assert!(q.is_empty());
    }

    #[test]
    fn retries_back_off_exponentially_with_jitter_and_honour_retry_after() {
        let mut q = queue();
        q.push(event(1), T0);
        let mut now = T0 + 5_000;
        let mut delays = Vec::new();
        for _ in 0..5 {
            let t = q.poll_transmit(now, "demo", Urgency::Due).expect("due");
            q.on_result(
                t.id,
                Outcome::Retry {
                    retry_after_ms: None,
                },
                now,
                1.0,
            );
            let next = q.poll_timeout().unwrap();
            delays.push(next - now);
            assert_eq!(q.poll_transmit(next - 1, "demo", Urgency::Due), None);
            now = next;
        }
        assert_eq!(delays, [1_000, 2_000, 4_000, 8_000, 16_000]);
        let t = q.poll_transmit(now, "demo", Urgency::Due).unwrap();
        q.on_result(
            t.id,
            Outcome::Retry {
                retry_after_ms: Some(120_000),
            },
            now,
            0.0,
        );
        assert_eq!(
            q.poll_timeout(),
            Some(now + 120_000),
            "Retry-After wins over a shorter backoff"
        );
        let t = q
            .poll_transmit(now + 120_000, "demo", Urgency::Due)
            .unwrap();
        q.on_result(t.id, Outcome::Delivered, now + 120_000, 0.0);
        q.push(event(2), now + 130_000);
        assert_eq!(
            q.poll_timeout(),
            Some(now + 135_000),
            "a success resets the backoff"
        );
    }

    #[test]
    fn jitter_spreads_the_delay_within_bounds() {
        let q = queue();
        assert_eq!(q.backoff_ms(3, 0.0), 2_000);
        assert_eq!(q.backoff_ms(3, 1.0), 4_000);
        assert_eq!(q.backoff_ms(40, 1.0), 300_000, "capped");
    }

    #[test]
    fn rejected_batches_are_dropped_not_retried() {
        let mut q = queue();
        q.push(event(1), T0);
        q.push(event(2), T0);
        let t = q.poll_transmit(T0 + 5_000, "demo", Urgency::Due).unwrap();
        assert_eq!(q.on_result(t.id, Outcome::Rejected, T0 + 5_000, 0.0), 2);
        assert!(q.is_empty());
        assert_eq!(q.poll_timeout(), None);
    }

    #[test]
    fn offline_pauses_and_online_resumes_at_once() {
        let mut q = queue();
        q.push(event(1), T0);
        let t = q.poll_transmit(T0 + 5_000, "demo", Urgency::Due).unwrap();
        q.on_result(
            t.id,
            Outcome::Retry {
                retry_after_ms: None,
            },
            T0 + 5_000,
            0.0,
        );
        q.set_online(false, T0 + 5_001);
        assert_eq!(q.poll_timeout(), None);
        assert_eq!(q.poll_transmit(T0 + 60_000, "demo", Urgency::Leaving), None);
        q.set_online(true, T0 + 60_000);
        assert!(
            q.poll_timeout().is_some_and(|t| t <= T0 + 60_000),
            "due at once"
        );
        assert!(q.poll_transmit(T0 + 60_000, "demo", Urgency::Due).is_some());
    }

    #[test]
    fn when_full_the_oldest_go_and_the_drop_count_travels_once() {
        let limits = QueueLimits {
            stored_events: 3,
            ..QueueLimits::default()
        };
        let mut q = SendQueue::new(limits);
        for i in 0..5 {
            q.push(event(i), T0);
        }
        assert_eq!((q.len(), q.dropped()), (3, 2));
        let t = q.poll_transmit(T0 + 5_000, "demo", Urgency::Due).unwrap();
        assert_eq!(ids(&t), ["e2", "e3", "e4"]);
        let body: serde_json::Value = serde_json::from_str(&t.body).unwrap();
        assert_eq!(body["dropped"], 2);
        q.push(event(5), T0 + 5_001); // arrives while in flight
        q.on_result(t.id, Outcome::Delivered, T0 + 5_100, 0.0);
        assert_eq!(q.dropped(), 0);
        let t = q.poll_transmit(T0 + 20_000, "demo", Urgency::Due).unwrap();
        assert!(!t.body.contains("dropped"));
        assert_eq!(ids(&t), ["e5"]);
    }

    #[test]
    fn events_in_flight_are_never_dropped_for_space() {
        let limits = QueueLimits {
            stored_events: 2,
            ..QueueLimits::default()
        };
        let mut q = SendQueue::new(limits);
        q.push(event(1), T0);
        q.push(event(2), T0);
        let t = q.poll_transmit(T0, "demo", Urgency::Leaving).unwrap();
        q.push(event(3), T0);
        q.push(event(4), T0);
        q.on_result(
            t.id,
            Outcome::Retry {
                retry_after_ms: None,
            },
            T0,
            0.0,
        );
        let t = q.poll_transmit(T0 + 10_000, "demo", Urgency::Due).unwrap();
        assert_eq!(ids(&t), ["e1", "e2", "e4"]);
        assert_eq!(q.dropped(), 1);
    }

    #[test]
    fn the_persisted_queue_survives_a_reload_in_order() {
        let mut q = queue();
        for i in 0..3 {
            q.push(event(i), T0);
        }
        let t = q.poll_transmit(T0, "demo", Urgency::Leaving).unwrap();
        // The page dies with the request unanswered: everything is still there.
        let persisted = q.encode();
        let mut reloaded = queue();
        reloaded.restore(&persisted, T0 + 60_000);
        reloaded.push(event(9), T0 + 60_000);
        let again = reloaded
            .poll_transmit(T0 + 65_000, "demo", Urgency::Due)
            .unwrap();
        assert_eq!(ids(&again), ["e0", "e1", "e2", "e9"]);
        assert_eq!(t.events, 3);
        for bad in ["", "garbage", "2|0\n{}", "1|x\n{}"] {
            let mut q = queue();
            q.restore(bad, T0);
            assert!(q.is_empty(), "{bad:?}");
        }
    }
}
