//! ClickHouse's compacted sessions (`sessions_flat`) answer as the merged
//! aggregate states do: random events (late, reordered, duplicated, ended
//! by the SDK or the sweeper, bots, two sites) go into two databases in the
//! same batches; one is compacted after every batch, the other never is
//! (its reads merge every session from `sessions_agg`); then every read of
//! the read API is asked of both.
//!
//! Only with `WAYMARK_TEST_CLICKHOUSE=1`; otherwise it skips, saying so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use proptest::prelude::*;
use support::clickhouse::ClickHouse;
use waymark_ingest::read::{
    BreakdownQuery, Dimension, Filter, FunnelQuery, FunnelStep, ReadQuery, TimeseriesQuery,
};
use waymark_ingest::{
    ClickHouseStore, ClickHouseUrl, Cursor, Enrichment, EventSink, EventType, Interval,
    SessionQuery, SessionReader, SessionSweeper, StatsQuery, StoredEvent,
};

const BASE: u64 = 1_700_000_000_000;
const SLOT: u64 = 1_200_000;
const PATHS: [&str; 3] = ["/", "/pricing", "/docs"];

/// The shared server, or `None` when the ClickHouse tests skip (which
/// `support::optional::clickhouse` says, naming the test).
fn server() -> Option<&'static ClickHouse> {
    static SERVER: OnceLock<ClickHouse> = OnceLock::new();
    support::optional::clickhouse().then(|| SERVER.get_or_init(ClickHouse::start))
}

/// An event from small numbers: site, session, kind, page, time slot,
/// id (shared ids are duplicates), bot, country.
type Spec = (u8, u8, u8, u8, u8, u8, bool, u8);

fn specs(max: usize) -> impl Strategy<Value = Vec<Spec>> {
    proptest::collection::vec(
        (
            0u8..2,
            0u8..5,
            0u8..5,
            0u8..3,
            0u8..8,
            0u8..40,
            proptest::bool::weighted(0.2),
            0u8..3,
        ),
        1..max,
    )
}

fn event(&(site, session, kind, page, slot, id, bot, country): &Spec) -> StoredEvent {
    let event_type = [
        EventType::PageView,
        EventType::PageView,
        EventType::Custom,
        EventType::Click,
        EventType::VisitEnded,
    ][usize::from(kind)];
    let ts = BASE + u64::from(slot) * SLOT + u64::from(id);
    let campaign = if page == 1 { "?utm_source=mail" } else { "" };
    StoredEvent {
        event_id: format!("e{id}"),
        site: format!("site{site}"),
        event_type,
        name: (event_type == EventType::Custom).then(|| format!("goal{}", page % 2)),
        ts,
        client_ts: ts,
        received_at: ts,
        session_id: format!("s{session}"),
        visitor_id: format!("v{}", session % 3),
        user_id: (session == 4).then(|| "u1".to_owned()),
        session_index: None,
        seq: None,
        previous_session_id: None,
        storage: None,
        url: format!("https://shop.example{}{campaign}", PATHS[usize::from(page)]),
        title: None,
        referrer: (slot % 3 == 0).then(|| "https://news.example/a".to_owned()),
        props: None,
        context: None,
        enrichment: Enrichment {
            country: ["DE", "FR"]
                .get(usize::from(country))
                .map(|c| (*c).to_owned()),
            browser: Some(if bot { "Bot" } else { "Firefox" }.to_owned()),
            is_bot: bot,
            ..Enrichment::default()
        },
    }
}

async fn open(db: &str) -> (ClickHouseStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url: ClickHouseUrl = server().unwrap().url(db).parse().unwrap();
    let store = ClickHouseStore::open(&url, dir.path(), 1 << 30, Duration::from_millis(10))
        .await
        .unwrap();
    (store, dir)
}

