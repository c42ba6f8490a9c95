//! `GET /v1/stats`, `/v1/breakdown`, `/v1/timeseries`, `/v1/realtime` and
//! `/v1/funnel`: what the visits of a range add up to.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::Json;

use super::params::{with_read_params, Format, Params};
use super::{table, ReadApi};
use crate::error::Error;
use crate::read::{
    csv, BreakdownQuery, Dimension, FunnelQuery, FunnelStep, Metrics, PreviousPeriod,
    RealtimeQuery, TimeseriesQuery, MAX_FUNNEL_STEPS, MIN_FUNNEL_STEPS, REALTIME_WINDOW_MS,
};
use crate::store::{Interval, Stats, StatsQuery};

/// Ranges up to this long are bucketed by hour by default, longer ones by day.
const HOURLY_UP_TO_MS: u64 = 2 * 86_400_000;
/// The most buckets a timeseries has.
const MAX_BUCKETS: u64 = 10_000;
/// Breakdown rows (and realtime pages) when `limit` is not given, and the
/// most allowed.
const DEFAULT_ROWS: usize = 10;
const MAX_ROWS: usize = 1000;

fn default_interval(from: u64, to: u64) -> Interval {
    if to - from <= HOURLY_UP_TO_MS {
        Interval::Hour
    } else {
        Interval::Day
    }
}

