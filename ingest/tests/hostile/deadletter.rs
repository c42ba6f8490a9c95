//! An insert ClickHouse refuses for its content must not hold up the spool
//! behind it: it moves to the dead-letter (`<data>/spool/dead/`), counted
//! and logged, and the batches after it are shipped. An insert refused
//! because ClickHouse is unavailable is retried, never dead-lettered.
//!
//! ClickHouse cannot be made to refuse the store's own well-formed rows on
//! demand, so these run against a fake ([`FakeClickHouse`]) that refuses
//! the inserts holding a marker with the answer a real server gives; they
//! need no server and always run. The last one makes a real ClickHouse
//! refuse a row (`WAYMARK_TEST_CLICKHOUSE=1`).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use waymark_ingest::{
    ClickHouseStore, ClickHouseUrl, EventSink, Metrics, SpoolOptions, StoredEvent,
};

use crate::stores::{stored_page_views, wait_for};
use crate::support::clickhouse::ClickHouse;
use crate::support::fake_clickhouse::{Answer, FakeClickHouse};

const POISON: &str = "poison-d3ad";

fn event_id(n: u64) -> String {
    uuid::Uuid::from_u64_pair(0xdead, n)
        .hyphenated()
        .to_string()
}

/// A batch of `count` page views numbered from `first`, on `path`, as the
/// collector stores them.
fn events(first: u64, count: u64, path: &str) -> Vec<StoredEvent> {
    stored_page_views(0xdead, first, count, path)
}

/// Long enough for a few retries, short enough that a spool held up for
/// ever fails the test rather than hangs it.
const WAIT: Duration = Duration::from_secs(10);

async fn open(url: &str, data: &Path) -> ClickHouseStore {
    let url: ClickHouseUrl = url.parse().unwrap();
    ClickHouseStore::open(&url, data, 1 << 20, Duration::from_millis(50))
        .await
        .unwrap()
}

/// A store metric's value, as `/metrics` shows it (0 when absent).
fn metric(store: &ClickHouseStore, name: &str) -> u64 {
    let text = Metrics::new(store.metrics()).render();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0, |value| value.parse().unwrap())
}

