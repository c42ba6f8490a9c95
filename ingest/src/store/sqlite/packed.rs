//! Ids and merge keys in their bytes (schema version 6).
//!
//! Every id the SDK makes is a UUID, and a UUID as text takes 36 bytes
//! where its value takes 16; an event's merge key ([`EventKey`]: time,
//! `seq` and event id in hex) takes 60 where its value takes 28. The ids
//! and keys were about a fifth of the database: an event's id, session and
//! visitor in its row, its id again in the primary key's index, its
//! session in `(site, session_id, ts)`, and a session's nine keys.
//!
//! So `events` and `sessions` keep them *packed*: a canonical UUID (lower
//! case, hyphenated: what the collector writes for every event id) as its
//! 16 bytes, a merge key as its 28, in a `BLOB`. Any other text (a session
//! id a custom client made up, an upper-case UUID) is kept as it came, in
//! a `TEXT`: SQLite types each value, so a column holds both. Packing is
//! exact both ways: only a text that unpacks to itself is packed, so an id
//! reads back as it was written, and two different ids never meet.
//!
//! The SQL does it, through two functions every connection registers
//! ([`register`]): `wm_pack(?)` where an id is written or compared,
//! `wm_text(column)` where one is read. Neither is in the schema itself, so
//! any SQLite client can still open and read the file (ids show as blobs).
//!
//! Order: a packed UUID sorts as its text does (hex digits in ASCII order,
//! hyphens in fixed places), so `ORDER BY event_id` and the keyset
//! pagination of events and sessions are unchanged for UUIDs. SQLite sorts
//! every `TEXT` before every `BLOB`, so among sessions that started in the
//! same millisecond, an id that is not a canonical UUID now comes before
//! (in `DESC` order: after) the UUIDs, where bytewise text order could
//! interleave them. Pages stay consistent: the cursor is compared packed.
//!
//! [`EventKey`]: crate::session::EventKey

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;
use uuid::Uuid;

/// Columns of `events` and `sessions` kept packed.
const PACKED: &[&str] = &[
    "event_id",
    "session_id",
    "visitor_id",
    "previous_session_id",
    "first_key",
    "last_key",
    "landing_key",
    "exit_key",
    "user_key",
    "geo_key",
    "agent_key",
    "end_key",
    "end_event_id",
];

/// Hex digits of a merge key before its event id: time (16), `seq` (8).
const KEY_PREFIX: usize = 24;

/// Registers `wm_pack` and `wm_text` on a connection.
pub(super) fn register(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("wm_pack", 1, flags, |ctx| Ok(pack_value(ctx)))?;
    conn.create_scalar_function("wm_text", 1, flags, |ctx| Ok(text_value(ctx)))
}

fn pack_value(ctx: &Context<'_>) -> Value {
    match ctx.get_raw(0) {
        ValueRef::Text(bytes) => match std::str::from_utf8(bytes).ok().and_then(pack) {
            Some(packed) => Value::Blob(packed),
            None => Value::Text(String::from_utf8_lossy(bytes).into_owned()),
        },
        other => other.into(),
    }
}

fn text_value(ctx: &Context<'_>) -> Value {
    match ctx.get_raw(0) {
        ValueRef::Blob(bytes) => match unpack(bytes) {
            Some(text) => Value::Text(text),
            None => Value::Blob(bytes.to_vec()),
        },
        other => other.into(),
    }
}

/// The bytes of a canonical UUID (16) or merge key (28); `None` for any
/// other text, which is kept as it is.
pub(super) fn pack(text: &str) -> Option<Vec<u8>> {
    match text.len() {
        36 => canonical_uuid(text).map(|id| id.as_bytes().to_vec()),
        60 => {
            let lower_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
            if !text.as_bytes()[..KEY_PREFIX].iter().all(lower_hex) {
                return None;
            }
            let (prefix, id) = text.split_at(KEY_PREFIX);
            let id = canonical_uuid(id)?;
            let ts = u64::from_str_radix(&prefix[..16], 16).ok()?;
            let seq = u32::from_str_radix(&prefix[16..], 16).ok()?;
            let mut bytes = Vec::with_capacity(28);
            bytes.extend_from_slice(&ts.to_be_bytes());
            bytes.extend_from_slice(&seq.to_be_bytes());
            bytes.extend_from_slice(id.as_bytes());
            Some(bytes)
        }
        _ => None,
    }
}

/// The text [`pack`] made these bytes from.
pub(super) fn unpack(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        16 => Some(Uuid::from_slice(bytes).ok()?.hyphenated().to_string()),
        28 => {
            let ts = u64::from_be_bytes(bytes[..8].try_into().ok()?);
            let seq = u32::from_be_bytes(bytes[8..12].try_into().ok()?);
            let id = Uuid::from_slice(&bytes[12..]).ok()?;
            Some(format!("{ts:016x}{seq:08x}{}", id.hyphenated()))
        }
        _ => None,
    }
}

