//! The ClickHouse store's SQL on two ClickHouse versions, with the same
//! answers: Debian's 18.16 (the server the other ClickHouse tests run) and
//! a current release, 26.x, run in-process by chDB (the PyPI package
//! `chdb-core`) through `tests/chdb/run.py`.
//!
//! The statements are the store's own, with values bound as the store
//! binds them (`waymark_ingest::clickhouse_sql`): the schema (every
//! version, a column added as the `ALTER` sent when it is missing), the
//! insert (every column; and a visit without the version-3 columns, as
//! stored before them, which their `DEFAULT`s compute), and every read of the read API — sessions,
//! stats, breakdowns, timeseries, realtime, funnels, profiles, with
//! filters — and the sweeper. The same events go into
//! both — on 18.16 through the store itself (its `RowBinary` insert), on
//! chDB as the `JSONEachRow` insert of the same rows — and each read's
//! answer (TabSeparated; sorted when the store takes the rows as a set) must
//! be the one recorded in `tests/chdb/answers.txt`. The 18.16 test makes
//! that file with `WAYMARK_BLESS=1`.
//!
//! Only with `WAYMARK_TEST_CLICKHOUSE=1` (18.16) and `WAYMARK_TEST_CHDB=1`
//! (chDB); `cargo xtask test` sets both. Otherwise each skips, saying so on
//! stderr (`support/optional.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use waymark_ingest::clickhouse_sql::{self, Read, Statement};
use waymark_ingest::read::{Dimension, Filter};
use waymark_ingest::{
    collector_end_id, ClickHouseStore, ClickHouseUrl, Cursor, Enrichment, EventCursor, EventSink,
    EventType, Interval, SessionQuery, StatsQuery, StoredEvent, SweepCursor,
};

#[path = "chdb/reports.rs"]
mod reports;
mod support;
use reports::report_reads;
use support::clickhouse::ClickHouse;

const T0: u64 = 1_700_000_000_000;
const MIN: u64 = 60_000;
const DB: &str = "versions";
/// Not the store's: keeps the replayed duplicate unmerged on both engines.
const STOP_MERGES: &str = "SYSTEM STOP MERGES versions.events";

fn answers_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/chdb/answers.txt")
}

/// An event of `session` on `site`, numbered `n` (its id and `seq`).
fn event(n: u32, site: &str, session: &str, kind: EventType, ts: u64, url: &str) -> StoredEvent {
    StoredEvent {
        event_id: format!("00000000-0000-4000-8000-{n:012}"),
        site: site.to_owned(),
        event_type: kind,
        name: (kind == EventType::Custom).then(|| "signup".to_owned()),
        ts,
        client_ts: ts,
        received_at: ts + 500,
        session_id: session.to_owned(),
        visitor_id: format!("v-{session}"),
        user_id: None,
        session_index: Some(1),
        seq: Some(n),
        previous_session_id: None,
        storage: Some("local".to_owned()),
        url: url.to_owned(),
        title: Some("A 'quoted' title\twith a tab".to_owned()),
        referrer: None,
        props: None,
        context: None,
        enrichment: Enrichment::default(),
    }
}

fn place(e: &mut StoredEvent, country: &str, city: Option<&str>, browser: &str, device: &str) {
    e.enrichment = Enrichment {
        country: Some(country.to_owned()),
        region: None,
        city: city.map(str::to_owned),
        browser: Some(browser.to_owned()),
        os: Some("macOS".to_owned()),
        device_type: Some(device.to_owned()),
        is_bot: device == "bot",
    };
}

