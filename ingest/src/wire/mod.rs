//! The batch the SDK sends (wire format version 1): decoding and validation.
//!
//! Pure: bytes and the receive time in, validated [`StoredEvent`]s and
//! per-event [`Rejection`]s out. The batch envelope must be right for anything
//! to be accepted; each event is then checked on its own, so one bad event
//! never sinks the rest. Unknown fields are ignored everywhere. Before an
//! event is checked, its URLs lose their sensitive query parameters, as the
//! SDK's do (`hygiene`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::event::{Enrichment, EventType, StoredEvent};
use crate::session::is_collector_end_id;

use waymark_wire::{
    MAX_CLS, MAX_CONTEXT_BYTES, MAX_ID_CHARS, MAX_NAME_CHARS, MAX_PROPS_BYTES, MAX_REFERRER_CHARS,
    MAX_SITE_CHARS, MAX_STORAGE_CHARS, MAX_TITLE_CHARS, MAX_TS, MAX_URL_CHARS, MAX_USER_ID_CHARS,
    MAX_VITAL_MS, VITALS_MS, VITAL_CLS,
};

mod early;
mod hygiene;
#[cfg(test)]
mod tests;

/// The only wire format version there is so far: [`waymark_wire::VERSION`].
pub const WIRE_VERSION: u64 = waymark_wire::VERSION as u64;
/// The most events one batch may hold: [`waymark_wire::MAX_EVENTS_PER_BATCH`].
pub const MAX_EVENTS_PER_BATCH: usize = waymark_wire::MAX_EVENTS_PER_BATCH;

/// Why a batch was refused as a whole; nothing of it is to be stored. (The
/// HTTP layer answers each with a `400`.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body is not JSON at all.
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    /// The body is JSON but not a version-1 batch.
    #[error("the body is not a valid batch: {0}")]
    InvalidBatch(String),
    /// The batch has no events.
    #[error("the batch has no events")]
    EmptyBatch,
    /// Every event in the batch failed validation; nothing is to be stored.
    #[error("every event in the batch was rejected")]
    AllEventsRejected(Vec<Rejection>),
}

/// Why one event of a batch was not stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The event's position in the batch's `events` array.
    pub index: usize,
    /// What is wrong with it, e.g. `event_id: not a UUID`.
    pub reason: String,
}

/// A batch whose envelope is valid, split into the events to store and the
/// events rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBatch {
    pub site: String,
    /// When the SDK sent the batch, by the browser's clock (epoch ms).
    pub sent_at: Option<u64>,
    /// Events the SDK dropped for lack of space before sending, as the
    /// batch reports them (see [`Envelope::dropped`]).
    pub dropped: u64,
    pub events: Vec<StoredEvent>,
    pub rejected: Vec<Rejection>,
    /// URLs of the valid events from which sensitive query parameters were
    /// removed (each `url`, `referrer`, click `href` and `context.campaign`
    /// counts once), for `waymark_urls_redacted_total`.
    pub urls_redacted: u64,
}

/// A batch whose envelope (`v`, `site`, `sent_at`, `dropped`, the number of
/// events) is valid; its events are not checked yet. The collector checks the
/// site and the origin between [`Envelope::parse`] and [`Envelope::validate`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Envelope {
    #[serde(default)]
    v: Option<u64>,
    pub site: String,
    /// When the SDK sent the batch, by the browser's clock (epoch ms).
    #[serde(default)]
    pub sent_at: Option<u64>,
    /// Events the SDK had to drop for lack of queue space since its last
    /// answered batch, reported with this one (`"dropped"`; 0 when absent).
    /// Anything but a non-negative integer is ignored (read as 0) rather
    /// than refused: it is a report about other events, and a garbled one
    /// must not cost the events this batch does carry.
    #[serde(default, deserialize_with = "count_or_zero")]
    pub dropped: u64,
    events: Vec<Value>,
    /// A page left before the SDK started on it, sent by the loader: its
    /// events are built here and follow `events` ([`early`]).
    #[serde(default)]
    early: Option<early::EarlyBeacon>,
}

