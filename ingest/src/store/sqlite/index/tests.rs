//! The read index answers as the SQL does: random sites, sessions and
//! events (late, reordered, duplicated, ended by the sweeper, bots, two
//! sites) go through the real store, then random questions are asked of
//! both, on the index the writer kept current and on one built at open
//! while appends went on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::super::{lock, queries, reports, SqliteStore};
use crate::event::{Enrichment, EventType, StoredEvent};
use crate::read::{
    BreakdownQuery, Dimension, Filter, FunnelQuery, FunnelStep, ReadQuery, TimeseriesQuery,
};
use crate::store::columns::answer;

use crate::store::{EventSink, Interval, SessionSweeper, StatsQuery};

const BASE: u64 = 1_700_000_000_000;
const HALF_HOUR: u64 = 1_800_000;
const PATHS: [&str; 4] = ["/", "/a", "/b", "/c"];
const NAMES: [&str; 3] = ["signup", "buy", "play"];
const COUNTRIES: [&str; 2] = ["DE", "FR"];
const REFERRERS: [&str; 2] = ["https://news.example/x", "https://www.search.example/"];

/// One event, from small numbers.
#[derive(Debug, Clone)]
struct Spec {
    site: u8,
    session: u8,
    kind: u8,
    path: u8,
    campaign: u8,
    name: u8,
    slot: u8,
    ms: u8,
    seq: Option<u32>,
    id: u16,
    bot: bool,
    country: u8,
    referrer: u8,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (0u8..2, 0u8..4, 0u8..5, 0u8..3, 0u8..3, 0u8..2),
        (0u8..10, 0u8..3, proptest::option::of(0u32..3), 0u16..60),
        (proptest::bool::weighted(0.15), 0u8..3, 0u8..3),
    )
        .prop_map(
            |(
                (site, session, kind, path, campaign, name),
                (slot, ms, seq, id),
                (bot, country, referrer),
            )| Spec {
                site,
                session,
                kind,
                path,
                campaign,
                name,
                slot,
                ms,
                seq,
                id,
                bot,
                country,
                referrer,
            },
        )
}

fn event(s: &Spec) -> StoredEvent {
    let event_type = match s.kind {
        0 | 1 => EventType::PageView,
        2 => EventType::Custom,
        3 => EventType::Click,
        _ => EventType::VisitEnded,
    };
    let ts = BASE + u64::from(s.slot) * HALF_HOUR + u64::from(s.ms);
    let query = match s.campaign {
        0 => String::new(),
        1 => "?utm_source=news&utm_campaign=spring".to_owned(),
        _ => "?utm_medium=email#top".to_owned(),
    };
    StoredEvent {
        // Ids that differ early, and ids that share their first 8 bytes.
        event_id: if s.id.is_multiple_of(2) {
            format!("{}", s.id)
        } else {
            format!("event-id-{}", s.id)
        },
        site: format!("site{}", s.site),
        event_type,
        name: (event_type == EventType::Custom).then(|| NAMES[usize::from(s.name % 3)].to_owned()),
        ts,
        client_ts: ts,
        received_at: ts,
        session_id: format!("s{}", s.session),
        visitor_id: format!("v{}", s.session % 4),
        user_id: None,
        session_index: None,
        seq: s.seq,
        previous_session_id: None,
        storage: None,
        url: format!("https://shop.example{}{query}", PATHS[usize::from(s.path)]),
        title: None,
        referrer: REFERRERS
            .get(usize::from(s.referrer))
            .map(|r| (*r).to_owned()),
        props: None,
        context: None,
        enrichment: Enrichment {
            country: COUNTRIES
                .get(usize::from(s.country))
                .map(|c| (*c).to_owned()),
            browser: Some(if s.bot { "Bot" } else { "Firefox" }.to_owned()),
            is_bot: s.bot,
            ..Enrichment::default()
        },
    }
}

/// A question: site, range (in half hours), bots, filters.
#[derive(Debug, Clone)]
struct Ask {
    site: Option<u8>,
    from: u8,
    len: u8,
    bots: bool,
    filters: Vec<(usize, u8)>,
    limit: usize,
    steps: Vec<(bool, u8)>,
    day: bool,
}

fn ask() -> impl Strategy<Value = Ask> {
    (
        proptest::option::of(0u8..3),
        0u8..6,
        1u8..14,
        any::<bool>(),
        proptest::collection::vec((0usize..17, 0u8..4), 0..3),
        1usize..6,
        proptest::collection::vec((any::<bool>(), 0u8..3), 2..5),
        any::<bool>(),
    )
        .prop_map(|(site, from, len, bots, filters, limit, steps, day)| Ask {
            site,
            from,
            len,
            bots,
            filters,
            limit,
            steps,
            day,
        })
}

