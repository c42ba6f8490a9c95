//! The answers, as the read API serializes them: every metric of a set of
//! visits is one [`Metrics`].

use serde::{Deserialize, Serialize};

use super::query::Dimension;
use crate::session::Session;
use crate::store::Interval;

/// What a store counts over a set of visits; [`Metrics::from`] turns it
/// into the answer's rates and means.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    pub visits: u64,
    pub visitors: u64,
    pub page_views: u64,
    /// Visits with at most one page view.
    pub bounces: u64,
    /// The mean of their `duration_ms` (0 without visits).
    pub avg_duration_ms: f64,
}

/// The metrics of a set of visits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Sessions.
    pub visits: u64,
    /// Distinct visitors among them.
    pub visitors: u64,
    pub page_views: u64,
    /// Share of visits with at most one page view, 0–1.
    pub bounce_rate: f64,
    /// Mean duration, rounded to the millisecond.
    pub avg_duration_ms: u64,
}

impl From<Counts> for Metrics {
    fn from(c: Counts) -> Metrics {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // A mean of u64s.
        let avg_duration_ms = c.avg_duration_ms.round() as u64;
        Metrics {
            visits: c.visits,
            visitors: c.visitors,
            page_views: c.page_views,
            bounce_rate: ratio(c.bounces, c.visits),
            avg_duration_ms,
        }
    }
}

/// `part / whole`, 0 when `whole` is 0.
pub fn ratio(part: u64, whole: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)] // Counts far below 2^52.
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// One row of a breakdown: a key and the metrics of the visits with it.
/// For `page`, `page_views` counts the views of that page only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakdownRow {
    pub key: String,
    #[serde(flatten)]
    pub metrics: Metrics,
    /// `event_name` only: the events of that name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    /// `event_name` only: the visits with the event ÷ all the visits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversion_rate: Option<f64>,
}

/// The answer of `GET /v1/breakdown`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakdown {
    pub site: Option<String>,
    pub from: u64,
    pub to: u64,
    pub dimension: Dimension,
    /// Largest first (visits, then key bytewise); visits without a value
    /// are in no row.
    pub rows: Vec<BreakdownRow>,
}

/// The metrics of the visits started in one bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeseriesBucket {
    /// Start of the bucket (epoch ms, UTC hour or day).
    pub start: u64,
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// The answer of `GET /v1/timeseries`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeseries {
    pub site: Option<String>,
    pub from: u64,
    pub to: u64,
    pub interval: Interval,
    /// Every bucket from the one holding `from` to the one holding `to - 1`,
    /// zeros included.
    pub buckets: Vec<TimeseriesBucket>,
}

impl Timeseries {
    /// The answer from the buckets a store counted (any order, empty ones
    /// left out): every bucket of the range, zeros included.
    pub fn fill(
        site: Option<String>,
        from: u64,
        to: u64,
        interval: Interval,
        counted: &[(u64, Counts)],
    ) -> Timeseries {
        let width = interval.millis();
        let first = from / width * width;
        let buckets = (0..)
            .map(|i| first + i * width)
            .take_while(|start| *start < to)
            .map(|start| TimeseriesBucket {
                start,
                metrics: counted
                    .iter()
                    .find(|(s, _)| *s == start)
                    .map(|(_, c)| Metrics::from(*c))
                    .unwrap_or_default(),
            })
            .collect();
        Timeseries {
            site,
            from,
            to,
            interval,
            buckets,
        }
    }
}

/// `/v1/stats`' `previous`: the metrics of the range of equal length just
/// before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousPeriod {
    pub from: u64,
    pub to: u64,
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// A page and the visitors on it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageVisitors {
    /// The page's path.
    pub key: String,
    pub visitors: u64,
}

/// The answer of `GET /v1/realtime`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Realtime {
    pub site: Option<String>,
    /// The window's start: the clock's now less 5 minutes.
    pub since: u64,
    /// Distinct visitors with activity since then.
    pub visitors: u64,
    /// Their current pages (each session's last page view), by visitors,
    /// then key.
    pub pages: Vec<PageVisitors>,
}

/// How many visits reached one step of a funnel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelStepCount {
    /// 1 for the first step.
    pub step: usize,
    /// `page:/path` or `event:name`.
    pub key: String,
    pub visits: u64,
    pub visitors: u64,
    /// `visits` ÷ the first step's visits.
    pub conversion_rate: f64,
}

/// The answer of `GET /v1/funnel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Funnel {
    pub site: Option<String>,
    pub from: u64,
    pub to: u64,
    pub steps: Vec<FunnelStepCount>,
}

/// A person's totals over their sessions, as a store counts them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProfileTotals {
    /// The earliest session start.
    pub first_seen: u64,
    /// The latest activity.
    pub last_seen: u64,
    pub visits: u64,
    pub page_views: u64,
    /// Events other than `visit_ended`.
    pub events: u64,
    /// The sessions' durations added up.
    pub duration_ms: u64,
    /// The other side of the link: a visitor's user ids, a user's visitor
    /// ids; sorted.
    pub linked: Vec<String>,
}

/// The answer of `GET /v1/visitors/{id}` and `GET /v1/users/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visitor_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub site: Option<String>,
    pub first_seen: u64,
    pub last_seen: u64,
    pub visits: u64,
    pub page_views: u64,
    pub events: u64,
    pub duration_ms: u64,
    /// A visitor's profile: the user ids its sessions carry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_ids: Option<Vec<String>>,
    /// A user's profile: the visitors whose sessions carry it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visitor_ids: Option<Vec<String>>,
    /// One page of the sessions, newest first.
    pub sessions: Vec<Session>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}
