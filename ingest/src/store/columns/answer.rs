//! The read API's aggregate questions answered from the [`Columns`]: the
//! same answers as the SQL of [`super::super::queries`] and
//! [`super::super::reports`], by scanning the rows in range once and
//! counting into arrays indexed by dictionary ids. Distinct visitors are
//! counted exactly, with one mark per visitor id.

use std::collections::HashMap;

use super::{row_column, Columns, Dict, CUSTOM};
use crate::read::{
    ratio, Breakdown, BreakdownQuery, BreakdownRow, Counts, Dimension, Funnel, FunnelQuery,
    FunnelStep, FunnelStepCount, Metrics, ReadQuery, Timeseries, TimeseriesQuery,
};
use crate::store::{KeyCount, Stats, StatsQuery, TOP};

/// Marks visitors seen, per round: a round's first sight of a visitor is
/// the only one [`Marks::first`] says yes to.
struct Marks {
    mark: Vec<u32>,
    round: u32,
}

impl Marks {
    fn new(visitors: usize) -> Marks {
        Marks {
            mark: vec![0; visitors],
            round: 0,
        }
    }

    fn next_round(&mut self) {
        self.round += 1;
    }

    fn first(&mut self, visitor: u32) -> bool {
        let slot = &mut self.mark[visitor as usize];
        let first = *slot != self.round;
        *slot = self.round;
        first
    }
}

/// The rows of the sessions a [`ReadQuery`] is about.
pub(crate) fn selected(c: &Columns, q: &ReadQuery) -> Vec<u32> {
    let site = match &q.site {
        Some(site) => match c.sites.find(site) {
            Some(id) => Some(id),
            None => return Vec::new(),
        },
        None => None,
    };
    // Each filter as a column and an id, or a step kind to find.
    let mut columns = Vec::new();
    let mut steps = Vec::new();
    for f in &q.filters {
        let found = match (row_column(f.dimension), f.dimension) {
            (Some(column), _) => c.dict(column).find(&f.value).map(|id| {
                columns.push((column, id));
            }),
            (None, Dimension::Page) => c.pages.find(&f.value).map(|id| steps.push(id)),
            (None, _) => c.names.find(&f.value).map(|id| steps.push(CUSTOM | id)),
        };
        if found.is_none() {
            return Vec::new();
        }
    }
    let mut rows = Vec::new();
    for row in 0..c.len() {
        let at = c.started_at[row];
        if at < q.from
            || at >= q.to
            || c.is_removed(row)
            || site.is_some_and(|s| c.site[row] != s)
            || (!q.include_bots && c.is_bot[row])
            || columns.iter().any(|(col, id)| c.dims[*col][row] != *id)
            || steps
                .iter()
                .any(|kind| !c.steps.of(row).iter().any(|s| s.kind == *kind))
        {
            continue;
        }
        rows.push(u32::try_from(row).unwrap_or(u32::MAX));
    }
    rows
}

/// Counts of a group of rows, each with its own page views (`None`: the
/// session's).
fn count(c: &Columns, marks: &mut Marks, rows: impl Iterator<Item = (u32, Option<u64>)>) -> Counts {
    marks.next_round();
    let mut n = Counts::default();
    let mut duration: u64 = 0;
    for (row, page_views) in rows {
        let row = row as usize;
        n.visits += 1;
        if marks.first(c.visitor[row]) {
            n.visitors += 1;
        }
        n.page_views += page_views.unwrap_or(c.page_views[row]);
        n.bounces += u64::from(c.page_views[row] <= 1);
        duration += c.duration_ms[row];
    }
    #[allow(clippy::cast_precision_loss)] // Sums far below 2^52.
    if n.visits > 0 {
        n.avg_duration_ms = duration as f64 / n.visits as f64;
    }
    n
}

/// One group per key: `(key, row, n)` sorted by key (counting sort).
fn by_key(keys: usize, pairs: Vec<(u32, u32, u64)>) -> Vec<(u32, Vec<(u32, u64)>)> {
    let mut sizes = vec![0usize; keys];
    for (k, _, _) in &pairs {
        sizes[*k as usize] += 1;
    }
    let mut groups: Vec<Vec<(u32, u64)>> = sizes.iter().map(|n| Vec::with_capacity(*n)).collect();
    for (k, row, n) in pairs {
        groups[k as usize].push((row, n));
    }
    groups
        .into_iter()
        .enumerate()
        .filter(|(_, g)| !g.is_empty())
        .map(|(k, g)| (u32::try_from(k).unwrap_or(u32::MAX), g))
        .collect()
}

/// The `limit` largest keys: visits, then key bytewise.
fn ranked<T>(mut rows: Vec<(String, u64, T)>, limit: usize) -> Vec<(String, u64, T)> {
    rows.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows.truncate(limit);
    rows
}

