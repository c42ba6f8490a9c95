//! Events and batches exactly as they travel to the collector (wire format v1).

use crate::value::Value;
use serde::Serialize;

/// The kinds of event on the wire and in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    PageView,
    PageLeave,
    Click,
    Custom,
    Identify,
    VisitEnded,
}

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
