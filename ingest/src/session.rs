//! Sessions, kept current as events arrive: the pure merge rules.
//!
//! A [`SessionState`] is a [`Session`] plus the ordering keys that decided
//! each of its fields. [`SessionState::absorb`] folds one newly stored event
//! into it. Every rule is a minimum or a maximum over a total order of events
//! ([`EventKey`]: time, then `seq`, then `event_id`), a sum or an "or", so the
//! result does not depend on the order events arrive in: batches split,
//! reordered or retried give the same session as one batch in order
//! (`tests/sessions.rs` checks that with proptest).
//!
//! The `visit_ended` rules ([`SessionState::offer_end`]) keep exactly one end
//! per session: the SDK's, when it sent one, otherwise the one the sweeper
//! wrote for an idle session ([`collector_visit_ended`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::event::{Enrichment, EventType, StoredEvent};
use crate::read::keys::{referrer_domain, utm_param};

/// A session as the read API shows it. Times are epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub session_id: String,
    pub site: String,
    pub visitor_id: String,
    /// The latest user id any event of the session carried.
    pub user_id: Option<String>,
    /// The visitor's session number, as the SDK counts it: 1, 2, 3, …
    pub session_index: Option<u32>,
    /// Time of the first event (corrected for clock skew).
    pub started_at: u64,
    /// Time of the last event other than `visit_ended`.
    pub last_seen_at: u64,
    /// When the session ended (its `visit_ended`), or `null` while open.
    pub ended_at: Option<u64>,
    /// `idle`, `max_length`, `midnight`, `campaign` or `reset`.
    pub end_reason: Option<String>,
    /// `last_seen_at - started_at`.
    pub duration_ms: u64,
    /// URL of the first page view.
    pub landing_page: Option<String>,
    /// URL of the last page view.
    pub exit_page: Option<String>,
    /// The landing page's `utm_source`, else its referrer's domain (another
    /// site's), else `direct`.
    pub source: String,
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    pub browser: Option<String>,
    pub os: Option<String>,
    pub device_type: Option<String>,
    /// Events other than `visit_ended`.
    pub event_count: u64,
    pub page_views: u64,
    /// A crawler's or an automated browser's session; left out of `/v1/stats`.
    pub is_bot: bool,
}

/// The total order events are merged by, as text that sorts the same way:
/// time, `seq`, `event_id`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventKey(pub String);

impl EventKey {
    /// The `seq` the key was made with (0 for none).
    pub fn seq(&self) -> u32 {
        self.0
            .get(16..24)
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .unwrap_or(0)
    }

    pub fn of(event: &StoredEvent) -> EventKey {
        EventKey(format!(
            "{:016x}{:08x}{}",
            event.ts,
            event.seq.unwrap_or(0),
            event.event_id
        ))
    }
}

/// Which event decided each merged field; stored beside the session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeKeys {
    /// The earliest activity: site, visitor, session index, start.
    pub first: Option<EventKey>,
    /// The latest activity: last seen.
    pub last: Option<EventKey>,
    pub landing: Option<EventKey>,
    pub exit: Option<EventKey>,
    /// The latest event with a user id.
    pub user: Option<EventKey>,
    /// The earliest event with geo data.
    pub geo: Option<EventKey>,
    /// The earliest event with browser data.
    pub agent: Option<EventKey>,
    /// The `visit_ended` kept for the session.
    pub end: Option<EventKey>,
    pub end_event_id: Option<String>,
}

/// A session and the keys its fields came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    pub session: Session,
    pub keys: MergeKeys,
}

/// What to do with an incoming `visit_ended`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndDecision {
    /// Store it; the session had no end.
    Keep,
    /// Store it in place of the stored end with this event id.
    Replace(String),
    /// Do not store it: the session keeps the end it has.
    Drop,
}

/// Why the sweeper's `visit_ended` says the session ended.
pub const IDLE: &str = "idle";
/// The longest `end_reason` kept from an SDK's `visit_ended`.
const MAX_REASON_CHARS: usize = 32;

