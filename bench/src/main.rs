//! Load generator for the Waymark collector, run by `cargo xtask bench`.
//!
//! Starts the release `waymark` binary on a free loopback port, once with the
//! null store (validates, enriches, discards: the ceiling) and once with
//! SQLite, and posts batches of 20 events shaped like the SDK's (taken from
//! `tests/fixtures/batch-v1.json`, every event with a fresh UUIDv7 so nothing
//! is a duplicate). For each store: open-loop fixed rates of 1,000 and 10,000
//! events/s (each request leaves when it is due, whether or not the earlier
//! ones were answered, so a slow server meets the full offered load), then
//! saturation with a fixed number of connections. Prints a Markdown table.
//! With `--clickhouse <url>` the ClickHouse store is measured too, and how
//! long after the load its spool took to drain into ClickHouse.
//!
//! ```text
//! waymark-bench <path/to/waymark> [--seconds 10] [--connections 32] [--clickhouse clickhouse://…]
//! ```
//!
//! `waymark-bench read …` is the read side instead: a month of realistic
//! traffic filled through `/v1/batch`, then the read API timed (see
//! [`read`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::header::CONTENT_TYPE;
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use collector::Collector;

mod collector;
mod dashboard;
mod fill;
mod read;
mod reads;
mod traffic;

const EVENTS_PER_BATCH: usize = 20;
/// Batches sent in one session before the next session starts.
const BATCHES_PER_SESSION: u64 = 3;
const FIXTURE: &str = include_str!("../../tests/fixtures/batch-v1.json");

type HttpClient = Client<HttpConnector, Full<Bytes>>;
type Result<T = ()> = std::result::Result<T, String>;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("waymark-bench: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

struct Options {
    waymark: PathBuf,
    seconds: u64,
    connections: usize,
    clickhouse: Option<String>,
}

fn options() -> Result<Options> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        waymark: PathBuf::new(),
        seconds: 10,
        connections: 32,
        clickhouse: None,
    };
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<u64> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--seconds" => options.seconds = number("--seconds")?.clamp(1, 120),
            "--connections" => {
                options.connections = number("--connections")?.clamp(1, 512) as usize
            }
            "--clickhouse" => options.clickhouse = args.next(),
            path => options.waymark = PathBuf::from(path),
        }
    }
    if !options.waymark.is_file() {
        return Err(
            "usage: waymark-bench <path/to/waymark> [--seconds 10] [--connections 32]".into(),
        );
    }
    Ok(options)
}

fn run() -> Result {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("read") {
        return read::run(&args[1..]);
    }
    let options = options()?;
    // One worker for the client: on a small machine the collector needs the
    // other cores more than the client does.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio: {e}"))?;
    let mut results = Vec::new();
    let mut stores = vec!["null", "sqlite"];
    stores.extend(options.clickhouse.as_deref());
    let mut drained = None;
    for store in stores {
        let collector = Collector::start(&options.waymark, store)?;
        let measured = runtime.block_on(measure(&collector, &options));
        if store.starts_with("clickhouse") {
            drained = Some(collector.wait_for_empty_spool(Duration::from_secs(300))?);
        }
        let peak_rss_kb = collector.peak_rss_kb();
        collector.stop();
        let name = if store.starts_with("clickhouse") {
            "clickhouse"
        } else {
            store
        };
        results.push((name, measured?, peak_rss_kb));
    }
    print_table(&results, &options);
    if let Some(seconds) = drained {
        println!(
            "\nClickHouse store: every acknowledged event was in ClickHouse {seconds:.1} s after the \
             last row's load ended (the spool drains in inserts of up to 20,000 events)."
        );
    }
    Ok(())
}

struct Phase {
    name: String,
    events_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    errors: u64,
}

