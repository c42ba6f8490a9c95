//! Realistic traffic for the read benchmark: sessions over a window of days,
//! in the order their batches would reach the collector.
//!
//! Seeded, so two fills of the same size send the same visits (only the
//! window moves with the clock). Sessions start along a diurnal and weekly
//! curve; pages, sources, campaigns, browsers and custom events follow
//! Zipf-like weights; about 30 % of visits are by returning visitors, some of
//! whom have signed in. Each session's events are cut into batches as the
//! SDK cuts them: at most 20 events, sent 5 s after the oldest waiting one
//! or when the page is left, whichever comes first.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::Ipv4Addr;

use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// The site every benchmark visit belongs to.
pub const SITE: &str = "bench";
/// The pages' origin.
const ORIGIN: &str = "https://www.example.com";
/// The SDK's batch rules: at most this many events, sent this long after
/// the oldest waiting one (or when the page is left).
const BATCH_EVENTS: usize = 20;
const BATCH_WINDOW_MS: u64 = 5_000;
/// Share of visits with one page view (the bounce rate, before bots).
const BOUNCE_SHARE: f64 = 0.45;
/// Share of visits by a visitor seen before.
const RETURNING_SHARE: f64 = 0.3;
/// Share of not yet signed-in visits that sign in (an `identify`).
const IDENTIFY_SHARE: f64 = 0.03;
/// Share of visits by crawlers (the weights of the bots in
/// [`USER_AGENTS`], out of 1000); they view 1–3 pages.
const BOT_SHARE: f64 = 0.02;
/// Mean events of a visit: a bounce has 1 page view and 0–2 clicks or
/// custom events (mean 1.5), any other visit 2–30 events (mean 16), a
/// crawler's 1–3 page views (mean 2).
const MEAN_EVENTS: f64 =
    BOT_SHARE * 2.0 + (1.0 - BOT_SHARE) * (BOUNCE_SHARE * 1.5 + (1.0 - BOUNCE_SHARE) * 16.0);
/// Pages beyond the fixed ones, per million events (at least 300).
const PAGES_PER_MILLION_EVENTS: usize = 200;
/// A visit lasts at most this long (below the 30-minute idle timeout
/// between events, and short enough to end before the window does).
const MAX_VISIT_MS: u64 = 50 * 60_000;

const FIXED_PAGES: [&str; 12] = [
    "/",
    "/pricing",
    "/features",
    "/docs",
    "/blog",
    "/signup",
    "/login",
    "/about",
    "/contact",
    "/changelog",
    "/careers",
    "/docs/getting-started",
];
const QUERIES: [&str; 6] = [
    "?ref=nav",
    "?page=2",
    "?sort=price",
    "?q=analytics",
    "?variant=b",
    "?lang=de",
];
const CUSTOM_EVENTS: [(&str, u32); 5] = [
    ("signup", 30),
    ("add_to_cart", 25),
    ("download", 20),
    ("newsletter_subscribe", 15),
    ("purchase", 10),
];
/// User agents and their weights (about 2 % crawlers, flagged as bots).
const USER_AGENTS: [(&str, u32); 14] = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", 300),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", 180),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", 150),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", 90),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", 80),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", 50),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", 50),
    ("Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", 30),
    ("Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", 25),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", 15),
    ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", 10),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 12),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", 5),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", 3),
];
/// The user agents above that are crawlers: their visits are short.
const BOTS_FROM: usize = 11;

