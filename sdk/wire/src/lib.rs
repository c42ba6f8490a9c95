//! # Waymark's wire format
//!
//! What a batch posted to `POST /v1/batch` may hold, in one place that the
//! browser SDK and the collector both depend on, so the two cannot disagree
//! about what fits: the event types and their names on the wire, the batch
//! version, and every limit. The SDK keeps what it sends within these
//! limits; the collector rejects, per event, whatever is not.
//!
//! The URL hygiene lives here too ([`redact_url`]): the SDK removes
//! sensitive query parameters before an event leaves the page, and the
//! collector removes them again, with the same code and the built-in words,
//! from whatever reaches it.
//!
//! `no_std` with `alloc` (the hygiene builds strings), no dependencies.
//!
//! ```
//! use waymark_wire::{cut_chars, redact_url, EventType, DEFAULT_SENSITIVE_PARAMS, MAX_URL_CHARS};
//!
//! assert_eq!(EventType::from_name("page_view"), Some(EventType::PageView));
//! let long = "é".repeat(MAX_URL_CHARS + 5);
//! assert_eq!(cut_chars(&long, MAX_URL_CHARS).chars().count(), MAX_URL_CHARS);
//! assert_eq!(
//!     redact_url("https://shop.example/?token=abc&q=jane@example.com&page=2", DEFAULT_SENSITIVE_PARAMS),
//!     "https://shop.example/?page=2"
//! );
//! ```

#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod hygiene;
pub mod text;

pub use hygiene::{is_sensitive_pair, looks_like_email, redact_url, DEFAULT_SENSITIVE_PARAMS};

/// The batch format version (`"v"`); the collector refuses any other.
pub const VERSION: u32 = 1;

/// The kinds of event on the wire and in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    PageView,
    PageLeave,
    Click,
    /// A `waymark('track', name, props)` call; always has a `name`.
    Custom,
    Identify,
    /// Marks the end of a session and records its end time.
    VisitEnded,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::PageView,
        EventType::PageLeave,
        EventType::Click,
        EventType::Custom,
        EventType::Identify,
        EventType::VisitEnded,
    ];

    /// The name on the wire and in the store.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::PageView => "page_view",
            EventType::PageLeave => "page_leave",
            EventType::Click => "click",
            EventType::Custom => "custom",
            EventType::Identify => "identify",
            EventType::VisitEnded => "visit_ended",
        }
    }

    /// The type a wire name stands for.
    pub fn from_name(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = EventType;
            fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
                f.write_str(
                    "an event type: page_view, page_leave, click, custom, identify or visit_ended",
                )
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<EventType, E> {
                EventType::from_name(name).ok_or_else(|| E::unknown_variant(name, &NAMES))
            }
        }
        d.deserialize_str(Name)
    }
}

#[cfg(feature = "serde")]
const NAMES: [&str; 6] = [
    EventType::PageView.as_str(),
    EventType::PageLeave.as_str(),
    EventType::Click.as_str(),
    EventType::Custom.as_str(),
    EventType::Identify.as_str(),
    EventType::VisitEnded.as_str(),
];

/// Most events in one batch.
pub const MAX_EVENTS_PER_BATCH: usize = 500;
/// Largest request body the collector takes by default (its
/// `--max-body-bytes`); the SDK's batches stay far below, at 60 KiB, the
/// budget `sendBeacon` and keepalive `fetch` share per page.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A site id: letters, digits, `_`, `.` and `-`.
pub const MAX_SITE_CHARS: usize = 64;
/// A custom event's `name`.
pub const MAX_NAME_CHARS: usize = 200;
/// `event_id`, `session_id`, `visitor_id`, `previous_session_id`.
pub const MAX_ID_CHARS: usize = 64;
/// `user_id`, as given to `identify`.
pub const MAX_USER_ID_CHARS: usize = 256;
/// `storage`: `local`, `cookie` or `memory`.
pub const MAX_STORAGE_CHARS: usize = 16;
/// `url`.
pub const MAX_URL_CHARS: usize = 2048;
/// `referrer`.
pub const MAX_REFERRER_CHARS: usize = 2048;
/// `title`.
pub const MAX_TITLE_CHARS: usize = 1024;
/// `props`, as compact JSON.
pub const MAX_PROPS_BYTES: usize = 16 * 1024;
/// `context`, as compact JSON.
pub const MAX_CONTEXT_BYTES: usize = 16 * 1024;
/// The Core Web Vitals a `page_leave` may carry in its `props`, each
/// optional, measured by the browser for the page load: `lcp_ms` (Largest
/// Contentful Paint), `inp_ms` (Interaction to Next Paint), `ttfb_ms` (Time
/// to First Byte), in milliseconds from 0 to [`MAX_VITAL_MS`], and `cls`
/// (Cumulative Layout Shift, unitless, from 0 to [`MAX_CLS`]). The collector
/// rejects a page leave whose vital is not a number in its range.
pub const VITALS_MS: [&str; 3] = ["lcp_ms", "inp_ms", "ttfb_ms"];
/// The Cumulative Layout Shift's key in a `page_leave`'s `props`.
pub const VITAL_CLS: &str = "cls";
/// Largest time vital: an hour.
pub const MAX_VITAL_MS: u32 = 3_600_000;
/// Largest Cumulative Layout Shift (a page that shifts its whole viewport
/// every frame for a while reaches tens; real pages stay below 1).
pub const MAX_CLS: u32 = 100;

/// Largest `ts`: JavaScript's `Number.MAX_SAFE_INTEGER`. No browser sends a
/// larger integer time, and it fits SQLite's signed 64 bits.
pub const MAX_TS: u64 = (1 << 53) - 1;

/// `text` cut to at most `max_chars` characters (Unicode scalar values, as
/// the collector counts them), at a character boundary.
pub fn cut_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        // `get` rather than indexing: the same slice, without a panic path.
        Some((end, _)) => text.get(..end).unwrap_or(text),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_a_distinct_name_that_reads_back() {
        for (i, t) in EventType::ALL.into_iter().enumerate() {
            assert_eq!(EventType::from_name(t.as_str()), Some(t));
            for other in &EventType::ALL[i + 1..] {
                assert_ne!(t.as_str(), other.as_str());
            }
        }
        assert_eq!(EventType::from_name("pageview"), None);
    }

    #[test]
    fn cutting_counts_characters_not_bytes() {
        assert_eq!(cut_chars("héllo", 2), "hé");
        assert_eq!(cut_chars("héllo", 5), "héllo");
        assert_eq!(cut_chars("héllo", 50), "héllo");
        assert_eq!(cut_chars("😀😀😀", 2), "😀😀");
        assert_eq!(cut_chars("abc", 0), "");
    }
}
