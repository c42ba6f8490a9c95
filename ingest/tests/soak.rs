//! The soak: honest, SDK-shaped traffic beside hostile traffic, against the
//! real `waymark` binary, on SQLite and on ClickHouse.
//!
//! It runs for `WAYMARK_SOAK_SECS` seconds (10 when unset; `cargo xtask
//! test` sets 30 per store, `cargo xtask bench` 300). The hostile side sends
//! from rotating client addresses (through the trusted proxy header): one
//! giant session, time bombs, forged collector ids, gzip bombs, oversized
//! and malformed bodies, and slow and abandoned connections.
//!
//! It shows that every acknowledged honest event is stored exactly once,
//! that `/healthz` stays ok, and that the collector's peak RSS stays under
//! [`RSS_BOUND_MIB`]; and prints what was sent and how it was answered.
//!
//! Talks HTTP/1.1 over `std::net::TcpStream` to 127.0.0.1 only; every loop
//! is bounded by the soak's deadline.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

mod support;
use support::clickhouse::ClickHouse;
use support::collector::{exchange_raw, request, request_with, Collector};

/// The collector's peak resident set may not grow past this.
const RSS_BOUND_MIB: u64 = 128;
const HONEST_THREADS: u64 = 4;
const VISITORS_PER_THREAD: u64 = 40;
const TOKEN: &str = "soak-admin-token-0123456789";
const HONEST_SITE: &str = "soak";
const HOSTILE_SITE: &str = "soak-hostile";
/// The collector's header-read timeout here (`--header-read-timeout-ms`;
/// the default, 10 s, is longer than the default soak).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How late past its limit a connection may still be seen open (the check
/// runs every 250 ms on a busy machine).
const SLACK: Duration = Duration::from_secs(3);
/// The wire format's limit on events in one batch.
const MAX_EVENTS_PER_BATCH: usize = 500;

fn soak_duration() -> Duration {
    let secs = std::env::var("WAYMARK_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    Duration::from_secs(secs)
}

fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    u64::try_from(since.as_millis()).unwrap()
}

/// xorshift64*: enough randomness for traffic shapes, seeded per thread.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A client address: IPv4, or an IPv6 address in a random /64.
    fn address(&mut self) -> String {
        let bits = self.next();
        if bits & 1 == 0 {
            let [a, b, c, ..] = bits.to_be_bytes();
            format!("100.{a}.{b}.{c}")
        } else {
            let [a, b, c, d, e, f, g, h] = self.next().to_be_bytes();
            format!("2001:db8:{a:x}{b:02x}:{c:x}{d:02x}:{e:x}{f:02x}:{g:x}{h:02x}::1")
        }
    }
}

/// What one run saw, by side and kind: answers counted by status (and by
/// rejection reason for events refused inside a 200).
#[derive(Default)]
struct Tally {
    answers: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn count(&self, what: impl Into<String>, n: u64) {
        *self.answers.lock().unwrap().entry(what.into()).or_default() += n;
    }
}

struct Soak {
    port: u16,
    pid: u32,
    deadline: Instant,
    stop: AtomicBool,
    tally: Tally,
    /// Honest events the collector acknowledged (answered 200, not in
    /// `rejected`).
    acknowledged: Mutex<Vec<String>>,
    /// Honest events the collector refused, with the answer: must stay empty.
    honest_refused: Mutex<Vec<String>>,
    unhealthy: Mutex<Vec<String>>,
    /// Slow or abandoned connections still open past their limit.
    overdue: Mutex<Vec<String>>,
    healthy_checks: AtomicU64,
    peak_rss_kib: AtomicU64,
}

impl Soak {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::SeqCst) && Instant::now() < self.deadline
    }

    fn post(&self, client: &str, headers: &str, body: &[u8]) -> std::io::Result<(u16, Value)> {
        let headers = format!(
            "Content-Type: text/plain;charset=UTF-8\r\nX-Forwarded-For: {client}\r\n{headers}"
        );
        let (status, _, body) = exchange_raw(self.port, "POST", "/v1/batch", &headers, body)?;
        Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
    }
}

