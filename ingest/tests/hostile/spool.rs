//! The ClickHouse store's shipper when its own spool fails under it: a
//! damaged record it cannot read, a `shipped` mark it cannot write. Shipping
//! must stop only for as long as the failure lasts, never for good while
//! batches keep being acknowledged.
//!
//! These need a ClickHouse server (`WAYMARK_TEST_CLICKHOUSE=1`) and skip
//! otherwise.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use waymark_ingest::{ClickHouseStore, ClickHouseUrl, EventSink, StoredEvent};

use crate::stores::{stored_page_views, wait_for};
use crate::support::clickhouse::ClickHouse;

/// A batch of `count` page views numbered from `first`, as the collector
/// stores them.
fn events(first: u64, count: u64) -> Vec<StoredEvent> {
    stored_page_views(0x5b001, first, count, "")
}

async fn open(clickhouse: &ClickHouse, database: &str, data: &Path) -> ClickHouseStore {
    let url: ClickHouseUrl = clickhouse.url(database).parse().unwrap();
    ClickHouseStore::open(&url, data, 1 << 20, Duration::from_millis(300))
        .await
        .unwrap()
}

/// The shipper keeps failing and retrying, and says why: its last error
/// names `what`, and the store's health (what `/healthz` reports) names it.
fn assert_still_failing(store: &ClickHouseStore, what: &str) {
    assert!(!store.shipper_healthy(), "still failing, still retrying");
    let unhealthy = store.health().unwrap_err();
    assert!(
        unhealthy.contains("shipper"),
        "/healthz gives the reason: {unhealthy}"
    );
    let error = store.shipper_last_error().unwrap();
    assert!(error.contains(what), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipper_outlives_a_shipped_mark_it_cannot_write() {
    let Some(clickhouse) = ClickHouse::start_if_wanted() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    // The mark is written to `shipped.tmp` and renamed; a directory by that
    // name makes the write fail, as a full disk (ENOSPC) would.
    let obstacle = data.path().join("spool").join("shipped.tmp");
    fs::create_dir_all(&obstacle).unwrap();
    let store = open(&clickhouse, "mark", data.path()).await;
    store.append(events(1, 3)).await.unwrap();
    // The insert goes through; moving the mark fails for a while.
    wait_for(
        "the shipper to report the failed mark",
        Duration::from_secs(20),
        || !store.shipper_healthy(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_still_failing(&store, "shipped mark");
    fs::remove_dir(&obstacle).unwrap();

    store.append(events(4, 2)).await.unwrap();
    wait_for(
        "the spool to be shipped once the mark can be written",
        Duration::from_secs(20),
        || store.spooled_events() == 0 && store.shipper_healthy(),
    )
    .await;
    assert_eq!(store.shipper_last_error(), None);
    assert_eq!(store.health(), Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipper_outlives_a_spool_read_that_fails() {
    let Some(clickhouse) = ClickHouse::start_if_wanted() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let store = open(&clickhouse, "read", data.path()).await;
    store.append(events(1, 3)).await.unwrap();
    // Damage the record before the shipper (flushing every 300 ms) reads
    // it: one payload byte flipped, so its CRC fails.
    let segment = data.path().join("spool").join("00000000000000000001.seg");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&segment)
        .unwrap();
    let mut byte = [0];
    file.read_exact_at(&mut byte, 20).unwrap();
    file.write_all_at(&[byte[0] ^ 0xff], 20).unwrap();
    wait_for(
        "the shipper to report the failed read",
        Duration::from_secs(20),
        || !store.shipper_healthy(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        store.spooled_events(),
        3,
        "the damaged record is not shipped"
    );
    assert_still_failing(&store, "cannot read the spool");
    // The damage goes away (a disk that answers again).
    file.write_all_at(&byte, 20).unwrap();

    store.append(events(4, 2)).await.unwrap();
    wait_for(
        "the spool to be shipped once it reads again",
        Duration::from_secs(20),
        || store.spooled_events() == 0 && store.shipper_healthy(),
    )
    .await;
    assert_eq!(store.shipper_last_error(), None);
    assert_eq!(store.health(), Ok(()));
}
