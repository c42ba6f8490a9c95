//! The dead-letter: inserts ClickHouse refused for their content, set
//! aside in `<data>/spool/dead/` so the spool behind them is shipped.
//!
//! One JSON file per refused insert, named by where its events start in
//! the spool (`<segment>-<offset>.json`, 20 digits each), holding
//! `refused_at` (epoch milliseconds), the ClickHouse error `code` and
//! `error` text, the spool positions `from` and `to`, and the `events` as
//! the spool holds them. A file is written to `.tmp`, fsync'd, renamed
//! and the directory fsync'd before the shipper moves its `shipped` mark
//! past the events, so a crash in between refuses and writes the same
//! batch again under the same name: the file is replaced, never lost,
//! never doubled.
//!
//! The files together are bounded by `max_bytes`: a refused insert that
//! does not fit is not written ([`Put::Full`]) and stays in the spool.
//!
//! Files an operator moves to `dead/replay/` are appended to the spool
//! when the store next opens ([`replays`], [`read_replay`]) and then
//! deleted ([`remove_replay`]).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{sync_dir, Position};
use crate::event::StoredEvent;
use crate::store::StoreError;

/// The dead-letter's folder in the spool's.
const DEAD_DIR: &str = "dead";
/// The folder in it whose files are replayed at the next start.
const REPLAY_DIR: &str = "replay";

/// A dead-letter file as written.
#[derive(Serialize)]
struct Letter<'a> {
    refused_at: u64,
    code: u32,
    error: &'a str,
    from: Position,
    to: Position,
    events: &'a [StoredEvent],
}

/// A dead-letter file as replayed: only its events matter.
#[derive(Deserialize)]
struct Replayed {
    events: Vec<StoredEvent>,
}

/// What [`DeadLetter::put`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Put {
    /// Written (or written again over the same batch) at this path.
    Stored(PathBuf),
    /// Not written: it needs this many bytes, more than are left.
    Full { needed: u64 },
}

/// A refused insert, as [`DeadLetter::put`] writes it.
#[derive(Debug)]
pub(crate) struct Refused<'a> {
    /// Where its events start and end in the spool.
    pub from: Position,
    pub to: Position,
    /// ClickHouse's error code and text.
    pub code: u32,
    pub error: &'a str,
    pub events: &'a [StoredEvent],
    /// When, in epoch milliseconds.
    pub now_ms: u64,
}

/// The dead-letter folder and the bytes in it; see the module docs.
#[derive(Debug)]
pub(crate) struct DeadLetter {
    spool: PathBuf,
    dir: PathBuf,
    max_bytes: u64,
    bytes: u64,
}

impl DeadLetter {
    /// The dead-letter of the spool in `spool`, holding at most
    /// `max_bytes`; counts the files already there and removes the
    /// `.tmp` files a crash left.
    pub fn open(spool: &Path, max_bytes: u64) -> Result<DeadLetter, StoreError> {
        let mut dead = DeadLetter {
            spool: spool.to_owned(),
            dir: spool.join(DEAD_DIR),
            max_bytes,
            bytes: 0,
        };
        dead.count()?;
        Ok(dead)
    }

