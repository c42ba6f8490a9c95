//! The read API of `PRODUCT.md` ("Reading the data"): breakdowns by every
//! dimension, timeseries, stats with filters and the previous period,
//! realtime, funnels, profiles, CSV, and a `400 invalid_query` for every bad
//! parameter — each answer checked exactly against the hand-made data set of
//! `read_api/data.rs`.
//!
//! Every scenario is a function of the app (`&TestApp`, any store), so the
//! same bodies run on each store, with the same expectations:
//! `sqlite::<name>` and `clickhouse::<name>` (`read_api/metrics.rs`,
//! `visits.rs`, `surface.rs` hold the bodies). The ClickHouse ones run on a
//! real ClickHouse server (one per run of this file, a database per
//! scenario) only with `WAYMARK_TEST_CLICKHOUSE=1`, and otherwise skip,
//! saying so on stderr (`support/optional.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::Value;
use waymark_ingest::{ClickHouseStore, ClickHouseUrl, Config, SqliteStore, Store, StoredEvent};

mod support;
use support::app::{Reply, TestApp};
use support::clickhouse::ClickHouse;

#[path = "read_api/data.rs"]
mod data;
#[path = "read_api/metrics.rs"]
mod metrics;
#[path = "read_api/surface.rs"]
mod surface;
#[path = "read_api/visits.rs"]
mod visits;

use data::{D, DAY, NOW};

const TOKEN: &str = "read-api-admin-token-0123";

fn config() -> Config {
    Config {
        admin_token: Some(TOKEN.to_owned()),
        ..Config::default()
    }
}

/// The SQLite store in a temporary directory, holding the data set.
async fn sqlite() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    load(TestApp::on_dyn(store, config(), NOW, dir)).await
}

/// The ClickHouse server of this test binary, started on first use; `None`
/// (the test's skip said) unless `WAYMARK_TEST_CLICKHOUSE=1`.
fn clickhouse_server() -> Option<&'static ClickHouse> {
    static SERVER: OnceLock<ClickHouse> = OnceLock::new();
    support::optional::clickhouse().then(|| SERVER.get_or_init(ClickHouse::start))
}

/// When a ClickHouse scenario compacts the sessions into `sessions_flat`.
#[derive(Debug, Clone, Copy)]
enum Compaction {
    /// Never: every session is read from the merged aggregate states.
    Never,
    /// Once the whole data set is in: every session is read from
    /// `sessions_flat`.
    After,
    /// After the first half of the events: the sessions the second half
    /// touches are read merged, the others flat.
    Between,
    /// As `Between`, with the read mirror off: every read in SQL (as while
    /// the mirror is built).
    BetweenInSql,
}

/// The ClickHouse store on its own database, named after the scenario,
/// holding the data set, compacted as `compaction` says; `None` when the
/// ClickHouse tests are not to run.
async fn clickhouse(scenario: &str, compaction: Compaction) -> Option<TestApp> {
    let server = clickhouse_server()?;
    // The store's log (insert retries, …) shows with a failing test.
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let dir = tempfile::tempdir().unwrap();
    let url: ClickHouseUrl = server
        .url(&format!("read_{scenario}_{compaction:?}").to_lowercase())
        .parse()
        .unwrap();
    let store = ClickHouseStore::open(&url, dir.path(), 1 << 30, Duration::from_millis(20))
        .await
        .unwrap();
    let in_sql = matches!(compaction, Compaction::BetweenInSql);
    store.set_read_mirror(!in_sql);
    if !in_sql {
        // Built at open, on an empty database: the stats, breakdowns and
        // timeseries are answered from it.
        support::clickhouse::read_mirror_ready(&store).await;
    }
    let events = data::events();
    let half = match compaction {
        Compaction::Never | Compaction::After => events.len(),
        Compaction::Between | Compaction::BetweenInSql => events.len() / 2,
    };
    append(&store, events[..half].to_vec()).await;
    if !matches!(compaction, Compaction::Never) {
        compact_everything(&store).await;
    }
    append(&store, events[half..].to_vec()).await;
    Some(TestApp::on_dyn(Arc::new(store), config(), NOW, dir))
}

/// A compaction that vouches for every session touched so far: begun a
/// second (the resolution of the touch times) after the last insert.
async fn compact_everything(store: &ClickHouseStore) {
    tokio::time::sleep(Duration::from_millis(1100)).await;
    store.compact_with_margin(0).await.unwrap();
}

/// Appends `events` and waits until they can be read back.
async fn append(store: &dyn Store, events: Vec<StoredEvent>) {
    if events.is_empty() {
        return;
    }
    let outcome = store.append(events.clone()).await.unwrap();
    assert_eq!(outcome.inserted, events.len());
    tokio::time::timeout(Duration::from_secs(20), store.sync())
        .await
        .expect("the store takes the data set within 20 s")
        .unwrap();
}

/// Appends the data set and waits until it can be read back.
async fn load(app: TestApp) -> TestApp {
    append(app.store.as_ref(), data::events()).await;
    app
}

/// A read with the admin token.
async fn get(app: &TestApp, path: &str) -> Reply {
    let request = Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    app.send(request).await
}

/// A read that must answer `200` with JSON.
async fn answer(app: &TestApp, path: &str) -> Value {
    let reply = get(app, path).await;
    assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
    reply.json()
}

/// `site=shop` over day one and day two, `[D, D + 2 days)`.
fn range() -> String {
    format!("site=shop&from={D}&to={}", D + 2 * DAY)
}

/// One scenario per test, on each store: `sqlite::<name>` and, on
/// ClickHouse (which skips, saying so, unless `WAYMARK_TEST_CLICKHOUSE=1`),
/// `clickhouse::<name>` (never compacted), `clickhouse_compacted::<name>`
/// (every session from `sessions_flat`) and
/// `clickhouse_half_compacted::<name>` (`sessions_flat` and the merged
/// states of the sessions touched since).
macro_rules! read_api {
    ($($module:ident::$name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$module::$name(&super::sqlite().await).await;
                }
            )*
        }
        read_api!(@clickhouse clickhouse, Never, $($module::$name),*);
        read_api!(@clickhouse clickhouse_compacted, After, $($module::$name),*);
        read_api!(@clickhouse clickhouse_half_compacted, Between, $($module::$name),*);
        read_api!(@clickhouse clickhouse_half_compacted_sql, BetweenInSql, $($module::$name),*);
    };
    (@clickhouse $store:ident, $compaction:ident, $($module:ident::$name:ident),*) => {
        mod $store {
            $(
                #[tokio::test]
                async fn $name() {
                    let compaction = super::Compaction::$compaction;
                    let Some(app) = super::clickhouse(stringify!($name), compaction).await else {
                        return;
                    };
                    super::$module::$name(&app).await;
                }
            )*
        }
    };
}

read_api!(
    metrics::every_dimension_breaks_down_as_worked_out_by_hand,
    metrics::filters_must_all_hold_and_pages_and_events_match_any,
    metrics::stats_take_filters_and_the_previous_period,
    metrics::a_visit_is_counted_by_its_start,
    metrics::timeseries_buckets_by_hour_and_day,
    visits::realtime_counts_the_last_five_minutes,
    visits::funnel_steps_count_in_order_only,
    visits::profiles_link_visitors_and_users_with_paged_sessions,
    visits::sessions_take_filters,
    visits::sites_are_kept_apart,
    visits::the_default_range_is_the_last_seven_days,
    surface::tables_answer_csv,
    surface::every_bad_parameter_is_400_invalid_query,
    surface::every_endpoint_needs_the_admin_token,
);