/// A value of a dimension that some sessions may have (or none has).
fn value(dimension: Dimension, n: u8) -> String {
    let n = usize::from(n);
    let pick = |values: &[&str]| values.get(n).copied().unwrap_or("none").to_owned();
    match dimension {
        Dimension::Page | Dimension::EntryPage | Dimension::ExitPage => pick(&PATHS),
        Dimension::EventName => pick(&NAMES),
        Dimension::Source => pick(&["news", "direct", "search.example", "news.example"]),
        Dimension::Referrer => pick(&["news.example", "search.example"]),
        Dimension::UtmSource => pick(&["news"]),
        Dimension::UtmMedium => pick(&["email"]),
        Dimension::UtmCampaign => pick(&["spring"]),
        Dimension::Country => pick(&COUNTRIES),
        Dimension::Browser => pick(&["Firefox", "Bot"]),
        _ => pick(&[]),
    }
}

fn read_query(a: &Ask) -> ReadQuery {
    // Either bound may fall between a visit's start and its later events.
    let from = BASE + u64::from(a.from) * HALF_HOUR + u64::from(a.from % 2);
    ReadQuery {
        site: a.site.map(|s| format!("site{s}")),
        from,
        to: from + u64::from(a.len) * HALF_HOUR,
        include_bots: a.bots,
        filters: a
            .filters
            .iter()
            .map(|(d, v)| {
                let dimension = Dimension::ALL[*d];
                Filter {
                    dimension,
                    value: value(dimension, *v),
                }
            })
            .collect(),
    }
}

/// Every question of `asks`, of the index and of SQL, must agree.
fn same_answers(store: &SqliteStore, asks: &[Ask]) {
    let columns = store.index.columns().expect("the index is ready");
    let conn = lock(&store.reader);
    for a in asks {
        let sessions = read_query(a);
        let interval = if a.day { Interval::Day } else { Interval::Hour };
        for dimension in Dimension::ALL {
            let q = BreakdownQuery {
                sessions: sessions.clone(),
                dimension,
                limit: a.limit,
            };
            let sql = reports::breakdown(&conn, &q).unwrap();
            assert_eq!(answer::breakdown(&columns, &q), sql, "{q:?}");
        }
        let q = TimeseriesQuery {
            sessions: sessions.clone(),
            interval,
        };
        assert_eq!(
            answer::timeseries(&columns, &q),
            reports::timeseries(&conn, &q).unwrap(),
            "{q:?}"
        );
        let q = StatsQuery {
            site: sessions.site.clone(),
            from: sessions.from,
            to: sessions.to,
            include_bots: sessions.include_bots,
            interval,
            filters: sessions.filters.clone(),
        };
        assert_eq!(
            answer::stats(&columns, &q),
            queries::stats(&conn, &q).unwrap(),
            "{q:?}"
        );
        let q = FunnelQuery {
            sessions,
            steps: a
                .steps
                .iter()
                .map(|(page, n)| {
                    if *page {
                        FunnelStep::Page(PATHS[usize::from(*n)].to_owned())
                    } else {
                        FunnelStep::Event(value(Dimension::EventName, *n))
                    }
                })
                .collect(),
        };
        assert_eq!(
            answer::funnel(&columns, &q),
            reports::funnel(&conn, &q).unwrap(),
            "{q:?}"
        );
    }
}

async fn append_all(store: &SqliteStore, batches: &[Vec<Spec>], sweep_after: usize) {
    for (i, batch) in batches.iter().enumerate() {
        store
            .append(batch.iter().map(event).collect())
            .await
            .unwrap();
        if i == sweep_after {
            // Sessions idle since before the 5th half hour are ended.
            let idle_before = BASE + 5 * HALF_HOUR;
            store
                .sweep(idle_before + 1, idle_before, None, 100)
                .await
                .unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn the_index_answers_as_the_sql_does(
        batches in proptest::collection::vec(proptest::collection::vec(spec(), 1..30), 1..8),
        later in proptest::collection::vec(proptest::collection::vec(spec(), 1..12), 0..4),
        sweep_after in 0usize..8,
        asks in proptest::collection::vec(ask(), 1..6),
    ) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        runtime.block_on(async {
            let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
            assert!(store.read_index_ready(), "an empty store's index is ready at once");
            append_all(&store, &batches, sweep_after).await;
            same_answers(&store, &asks);
            store.close();
            drop(store);

            // Built at open from the tables, with appends under way.
            let store = SqliteStore::open(dir.path()).unwrap();
            append_all(&store, &later, usize::MAX).await;
            for _ in 0..500 {
                if store.read_index_ready() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            same_answers(&store, &asks);
        });
    }
}
