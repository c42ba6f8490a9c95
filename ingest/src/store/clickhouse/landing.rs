//! Schema version 3: what the read API groups visits by. Each page view
//! keeps its page's key (`path`) and what its session keeps of it if it is
//! the landing one (`utm_*`, `referrer_domain`), computed in Rust at insert
//! ([`page_path`](crate::read::page_path), [`Landing`](crate::read::Landing))
//! like SQLite's; `sessions_agg` keeps the landing page view's (and the exit
//! page's path) by the session rules, the same `argMin`/`argMax` by event
//! key as its landing page and source.
//!
//! Rows stored before version 3 have no such values: the new `events`
//! columns' `DEFAULT`s derive them from `url` and `referrer` in SQL
//! ([`path_sql`], [`utm_sql`], [`referrer_domain_sql`]), which ClickHouse
//! computes as it reads those rows, and the migration fills the new
//! aggregates from the events already there, so no row is rewritten. The
//! SQL cuts as the Rust does for the URLs browsers send (their tests check
//! both agree); it does not resolve `.` and `..` segments, nor turn hosts
//! into punycode, and trims ASCII whitespace only.

use super::schema::{sessions_select, Aggregate, Statement, AGGREGATES};

/// The new `events` columns: name and the SQL that derives the value of a
/// row stored before them.
fn event_columns() -> Vec<(&'static str, String)> {
    let mut columns = vec![("path", path_sql("url"))];
    for name in UTM {
        columns.push((name, utm_sql("url", name)));
    }
    columns.push(("referrer_domain", referrer_domain_sql("url", "referrer")));
    columns
}

/// The landing URL's campaign fields.
const UTM: [&str; 5] = [
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
];

/// The session aggregates of version 3 (see `AGGREGATES` in
/// [`super::schema`]): the paths of the landing and the exit page views,
/// and the landing one's campaign and referrer's domain.
pub(super) const LANDING_AGGREGATES: &[Aggregate] = &[
    Aggregate(
        "entry_path",
        "argMinIf",
        "path, event_key, {pv}",
        "String, String, UInt8",
    ),
    Aggregate(
        "exit_path",
        "argMaxIf",
        "path, event_key, {pv}",
        "String, String, UInt8",
    ),
    Aggregate(
        "referrer_domain",
        "argMinIf",
        "referrer_domain, event_key, {pv}",
        "String, String, UInt8",
    ),
    Aggregate(
        "utm_source",
        "argMinIf",
        "utm_source, event_key, {pv}",
        "String, String, UInt8",
    ),
    Aggregate(
        "utm_medium",
        "argMinIf",
        "utm_medium, event_key, {pv}",
        "String, String, UInt8",
    ),
    Aggregate(
        "utm_campaign",
        "argMinIf",
        "utm_campaign, event_key, {pv}",
        "String, String, UInt8",
    ),
    Aggregate(
        "utm_term",
        "argMinIf",
        "utm_term, event_key, {pv}",
        "String, String, UInt8",
    ),
    Aggregate(
        "utm_content",
        "argMinIf",
        "utm_content, event_key, {pv}",
        "String, String, UInt8",
    ),
];

/// The steps of schema version 3: the `events` columns (with their
/// `DEFAULT`s for the rows already there) and the aggregates' columns in
/// `sessions_agg`, with the view that keeps it made again with every
/// aggregate (on 18.16 a view must give every column of its table), then
/// the aggregates of the events already there, the new ones and those of
/// the events inserted while there was no view (the others may count
/// twice: the aggregates do not mind).
pub(super) fn landing_schema(db: &str) -> Vec<Statement> {
    let mut steps: Vec<Statement> = event_columns()
        .into_iter()
        .map(|(column, default)| Statement::AddColumn {
            table: "events",
            column: column.to_owned(),
            definition: format!("String DEFAULT {default}"),
        })
        .collect();
    steps.push(Statement::Sql(format!(
        "DROP TABLE IF EXISTS {db}.sessions_mv"
    )));
    steps.extend(LANDING_AGGREGATES.iter().map(|a| Statement::AddColumn {
        table: "sessions_agg",
        column: format!("a_{}", a.0),
        definition: format!("AggregateFunction({}, {})", a.1, a.3),
    }));
    let select = sessions_select(db, AGGREGATES.iter().chain(LANDING_AGGREGATES));
    steps.push(Statement::Sql(format!(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.sessions_mv TO {db}.sessions_agg AS {select}"
    )));
    steps.push(Statement::Sql(format!(
        "INSERT INTO {db}.sessions_agg {select}"
    )));
    steps
}

