//! Retention: sessions started more than `--retention-days` ago go, with
//! their events and what is built from them; the others stay.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use waymark_ingest::read::{Person, ProfileQuery};
use waymark_ingest::{
    expire_old_sessions, Config, EventSink, Interval, SessionReader, SqliteStore, StatsQuery,
};

use waymark_ingest::Clock;

use crate::support::app::TestApp;
use crate::support::stores::{config, now_ms, stored_page_views, NOW};
use crate::{admin, assert_no_row_holds, clickhouse_with, event, post, sqlite_with, sync, DAY};

fn retention(days: u64) -> Config {
    Config {
        retention_days: Some(days),
        ..config()
    }
}

fn sqlite() -> TestApp {
    sqlite_with(retention(10))
}

async fn clickhouse(name: &str) -> Option<TestApp> {
    clickhouse_with(name, retention(10)).await
}

/// One session of 3 events at NOW (11 days before the clock is moved), one
/// at NOW + 11 days minus an hour (so 10 days and 23 hours old at the
/// end), one at the end: with 10 days, only the first goes.
async fn old_sessions_go_and_the_rest_stays(app: TestApp) {
    let old = [0, 1, 2].map(|i| event(100 + i, "v-old", "s-old", NOW + i * 1000, None));
    post(&app, &old).await.unwrap();
    app.clock.set(NOW + 11 * DAY - 3_600_000);
    let kept = [0, 1, 2].map(|i| {
        event(
            200 + i,
            "v-kept",
            "s-kept",
            app.clock.now_ms() + i * 1000,
            None,
        )
    });
    post(&app, &kept).await.unwrap();
    app.clock.set(NOW + 11 * DAY);
    let new = [event(300, "v-new", "s-new", app.clock.now_ms(), None)];
    post(&app, &new).await.unwrap();
    sync(&app).await;

    // Nothing is old enough while the clock is at the start.
    let end = app.clock.now_ms();
    app.clock.set(NOW + 10 * DAY - 1);
    assert_eq!(expire_old_sessions(&app.state).await.unwrap().sessions, 0);
    app.clock.set(end);

    let done = expire_old_sessions(&app.state).await.unwrap();
    assert_eq!((done.sessions, done.events), (1, 3), "{done:?}");
    let metrics = app.state.metrics().render();
    assert!(
        metrics.contains("waymark_retention_deleted_total{what=\"sessions\"} 1")
            && metrics.contains("waymark_retention_deleted_total{what=\"events\"} 3"),
        "{metrics}"
    );
    assert_no_row_holds(&app, &["v-old", "s-old"]);
    let (status, _) = admin(&app, "GET", "/v1/visitors/v-old").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, kept) = admin(&app, "GET", "/v1/visitors/v-kept").await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    assert_eq!(kept["events"], 3, "{kept}");
    // The aggregates (the SQLite read index) forget the old session too.
    let (status, stats) = admin(
        &app,
        "GET",
        &format!("/v1/stats?from={}&to={}", NOW - DAY, end + DAY),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(
        (stats["visits"].clone(), stats["visitors"].clone()),
        (2.into(), 2.into()),
        "{stats}"
    );

    // A second pass has nothing left to do.
    assert_eq!(expire_old_sessions(&app.state).await.unwrap().sessions, 0);
}

crate::support::stores::on_both_stores!(old_sessions_go_and_the_rest_stays);

/// Without `--retention-days` nothing is ever removed.
#[tokio::test]
async fn without_a_retention_everything_stays() {
    let app = sqlite_with(config());
    post(&app, &[event(1, "v-1", "s-1", NOW, None)])
        .await
        .unwrap();
    app.clock.set(NOW + 3650 * DAY);
    let done = expire_old_sessions(&app.state).await.unwrap();
    assert_eq!(done.sessions, 0);
    let (status, _) = admin(&app, "GET", "/v1/visitors/v-1").await;
    assert_eq!(status, StatusCode::OK);
}

/// Retention on SQLite runs in short transactions through the writer: a
/// stream of one-event appends beside it is never held up for long. Fills
/// 3,000 old sessions (15,000 events), then expires them while appending,
/// and prints the longest append beside it and without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_stalls_appends_only_briefly_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let sessions = 3_000u64;
    for chunk in 0..sessions / 100 {
        let mut events = Vec::new();
        for s in chunk * 100..(chunk + 1) * 100 {
            let mut page = stored_page_views(s, 1, 5, "old");
            for e in &mut page {
                e.session_id = format!("s-old-{s}");
                e.visitor_id = format!("v-old-{s}");
                e.ts = 1_000_000 + s;
            }
            events.extend(page);
        }
        store.append(events).await.unwrap();
    }
    let lifecycle = store.clone().lifecycle().unwrap();

    let longest_append = |store: Arc<SqliteStore>, stop: Arc<AtomicBool>, first: u64| async move {
        let mut longest = Duration::ZERO;
        let mut n = first;
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let mut events = stored_page_views(1 << 40, n, 1, "new");
            events[0].session_id = format!("s-new-{n}");
            store.append(events).await.unwrap();
            longest = longest.max(started.elapsed());
            n += 1;
        }
        longest
    };
    let stop_after = |secs: u64| {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            flag.store(true, Ordering::Relaxed);
        });
        stop
    };
    let baseline = longest_append(store.clone(), stop_after(2), 1).await;

    let stop = Arc::new(AtomicBool::new(false));
    let appending = tokio::spawn(longest_append(store.clone(), Arc::clone(&stop), 1_000_000));
    let started = Instant::now();
    let mut removed = 0;
    let mut longest_pass = Duration::ZERO;
    loop {
        let pass_started = Instant::now();
        let pass = lifecycle.expire(2_000_000, 1000).await.unwrap();
        longest_pass = longest_pass.max(pass_started.elapsed());
        removed += pass.sessions;
        if !pass.more {
            break;
        }
    }
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let during = appending.await.unwrap();
    assert_eq!(removed, sessions);
    println!(
        "LIFECYCLE retention: {sessions} sessions ({} events) in {:.0} ms, longest pass {:.1} ms; \
         longest append without retention {:.1} ms, beside it {:.1} ms",
        sessions * 5,
        took.as_secs_f64() * 1000.0,
        longest_pass.as_secs_f64() * 1000.0,
        baseline.as_secs_f64() * 1000.0,
        during.as_secs_f64() * 1000.0,
    );
    // The read index dropped the removed rows (over half: compacted) and
    // counts exactly what SQL does.
    let totals = store
        .profile_totals(ProfileQuery {
            person: Person::Visitor("v-store".to_owned()),
            site: None,
            from: None,
            to: None,
        })
        .await
        .unwrap()
        .unwrap();
    assert!(store.read_index_ready());
    let stats = store
        .stats(StatsQuery {
            site: None,
            from: now_ms() - DAY,
            to: now_ms() + DAY,
            include_bots: true,
            interval: Interval::Day,
            filters: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(stats.visits, totals.visits);
    assert_eq!(stats.visitors, 1);
    // A pass is one transaction of at most 200 sessions: well under a
    // second even in a debug build on a loaded machine.
    assert!(longest_pass < Duration::from_secs(1), "{longest_pass:?}");
}