impl SessionState {
    /// A session known only from `event`, before [`absorb`](Self::absorb).
    pub fn new(event: &StoredEvent) -> SessionState {
        SessionState {
            session: Session {
                session_id: event.session_id.clone(),
                site: event.site.clone(),
                visitor_id: event.visitor_id.clone(),
                user_id: None,
                session_index: event.session_index,
                started_at: event.ts,
                last_seen_at: event.ts,
                ended_at: None,
                end_reason: None,
                duration_ms: 0,
                landing_page: None,
                exit_page: None,
                source: DIRECT.to_owned(),
                country: None,
                region: None,
                city: None,
                browser: None,
                os: None,
                device_type: None,
                event_count: 0,
                page_views: 0,
                is_bot: false,
            },
            keys: MergeKeys::default(),
        }
    }

    /// Whether the kept end is one the collector wrote.
    pub fn ended_by_collector(&self) -> bool {
        self.keys
            .end_event_id
            .as_deref()
            .is_some_and(|id| is_collector_end_id(&self.session.site, &self.session.session_id, id))
    }

    /// Folds in an event that was just stored for the first time. A
    /// `visit_ended` must have been let in by [`offer_end`](Self::offer_end).
    pub fn absorb(&mut self, event: &StoredEvent) {
        let key = EventKey::of(event);
        let s = &mut self.session;
        let k = &mut self.keys;
        s.is_bot |= event.enrichment.is_bot;
        if let Some(user_id) = &event.user_id {
            if k.user.as_ref().is_none_or(|u| key > *u) {
                s.user_id = Some(user_id.clone());
                k.user = Some(key.clone());
            }
        }
        take_geo_and_agent(s, k, &key, &event.enrichment);

        if event.event_type == EventType::VisitEnded {
            k.end = Some(key);
            k.end_event_id = Some(event.event_id.clone());
            s.ended_at = Some(event.ts);
            s.end_reason = Some(end_reason(event));
            if k.first.is_none() {
                // Nothing else known yet: the end is the best guess.
                s.site.clone_from(&event.site);
                s.visitor_id.clone_from(&event.visitor_id);
                s.session_index = s.session_index.or(event.session_index);
                s.started_at = s.started_at.min(event.ts);
                s.last_seen_at = s.last_seen_at.min(event.ts);
            }
        } else {
            if k.first.as_ref().is_none_or(|f| key < *f) {
                s.site.clone_from(&event.site);
                s.visitor_id.clone_from(&event.visitor_id);
                s.session_index = event.session_index;
                s.started_at = event.ts;
                k.first = Some(key.clone());
            }
            if k.last.as_ref().is_none_or(|l| key > *l) {
                s.last_seen_at = event.ts;
                k.last = Some(key.clone());
            }
            s.event_count += 1;
            if event.event_type == EventType::PageView {
                s.page_views += 1;
                if k.landing.as_ref().is_none_or(|l| key < *l) {
                    s.landing_page = Some(event.url.clone());
                    s.source = source_of(&event.url, event.referrer.as_deref());
                    k.landing = Some(key.clone());
                }
                if k.exit.as_ref().is_none_or(|e| key > *e) {
                    s.exit_page = Some(event.url.clone());
                    k.exit = Some(key);
                }
            }
        }
        s.duration_ms = s.last_seen_at.saturating_sub(s.started_at);
        if self.ended_by_collector() {
            // The sweeper's end is a stand-in at the last activity; late
            // activity moves it.
            let s = &mut self.session;
            s.ended_at = Some(s.ended_at.unwrap_or(0).max(s.last_seen_at));
        }
    }

    /// Decides whether an incoming `visit_ended` is stored. One end per
    /// session: the SDK's beats the collector's; of two from the SDK the
    /// earlier (time, then `event_id`) wins, so arrival order never matters.
    pub fn offer_end(&self, event: &StoredEvent) -> EndDecision {
        let (Some(kept_key), Some(kept_id)) = (&self.keys.end, &self.keys.end_event_id) else {
            return EndDecision::Keep;
        };
        let incoming_by_collector =
            is_collector_end_id(&event.site, &event.session_id, &event.event_id);
        let kept_by_collector = self.ended_by_collector();
        let incoming_wins = match (incoming_by_collector, kept_by_collector) {
            (false, true) => true,
            (true, _) => false,
            (false, false) => EventKey::of(event) < *kept_key,
        };
        if incoming_wins {
            EndDecision::Replace(kept_id.clone())
        } else {
            EndDecision::Drop
        }
    }

    /// Open and without activity since before `idle_before`?
    pub fn is_idle(&self, idle_before: u64) -> bool {
        self.session.ended_at.is_none() && self.session.last_seen_at < idle_before
    }
}