/// Every read of the read API over the whole range, with and without
/// filters, as text to compare.
async fn answers(store: &ClickHouseStore) -> Vec<String> {
    let range = |site: Option<&str>, filters: Vec<Filter>| ReadQuery {
        site: site.map(str::to_owned),
        from: BASE + SLOT,
        to: BASE + 6 * SLOT,
        include_bots: site.is_none(),
        filters,
    };
    let filter = |dimension, value: &str| Filter {
        dimension,
        value: value.to_owned(),
    };
    let mut out = Vec::new();
    for (site, filters) in [
        (Some("site0"), vec![]),
        (None, vec![]),
        (Some("site0"), vec![filter(Dimension::Country, "DE")]),
        (Some("site1"), vec![filter(Dimension::Page, "/pricing")]),
    ] {
        let sessions = range(site, filters.clone());
        let stats = StatsQuery {
            site: sessions.site.clone(),
            from: sessions.from,
            to: sessions.to,
            include_bots: sessions.include_bots,
            interval: Interval::Hour,
            filters,
        };
        out.push(format!("{:?}", store.stats(stats).await.unwrap()));
        for dimension in [
            Dimension::EntryPage,
            Dimension::ExitPage,
            Dimension::Page,
            Dimension::EventName,
            Dimension::Source,
            Dimension::UtmSource,
            Dimension::Country,
            Dimension::Browser,
        ] {
            let q = BreakdownQuery {
                sessions: sessions.clone(),
                dimension,
                limit: 10,
            };
            out.push(format!("{:?}", store.breakdown(q).await.unwrap()));
        }
        let q = TimeseriesQuery {
            sessions: sessions.clone(),
            interval: Interval::Hour,
        };
        out.push(format!("{:?}", store.timeseries(q).await.unwrap()));
        let q = FunnelQuery {
            sessions: sessions.clone(),
            steps: vec![
                FunnelStep::Page("/".to_owned()),
                FunnelStep::Event("goal0".to_owned()),
            ],
        };
        out.push(format!("{:?}", store.funnel(q).await.unwrap()));
        let q = SessionQuery {
            site: sessions.site.clone(),
            limit: 50,
            ..SessionQuery::default()
        };
        out.push(format!("{:?}", store.sessions(q).await.unwrap()));
    }
    out.extend(session_pages(store).await);
    // Each session alone (`/v1/sessions/{id}`), and one never seen.
    for site in ["site0", "site1"] {
        for session in ["s0", "s1", "s2", "s3", "s4", "s7", "s9"] {
            out.push(format!("{:?}", store.session(site, session).await.unwrap()));
        }
    }
    out
}

/// The sessions list page by page, 1–2 sessions a page (fewer than the
/// flat rows, so that its pages come from the newest rows), of every site
/// and of one, humans only or with a filter, within a range or not.
async fn session_pages(store: &ClickHouseStore) -> Vec<String> {
    let country = |value: &str| Filter {
        dimension: Dimension::Country,
        value: value.to_owned(),
    };
    let mut out = Vec::new();
    for (limit, site, is_bot, from, to, filters) in [
        (1, None, None, None, None, vec![]),
        (2, Some("site0"), Some(false), None, None, vec![]),
        (
            1,
            Some("site0"),
            None,
            Some(BASE + 2 * SLOT),
            Some(BASE + 5 * SLOT),
            vec![],
        ),
        (
            1,
            Some("site1"),
            None,
            None,
            Some(BASE + 4 * SLOT),
            vec![country("FR")],
        ),
        (2, None, Some(true), Some(BASE + SLOT), None, vec![]),
    ] {
        let mut q = SessionQuery {
            site: site.map(str::to_owned),
            from,
            to,
            is_bot,
            limit,
            filters,
            ..SessionQuery::default()
        };
        for _ in 0..12 {
            let page = store.sessions(q.clone()).await.unwrap();
            out.push(format!("{page:?}"));
            let Some(next) = page.next_cursor else { break };
            q.cursor = Some(Cursor::decode(&next).unwrap());
        }
    }
    out
}

/// The batches with every event whose site, session and id came before
/// made a copy of the first: a retry or a replay sends the same event.
/// (Two events under one id with different contents and the same time
/// tie in the states' merge order, so which one a session's `browser`
/// takes is arbitrary, and a compacted store can take the other one: see
/// docs/clickhouse.md, "Exactly once".)
fn retried(batches: &[Vec<Spec>]) -> Vec<Vec<Spec>> {
    let mut first = std::collections::HashMap::new();
    batches
        .iter()
        .map(|batch| {
            batch
                .iter()
                .map(|spec| *first.entry((spec.0, spec.1, spec.5)).or_insert(*spec))
                .collect()
        })
        .collect()
}

