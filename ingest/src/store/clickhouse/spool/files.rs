//! The spool on disk: segment files of length-prefixed, CRC-checked
//! records, the `shipped` mark, and what recovery makes of a damaged tail.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::*;

pub(super) fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.seg"))
}

pub(super) fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut segments: Vec<u64> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            name.to_str()?.strip_suffix(".seg")?.parse().ok()
        })
        .collect();
    segments.sort_unstable();
    Ok(segments)
}

pub(super) fn read_shipped(dir: &Path) -> Result<Position, StoreError> {
    match fs::read_to_string(dir.join(SHIPPED_FILE)) {
        Ok(text) => {
            let mut parts = text.split_whitespace().map(str::parse::<u64>);
            match (parts.next(), parts.next()) {
                (Some(Ok(segment)), Some(Ok(offset))) => Ok(Position { segment, offset }),
                _ => Err(StoreError::Commit(format!(
                    "{}: unreadable shipped mark {text:?}",
                    dir.join(SHIPPED_FILE).display()
                ))),
            }
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Position {
            segment: 1,
            offset: 0,
        }),
        Err(err) => Err(err.into()),
    }
}

pub(super) fn damaged(path: &Path, offset: u64) -> StoreError {
    StoreError::Commit(format!(
        "{}: a damaged record at byte {offset}",
        path.display()
    ))
}

/// What [`read_record`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Record {
    /// A whole record whose CRC matches; its payload is in the buffer.
    Good,
    /// A torn or damaged record: cut short, a length out of bounds (zero,
    /// too large, or past `remaining`) or a CRC that does not match.
    Bad,
    /// Nothing left to read.
    End,
}

/// Reads one record from `input`, which holds `remaining` more bytes, into
/// `payload` (cleared first, and reused from record to record, so a reader
/// holds one record at a time). The length from the header is checked
/// against [`MAX_RECORD_BYTES`] and `remaining` before `payload` grows.
pub(super) fn read_record(
    input: &mut impl Read,
    remaining: u64,
    payload: &mut Vec<u8>,
) -> io::Result<Record> {
    payload.clear();
    if remaining == 0 {
        return Ok(Record::End);
    }
    let mut header = [0; HEADER_BYTES as usize];
    match input.read_exact(&mut header) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(Record::Bad),
        Err(err) => return Err(err),
    }
    let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
    let len = u64::from(u32::from_le_bytes([l0, l1, l2, l3]));
    let crc = u32::from_le_bytes([c0, c1, c2, c3]);
    if !(MIN_RECORD_BYTES..=MAX_RECORD_BYTES).contains(&len)
        || len > remaining.saturating_sub(HEADER_BYTES)
    {
        return Ok(Record::Bad);
    }
    payload.resize(len as usize, 0);
    match input.read_exact(payload) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(Record::Bad),
        Err(err) => return Err(err),
    }
    Ok(if crc32fast::hash(payload) == crc {
        Record::Good
    } else {
        Record::Bad
    })
}

/// What is left to ship, as [`count_pending`] counted it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Pending {
    pub(super) bytes: u64,
    pub(super) events: u64,
    /// The most the counter held at once: one record's buffer.
    pub(super) buffer: usize,
}

/// Counts the records and events from `from` up to `to` by streaming the
/// segments one record at a time (one reused buffer, events counted without
/// being decoded), so opening a large spool costs the largest record in
/// memory, not the spool.
pub(super) fn count_pending(
    dir: &Path,
    from: Position,
    to: Position,
) -> Result<Pending, StoreError> {
    let mut pending = Pending::default();
    let mut payload = Vec::new();
    let mut at = from;
    while at < to {
        let path = segment_path(dir, at.segment);
        let end = if at.segment == to.segment {
            to.offset
        } else {
            fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        };
        if at.offset < end {
            let mut file = File::open(&path)?;
            file.seek(SeekFrom::Start(at.offset))?;
            let mut file = io::BufReader::new(file.take(end - at.offset));
            while at.offset < end {
                let Record::Good = read_record(&mut file, end - at.offset, &mut payload)? else {
                    return Err(damaged(&path, at.offset));
                };
                let events: Vec<serde::de::IgnoredAny> = serde_json::from_slice(&payload)
                    .map_err(|e| StoreError::Commit(format!("{}: {e}", path.display())))?;
                let size = payload.len() as u64 + HEADER_BYTES;
                at.offset += size;
                pending.bytes += size;
                pending.events += events.len() as u64;
                pending.buffer = pending.buffer.max(payload.capacity());
            }
        }
        if at.segment >= to.segment {
            break;
        }
        at = Position {
            segment: at.segment + 1,
            offset: 0,
        };
    }
    Ok(pending)
}