/// A non-negative integer, or 0 for any other JSON value.
fn count_or_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Value::deserialize(d)?.as_u64().unwrap_or(0))
}

/// Event times are corrected by the batch's clock skew (`received_at -
/// sent_at`) only when it is larger than this, one minute: smaller gaps are
/// mostly network and queueing delay, and correcting those would only add
/// noise (and could reorder events across batches of one session).
pub const MAX_UNCORRECTED_SKEW_MS: u64 = 60_000;

/// How far an event's time, after the clock-skew correction, may be from
/// the collector's clock; outside, the event is rejected with reason `ts`.
/// (ClickHouse partitions by month: without bounds one batch could make a
/// part for each of hundreds of months.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBounds {
    /// The oldest accepted event: this many ms before `received_at`.
    pub max_age_ms: u64,
    /// The furthest accepted in the future: this many ms after `received_at`.
    pub max_ahead_ms: u64,
}

/// How far in the future an event may be: one hour.
pub const MAX_EVENT_AHEAD_MS: u64 = 3_600_000;

/// Decodes and validates a batch body, stamping every event with
/// `received_at`: [`Envelope::parse`] then [`Envelope::validate`].
///
/// Fails for a body that is not JSON ([`DecodeError::InvalidJson`]), a batch
/// of the wrong shape ([`DecodeError::InvalidBatch`]), no events
/// ([`DecodeError::EmptyBatch`]) or no valid event
/// ([`DecodeError::AllEventsRejected`]). Otherwise the result holds
/// at least one event.
pub fn decode_batch(body: &[u8], received_at: u64) -> Result<DecodedBatch, DecodeError> {
    Envelope::parse(body)?.validate(received_at)
}

impl Envelope {
    /// Checks everything but the events themselves.
    pub fn parse(body: &[u8]) -> Result<Envelope, DecodeError> {
        let mut batch: Envelope = serde_json::from_slice(body).map_err(|err| {
            use serde_json::error::Category;
            match err.classify() {
                Category::Data => DecodeError::InvalidBatch(err.to_string()),
                Category::Syntax | Category::Eof | Category::Io => {
                    DecodeError::InvalidJson(err.to_string())
                }
            }
        })?;

        let version = batch.v.unwrap_or(WIRE_VERSION);
        if version != WIRE_VERSION {
            return Err(DecodeError::InvalidBatch(format!(
                "v: unsupported version {version}; this collector speaks version {WIRE_VERSION}"
            )));
        }
        validate_site(&batch.site).map_err(DecodeError::InvalidBatch)?;
        if let Some(early) = batch.early.take() {
            let (events, dropped) = early.events(&batch.site)?;
            batch.events.extend(events);
            batch.dropped = batch.dropped.saturating_add(dropped);
        }
        if batch.events.is_empty() {
            return Err(DecodeError::EmptyBatch);
        }
        if batch.events.len() > MAX_EVENTS_PER_BATCH {
            return Err(DecodeError::InvalidBatch(format!(
                "events: {} events, at most {MAX_EVENTS_PER_BATCH} per batch",
                batch.events.len()
            )));
        }
        Ok(batch)
    }

    /// The device clock's error: how far `received_at` is ahead of `sent_at`
    /// (negative when the device runs ahead), when it is large enough to
    /// correct.
    pub fn skew_ms(&self, received_at: u64) -> Option<i64> {
        let sent_at = i64::try_from(self.sent_at?).ok()?;
        let received_at = i64::try_from(received_at).ok()?;
        let skew = received_at.checked_sub(sent_at)?;
        (skew.unsigned_abs() > MAX_UNCORRECTED_SKEW_MS).then_some(skew)
    }

    /// Validates each event on its own: the valid ones, with their times
    /// corrected by the clock skew and the sensitive query parameters
    /// removed from their URLs, and a [`Rejection`] for each other. Any
    /// time from 1 to 2^53 - 1 is accepted (see
    /// [`validate_within`](Self::validate_within)).
    pub fn validate(self, received_at: u64) -> Result<DecodedBatch, DecodeError> {
        self.validate_bounded(received_at, None)
    }