/// Where a visit comes from: a referrer, and `utm_*` on the landing URL.
#[derive(Clone, Copy)]
enum Source {
    Direct,
    Search(&'static str),
    Social(&'static str),
    Newsletter,
    Paid,
    Referral,
}

const SOURCES: [(Source, u32); 12] = [
    (Source::Direct, 330),
    (Source::Search("https://www.google.com/"), 300),
    (Source::Search("https://www.bing.com/"), 40),
    (Source::Search("https://duckduckgo.com/"), 20),
    (Source::Social("https://l.facebook.com/"), 50),
    (Source::Social("https://t.co/"), 30),
    (Source::Social("https://www.linkedin.com/"), 20),
    (Source::Social("https://www.reddit.com/"), 20),
    (Source::Social("https://github.com/"), 20),
    (Source::Newsletter, 70),
    (Source::Paid, 30),
    (Source::Referral, 70),
];

/// One request's worth: a batch body and who sends it.
pub struct Batch {
    /// When the device sends it (epoch ms): batches come out in this order.
    pub send_at: u64,
    /// The batch's JSON, without `sent_at` (the sender adds its clock).
    pub events: Vec<Value>,
    /// The visitor's address, for `X-Forwarded-For`.
    pub ip: Ipv4Addr,
    pub user_agent: &'static str,
}

struct Visitor {
    id: String,
    ip: Ipv4Addr,
    agent: usize,
    user: Option<u32>,
    sessions: u32,
    last_session: Option<String>,
}

struct Queued {
    send_at: u64,
    order: u64,
    batch: Batch,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.send_at, self.order) == (other.send_at, other.order)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.send_at, self.order).cmp(&(other.send_at, other.order))
    }
}

/// Visits starting over `[start, end)`, about `events` events in all (the
/// session starts are drawn for that mean; the last visit is cut short
/// should they reach it early), as an iterator of batches in the order they
/// are sent.
pub struct Traffic {
    rng: SmallRng,
    start: u64,
    end: u64,
    minute: u64,
    /// Sessions to start per unit of the diurnal weight.
    sessions_per_weight: f64,
    carry: f64,
    events_left: u64,
    pages: Vec<String>,
    page_pick: WeightedIndex<f64>,
    referrers: WeightedIndex<f64>,
    source_pick: WeightedIndex<u32>,
    agent_pick: WeightedIndex<u32>,
    custom_pick: WeightedIndex<u32>,
    visitors: Vec<Visitor>,
    users: u32,
    queue: BinaryHeap<Reverse<Queued>>,
    order: u64,
    ready: VecDeque<Batch>,
    /// Sessions started so far.
    pub sessions: u64,
}

/// Relative traffic at `ms`: a daily peak around 14:00 UTC, quieter nights
/// and weekends.
fn diurnal(ms: u64) -> f64 {
    let hour = (ms % 86_400_000) as f64 / 3_600_000.0;
    let day = (ms / 86_400_000 + 4) % 7; // 0 = Sunday (1970-01-01 was a Thursday)
    let weekend = if day == 0 || day == 6 { 0.65 } else { 1.0 };
    (0.25 + (-((hour - 14.0) / 4.5).powi(2)).exp()) * weekend
}

/// Zipf-like weights `1 / (rank + 1)^s`.
fn zipf(n: usize, s: f64) -> WeightedIndex<f64> {
    WeightedIndex::new((0..n).map(|i| 1.0 / ((i + 1) as f64).powf(s)))
        .unwrap_or_else(|_| unreachable_weights())
}

fn unreachable_weights() -> WeightedIndex<f64> {
    // Only reached for n = 0, which the callers never pass.
    WeightedIndex::new([1.0]).unwrap_or_else(|_| std::process::abort())
}

fn weights<T: Copy>(items: &[(T, u32)]) -> WeightedIndex<u32> {
    WeightedIndex::new(items.iter().map(|(_, w)| *w)).unwrap_or_else(|_| std::process::abort())
}

