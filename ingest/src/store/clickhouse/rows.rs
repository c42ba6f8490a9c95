//! The rows the ClickHouse store writes and reads, and their conversions.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::event::{Enrichment, EventType, StoredEvent};
use crate::read::{page_path, Landing};
use crate::session::{end_reason, is_collector_end_id, source_of, EventKey, Session};
use crate::store::KeyCount;

/// One row of `events`: a [`StoredEvent`] and the keys the session
/// aggregation needs.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub(super) struct EventRow {
    event_id: String,
    site: String,
    event_type: String,
    name: Option<String>,
    ts: u64,
    client_ts: u64,
    received_at: u64,
    session_id: String,
    visitor_id: String,
    user_id: Option<String>,
    session_index: Option<u32>,
    seq: Option<u32>,
    previous_session_id: Option<String>,
    storage: Option<String>,
    url: String,
    title: Option<String>,
    referrer: Option<String>,
    props: Option<String>,
    context: Option<String>,
    country: Option<String>,
    region: Option<String>,
    city: Option<String>,
    browser: Option<String>,
    os: Option<String>,
    device_type: Option<String>,
    is_bot: bool,
    /// [`EventKey`]: the order sessions are merged by.
    event_key: String,
    /// For a `visit_ended`: `0` (the SDK's) or `1` (the collector's), then
    /// the event key; the least is the end a session keeps. Empty otherwise.
    pub(super) end_key: String,
    /// For a page view: the source it would give its session.
    source: String,
    /// For a `visit_ended`: its reason.
    end_reason: String,
    by_collector: bool,
    /// For a page view: its page's key ([`page_path`]). Empty otherwise.
    path: String,
    /// For a page view: what its session keeps of it if it is the landing
    /// one ([`Landing`]; empty for none). Empty otherwise.
    utm_source: String,
    utm_medium: String,
    utm_campaign: String,
    utm_term: String,
    utm_content: String,
    referrer_domain: String,
}

/// The columns of [`EventRow`], in order.
pub(super) const EVENT_COLUMNS: &str =
    "event_id, site, event_type, name, ts, client_ts, received_at, \
     session_id, visitor_id, user_id, session_index, seq, previous_session_id, storage, url, \
     title, referrer, props, context, country, region, city, browser, os, device_type, is_bot, \
     event_key, end_key, source, end_reason, by_collector, path, utm_source, utm_medium, \
     utm_campaign, utm_term, utm_content, referrer_domain";

/// The columns of [`Session`], in order.
pub(super) const SESSION_COLUMNS: &str =
    "session_id, site, visitor_id, user_id, session_index, started_at, \
     last_seen_at, ended_at, end_reason, duration_ms, landing_page, exit_page, source, country, \
     region, city, browser, os, device_type, event_count, page_views, is_bot";

impl From<&StoredEvent> for EventRow {
    fn from(e: &StoredEvent) -> Self {
        let key = EventKey::of(e).0;
        let is_end = e.event_type == EventType::VisitEnded;
        let by_collector = is_end && is_collector_end_id(&e.site, &e.session_id, &e.event_id);
        let en = &e.enrichment;
        let page_view = e.event_type == EventType::PageView;
        let landing = if page_view {
            Landing::of(&e.url, e.referrer.as_deref())
        } else {
            Landing::default()
        };
        let text = |value: Option<String>| value.unwrap_or_default();
        EventRow {
            event_id: e.event_id.clone(),
            site: e.site.clone(),
            event_type: e.event_type.as_str().to_owned(),
            name: e.name.clone(),
            ts: e.ts,
            client_ts: e.client_ts,
            received_at: e.received_at,
            session_id: e.session_id.clone(),
            visitor_id: e.visitor_id.clone(),
            user_id: e.user_id.clone(),
            session_index: e.session_index,
            seq: e.seq,
            previous_session_id: e.previous_session_id.clone(),
            storage: e.storage.clone(),
            url: e.url.clone(),
            title: e.title.clone(),
            referrer: e.referrer.clone(),
            props: e.props.clone(),
            context: e.context.clone(),
            country: en.country.clone(),
            region: en.region.clone(),
            city: en.city.clone(),
            browser: en.browser.clone(),
            os: en.os.clone(),
            device_type: en.device_type.clone(),
            is_bot: en.is_bot,
            end_key: if is_end {
                format!("{}{key}", u8::from(by_collector))
            } else {
                String::new()
            },
            event_key: key,
            source: if page_view {
                source_of(&e.url, e.referrer.as_deref())
            } else {
                String::new()
            },
            end_reason: if is_end { end_reason(e) } else { String::new() },
            by_collector,
            path: if page_view {
                page_path(&e.url)
            } else {
                String::new()
            },
            utm_source: text(landing.utm_source),
            utm_medium: text(landing.utm_medium),
            utm_campaign: text(landing.utm_campaign),
            utm_term: text(landing.utm_term),
            utm_content: text(landing.utm_content),
            referrer_domain: text(landing.referrer_domain),
        }
    }
}