pub(crate) fn breakdown(c: &Columns, q: &BreakdownQuery) -> Breakdown {
    let rows = selected(c, &q.sessions);
    let goals = q.dimension == Dimension::EventName;
    let counted = match (row_column(q.dimension), q.dimension) {
        (Some(column), _) => {
            let mut marks = Marks::new(c.visitors.len());
            let dict = c.dict(column);
            let pairs = rows
                .iter()
                .map(|row| (c.dims[column][*row as usize], *row, 0))
                .filter(|(k, _, _)| *k != 0)
                .collect();
            let counted = by_key(dict.len(), pairs)
                .into_iter()
                .map(|(k, group)| {
                    let counts = count(c, &mut marks, group.iter().map(|(row, _)| (*row, None)));
                    (dict.name(k).to_owned(), counts.visits, (counts, 0))
                })
                .collect();
            ranked(counted, q.limit)
        }
        (None, Dimension::Page) => per_event(c, &rows, &c.pages, false, q.limit),
        (None, _) => per_event(c, &rows, &c.names, true, q.limit),
    };
    let all = rows.len() as u64;
    let rows = counted
        .into_iter()
        .map(|(key, _, (counts, events))| BreakdownRow {
            key,
            metrics: Metrics::from(counts),
            events: goals.then_some(events),
            conversion_rate: goals.then(|| ratio(counts.visits, all)),
        })
        .collect();
    Breakdown {
        site: q.sessions.site.clone(),
        from: q.sessions.from,
        to: q.sessions.to,
        dimension: q.dimension,
        rows,
    }
}

/// A breakdown by the visits' page views (`custom` false) or custom events:
/// everything but visitors counted in one pass, then the visitors of the
/// `limit` largest keys only. A page's page views are its own; an event
/// name's are its visits', and its `events` its own.
fn per_event(
    c: &Columns,
    rows: &[u32],
    dict: &Dict,
    custom: bool,
    limit: usize,
) -> Vec<(String, u64, (Counts, u64))> {
    let keys = dict.len();
    let (mut visits, mut events, mut page_views) =
        (vec![0u64; keys], vec![0u64; keys], vec![0u64; keys]);
    let (mut bounces, mut duration) = (vec![0u64; keys], vec![0u64; keys]);
    let mut last = vec![u32::MAX; keys];
    let steps = |row: u32| {
        c.steps
            .of(row as usize)
            .iter()
            .filter(move |s| (s.kind & CUSTOM != 0) == custom)
            .map(|s| (s.kind & !CUSTOM) as usize)
            .filter(|k| *k != 0)
    };
    for row in rows {
        let r = *row as usize;
        for k in steps(*row) {
            events[k] += 1;
            if last[k] != *row {
                last[k] = *row;
                visits[k] += 1;
                bounces[k] += u64::from(c.page_views[r] <= 1);
                duration[k] += c.duration_ms[r];
                page_views[k] += c.page_views[r];
            }
        }
    }
    let named = (1..keys)
        .filter(|k| visits[*k] > 0)
        .map(|k| (dict.name(k as u32).to_owned(), visits[k], k))
        .collect();
    let top = ranked(named, limit);
    // The rows of each key kept, to count their visitors.
    let mut slot = vec![usize::MAX; keys];
    for (i, (_, _, k)) in top.iter().enumerate() {
        slot[*k] = i;
    }
    let mut groups: Vec<Vec<u32>> = vec![Vec::new(); top.len()];
    for row in rows {
        for k in steps(*row) {
            if let Some(group) = groups.get_mut(slot[k]) {
                if group.last() != Some(row) {
                    group.push(*row);
                }
            }
        }
    }
    let mut marks = Marks::new(c.visitors.len());
    top.into_iter()
        .zip(groups)
        .map(|((key, n, k), group)| {
            marks.next_round();
            let visitors = group
                .iter()
                .filter(|row| marks.first(c.visitor[**row as usize]))
                .count() as u64;
            #[allow(clippy::cast_precision_loss)] // Sums far below 2^52.
            let counts = Counts {
                visits: n,
                visitors,
                page_views: if custom { page_views[k] } else { events[k] },
                bounces: bounces[k],
                avg_duration_ms: duration[k] as f64 / n as f64,
            };
            (key, n, (counts, events[k]))
        })
        .collect()
}

/// The rows by the bucket they started in, with each bucket's start.
fn by_bucket(c: &Columns, rows: &[u32], from: u64, width: u64) -> Vec<(u64, Vec<(u32, u64)>)> {
    let first = from / width * width;
    let pairs: Vec<(u32, u32, u64)> = rows
        .iter()
        .map(|row| {
            let b = (c.started_at[*row as usize] - first) / width;
            (u32::try_from(b).unwrap_or(u32::MAX), *row, 0)
        })
        .collect();
    let buckets = pairs.iter().map(|p| p.0 as usize + 1).max().unwrap_or(0);
    by_key(buckets, pairs)
        .into_iter()
        .map(|(b, group)| (first + u64::from(b) * width, group))
        .collect()
}

