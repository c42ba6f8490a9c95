//! The ClickHouse store's durable spool: an append-only, fsync'd log of the
//! batches the collector has acknowledged but not yet inserted.
//!
//! A request is acknowledged once its events are in the spool: one writer
//! thread appends every queued request and calls `fdatasync` once for the
//! group ([`GroupCommit`], as the SQLite store does), then answers them all.
//! The shipper ([`super::shipper`]) reads the spool in order with a
//! [`SpoolReader`], inserts what it read into ClickHouse and only then moves
//! the shipped mark forward ([`SpoolReader::commit`]), so every acknowledged
//! event reaches ClickHouse at least once, in the order it was acknowledged,
//! across ClickHouse outages and collector crashes alike.
//!
//! On disk, `<data>/spool/` holds numbered segment files
//! (`00000000000000000001.seg`, …), the `shipped` mark (`<segment> <offset>`,
//! replaced atomically) and a `lock` file that keeps a second collector off
//! the same spool. A record is `[len: u32 LE][crc32: u32 LE][payload]`, the
//! payload a JSON array of [`StoredEvent`]s. At start the tail of the last
//! segment is checked and what follows its last good record is cut off: a
//! torn record or a zero-filled tail (a crash mid-write, never
//! acknowledged) with a warning, a damaged record followed by complete ones
//! (acknowledged events lost) with an error ([`recover_tail`]). A length
//! read from disk is bounded before anything is allocated for it
//! ([`read_record`]), and what is left to ship is counted one record at a
//! time ([`count_pending`]). Segments wholly shipped are deleted.
//!
//! The spool is bounded: past `max_bytes` of unshipped records an append
//! fails with [`StoreError::Full`], which the collector answers with 503 and
//! `Retry-After`, and the SDK keeps the batch and retries.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{oneshot, watch};

use crate::event::StoredEvent;
use crate::store::group::GroupCommit;
use crate::store::StoreError;

mod dead;
mod files;
#[cfg(test)]
mod tests;

pub(crate) use dead::{read_replay, remove_replay, replays, DeadLetter, Put, Refused};
use files::*;

/// A segment is closed and a new one started past this size.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Record header: length and CRC-32 of the payload.
const HEADER_BYTES: u64 = 8;
/// A record's payload is at most this long: the writer refuses a larger
/// batch, and a length read from disk past it (or past the end of the file)
/// is damage, refused before any buffer is made for it.
const MAX_RECORD_BYTES: u64 = 256 * 1024 * 1024;
/// The shortest payload, `[]`. A zero-filled tail (preallocated, or torn by
/// a crash) reads as length 0 and CRC 0, and the CRC-32 of nothing is 0, so
/// a length of 0 must be damage, not an empty record.
const MIN_RECORD_BYTES: u64 = 2;
/// Requests taken into one group commit, at most.
const MAX_GROUP_REQUESTS: usize = 1024;
/// Append requests waiting for the writer before senders wait for room.
const QUEUE_CAPACITY: usize = 1024;
const SHIPPED_FILE: &str = "shipped";
const LOCK_FILE: &str = "lock";

/// A place in the spool: a segment number and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize)]
pub(crate) struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// What the writer and the reader share.
#[derive(Debug)]
struct Shared {
    /// The end of what has been fsync'd: what a reader may read.
    durable: watch::Sender<Position>,
    /// Bytes written and not yet shipped.
    pending_bytes: AtomicU64,
    /// Events written and not yet shipped.
    pending_events: AtomicU64,
}