/// The events: two inserts, the second repeating an event of the first
/// (a replay) and bringing late activity after the collector's end.
fn events() -> [Vec<StoredEvent>; 2] {
    use EventType::{Custom, PageView, VisitEnded};
    let shop = "shop";
    // s-1: a campaign landing, a user who signs up, the SDK's end; the
    // same ms twice, told apart by seq.
    let mut a = vec![
        event(
            1,
            shop,
            "s-1",
            PageView,
            T0,
            "https://shop.test/a?utm_source=news#top",
        ),
        event(2, shop, "s-1", PageView, T0 + MIN, "https://shop.test/b#x"),
        event(3, shop, "s-1", Custom, T0 + MIN, "https://shop.test/b"),
        event(
            4,
            shop,
            "s-1",
            VisitEnded,
            T0 + 3 * MIN,
            "https://shop.test/b",
        ),
    ];
    a[2].user_id = Some("u-1".to_owned());
    a[3].props = Some(json!({"reason": "pagehide"}).to_string());
    for e in &mut a {
        place(e, "DE", Some("Berlin"), "Chrome", "desktop");
    }
    // s-2: from a search engine, left idle.
    let mut b = vec![
        event(
            5,
            shop,
            "s-2",
            PageView,
            T0 + 10 * MIN,
            "https://shop.test/",
        ),
        event(
            6,
            shop,
            "s-2",
            PageView,
            T0 + 11 * MIN,
            "https://shop.test/a?x=1",
        ),
    ];
    b[0].referrer = Some("https://www.google.com/search".to_owned());
    for e in &mut b {
        place(e, "FR", None, "Safari", "mobile");
    }
    // s-3: a crawler.
    let mut c = vec![event(
        7,
        shop,
        "s-3",
        PageView,
        T0 + 20 * MIN,
        "https://shop.test/",
    )];
    place(&mut c[0], "US", None, "Googlebot", "bot");
    // s-4: ended by a collector, then active again.
    let mut d = vec![
        event(
            8,
            shop,
            "s-4",
            PageView,
            T0 + 30 * MIN,
            "https://shop.test/c",
        ),
        event(
            9,
            shop,
            "s-4",
            VisitEnded,
            T0 + 31 * MIN,
            "https://shop.test/c",
        ),
    ];
    d[1].event_id = collector_end_id(shop, "s-4");
    d[1].props = Some(json!({"reason": "idle"}).to_string());
    // The same session id on another site, and a visit a day later.
    let e = vec![
        event(
            10,
            "blog",
            "s-1",
            PageView,
            T0 + 5 * MIN,
            "https://blog.test/post",
        ),
        event(
            11,
            "blog",
            "s-5",
            PageView,
            T0 + 24 * 60 * MIN,
            "https://blog.test/",
        ),
    ];
    let first: Vec<StoredEvent> = [a.clone(), b, c, d, e].concat();
    let mut replayed = a[0].clone();
    replayed.received_at += 10 * MIN;
    let late = event(
        12,
        shop,
        "s-4",
        PageView,
        T0 + 40 * MIN,
        "https://shop.test/d",
    );
    [first, vec![replayed, late]]
}

/// The columns schema version 3 added to `events`, which a row stored
/// before it lacks: their `DEFAULT`s compute them.
const VERSION_3_COLUMNS: [&str; 7] = [
    "path",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "referrer_domain",
];

/// A visit as a collector before schema version 3 wrote it (no path,
/// campaign or referrer domain), inserted once the schema is current.
fn version_2_events() -> Vec<StoredEvent> {
    let mut landing = event(
        13,
        "shop",
        "s-6",
        EventType::PageView,
        T0 + 50 * MIN,
        "https://shop.test/a/?utm_source=old&utm_campaign=spring#f",
    );
    landing.referrer = Some("https://news.example.org/x?y".to_owned());
    let next = event(
        14,
        "shop",
        "s-6",
        EventType::PageView,
        T0 + 52 * MIN,
        "https://shop.test/b?q=1",
    );
    let mut visit = vec![landing, next];
    for e in &mut visit {
        place(e, "FR", Some("Lyon"), "Firefox", "desktop");
    }
    visit
}

/// The insert of [`version_2_events`] without the version-3 columns.
fn version_2_insert() -> String {
    let sql = clickhouse_sql::insert(DB, &version_2_events()).unwrap();
    let mut lines = sql.lines();
    let head = lines.next().unwrap();
    let mut out = head.to_owned();
    for column in VERSION_3_COLUMNS {
        out = out.replace(&format!(", {column}"), "");
    }
    assert!(!out.contains("referrer_domain"), "{out}");
    out.push('\n');
    for line in lines {
        let mut row: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
        for column in VERSION_3_COLUMNS {
            assert!(row.remove(column).is_some(), "{column} in {line}");
        }
        out.push_str(&Value::Object(row).to_string());
        out.push('\n');
    }
    out
}