/// The dead-letter files, in name order.
fn dead_letters(data: &Path) -> Vec<PathBuf> {
    let Ok(dir) = fs::read_dir(data.join("spool").join("dead")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = dir
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// The event ids a dead-letter file holds.
fn ids_in(letter: &Value) -> Vec<String> {
    letter["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["event_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Ships a good batch, then a poison one (alone in its insert), then
/// another good one; returns once the poison batch has been refused.
async fn good_poison_good(store: &ClickHouseStore, fake: &FakeClickHouse) {
    store.append(events(1, 3, "ok")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), store.sync())
        .await
        .expect("the first batch is shipped")
        .unwrap();
    store.append(events(10, 2, POISON)).await.unwrap();
    wait_for("the poison batch to be refused", WAIT, || {
        fake.refused() >= 1
    })
    .await;
    store.append(events(20, 4, "ok")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_insert_is_dead_lettered_and_shipping_goes_on() {
    let fake = FakeClickHouse::start().await;
    fake.poison(
        POISON,
        Answer::exception(
            27,
            "Cannot parse input: expected \\t before: poison: (at row 1)",
        ),
    );
    let data = tempfile::tempdir().unwrap();
    let store = open(&fake.url("dead"), data.path()).await;
    good_poison_good(&store, &fake).await;

    // Before: the poison batch was retried forever, and nothing after it
    // ever reached ClickHouse.
    wait_for(
        "the batch after the refused one to be shipped",
        WAIT,
        || fake.accepted(&event_id(20)) && store.spooled_events() == 0,
    )
    .await;
    for n in (1..=3).chain(20..=23) {
        assert!(fake.accepted(&event_id(n)), "event {n} is in ClickHouse");
    }
    assert!(
        !fake.accepted(&event_id(10)),
        "the poison batch was refused"
    );

    let letters = dead_letters(data.path());
    assert_eq!(letters.len(), 1, "one dead-lettered batch: {letters:?}");
    let letter = read_json(&letters[0]);
    assert_eq!(ids_in(&letter), [event_id(10), event_id(11)]);
    assert_eq!(letter["code"], 27);
    let error = letter["error"].as_str().unwrap();
    assert!(error.contains("Cannot parse input"), "{error}");
    assert!(letter["refused_at"].as_u64().unwrap() > 0);

    assert_eq!(
        metric(&store, "waymark_store_dead_lettered_events_total"),
        2
    );
    assert_eq!(
        metric(&store, "waymark_store_dead_lettered_batches_total"),
        1
    );
    // Shipping goes on, so the collector is healthy: the metric is what
    // shows the dead-letter.
    assert!(store.shipper_healthy());
    assert_eq!(store.health(), Ok(()));

    // And it keeps going.
    store.append(events(30, 1, "ok")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), store.sync())
        .await
        .expect("later batches are shipped")
        .unwrap();
    assert!(fake.accepted(&event_id(30)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_clickhouse_is_retried_never_dead_lettered() {
    let fake = FakeClickHouse::start().await;
    // Overloaded or unavailable, in every way ClickHouse (or a proxy in
    // front of it) says so, and a code the collector does not know.
    fake.outage([
        Answer::status(503),
        Answer::exception(241, "Memory limit (for query) exceeded: would use 9.31 GiB"),
        Answer::header_only(500, 202),
        Answer::exception(242, "Table is in readonly mode"),
        Answer::exception(
            252,
            "Too many parts (300). Merges are processing significantly slower than inserts.",
        ),
        Answer::exception(999, "Something new"),
    ]);
    let data = tempfile::tempdir().unwrap();
    let store = open(&fake.url("dead"), data.path()).await;
    store.append(events(1, 3, "ok")).await.unwrap();
    let shipped = tokio::time::timeout(Duration::from_secs(15), store.sync()).await;
    shipped.expect("shipped once ClickHouse answers").unwrap();
    assert_eq!(fake.outage_left(), 0, "every failure was retried");
    assert_eq!(fake.accepted_inserts(), 1);
    assert!(fake.accepted(&event_id(1)));
    assert!(dead_letters(data.path()).is_empty());
    assert_eq!(
        metric(&store, "waymark_store_dead_lettered_events_total"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_the_mark_moves_dead_letters_the_batch_once() {
    let fake = FakeClickHouse::start().await;
    fake.poison(
        POISON,
        Answer::exception(53, "Type mismatch in VALUES section"),
    );
    let data = tempfile::tempdir().unwrap();
    let mark = data.path().join("spool").join("shipped");
    let store = Arc::new(open(&fake.url("dead"), data.path()).await);
    store.append(events(1, 3, "ok")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), store.sync())
        .await
        .expect("the first batch is shipped")
        .unwrap();
    let before = fs::read(&mark).unwrap();
    store.append(events(10, 2, POISON)).await.unwrap();
    wait_for("the poison batch to be dead-lettered", WAIT, || {
        store.spooled_events() == 0
    })
    .await;
    assert_eq!(dead_letters(data.path()).len(), 1);
    store.shutdown().await;

    // A crash after the dead-letter was written, before the mark moved.
    fs::write(&mark, before).unwrap();
    let store = open(&fake.url("dead"), data.path()).await;
    wait_for("the poison batch to be dead-lettered again", WAIT, || {
        store.spooled_events() == 0
    })
    .await;
    assert_eq!(
        metric(&store, "waymark_store_dead_lettered_batches_total"),
        1
    );
    let letters = dead_letters(data.path());
    assert_eq!(letters.len(), 1, "the same file again, not a second one");
    assert_eq!(
        ids_in(&read_json(&letters[0])),
        [event_id(10), event_id(11)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_moved_to_replay_is_shipped_at_the_next_start() {
    let fake = FakeClickHouse::start().await;
    fake.poison(POISON, Answer::exception(6, "Cannot parse text"));
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&fake.url("dead"), data.path()).await);
    good_poison_good(&store, &fake).await;
    wait_for("the spool to be shipped past the poison", WAIT, || {
        store.spooled_events() == 0 && fake.accepted(&event_id(20))
    })
    .await;
    store.shutdown().await;

    // The operator fixes what ClickHouse refused, and moves the file to
    // `dead/replay/`.
    fake.cure();
    let letter = dead_letters(data.path()).pop().unwrap();
    let replay = data.path().join("spool").join("dead").join("replay");
    fs::create_dir_all(&replay).unwrap();
    let moved = replay.join(letter.file_name().unwrap());
    fs::rename(&letter, &moved).unwrap();

    let store = open(&fake.url("dead"), data.path()).await;
    tokio::time::timeout(Duration::from_secs(10), store.sync())
        .await
        .expect("the replayed events are shipped")
        .unwrap();
    assert!(fake.accepted(&event_id(10)) && fake.accepted(&event_id(11)));
    assert!(!moved.exists(), "a replayed file is removed");
    assert!(dead_letters(data.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_dead_letter_holds_up_the_spool_and_says_so() {
    let fake = FakeClickHouse::start().await;
    fake.poison(POISON, Answer::exception(27, "Cannot parse input"));
    let data = tempfile::tempdir().unwrap();
    let url: ClickHouseUrl = fake.url("dead").parse().unwrap();
    let options = SpoolOptions {
        max_bytes: 1 << 20,
        flush_interval: Duration::from_millis(50),
        dead_letter_max_bytes: 64,
    };
    let store = ClickHouseStore::open_with(&url, data.path(), options)
        .await
        .unwrap();
    good_poison_good(&store, &fake).await;
    wait_for("the full dead-letter to be reported", WAIT, || {
        !store.shipper_healthy()
    })
    .await;
    assert_eq!(metric(&store, "waymark_store_dead_letter_full_total"), 1);
    let unhealthy = store.health().unwrap_err();
    assert!(unhealthy.contains("dead-letter"), "{unhealthy}");
    assert!(unhealthy.contains("is full"), "{unhealthy}");

    // Nothing is lost: the refused batch and the one after it wait in the
    // spool, retried, and nothing went to the dead-letter.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.spooled_events(), 2 + 4);
    assert!(!fake.accepted(&event_id(20)));
    assert!(dead_letters(data.path()).is_empty());
    assert_eq!(
        metric(&store, "waymark_store_dead_lettered_events_total"),
        0
    );
    assert_eq!(
        metric(&store, "waymark_store_dead_letter_full_total"),
        1,
        "counted once per batch"
    );
}

/// A real ClickHouse 18.16 refusing a row for its content: a materialised
/// view an operator added converts `url` to a number for the rows it
/// selects, and a poison URL is not one (`CANNOT_PARSE_TEXT`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_clickhouse_refusal_is_dead_lettered() {
    let Some(clickhouse) = ClickHouse::start_if_wanted() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let store = open(&clickhouse.url("deadreal"), data.path()).await;
    clickhouse.query(&format!(
        "CREATE MATERIALIZED VIEW deadreal.refuse ENGINE = Memory AS \
         SELECT toUInt64(substring(url, 22)) AS n FROM deadreal.events \
         WHERE url LIKE '%{POISON}%'"
    ));
    store.append(events(1, 1, "ok")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), store.sync())
        .await
        .expect("the first batch is shipped")
        .unwrap();
    store.append(events(10, 2, POISON)).await.unwrap();
    wait_for("the poison batch to be dead-lettered", WAIT, || {
        store.spooled_events() == 0
    })
    .await;
    store.append(events(20, 1, "ok")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), store.sync())
        .await
        .expect("the batch after it is shipped")
        .unwrap();
    let letters = dead_letters(data.path());
    assert_eq!(letters.len(), 1);
    let letter = read_json(&letters[0]);
    assert_eq!(ids_in(&letter), [event_id(10), event_id(11)]);
    assert_eq!(letter["code"], 6, "CANNOT_PARSE_TEXT: {letter}");
    let shipped = clickhouse.query(&format!(
        "SELECT count() FROM deadreal.events WHERE event_id = '{}'",
        event_id(20)
    ));
    assert_eq!(shipped.trim(), "1");
}
