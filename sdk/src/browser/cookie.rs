//! A first-party cookie as the fallback store when localStorage is missing
//! or refuses (some privacy modes, sandboxed frames, a full quota).

use crate::text::{concat, push_u64};
use crate::{Storage, StorageError};
use wasm_bindgen::JsValue;

/// Cookies live a year; the session record inside decides what is current.
const MAX_AGE_SECONDS: u64 = 365 * 24 * 3600;

/// `document.cookie`, one cookie per key.
pub struct CookieStorage {
    document: JsValue,
    secure: bool,
}

impl CookieStorage {
    /// The page's cookie jar, if cookies can be written and read back.
    pub fn open() -> Option<CookieStorage> {
        let window = web_sys::window()?;
        let secure = window.location().protocol().is_ok_and(|p| p == "https:");
        let mut jar = CookieStorage {
            document: window.document()?.into(),
            secure,
        };
        jar.set("waymark.probe", "1").ok()?;
        jar.remove("waymark.probe");
        Some(jar)
    }

    fn jar(&self) -> String {
        js_sys::Reflect::get(&self.document, &"cookie".into())
            .ok()
            .and_then(|c| c.as_string())
            .unwrap_or_default()
    }

    fn write(&self, cookie: &str) -> bool {
        js_sys::Reflect::set(&self.document, &"cookie".into(), &cookie.into()).unwrap_or(false)
    }
}

impl Storage for CookieStorage {
    fn get(&self, key: &str) -> Option<String> {
        let jar = self.jar();
        // `a=1; b=2`, split by character: a string pattern ships a searcher.
        let value = jar.split(';').find_map(|pair| {
            pair.trim_start_matches(' ')
                .strip_prefix(key)?
                .strip_prefix('=')
        })?;
        js_sys::decode_uri_component(value).ok()?.as_string()
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        let encoded: String = js_sys::encode_uri_component(value).into();
        let mut cookie = concat(&[key, "=", &encoded, "; Path=/; Max-Age="]);
        push_u64(&mut cookie, MAX_AGE_SECONDS);
        cookie.push_str("; SameSite=Lax");
        if self.secure {
            cookie.push_str("; Secure");
        }
        // A refused cookie fails silently: read it back to know.
        if self.write(&cookie) && self.get(key).as_deref() == Some(value) {
            Ok(())
        } else {
            Err(StorageError)
        }
    }

    fn remove(&mut self, key: &str) {
        self.write(&concat(&[key, "=; Path=/; Max-Age=0"]));
    }

    fn kind(&self) -> &'static str {
        "cookie"
    }
}
