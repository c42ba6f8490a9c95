//! The read API's reports `chdb.rs` runs: breakdowns, timeseries,
//! realtime, funnels, profiles and stats with filters, over its events.

use waymark_ingest::clickhouse_sql::Read;
use waymark_ingest::read::{
    BreakdownQuery, Dimension, Filter, FunnelQuery, FunnelStep, Person, ProfileQuery, ReadQuery,
    RealtimeQuery, TimeseriesQuery,
};
use waymark_ingest::{Interval, SessionQuery, StatsQuery};

use super::{all_sessions, MIN, T0};

/// The sessions of `site` (of all sites when `None`) from an hour before
/// the first event to two days after it, bots left out, with `filters`
/// (`dimension:value`).
fn window(site: Option<&str>, filters: &[&str]) -> ReadQuery {
    ReadQuery {
        site: site.map(str::to_owned),
        from: T0 - 60 * MIN,
        to: T0 + 2 * 24 * 60 * MIN,
        include_bots: false,
        filters: filters.iter().map(|f| Filter::parse(f).unwrap()).collect(),
    }
}

/// The read API's reports: a breakdown by each kind of dimension (a
/// session column, `page`, `event_name`) with and without filters, the
/// timeseries by hour and day, realtime, a three-step funnel, profiles,
/// and stats with a filter and over the previous period (`compare`).
pub fn report_reads() -> Vec<Read> {
    let breakdown = |dimension, sessions| {
        Read::Breakdown(BreakdownQuery {
            sessions,
            dimension,
            limit: 10,
        })
    };
    let stats = |sessions: ReadQuery, interval| {
        Read::Stats(StatsQuery {
            site: sessions.site,
            from: sessions.from,
            to: sessions.to,
            include_bots: sessions.include_bots,
            interval,
            filters: sessions.filters,
        })
    };
    let profile = |person, site: Option<&str>| {
        Read::Profile(ProfileQuery {
            person,
            site: site.map(str::to_owned),
            from: None,
            to: None,
        })
    };
    let shop = Some("shop");
    let previous = ReadQuery {
        from: T0 - 2 * 24 * 60 * MIN - 120 * MIN,
        to: T0 - 60 * MIN,
        ..window(shop, &[])
    };
    vec![
        breakdown(Dimension::Source, window(shop, &[])),
        breakdown(Dimension::UtmSource, window(shop, &[])),
        breakdown(Dimension::EntryPage, window(None, &[])),
        breakdown(Dimension::Country, window(shop, &["page:/b"])),
        breakdown(Dimension::Page, window(shop, &[])),
        breakdown(Dimension::Page, window(shop, &["country:FR"])),
        breakdown(Dimension::EventName, window(shop, &[])),
        breakdown(
            Dimension::EventName,
            window(shop, &["event_name:signup", "utm_source:news"]),
        ),
        breakdown(Dimension::Referrer, window(shop, &["page:/a"])),
        breakdown(Dimension::Referrer, window(shop, &[])),
        breakdown(Dimension::UtmCampaign, window(shop, &["country:FR"])),
        Read::Timeseries(TimeseriesQuery {
            sessions: window(shop, &[]),
            interval: Interval::Hour,
        }),
        Read::Timeseries(TimeseriesQuery {
            sessions: ReadQuery {
                include_bots: true,
                ..window(None, &[])
            },
            interval: Interval::Day,
        }),
        Read::Realtime(RealtimeQuery {
            site: shop.map(str::to_owned),
            since: T0 + 5 * MIN,
            include_bots: true,
            filters: Vec::new(),
            limit: 10,
        }),
        Read::Realtime(RealtimeQuery {
            site: None,
            since: T0,
            include_bots: false,
            filters: vec![Filter::parse("page:/a").unwrap()],
            limit: 10,
        }),
        Read::Funnel(FunnelQuery {
            sessions: window(shop, &[]),
            steps: vec![
                FunnelStep::parse("page:/a").unwrap(),
                FunnelStep::parse("page:/b").unwrap(),
                FunnelStep::parse("event:signup").unwrap(),
            ],
        }),
        Read::Funnel(FunnelQuery {
            sessions: window(shop, &["country:FR"]),
            steps: vec![
                FunnelStep::parse("page:/").unwrap(),
                FunnelStep::parse("page:/a").unwrap(),
                FunnelStep::parse("page:/b").unwrap(),
            ],
        }),
        profile(Person::Visitor("v-s-1".to_owned()), None),
        profile(Person::User("u-1".to_owned()), shop),
        profile(Person::Visitor("nobody".to_owned()), shop),
        stats(window(shop, &["page:/a"]), Interval::Day),
        stats(
            window(shop, &["event_name:signup", "country:DE"]),
            Interval::Hour,
        ),
        stats(previous, Interval::Day),
        Read::Sessions(SessionQuery {
            filters: vec![Filter::parse("page:/a").unwrap()],
            ..all_sessions(Some("shop"), 10)
        }),
    ]
}