/// Cuts of each site's flat rows into key ranges (read side by side) that
/// fall among its sessions `s0`…`s7`, one range empty (two equal cuts),
/// newer than any a compaction writes: reads must still take every session
/// once. (What a compaction writes samples one id in 64, so with a handful
/// of sessions its cuts are mostly none.)
fn seed_cuts(db: &str) {
    server().unwrap().query(&format!(
        "INSERT INTO {db}.flat_splits VALUES \
         ('site0', 4, '2100-01-01 00:00:00', ['s1', 's3', 's3']), \
         ('site1', 4, '2100-01-01 00:00:00', ['s0', 's2', 's5'])"
    ));
}

/// `site0`'s stats over every slot, bots included.
async fn site0_stats(
    store: &ClickHouseStore,
) -> Result<waymark_ingest::Stats, waymark_ingest::StoreError> {
    store
        .stats(StatsQuery {
            site: Some("site0".to_owned()),
            from: BASE,
            to: BASE + 8 * SLOT,
            interval: Interval::Day,
            include_bots: true,
            filters: Vec::new(),
        })
        .await
}

async fn case(n: u32, batches: &[Vec<Spec>], sweep_after: usize) {
    let (merged, _a) = open(&format!("flat_{n}_merged")).await;
    // The reference: every session merged from its states, in SQL.
    merged.set_read_mirror(false);
    let (compacted, _b) = open(&format!("flat_{n}_compacted")).await;
    seed_cuts(&format!("flat_{n}_compacted"));
    support::clickhouse::read_mirror_ready(&compacted).await;
    for (i, batch) in retried(batches).iter().enumerate() {
        let events: Vec<StoredEvent> = batch.iter().map(event).collect();
        for store in [&merged, &compacted] {
            store.append(events.clone()).await.unwrap();
            store.sync().await.unwrap();
            if i == sweep_after {
                let idle_before = BASE + 4 * SLOT;
                store
                    .sweep(idle_before + 1, idle_before, None, 100)
                    .await
                    .unwrap();
                store.sync().await.unwrap();
            }
        }
        // Touch times are whole seconds: vouch for everything so far.
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        compacted.compact_with_margin(0).await.unwrap();
        // Between compactions the mirror takes this one's rows in, then a
        // read writes the delta over them, which later rows must win over.
        compacted.refresh_read_mirror().await.unwrap();
        site0_stats(&compacted).await.unwrap();
    }
    // Then events no compaction vouches for, which the compacted store
    // reads from the delta: the newest visit of each site, and a late
    // event of one before.
    let tail: Vec<StoredEvent> = [
        (0, 7, 0, 0, 7, 41, false, 0),
        (1, 7, 0, 1, 7, 42, false, 1),
        (0, 0, 0, 2, 0, 43, false, 0),
    ]
    .iter()
    .map(event)
    .collect();
    for store in [&merged, &compacted] {
        store.append(tail.clone()).await.unwrap();
        store.sync().await.unwrap();
    }
    let expected = answers(&merged).await;
    assert!(compacted.read_mirror_ready());
    let found = answers(&compacted).await;
    for (e, f) in expected.iter().zip(&found) {
        assert_eq!(e, f, "compacted reads (mirror) differ from merged ones");
    }
    let (sessions, bound) = compacted.read_mirror_held();
    assert!(
        sessions > 0 && bound > 0,
        "the mirror took the compactions in"
    );
    compacted.set_read_mirror(false);
    let found = answers(&compacted).await;
    for (e, f) in expected.iter().zip(&found) {
        assert_eq!(e, f, "compacted reads (SQL) differ from merged ones");
    }
    // A second collector's mirror, built from the flat rows as they are.
    let (late, _c) = open(&format!("flat_{n}_compacted")).await;
    support::clickhouse::read_mirror_ready(&late).await;
    let found = answers(&late).await;
    for (e, f) in expected.iter().zip(&found) {
        assert_eq!(
            e, f,
            "reads of a mirror built later differ from merged ones"
        );
    }
    for store in [merged, compacted, late] {
        Arc::new(store).shutdown().await;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3, ..ProptestConfig::default() })]

    #[test]
    fn compacted_sessions_answer_as_the_merged_states(
        batches in proptest::collection::vec(specs(25), 1..4),
        sweep_after in 0usize..4,
    ) {
        if server().is_none() {
            return Ok(());
        }
        static CASE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::runtime::Runtime::new().unwrap().block_on(case(n, &batches, sweep_after));
    }
}