/// A scheme, as the URL standard reads one (`https:`).
const SCHEME: &str = r"^[a-zA-Z][a-zA-Z0-9+.-]*:";

/// `page_path` of the URL `url` (an SQL expression) in SQL: tabs and
/// newlines dropped and the ends trimmed; after `scheme://host` (either
/// slash may be a backslash), or the whole text when it has no scheme, up
/// to the first `?` or `#`; `/` for a URL with a scheme and no `//`
/// (`mailto:…`); backslashes as slashes, a `/` in front when missing, and
/// the bytes of the URL standard's path percent-encode set encoded.
pub(crate) fn path_sql(url: &str) -> String {
    let trimmed = format!(
        concat!(
            r"replaceRegexpAll(replaceRegexpAll({url}, '[\\t\\n\\r]', ''), ",
            r"'^[\\x00-\\x20]+|[\\x00-\\x20]+$', '')"
        ),
        url = url
    );
    let cut = format!(
        concat!(
            r"replaceAll(multiIf(match(t, '{SCHEME}[/\\\\][/\\\\]'), ",
            r"extract(t, '{SCHEME}[/\\\\][/\\\\][^/\\\\?#]*([^?#]*)'), ",
            r"match(t, '{SCHEME}'), '/', extract(t, '^([^?#]*)')), '\\', '/')"
        ),
        SCHEME = SCHEME
    );
    let rooted = "multiIf(raw = '', '/', substring(raw, 1, 1) != '/', concat('/', raw), raw)";
    let encoded = r#"arrayStringConcat(arrayMap(c -> if(reinterpretAsUInt8(c) <= 32 OR reinterpretAsUInt8(c) >= 127 OR position('"<>`{}', c) > 0, concat('%', hex(c)), c), arrayMap(i -> substring(p, i + 1, 1), range(length(p)))))"#;
    // `arrayMap(x -> …, [value])[1]` names a value once, where SQL has no
    // `let`.
    format!(
        "arrayMap(t -> arrayMap(raw -> arrayMap(p -> {encoded}, [{rooted}])[1], [{cut}])[1], \
         [{trimmed}])[1]"
    )
}

/// The first non-blank value of the query parameter `name` (a literal
/// without quotes or backslashes) of the URL `url` (an SQL expression)
/// with a scheme, decoded (`+` is a space) and with its ends' ASCII
/// whitespace trimmed; empty for none.
pub(crate) fn utm_sql(url: &str, name: &str) -> String {
    let query = format!("if(match({url}, '{SCHEME}'), extract({url}, '^[^?#]*[?]([^#]*)'), '')");
    let decoded = |part: &str| format!("decodeURLComponent(replaceAll({part}, '+', ' '))");
    let key = decoded("if(position(kv, '=') > 0, substring(kv, 1, position(kv, '=') - 1), kv)");
    let value = decoded("if(position(kv, '=') > 0, substring(kv, position(kv, '=') + 1), '')");
    format!(
        concat!(
            "arrayFirst(v -> v != '', arrayMap(kv -> if({key} = '{name}', ",
            r"replaceRegexpAll({value}, '^\\s+|\\s+$', ''), ''), splitByChar('&', {query})))"
        ),
        key = key,
        name = name,
        value = value,
        query = query
    )
}

/// The host of the URL `url` (an SQL expression), lowercase, without
/// `www.`; empty without one.
fn host_sql(url: &str) -> String {
    format!(
        concat!(
            "replaceRegexpOne(lower(extract({url}, ",
            r"'{SCHEME}[/\\\\][/\\\\](?:[^/\\\\?#@]*@)?(\\[[^]/]*\\]|[^:/\\\\?#]*)')), '^www[.]', '')"
        ),
        url = url,
        SCHEME = SCHEME
    )
}

/// The host of the referrer `referrer` (a nullable SQL expression) when
/// it is another site's than the page `url`'s, as
/// [`Landing::referrer_domain`](crate::read::Landing); empty otherwise.
pub(crate) fn referrer_domain_sql(url: &str, referrer: &str) -> String {
    // Both hosts as lambda arguments: 18.16 loses a column captured by a
    // lambda in a column's `DEFAULT`.
    format!(
        "arrayMap((h, own) -> if(h != '' AND h != own, h, ''), [{}], [{}])[1]",
        host_sql(&format!("ifNull({referrer}, '')")),
        host_sql(url)
    )
}
