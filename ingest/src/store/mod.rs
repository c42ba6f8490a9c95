//! Where events go: the [`Store`] trait and its implementations.
//!
//! [`SqliteStore`] is the default, one file on one machine. [`MemoryStore`]
//! is for tests. A ClickHouse store will implement the same trait.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use crate::event::StoredEvent;

pub use self::memory::MemoryStore;
pub use self::sqlite::{SqliteStore, DB_FILE_NAME};

mod memory;
mod sqlite;

/// A boxed, sendable future, so [`Store`] stays object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What an [`append`](Store::append) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Events stored for the first time.
    pub inserted: usize,
    /// Events whose `event_id` was already stored (retries, double sends);
    /// they are left as they were.
    pub duplicates: usize,
}

/// Why the store could not do what was asked. Never shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A group of appends could not be committed and was rolled back.
    #[error("commit failed: {0}")]
    Commit(String),
    /// The store has been closed and takes no more events.
    #[error("the store is closed")]
    Closed,
    /// The database was written by a newer Waymark.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
}

/// Durable storage for events, shared by all requests as `Arc<dyn Store>`.
pub trait Store: Send + Sync + Debug {
    /// Stores `events`, skipping any whose `event_id` is already stored.
    ///
    /// Resolves only once the events are durable: an `Ok` is a promise that
    /// they survive a crash.
    fn append(&self, events: Vec<StoredEvent>) -> BoxFuture<'_, Result<AppendOutcome, StoreError>>;

    /// The events of one session, oldest first (by `ts`, then by arrival).
    fn events_for_session<'a>(
        &'a self,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>>;

    /// The newest `limit` events by `ts`, of one site or of all, newest first.
    fn recent_events<'a>(
        &'a self,
        site: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>>;
}