/// An erasure while compactions run (each collector compacts every 10 s,
/// vouching for sessions touched a minute before): a compaction that read
/// `sessions_agg` before the erasure's delete reached it must not write the
/// erased sessions into `sessions_flat` after that table's delete, where
/// no delete would ever see them.
#[test]
fn an_erasure_leaves_no_flat_row_whatever_compactions_run_beside_it() {
    use waymark_ingest::read::Person;
    use waymark_ingest::Lifecycle;
    let Some(server) = server() else {
        return;
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = "flat_erasure_race";
        let (store, _dir) = open(db).await;
        let store = Arc::new(store);
        for round in 0..5_u8 {
            let events: Vec<StoredEvent> = (0..6_u8)
                .map(|i| {
                    let mut e = event(&(0, i % 3, 0, i % 3, i, round * 6 + i, false, 0));
                    e.visitor_id = "v-erased".to_owned();
                    e.session_id = format!("s{round}-{}", i % 3);
                    e
                })
                .collect();
            store.append(events).await.unwrap();
            store.sync().await.unwrap();
            store.compact().await.unwrap();
            let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let compacting = {
                let (store, done) = (store.clone(), done.clone());
                tokio::spawn(async move {
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        store.compact().await.unwrap();
                    }
                })
            };
            let erased = store
                .erase(Person::Visitor("v-erased".to_owned()))
                .await
                .unwrap();
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            assert_eq!(erased.sessions, 3, "{erased:?}");
            compacting.await.unwrap();
            store.compact().await.unwrap();
            let left = server.query(&format!(
                "SELECT count() FROM {db}.sessions_flat WHERE visitor_id = 'v-erased'"
            ));
            assert_eq!(
                left.trim(),
                "0",
                "round {round}: flat rows of the erased visitor"
            );
        }
        store.shutdown().await;
    });
}

/// `/v1/realtime` at the real clock reads only the sessions touched in its
/// window (and in the hour an event's time may be ahead of its arrival,
/// and ten minutes' slack), which is every session active in it, instead
/// of the site's every visit (3.7–5 s at 7 M events). A session's touches
/// dropped by hand after it was compacted make the narrowing visible: it
/// is still active by its time, and a read of every visit counted it.
#[test]
fn realtime_at_the_real_clock_reads_the_sessions_touched_in_its_window() {
    use waymark_ingest::read::RealtimeQuery;
    use waymark_ingest::{Clock, SystemClock};
    let Some(server) = server() else {
        return;
    };
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = "flat_realtime";
        let (store, _dir) = open(db).await;
        let now = SystemClock.now_ms();
        let at = |session: &str, visitor: &str, page: u8, ts: u64, bot: bool| {
            let mut e = event(&(0, 0, 0, page, 0, 0, bot, 0));
            e.event_id = format!("{session}-{ts}");
            e.session_id = session.to_owned();
            e.visitor_id = visitor.to_owned();
            (e.ts, e.client_ts, e.received_at) = (ts, ts, ts);
            e
        };
        // Active a minute ago, then compacted and its touches dropped.
        store
            .append(vec![at("untouched", "v0", 0, now - 60_000, false)])
            .await
            .unwrap();
        store.sync().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        store.compact_with_margin(0).await.unwrap();
        let partitions = server.query(&format!(
            "SELECT DISTINCT partition FROM system.parts \
             WHERE database = '{db}' AND table = 'sessions_touched' AND active"
        ));
        for partition in partitions.lines() {
            server.query(&format!(
                "ALTER TABLE {db}.sessions_touched DROP PARTITION {partition}"
            ));
        }
        store
            .append(vec![
                // On /pricing two minutes ago: active.
                at("a", "v1", 1, now - 120_000, false),
                // Ten minutes ago: not.
                at("b", "v2", 2, now - 600_000, false),
                // Half an hour ahead (a time the collector takes up to an
                // hour ahead): active, as a read of every visit says.
                at("c", "v3", 2, now + 1_800_000, false),
                // A bot a minute ago: not counted.
                at("bot", "v4", 0, now - 60_000, true),
            ])
            .await
            .unwrap();
        store.sync().await.unwrap();
        let realtime = |since: u64| RealtimeQuery {
            site: Some("site0".to_owned()),
            since,
            include_bots: false,
            filters: Vec::new(),
            limit: 10,
        };
        let pages = |r: &waymark_ingest::read::Realtime| {
            r.pages
                .iter()
                .map(|p| (p.key.clone(), p.visitors))
                .collect::<Vec<_>>()
        };
        for compacted in [false, true] {
            if compacted {
                tokio::time::sleep(Duration::from_millis(1_100)).await;
                store.compact_with_margin(0).await.unwrap();
            }
            let r = store.realtime(realtime(now - 300_000)).await.unwrap();
            assert_eq!(r.visitors, 2, "compacted: {compacted}: {r:?}");
            assert_eq!(
                pages(&r),
                [("/docs".to_owned(), 1), ("/pricing".to_owned(), 1)],
                "compacted: {compacted}"
            );
        }
        // A window not within the last day (a test's clock) reads every
        // visit: the untouched one too.
        // (v0 to v3; not the bot.)
        let r = store
            .realtime(realtime(now - 2 * 86_400_000))
            .await
            .unwrap();
        assert_eq!(r.visitors, 4, "{r:?}");
        Arc::new(store).shutdown().await;
    });
}

