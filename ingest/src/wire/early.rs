//! A page left before the SDK started on it, as the loader (`sdk.js`)
//! beacons it: the batch's `early` member.
//!
//! ```json
//! {"v": 1, "site": "demo", "sent_at": 1700000000900, "events": [],
//!  "early": {"key": "<uuid>", "utc_offset_min": 60, "config": {…},
//!            "record": [[1700000000000, "https://…/pricing", "https://…/", "Pricing"],
//!                       [["track", "cta_seen", {"plan": "pro"}]], [1700000000200]]}}
//! ```
//!
//! `record` is the snippet's stub record and `config` the script tag's
//! settings as the loader reads them. The collector builds the page's
//! events with the SDK's own code ([`waymark_sdk_core::keyed_replay`]), with
//! ids drawn from `key`: when the visitor comes back, the SDK replays the
//! record saved under the same key into the same events, and the second
//! copy is a duplicate. The events are then checked like any others.

use serde::Deserialize;
use serde_json::Value;
use waymark_sdk_core::{keyed_replay, Config, EarlyPage, PageConfig};

use super::DecodeError;

/// The `early` member of a batch.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EarlyBeacon {
    /// The record's key, a UUID.
    key: String,
    /// The page's offset from UTC, in minutes (east positive), for the
    /// session rules' midnight.
    #[serde(default)]
    utc_offset_min: i32,
    /// The script tag's settings (`sessionTimeoutMinutes`, `splitOnCampaign`, …).
    #[serde(default)]
    config: Value,
    /// The stub's record.
    record: Value,
}

/// Largest offset from UTC there is (UTC+14), in minutes.
const MAX_UTC_OFFSET_MIN: i32 = 14 * 60;

impl EarlyBeacon {
    /// The page's events as JSON values, for the batch's `events`, and the
    /// calls that could not be replayed (the batch's `dropped`).
    pub fn events(self, site: &str) -> Result<(Vec<Value>, u64), DecodeError> {
        let invalid = |what: &str| DecodeError::InvalidBatch(format!("early.{what}"));
        if self.utc_offset_min.abs() > MAX_UTC_OFFSET_MIN {
            return Err(invalid("utc_offset_min: more than 14 hours from UTC"));
        }
        let record = serde_json::from_value(self.record)
            .ok()
            .and_then(EarlyPage::from_value)
            .ok_or_else(|| {
                invalid("record: not a stub record ([[time, url, referrer, title], calls, times])")
            })?;
        let given = match self.config {
            Value::Null => Some(PageConfig::default()),
            config => serde_json::from_value(config)
                .ok()
                .and_then(|c| PageConfig::from_value(&c)),
        }
        .ok_or_else(|| invalid("config: not the script tag's settings"))?;
        // The site is the batch's; the endpoint is where this came.
        let (config, _) = PageConfig::check(Some(given), "", site);
        let config = Config {
            site: site.to_owned(),
            ..config
        };
        // No replay without a key of a UUID's shape: the core's check, as
        // the SDK applies it to the saved record's key.
        let replay = keyed_replay(&config, record.keyed(&self.key), self.utc_offset_min)
            .ok_or_else(|| {
                invalid("key: not a UUID (hyphenated, as crypto.randomUUID() writes it)")
            })?;
        let events = replay
            .events
            .iter()
            .map(|event| {
                let json = event.to_json(&mut |n, out| out.push_str(&n.to_string()));
                serde_json::from_str(&json).unwrap_or(Value::Null)
            })
            .collect();
        Ok((events, replay.dropped))
    }
}
