//! Fills a collector with [`Traffic`] through `POST /v1/batch`, as fast as
//! it takes it, and measures the rate.
//!
//! A generator thread builds the batches in the order they are sent; a
//! fixed number of connections each post the next one as soon as the last
//! is answered. Each batch's `sent_at` is the wall clock when it was built
//! (a device with a correct clock sending events it recorded earlier), so
//! the collector corrects nothing and stores every event at its `ts`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, USER_AGENT};
use hyper::{Request, StatusCode};
use serde_json::{json, Value};

use crate::traffic::{Traffic, SITE};
use crate::HttpClient;

/// What a fill sent and how it was answered.
#[derive(Default, Debug)]
pub struct Filled {
    pub batches: u64,
    pub events_sent: u64,
    pub accepted: u64,
    pub duplicates: u64,
    /// Events the collector listed in `rejected` (none expected).
    pub rejected: u64,
    /// Batches retried after a `503`, a `429` or a broken connection.
    pub retries: u64,
    /// Batches given up after retries: their events are lost.
    pub failed_batches: u64,
    pub seconds: f64,
    pub sessions: u64,
    pub visitors: u64,
    /// The first rejection reason seen, to say why.
    pub first_rejection: Option<String>,
}

struct Post {
    body: Bytes,
    events: u64,
    forwarded_for: Option<String>,
    user_agent: &'static str,
}

/// Wall clock, epoch milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Sends `traffic` to `base` (`http://addr`) over `connections`
/// connections; with `forwarded_for`, each batch names its visitor's
/// address in `X-Forwarded-For` (for a collector started with
/// `--trust-proxy 1`). Prints progress every 10 s.
pub async fn fill(
    client: &HttpClient,
    base: &str,
    traffic: Traffic,
    connections: usize,
    forwarded_for: bool,
) -> Filled {
    let (tx, rx) = tokio::sync::mpsc::channel::<Post>(4 * connections);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let counts = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    // How far into the traffic's days the generator is, for the progress.
    let reached = Arc::new(AtomicU64::new(0));
    let first_day = traffic.start();
    let generator = {
        let (counts, reached) = (counts.clone(), reached.clone());
        std::thread::spawn(move || {
            let mut traffic = traffic;
            for batch in traffic.by_ref() {
                let events = batch.events.len() as u64;
                reached.store(batch.send_at, Ordering::Relaxed);
                let body =
                    json!({"v": 1, "site": SITE, "sent_at": now_ms(), "events": batch.events});
                let post = Post {
                    body: Bytes::from(body.to_string()),
                    events,
                    forwarded_for: forwarded_for.then(|| batch.ip.to_string()),
                    user_agent: batch.user_agent,
                };
                if tx.blocking_send(post).is_err() {
                    break;
                }
            }
            counts.0.store(traffic.sessions, Ordering::Relaxed);
            counts.1.store(traffic.visitors() as u64, Ordering::Relaxed);
        })
    };
    let started = Instant::now();
    let tally = Arc::new(std::sync::Mutex::new(Filled::default()));
    let url = format!("{base}/v1/batch");
    let progress = {
        let (tally, reached) = (tally.clone(), reached.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let t = tally.lock().unwrap_or_else(|p| p.into_inner());
                let s = started.elapsed().as_secs_f64();
                let day =
                    reached.load(Ordering::Relaxed).saturating_sub(first_day) as f64 / 86_400_000.0;
                eprintln!(
                    "waymark-bench: {:.0} s, {} events accepted ({:.0}/s), traffic of day {day:.1} sent",
                    s,
                    t.accepted,
                    t.accepted as f64 / s
                );
            }
        })
    };
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url, rx, tally) = (client.clone(), url.clone(), rx.clone(), tally.clone());
            tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(post) = next else { break };
                    let answer = post_with_retries(&client, &url, &post).await;
                    let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                    t.batches += 1;
                    t.events_sent += post.events;
                    t.retries += answer.retries;
                    match answer.body {
                        Some(body) => {
                            t.accepted += body["accepted"].as_u64().unwrap_or(0);
                            t.duplicates += body["duplicates"].as_u64().unwrap_or(0);
                            let rejected = body["rejected"].as_array().map_or(0, Vec::len);
                            t.rejected += rejected as u64;
                            if rejected > 0 && t.first_rejection.is_none() {
                                t.first_rejection = Some(body["rejected"][0].to_string());
                            }
                        }
                        None => t.failed_batches += 1,
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    progress.abort();
    let _ = generator.join();
    let mut filled = std::mem::take(&mut *tally.lock().unwrap_or_else(|p| p.into_inner()));
    filled.seconds = started.elapsed().as_secs_f64();
    filled.sessions = counts.0.load(Ordering::Relaxed);
    filled.visitors = counts.1.load(Ordering::Relaxed);
    filled
}

struct Answer {
    body: Option<Value>,
    retries: u64,
}

/// Posts one batch; retries after `503` or `429` (waiting `Retry-After`,
/// at most 30 s) and broken connections, up to 20 times.
async fn post_with_retries(client: &HttpClient, url: &str, post: &Post) -> Answer {
    let mut retries = 0;
    loop {
        let mut request = Request::post(url)
            .header(CONTENT_TYPE, "text/plain;charset=UTF-8")
            .header(USER_AGENT, post.user_agent);
        if let Some(ip) = &post.forwarded_for {
            request = request.header("x-forwarded-for", ip.as_str());
        }
        let Ok(request) = request.body(Full::new(post.body.clone())) else {
            return Answer {
                body: None,
                retries,
            };
        };
        let wait = match tokio::time::timeout(Duration::from_secs(60), client.request(request))
            .await
        {
            Ok(Ok(response)) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1)
                    .min(30);
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .ok()
                    .map(|b| b.to_bytes());
                if status == StatusCode::SERVICE_UNAVAILABLE
                    || status == StatusCode::TOO_MANY_REQUESTS
                {
                    Duration::from_secs(retry_after)
                } else {
                    let body = body.and_then(|b| serde_json::from_slice::<Value>(&b).ok());
                    // A 400 `all_events_rejected` still lists why.
                    return Answer {
                        body: body.filter(|b| status.is_success() || b.get("rejected").is_some()),
                        retries,
                    };
                }
            }
            _ => Duration::from_millis(500),
        };
        retries += 1;
        if retries > 20 {
            return Answer {
                body: None,
                retries,
            };
        }
        tokio::time::sleep(wait).await;
    }
}