/// The UUID whose lower-case hyphenated text is exactly `text`.
fn canonical_uuid(text: &str) -> Option<Uuid> {
    let id = Uuid::try_parse(text).ok()?;
    let mut buffer = Uuid::encode_buffer();
    (*id.hyphenated().encode_lower(&mut buffer) == *text).then_some(id)
}

fn is_packed(column: &str) -> bool {
    PACKED.contains(&column)
}

/// A select list of these column names (`a, b, c`), the packed ones read
/// as text, `wm_text(session_id)`, and the URLs whole
/// ([`url_of`](super::compact::url_of)): what `rows`' select lists are
/// checked against.
#[cfg(test)]
pub(super) fn select_list(columns: &str) -> String {
    columns
        .split(',')
        .map(str::trim)
        .map(|c| {
            if is_packed(c) {
                format!("wm_text({c})")
            } else if super::compact::URL_COLUMNS.contains(&c) {
                super::compact::url_of("site", c)
            } else {
                c.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `VALUES` placeholders of an insert into these columns, numbered from
/// `?1`, the packed ones packed: `wm_pack(?1)`.
pub(super) fn value_list(columns: &str) -> String {
    columns
        .split(',')
        .map(str::trim)
        .enumerate()
        .map(|(i, c)| {
            if is_packed(c) {
                format!("wm_pack(?{})", i + 1)
            } else {
                format!("?{}", i + 1)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "01a19fe1-0dae-7b6c-9ff9-6c41308e285f";
    const KEY: &str = "000001a19fe10dae0000000101a19fe1-0dae-7b6c-9ff9-6c41308e285f";

    #[test]
    fn uuids_and_keys_pack_to_their_bytes_and_back() {
        assert_eq!(pack(ID).map(|b| b.len()), Some(16));
        assert_eq!(pack(KEY).map(|b| b.len()), Some(28));
        for text in [ID, KEY, "00000000-0000-0000-0000-000000000000"] {
            assert_eq!(unpack(&pack(text).unwrap()).as_deref(), Some(text));
        }
    }

    #[test]
    fn any_other_text_is_kept_as_it_is() {
        for text in [
            "",
            "s1",
            "01A19FE1-0DAE-7B6C-9FF9-6C41308E285F",
            "01a19fe10dae7b6c9ff96c41308e285f",
            "{01a19fe1-0dae-7b6c-9ff9-6c41308e285f}",
            "urn:uuid:01a19fe1-0dae-7b6c-9ff9-6c41308e285f",
            "000001A19FE10DAE0000000101a19fe1-0dae-7b6c-9ff9-6c41308e285f",
            "000001a19fe10dae0000000101A19FE1-0DAE-7B6C-9FF9-6C41308E285F",
            "+00001a19fe10dae0000000101a19fe1-0dae-7b6c-9ff9-6c41308e285f",
            "ü00001a19fe10dae000000101a19fe1-0dae-7b6c-9ff9-6c41308e285f",
        ] {
            assert_eq!(pack(text), None, "{text:?}");
        }
    }

    #[test]
    fn packed_uuids_sort_as_their_text_does() {
        let mut ids: Vec<String> = (0..200_u128)
            .map(|n| Uuid::from_u128(n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)))
            .map(|id| id.hyphenated().to_string())
            .collect();
        ids.sort();
        let mut packed: Vec<Vec<u8>> = ids.iter().map(|id| pack(id).unwrap()).collect();
        packed.sort();
        let unpacked: Vec<String> = packed.iter().map(|b| unpack(b).unwrap()).collect();
        assert_eq!(unpacked, ids);
    }

    #[test]
    fn the_sql_functions_round_trip_and_pass_the_rest_through() {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        let row: (String, i64, String, Option<String>, i64) = conn
            .query_row(
                "SELECT typeof(wm_pack(?1)), length(wm_pack(?1)), wm_text(wm_pack(?1)), \
                 wm_text(wm_pack(NULL)), wm_pack(7)",
                [ID],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(row, ("blob".to_owned(), 16, ID.to_owned(), None, 7));
        let kept: (String, String) = conn
            .query_row(
                "SELECT typeof(wm_pack('s1')), wm_text(wm_pack('s1'))",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(kept, ("text".to_owned(), "s1".to_owned()));
    }

    #[test]
    fn select_and_value_lists_wrap_the_packed_columns() {
        assert_eq!(
            select_list("event_id, site, session_id"),
            "wm_text(event_id), site, wm_text(session_id)"
        );
        assert_eq!(value_list("event_id, site"), "wm_pack(?1), ?2");
    }
}
