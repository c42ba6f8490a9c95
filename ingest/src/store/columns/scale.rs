//! How long the index takes to answer at the size issue #16 sets (1 M
//! sessions, 10 M events over 30 days), built directly in memory:
//! `cargo test --release -p waymark-ingest --lib columns::scale -- --ignored --nocapture`.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::time::Instant;

use super::answer;
use super::{Columns, EventRow, SessionRow};
use crate::read::TimeseriesQuery;
use crate::read::{BreakdownQuery, Dimension, Filter, FunnelQuery, FunnelStep, ReadQuery};
use crate::store::{Interval, StatsQuery};

const DAY: u64 = 86_400_000;

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    /// Zipf-like: small values far more often.
    fn skewed(&mut self, n: u64) -> u64 {
        let a = self.next(n) + 1;
        self.next(a)
    }
}

fn columns(sessions: u64, per_session: u64) -> Columns {
    let mut c = Columns::new();
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    for s in 0..sessions {
        let started_at = s * 30 * DAY / sessions;
        let page = |r: &mut Rng| format!("/page/{}", r.skewed(500));
        let row = SessionRow {
            site: "bench.example".to_owned(),
            session_id: format!("s{s}"),
            visitor_id: format!("v{}", r.next(sessions * 7 / 10)),
            started_at,
            duration_ms: r.next(600_000),
            page_views: per_session - 1,
            is_bot: r.next(50) == 0,
            dims: [
                Some(page(&mut r)),
                Some(page(&mut r)),
                Some(format!("source{}", r.skewed(40))),
                Some(format!("ref{}.example", r.skewed(40))),
                Some(format!("utm{}", r.skewed(10))),
                Some("email".to_owned()),
                Some(format!("campaign{}", r.skewed(20))),
                None,
                None,
                Some(format!("C{}", r.skewed(100))),
                Some(format!("R{}", r.skewed(1000))),
                Some(format!("city{}", r.skewed(5000))),
                Some(format!("browser{}", r.skewed(14))),
                Some(format!("os{}", r.skewed(10))),
                Some(format!("device{}", r.skewed(3))),
            ],
        };
        c.put(&row);
        for i in 0..per_session {
            let is_page = i + 1 < per_session;
            let path = page(&mut r);
            c.append(&EventRow {
                site: row.site.clone(),
                session_id: row.session_id.clone(),
                ts: started_at + i * 1000,
                seq: Some(i as u32),
                event_id: format!("{s:016x}{i:04}"),
                is_page,
                url_key: format!("https://bench.example{path}"),
                path: Some(path),
                name: (!is_page).then(|| format!("goal{}", r.skewed(8))),
            });
        }
    }
    c
}

fn timed<T>(what: &str, mut f: impl FnMut() -> T) {
    let mut times: Vec<f64> = (0..9)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(f());
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "{what}: median {:.1} ms, slowest {:.1} ms",
        times[4], times[8]
    );
}

#[test]
#[ignore = "a measurement: run it in release with --ignored --nocapture"]
fn answers_at_one_million_sessions() {
    let started = Instant::now();
    let c = columns(1_000_000, 10);
    println!(
        "built {} sessions, {} events in {:.1} s, about {} MB",
        c.len(),
        c.events,
        started.elapsed().as_secs_f64(),
        c.bytes() / 1_000_000
    );
    let sessions = ReadQuery {
        site: Some("bench.example".to_owned()),
        from: 0,
        to: 30 * DAY,
        include_bots: false,
        filters: Vec::new(),
    };
    let filtered = ReadQuery {
        filters: vec![Filter {
            dimension: Dimension::Page,
            value: "/page/3".to_owned(),
        }],
        ..sessions.clone()
    };
    let stats = StatsQuery {
        site: sessions.site.clone(),
        from: 0,
        to: 30 * DAY,
        include_bots: false,
        interval: Interval::Day,
        filters: Vec::new(),
    };
    timed("stats, 30 days", || answer::stats(&c, &stats));
    let q = TimeseriesQuery {
        sessions: sessions.clone(),
        interval: Interval::Day,
    };
    timed("timeseries by day, 30 days", || answer::timeseries(&c, &q));
    for dimension in [Dimension::Page, Dimension::City, Dimension::EventName] {
        for s in [&sessions, &filtered] {
            let q = BreakdownQuery {
                sessions: s.clone(),
                dimension,
                limit: 10,
            };
            let what = format!("breakdown {dimension}, filters {}", s.filters.len());
            timed(&what, || answer::breakdown(&c, &q));
        }
    }
    let q = FunnelQuery {
        sessions,
        steps: vec![
            FunnelStep::Page("/page/0".to_owned()),
            FunnelStep::Page("/page/1".to_owned()),
            FunnelStep::Event("goal0".to_owned()),
        ],
    };
    timed("funnel, 3 steps", || answer::funnel(&c, &q));
}