impl Traffic {
    /// Visits with about `events` events in all (at most that many),
    /// starting within `[start, end)`; every event lies before
    /// `end + MAX_VISIT_MS`.
    pub fn new(events: u64, start: u64, end: u64) -> Traffic {
        let start = start / 60_000 * 60_000;
        let minutes = (end.saturating_sub(start) / 60_000).max(1);
        let total_weight: f64 = (0..minutes).map(|m| diurnal(start + m * 60_000)).sum();
        let page_count =
            FIXED_PAGES.len() + (events as usize / 1_000_000 * PAGES_PER_MILLION_EVENTS).max(300);
        let mut pages: Vec<String> = FIXED_PAGES.iter().map(|p| (*p).to_owned()).collect();
        let mut i = 0;
        while pages.len() < page_count {
            pages.push(match i % 4 {
                0 => format!("/blog/post-{}", i / 4),
                1 => format!("/docs/{}/topic-{}", ["api", "sdk", "guides"][i % 3], i / 4),
                2 => format!("/products/item-{}", i / 4),
                _ => format!("/help/article-{}", i / 4),
            });
            i += 1;
        }
        Traffic {
            rng: SmallRng::seed_from_u64(16),
            start,
            end,
            minute: start / 60_000,
            sessions_per_weight: events as f64 / MEAN_EVENTS / total_weight,
            carry: 0.0,
            events_left: events,
            page_pick: zipf(pages.len(), 1.05),
            pages,
            referrers: zipf(200, 1.2),
            source_pick: weights(&SOURCES),
            agent_pick: weights(&USER_AGENTS),
            custom_pick: weights(&CUSTOM_EVENTS),
            visitors: Vec::new(),
            users: 0,
            queue: BinaryHeap::new(),
            order: 0,
            ready: VecDeque::new(),
            sessions: 0,
        }
    }

    /// The start of the window (epoch ms, a whole minute).
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Distinct visitors so far.
    pub fn visitors(&self) -> usize {
        self.visitors.len()
    }

    /// Starts the sessions of the next minute, then releases the batches
    /// sent before that minute's end. False once everything is out.
    fn advance(&mut self) -> bool {
        let minute_start = self.minute * 60_000;
        if self.events_left > 0 && minute_start < self.end {
            self.carry += diurnal(minute_start) * self.sessions_per_weight;
            let mut starts: Vec<u64> = Vec::new();
            while self.carry >= 1.0 {
                self.carry -= 1.0;
                starts.push(minute_start + self.rng.random_range(0..60_000));
            }
            starts.sort_unstable();
            for start in starts {
                if self.events_left == 0 {
                    break;
                }
                self.session(start);
            }
        } else if self.queue.is_empty() {
            return false;
        }
        self.minute += 1;
        let horizon = if self.events_left > 0 && self.minute * 60_000 < self.end {
            self.minute * 60_000
        } else {
            u64::MAX
        };
        while self
            .queue
            .peek()
            .is_some_and(|Reverse(q)| q.send_at < horizon)
        {
            if let Some(Reverse(q)) = self.queue.pop() {
                self.ready.push_back(q.batch);
            }
        }
        true
    }

    fn uuid7(&mut self, ms: u64) -> String {
        let random: [u8; 10] = self.rng.random();
        uuid::Builder::from_unix_timestamp_millis(ms, &random)
            .into_uuid()
            .to_string()
    }

    fn public_ip(&mut self) -> Ipv4Addr {
        loop {
            let ip = Ipv4Addr::from(self.rng.random::<u32>());
            let [a, b, ..] = ip.octets();
            let reserved = a == 0
                || a == 10
                || a == 127
                || a >= 224
                || (a == 100 && (64..128).contains(&b))
                || (a == 169 && b == 254)
                || (a == 172 && (16..32).contains(&b))
                || (a == 192 && b == 168);
            if !reserved {
                return ip;
            }
        }
    }

    /// A visitor for a new visit: one seen before (recent ones likelier),
    /// or a new one. Its index in `visitors`.
    fn visitor(&mut self) -> usize {
        if !self.visitors.is_empty() && self.rng.random_bool(RETURNING_SHARE) {
            let back = (self.visitors.len() as f64 * self.rng.random::<f64>().powi(3)) as usize;
            return self.visitors.len() - 1 - back.min(self.visitors.len() - 1);
        }
        let id = uuid::Builder::from_random_bytes(self.rng.random())
            .into_uuid()
            .to_string();
        let ip = self.public_ip();
        let agent = self.agent_pick.sample(&mut self.rng);
        self.visitors.push(Visitor {
            id,
            ip,
            agent,
            user: None,
            sessions: 0,
            last_session: None,
        });
        self.visitors.len() - 1
    }

