//! The questions: which sessions ([`ReadQuery`]: site, range, bots,
//! [`Filter`]s) and what to answer about them.

use std::fmt;

use serde::{Serialize, Serializer};

use super::keys::page_path;
use crate::store::Interval;

/// What a breakdown groups visits by, and what a filter looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// The path of any page view of the visit.
    Page,
    /// The path of the landing page.
    EntryPage,
    /// The path of the last page view.
    ExitPage,
    /// The session's source: `utm_source`, else the referrer's domain, else
    /// `direct`.
    Source,
    /// The landing page view's referrer's domain, when another site's.
    Referrer,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    UtmTerm,
    UtmContent,
    Country,
    Region,
    City,
    Browser,
    Os,
    DeviceType,
    /// The name of any `custom` event of the visit: a goal.
    EventName,
}

impl Dimension {
    /// The column of a store's sessions table (SQLite's `sessions`,
    /// ClickHouse's merged `sessions_agg`) that holds this dimension's one
    /// value per visit; `None` for `page` and `event_name`, which are the
    /// visit's events'.
    pub fn session_column(self) -> Option<&'static str> {
        Some(match self {
            Dimension::Page | Dimension::EventName => return None,
            Dimension::EntryPage => "entry_path",
            Dimension::ExitPage => "exit_path",
            Dimension::Source => "source",
            Dimension::Referrer => "referrer_domain",
            Dimension::UtmSource => "utm_source",
            Dimension::UtmMedium => "utm_medium",
            Dimension::UtmCampaign => "utm_campaign",
            Dimension::UtmTerm => "utm_term",
            Dimension::UtmContent => "utm_content",
            Dimension::Country => "country",
            Dimension::Region => "region",
            Dimension::City => "city",
            Dimension::Browser => "browser",
            Dimension::Os => "os",
            Dimension::DeviceType => "device_type",
        })
    }

    /// Every dimension, in the order `PRODUCT.md` lists them.
    pub const ALL: [Dimension; 17] = [
        Dimension::Page,
        Dimension::EntryPage,
        Dimension::ExitPage,
        Dimension::Source,
        Dimension::Referrer,
        Dimension::UtmSource,
        Dimension::UtmMedium,
        Dimension::UtmCampaign,
        Dimension::UtmTerm,
        Dimension::UtmContent,
        Dimension::Country,
        Dimension::Region,
        Dimension::City,
        Dimension::Browser,
        Dimension::Os,
        Dimension::DeviceType,
        Dimension::EventName,
    ];

    /// The public name, as in `dimension=` and `filter=`.
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Page => "page",
            Dimension::EntryPage => "entry_page",
            Dimension::ExitPage => "exit_page",
            Dimension::Source => "source",
            Dimension::Referrer => "referrer",
            Dimension::UtmSource => "utm_source",
            Dimension::UtmMedium => "utm_medium",
            Dimension::UtmCampaign => "utm_campaign",
            Dimension::UtmTerm => "utm_term",
            Dimension::UtmContent => "utm_content",
            Dimension::Country => "country",
            Dimension::Region => "region",
            Dimension::City => "city",
            Dimension::Browser => "browser",
            Dimension::Os => "os",
            Dimension::DeviceType => "device_type",
            Dimension::EventName => "event_name",
        }
    }

    /// The dimension named `name`, if there is one.
    pub fn parse(name: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Whether a visit has many values (its page views, its events) rather
    /// than one.
    pub fn is_per_event(self) -> bool {
        matches!(self, Dimension::Page | Dimension::EventName)
    }

    /// Whether its values are page keys (paths).
    pub fn is_page(self) -> bool {
        matches!(
            self,
            Dimension::Page | Dimension::EntryPage | Dimension::ExitPage
        )
    }

    /// The names of every dimension, for error messages.
    pub fn names() -> String {
        Dimension::ALL.map(Dimension::name).join(", ")
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Dimension {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// `dimension:value`: the visits whose dimension has that value (for
/// `page` and `event_name`: any of its page views or events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub dimension: Dimension,
    /// A page's path for the page dimensions (a URL given is cut to it).
    pub value: String,
}

impl Filter {
    /// Reads `dimension:value`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Filter, String> {
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| format!("filter must be dimension:value, got {text:?}"))?;
        let dimension = Dimension::parse(name).ok_or_else(|| {
            format!(
                "filter {text:?}: unknown dimension {name:?}; one of {}",
                Dimension::names()
            )
        })?;
        if value.is_empty() {
            return Err(format!("filter {text:?} needs a value after the colon"));
        }
        let value = if dimension.is_page() {
            page_path(value)
        } else {
            value.to_owned()
        };
        Ok(Filter { dimension, value })
    }
}