    /// The bytes its files take.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Its bound, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Counts the bytes of the files there (an operator may have removed
    /// some) and removes leftover `.tmp` files.
    fn count(&mut self) -> io::Result<()> {
        self.bytes = 0;
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            match path.extension().and_then(|ext| ext.to_str()) {
                Some("json") => self.bytes += entry.metadata()?.len(),
                Some("tmp") => fs::remove_file(&path)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Writes a refused insert durably, unless that would take the folder
    /// past its bound.
    pub fn put(&mut self, refused: &Refused<'_>) -> Result<Put, StoreError> {
        let letter = Letter {
            refused_at: refused.now_ms,
            code: refused.code,
            error: refused.error,
            from: refused.from,
            to: refused.to,
            events: refused.events,
        };
        let body = serde_json::to_vec(&letter).map_err(|e| StoreError::Commit(e.to_string()))?;
        let name = format!(
            "{:020}-{:020}.json",
            refused.from.segment, refused.from.offset
        );
        let path = self.dir.join(&name);
        let needed = body.len() as u64;
        // A file for the same batch (written before a crash) is replaced.
        let replaced = || fs::metadata(&path).map_or(0, |m| m.len());
        let max_bytes = self.max_bytes;
        let fits = |bytes: u64| bytes.saturating_sub(replaced()) + needed <= max_bytes;
        if !fits(self.bytes) {
            self.count()?;
            if !fits(self.bytes) {
                return Ok(Put::Full { needed });
            }
        }
        if !self.dir.is_dir() {
            fs::create_dir_all(&self.dir)?;
            sync_dir(&self.spool)?;
        }
        let old = replaced();
        let tmp = self.dir.join(format!("{name}.tmp"));
        let written = File::create(&tmp).and_then(|mut file| {
            file.write_all(&body)?;
            file.sync_all()
        });
        if let Err(err) = written {
            let _ = fs::remove_file(&tmp);
            return Err(err.into());
        }
        fs::rename(&tmp, &path)?;
        sync_dir(&self.dir)?;
        self.bytes = self.bytes.saturating_sub(old) + needed;
        Ok(Put::Stored(path))
    }
}

/// The files waiting in `<spool>/dead/replay/`, in name (so spool) order.
pub(crate) fn replays(spool: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(spool.join(DEAD_DIR).join(REPLAY_DIR)) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "json") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The events of a dead-letter file.
pub(crate) fn read_replay(path: &Path) -> Result<Vec<StoredEvent>, StoreError> {
    let replayed: Replayed = serde_json::from_slice(&fs::read(path)?)
        .map_err(|e| StoreError::Commit(format!("{}: {e}", path.display())))?;
    Ok(replayed.events)
}

/// Deletes a replayed file, durably.
pub(crate) fn remove_replay(path: &Path) -> io::Result<()> {
    fs::remove_file(path)?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(segment: u64, error: &str) -> Refused<'_> {
        Refused {
            from: Position { segment, offset: 0 },
            to: Position {
                segment,
                offset: 50,
            },
            code: 27,
            error,
            events: &[],
            now_ms: 1,
        }
    }

    #[test]
    fn a_batch_written_twice_is_one_file_and_the_bound_holds() {
        let spool = tempfile::tempdir().unwrap();
        let mut dead = DeadLetter::open(spool.path(), 400).unwrap();
        let Put::Stored(first) = dead.put(&refused(1, "Code: 27")).unwrap() else {
            panic!("room for it");
        };
        let size = dead.bytes();
        assert!(size > 0);
        // The same batch again (a crash before the mark moved): replaced.
        let again = dead.put(&refused(1, "Code: 27")).unwrap();
        assert_eq!(again, Put::Stored(first.clone()));
        assert_eq!(dead.bytes(), size);
        assert_eq!(fs::read_dir(dead.dir()).unwrap().count(), 1);

        // Reopened, it counts what is there; what does not fit is refused.
        let mut dead = DeadLetter::open(spool.path(), 400).unwrap();
        assert_eq!(dead.bytes(), size);
        let long = "x".repeat(400);
        let full = dead.put(&refused(2, &long)).unwrap();
        assert!(matches!(full, Put::Full { needed } if needed > 400));
        assert_eq!(dead.bytes(), size);

        // Room again once an operator removes a file: counted again when a
        // batch does not fit.
        fs::remove_file(&first).unwrap();
        let error = "x".repeat(usize::try_from(400 - size).unwrap() + "Code: 27".len());
        let fits = dead.put(&refused(2, &error)).unwrap();
        assert!(matches!(fits, Put::Stored(_)), "{fits:?}");
        assert_eq!(dead.bytes(), 400);
    }

    #[test]
    fn replays_are_listed_in_order_and_read() {
        let spool = tempfile::tempdir().unwrap();
        assert!(replays(spool.path()).unwrap().is_empty());
        let replay = spool.path().join(DEAD_DIR).join(REPLAY_DIR);
        fs::create_dir_all(&replay).unwrap();
        fs::write(replay.join("2.json"), r#"{"code":6,"events":[]}"#).unwrap();
        fs::write(replay.join("1.json"), "not json").unwrap();
        fs::write(replay.join("notes.txt"), "").unwrap();
        let files = replays(spool.path()).unwrap();
        assert_eq!(files, [replay.join("1.json"), replay.join("2.json")]);
        assert!(read_replay(&files[0]).is_err());
        assert_eq!(read_replay(&files[1]).unwrap(), []);
        remove_replay(&files[1]).unwrap();
        assert_eq!(replays(spool.path()).unwrap(), [replay.join("1.json")]);
    }
}
