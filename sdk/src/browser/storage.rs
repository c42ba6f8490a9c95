//! localStorage and crypto randomness behind the core's traits.

use crate::{Entropy, Storage, StorageError};

/// localStorage when the browser grants it. Without it, reads find nothing
/// and writes fail, so the core keeps the session in memory for this page.
pub struct BrowserStorage(Option<web_sys::Storage>);

impl BrowserStorage {
    /// Opening throws in some privacy modes and sandboxed frames; probe once.
    pub fn open() -> BrowserStorage {
        let local = web_sys::window().and_then(|w| w.local_storage().ok().flatten());
        BrowserStorage(local.filter(|s| {
            let writable = s.set_item("waymark.probe", "1").is_ok();
            let _ = s.remove_item("waymark.probe");
            writable
        }))
    }
}

impl Storage for BrowserStorage {
    fn get(&self, key: &str) -> Option<String> {
        self.0.as_ref()?.get_item(key).ok().flatten()
    }
    fn set(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        let local = self.0.as_ref().ok_or(StorageError)?;
        local.set_item(key, value).map_err(|_| StorageError)
    }
    fn remove(&mut self, key: &str) {
        if let Some(local) = &self.0 {
            let _ = local.remove_item(key);
        }
    }
    fn kind(&self) -> &'static str {
        if self.0.is_some() {
            "local"
        } else {
            "memory"
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