async fn measure(collector: &Collector, options: &Options) -> Result<Vec<Phase>> {
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build_http();
    let url = format!("http://{}/v1/batch", collector.addr);
    let run = Duration::from_secs(options.seconds);
    let mut phases = Vec::new();
    for events_per_second in [1_000u32, 10_000] {
        let requests_per_second = events_per_second / EVENTS_PER_BATCH as u32;
        let mut phase = fixed_rate(&client, &url, requests_per_second, run).await;
        phase.name = format!("{events_per_second} events/s offered");
        phases.push(phase);
    }
    let mut phase = saturate(&client, &url, options.connections, run).await;
    phase.name = format!("saturation ({} connections)", options.connections);
    phases.push(phase);
    Ok(phases)
}

#[derive(Default)]
struct Tally {
    latency_us: Option<Histogram<u64>>,
    events: u64,
    errors: u64,
    last_done: Option<Instant>,
}

impl Tally {
    fn new() -> Arc<Mutex<Tally>> {
        Arc::new(Mutex::new(Tally {
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).ok(),
            ..Tally::default()
        }))
    }

    fn record(tally: &Mutex<Tally>, since: Instant, accepted: Option<u64>) {
        let now = Instant::now();
        let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
        match accepted {
            Some(n) => tally.events += n,
            None => tally.errors += 1,
        }
        let micros = now.duration_since(since).as_micros() as u64;
        if let Some(h) = tally.latency_us.as_mut() {
            let _ = h.record(micros.max(1));
        }
        tally.last_done = Some(now);
    }

    fn phase(tally: &Mutex<Tally>, start: Instant) -> Phase {
        let tally = tally.lock().unwrap_or_else(|p| p.into_inner());
        let seconds = tally
            .last_done
            .map(|t| t.duration_since(start).as_secs_f64())
            .unwrap_or(1.0);
        let ms = |q: f64| {
            tally
                .latency_us
                .as_ref()
                .map(|h| h.value_at_quantile(q) as f64 / 1000.0)
                .unwrap_or(f64::NAN)
        };
        Phase {
            name: String::new(),
            events_per_second: tally.events as f64 / seconds,
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            max_ms: ms(1.0),
            errors: tally.errors,
        }
    }
}