fn all_sessions(site: Option<&str>, limit: usize) -> SessionQuery {
    SessionQuery {
        site: site.map(str::to_owned),
        from: None,
        to: None,
        visitor_id: None,
        user_id: None,
        is_bot: None,
        limit,
        cursor: None,
        filters: Vec::new(),
    }
}

/// Every read the store makes, with values that find something.
fn reads() -> Vec<Read> {
    let [first, _] = events();
    let end = |id: &str| {
        let end = first
            .iter()
            .find(|e| {
                e.session_id == id && e.site == "shop" && e.event_type == EventType::VisitEnded
            })
            .unwrap();
        clickhouse_sql::end_key(end)
    };
    let one = |site: &str, id: &str| Read::Session {
        site: site.to_owned(),
        session_id: id.to_owned(),
    };
    let page = |id: &str, end: (String, u64), after: Option<EventCursor>| Read::SessionEvents {
        site: "shop".to_owned(),
        session_id: id.to_owned(),
        end,
        after,
        limit: 3,
    };
    let shop = |id: &str| ("shop".to_owned(), id.to_owned());
    vec![
        one("shop", "s-1"),
        one("shop", "s-4"),
        one("blog", "s-1"),
        one("shop", "none"),
        page("s-1", (end("s-1"), T0 + MIN), None),
        page(
            "s-1",
            (end("s-1"), T0 + MIN),
            Some(EventCursor {
                ts: T0 + MIN,
                seq: Some(2),
                event_id: first[1].event_id.clone(),
            }),
        ),
        page("s-4", (end("s-4"), T0 + 40 * MIN), None),
        Read::SessionRows {
            site: "shop".to_owned(),
            session_id: "s-1".to_owned(),
        },
        Read::SessionSites {
            session_id: "s-1".to_owned(),
            limit: 10,
        },
        Read::RecentEvents {
            site: Some("shop".to_owned()),
            limit: 5,
        },
        Read::RecentEvents {
            site: None,
            limit: 100,
        },
        Read::Sweep {
            idle_before: T0 + 60 * MIN,
            after: None,
            limit: 10,
            sessions: vec![
                shop("s-2"),
                shop("s-3"),
                ("blog".to_owned(), "s-1".to_owned()),
            ],
        },
        Read::Sweep {
            idle_before: T0 + 60 * MIN,
            after: Some(SweepCursor {
                last_seen_at: T0 + 11 * MIN,
                site: "shop".to_owned(),
                session_id: "s-2".to_owned(),
            }),
            limit: 1,
            sessions: vec![shop("s-3")],
        },
        Read::Sessions(all_sessions(None, 100)),
        Read::Sessions(SessionQuery {
            from: Some(T0),
            to: Some(T0 + 60 * MIN),
            is_bot: Some(false),
            cursor: Some(Cursor {
                started_at: T0 + 30 * MIN,
                session_id: "s-4".to_owned(),
            }),
            ..all_sessions(Some("shop"), 1)
        }),
        Read::Sessions(SessionQuery {
            user_id: Some("u-1".to_owned()),
            visitor_id: Some("v-s-1".to_owned()),
            ..all_sessions(Some("shop"), 10)
        }),
        Read::Stats(StatsQuery {
            site: Some("shop".to_owned()),
            from: T0 - 60 * MIN,
            to: T0 + 2 * 24 * 60 * MIN,
            include_bots: false,
            interval: Interval::Day,
            filters: Vec::new(),
        }),
        Read::Stats(StatsQuery {
            site: None,
            from: T0 - 60 * MIN,
            to: T0 + 2 * 24 * 60 * MIN,
            include_bots: true,
            interval: Interval::Hour,
            filters: Vec::new(),
        }),
    ]
    .into_iter()
    .chain(report_reads())
    // Last, so that the statements above keep their numbers.
    .chain([
        // The sessions list among shop's newest flat rows: the start of
        // the newest (how many versions a session has differs with the
        // compactions run, so no more), then the page since s-2's start.
        Read::NewestSessions {
            query: all_sessions(Some("shop"), 1),
            rows: 1,
            since: T0 + 10 * MIN,
        },
        Read::NewestSessions {
            query: SessionQuery {
                to: Some(T0 + 60 * MIN),
                is_bot: Some(false),
                cursor: Some(Cursor {
                    started_at: T0 + 30 * MIN,
                    session_id: "s-4".to_owned(),
                }),
                filters: vec![Filter {
                    dimension: Dimension::Country,
                    value: "DE".to_owned(),
                }],
                ..all_sessions(Some("shop"), 2)
            },
            rows: 1,
            since: T0,
        },
        // The read mirror's: the compaction's rows (the store's own
        // compactions on 18.16 log real times, before it), and shop's
        // delta since the first touch, as of the compaction.
        Read::Mirror {
            site: Some("shop".to_owned()),
            since: COMPACTED_AT,
            bound: 0,
            version: COMPACTED_AT,
        },
    ])
    .collect()
}

