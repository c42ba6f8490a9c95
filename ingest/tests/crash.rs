//! The real `waymark` binary, killed with SIGKILL while batches stream in,
//! must still hold every event it acknowledged, exactly once, when it comes
//! back on the same data directory.
//!
//! Talks plain HTTP/1.1 over `std::net::TcpStream` to 127.0.0.1 only; every
//! loop is bounded in count and time.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod support;
use support::collector::{request, Collector};

const POSTERS: u128 = 3;
const BATCH_SIZE: u128 = 20;
const MAX_BATCHES_PER_POSTER: u128 = 2_000;
/// Acknowledged events to wait for before pulling the plug.
const KILL_AFTER_ACKED_EVENTS: usize = 2_000;
const TIMEOUT: Duration = Duration::from_secs(20);

fn event_id(poster: u128, batch: u128, index: u128) -> String {
    uuid::Uuid::from_u128((poster << 96) | (batch << 32) | index)
        .hyphenated()
        .to_string()
}

fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    u64::try_from(since.as_millis()).unwrap()
}

fn batch_body(poster: u128, batch: u128) -> (Vec<String>, String) {
    let ids: Vec<String> = (0..BATCH_SIZE)
        .map(|i| event_id(poster, batch, i))
        .collect();
    let events: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({
                "event_id": id,
                "type": "page_view",
                // Now: the collector runs on the system clock and rejects
                // events more than 31 days old.
                "ts": now_ms() + i as u64,
                "session_id": format!("session-{poster}"),
                "visitor_id": format!("visitor-{poster}"),
                "url": format!("http://127.0.0.1/p{poster}/b{batch}/e{i}"),
                "props": {"batch": batch as u64},
            })
        })
        .collect();
    let body = json!({"v": 1, "site": "crash", "events": events}).to_string();
    (ids, body)
}

/// A batch the collector answered 200 for.
struct Acknowledged {
    ids: Vec<String>,
    body: String,
}

/// Streams batches from [`POSTERS`] threads until `stop_after_events` are
/// acknowledged, then calls `stop` on the collector and lets the posters run
/// into the dead server. Returns the acknowledged batches and how many
/// posters were cut off mid-stream.
fn stream_then(
    collector: &mut Collector,
    stop_after_events: usize,
    stop: impl FnOnce(&mut Collector),
) -> (Vec<Acknowledged>, usize) {
    let port = collector.port;
    let acknowledged = Arc::new(Mutex::new(Vec::<Acknowledged>::new()));
    let acked_events = Arc::new(AtomicUsize::new(0));
    let posters: Vec<_> = (0..POSTERS)
        .map(|poster| {
            let acknowledged = Arc::clone(&acknowledged);
            let acked_events = Arc::clone(&acked_events);
            thread::spawn(move || {
                let deadline = Instant::now() + TIMEOUT;
                for batch in 0..MAX_BATCHES_PER_POSTER {
                    if Instant::now() > deadline {
                        return false;
                    }
                    let (ids, body) = batch_body(poster, batch);
                    match request(port, "POST", "/v1/batch", &body) {
                        Ok((200, answer)) => {
                            let answer: Value = serde_json::from_str(&answer).unwrap();
                            assert_eq!(answer["accepted"], BATCH_SIZE as u64, "{answer}");
                            acked_events.fetch_add(ids.len(), Ordering::SeqCst);
                            acknowledged
                                .lock()
                                .unwrap()
                                .push(Acknowledged { ids, body });
                        }
                        Ok((status, answer)) => panic!("unexpected {status}: {answer}"),
                        // The collector is gone: this poster was cut off.
                        Err(_) => return true,
                    }
                }
                false
            })
        })
        .collect();

    let deadline = Instant::now() + TIMEOUT;
    while acked_events.load(Ordering::SeqCst) < stop_after_events {
        assert!(
            Instant::now() < deadline,
            "too few batches were acknowledged"
        );
        thread::sleep(Duration::from_millis(2));
    }
    stop(collector);
    let cut_off = posters
        .into_iter()
        .map(|p| p.join().unwrap())
        .filter(|&cut| cut)
        .count();
    let acknowledged = std::mem::take(&mut *acknowledged.lock().unwrap());
    assert!(acknowledged.len() * BATCH_SIZE as usize >= stop_after_events);
    (acknowledged, cut_off)
}

/// Asserts every acknowledged event is in the database exactly once.
fn assert_stored_exactly_once(data_dir: &Path, acknowledged: &[Acknowledged]) {
    let db = rusqlite::Connection::open(data_dir.join("waymark.db")).unwrap();
    waymark_ingest::SqliteStore::register_functions(&db).unwrap();
    let mut copies: HashMap<String, u32> = HashMap::new();
    let mut statement = db.prepare("SELECT wm_text(event_id) FROM events").unwrap();
    for id in statement
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
    {
        *copies.entry(id.unwrap()).or_default() += 1;
    }
    let mut missing = 0;
    for batch in acknowledged {
        for id in &batch.ids {
            match copies.get(id) {
                Some(1) => {}
                Some(n) => panic!("{id} is stored {n} times"),
                None => missing += 1,
            }
        }
    }
    eprintln!(
        "{} events acknowledged, {} stored",
        acknowledged.len() * BATCH_SIZE as usize,
        copies.len()
    );
    assert_eq!(missing, 0, "acknowledged events were lost");
}

#[test]
fn every_acknowledged_event_survives_sigkill_exactly_once() {
    let root = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(root.path(), "first-run");
    let (acknowledged, cut_off) = stream_then(&mut collector, KILL_AFTER_ACKED_EVENTS, |c| {
        // `Child::kill` is SIGKILL on unix: no shutdown code runs.
        c.child.kill().unwrap();
        c.child.wait().unwrap();
    });
    assert!(
        cut_off > 0,
        "the kill should land while batches are streaming"
    );

    // Back on the same data: a resent acknowledged batch is all duplicates.
    let mut collector = Collector::start(root.path(), "second-run");
    let (status, answer) = collector.post_batch(&acknowledged[0].body).unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"accepted": 0, "duplicates": BATCH_SIZE as u64, "rejected": []})
    );
    let status = collector.terminate();
    assert!(
        status.success(),
        "SIGTERM should shut down cleanly, got {status}"
    );
    let log = std::fs::read_to_string(root.path().join("second-run.log")).unwrap();
    assert!(
        log.contains(&format!("listening on http://127.0.0.1:{}", collector.port)),
        "{log}"
    );

    assert_stored_exactly_once(&root.path().join("data"), &acknowledged);
}

#[test]
fn sigterm_mid_stream_finishes_requests_and_exits_cleanly() {
    let root = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(root.path(), "sigterm");
    let mut exit = None;
    let (acknowledged, cut_off) = stream_then(&mut collector, KILL_AFTER_ACKED_EVENTS / 2, |c| {
        exit = Some(c.terminate());
    });
    let exit = exit.unwrap();
    assert!(
        exit.success(),
        "SIGTERM should shut down cleanly, got {exit}"
    );
    assert!(
        cut_off > 0,
        "SIGTERM should land while batches are streaming"
    );
    assert_stored_exactly_once(&root.path().join("data"), &acknowledged);
}