impl From<EventRow> for StoredEvent {
    fn from(r: EventRow) -> Self {
        StoredEvent {
            event_id: r.event_id,
            site: r.site,
            // Only this collector writes the column, from `as_str`.
            event_type: EventType::from_name(&r.event_type).unwrap_or(EventType::Custom),
            name: r.name,
            ts: r.ts,
            client_ts: r.client_ts,
            received_at: r.received_at,
            session_id: r.session_id,
            visitor_id: r.visitor_id,
            user_id: r.user_id,
            session_index: r.session_index,
            seq: r.seq,
            previous_session_id: r.previous_session_id,
            storage: r.storage,
            url: r.url,
            title: r.title,
            referrer: r.referrer,
            props: r.props,
            context: r.context,
            enrichment: Enrichment {
                country: r.country,
                region: r.region,
                city: r.city,
                browser: r.browser,
                os: r.os,
                device_type: r.device_type,
                is_bot: r.is_bot,
            },
        }
    }
}

/// A row of the sessions query ([`sessions_sql`](super::schema::sessions_sql)): a [`Session`], by
/// position.
#[derive(Debug, Row, Deserialize)]
pub(super) struct SessionRow {
    session_id: String,
    site: String,
    visitor_id: String,
    user_id: Option<String>,
    session_index: Option<u32>,
    started_at: u64,
    last_seen_at: u64,
    ended_at: Option<u64>,
    end_reason: Option<String>,
    duration_ms: u64,
    landing_page: Option<String>,
    exit_page: Option<String>,
    source: String,
    country: Option<String>,
    region: Option<String>,
    city: Option<String>,
    browser: Option<String>,
    os: Option<String>,
    device_type: Option<String>,
    event_count: u64,
    page_views: u64,
    is_bot: bool,
}

impl From<SessionRow> for Session {
    fn from(r: SessionRow) -> Self {
        Session {
            session_id: r.session_id,
            site: r.site,
            visitor_id: r.visitor_id,
            user_id: r.user_id,
            session_index: r.session_index,
            started_at: r.started_at,
            last_seen_at: r.last_seen_at,
            ended_at: r.ended_at,
            end_reason: r.end_reason,
            duration_ms: r.duration_ms,
            landing_page: r.landing_page,
            exit_page: r.exit_page,
            source: r.source,
            country: r.country,
            region: r.region,
            city: r.city,
            browser: r.browser,
            os: r.os,
            device_type: r.device_type,
            event_count: r.event_count,
            page_views: r.page_views,
            is_bot: r.is_bot,
        }
    }
}

/// A key and its count (`key`, `count`): a [`KeyCount`].
#[derive(Debug, Row, Deserialize)]
pub(super) struct KeyCountRow {
    pub(super) key: String,
    pub(super) count: u64,
}

impl From<KeyCountRow> for KeyCount {
    fn from(r: KeyCountRow) -> Self {
        KeyCount {
            key: r.key,
            count: r.count,
        }
    }
}

/// Visits by bucket start (`start`, `visits`).
#[derive(Debug, Row, Deserialize)]
pub(super) struct BucketRow {
    pub(super) start: u64,
    pub(super) visits: u64,
}

/// The totals of `/v1/stats` (by position: an alias equal to a column
/// name would shadow it in ClickHouse).
#[derive(Debug, Row, Deserialize)]
pub(super) struct Totals {
    pub(super) visits: u64,
    pub(super) visitors: u64,
    pub(super) page_views: u64,
    pub(super) bounces: u64,
    pub(super) duration_sum: u64,
}
