//! Values an event or a session keeps shorter (schema version 7).
//!
//! At 10 M events, after the ids were packed ([`packed`]), an event's row
//! still spent about 50 bytes on what it could say in a few:
//!
//! - **URLs of the site's own origin.** Nearly every `url`, most
//!   `referrer`s and a session's `landing_page` and `exit_page` begin with
//!   the site's origin (`https://www.example.com`, 23 bytes). Each site's
//!   origin is kept once, in `origins`, and such a URL as the rest of it
//!   (from the `/` on) in a `BLOB`; any other URL stays the `TEXT` it came
//!   as. A site's origin is the first one its events showed, and it never
//!   changes, so the rest always reads back to the URL written. It is the
//!   site's own address, not a visitor's: erasure leaves it.
//! - **The event type** as its number (`kind`), read back through the
//!   generated column `type`.
//! - **The storage** the SDK kept its session in (`local`, `cookie`,
//!   `memory`) as a number; any other value as its text. Read back through
//!   the generated column `storage`.
//! - **A page view's path**, kept only where the URL's rest up to its `?`
//!   or `#` does not say it already; read back through the generated column
//!   `path`.
//!
//! Generated columns are computed from the row itself, so every query that
//! reads `type`, `storage` or `path` is unchanged, and so is the `sqlite3`
//! shell's view of them. A URL needs its site's origin, a lookup no
//! generated column may make: the queries read it through [`url_of`], the
//! views `events_readable` and `sessions_readable` in plain SQL.
//!
//! The writer encodes in Rust; the upgrade from version 6 in SQL, through
//! functions every connection registers ([`register`]) that call the same
//! code.
//!
//! [`packed`]: super::packed

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;

use crate::event::EventType;

/// The columns of `events` and `sessions` that keep URLs under their
/// site's origin.
#[cfg(test)]
pub(super) const URL_COLUMNS: &[&str] = &["url", "referrer", "landing_page", "exit_page"];

/// `type` from `kind`: the [`EventType::ALL`] position (a test checks the
/// two agree).
pub(super) const TYPE_OF_KIND: &str = "CASE kind WHEN 0 THEN 'page_view' \
     WHEN 1 THEN 'page_leave' WHEN 2 THEN 'click' WHEN 3 THEN 'custom' WHEN 4 THEN 'identify' \
     WHEN 5 THEN 'visit_ended' END";

/// The storages the SDK names, by their number in `kept_in`.
const STORAGES: [&str; 3] = ["local", "cookie", "memory"];

/// An event type's number in `kind`.
pub(super) fn kind(t: EventType) -> i64 {
    EventType::ALL
        .iter()
        .position(|k| *k == t)
        .and_then(|i| i64::try_from(i).ok())
        .unwrap_or(-1)
}

/// What `kept_in` holds for a storage: its number in [`STORAGES`] (from
/// 1), or any other text as it is.
pub(super) fn kept_in(storage: Option<&str>) -> Value {
    match storage {
        None => Value::Null,
        Some(s) => match STORAGES.iter().position(|k| *k == s) {
            Some(i) => Value::Integer(i64::try_from(i).unwrap_or(0) + 1),
            None => Value::Text(s.to_owned()),
        },
    }
}

/// The origin (`scheme://host[:port]`) `url` begins with, as the URL
/// standard writes it, when what follows it is the path (`/…`).
pub(super) fn origin_of(url: &str) -> Option<&str> {
    let parsed = url::Url::parse(url).ok()?;
    let origin = parsed.origin();
    if !origin.is_tuple() {
        return None;
    }
    let origin = origin.ascii_serialization();
    url.strip_prefix(origin.as_str())
        .filter(|rest| rest.starts_with('/'))
        .map(|_| &url[..origin.len()])
}

/// What a URL column keeps of `url` for a site of this `origin`: the rest
/// after the origin, as a `BLOB`, or the whole URL as `TEXT`.
pub(super) fn kept_url(origin: Option<&str>, url: &str) -> Value {
    match origin
        .and_then(|o| url.strip_prefix(o))
        .filter(|rest| rest.starts_with('/'))
    {
        Some(rest) => Value::Blob(rest.as_bytes().to_vec()),
        None => Value::Text(url.to_owned()),
    }
}