/// Checks the records of the last segment from `start` and cuts off what
/// follows the last good one; the end of the good records.
///
/// What is cut is logged as one of two things. A torn tail (nothing valid
/// after the damage: a write cut short by a crash, or a zero-filled tail)
/// was never acknowledged, and is a warning. A damaged record with complete
/// records after it means acknowledged events are lost (the disk or someone
/// changed the file): an error, with the records and bytes cut.
pub(super) fn recover_tail(path: &Path, start: u64) -> io::Result<u64> {
    let Ok(file) = OpenOptions::new().read(true).write(true).open(path) else {
        return Ok(0);
    };
    let len = file.metadata()?.len();
    let mut reader = io::BufReader::new(&file);
    reader.seek(SeekFrom::Start(start.min(len)))?;
    let mut end = start.min(len);
    let mut payload = Vec::new();
    while let Record::Good = read_record(&mut reader, len - end, &mut payload)? {
        end += payload.len() as u64 + HEADER_BYTES;
    }
    drop(reader);
    if end < len {
        let after = records_after(&file, end, len)?;
        if after.records == 0 {
            tracing::warn!(
                path = %path.display(),
                at = end,
                cut = len - end,
                "cut a torn tail off the spool after its last complete record \
                 (a write cut short by a crash, or zeros; it was never acknowledged)"
            );
        } else {
            tracing::error!(
                path = %path.display(),
                at = end,
                cut = len - end,
                lost_records = after.records,
                lost_bytes = after.bytes,
                "a damaged record in the middle of the spool, with complete records after it: \
                 cut off from the damage on; acknowledged events are lost"
            );
        }
        file.set_len(end)?;
        file.sync_all()?;
    }
    Ok(end)
}

/// Complete records found after damage.
#[derive(Debug, Default)]
pub(super) struct After {
    records: u64,
    bytes: u64,
}

/// Looks for complete records (a length in bounds, a payload that opens a
/// JSON array, a matching CRC) at every byte after the damaged record at
/// `from`, reading the file in windows, and counts them.
pub(super) fn records_after(file: &File, from: u64, len: u64) -> io::Result<After> {
    const WINDOW: usize = 1 << 20;
    let mut after = After::default();
    let mut window = vec![0; WINDOW];
    let mut payload = Vec::new();
    let mut from = from + 1;
    while from + HEADER_BYTES + MIN_RECORD_BYTES <= len {
        let n = usize::try_from(len - from).unwrap_or(WINDOW).min(WINDOW);
        read_at(file, &mut window[..n], from)?;
        let mut found = None;
        for (i, header) in window[..n].windows(HEADER_BYTES as usize).enumerate() {
            let at = from + i as u64;
            if let [l0, l1, l2, l3, c0, c1, c2, c3] = *header {
                let size = u64::from(u32::from_le_bytes([l0, l1, l2, l3]));
                let crc = u32::from_le_bytes([c0, c1, c2, c3]);
                if (MIN_RECORD_BYTES..=MAX_RECORD_BYTES).contains(&size)
                    && at + HEADER_BYTES + size <= len
                    && payload_matches(file, at + HEADER_BYTES, size, crc)?
                {
                    found = Some(at);
                    break;
                }
            }
        }
        let Some(mut at) = found else {
            from += (n as u64).saturating_sub(HEADER_BYTES - 1).max(1);
            continue;
        };
        // Follow the records from there, up to the next damage if any.
        let mut reader = io::BufReader::new(file);
        reader.seek(SeekFrom::Start(at))?;
        while let Record::Good = read_record(&mut reader, len - at, &mut payload)? {
            let size = payload.len() as u64 + HEADER_BYTES;
            at += size;
            after.records += 1;
            after.bytes += size;
        }
        from = at + 1;
    }
    Ok(after)
}

/// Whether the `size` bytes at `offset` start a JSON array and have the CRC
/// `crc`; read in pieces, so a large candidate costs no large buffer.
pub(super) fn payload_matches(file: &File, offset: u64, size: u64, crc: u32) -> io::Result<bool> {
    let mut first = [0];
    read_at(file, &mut first, offset)?;
    if first != *b"[" {
        return Ok(false);
    }
    let mut hasher = crc32fast::Hasher::new();
    let mut piece = vec![0; 64 * 1024];
    let mut done = 0;
    while done < size {
        let n = usize::try_from(size - done)
            .unwrap_or(piece.len())
            .min(piece.len());
        read_at(file, &mut piece[..n], offset + done)?;
        hasher.update(&piece[..n]);
        done += n as u64;
    }
    Ok(hasher.finalize() == crc)
}

pub(super) fn read_at(mut file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
