//! Times each read endpoint on a filled collector and prints the results as
//! Markdown.
//!
//! Every call is made `reps` times in a row, one at a time, with the admin
//! token; the time runs from sending the request to having read the whole
//! answer. A call the collector answers `404`, or `400` naming an unknown
//! parameter, is not implemented yet (`n/a`); any other error is shown
//! with its status. A slow call stops
//! after 60 s once it has run 3 times, and says how many runs it had.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::AUTHORIZATION;
use hyper::{Request, StatusCode};
use serde_json::Value;

use crate::collector::ADMIN_TOKEN;
use crate::read::StoreRun;
use crate::traffic::SITE;
use crate::HttpClient;

const DAY_MS: u64 = 86_400_000;
/// The dimensions of `/v1/breakdown` (PRODUCT.md, "Reading the data").
const DIMENSIONS: [&str; 17] = [
    "page",
    "entry_page",
    "exit_page",
    "source",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "country",
    "region",
    "city",
    "browser",
    "os",
    "device_type",
    "event_name",
];
/// The one filter of the filtered rows: a page, the kind that needs a
/// visit's page views, not only its own columns.
pub const FILTER: &str = "page:/pricing";
/// A slow call stops repeating once it has run this long (and at least
/// [`MIN_RUNS`] times).
const BUDGET: Duration = Duration::from_secs(60);
const MIN_RUNS: usize = 3;

/// How one call went.
pub enum Outcome {
    Timed {
        p50_ms: f64,
        p99_ms: f64,
        runs: usize,
    },
    /// `404`, or `400` for an unknown parameter: the endpoint, or that
    /// parameter of it, does not exist (yet).
    NotImplemented,
    Failed(String),
}

/// One call's label and outcome.
pub struct Timing {
    pub label: String,
    pub outcome: Outcome,
}

async fn get(client: &HttpClient, url: &str) -> Result<(StatusCode, Bytes), String> {
    let request = Request::get(url)
        .header(AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(300), send(client, request))
        .await
        .map_err(|_| "no answer in 300 s".to_owned())?
}

/// Sends `request`: the answer's status and whole body.
pub async fn send(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), String> {
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// The nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn time(client: &HttpClient, url: &str, reps: usize) -> Outcome {
    let mut samples = Vec::with_capacity(reps);
    let started = Instant::now();
    while samples.len() < reps && (samples.len() < MIN_RUNS || started.elapsed() < BUDGET) {
        let sent = Instant::now();
        match get(client, url).await {
            Ok((status, _)) if status.is_success() => {
                samples.push(sent.elapsed().as_secs_f64() * 1000.0)
            }
            Ok((StatusCode::NOT_FOUND, _)) => return Outcome::NotImplemented,
            Ok((status, body)) => {
                let text = String::from_utf8_lossy(&body);
                if status == StatusCode::BAD_REQUEST && text.contains("unknown parameter") {
                    return Outcome::NotImplemented;
                }
                let text: String = text.chars().take(120).collect();
                return Outcome::Failed(format!("{} {text}", status.as_u16()));
            }
            Err(e) => return Outcome::Failed(e),
        }
    }
    samples.sort_by(f64::total_cmp);
    Outcome::Timed {
        p50_ms: percentile(&samples, 0.5),
        p99_ms: percentile(&samples, 0.99),
        runs: samples.len(),
    }
}

/// The calls, labelled, over the window `[start, end)`: `end` is the end of
/// the filled traffic, and the ranges end there.
async fn calls(client: &HttpClient, base: &str, (start, end): (u64, u64)) -> Vec<(String, String)> {
    let range = |days: u64| format!("site={SITE}&from={}&to={end}", end - days * DAY_MS);
    let month = format!("site={SITE}&from={start}&to={end}");
    let mut calls = vec![
        (
            "`/v1/stats`, 1 day".to_owned(),
            format!("/v1/stats?{}", range(1)),
        ),
        (
            "`/v1/stats`, 7 days".to_owned(),
            format!("/v1/stats?{}", range(7)),
        ),
        (
            "`/v1/stats`, 30 days".to_owned(),
            format!("/v1/stats?{month}"),
        ),
        (
            format!("`/v1/stats`, 30 days, `filter={FILTER}`"),
            format!("/v1/stats?{month}&filter={FILTER}"),
        ),
        (
            "`/v1/stats`, 30 days, `compare=previous_period`".to_owned(),
            format!("/v1/stats?{month}&compare=previous_period"),
        ),
        (
            "`/v1/timeseries?interval=day`, 30 days".to_owned(),
            format!("/v1/timeseries?{month}&interval=day"),
        ),
        (
            "`/v1/timeseries?interval=hour`, 7 days".to_owned(),
            format!("/v1/timeseries?{}&interval=hour", range(7)),
        ),
        (
            "`/v1/sessions?limit=25`".to_owned(),
            format!("/v1/sessions?site={SITE}&limit=25"),
        ),
    ];
    // A visit of a returning visitor among the newest, for the one-session
    // and profile calls.
    let listed = get(client, &format!("{base}/v1/sessions?site={SITE}&limit=100"))
        .await
        .ok()
        .and_then(|(_, body)| serde_json::from_slice::<Value>(&body).ok());
    let sessions = listed
        .as_ref()
        .and_then(|l| l["sessions"].as_array().cloned())
        .unwrap_or_default();
    let session = sessions
        .iter()
        .find(|s| s["session_index"].as_u64().unwrap_or(0) > 1)
        .or(sessions.first());
    if let Some(s) = session {
        let (id, visitor) = (
            s["session_id"].as_str().unwrap_or_default(),
            s["visitor_id"].as_str().unwrap_or_default(),
        );
        calls.push((
            "`/v1/sessions/{id}`".to_owned(),
            format!("/v1/sessions/{id}?site={SITE}"),
        ));
        calls.push((
            "`/v1/visitors/{id}`".to_owned(),
            format!("/v1/visitors/{visitor}?site={SITE}"),
        ));
    }
    calls.push((
        "`/v1/users/{id}`".to_owned(),
        format!("/v1/users/user-1?site={SITE}"),
    ));
    calls.push((
        "`/v1/realtime`".to_owned(),
        format!("/v1/realtime?site={SITE}"),
    ));
    calls.push((
        "`/v1/funnel`, 3 steps, 30 days".to_owned(),
        format!("/v1/funnel?{month}&step=page:/&step=page:/pricing&step=event:signup"),
    ));
    for dimension in DIMENSIONS {
        calls.push((
            format!("`/v1/breakdown?dimension={dimension}`, 30 days"),
            format!("/v1/breakdown?{month}&dimension={dimension}"),
        ));
        calls.push((
            format!("`/v1/breakdown?dimension={dimension}`, 30 days, `filter={FILTER}`"),
            format!("/v1/breakdown?{month}&dimension={dimension}&filter={FILTER}"),
        ));
    }
    calls
}