    /// The landing URL and referrer of a visit from `source`.
    fn landing(&mut self, page: &str) -> (String, Option<String>) {
        let (source, _) = SOURCES[self.source_pick.sample(&mut self.rng)];
        let url = format!("{ORIGIN}{page}");
        match source {
            Source::Direct => (url, None),
            Source::Search(r) | Source::Social(r) => (url, Some(r.to_owned())),
            Source::Newsletter => {
                let week = self.minute / (7 * 1440);
                let link = self.rng.random_range(1..6);
                (
                    format!("{url}?utm_source=newsletter&utm_medium=email&utm_campaign=weekly-{week}&utm_content=link-{link}"),
                    None,
                )
            }
            Source::Paid => {
                let campaign = ["brand", "competitors", "retargeting", "spring-sale"]
                    [self.rng.random_range(0..4)];
                let term = [
                    "web analytics",
                    "privacy analytics",
                    "plausible alternative",
                    "session tracking",
                    "open source analytics",
                ][self.rng.random_range(0..5)];
                (
                    format!("{url}?utm_source=google&utm_medium=cpc&utm_campaign={campaign}&utm_term={}", term.replace(' ', "+")),
                    Some("https://www.google.com/".to_owned()),
                )
            }
            Source::Referral => {
                let site = self.referrers.sample(&mut self.rng);
                (
                    url,
                    Some(format!(
                        "https://blog{site}.example.net/posts/{}",
                        site * 7 % 13
                    )),
                )
            }
        }
    }

    fn page(&mut self) -> String {
        let page = &self.pages[self.page_pick.sample(&mut self.rng)];
        if self.rng.random_bool(0.08) {
            format!("{page}{}", QUERIES[self.rng.random_range(0..QUERIES.len())])
        } else {
            page.clone()
        }
    }

    /// One visit starting at `start`: its events, cut into batches and
    /// queued by when they are sent.
    fn session(&mut self, start: u64) {
        let v = self.visitor();
        let agent = self.visitors[v].agent;
        let bot = agent >= BOTS_FROM;
        let bounce = !bot && self.rng.random_bool(BOUNCE_SHARE);
        let size: u64 = if bot {
            self.rng.random_range(1..=3)
        } else if bounce {
            1 + [0, 0, 0, 0, 0, 0, 1, 1, 1, 2][self.rng.random_range(0..10)]
        } else {
            self.rng.random_range(2..=30)
        };
        let size = size.min(self.events_left);
        self.events_left -= size;
        self.sessions += 1;
        let session_id = self.uuid7(start);
        let visitor = &mut self.visitors[v];
        visitor.sessions += 1;
        let (visitor_id, session_index, previous) = (
            visitor.id.clone(),
            visitor.sessions,
            visitor.last_session.replace(session_id.clone()),
        );
        let mut user = visitor.user;
        let (ip, user_agent) = (visitor.ip, USER_AGENTS[agent].0);
        let identify_at =
            (user.is_none() && !bot && size >= 3 && self.rng.random_bool(IDENTIFY_SHARE))
                .then(|| self.rng.random_range(2..=size));

        let landing_page = self.page();
        let (mut url, referrer) = self.landing(&landing_page);
        let mut previous_url = referrer;
        let mut ts = start;
        let mut events: Vec<(u64, Value)> = Vec::new();
        let mut page_views = 0;
        for seq in 1..=size {
            let kind = if seq == 1 {
                "page_view"
            } else if identify_at == Some(seq) {
                "identify"
            } else if bot
                || (!bounce && (seq == size && page_views < 2 || self.rng.random_bool(0.5)))
            {
                "page_view"
            } else if self.rng.random_bool(0.7) {
                "click"
            } else {
                "custom"
            };
            if seq > 1 {
                let gap = if kind == "page_view" {
                    self.rng.random_range(10_000..180_000)
                } else {
                    self.rng.random_range(2_000..30_000)
                };
                ts = (ts + gap).min(start + MAX_VISIT_MS);
            }
            if kind == "page_view" && seq > 1 {
                previous_url = Some(url.clone());
                url = format!("{ORIGIN}{}", self.page());
            }
            if kind == "identify" {
                self.users += 1;
                user = Some(self.users);
                self.visitors[v].user = user;
            }
            let mut event = json!({
                "event_id": self.uuid7(ts),
                "type": kind,
                "ts": ts,
                "session_id": session_id,
                "visitor_id": visitor_id,
                "session_index": session_index,
                "seq": seq,
                "url": url,
                "storage": "local",
            });
            let fields = event.as_object_mut();
            let Some(fields) = fields else { continue };
            if let Some(user) = user {
                fields.insert("user_id".into(), json!(format!("user-{user}")));
            }
            match kind {
                "page_view" => {
                    page_views += 1;
                    fields.insert("title".into(), json!(format!("Page {}", url.len())));
                    if let Some(r) = &previous_url {
                        fields.insert("referrer".into(), json!(r));
                    }
                    if seq == 1 {
                        if let Some(p) = &previous {
                            fields.insert("previous_session_id".into(), json!(p));
                        }
                        fields.insert(
                            "context".into(),
                            json!({"user_agent": user_agent, "language": "en-US", "screen": "1920x1080"}),
                        );
                    }
                }
                "click" => {
                    let href = self.page();
                    fields.insert(
                        "props".into(),
                        json!({"tag": "a", "text": "Read more", "href": href}),
                    );
                }
                "custom" => {
                    let (name, _) = CUSTOM_EVENTS[self.custom_pick.sample(&mut self.rng)];
                    fields.insert("name".into(), json!(name));
                    fields.insert(
                        "props".into(),
                        json!({"value": self.rng.random_range(1..500)}),
                    );
                }
                _ => {
                    fields.insert("props".into(), json!({"method": "password"}));
                }
            }
            events.push((ts, event));
        }
        self.batches(events, ip, user_agent);
    }