fn take_geo_and_agent(s: &mut Session, k: &mut MergeKeys, key: &EventKey, e: &Enrichment) {
    if e.country.is_some() && k.geo.as_ref().is_none_or(|g| *key < *g) {
        s.country.clone_from(&e.country);
        s.region.clone_from(&e.region);
        s.city.clone_from(&e.city);
        k.geo = Some(key.clone());
    }
    if (e.browser.is_some() || e.device_type.is_some())
        && k.agent.as_ref().is_none_or(|a| *key < *a)
    {
        s.browser.clone_from(&e.browser);
        s.os.clone_from(&e.os);
        s.device_type.clone_from(&e.device_type);
        k.agent = Some(key.clone());
    }
}

/// The SDK's `props.reason`, or `idle` for the collector's own.
pub(crate) fn end_reason(event: &StoredEvent) -> String {
    let from_props = event
        .props
        .as_deref()
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
        .and_then(|p| p.get("reason").and_then(Value::as_str).map(str::to_owned))
        .filter(|r| !r.is_empty() && r.chars().count() <= MAX_REASON_CHARS);
    from_props.unwrap_or_else(|| "unknown".to_owned())
}

/// The source of a visit with neither a campaign nor another site's referrer.
pub const DIRECT: &str = "direct";

/// Where a visit came from: the landing URL's `utm_source`, else the
/// referrer's domain (without `www.`) when it is another site, else `direct`.
pub fn source_of(landing_url: &str, referrer: Option<&str>) -> String {
    let landing = url::Url::parse(landing_url).ok();
    landing
        .as_ref()
        .and_then(|u| utm_param(u, "utm_source"))
        .or_else(|| referrer_domain(landing.as_ref(), referrer))
        .unwrap_or_else(|| DIRECT.to_owned())
}

/// A session as a store keeps it, from all the events ever stored for it in
/// any order (duplicates by `event_id` included): its state and the events
/// it keeps — each `event_id` once, one `visit_ended` (the one
/// [`SessionState::offer_end`] keeps), the collector's end moved to the end
/// time — oldest first (time, `seq`, `event_id`). `None` without events.
///
/// The same rules as folding the events in one by one as they arrive, so a
/// store that keeps every event can answer what one that folds on write does.
pub fn fold_session(mut events: Vec<StoredEvent>) -> Option<(SessionState, Vec<StoredEvent>)> {
    // The earliest arrival of each event wins, as in a store that ignores
    // a second insert.
    events.sort_by(|a, b| {
        a.event_id
            .cmp(&b.event_id)
            .then(a.received_at.cmp(&b.received_at))
    });
    events.dedup_by(|later, first| later.event_id == first.event_id);
    events.sort_by_cached_key(EventKey::of);

    let mut state: Option<SessionState> = None;
    let mut kept: Vec<StoredEvent> = Vec::with_capacity(events.len());
    for event in events {
        if event.event_type == EventType::VisitEnded {
            match state.as_ref().map(|s| s.offer_end(&event)) {
                Some(EndDecision::Drop) => continue,
                Some(EndDecision::Replace(old)) => kept.retain(|e| e.event_id != old),
                Some(EndDecision::Keep) | None => {}
            }
        }
        state
            .get_or_insert_with(|| SessionState::new(&event))
            .absorb(&event);
        kept.push(event);
    }
    let state = state?;
    if state.ended_by_collector() {
        if let (Some(ended_at), Some(id)) = (state.session.ended_at, &state.keys.end_event_id) {
            for event in kept.iter_mut().filter(|e| e.event_id == *id) {
                event.ts = ended_at;
                event.client_ts = ended_at;
            }
        }
    }
    kept.sort_by(|a, b| (a.ts, a.seq, &a.event_id).cmp(&(b.ts, b.seq, &b.event_id)));
    Some((state, kept))
}

/// Namespace of the collector's `visit_ended` event ids.
const VISIT_ENDED_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_9a55_3b8e_4d1e_9a0f_7e2b_5c4d_0a11);

/// The id of the `visit_ended` the collector writes for a site's session:
/// the same for every sweep and every collector, so it is stored at most
/// once, and another for the same session id on another site (a UUID v5 of
/// the session id in a namespace of the site's own, itself a UUID v5 of
/// the site in the collector's own namespace).
pub fn collector_end_id(site: &str, session_id: &str) -> String {
    let site_namespace = Uuid::new_v5(&VISIT_ENDED_NAMESPACE, site.as_bytes());
    Uuid::new_v5(&site_namespace, session_id.as_bytes())
        .hyphenated()
        .to_string()
}

