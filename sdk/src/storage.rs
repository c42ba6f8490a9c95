//! Where the SDK keeps its state: a small key-value trait.
//!
//! The browser shell implements it over localStorage; the in-memory version
//! serves tests and is the last fallback when the browser refuses storage.

use crate::prelude::*;

use alloc::collections::BTreeMap;

/// The storage could not be written (blocked, quota full, missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageError;

/// A string key-value store. Reads of a broken store return `None`.
pub trait Storage {
    fn get(&self, key: &str) -> Option<String>;
    fn set(&mut self, key: &str, value: &str) -> Result<(), StorageError>;
    fn remove(&mut self, key: &str);
    /// Short name reported with events (`local`, `cookie`, `memory`).
    fn kind(&self) -> &'static str;
}

/// Storage that lives as long as the page (or the test).
#[derive(Debug, Default, Clone)]
pub struct MemoryStorage {
    entries: BTreeMap<String, String>,
}

impl Storage for MemoryStorage {
    fn get(&self, key: &str) -> Option<String> {
        self.entries.get(key).cloned()
    }
    fn set(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        self.entries.insert(key.to_owned(), value.to_owned());
        Ok(())
    }
    fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }
    fn kind(&self) -> &'static str {
        "memory"
    }
}
