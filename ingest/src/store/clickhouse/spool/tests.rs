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

/// One record's bytes, as the writer lays them out.
fn record(n: u128) -> Vec<u8> {
    let payload = serde_json::to_vec(&[event(n)]).unwrap();
    let mut bytes = (payload.len() as u32).to_le_bytes().to_vec();
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    bytes
}

/// Runs `work` with the `tracing` output it logs caught; returns both.
fn logged<T>(work: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Caught(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Caught {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let caught = Caught::default();
    let writer = caught.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // `tracing` caches each callsite's interest for the whole process. With
    // one dispatcher alive, a callsite first reached by another test's
    // thread, which has no subscriber, is cached as never, and this
    // capture misses it (tokio-rs/tracing#3611; seen once in CI under
    // load). A second, inert dispatcher alive meanwhile makes registration
    // ask every live dispatcher, and the rebuild mends what was cached
    // before.
    let anchor = tracing::Dispatch::new(tracing_subscriber::fmt().with_writer(io::sink).finish());
    let out = tracing::subscriber::with_default(subscriber, || {
        tracing::callsite::rebuild_interest_cache();
        work()
    });
    drop(anchor);
    let text = String::from_utf8(caught.0.lock().unwrap().clone()).unwrap();
    (out, text)
}

#[tokio::test]
async fn a_zero_filled_tail_is_cut_and_every_acknowledged_record_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (spool, _reader) = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.append(&[event(1)]).await.unwrap();
        spool.append(&[event(2), event(3)]).await.unwrap();
    }
    let segment = segment_path(dir.path(), 1);
    let good = fs::metadata(&segment).unwrap().len();
    // A preallocated or torn tail after a crash: zeros read as a header of
    // length 0 and CRC 0, and the CRC-32 of nothing is 0.
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(&[0; 4096]).unwrap();
    drop(file);

    let (spool, reader) = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(fs::metadata(&segment).unwrap().len(), good, "the zeros cut");
    assert_eq!(spool.pending_events(), 3);
    spool.append(&[event(4)]).await.unwrap();
    let (events, _, _) = reader.read(spool.durable(), usize::MAX).unwrap();
    assert_eq!(ids(&events), [1, 2, 3, 4]);
}

/// A reader that fails the test when asked for more than a few bytes at
/// once: a record length from disk must be checked before a buffer of that
/// size is made.
struct Stingy(io::Cursor<Vec<u8>>);

impl Read for Stingy {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        assert!(
            buf.len() <= 1 << 20,
            "a buffer of {} bytes was made for a record length read from disk",
            buf.len()
        );
        self.0.read(buf)
    }
}

#[test]
fn a_corrupt_record_length_is_refused_before_allocating() {
    let mut bytes = (1u32 << 31).to_le_bytes().to_vec();
    bytes.extend_from_slice(&[1, 2, 3, 4]);
    bytes.extend_from_slice(b"[{\"event_id\":");
    let remaining = bytes.len() as u64;
    let mut input = Stingy(io::Cursor::new(bytes));
    let mut buf = Vec::new();
    assert!(matches!(
        read_record(&mut input, remaining, &mut buf).unwrap(),
        Record::Bad
    ));
    assert!(buf.capacity() < 1 << 20);
}

#[tokio::test]
async fn a_corrupt_length_in_a_segment_file_is_cut_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = record(1);
    let good = bytes.len() as u64;
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&[7; 100]);
    fs::write(segment_path(dir.path(), 1), bytes).unwrap();
    let (spool, reader) = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(
        fs::metadata(segment_path(dir.path(), 1)).unwrap().len(),
        good
    );
    let (events, _, _) = reader.read(spool.durable(), usize::MAX).unwrap();
    assert_eq!(ids(&events), [1]);
}

#[test]
fn a_torn_tail_is_logged_as_never_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = record(1);
    bytes.extend_from_slice(&record(2)[..20]);
    fs::write(segment_path(dir.path(), 1), bytes).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let (opened, log) = logged(|| Spool::open(dir.path(), 1 << 20));
    let (spool, _reader) = opened.unwrap();
    assert_eq!(spool.pending_events(), 1);
    assert!(log.contains("WARN"), "{log}");
    assert!(log.contains("torn"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
}

#[test]
fn a_corrupt_record_before_valid_ones_is_logged_as_lost_acknowledged_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = record(1);
    let mut damaged = record(2);
    let last = damaged.len() - 3;
    damaged[last] ^= 0xff; // a flipped bit in the payload: the CRC fails
    bytes.extend_from_slice(&damaged);
    bytes.extend_from_slice(&record(3));
    bytes.extend_from_slice(&record(4));
    fs::write(segment_path(dir.path(), 1), bytes).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let (opened, log) = logged(|| Spool::open(dir.path(), 1 << 20));
    let (spool, _reader) = opened.unwrap();
    assert_eq!(spool.pending_events(), 1, "the records before it are kept");
    assert!(log.contains("ERROR"), "{log}");
    assert!(log.contains("acknowledged"), "{log}");
    assert!(log.contains("lost_records=2"), "{log}");
}

#[test]
fn counting_a_large_spool_streams_with_one_record_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let one = record(1);
    let records = 20_000u64;
    {
        let mut file = io::BufWriter::new(File::create(segment_path(dir.path(), 1)).unwrap());
        for n in 0..records {
            file.write_all(&record(u128::from(n))).unwrap();
        }
        file.flush().unwrap();
    }
    let end = Position {
        segment: 1,
        offset: fs::metadata(segment_path(dir.path(), 1)).unwrap().len(),
    };
    let counted = count_pending(
        dir.path(),
        Position {
            segment: 1,
            offset: 0,
        },
        end,
    )
    .unwrap();
    assert_eq!(counted.events, records);
    assert_eq!(counted.bytes, end.offset);
    assert!(
        counted.buffer <= 2 * one.len(),
        "the counter kept {} bytes for records of {}",
        counted.buffer,
        one.len()
    );
}