pub(crate) fn timeseries(c: &Columns, q: &TimeseriesQuery) -> Timeseries {
    let s = &q.sessions;
    let rows = selected(c, s);
    let mut marks = Marks::new(c.visitors.len());
    let counted: Vec<(u64, Counts)> = by_bucket(c, &rows, s.from, q.interval.millis())
        .into_iter()
        .map(|(start, group)| {
            let counts = count(c, &mut marks, group.iter().map(|(row, _)| (*row, None)));
            (start, counts)
        })
        .collect();
    Timeseries::fill(s.site.clone(), s.from, s.to, q.interval, &counted)
}

pub(crate) fn stats(c: &Columns, q: &StatsQuery) -> Stats {
    let read = ReadQuery {
        site: q.site.clone(),
        from: q.from,
        to: q.to,
        include_bots: q.include_bots,
        filters: q.filters.clone(),
    };
    let rows = selected(c, &read);
    let mut marks = Marks::new(c.visitors.len());
    let totals = count(c, &mut marks, rows.iter().map(|row| (*row, None)));
    let top = |column: usize| {
        let mut n = vec![0u64; c.dict(column).len()];
        for row in &rows {
            n[c.dims[column][*row as usize] as usize] += 1;
        }
        top_of(c.dict(column), &n)
    };
    let (source, country) = (
        row_column(Dimension::Source).unwrap_or_default(),
        row_column(Dimension::Country).unwrap_or_default(),
    );
    let mut pages = vec![0u64; c.urls.len()];
    for row in &rows {
        for step in c.steps.of(*row as usize) {
            if step.kind & CUSTOM == 0 {
                pages[step.url as usize] += 1;
            }
        }
    }
    let width = q.interval.millis();
    let first = q.from / width * width;
    // Counted by index (a month by hour is 720), not hashed per visit.
    let mut by_bucket =
        vec![0u64; usize::try_from((q.to.max(first) - first) / width + 1).unwrap_or(0)];
    for row in &rows {
        let at = c.started_at[*row as usize];
        if let Some(n) = usize::try_from((at - first) / width)
            .ok()
            .and_then(|i| by_bucket.get_mut(i))
        {
            *n += 1;
        }
    }
    let buckets: HashMap<u64, u64> = (0..)
        .zip(&by_bucket)
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| (first + i * width, *n))
        .collect();
    Stats::from_parts(
        q,
        [
            totals.visits,
            totals.visitors,
            totals.page_views,
            totals.bounces,
        ],
        totals.avg_duration_ms,
        top_of(&c.urls, &pages),
        top(source),
        top(country),
        &buckets,
    )
}

/// The [`TOP`] ids by count (then name) other than 0, as key counts.
fn top_of(dict: &Dict, counts: &[u64]) -> Vec<KeyCount> {
    let named = counts
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, n)| **n > 0)
        .map(|(id, n)| {
            let id = u32::try_from(id).unwrap_or(u32::MAX);
            (dict.name(id).to_owned(), *n, ())
        })
        .collect();
    ranked(named, TOP)
        .into_iter()
        .map(|(key, count, ())| KeyCount { key, count })
        .collect()
}

/// Each visit reaches the steps it has in order, each one's earliest match
/// after the one before (as the SQL finds them).
pub(crate) fn funnel(c: &Columns, q: &FunnelQuery) -> Funnel {
    let rows = selected(c, &q.sessions);
    let kinds: Vec<Option<u32>> = q
        .steps
        .iter()
        .map(|step| match step {
            FunnelStep::Page(path) => c.pages.find(path),
            FunnelStep::Event(name) => c.names.find(name).map(|id| CUSTOM | id),
        })
        .collect();
    let mut visits = vec![0u64; kinds.len()];
    // The furthest step each visitor's visits reached.
    let mut furthest: HashMap<u32, usize> = HashMap::new();
    for row in &rows {
        let mut reached = 0;
        for step in c.steps.of(*row as usize) {
            match kinds.get(reached) {
                Some(Some(kind)) if *kind == step.kind => reached += 1,
                Some(_) => {}
                None => break,
            }
        }
        for v in visits.iter_mut().take(reached) {
            *v += 1;
        }
        if reached > 0 {
            let f = furthest.entry(c.visitor[*row as usize]).or_default();
            *f = (*f).max(reached);
        }
    }
    let first = visits.first().copied().unwrap_or(0);
    let steps = q
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| FunnelStepCount {
            step: i + 1,
            key: step.key(),
            visits: visits[i],
            visitors: furthest.values().filter(|f| **f > i).count() as u64,
            conversion_rate: ratio(visits[i], first),
        })
        .collect();
    let s = &q.sessions;
    Funnel {
        site: s.site.clone(),
        from: s.from,
        to: s.to,
        steps,
    }
}