/// `GET /v1/stats?site=&from=&to=&include_bots=&filter=&compare=previous_period`
pub(super) async fn stats(
    State(api): State<ReadApi>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Stats>, Error> {
    let p = Params::parse(raw.as_deref(), &with_read_params(&["compare"]), &["filter"])?;
    if p.format()? == Format::Csv {
        return Err(Error::InvalidQuery(
            "format=csv is for tables; /v1/stats answers JSON (its tables: /v1/breakdown, \
             /v1/timeseries)"
                .to_owned(),
        ));
    }
    let compare = match p.text("compare").as_deref() {
        None => false,
        Some("previous_period") => true,
        Some(v) => {
            return Err(Error::InvalidQuery(format!(
                "compare must be previous_period, got {v:?}"
            )))
        }
    };
    let q = p.read_query(api.clock.now_ms())?;
    let query = StatsQuery {
        site: q.site,
        from: q.from,
        to: q.to,
        include_bots: q.include_bots,
        interval: default_interval(q.from, q.to),
        filters: q.filters,
    };
    let previous_query = compare.then(|| {
        let from = query.from.saturating_sub(query.to - query.from);
        StatsQuery {
            from,
            to: query.from,
            interval: Interval::Day,
            ..query.clone()
        }
    });
    let mut stats = api.reader.stats(query).await?;
    if let Some(previous) = previous_query {
        let (from, to) = (previous.from, previous.to);
        let before = api.reader.stats(previous).await?;
        stats.previous = Some(PreviousPeriod {
            from,
            to,
            metrics: Metrics {
                visits: before.visits,
                visitors: before.visitors,
                page_views: before.page_views,
                bounce_rate: before.bounce_rate,
                avg_duration_ms: before.avg_duration_ms,
            },
        });
    }
    Ok(Json(stats))
}

/// `GET /v1/breakdown?site=&from=&to=&include_bots=&filter=&dimension=&limit=&format=`
pub(super) async fn breakdown(
    State(api): State<ReadApi>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Error> {
    let p = Params::parse(
        raw.as_deref(),
        &with_read_params(&["dimension", "limit"]),
        &["filter"],
    )?;
    let dimension = match p.text("dimension") {
        None => {
            return Err(Error::InvalidQuery(format!(
                "dimension is required; one of {}",
                Dimension::names()
            )))
        }
        Some(name) => Dimension::parse(&name).ok_or_else(|| {
            Error::InvalidQuery(format!(
                "unknown dimension {name:?}; one of {}",
                Dimension::names()
            ))
        })?,
    };
    let limit = p.limit(DEFAULT_ROWS, MAX_ROWS)?;
    let format = p.format()?;
    let sessions = p.read_query(api.clock.now_ms())?;
    let answer = api
        .reader
        .breakdown(BreakdownQuery {
            sessions,
            dimension,
            limit,
        })
        .await?;
    let columns = if dimension == Dimension::EventName {
        csv::GOALS
    } else {
        csv::BREAKDOWN
    };
    table(format, &answer, columns, &answer.rows, None)
}

/// `GET /v1/timeseries?site=&from=&to=&include_bots=&filter=&interval=hour|day&format=`
pub(super) async fn timeseries(
    State(api): State<ReadApi>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Error> {
    let p = Params::parse(
        raw.as_deref(),
        &with_read_params(&["interval"]),
        &["filter"],
    )?;
    let format = p.format()?;
    let sessions = p.read_query(api.clock.now_ms())?;
    let interval = match p.text("interval").as_deref() {
        None => default_interval(sessions.from, sessions.to),
        Some("hour") => Interval::Hour,
        Some("day") => Interval::Day,
        Some(v) => {
            return Err(Error::InvalidQuery(format!(
                "interval must be hour or day, got {v:?}"
            )))
        }
    };
    let width = interval.millis();
    let buckets = sessions.to.div_ceil(width) - sessions.from / width;
    if buckets > MAX_BUCKETS {
        return Err(Error::InvalidQuery(format!(
            "the range holds {buckets} buckets of an {}; at most {MAX_BUCKETS}: narrow it or use \
             interval=day",
            match interval {
                Interval::Hour => "hour",
                Interval::Day => "day",
            }
        )));
    }
    let answer = api
        .reader
        .timeseries(TimeseriesQuery { sessions, interval })
        .await?;
    table(format, &answer, csv::TIMESERIES, &answer.buckets, None)
}

/// `GET /v1/realtime?site=&include_bots=&filter=&limit=&format=`: the visitors
/// active in the last five minutes and their current pages.
pub(super) async fn realtime(
    State(api): State<ReadApi>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Error> {
    let p = Params::parse(
        raw.as_deref(),
        &["site", "include_bots", "limit", "format"],
        &["filter"],
    )?;
    let format = p.format()?;
    let query = RealtimeQuery {
        site: p.text("site"),
        since: api.clock.now_ms().saturating_sub(REALTIME_WINDOW_MS),
        include_bots: p.flag("include_bots")?.unwrap_or(false),
        filters: p.filters()?,
        limit: p.limit(DEFAULT_ROWS, MAX_ROWS)?,
    };
    let answer = api.reader.realtime(query).await?;
    table(format, &answer, csv::PAGES, &answer.pages, None)
}

/// `GET /v1/funnel?site=&from=&to=&include_bots=&filter=&step=…&step=…&format=`
pub(super) async fn funnel(
    State(api): State<ReadApi>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Error> {
    let p = Params::parse(raw.as_deref(), &with_read_params(&[]), &["filter", "step"])?;
    let given = p.all("step");
    if !(MIN_FUNNEL_STEPS..=MAX_FUNNEL_STEPS).contains(&given.len()) {
        return Err(Error::InvalidQuery(format!(
            "a funnel has {MIN_FUNNEL_STEPS} to {MAX_FUNNEL_STEPS} steps \
             (step=page:/path or step=event:name, in order), got {}",
            given.len()
        )));
    }
    let steps = given
        .iter()
        .map(|s| FunnelStep::parse(s).map_err(Error::InvalidQuery))
        .collect::<Result<Vec<_>, _>>()?;
    let format = p.format()?;
    let sessions = p.read_query(api.clock.now_ms())?;
    let answer = api.reader.funnel(FunnelQuery { sessions, steps }).await?;
    table(format, &answer, csv::FUNNEL, &answer.steps, None)
}
