//! One session's events a page at a time, for `GET /v1/sessions/{id}`: a
//! session may hold thousands of events, and neither the store nor the
//! answer holds them all at once.

use serde::{Deserialize, Serialize};

use crate::event::StoredEvent;

/// Events per page when the client gives no `limit`.
pub const DEFAULT_EVENTS_PAGE: usize = 100;
/// The most events one page may hold.
pub const MAX_EVENTS_PAGE: usize = 1000;

/// A position in a session's events, oldest first: `ts`, then `seq` (none
/// before any), then `event_id`. As text, `<ts>.<seq or -1>.<event_id>`;
/// clients should treat it as opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventCursor {
    pub ts: u64,
    pub seq: Option<u32>,
    pub event_id: String,
}

impl EventCursor {
    /// The position of `event`.
    pub fn of(event: &StoredEvent) -> EventCursor {
        EventCursor {
            ts: event.ts,
            seq: event.seq,
            event_id: event.event_id.clone(),
        }
    }

    /// `seq` as the stores sort it: `-1` for none, so it comes first.
    pub fn seq_rank(&self) -> i64 {
        self.seq.map_or(-1, i64::from)
    }

    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.ts, self.seq_rank(), self.event_id)
    }

    /// The cursor `text` encodes; `None` unless [`encode`](Self::encode)
    /// could have made it (a time past `i64::MAX`, which no store holds,
    /// included).
    pub fn decode(text: &str) -> Option<EventCursor> {
        let mut parts = text.splitn(3, '.');
        let ts: u64 = parts.next()?.parse().ok()?;
        let seq: i64 = parts.next()?.parse().ok()?;
        let event_id = parts.next()?.to_owned();
        let seq = match seq {
            -1 => None,
            n => Some(u32::try_from(n).ok()?),
        };
        (i64::try_from(ts).is_ok() && !event_id.is_empty()).then_some(EventCursor {
            ts,
            seq,
            event_id,
        })
    }
}

/// One page of a session's events, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl EventPage {
    /// The page of the first `limit` of `events`, which were fetched with
    /// one more than `limit` to learn whether another page follows.
    pub fn from_overfetched(mut events: Vec<StoredEvent>, limit: usize) -> EventPage {
        let next_cursor = if events.len() > limit {
            events.truncate(limit);
            events.last().map(|e| EventCursor::of(e).encode())
        } else {
            None
        };
        EventPage {
            events,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn cursors_read_back_what_they_wrote_and_nothing_else() {
        for cursor in [
            EventCursor {
                ts: 0,
                seq: None,
                event_id: "a.b".to_owned(),
            },
            EventCursor {
                ts: i64::MAX as u64,
                seq: Some(u32::MAX),
                event_id: "9e3779b9-7f4a-7c15-f39c-c0605cedc835".to_owned(),
            },
        ] {
            assert_eq!(EventCursor::decode(&cursor.encode()), Some(cursor));
        }
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.",
            "x.0.a",
            "1.x.a",
            "1.-2.a",
            "1.4294967296.a",
            "9223372036854775808.0.a",
            "-1.0.a",
        ] {
            assert_eq!(EventCursor::decode(bad), None, "{bad}");
        }
    }
}