    /// [`validate`](Self::validate), rejecting too with reason `ts` each
    /// event whose corrected time is outside `bounds` around `received_at`:
    /// what the collector does.
    pub fn validate_within(
        self,
        received_at: u64,
        bounds: TimeBounds,
    ) -> Result<DecodedBatch, DecodeError> {
        self.validate_bounded(received_at, Some(bounds))
    }

    fn validate_bounded(
        self,
        received_at: u64,
        bounds: Option<TimeBounds>,
    ) -> Result<DecodedBatch, DecodeError> {
        let skew = self.skew_ms(received_at);
        let mut events = Vec::with_capacity(self.events.len());
        let mut rejected = Vec::new();
        let mut urls_redacted = 0;
        for (index, mut value) in self.events.into_iter().enumerate() {
            let cleaned = match &mut value {
                Value::Object(obj) => hygiene::clean_event(obj),
                _ => 0,
            };
            match decode_event(&value, &self.site, received_at, skew, bounds) {
                Ok(event) => {
                    urls_redacted += cleaned;
                    events.push(event);
                }
                Err(reason) => rejected.push(Rejection { index, reason }),
            }
        }
        if events.is_empty() {
            return Err(DecodeError::AllEventsRejected(rejected));
        }
        Ok(DecodedBatch {
            site: self.site,
            sent_at: self.sent_at,
            dropped: self.dropped,
            events,
            rejected,
            urls_redacted,
        })
    }
}

/// `ts` moved by `skew`, kept within `1..=MAX_TS`.
fn corrected(ts: u64, skew: Option<i64>) -> u64 {
    let Some(skew) = skew else { return ts };
    let moved = i128::from(ts) + i128::from(skew);
    u64::try_from(moved.clamp(1, i128::from(MAX_TS))).unwrap_or(ts)
}

fn validate_site(site: &str) -> Result<(), String> {
    if site.is_empty() {
        return Err("site: must not be empty".to_owned());
    }
    if site.chars().count() > MAX_SITE_CHARS {
        return Err(format!("site: longer than {MAX_SITE_CHARS} characters"));
    }
    if !site
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err("site: only letters, digits, `_`, `.` and `-` are allowed".to_owned());
    }
    Ok(())
}