/// What `path_kept` holds for a page view of `path` whose URL is kept as
/// `url`: nothing when the generated `path` reads it from the URL (the
/// rest, up to its `?` or `#`: [`PATH_OF_ROW`]).
pub(super) fn kept_path(path: Option<&str>, url: &Value) -> Option<String> {
    let path = path?;
    let from_url = match url {
        Value::Blob(rest) => std::str::from_utf8(rest)
            .ok()
            .map(crate::store::columns::url_key),
        _ => None,
    };
    (from_url != Some(path)).then(|| path.to_owned())
}

/// The generated `path` of `events`.
pub(super) const PATH_OF_ROW: &str = "CASE WHEN path_kept IS NOT NULL THEN path_kept \
     WHEN kind = 0 AND typeof(url) = 'blob' THEN substr(CAST(url AS TEXT), 1, \
     min(instr(CAST(url AS TEXT) || '?', '?'), instr(CAST(url AS TEXT) || '#', '#')) - 1) END";

/// The generated `storage` of `events`.
pub(super) const STORAGE_OF_ROW: &str =
    "CASE kept_in WHEN 1 THEN 'local' WHEN 2 THEN 'cookie' WHEN 3 THEN 'memory' ELSE kept_in END";

/// A URL column read back as the URL, `site` being the row's site (both
/// SQL: `url_of("e.site", "e.url")`).
pub(super) fn url_of(site: &str, column: &str) -> String {
    format!(
        "CASE WHEN typeof({column}) = 'blob' THEN \
         (SELECT origin FROM origins WHERE of_site = {site}) || CAST({column} AS TEXT) \
         ELSE {column} END"
    )
}

/// Registers the upgrade's functions on a connection: `wm_kind(type)`,
/// `wm_kept_in(storage)`, `wm_origin(url)`, `wm_kept_url(origin, url)` and
/// `wm_kept_path(path, kept_url)`, each what its Rust namesake does.
pub(super) fn register(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("wm_kind", 1, flags, |ctx| {
        let name = text(ctx, 0)?;
        Ok(name
            .as_deref()
            .and_then(EventType::from_name)
            .map(kind)
            .unwrap_or(-1))
    })?;
    conn.create_scalar_function("wm_kept_in", 1, flags, |ctx| {
        Ok(kept_in(text(ctx, 0)?.as_deref()))
    })?;
    conn.create_scalar_function("wm_origin", 1, flags, |ctx| {
        Ok(text(ctx, 0)?
            .as_deref()
            .and_then(origin_of)
            .map(str::to_owned))
    })?;
    conn.create_scalar_function("wm_kept_url", 2, flags, |ctx| {
        Ok(match text(ctx, 1)? {
            Some(url) => kept_url(text(ctx, 0)?.as_deref(), &url),
            None => Value::Null,
        })
    })?;
    conn.create_scalar_function("wm_kept_path", 2, flags, |ctx| {
        let url: Value = ctx.get_raw(1).into();
        Ok(kept_path(text(ctx, 0)?.as_deref(), &url))
    })
}