/// Open loop: request `i` leaves at `start + i / rate` whatever happened to
/// the others. Latency runs from when it left (the timer wakes up to a
/// millisecond late; counting from the due time would add that to every
/// request).
async fn fixed_rate(client: &HttpClient, url: &str, per_second: u32, run: Duration) -> Phase {
    let tally = Tally::new();
    let interval = Duration::from_secs_f64(1.0 / f64::from(per_second.max(1)));
    let total = (run.as_secs_f64() * f64::from(per_second)) as u32;
    let mut batches = BatchMaker::new();
    let start = Instant::now();
    let mut inflight = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + interval * i;
        tokio::time::sleep_until(due.into()).await;
        let sent = Instant::now();
        let (client, url, tally, body) = (
            client.clone(),
            url.to_owned(),
            tally.clone(),
            batches.next(),
        );
        inflight.push(tokio::spawn(async move {
            let accepted = post(&client, &url, body).await;
            Tally::record(&tally, sent, accepted);
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for task in inflight {
        if tokio::time::timeout_at(deadline, task).await.is_err() {
            tally.lock().unwrap_or_else(|p| p.into_inner()).errors += 1;
        }
    }
    Tally::phase(&tally, start)
}

/// Closed loop: `connections` clients each send the next batch as soon as
/// the last one is answered, for `run`.
async fn saturate(client: &HttpClient, url: &str, connections: usize, run: Duration) -> Phase {
    let tally = Tally::new();
    let start = Instant::now();
    let end = start + run;
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url, tally) = (client.clone(), url.to_owned(), tally.clone());
            tokio::spawn(async move {
                let mut batches = BatchMaker::new();
                while Instant::now() < end {
                    let body = batches.next();
                    let sent = Instant::now();
                    let accepted = post(&client, &url, body).await;
                    Tally::record(&tally, sent, accepted);
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = tokio::time::timeout(run + Duration::from_secs(30), worker).await;
    }
    Tally::phase(&tally, start)
}

/// Posts one batch; the number of events the collector accepted, or `None`
/// on any failure.
async fn post(client: &HttpClient, url: &str, body: Bytes) -> Option<u64> {
    let request = Request::post(url)
        .header(CONTENT_TYPE, "text/plain;charset=UTF-8")
        .body(Full::new(body))
        .ok()?;
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .ok()?
        .ok()?;
    let ok = response.status().is_success();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    let answer: Value = serde_json::from_slice(&body).ok()?;
    ok.then(|| answer["accepted"].as_u64()).flatten()
}

/// Batches of 20 events in the SDK's shapes: a page view with its context,
/// then clicks, custom events and page views; sessions of three batches.
struct BatchMaker {
    shapes: Vec<Value>,
    sent: u64,
    session_id: String,
    visitor_id: String,
    seq: u64,
}

impl BatchMaker {
    fn new() -> Self {
        let fixture: Value = serde_json::from_str(FIXTURE).unwrap_or(Value::Null);
        let events = fixture["events"].as_array().cloned().unwrap_or_default();
        let of_type = |t: &str| {
            events
                .iter()
                .find(|e| e["type"] == t)
                .cloned()
                .unwrap_or_else(|| json!({"type": t, "url": "http://127.0.0.1:8080/"}))
        };
        let page_view = of_type("page_view");
        let custom = of_type("custom");
        let mut click = custom.clone();
        click["type"] = json!("click");
        click["name"] = Value::Null;
        click["props"] =
            json!({"tag": "a", "text": "See pricing", "href": "/pricing.html", "id": "cta"});
        BatchMaker {
            shapes: vec![page_view, click, custom],
            sent: 0,
            session_id: String::new(),
            visitor_id: String::new(),
            seq: 0,
        }
    }

    fn next(&mut self) -> Bytes {
        if self.sent.is_multiple_of(BATCHES_PER_SESSION) {
            self.session_id = uuid::Uuid::now_v7().to_string();
            self.visitor_id = uuid::Uuid::new_v4().to_string();
            self.seq = 0;
        }
        self.sent += 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let events: Vec<Value> = (0..EVENTS_PER_BATCH)
            .map(|i| {
                self.seq += 1;
                let mut event = self.shapes[i % self.shapes.len()].clone();
                event["event_id"] = json!(uuid::Uuid::now_v7().to_string());
                event["session_id"] = json!(self.session_id);
                event["visitor_id"] = json!(self.visitor_id);
                event["seq"] = json!(self.seq);
                event["ts"] = json!(now - (EVENTS_PER_BATCH - i) as u64 * 250);
                if let Some(object) = event.as_object_mut() {
                    object.remove("user_id");
                    object.remove("previous_session_id");
                }
                event
            })
            .collect();
        let batch = json!({"v": 1, "site": "demo", "sent_at": now, "events": events});
        Bytes::from(batch.to_string())
    }
}

fn print_table(results: &[(&str, Vec<Phase>, Option<u64>)], options: &Options) {
    println!(
        "Batches of {EVENTS_PER_BATCH} events, {} s per row, one collector per store (peak RSS over all its rows).\n",
        options.seconds
    );
    println!("| store | load | events/s sustained | p50 ms | p99 ms | max ms | failed requests | peak RSS |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (store, phases, rss) in results {
        let rss = rss.map_or("?".to_owned(), |kb| {
            format!("{:.0} MiB", kb as f64 / 1024.0)
        });
        for phase in phases {
            println!(
                "| {store} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {rss} |",
                phase.name,
                phase.events_per_second,
                phase.p50_ms,
                phase.p99_ms,
                phase.max_ms,
                phase.errors
            );
        }
    }
    let Some((_, null, _)) = results.iter().find(|(store, _, _)| *store == "null") else {
        return;
    };
    for (store, phases, _) in results.iter().filter(|(store, _, _)| *store != "null") {
        println!("\n| load | {store} / null events/s | {store} / null p50 | {store} / null p99 |");
        println!("| --- | ---: | ---: | ---: |");
        for (n, s) in null.iter().zip(phases) {
            println!(
                "| {} | {:.2} | {:.2} | {:.2} |",
                n.name,
                s.events_per_second / n.events_per_second,
                s.p50_ms / n.p50_ms,
                s.p99_ms / n.p99_ms
            );
        }
    }
}
