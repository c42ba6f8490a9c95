//! localStorage and crypto randomness behind the core's traits.

use super::cookie::CookieStorage;
use crate::{Entropy, Storage, StorageError};

/// localStorage when the browser grants it, else a first-party cookie.
/// Without either, reads find nothing and writes fail, so the core keeps the
/// session in memory for this page.
pub enum BrowserStorage {
    Local(web_sys::Storage),
    Cookie(CookieStorage),
    Unavailable,
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
            _ => Self::cookie(),
        }
    }

    fn cookie() -> BrowserStorage {
        CookieStorage::open().map_or(BrowserStorage::Unavailable, BrowserStorage::Cookie)
    }
}

impl Storage for BrowserStorage {
    fn get(&self, key: &str) -> Option<String> {
        match self {
            BrowserStorage::Local(s) => s.get_item(key).ok().flatten(),
            BrowserStorage::Cookie(c) => c.get(key),
            BrowserStorage::Unavailable => None,
        }
    }
    fn set(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        match self {
            BrowserStorage::Local(s) => {
                if s.set_item(key, value).is_ok() {
                    return Ok(());
                }
                // Quota full or storage revoked: carry on in a cookie.
                *self = Self::cookie();
                match self {
                    BrowserStorage::Cookie(c) => c.set(key, value),
                    _ => Err(StorageError),
                }
            }
            BrowserStorage::Cookie(c) => c.set(key, value),
            BrowserStorage::Unavailable => Err(StorageError),
        }
    }
    fn remove(&mut self, key: &str) {
        match self {
            BrowserStorage::Local(s) => {
                let _ = s.remove_item(key);
            }
            BrowserStorage::Cookie(c) => c.remove(key),
            BrowserStorage::Unavailable => {}
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            BrowserStorage::Local(_) => "local",
            BrowserStorage::Cookie(_) => "cookie",
            BrowserStorage::Unavailable => "memory",
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
