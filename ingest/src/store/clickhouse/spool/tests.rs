//! The spool's own tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::event::{Enrichment, EventType};

fn event(n: u128) -> StoredEvent {
    StoredEvent {
        event_id: uuid::Uuid::from_u128(n).hyphenated().to_string(),
        site: "demo".to_owned(),
        event_type: EventType::PageView,
        name: None,
        ts: 1_000 + n as u64,
        client_ts: 1_000 + n as u64,
        received_at: 2_000,
        session_id: "s".to_owned(),
        visitor_id: "v".to_owned(),
        user_id: None,
        session_index: Some(1),
        seq: Some(n as u32),
        previous_session_id: None,
        storage: None,
        url: "https://demo.example/".to_owned(),
        title: None,
        referrer: None,
        props: None,
        context: None,
        enrichment: Enrichment::default(),
    }
}

fn ids(events: &[StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.ts - 1_000).collect()
}

#[tokio::test]
async fn appends_read_back_in_order_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, mut reader) = Spool::open(dir.path(), 1 << 20).unwrap();
    spool.append(&[event(1), event(2)]).await.unwrap();
    spool.append(&[event(3)]).await.unwrap();
    assert_eq!(spool.pending_events(), 3);

    let (events, bytes, next) = reader.read(spool.durable(), 2).unwrap();
    assert_eq!(ids(&events), [1, 2], "whole records, stopping at the limit");
    reader.commit(next, bytes, 2).unwrap();
    assert_eq!(spool.pending_events(), 1);
    spool.close();
    drop(spool);

    let (spool, reader) = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(
        spool.pending_events(),
        1,
        "only the unshipped record is left"
    );
    let (events, _, _) = reader.read(spool.durable(), usize::MAX).unwrap();
    assert_eq!(ids(&events), [3]);
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (spool, _reader) = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.append(&[event(1)]).await.unwrap();
    }
    let segment = segment_path(dir.path(), 1);
    let good = fs::metadata(&segment).unwrap().len();
    // A crash halfway through the next record.
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, b'[', b'{'])
        .unwrap();
    drop(file);

    let (spool, reader) = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(fs::metadata(&segment).unwrap().len(), good);
    spool.append(&[event(2)]).await.unwrap();
    let (events, _, _) = reader.read(spool.durable(), usize::MAX).unwrap();
    assert_eq!(ids(&events), [1, 2]);
}

#[tokio::test]
async fn a_full_spool_refuses_until_shipped() {
    let dir = tempfile::tempdir().unwrap();
    let one = serde_json::to_vec(&[event(1)]).unwrap().len() as u64 + HEADER_BYTES;
    let (spool, mut reader) = Spool::open(dir.path(), one * 2).unwrap();
    spool.append(&[event(1)]).await.unwrap();
    spool.append(&[event(2)]).await.unwrap();
    assert!(matches!(
        spool.append(&[event(3)]).await,
        Err(StoreError::Full)
    ));
    let (events, bytes, next) = reader.read(spool.durable(), usize::MAX).unwrap();
    reader.commit(next, bytes, events.len() as u64).unwrap();
    spool.append(&[event(3)]).await.unwrap();
}

#[tokio::test]
async fn a_second_collector_cannot_share_a_spool() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Spool::open(dir.path(), 1 << 20).unwrap();
    let err = Spool::open(dir.path(), 1 << 20).err().unwrap();
    assert!(err.to_string().contains("another collector"), "{err}");
}

#[test]
fn segments_are_read_across_and_deleted_once_shipped() {
    let dir = tempfile::tempdir().unwrap();
    let record = |n: u128| {
        let payload = serde_json::to_vec(&[event(n)]).unwrap();
        let mut bytes = (payload.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        bytes
    };
    fs::write(segment_path(dir.path(), 1), record(1)).unwrap();
    fs::write(segment_path(dir.path(), 2), record(2)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let (spool, mut reader) = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.pending_events(), 2);
    let (events, bytes, next) = reader.read(spool.durable(), usize::MAX).unwrap();
    assert_eq!(ids(&events), [1, 2]);
    reader.commit(next, bytes, 2).unwrap();
    assert!(!segment_path(dir.path(), 1).exists());
    assert!(
        segment_path(dir.path(), 2).exists(),
        "the open segment stays"
    );
    assert_eq!(spool.pending_bytes(), 0);
}
