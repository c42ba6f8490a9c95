//! localStorage, a cookie, and crypto randomness behind the core's traits.

use crate::prelude::*;

use super::dom::{self, Area};
use crate::{Entropy, Storage, StorageError};

/// localStorage when the browser grants it, else a first-party cookie
/// (`SameSite=Lax`, a year, `Secure` on https). Without either, reads find
/// nothing and writes fail, so the core keeps the session in memory for
/// this page.
pub struct BrowserStorage(Option<Area>);

const PROBE: &str = "waymark.probe";

impl BrowserStorage {
    /// Opening throws in some privacy modes and sandboxed frames; probe once.
    pub fn open() -> BrowserStorage {
        Self::first_of(&[Area::Local, Area::Cookie])
    }

    /// The first area that takes a write.
    fn first_of(areas: &[Area]) -> BrowserStorage {
        let usable = areas.iter().copied().find(|area| {
            let ok = dom::store_set(*area, PROBE, "1");
            dom::store_remove(*area, PROBE);
            ok
        });
        BrowserStorage(usable)
    }
}

impl Storage for BrowserStorage {
    fn get(&self, key: &str) -> Option<String> {
        dom::store_get(self.0?, key)
    }
    fn set(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        let area = self.0.ok_or(StorageError)?;
        if dom::store_set(area, key, value) {
            return Ok(());
        }
        if area == Area::Local {
            // Quota full or storage revoked: carry on in a cookie.
            *self = Self::first_of(&[Area::Cookie]);
            if self.0.is_some() {
                return self.set(key, value);
            }
        }
        Err(StorageError)
    }
    fn remove(&mut self, key: &str) {
        if let Some(area) = self.0 {
            dom::store_remove(area, key);
        }
    }
    fn kind(&self) -> &'static str {
        match self.0 {
            Some(Area::Local) => "local",
            Some(_) => "cookie",
            None => "memory",
        }
    }
}

/// `crypto.getRandomValues`, with `Math.random` only if crypto is missing.
pub struct CryptoEntropy;

impl Entropy for CryptoEntropy {
    fn fill(&mut self, bytes: &mut [u8]) {
        let mut bits = 0u32;
        for (i, b) in bytes.iter_mut().enumerate() {
            if i % 4 == 0 {
                bits = dom::random() as u32;
            }
            *b = bits as u8;
            bits >>= 8;
        }
    }
}