/// An erasure through another collector: this one's read mirror holds the
/// erased visitor's compacted sessions, and its next aggregate read must
/// not count them (it sees the mutation, reads in SQL and builds anew).
#[test]
fn the_read_mirror_forgets_what_another_collector_erased() {
    use waymark_ingest::read::Person;
    use waymark_ingest::Lifecycle;
    if server().is_none() {
        return;
    }
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = "flat_mirror_erasure";
        let (reader, _a) = open(db).await;
        let (eraser, _b) = open(db).await;
        support::clickhouse::read_mirror_ready(&reader).await;
        let events: Vec<StoredEvent> = (0..4_u8)
            .map(|i| {
                let mut e = event(&(0, i, 0, 0, i, i, false, 0));
                e.visitor_id = if i == 0 { "v-erased" } else { "v-kept" }.to_owned();
                e
            })
            .collect();
        eraser.append(events).await.unwrap();
        eraser.sync().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        eraser.compact_with_margin(0).await.unwrap();
        let stats = || site0_stats(&reader);
        let before = stats().await.unwrap();
        assert_eq!((before.visits, before.visitors), (4, 2), "{before:?}");
        let (held, _) = reader.read_mirror_held();
        assert_eq!(held, 4, "the mirror took the compaction in");
        let erased = Arc::new(eraser)
            .erase(Person::Visitor("v-erased".to_owned()))
            .await
            .unwrap();
        assert_eq!(erased.sessions, 1, "{erased:?}");
        let after = stats().await.unwrap();
        assert_eq!((after.visits, after.visitors), (3, 1), "{after:?}");
        support::clickhouse::read_mirror_ready(&reader).await;
        let (held, _) = reader.read_mirror_held();
        assert_eq!(held, 3, "the mirror was built anew");
        let again = stats().await.unwrap();
        assert_eq!((again.visits, again.visitors), (3, 1), "{again:?}");
    });
}

/// This collector's retention pass (every sweep, when `--retention-days`
/// is set) takes its sessions out of the read mirror itself: the answers
/// drop them, and the mirror is not built anew (a rebuild would send
/// reads to SQL for seconds every minute at a million visits).
#[test]
fn retention_takes_sessions_out_of_the_read_mirror_without_a_rebuild() {
    use waymark_ingest::Lifecycle;
    if server().is_none() {
        return;
    }
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (store, _dir) = open("flat_mirror_retention").await;
        let store = Arc::new(store);
        support::clickhouse::read_mirror_ready(&store).await;
        // Sessions 0–3 in slots 0–3, one each.
        let events: Vec<StoredEvent> = (0..4_u8)
            .map(|i| event(&(0, i, 0, 0, i, i, false, 0)))
            .collect();
        store.append(events).await.unwrap();
        store.sync().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        store.compact_with_margin(0).await.unwrap();
        store.refresh_read_mirror().await.unwrap();
        let stats = || site0_stats(&store);
        assert_eq!(stats().await.unwrap().visits, 4);
        assert_eq!(store.read_mirror_held().0, 4);
        // Every session started before slot 2.
        let expired = store.expire(BASE + 2 * SLOT, 100).await.unwrap();
        assert_eq!(expired.sessions, 2, "{expired:?}");
        assert_eq!(store.read_mirror_held().0, 2, "taken out of the mirror");
        assert_eq!(stats().await.unwrap().visits, 2);
        assert!(
            store.read_mirror_ready(),
            "and the mirror was not built anew"
        );
    });
}
