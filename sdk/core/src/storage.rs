//! Where the SDK keeps its state: a small key-value trait.
//!
//! The browser shell implements it over localStorage; the in-memory version
//! serves tests and is the last fallback when the browser refuses storage.

use crate::prelude::*;
use alloc::boxed::Box;

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

/// A boxed storage: how the browser shell and [`crate::keyed_replay`] hold
/// theirs, so that the wasm carries one copy of the tracker, not one per
/// kind of storage.
impl<S: Storage + ?Sized> Storage for Box<S> {
    fn get(&self, key: &str) -> Option<String> {
        (**self).get(key)
    }
    fn set(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        (**self).set(key, value)
    }
    fn remove(&mut self, key: &str) {
        (**self).remove(key);
    }
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
}

/// Storage that lives as long as the page (or the test). A list, not a
/// map: a tracker keeps two records at most (the session and the opt-out
/// flag), and the early pages' replay, which uses it in the wasm, would
/// otherwise carry `BTreeMap`'s code.
#[derive(Debug, Default, Clone)]
pub struct MemoryStorage {
    entries: Vec<(String, String)>,
}

impl Storage for MemoryStorage {
    fn get(&self, key: &str) -> Option<String> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
    fn set(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        self.remove(key);
        self.entries.push((key.to_owned(), value.to_owned()));
        Ok(())
    }
    fn remove(&mut self, key: &str) {
        self.entries.retain(|(k, _)| k != key);
    }
    fn kind(&self) -> &'static str {
        "memory"
    }
}

/// The raw (still URI-encoded) value of cookie `key` in `document.cookie`'s
/// `a=1; b=2` text.
pub fn cookie_value<'a>(cookies: &'a str, key: &str) -> Option<&'a str> {
    crate::text::parts(cookies, b';')
        .map(|pair| pair.trim_start_matches(' '))
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
}

/// The `document.cookie` assignment that keeps `encoded_value` under `key`
/// for a year, first-party (`SameSite=Lax`), `Secure` on https; or, with no
/// value, removes it.
pub fn cookie_assignment(key: &str, encoded_value: Option<&str>, secure: bool) -> String {
    let mut out = String::new();
    out.push_str(key);
    out.push('=');
    match encoded_value {
        Some(value) => {
            out.push_str(value);
            out.push_str("; Path=/; Max-Age=31536000; SameSite=Lax");
            if secure {
                out.push_str("; Secure");
            }
        }
        None => out.push_str("; Path=/; Max-Age=0"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let jar = "waymark.demo.session2=x; waymark.demo.session=a%20b;other=1";
        assert_eq!(cookie_value(jar, "waymark.demo.session"), Some("a%20b"));
        assert_eq!(cookie_value(jar, "other"), Some("1"));
        assert_eq!(cookie_value(jar, "waymark"), None);
        assert_eq!(cookie_value("", "a"), None);
    }

    #[test]
    fn cookie_assignments_set_and_clear() {
        assert_eq!(
            cookie_assignment("k", Some("v%20"), true),
            "k=v%20; Path=/; Max-Age=31536000; SameSite=Lax; Secure"
        );
        assert_eq!(
            cookie_assignment("k", Some("v"), false),
            "k=v; Path=/; Max-Age=31536000; SameSite=Lax"
        );
        assert_eq!(cookie_assignment("k", None, true), "k=; Path=/; Max-Age=0");
    }
}