/// Times every call on the collector at `base`.
pub async fn time_all(
    client: &HttpClient,
    base: &str,
    window: (u64, u64),
    reps: usize,
) -> Vec<Timing> {
    let mut timings = Vec::new();
    for (label, path) in calls(client, base, window).await {
        let outcome = time(client, &format!("{base}{path}"), reps).await;
        if let Outcome::Timed {
            p50_ms,
            p99_ms,
            runs,
        } = &outcome
        {
            eprintln!(
                "waymark-bench: {label}: p50 {p50_ms:.1} ms, p99 {p99_ms:.1} ms ({runs} runs)"
            );
        }
        timings.push(Timing { label, outcome });
    }
    timings
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Prints the fill and the timings of every store, as Markdown.
pub fn print(runs: &[StoreRun], events: u64, reps: usize) {
    println!(
        "{} events of realistic traffic over 30 days, sent through `POST /v1/batch` \
         (`--events`); each call timed in a row with the admin token.\n",
        thousands(events)
    );
    println!("| store | events stored | visits | visitors | fill | events/s acknowledged | ClickHouse spool drained after | rejected / lost | on disk | bytes per event |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for run in runs {
        let m = &run.manifest;
        let c = &run.counts;
        println!(
            "| {} | {} | {} | {} | {} s{} | {} | {} | {} / {} | {:.0} MiB | {:.0} |",
            run.name,
            thousands(c.events),
            thousands(c.sessions),
            thousands(c.visitors),
            m["fill_seconds"],
            if run.reused {
                " (kept from an earlier run)"
            } else {
                ""
            },
            thousands(m["events_per_second"].as_f64().unwrap_or(0.0) as u64),
            m["drain_seconds"]
                .as_f64()
                .map_or("—".to_owned(), |d| format!("{d} s")),
            m["rejected"],
            m["failed_batches"],
            c.bytes as f64 / 1024.0 / 1024.0,
            c.bytes as f64 / c.events.max(1) as f64,
        );
    }
    table(runs, reps, "call", |run| &run.timings);
    println!(
        "\n`n/a`: the collector answers `404`, or `400` for an unknown parameter (not implemented yet). p99 is the nearest rank: \
         of {reps} runs or fewer, their slowest. Ranges end at the end of the filled traffic."
    );
    if runs.iter().all(|run| run.dashboard.timings.is_empty()) {
        return;
    }
    println!("\n### Dashboard in Chromium");
    let dashboard_runs = runs
        .iter()
        .flat_map(|run| &run.dashboard.timings)
        .filter_map(|t| match t.outcome {
            Outcome::Timed { runs, .. } => Some(runs),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    table(runs, dashboard_runs, "measure", |run| {
        &run.dashboard.timings
    });
    println!(
        "\n`/dashboard/` in headless Chromium on the same collector, the bench's site and 30 days \
         (ending now), each run a fresh profile: from navigation start to the overview's \
         `waymark:view-ready` mark (cards, chart, panels and visitors now drawn), and from a \
         click on the top row of Sources to the filtered overview's mark."
    );
    for run in runs {
        if let Some(detail) = &run.dashboard.detail {
            println!("\n{}, the median overview: {detail}.", run.name);
        }
    }
}

/// One table: a row per label of the first run's `timings`, p50 and p99
/// of each store; fewer runs than `reps` are said.
fn table(runs: &[StoreRun], reps: usize, what: &str, timings: impl Fn(&StoreRun) -> &[Timing]) {
    print!("\n| {what} |");
    for run in runs {
        print!(" {0} p50 ms | {0} p99 ms |", run.name);
    }
    print!("\n| --- |");
    for _ in runs {
        print!(" ---: | ---: |");
    }
    println!();
    let Some(first) = runs.first() else { return };
    for timing in timings(first) {
        print!("| {} |", timing.label);
        for run in runs {
            let same = timings(run).iter().find(|t| t.label == timing.label);
            match same.map(|t| &t.outcome) {
                Some(Outcome::Timed {
                    p50_ms,
                    p99_ms,
                    runs,
                }) => {
                    let few = if *runs < reps {
                        format!(" ({runs} runs)")
                    } else {
                        String::new()
                    };
                    print!(" {} | {}{few} |", ms(*p50_ms), ms(*p99_ms));
                }
                Some(Outcome::NotImplemented) => print!(" n/a | n/a |"),
                Some(Outcome::Failed(e)) => print!(" error: {} | |", e.replace('|', "/")),
                None => print!(" | |"),
            }
        }
        println!();
    }
}