struct Append {
    payload: Vec<u8>,
    events: u64,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The writing side; see the module documentation.
#[derive(Debug)]
pub(crate) struct Spool {
    max_bytes: u64,
    shared: Arc<Shared>,
    writer: GroupCommit<Append>,
    /// Held (and locked) for as long as the spool is open.
    _lock: File,
}

impl Spool {
    /// Opens `dir` (creating it), recovers its tail and starts the writer
    /// thread. The reader starts at the shipped mark.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<(Spool, SpoolReader), StoreError> {
        fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))?;
        lock.try_lock().map_err(|_| {
            StoreError::Io(io::Error::other(format!(
                "{} is in use by another collector; give each collector its own --data",
                dir.display()
            )))
        })?;

        let shipped = read_shipped(dir)?;
        let mut segments = list_segments(dir)?;
        for old in segments.iter().filter(|s| **s < shipped.segment) {
            fs::remove_file(segment_path(dir, *old))?;
        }
        segments.retain(|s| *s >= shipped.segment);
        let last = segments.last().copied().unwrap_or(shipped.segment);
        let start = if last == shipped.segment {
            shipped.offset
        } else {
            0
        };
        let end = recover_tail(&segment_path(dir, last), start)?;

        // Count what is left to ship, one record at a time.
        let at = shipped;
        let durable = Position {
            segment: last,
            offset: end,
        };
        let Pending {
            bytes: pending_bytes,
            events: pending_events,
            ..
        } = count_pending(dir, at, durable)?;

        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(dir, last))?;
        sync_dir(dir)?;
        let shared = Arc::new(Shared {
            durable: watch::Sender::new(durable),
            pending_bytes: AtomicU64::new(pending_bytes),
            pending_events: AtomicU64::new(pending_events),
        });
        if pending_events > 0 {
            tracing::info!(
                events = pending_events,
                bytes = pending_bytes,
                "the spool holds events not yet in ClickHouse; they are sent first"
            );
        }
        let mut writer_state = Writer {
            dir: dir.to_owned(),
            file,
            at: durable,
            max_bytes,
            shared: Arc::clone(&shared),
        };
        let writer = GroupCommit::spawn(
            "spool writer",
            QUEUE_CAPACITY,
            MAX_GROUP_REQUESTS,
            |_| 1,
            move |group| writer_state.write_group(group),
        )?;
        let reader = SpoolReader {
            dir: dir.to_owned(),
            at,
            shared: Some(Arc::clone(&shared)),
        };
        Ok((
            Spool {
                max_bytes,
                shared,
                writer,
                _lock: lock,
            },
            reader,
        ))
    }

    /// Appends `events` as one record; resolves once it is on disk.
    pub async fn append(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        let payload = serde_json::to_vec(events).map_err(|e| StoreError::Io(e.into()))?;
        if self.pending_bytes() + payload.len() as u64 + HEADER_BYTES > self.max_bytes {
            return Err(StoreError::Full);
        }
        let sender = self.writer.sender().ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(Append {
                payload,
                events: events.len() as u64,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Bytes of records not yet shipped.
    pub fn pending_bytes(&self) -> u64 {
        self.shared.pending_bytes.load(Ordering::Relaxed)
    }

    /// Events not yet shipped.
    pub fn pending_events(&self) -> u64 {
        self.shared.pending_events.load(Ordering::Relaxed)
    }

    /// The end of what is on disk.
    pub fn durable(&self) -> Position {
        *self.shared.durable.borrow()
    }

    /// Changes whenever more is on disk.
    pub fn watch_durable(&self) -> watch::Receiver<Position> {
        self.shared.durable.subscribe()
    }

    /// Takes no more appends; waits for the writer to finish what is queued.
    pub fn close(&self) {
        self.writer.close();
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer thread's state.
struct Writer {
    dir: PathBuf,
    file: File,
    at: Position,
    max_bytes: u64,
    shared: Arc<Shared>,
}

impl Writer {
    /// Appends a group of records (see [`GroupCommit`]) with one sync and
    /// answers each.
    fn write_group(&mut self, group: Vec<Append>) {
        let mut accepted = Vec::with_capacity(group.len());
        let mut buffer = Vec::new();
        let mut events = 0;
        let pending = self.shared.pending_bytes.load(Ordering::Relaxed);
        for append in group {
            let size = append.payload.len() as u64 + HEADER_BYTES;
            if pending + buffer.len() as u64 + size > self.max_bytes {
                let _ = append.reply.send(Err(StoreError::Full));
                continue;
            }
            let len = match u32::try_from(append.payload.len()) {
                Ok(len) if u64::from(len) <= MAX_RECORD_BYTES => len,
                _ => {
                    let _ = append.reply.send(Err(StoreError::Commit(
                        "a batch too large for one spool record".to_owned(),
                    )));
                    continue;
                }
            };
            buffer.extend_from_slice(&len.to_le_bytes());
            buffer.extend_from_slice(&crc32fast::hash(&append.payload).to_le_bytes());
            buffer.extend_from_slice(&append.payload);
            events += append.events;
            accepted.push(append.reply);
        }
        if accepted.is_empty() {
            return;
        }
        let written = self.write(&buffer);
        match written {
            Ok(()) => {
                self.shared
                    .pending_bytes
                    .fetch_add(buffer.len() as u64, Ordering::Relaxed);
                self.shared
                    .pending_events
                    .fetch_add(events, Ordering::Relaxed);
                self.shared.durable.send_replace(self.at);
                for reply in accepted {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "the spool write failed");
                for reply in accepted {
                    let _ = reply.send(Err(StoreError::Commit(err.to_string())));
                }
            }
        }
    }

    /// Writes `buffer` at the end of the current segment (starting a new one
    /// when this one is full) and syncs it.
    fn write(&mut self, buffer: &[u8]) -> io::Result<()> {
        if self.at.offset > 0 && self.at.offset + buffer.len() as u64 > SEGMENT_BYTES {
            let next = self.at.segment + 1;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(segment_path(&self.dir, next))?;
            sync_dir(&self.dir)?;
            self.at = Position {
                segment: next,
                offset: 0,
            };
        }
        if let Err(err) = self
            .file
            .write_all(buffer)
            .and_then(|()| self.file.sync_data())
        {
            // Cut off whatever part was written, so the next record starts
            // on a record boundary.
            let _ = self.file.set_len(self.at.offset);
            return Err(err);
        }
        self.at.offset += buffer.len() as u64;
        Ok(())
    }
}

/// Reads the spool in order from the shipped mark; see the module
/// documentation.
#[derive(Debug)]
pub(crate) struct SpoolReader {
    dir: PathBuf,
    at: Position,
    shared: Option<Arc<Shared>>,
}

impl SpoolReader {
    /// Where the next read starts.
    pub fn at(&self) -> Position {
        self.at
    }

    /// Reads whole records from [`at`](Self::at) up to `durable`, stopping
    /// once `max_events` are read (a record is never split). Returns the
    /// events, their bytes and the position after them; `at` itself moves
    /// only on [`commit`](Self::commit).
    pub fn read(
        &self,
        durable: Position,
        max_events: usize,
    ) -> Result<(Vec<StoredEvent>, u64, Position), StoreError> {
        let mut events = Vec::new();
        let mut bytes = 0;
        let mut at = self.at;
        while at < durable && events.len() < max_events {
            let path = segment_path(&self.dir, at.segment);
            let end = if at.segment == durable.segment {
                durable.offset
            } else {
                fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
            };
            if at.offset >= end {
                if at.segment >= durable.segment {
                    break;
                }
                at = Position {
                    segment: at.segment + 1,
                    offset: 0,
                };
                continue;
            }
            let mut file = File::open(&path)?;
            file.seek(SeekFrom::Start(at.offset))?;
            let mut file = io::BufReader::new(file.take(end - at.offset));
            let mut payload = Vec::new();
            while at.offset < end && events.len() < max_events {
                let Record::Good = read_record(&mut file, end - at.offset, &mut payload)? else {
                    return Err(damaged(&path, at.offset));
                };
                let batch: Vec<StoredEvent> = serde_json::from_slice(&payload)
                    .map_err(|e| StoreError::Commit(format!("{}: {e}", path.display())))?;
                let size = payload.len() as u64 + HEADER_BYTES;
                at.offset += size;
                bytes += size;
                events.extend(batch);
            }
        }
        Ok((events, bytes, at))
    }

    /// Marks everything before `next` as shipped: writes the mark durably,
    /// deletes the segments before it and counts the bytes and events off.
    pub fn commit(&mut self, next: Position, bytes: u64, events: u64) -> Result<(), StoreError> {
        if next == self.at {
            return Ok(());
        }
        let tmp = self.dir.join("shipped.tmp");
        {
            let mut file = File::create(&tmp)?;
            write!(file, "{} {}", next.segment, next.offset)?;
            file.sync_all()?;
        }
        fs::rename(&tmp, self.dir.join(SHIPPED_FILE))?;
        sync_dir(&self.dir)?;
        for segment in self.at.segment..next.segment {
            match fs::remove_file(segment_path(&self.dir, segment)) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err.into()),
            }
        }
        self.at = next;
        if let Some(shared) = &self.shared {
            shared.pending_bytes.fetch_sub(bytes, Ordering::Relaxed);
            shared.pending_events.fetch_sub(events, Ordering::Relaxed);
        }
        Ok(())
    }
}
