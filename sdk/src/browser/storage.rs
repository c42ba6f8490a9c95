//! localStorage and crypto randomness behind the core's traits.

use crate::{Entropy, MemoryStorage, Storage, StorageError};

/// localStorage when the browser grants it, else memory for this page.
pub enum BrowserStorage {
    Local(web_sys::Storage),
    Memory(MemoryStorage),
}

impl BrowserStorage {
    /// Opening throws in some privacy modes and sandboxed frames; probe once.
    pub fn open() -> BrowserStorage {
        let local = web_sys::window().and_then(|w| w.local_storage().ok().flatten());
        match local {
            Some(s) if s.set_item("waymark.probe", "1").is_ok() => {
                let _ = s.remove_item("waymark.probe");
                BrowserStorage::Local(s)
            }
            _ => BrowserStorage::Memory(MemoryStorage::default()),
        }
    }
}

impl Storage for BrowserStorage {
    fn get(&self, key: &str) -> Option<String> {
        match self {
            BrowserStorage::Local(s) => s.get_item(key).ok().flatten(),
            BrowserStorage::Memory(m) => m.get(key),
        }
    }
    fn set(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        match self {
            BrowserStorage::Local(s) => s.set_item(key, value).map_err(|_| StorageError),
            BrowserStorage::Memory(m) => m.set(key, value),
        }
    }
    fn remove(&mut self, key: &str) {
        match self {
            BrowserStorage::Local(s) => {
                let _ = s.remove_item(key);
            }
            BrowserStorage::Memory(m) => m.remove(key),
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            BrowserStorage::Local(_) => "local",
            BrowserStorage::Memory(_) => "memory",
        }
    }
}

/// `crypto.getRandomValues`, with `Math.random` only if crypto is missing.
pub struct CryptoEntropy;

impl Entropy for CryptoEntropy {
    fn fill(&mut self, bytes: &mut [u8]) {
        let crypto = web_sys::window().and_then(|w| w.crypto().ok());
        if crypto.is_some_and(|c| c.get_random_values_with_u8_array(bytes).is_ok()) {
            return;
        }
        for b in bytes {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
}
