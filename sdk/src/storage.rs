//! localStorage, sessionStorage, a first-party cookie, and crypto
//! randomness, behind the core's [`Storage`] and [`Entropy`] traits.

use js_sys::{decode_uri_component, encode_uri_component};
use wasm_bindgen::JsCast;
use waymark_sdk_core::{
    cookie_assignment, cookie_value, random_id, EarlyPage, Entropy, Storage, StorageError, Value,
};
use web_sys::HtmlDocument;

/// Where a value can be kept.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Local,
    Session,
    Cookie,
}

/// The Web Storage object of `area` (opening one throws in some privacy
/// modes and sandboxed frames: then none).
fn web_storage(area: Area) -> Option<web_sys::Storage> {
    let window = web_sys::window()?;
    let storage = match area {
        Area::Local => window.local_storage(),
        Area::Session => window.session_storage(),
        Area::Cookie => return None,
    };
    storage.ok().flatten()
}

fn html_document() -> Option<HtmlDocument> {
    web_sys::window()?.document()?.dyn_into().ok()
}

/// One entry: a string, or nothing when missing or unreadable.
pub fn get(area: Area, key: &str) -> Option<String> {
    if area == Area::Cookie {
        let cookies = html_document()?.cookie().ok()?;
        let raw = cookie_value(&cookies, key)?;
        return decode_uri_component(raw).ok().map(String::from);
    }
    web_storage(area)?.get_item(key).ok().flatten()
}

/// Writes one entry; false when refused (a cookie is read back to know).
pub fn set(area: Area, key: &str, value: &str) -> bool {
    if area == Area::Cookie {
        let Some(document) = html_document() else {
            return false;
        };
        let encoded = String::from(encode_uri_component(value));
        let secure = web_sys::window()
            .and_then(|w| w.location().protocol().ok())
            .is_some_and(|p| p == "https:");
        let assignment = cookie_assignment(key, Some(&encoded), secure);
        return document.set_cookie(&assignment).is_ok()
            && get(area, key).as_deref() == Some(value);
    }
    web_storage(area).is_some_and(|s| s.set_item(key, value).is_ok())
}

pub fn remove(area: Area, key: &str) {
    if area == Area::Cookie {
        if let Some(document) = html_document() {
            let _ = document.set_cookie(&cookie_assignment(key, None, false));
        }
    } else if let Some(storage) = web_storage(area) {
        let _ = storage.remove_item(key);
    }
}

/// The localStorage entries whose key starts with `prefix`.
pub fn local_entries(prefix: &str) -> Vec<(String, String)> {
    let Some(storage) = web_storage(Area::Local) else {
        return Vec::new();
    };
    let keys: Vec<String> = (0..storage.length().unwrap_or(0))
        .filter_map(|i| storage.key(i).ok().flatten())
        .filter(|k| k.starts_with(prefix))
        .collect();
    keys.into_iter()
        .filter_map(|k| Some((storage.get_item(&k).ok().flatten()?, k)))
        .map(|(v, k)| (k, v))
        .collect()
}

/// The prefix of the records the snippet's stub leaves in localStorage for
/// a page the SDK did not start on: `waymark.early.<time><random>`, or
/// `waymark.early.<uuid>` when the loader gave the record a key and sent it
/// itself too ([`EarlyPage::key`]).
pub const EARLY_PREFIX: &str = "waymark.early.";

/// The stub's records of pages left before the SDK started, taken out of
/// localStorage (each removed as it is read, so no other tab replays it),
/// oldest first. A record that is not one is removed and skipped.
pub fn take_early_pages() -> Vec<EarlyPage> {
    let mut pages: Vec<EarlyPage> = Vec::new();
    for (key, text) in local_entries(EARLY_PREFIX) {
        remove(Area::Local, &key);
        let Some(page) = js_sys::JSON::parse(&text)
            .ok()
            .and_then(|value| serde_wasm_bindgen::from_value::<Value>(value).ok())
            .and_then(EarlyPage::from_value)
            .map(|page| page.keyed(key.get(EARLY_PREFIX.len()..).unwrap_or_default()))
        else {
            continue;
        };
        // In time order (a few records at most: no sort routine in the wasm).
        let at = pages.iter().take_while(|p| p.at <= page.at).count();
        pages.insert(at, page);
    }
    pages
}

/// localStorage when the browser grants it, else a first-party cookie
/// (`SameSite=Lax`, a year, `Secure` on https). Without either, reads find
/// nothing and writes fail, so the core keeps the session in memory for
/// this page.
pub struct BrowserStorage(Option<Area>);

const PROBE: &str = "waymark.probe";

impl BrowserStorage {
    /// The first area that takes a write.
    pub fn open() -> BrowserStorage {
        Self::first_of(&[Area::Local, Area::Cookie])
    }

    fn first_of(areas: &[Area]) -> BrowserStorage {
        let usable = areas.iter().copied().find(|area| {
            let ok = set(*area, PROBE, "1");
            remove(*area, PROBE);
            ok
        });
        BrowserStorage(usable)
    }
}

impl Storage for BrowserStorage {
    fn get(&self, key: &str) -> Option<String> {
        get(self.0?, key)
    }
    fn set(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        let area = self.0.ok_or(StorageError)?;
        if set(area, key, value) {
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
            remove(area, key);
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
        let crypto = web_sys::window().and_then(|w| w.crypto().ok());
        if crypto.is_some_and(|c| c.get_random_values_with_u8_array(bytes).is_ok()) {
            return;
        }
        for b in bytes {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
}

/// This tab's id, a UUIDv4 (by the core, with the uuid crate): kept in sessionStorage, so it survives reloads
/// but not the tab.
pub fn tab_id() -> String {
    const KEY: &str = "waymark.tab";
    if let Some(id) = get(Area::Session, KEY) {
        return id;
    }
    let id = random_id(&mut CryptoEntropy);
    set(Area::Session, KEY, &id);
    id
}