/// The id the collector gave its `visit_ended` before sessions were keyed
/// by site: from the session id alone. Still recognised (and refused from
/// clients), so sessions closed before an upgrade keep their rules.
fn legacy_collector_end_id(session_id: &str) -> String {
    Uuid::new_v5(&VISIT_ENDED_NAMESPACE, session_id.as_bytes())
        .hyphenated()
        .to_string()
}

/// Whether `event_id` is (or was, before sessions were keyed by site) the
/// id of the collector's `visit_ended` for this site's session.
pub fn is_collector_end_id(site: &str, session_id: &str, event_id: &str) -> bool {
    event_id == collector_end_id(site, session_id)
        || event_id == legacy_collector_end_id(session_id)
}

/// The `visit_ended` the sweeper writes for an idle session, timed at its
/// last activity and numbered after it, with the same `props` as the SDK's.
pub fn collector_visit_ended(state: &SessionState, now: u64) -> StoredEvent {
    let s = &state.session;
    let props = serde_json::json!({
        "reason": IDLE,
        "started_at": s.started_at,
        "ended_at": s.last_seen_at,
        "duration_ms": s.duration_ms,
        "event_count": s.event_count,
        "by": "collector",
    });
    StoredEvent {
        event_id: collector_end_id(&s.site, &s.session_id),
        site: s.site.clone(),
        event_type: EventType::VisitEnded,
        name: None,
        ts: s.last_seen_at,
        client_ts: s.last_seen_at,
        received_at: now,
        session_id: s.session_id.clone(),
        visitor_id: s.visitor_id.clone(),
        user_id: s.user_id.clone(),
        session_index: s.session_index,
        seq: state
            .keys
            .last
            .as_ref()
            .map(|k| k.seq().saturating_add(1))
            .filter(|seq| *seq > 1),
        previous_session_id: None,
        storage: None,
        url: s
            .exit_page
            .clone()
            .or_else(|| s.landing_page.clone())
            .unwrap_or_default(),
        title: None,
        referrer: None,
        props: Some(props.to_string()),
        context: None,
        enrichment: Enrichment::default(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn source_prefers_utm_then_another_sites_referrer_then_direct() {
        let s = |url, referrer| source_of(url, referrer);
        assert_eq!(
            s(
                "https://shop.example/?utm_source=newsletter",
                Some("https://google.com/")
            ),
            "newsletter"
        );
        assert_eq!(
            s(
                "https://shop.example/a",
                Some("https://www.Google.com/search?q=x")
            ),
            "google.com"
        );
        assert_eq!(
            s("https://shop.example/a", Some("https://shop.example/b")),
            "direct"
        );
        assert_eq!(
            s("https://www.shop.example/a", Some("https://shop.example/")),
            "direct"
        );
        assert_eq!(s("https://shop.example/a", None), "direct");
        assert_eq!(s("https://shop.example/a", Some("")), "direct");
        assert_eq!(
            s("https://shop.example/?utm_source=", Some("not a url")),
            "direct"
        );
    }

    #[test]
    fn collector_end_ids_are_stable_per_site_and_session() {
        assert_eq!(collector_end_id("a", "s-1"), collector_end_id("a", "s-1"));
        assert_ne!(collector_end_id("a", "s-1"), collector_end_id("a", "s-2"));
        assert_ne!(collector_end_id("a", "s-1"), collector_end_id("b", "s-1"));
        // No site and session id run together into another pair's id.
        assert_ne!(collector_end_id("ab", "c"), collector_end_id("a", "bc"));
    }

    #[test]
    fn ids_from_before_the_site_was_in_them_are_still_the_collectors() {
        let legacy = legacy_collector_end_id("s-1");
        assert!(is_collector_end_id("a", "s-1", &legacy));
        assert!(is_collector_end_id("b", "s-1", &legacy));
        assert!(is_collector_end_id(
            "a",
            "s-1",
            &collector_end_id("a", "s-1")
        ));
        assert!(!is_collector_end_id(
            "b",
            "s-1",
            &collector_end_id("a", "s-1")
        ));
        assert!(!is_collector_end_id("a", "s-2", &legacy));
    }
}
