//! Events and batches exactly as they travel to the collector (wire format
//! v1; its types and limits are the `waymark-wire` crate's).

use crate::prelude::*;

use crate::value::Value;
use serde::Serialize;

pub use waymark_wire::EventType;

/// Where an event happened, as read by the shell at that moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    pub url: String,
    pub title: Option<String>,
    pub referrer: Option<String>,
}

/// One event of the wire format.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Creation time on the device clock, epoch ms.
    pub ts: u64,
    pub session_id: String,
    pub visitor_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// 1 for the visitor's first session, 2 for the next, …
    pub session_index: u32,
    /// Position of the event in its session, from 1.
    pub seq: u32,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// On a session's first event: the visitor's session before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_session_id: Option<String>,
    /// Where the session was kept: `local`, `cookie` or `memory`.
    pub storage: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub props: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

/// What one request to `POST /v1/batch` carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Batch {
    /// Wire format version.
    pub v: u32,
    pub site: String,
    /// Device clock when the batch left, epoch ms: lets the collector correct skew.
    pub sent_at: u64,
    pub events: Vec<Event>,
}
