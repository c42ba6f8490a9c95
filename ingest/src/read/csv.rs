//! `format=csv`: a table answer as CSV text (RFC 4180 quoting, by the `csv`
//! crate), a header line first, even without rows.
//!
//! Each row is serialized as JSON first and its columns taken by name, so
//! the CSV has the same fields and values as the JSON answer: numbers as
//! JSON writes them (`0.5`, `1.0`), `null` as an empty cell.

use serde::Serialize;
use serde_json::Value;

/// A breakdown's columns.
pub const BREAKDOWN: &[&str] = &[
    "key",
    "visits",
    "visitors",
    "page_views",
    "bounce_rate",
    "avg_duration_ms",
];
/// An `event_name` breakdown's columns.
pub const GOALS: &[&str] = &[
    "key",
    "visits",
    "visitors",
    "page_views",
    "bounce_rate",
    "avg_duration_ms",
    "events",
    "conversion_rate",
];
/// A timeseries' columns.
pub const TIMESERIES: &[&str] = &[
    "start",
    "visits",
    "visitors",
    "page_views",
    "bounce_rate",
    "avg_duration_ms",
];
/// A funnel's columns.
pub const FUNNEL: &[&str] = &["step", "key", "visits", "visitors", "conversion_rate"];
/// Realtime's pages.
pub const PAGES: &[&str] = &["key", "visitors"];
/// A list of sessions: every field of [`Session`](crate::Session).
pub const SESSIONS: &[&str] = &[
    "session_id",
    "site",
    "visitor_id",
    "user_id",
    "session_index",
    "started_at",
    "last_seen_at",
    "ended_at",
    "end_reason",
    "duration_ms",
    "landing_page",
    "exit_page",
    "source",
    "country",
    "region",
    "city",
    "browser",
    "os",
    "device_type",
    "event_count",
    "page_views",
    "is_bot",
];

/// `rows` as CSV with `columns`, in that order.
pub fn table<T: Serialize>(columns: &[&str], rows: &[T]) -> std::io::Result<String> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(columns).map_err(std::io::Error::other)?;
    for row in rows {
        let value = serde_json::to_value(row)?;
        let cells = columns.iter().map(|c| cell(value.get(c)));
        out.write_record(cells).map_err(std::io::Error::other)?;
    }
    let bytes = out.into_inner().map_err(std::io::Error::other)?;
    String::from_utf8(bytes).map_err(std::io::Error::other)
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::session::SessionState;
    use crate::StoredEvent;

    #[test]
    fn cells_are_quoted_where_needed_and_nulls_empty() {
        let rows = [
            serde_json::json!({"key": "a, \"b\"", "n": 1, "r": 0.5, "x": null}),
            serde_json::json!({"key": "line\nbreak", "n": 2, "r": 1.0, "x": true}),
        ];
        assert_eq!(
            table(&["key", "n", "r", "x"], &rows).unwrap(),
            "key,n,r,x\n\"a, \"\"b\"\"\",1,0.5,\n\"line\nbreak\",2,1.0,true\n"
        );
        let none: [Value; 0] = [];
        assert_eq!(table(&["a", "b"], &none).unwrap(), "a,b\n");
    }

    #[test]
    fn the_session_columns_are_every_field_of_a_session() {
        let event: StoredEvent = serde_json::from_value(serde_json::json!({
            "event_id": "e", "site": "s", "type": "page_view", "name": null, "ts": 1,
            "client_ts": 1, "received_at": 1, "session_id": "x", "visitor_id": "v",
            "user_id": null, "session_index": null, "seq": null, "previous_session_id": null,
            "storage": null, "url": "https://a.example/", "title": null, "referrer": null,
            "props": null, "context": null, "is_bot": false,
        }))
        .unwrap();
        let session = SessionState::new(&event).session;
        let value = serde_json::to_value(session).unwrap();
        let fields: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut columns = SESSIONS.to_vec();
        columns.sort_unstable();
        let mut fields = fields;
        fields.sort_unstable();
        assert_eq!(columns, fields);
    }
}