/// Validates one event; the error is the rejection reason.
fn decode_event(
    value: &Value,
    site: &str,
    received_at: u64,
    skew: Option<i64>,
    bounds: Option<TimeBounds>,
) -> Result<StoredEvent, String> {
    let Value::Object(obj) = value else {
        return Err("not a JSON object".to_owned());
    };

    let event_id = required_str(obj, "event_id", usize::MAX)?;
    let event_id = Uuid::parse_str(&event_id)
        .map_err(|_| "event_id: not a UUID".to_owned())?
        .hyphenated()
        .to_string();

    let type_str = required_str(obj, "type", usize::MAX)?;
    let event_type = EventType::from_name(&type_str).ok_or_else(|| {
        let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        format!("type: unknown type; expected one of {}", known.join(", "))
    })?;

    let name = optional_str(obj, "name", MAX_NAME_CHARS)?;
    if event_type == EventType::Custom && name.as_deref().is_none_or(str::is_empty) {
        return Err("name: required for custom events".to_owned());
    }

    let ts = match obj.get("ts") {
        None | Some(Value::Null) => return Err("ts: missing".to_owned()),
        Some(v) => match v.as_u64() {
            Some(ts) if ts > 0 && ts <= MAX_TS => ts,
            _ => return Err("ts: must be a positive integer (epoch milliseconds)".to_owned()),
        },
    };

    if let Some(bounds) = bounds {
        let at = corrected(ts, skew);
        if at < received_at.saturating_sub(bounds.max_age_ms) {
            return Err(format!(
                "ts: older than {} days (after clock-skew correction)",
                bounds.max_age_ms / 86_400_000
            ));
        }
        if at > received_at.saturating_add(bounds.max_ahead_ms) {
            return Err(format!(
                "ts: more than {} minutes in the future (after clock-skew correction)",
                bounds.max_ahead_ms / 60_000
            ));
        }
    }

    if event_type == EventType::PageLeave {
        if let Some(Value::Object(props)) = obj.get("props") {
            check_vitals(props)?;
        }
    }

    let event = StoredEvent {
        event_id,
        site: site.to_owned(),
        event_type,
        name,
        ts: corrected(ts, skew),
        client_ts: ts,
        received_at,
        session_id: required_str(obj, "session_id", MAX_ID_CHARS)?,
        visitor_id: required_str(obj, "visitor_id", MAX_ID_CHARS)?,
        user_id: optional_str(obj, "user_id", MAX_USER_ID_CHARS)?,
        session_index: optional_count(obj, "session_index")?,
        seq: optional_count(obj, "seq")?,
        previous_session_id: optional_str(obj, "previous_session_id", MAX_ID_CHARS)?,
        storage: optional_str(obj, "storage", MAX_STORAGE_CHARS)?,
        url: required_str(obj, "url", MAX_URL_CHARS)?,
        title: optional_str(obj, "title", MAX_TITLE_CHARS)?,
        referrer: optional_str(obj, "referrer", MAX_REFERRER_CHARS)?,
        props: optional_object(obj, "props", MAX_PROPS_BYTES)?,
        context: optional_object(obj, "context", MAX_CONTEXT_BYTES)?,
        enrichment: Enrichment::default(),
    };
    if is_collector_end_id(&event.site, &event.session_id, &event.event_id) {
        // The id of the `visit_ended` the sweeper writes for this session:
        // stored under it, the sweeper could never close the session.
        return Err("event_id: reserved for the collector's own events".to_owned());
    }
    Ok(event)
}

/// A page leave's Core Web Vitals ([`VITALS_MS`], [`VITAL_CLS`]), where
/// present: numbers in their range.
fn check_vitals(props: &Map<String, Value>) -> Result<(), String> {
    let within = |key: &str, max: u32| match props.get(key) {
        None => true,
        Some(v) => v
            .as_f64()
            .is_some_and(|n| (0.0..=f64::from(max)).contains(&n)),
    };
    for key in VITALS_MS {
        if !within(key, MAX_VITAL_MS) {
            return Err(format!(
                "props: {key} must be a number of milliseconds from 0 to {MAX_VITAL_MS}"
            ));
        }
    }
    if !within(VITAL_CLS, MAX_CLS) {
        return Err(format!(
            "props: {VITAL_CLS} must be a number from 0 to {MAX_CLS}"
        ));
    }
    Ok(())
}

/// A positive counter that may be absent or `null`.
fn optional_count(obj: &Map<String, Value>, key: &str) -> Result<Option<u32>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => Err(format!("{key}: must be a positive integer")),
        },
    }
}

/// A string field that must be present and non-empty.
fn required_str(obj: &Map<String, Value>, key: &str, max_chars: usize) -> Result<String, String> {
    match optional_str(obj, key, max_chars)? {
        None => Err(format!("{key}: missing")),
        Some(s) if s.is_empty() => Err(format!("{key}: must not be empty")),
        Some(s) => Ok(s),
    }
}

/// A string field that may be absent or `null`.
fn optional_str(
    obj: &Map<String, Value>,
    key: &str,
    max_chars: usize,
) -> Result<Option<String>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() > max_chars => {
            Err(format!("{key}: longer than {max_chars} characters"))
        }
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{key}: must be a string")),
    }
}

/// An object field kept as JSON text, at most `max_bytes` long; may be
/// absent or `null`.
fn optional_object(
    obj: &Map<String, Value>,
    key: &str,
    max_bytes: usize,
) -> Result<Option<String>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value @ Value::Object(_)) => {
            let text = value.to_string();
            if text.len() > max_bytes {
                Err(format!("{key}: larger than {max_bytes} bytes"))
            } else {
                Ok(Some(text))
            }
        }
        Some(_) => Err(format!("{key}: must be a JSON object")),
    }
}
