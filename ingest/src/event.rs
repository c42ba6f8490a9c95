//! The events the collector keeps.

use serde::{Deserialize, Serialize};

/// What happened: the wire crate's type, whose names are used on the wire
/// and in the store alike.
pub use waymark_wire::EventType;

/// One validated event as the store keeps it: the wire event plus the batch's
/// `site`, the collector's `received_at`, the time corrected for the device's
/// clock skew and what the collector learnt from the request ([`Enrichment`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Lowercase hyphenated UUID; the deduplication key.
    pub event_id: String,
    pub site: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub name: Option<String>,
    /// When it happened (epoch ms): the device's time, corrected by the
    /// batch's clock skew when that is off by more than a minute (see
    /// [`MAX_UNCORRECTED_SKEW_MS`](crate::MAX_UNCORRECTED_SKEW_MS)).
    pub ts: u64,
    /// When it happened by the device's own clock, as sent.
    pub client_ts: u64,
    /// When the collector received the batch, by its own clock (epoch ms).
    pub received_at: u64,
    pub session_id: String,
    pub visitor_id: String,
    pub user_id: Option<String>,
    /// The visitor's session number as the SDK counts it: 1, 2, 3, …
    pub session_index: Option<u32>,
    /// Position of the event in its session, from 1 (orders same-ms events).
    pub seq: Option<u32>,
    /// On a session's first event: the visitor's previous session.
    pub previous_session_id: Option<String>,
    /// Where the SDK kept the session: `local`, `cookie` or `memory`.
    pub storage: Option<String>,
    pub url: String,
    pub title: Option<String>,
    pub referrer: Option<String>,
    /// The event's `props` object as JSON text, as the SDK sent it.
    pub props: Option<String>,
    /// The event's `context` object as JSON text, as the SDK sent it.
    pub context: Option<String>,
    /// Geo and device, derived from the request; the IP itself is not kept.
    #[serde(flatten)]
    pub enrichment: Enrichment,
}

impl StoredEvent {
    /// Anything but `visit_ended`, which marks the end of a session rather
    /// than something the visitor did.
    pub fn is_activity(&self) -> bool {
        self.event_type != EventType::VisitEnded
    }
}

/// What the collector adds to an event from the request that carried it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Enrichment {
    /// ISO 3166-1 alpha-2 code, from the client IP.
    pub country: Option<String>,
    /// First-level subdivision (state, province), from the client IP.
    pub region: Option<String>,
    pub city: Option<String>,
    /// Browser name, from the user agent, e.g. `Chrome`.
    pub browser: Option<String>,
    /// Operating system, from the user agent, e.g. `Windows 10`.
    pub os: Option<String>,
    /// `desktop`, `mobile`, `tablet` or `bot`.
    pub device_type: Option<String>,
    /// A known crawler's user agent, or a browser driven by automation
    /// (`navigator.webdriver`).
    pub is_bot: bool,
}