    /// Cuts a visit's events as the SDK does and queues the batches.
    fn batches(&mut self, events: Vec<(u64, Value)>, ip: Ipv4Addr, user_agent: &'static str) {
        let mut batch: Vec<Value> = Vec::new();
        let mut oldest = 0;
        let mut iter = events.into_iter().peekable();
        while let Some((ts, event)) = iter.next() {
            if batch.is_empty() {
                oldest = ts;
            }
            batch.push(event);
            let send_at = match iter.peek() {
                None => Some((oldest + BATCH_WINDOW_MS).min(ts + 1_000)),
                Some((_, next)) if next["type"] == "page_view" => Some(
                    (oldest + BATCH_WINDOW_MS).min(ts.max(next["ts"].as_u64().unwrap_or(ts) - 100)),
                ),
                Some((next_ts, _)) if *next_ts > oldest + BATCH_WINDOW_MS => {
                    Some(oldest + BATCH_WINDOW_MS)
                }
                Some(_) if batch.len() == BATCH_EVENTS => Some(ts),
                Some(_) => None,
            };
            if let Some(send_at) = send_at {
                self.order += 1;
                self.queue.push(Reverse(Queued {
                    send_at,
                    order: self.order,
                    batch: Batch {
                        send_at,
                        events: std::mem::take(&mut batch),
                        ip,
                        user_agent,
                    },
                }));
            }
        }
    }
}

impl Iterator for Traffic {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        loop {
            if let Some(batch) = self.ready.pop_front() {
                return Some(batch);
            }
            if !self.advance() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_come_in_send_order_and_hold_every_event_once() {
        let day = 86_400_000;
        let traffic = Traffic::new(50_000, 10 * day, 13 * day);
        let mut last = 0;
        let mut events = 0;
        let mut ids = std::collections::HashSet::new();
        for batch in traffic {
            assert!(batch.send_at >= last, "out of order");
            last = batch.send_at;
            assert!((1..=BATCH_EVENTS).contains(&batch.events.len()));
            for e in &batch.events {
                let ts = e["ts"].as_u64().unwrap_or(0);
                assert!(ts <= batch.send_at && ts >= 10 * day && ts < 13 * day + MAX_VISIT_MS);
                assert!(ids.insert(e["event_id"].as_str().unwrap_or("").to_owned()));
            }
            events += batch.events.len();
        }
        assert!((48_500..=50_000).contains(&events), "{events} events");
    }
}
