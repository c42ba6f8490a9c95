//! The columns of `events` and `sessions`, and reading rows back.

use rusqlite::Row;

use crate::event::{Enrichment, EventType, StoredEvent};
use crate::session::{EventKey, MergeKeys, Session, SessionState};

/// The columns of `events` an event was written to up to schema version 6,
/// besides its [`ENRICHMENT_COLUMNS`] and its page path (what the tests
/// build old files from; version 7 writes [`EVENT_WRITE_COLUMNS`]).
#[cfg(test)]
pub(super) const EVENT_COLUMNS: &str = "event_id, site, type, name, ts, received_at, session_id, \
     visitor_id, user_id, session_index, seq, previous_session_id, storage, url, title, referrer, \
     props, context, client_ts";

/// What the collector adds to an event, kept once per combination in
/// `enrichments` (schema version 6): a few hundred distinct rows for
/// millions of events.
pub(super) const ENRICHMENT_COLUMNS: &str =
    "country, region, city, browser, os, device_type, is_bot";

/// The columns of `events` [`insert_event`](super::writer) writes: those
/// of [`EVENT_COLUMNS`] as schema version 7 keeps them
/// ([`compact`](super::compact)), the enrichment's row and the page path
/// where the URL does not say it.
pub(super) const EVENT_WRITE_COLUMNS: &str = "event_id, site, kind, name, ts, received_at, \
     session_id, visitor_id, user_id, session_index, seq, previous_session_id, kept_in, url, \
     title, referrer, props, context, client_ts, enrichment, path_kept";

/// What [`EVENT_SELECT`] reads from: the events and their enrichment.
pub(super) const EVENTS_FROM: &str = "events LEFT JOIN enrichments n ON n.id = events.enrichment";

pub(super) const SESSION_COLUMNS: &str =
    "session_id, site, visitor_id, user_id, session_index, started_at, \
     last_seen_at, ended_at, end_reason, duration_ms, landing_page, exit_page, source, country, \
     region, city, browser, os, device_type, event_count, page_views, is_bot";

/// What the writer derives per session for the read API: the paths of its
/// entry and exit pages, its landing page view's referrer's domain and
/// `utm_*` set.
pub(super) const DERIVED_COLUMNS: &str = "entry_path, exit_path, referrer_domain, utm_source, \
     utm_medium, utm_campaign, utm_term, utm_content";

pub(super) const KEY_COLUMNS: &str =
    "first_key, last_key, landing_key, exit_key, user_key, geo_key, \
     agent_key, end_key, end_event_id";

/// [`EVENT_COLUMNS`] and the enrichment to select, [`FROM`](EVENTS_FROM)
/// the events and their enrichments: the packed ones as text
/// ([`packed`]), the URLs whole ([`url_of`]).
///
/// [`packed`]: super::packed
/// [`url_of`]: super::compact::url_of
pub(super) const EVENT_SELECT: &str = "wm_text(event_id), site, type, name, ts, received_at, \
     wm_text(session_id), wm_text(visitor_id), user_id, session_index, seq, \
     wm_text(previous_session_id), storage, \
     CASE WHEN typeof(url) = 'blob' THEN (SELECT origin FROM origins WHERE of_site = site) || CAST(url AS TEXT) ELSE url END, title, \
     CASE WHEN typeof(referrer) = 'blob' THEN (SELECT origin FROM origins WHERE of_site = site) || CAST(referrer AS TEXT) ELSE referrer END, \
     props, context, client_ts, \
     n.country, n.region, n.city, n.browser, n.os, n.device_type, ifnull(n.is_bot, 0)";

/// [`SESSION_COLUMNS`] to select, the URLs whole
/// ([`url_of`](super::compact::url_of)).
pub(super) const SESSION_SELECT: &str =
    "wm_text(session_id), site, wm_text(visitor_id), user_id, session_index, started_at, \
     last_seen_at, ended_at, end_reason, duration_ms, \
     CASE WHEN typeof(landing_page) = 'blob' THEN (SELECT origin FROM origins WHERE of_site = site) || CAST(landing_page AS TEXT) ELSE landing_page END, \
     CASE WHEN typeof(exit_page) = 'blob' THEN (SELECT origin FROM origins WHERE of_site = site) || CAST(exit_page AS TEXT) ELSE exit_page END, \
     source, country, \
     region, city, browser, os, device_type, event_count, page_views, is_bot";