/// Which sessions a question is about: those of `site` (every site when
/// `None`) started in `[from, to)` (epoch ms), bots only with
/// `include_bots`, for which every filter holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadQuery {
    pub site: Option<String>,
    pub from: u64,
    pub to: u64,
    pub include_bots: bool,
    pub filters: Vec<Filter>,
}

/// `GET /v1/breakdown`: the sessions' rows by `dimension`, the `limit`
/// largest (by visits, then key bytewise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakdownQuery {
    pub sessions: ReadQuery,
    pub dimension: Dimension,
    pub limit: usize,
}

/// `GET /v1/timeseries`: the metrics of the sessions started in each bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeseriesQuery {
    pub sessions: ReadQuery,
    pub interval: Interval,
}

/// `/v1/realtime` counts the visitors active in this window before now.
pub const REALTIME_WINDOW_MS: u64 = 5 * 60_000;

/// `GET /v1/realtime`: the sessions of `site` active since `since` (their
/// last activity, epoch ms), whenever they started, for which every filter
/// holds; the `limit` pages most of them are on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealtimeQuery {
    pub site: Option<String>,
    pub since: u64,
    pub include_bots: bool,
    pub filters: Vec<Filter>,
    pub limit: usize,
}

/// One step of a funnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunnelStep {
    /// A page view of this path.
    Page(String),
    /// A `custom` event of this name.
    Event(String),
}

impl FunnelStep {
    /// Reads `page:/path` (a URL is cut to its path) or `event:name`.
    pub fn parse(text: &str) -> Result<FunnelStep, String> {
        match text.split_once(':') {
            Some(("page", path)) if !path.is_empty() => Ok(FunnelStep::Page(page_path(path))),
            Some(("event", name)) if !name.is_empty() => Ok(FunnelStep::Event(name.to_owned())),
            _ => Err(format!(
                "step must be page:/path or event:name, got {text:?}"
            )),
        }
    }

    /// As the answer names it: `page:/path` or `event:name`.
    pub fn key(&self) -> String {
        match self {
            FunnelStep::Page(path) => format!("page:{path}"),
            FunnelStep::Event(name) => format!("event:{name}"),
        }
    }
}

/// A funnel has at least this many steps…
pub const MIN_FUNNEL_STEPS: usize = 2;
/// …and at most this many.
pub const MAX_FUNNEL_STEPS: usize = 8;

/// `GET /v1/funnel`: how many of the sessions reach each step, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelQuery {
    pub sessions: ReadQuery,
    /// 2 to 8 of them.
    pub steps: Vec<FunnelStep>,
}

/// Whose profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Person {
    /// The sessions with this `visitor_id`.
    Visitor(String),
    /// The sessions whose `user_id` (the latest their events carried) is
    /// this one.
    User(String),
}

/// `GET /v1/visitors/{id}`, `GET /v1/users/{id}`: a person's totals over
/// their sessions of `site` (every site when `None`) started in
/// `[from, to)` (all time when not given), bots included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileQuery {
    pub person: Person,
    pub site: Option<String>,
    pub from: Option<u64>,
    pub to: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dimension_parses_back_from_its_name() {
        for d in Dimension::ALL {
            assert_eq!(Dimension::parse(d.name()), Some(d));
        }
        assert_eq!(Dimension::parse("Page"), None);
        assert_eq!(Dimension::parse(""), None);
    }

    #[test]
    fn filters_read_dimension_colon_value() {
        assert_eq!(
            Filter::parse("utm_campaign:a:b").unwrap(),
            Filter {
                dimension: Dimension::UtmCampaign,
                value: "a:b".to_owned()
            }
        );
        assert_eq!(
            Filter::parse("exit_page:https://shop.example/a?b#c")
                .unwrap()
                .value,
            "/a"
        );
        assert!(Filter::parse("country")
            .unwrap_err()
            .contains("dimension:value"));
        assert!(Filter::parse("colour:red")
            .unwrap_err()
            .contains("unknown dimension"));
        assert!(Filter::parse("country:")
            .unwrap_err()
            .contains("needs a value"));
    }

    #[test]
    fn funnel_steps_are_pages_or_events() {
        assert_eq!(
            FunnelStep::parse("page:https://a.example/x?y").unwrap(),
            FunnelStep::Page("/x".to_owned())
        );
        assert_eq!(FunnelStep::parse("event:a:b").unwrap().key(), "event:a:b");
        for bad in ["page:", "event:", "url:/x", "signup", ""] {
            assert!(FunnelStep::parse(bad).is_err(), "{bad:?}");
        }
    }
}