fn event(kind: &str, session: &str, visitor: &str, seq: u64, ts: u64) -> Value {
    let mut event = json!({
        "event_id": Uuid::new_v4().to_string(),
        "type": kind,
        "ts": ts,
        "session_id": session,
        "visitor_id": visitor,
        "session_index": 1,
        "seq": seq,
        "url": format!("https://soak.example/page/{}", seq % 7),
        "title": "Soak",
        "storage": "local",
    });
    match kind {
        "page_view" if seq == 1 => {
            event["referrer"] = json!("https://news.example/");
            event["context"] = json!({
                "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0",
                "language": "en-GB", "screen": "1920x1080", "time_zone": "Europe/London",
            });
        }
        "click" => event["props"] = json!({"tag": "a", "text": "Pricing"}),
        "custom" => {
            event["name"] = json!("signup");
            event["props"] = json!({"plan": "pro"});
        }
        _ => {}
    }
    event
}

fn batch(site: &str, events: &[Value]) -> Vec<u8> {
    json!({"v": 1, "site": site, "sent_at": now_ms(), "events": events})
        .to_string()
        .into_bytes()
}

/// One honest thread: visitors sending SDK-shaped batches (a page view to
/// open each session, then clicks, custom events and more page views),
/// each from its own address, retrying on 429, 503 and lost connections
/// like the SDK.
fn honest(soak: &Soak, thread: u64) {
    let mut rng = Rng::new(thread + 1);
    let visitors: Vec<(String, String, String)> = (0..VISITORS_PER_THREAD)
        .map(|v| {
            (
                Uuid::new_v4().to_string(),
                Uuid::new_v4().to_string(),
                format!("198.51.{thread}.{v}"),
            )
        })
        .collect();
    let mut seqs = vec![0u64; visitors.len()];
    while soak.running() {
        let v = rng.below(visitors.len() as u64) as usize;
        let (visitor, session, address) = &visitors[v];
        let events: Vec<Value> = (0..1 + rng.below(6))
            .map(|_| {
                seqs[v] += 1;
                let kind = match (seqs[v], rng.below(4)) {
                    (1, _) | (_, 0) => "page_view",
                    (_, 1) => "custom",
                    _ => "click",
                };
                event(kind, session, visitor, seqs[v], now_ms())
            })
            .collect();
        let ids: Vec<String> = events
            .iter()
            .map(|e| e["event_id"].as_str().unwrap().to_owned())
            .collect();
        let body = batch(HONEST_SITE, &events);
        // The SDK keeps a batch until it is answered: same ids on a retry.
        loop {
            match soak.post(address, "", &body) {
                Ok((200, answer)) => {
                    soak.tally.count("honest 200", 1);
                    let rejected = answer["rejected"].as_array().map_or(0, Vec::len);
                    if rejected > 0 || answer.is_null() {
                        soak.honest_refused.lock().unwrap().push(answer.to_string());
                    }
                    soak.acknowledged.lock().unwrap().extend(ids);
                    break;
                }
                Ok((status @ (429 | 503), _)) => {
                    soak.tally.count(format!("honest {status}, retried"), 1);
                }
                Ok((status, answer)) => {
                    soak.honest_refused
                        .lock()
                        .unwrap()
                        .push(format!("{status}: {answer}"));
                    break;
                }
                Err(_) => soak.tally.count("honest connection error, retried", 1),
            }
            if !soak.running() {
                // Not acknowledged: not counted.
                break;
            }
            thread::sleep(Duration::from_millis(100 + rng.below(200)));
        }
        thread::sleep(Duration::from_millis(5 + rng.below(20)));
    }
}