/// When the compaction both runs before the reads began (epoch seconds,
/// 2100-01-01): every session is read from `sessions_flat`.
const COMPACTED_AT: u64 = 4_102_444_800;

/// The read statements, each named `<n> <name>`.
fn read_statements() -> Vec<(String, Statement)> {
    reads()
        .iter()
        .flat_map(|read| clickhouse_sql::statements(DB, read))
        .enumerate()
        .map(|(n, s)| (format!("{n} {}", s.name), s))
        .collect()
}

/// `output` as recorded: its lines sorted unless the order is the answer,
/// and the visits' page and goal arrays in key order for the mirror's rows
/// ([`pairs_in_key_order`]).
fn recorded(statement: &Statement, output: &str) -> String {
    let mirror = statement.name.starts_with("mirror.");
    let mut lines: Vec<String> = output
        .lines()
        .map(|l| {
            if mirror {
                pairs_in_key_order(l)
            } else {
                l.to_owned()
            }
        })
        .collect();
    if !statement.ordered {
        lines.sort_unstable();
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// A TabSeparated row with its parallel arrays of keys and counts (a
/// field `['…',…]` followed by one `[n,…]`) sorted by key: `groupArray`
/// gives them in whatever order the engine aggregated in, which the store
/// does not rely on. For this test's values (no comma or quote in a key).
fn pairs_in_key_order(line: &str) -> String {
    let mut fields: Vec<String> = line.split('\t').map(str::to_owned).collect();
    let list = |field: &str| -> Vec<String> {
        let inner = &field[1..field.len() - 1];
        if inner.is_empty() {
            Vec::new()
        } else {
            inner.split(',').map(str::to_owned).collect()
        }
    };
    for i in 0..fields.len().saturating_sub(1) {
        let (keys, counts) = (&fields[i], &fields[i + 1]);
        if !(keys.starts_with("['") && counts.starts_with('[') && !counts.starts_with("['")) {
            continue;
        }
        let mut pairs: Vec<(String, String)> = list(keys).into_iter().zip(list(counts)).collect();
        pairs.sort();
        let (keys, counts): (Vec<String>, Vec<String>) = pairs.into_iter().unzip();
        fields[i] = format!("[{}]", keys.join(","));
        fields[i + 1] = format!("[{}]", counts.join(","));
    }
    fields.join("\t")
}

/// The answers as `answers.txt` holds them: `== <n> <name>`, then its rows.
fn answers_text(answers: &[(String, String)]) -> String {
    answers
        .iter()
        .map(|(name, rows)| format!("== {name}\n{rows}"))
        .collect()
}

/// Fails with every statement whose answer is not the recorded one.
fn assert_recorded(engine: &str, answers: &[(String, String)]) {
    let expected = std::fs::read_to_string(answers_file()).expect("tests/chdb/answers.txt");
    let got = answers_text(answers);
    if got == expected {
        return;
    }
    let statements = read_statements();
    let mut wrong = Vec::new();
    let recorded: Vec<&str> = expected.split("== ").skip(1).collect();
    for (i, (name, rows)) in answers.iter().enumerate() {
        let want = recorded.get(i).copied().unwrap_or("");
        let have = format!("{name}\n{rows}");
        if have != want {
            wrong.push(format!(
                "{engine}: {name}\n  sql: {}\n  recorded: {want:?}\n  answered: {have:?}",
                statements[i].1.sql
            ));
        }
    }
    panic!(
        "{} answers differ from tests/chdb/answers.txt ({} statements recorded, {} answered):\n{}",
        wrong.len(),
        recorded.len(),
        answers.len(),
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn clickhouse_18_gives_the_recorded_answers() {
    let Some(server) = ClickHouse::start_if_wanted() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url: ClickHouseUrl = server.url(DB).parse().unwrap();
    let store = Arc::new(
        ClickHouseStore::open(&url, dir.path(), 1 << 30, Duration::from_millis(20))
            .await
            .unwrap(),
    );
    // Duplicates stay as inserted (a merge would fold them, whenever it
    // runs), so every answer is fixed.
    server.query(STOP_MERGES);
    for insert in events() {
        store.append(insert).await.unwrap();
        store.sync().await.unwrap();
    }
    server.query(&version_2_insert());
    for sql in clickhouse_sql::compaction(DB, COMPACTED_AT) {
        server.query(&sql);
    }
    let answers: Vec<(String, String)> = read_statements()
        .into_iter()
        .map(|(name, statement)| {
            let output = server.query(&statement.sql);
            (name, recorded(&statement, &output))
        })
        .collect();
    Arc::clone(&store).shutdown().await;
    if std::env::var_os("WAYMARK_BLESS").is_some() {
        std::fs::write(answers_file(), answers_text(&answers)).unwrap();
    }
    assert_recorded("ClickHouse 18.16", &answers);
}

#[test]
fn current_clickhouse_runs_the_schema_insert_and_reads_with_the_recorded_answers() {
    let Some(python) = support::optional::chdb_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut statements: Vec<Value> = clickhouse_sql::schema(DB)
        .into_iter()
        .enumerate()
        .map(|(n, sql)| json!({"name": format!("schema {n}"), "sql": sql}))
        .collect();
    statements.push(json!({"name": "stop merges", "sql": STOP_MERGES}));
    for (n, insert) in events().iter().enumerate() {
        let sql = clickhouse_sql::insert(DB, insert).unwrap();
        statements.push(json!({"name": format!("insert {n}"), "sql": sql}));
    }
    statements.push(json!({"name": "insert version 2", "sql": version_2_insert()}));
    for (n, sql) in clickhouse_sql::compaction(DB, COMPACTED_AT)
        .into_iter()
        .enumerate()
    {
        statements.push(json!({"name": format!("compaction {n}"), "sql": sql}));
    }
    let reads = read_statements();
    for (name, statement) in &reads {
        statements.push(json!({"name": name, "sql": statement.sql}));
    }
    let job = dir.path().join("statements.json");
    let out = dir.path().join("answers.json");
    let job_json = json!({"path": dir.path().join("db"), "statements": statements});
    std::fs::write(&job, job_json.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/chdb/run.py");
    let status = Command::new(&python)
        .arg(&script)
        .arg(&job)
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    assert!(
        status.success(),
        "{} {} failed",
        python.display(),
        script.display()
    );
    let result: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let version = result["version"].as_str().unwrap();
    assert!(
        version.split('.').next().unwrap().parse::<u32>().unwrap() >= 24,
        "chDB runs ClickHouse {version}, not a current release"
    );
    let answers = result["answers"].as_array().unwrap();
    assert_eq!(answers.len(), statements.len());
    let failed: Vec<String> = answers
        .iter()
        .zip(&statements)
        .filter_map(|(answer, statement)| {
            let error = answer.get("error")?.as_str()?;
            Some(format!(
                "{}: {error}\n  sql: {}",
                answer["name"], statement["sql"]
            ))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "ClickHouse {version} refused {} statements:\n{}",
        failed.len(),
        failed.join("\n")
    );
    let read_answers: Vec<(String, String)> = answers[statements.len() - reads.len()..]
        .iter()
        .zip(&reads)
        .map(|(answer, (name, statement))| {
            (
                name.clone(),
                recorded(statement, answer["output"].as_str().unwrap()),
            )
        })
        .collect();
    assert_recorded(&format!("ClickHouse {version}"), &read_answers);
}
