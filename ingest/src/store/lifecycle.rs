//! The data lifecycle: what a store does to keep personal data only as long
//! as declared (retention) and to erase one person on request.
//!
//! Each store that can do it is a [`Lifecycle`] and names every table it
//! keeps in its [`Lifecycle::tables`]: those holding personal data (a
//! visitor id, a user id, or rows built from their events), which retention
//! and erasure delete from, and those holding none. Erasure and retention
//! are driven from that one list, and a test compares it with the tables
//! the database really has, so a table added later cannot be forgotten.

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::Serialize;

use super::{BoxFuture, StoreError};
use crate::read::Person;

/// A table of a store and whether it holds personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// Its name in the database (without the database).
    pub name: &'static str,
    /// What it holds, so erasure and retention know whether to delete from it.
    pub role: TableRole,
}

/// Whether a [`Table`] holds personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableRole {
    /// Rows of events or sessions, keyed by `(site, session_id)`: erased
    /// and expired with their sessions.
    Personal,
    /// A view whose rows are in another table of the list (nothing to
    /// delete from it itself).
    View,
    /// Nothing of anyone: bookkeeping such as the schema's version.
    NoPersonalData,
}

/// What an erasure removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Erasure {
    /// The visitor ids erased: one for a visitor, every one ever linked
    /// for a user (never logged: the audit line counts them).
    pub visitor_ids: Vec<String>,
    /// Sessions removed.
    pub sessions: u64,
    /// Events removed.
    pub events: u64,
    /// Rows removed per table (for ClickHouse, the rows found before the
    /// deletes were asked for).
    pub tables: BTreeMap<&'static str, u64>,
    /// Deletes the store has asked for and that have not finished yet
    /// (ClickHouse mutations still running when the call gave up waiting,
    /// by table): the rows are going, but some may still be read.
    pub pending: Vec<String>,
}

/// What one retention pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expiry {
    /// Sessions removed.
    pub sessions: u64,
    /// Events removed.
    pub events: u64,
    /// Whether sessions older than the cutoff may remain (the pass stopped
    /// at its limit): call again.
    pub more: bool,
}

/// Retention and erasure: what a store that keeps personal data offers.
pub trait Lifecycle: Send + Sync + Debug {
    /// Every table the store keeps, with its role.
    fn tables(&self) -> &'static [Table];

    /// Removes every event and session of the person: a visitor's, or those
    /// of every visitor ever linked to a user id, from every table and
    /// every cache. Idempotent: erasing again removes nothing more.
    fn erase(&self, person: Person) -> BoxFuture<'_, Result<Erasure, StoreError>>;

    /// Removes up to `limit` sessions (and their events) that started
    /// before `started_before` (epoch ms), oldest first.
    fn expire(
        &self,
        started_before: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Expiry, StoreError>>;
}