/// Counts one hostile answer: the status, and each reason of the events
/// refused inside a 200.
fn tally_hostile(soak: &Soak, kind: &str, answer: std::io::Result<(u16, Value)>) {
    match answer {
        Ok((status, body)) => {
            soak.tally.count(format!("{kind} {status}"), 1);
            for rejected in body["rejected"].as_array().into_iter().flatten() {
                let reason = rejected["reason"].as_str().unwrap_or("?");
                let field = reason.split(':').next().unwrap_or(reason);
                soak.tally
                    .count(format!("{kind} event refused: {field}"), 1);
            }
        }
        Err(_) => soak.tally.count(format!("{kind} connection error"), 1),
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Valid batches from a new address each time, IPv4 and IPv6.
fn rotating_addresses(soak: &Soak, rng: &mut Rng) {
    let session = Uuid::new_v4().to_string();
    let events = [event("page_view", &session, "v-rotating", 1, now_ms())];
    let answer = soak.post(&rng.address(), "", &batch(HOSTILE_SITE, &events));
    tally_hostile(soak, "rotating address", answer);
}

/// One session fed full batches for ever.
fn giant_session(soak: &Soak, rng: &mut Rng) {
    let seq = rng.next() % 1_000_000;
    let events: Vec<Value> = (0..MAX_EVENTS_PER_BATCH as u64)
        .map(|i| event("click", "giant-session", "v-giant", seq + i, now_ms()))
        .collect();
    let answer = soak.post(&rng.address(), "", &batch(HOSTILE_SITE, &events));
    tally_hostile(soak, "giant session", answer);
    thread::sleep(Duration::from_millis(20));
}

/// Events from 1970, from the end of time, and an hour and more ahead.
fn time_bombs(soak: &Soak, rng: &mut Rng) {
    let session = Uuid::new_v4().to_string();
    let events: Vec<Value> = [1, 1 << 53, now_ms() + 2 * 3_600_000, 86_400_000 * 400]
        .iter()
        .enumerate()
        .map(|(i, &ts)| event("page_view", &session, "v-bomb", i as u64 + 1, ts))
        .collect();
    let answer = soak.post(&rng.address(), "", &batch(HOSTILE_SITE, &events));
    tally_hostile(soak, "time bomb", answer);
}

/// A page view under the id the collector gives its own `visit_ended`
/// (public: the namespaces are in the source).
fn forged_ids(soak: &Soak, rng: &mut Rng) {
    const VISIT_ENDED_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_9a55_3b8e_4d1e_9a0f_7e2b_5c4d_0a11);
    let session = Uuid::new_v4().to_string();
    let site = Uuid::new_v5(&VISIT_ENDED_NAMESPACE, HOSTILE_SITE.as_bytes());
    let mut forged = event("page_view", &session, "v-forger", 1, now_ms());
    forged["event_id"] = json!(Uuid::new_v5(&site, session.as_bytes()).to_string());
    let answer = soak.post(&rng.address(), "", &batch(HOSTILE_SITE, &[forged]));
    tally_hostile(soak, "forged id", answer);
}

/// 64 MiB of JSON whitespace in 64 KiB of gzip, and 2 MiB sent plain.
fn bombs(soak: &Soak, rng: &mut Rng, gzip_bomb: &[u8]) {
    let answer = soak.post(&rng.address(), "Content-Encoding: gzip\r\n", gzip_bomb);
    tally_hostile(soak, "gzip bomb", answer);
    let oversized = vec![b' '; 2 << 20];
    let answer = soak.post(&rng.address(), "", &oversized);
    tally_hostile(soak, "oversized body", answer);
    thread::sleep(Duration::from_millis(50));
}

/// Truncated, mistyped, deeply nested and random bodies.
fn malformed(soak: &Soak, rng: &mut Rng) {
    let valid = batch(HOSTILE_SITE, &[event("page_view", "m", "v-m", 1, now_ms())]);
    let cut = valid[..rng.below(valid.len() as u64) as usize].to_vec();
    let random: Vec<u8> = (0..rng.below(4096)).map(|_| rng.next() as u8).collect();
    let bodies = [
        cut,
        random,
        b"{\"v\": 1, \"site\": 7, \"events\": {}}".to_vec(),
        b"[".repeat(100_000),
        b"{\"v\": 99, \"site\": \"x\", \"events\": []}".to_vec(),
    ];
    for body in bodies {
        let answer = soak.post(&rng.address(), "", &body);
        tally_hostile(soak, "malformed", answer);
    }
}

/// A connection [`slow_connections`] holds open.
struct Held {
    stream: TcpStream,
    opened: Instant,
    /// Sends its head a byte at a time; otherwise promises a body and
    /// stops after a few bytes of it.
    slow_head: bool,
    sent: usize,
}

impl Held {
    const SLOW_HEAD: &'static [u8] =
        b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\n";
    const PROMISE: &'static [u8] =
        b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{\"v\":1,";

    /// How long the collector may leave it open: the header-read timeout
    /// for a head, the request timeout (30 s) for a body that never comes.
    fn limit(&self) -> Duration {
        if self.slow_head {
            HEADER_READ_TIMEOUT
        } else {
            Duration::from_secs(30)
        }
    }

    fn kind(&self) -> &'static str {
        if self.slow_head {
            "slow headers"
        } else {
            "abandoned body"
        }
    }

    /// Sends the next bytes and checks the socket: false once the server
    /// has closed it.
    fn still_open(&mut self) -> bool {
        let (bytes, chunk) = if self.slow_head {
            (Held::SLOW_HEAD, 1)
        } else {
            (Held::PROMISE, Held::PROMISE.len())
        };
        if self.sent < bytes.len() {
            let end = (self.sent + chunk).min(bytes.len());
            match self.stream.write(&bytes[self.sent..end]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return false,
            }
        }
        let mut buf = [0u8; 512];
        match self.stream.read(&mut buf) {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
        }
    }
}

/// Connections that send their headers a byte at a time, and connections
/// that promise a body and never send it, 48 held at a time until the server
/// closes them or the soak ends.
fn slow_connections(soak: &Soak) {
    let mut held: Vec<Held> = Vec::new();
    while soak.running() {
        while held.len() < 48 {
            let Ok(stream) = TcpStream::connect(("127.0.0.1", soak.port)) else {
                soak.tally.count("slow connection refused at connect", 1);
                break;
            };
            stream.set_nonblocking(true).unwrap();
            held.push(Held {
                stream,
                opened: Instant::now(),
                slow_head: held.len().is_multiple_of(2),
                sent: 0,
            });
        }
        held.retain_mut(|connection| {
            let open = connection.still_open();
            if !open {
                closed(soak, connection.kind(), connection.opened);
            }
            open
        });
        thread::sleep(Duration::from_millis(250));
    }
    for connection in held {
        let kind = connection.kind();
        soak.tally
            .count(format!("{kind}: still open at the end"), 1);
        let age = connection.opened.elapsed();
        if age > connection.limit() + SLACK {
            soak.overdue
                .lock()
                .unwrap()
                .push(format!("{kind} open for {age:?}"));
        }
    }
}

fn closed(soak: &Soak, kind: &str, opened: Instant) {
    let secs = opened.elapsed().as_secs();
    let bucket = match secs {
        0..5 => "< 5 s",
        5..30 => "5-30 s",
        _ => "30 s or more",
    };
    soak.tally
        .count(format!("{kind}: closed by the server after {bucket}"), 1);
}

/// `/healthz` every 200 ms, and the collector's resident set every 100 ms.
fn watch(soak: &Soak) {
    let mut last_health = Instant::now() - Duration::from_secs(1);
    while soak.running() {
        if last_health.elapsed() >= Duration::from_millis(200) {
            last_health = Instant::now();
            match request(soak.port, "GET", "/healthz", "") {
                Ok((200, _)) => {
                    soak.healthy_checks.fetch_add(1, Ordering::SeqCst);
                }
                other => soak.unhealthy.lock().unwrap().push(format!("{other:?}")),
            }
        }
        if let Some(rss) = status_kib(soak.pid, "VmRSS:") {
            soak.peak_rss_kib.fetch_max(rss, Ordering::SeqCst);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A `/proc/<pid>/status` line, in KiB (`VmRSS:`, `VmHWM:`).
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the soak against `collector`; returns the acknowledged honest ids.
fn soak(collector: &Collector, store: &str) -> Vec<String> {
    // Made before the clock starts: compressing 64 MiB takes seconds.
    let gzip_bomb = Arc::new(gzip(&vec![b' '; 64 << 20]));
    let soak = Arc::new(Soak {
        port: collector.port,
        pid: collector.child.id(),
        deadline: Instant::now() + soak_duration(),
        stop: AtomicBool::new(false),
        tally: Tally::default(),
        acknowledged: Mutex::new(Vec::new()),
        honest_refused: Mutex::new(Vec::new()),
        unhealthy: Mutex::new(Vec::new()),
        overdue: Mutex::new(Vec::new()),
        healthy_checks: AtomicU64::new(0),
        peak_rss_kib: AtomicU64::new(0),
    });
    type Attack = fn(&Soak, &mut Rng);
    let attacks: [(&str, Attack); 5] = [
        ("rotating", rotating_addresses),
        ("giant", giant_session),
        ("time", time_bombs),
        ("forged", forged_ids),
        ("malformed", malformed),
    ];
    let started = Instant::now();
    let mut threads = Vec::new();
    for t in 0..HONEST_THREADS {
        let soak = Arc::clone(&soak);
        threads.push(thread::spawn(move || honest(&soak, t)));
    }
    for (i, (_, attack)) in attacks.into_iter().enumerate() {
        let soak = Arc::clone(&soak);
        threads.push(thread::spawn(move || {
            let mut rng = Rng::new(1_000 + i as u64);
            while soak.running() {
                attack(&soak, &mut rng);
                thread::sleep(Duration::from_millis(2));
            }
        }));
    }
    {
        let soak = Arc::clone(&soak);
        threads.push(thread::spawn(move || {
            let mut rng = Rng::new(99);
            while soak.running() {
                bombs(&soak, &mut rng, &gzip_bomb);
            }
        }));
    }
    for job in [slow_connections, watch] {
        let soak = Arc::clone(&soak);
        threads.push(thread::spawn(move || job(&soak)));
    }
    for thread in threads {
        thread.join().unwrap();
    }
    let elapsed = started.elapsed();
    let peak_hwm = status_kib(soak.pid, "VmHWM:").unwrap_or(0);
    let peak = peak_hwm.max(soak.peak_rss_kib.load(Ordering::SeqCst));

    let (status, metrics) = request_with(soak.port, "GET", "/metrics", "", TOKEN).unwrap();
    assert_eq!(status, 200, "{metrics}");
    let refused: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            !l.starts_with('#')
                && (l.contains("rejected")
                    || l.contains("refused")
                    || l.contains("limited")
                    || l.contains("shed"))
        })
        .collect();
    let acknowledged = std::mem::take(&mut *soak.acknowledged.lock().unwrap());
    let mut report = format!(
        "SOAK {store}: {:.0} s, {} honest events acknowledged, /healthz ok {} times and not ok {} times, \
         peak RSS {:.1} MiB (bound {RSS_BOUND_MIB} MiB)\n",
        elapsed.as_secs_f64(),
        acknowledged.len(),
        soak.healthy_checks.load(Ordering::SeqCst),
        soak.unhealthy.lock().unwrap().len(),
        peak as f64 / 1024.0,
    );
    for (what, n) in soak.tally.answers.lock().unwrap().iter() {
        report.push_str(&format!("SOAK {store}:   {what}: {n}\n"));
    }
    for line in refused {
        report.push_str(&format!("SOAK {store}:   collector metric {line}\n"));
    }
    // Straight to stderr: the harness would hold back `eprintln!` from a
    // passing test, and these are the soak's figures.
    let _ = std::io::stderr().write_all(report.as_bytes());

    let refused = soak.honest_refused.lock().unwrap();
    assert!(
        refused.is_empty(),
        "{} honest batches were refused, e.g. {:?}",
        refused.len(),
        refused.first()
    );
    let unhealthy = soak.unhealthy.lock().unwrap();
    assert!(
        unhealthy.is_empty(),
        "/healthz was not ok {} times, e.g. {:?}",
        unhealthy.len(),
        unhealthy.first()
    );
    let overdue = soak.overdue.lock().unwrap();
    assert!(
        overdue.is_empty(),
        "{} slow connections outlived their timeout, e.g. {:?}",
        overdue.len(),
        overdue.first()
    );
    assert!(
        peak < RSS_BOUND_MIB * 1024,
        "peak RSS {peak} KiB is over {RSS_BOUND_MIB} MiB"
    );
    assert!(!acknowledged.is_empty(), "no honest event was acknowledged");
    acknowledged
}

/// Every id in `acknowledged` is in `stored` (id → copies) exactly once;
/// says so in a `SOAK` line.
fn assert_exactly_once(store: &str, stored: &HashMap<String, u64>, acknowledged: &[String]) {
    let mut missing = 0;
    for id in acknowledged {
        match stored.get(id) {
            Some(1) => {}
            Some(n) => panic!("{id} is stored {n} times"),
            None => missing += 1,
        }
    }
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged honest events are missing",
        acknowledged.len()
    );
    let _ = writeln!(
        std::io::stderr(),
        "SOAK {store}: all {} acknowledged honest events found in the store, each exactly once",
        acknowledged.len()
    );
}

fn collector_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        // Hostile clients rotate their addresses behind the proxy header.
        "--trust-proxy",
        "1",
        "--rate-limit",
        "50",
        "--admin-token",
        TOKEN,
        "--header-read-timeout-ms",
        "2000",
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn soak_sqlite() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let mut collector =
        Collector::start_with(root.path(), "soak-sqlite", &data, &collector_args(&[]));
    let acknowledged = soak(&collector, "sqlite");
    let exit = collector.terminate();
    assert!(exit.success(), "the collector did not stop cleanly: {exit}");

    let db = rusqlite::Connection::open(data.join("waymark.db")).unwrap();
    waymark_ingest::SqliteStore::register_functions(&db).unwrap();
    let mut statement = db
        .prepare("SELECT wm_text(event_id), COUNT(*) FROM events WHERE site = ?1 GROUP BY event_id")
        .unwrap();
    let stored: HashMap<String, u64> = statement
        .query_map([HONEST_SITE], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_exactly_once("sqlite", &stored, &acknowledged);
}

#[test]
fn soak_clickhouse() {
    let Some(clickhouse) = ClickHouse::start_if_wanted() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let url = clickhouse.url("soak");
    let args = collector_args(&["--store", &url, "--flush-interval-ms", "200"]);
    let mut collector = Collector::start_with(root.path(), "soak-clickhouse", &data, &args);
    let acknowledged = soak(&collector, "clickhouse");

    // Shipped from the spool within a minute.
    let query = |sql: &str| clickhouse.query(sql);
    let stored_ids = || -> usize {
        query("SELECT uniqExact(event_id) FROM soak.events WHERE site = 'soak'")
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored_ids() < acknowledged.len() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
    }
    let exit = collector.terminate();
    assert!(exit.success(), "the collector did not stop cleanly: {exit}");
    query("OPTIMIZE TABLE soak.events FINAL");
    let stored: HashMap<String, u64> = query(
        "SELECT toString(event_id), count() FROM soak.events WHERE site = 'soak' GROUP BY event_id",
    )
    .lines()
    .map(|line| {
        let (id, n) = line.split_once('\t').unwrap();
        (id.to_owned(), n.parse().unwrap())
    })
    .collect();
    assert_exactly_once("clickhouse", &stored, &acknowledged);
}