/// [`KEY_COLUMNS`] to select, as text: a key kept as the empty blob is the
/// same as `first_key` (schema version 6: most of a visit's are).
pub(super) const KEY_SELECT: &str = "wm_text(first_key), \
     wm_text(CASE WHEN last_key = x'' THEN first_key ELSE last_key END), \
     wm_text(CASE WHEN landing_key = x'' THEN first_key ELSE landing_key END), \
     wm_text(CASE WHEN exit_key = x'' THEN first_key ELSE exit_key END), \
     wm_text(CASE WHEN user_key = x'' THEN first_key ELSE user_key END), \
     wm_text(CASE WHEN geo_key = x'' THEN first_key ELSE geo_key END), \
     wm_text(CASE WHEN agent_key = x'' THEN first_key ELSE agent_key END), \
     wm_text(CASE WHEN end_key = x'' THEN first_key ELSE end_key END), \
     wm_text(end_event_id)";

pub(super) fn event_from_row(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    let type_text: String = row.get(2)?;
    let event_type = EventType::from_name(&type_text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Text,
            format!("unknown event type {type_text:?}").into(),
        )
    })?;
    let ts: u64 = row.get(4)?;
    Ok(StoredEvent {
        event_id: row.get(0)?,
        site: row.get(1)?,
        event_type,
        name: row.get(3)?,
        ts,
        received_at: row.get(5)?,
        session_id: row.get(6)?,
        visitor_id: row.get(7)?,
        user_id: row.get(8)?,
        session_index: row.get(9)?,
        seq: row.get(10)?,
        previous_session_id: row.get(11)?,
        storage: row.get(12)?,
        url: row.get(13)?,
        title: row.get(14)?,
        referrer: row.get(15)?,
        props: row.get(16)?,
        context: row.get(17)?,
        client_ts: row.get::<_, Option<u64>>(18)?.unwrap_or(ts),
        enrichment: Enrichment {
            country: row.get(19)?,
            region: row.get(20)?,
            city: row.get(21)?,
            browser: row.get(22)?,
            os: row.get(23)?,
            device_type: row.get(24)?,
            is_bot: row.get(25)?,
        },
    })
}

pub(super) fn session_from_row(row: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        session_id: row.get(0)?,
        site: row.get(1)?,
        visitor_id: row.get(2)?,
        user_id: row.get(3)?,
        session_index: row.get(4)?,
        started_at: row.get(5)?,
        last_seen_at: row.get(6)?,
        ended_at: row.get(7)?,
        end_reason: row.get(8)?,
        duration_ms: row.get(9)?,
        landing_page: row.get(10)?,
        exit_page: row.get(11)?,
        source: row.get(12)?,
        country: row.get(13)?,
        region: row.get(14)?,
        city: row.get(15)?,
        browser: row.get(16)?,
        os: row.get(17)?,
        device_type: row.get(18)?,
        event_count: row.get(19)?,
        page_views: row.get(20)?,
        is_bot: row.get(21)?,
    })
}

pub(super) fn state_from_row(row: &Row<'_>) -> rusqlite::Result<SessionState> {
    let key = |i: usize| -> rusqlite::Result<Option<EventKey>> {
        Ok(row.get::<_, Option<String>>(i)?.map(EventKey))
    };
    Ok(SessionState {
        session: session_from_row(row)?,
        keys: MergeKeys {
            first: key(22)?,
            last: key(23)?,
            landing: key(24)?,
            exit: key(25)?,
            user: key(26)?,
            geo: key(27)?,
            agent: key(28)?,
            end: key(29)?,
            end_event_id: row.get(30)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::packed::select_list;
    use super::*;

    #[test]
    fn the_select_lists_read_every_packed_column_as_text() {
        let enrichment = ENRICHMENT_COLUMNS
            .split(", ")
            .map(|c| match c {
                "is_bot" => "ifnull(n.is_bot, 0)".to_owned(),
                c => format!("n.{c}"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        assert_eq!(
            EVENT_SELECT,
            format!("{}, {enrichment}", select_list(EVENT_COLUMNS))
        );
        assert_eq!(SESSION_SELECT, select_list(SESSION_COLUMNS));
        let keys = KEY_COLUMNS
            .split(", ")
            .map(|c| match c {
                "first_key" | "end_event_id" => format!("wm_text({c})"),
                c => format!("wm_text(CASE WHEN {c} = x'' THEN first_key ELSE {c} END)"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        assert_eq!(KEY_SELECT, keys);
    }
}