fn text(ctx: &Context<'_>, i: usize) -> rusqlite::Result<Option<String>> {
    Ok(match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        other => Some(match other.into() {
            Value::Integer(n) => n.to_string(),
            Value::Real(f) => f.to_string(),
            Value::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
            _ => String::new(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        conn
    }

    #[test]
    fn every_event_type_reads_back_from_its_kind() {
        let conn = conn();
        for t in EventType::ALL {
            let name: String = conn
                .query_row(
                    &format!("SELECT {TYPE_OF_KIND} FROM (SELECT ?1 AS kind)"),
                    [kind(t)],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(name, t.as_str());
            let k: i64 = conn
                .query_row("SELECT wm_kind(?1)", [t.as_str()], |r| r.get(0))
                .unwrap();
            assert_eq!(k, kind(t));
        }
    }

    #[test]
    fn storages_read_back_as_written_whatever_they_are() {
        let conn = conn();
        conn.execute_batch("CREATE TABLE t (kept_in)").unwrap();
        for s in [
            "local",
            "cookie",
            "memory",
            "1",
            "2",
            "",
            "Local",
            "indexeddb",
        ] {
            conn.execute("DELETE FROM t", []).unwrap();
            conn.execute("INSERT INTO t VALUES (?1)", [kept_in(Some(s))])
                .unwrap();
            let back: String = conn
                .query_row(&format!("SELECT {STORAGE_OF_ROW} FROM t"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(back, s);
        }
        assert_eq!(kept_in(Some("local")), Value::Integer(1));
        assert_eq!(kept_in(None), Value::Null);
    }

    #[test]
    fn a_url_of_the_origin_keeps_its_rest_and_any_other_its_text() {
        let o = Some("https://www.example.com");
        assert_eq!(origin_of("https://www.example.com/a?b#c"), o);
        assert_eq!(
            origin_of("https://www.example.com:8443/"),
            Some("https://www.example.com:8443")
        );
        // Written otherwise than the standard writes the origin: no origin.
        assert_eq!(origin_of("HTTPS://www.example.com/"), None);
        assert_eq!(origin_of("https://www.example.com:443/"), None);
        assert_eq!(origin_of("https://www.example.com"), None);
        assert_eq!(origin_of("about:blank"), None);
        assert_eq!(origin_of("/relative"), None);

        assert_eq!(
            kept_url(o, "https://www.example.com/a?b"),
            Value::Blob(b"/a?b".to_vec())
        );
        for other in [
            "https://www.example.com",
            "https://www.example.com.evil.test/",
            "https://www.example.com:8443/",
            "http://www.example.com/",
            "/a",
            "",
        ] {
            assert_eq!(kept_url(o, other), Value::Text(other.to_owned()), "{other}");
        }
        assert_eq!(
            kept_url(None, "https://www.example.com/"),
            Value::Text("https://www.example.com/".into())
        );
    }

    #[test]
    fn urls_and_paths_read_back_exactly() {
        let conn = conn();
        conn.execute_batch(&format!(
            "CREATE TABLE origins (of_site TEXT PRIMARY KEY, origin TEXT NOT NULL) WITHOUT ROWID;
             INSERT INTO origins VALUES ('s', 'https://www.example.com');
             CREATE TABLE events (site, kind, url, path_kept, path GENERATED ALWAYS AS ({PATH_OF_ROW}));"
        ))
        .unwrap();
        let cases = [
            ("https://www.example.com/docs/a?x=1#top", "/docs/a"),
            ("https://www.example.com/é/ü?q", "/%C3%A9/%C3%BC"),
            ("https://www.example.com/a#b?c", "/a"),
            ("https://www.example.com/a/../b", "/b"),
            ("https://other.test/x", "/x"),
            ("https://www.example.com/", "/"),
        ];
        for (url, path) in cases {
            conn.execute("DELETE FROM events", []).unwrap();
            let kept = kept_url(Some("https://www.example.com"), url);
            let path_kept = kept_path(Some(path), &kept);
            conn.execute(
                "INSERT INTO events (site, kind, url, path_kept) VALUES ('s', 0, ?1, ?2)",
                rusqlite::params![kept, path_kept],
            )
            .unwrap();
            let back: (String, String) = conn
                .query_row(
                    &format!("SELECT {}, path FROM events", url_of("site", "url")),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!(back, (url.to_owned(), path.to_owned()), "{url}");
        }
        // No path for an event that is not a page view.
        conn.execute("UPDATE events SET kind = 2, path_kept = NULL", [])
            .unwrap();
        let click: Option<String> = conn
            .query_row("SELECT path FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(click, None);
        // And the SQL functions agree with Rust.
        let f: (Vec<u8>, Option<String>, Option<String>) = conn
            .query_row(
                "SELECT wm_kept_url('https://www.example.com', 'https://www.example.com/a?b'), \
                 wm_kept_path('/a', x'2f613f62'), wm_origin('https://www.example.com/a')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            f,
            (
                b"/a?b".to_vec(),
                None,
                Some("https://www.example.com".into())
            )
        );
    }
}
