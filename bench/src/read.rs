//! `waymark-bench read`: fills SQLite and ClickHouse with a month of
//! realistic traffic through the release collector's `/v1/batch`, then times
//! the read API on each.
//!
//! ```text
//! waymark-bench read <path/to/waymark> --cache <dir> [--events 10000000]
//!     [--clickhouse clickhouse://127.0.0.1:PORT] [--geoip a.mmdb,b.mmdb]
//!     [--reps 20] [--connections 16] [--refill] [--no-sqlite]
//!     [--dashboard-runs 10]
//! ```
//!
//! A filled store is kept under `<cache>/v<TRAFFIC>-<events>/` (SQLite) and
//! in the ClickHouse database `read_v<TRAFFIC>_<events>`, with a
//! `fill.json` saying how the fill went; the next run with the same size
//! reads it again instead of filling. `--refill` fills anew (needed after
//! a change to what the stores write).
//!
//! After the read API, the dashboard is timed in headless Chromium on the
//! same collector, `--dashboard-runs` times (0: not), see [`dashboard`].
//!
//! [`dashboard`]: crate::dashboard

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::collector::{Collector, Launch};
use crate::fill::{fill, now_ms, Filled};
use crate::reads::{self, Timing};
use crate::traffic::Traffic;
use crate::{HttpClient, Result};

/// Bump when the traffic's shape changes: stores filled before are then
/// filled anew.
const TRAFFIC_VERSION: u32 = 1;
const DAY_MS: u64 = 86_400_000;
/// Days of traffic.
const WINDOW_DAYS: u64 = 30;
/// The window ends this long before the fill starts, so that every visit
/// has been idle for longer than the 30-minute session timeout when the
/// fill is done and the sweeper closes them all.
const WINDOW_END_BEFORE_FILL_MS: u64 = 2 * 3_600_000;

struct Options {
    waymark: PathBuf,
    cache: PathBuf,
    events: u64,
    clickhouse: Option<String>,
    geoip: Option<String>,
    reps: usize,
    connections: usize,
    refill: bool,
    sqlite: bool,
    dashboard_runs: usize,
}

fn options(args: &[String]) -> Result<Options> {
    let mut args = args.iter();
    let mut o = Options {
        waymark: PathBuf::new(),
        cache: PathBuf::new(),
        events: 10_000_000,
        clickhouse: None,
        geoip: None,
        reps: 20,
        connections: 16,
        refill: false,
        sqlite: true,
        dashboard_runs: 10,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let number = |v: String, name: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--cache" => o.cache = PathBuf::from(value(arg)?),
            "--events" => o.events = number(value(arg)?, arg)?.max(1_000),
            "--clickhouse" => o.clickhouse = Some(value(arg)?),
            "--geoip" => o.geoip = Some(value(arg)?).filter(|g| !g.is_empty()),
            "--reps" => o.reps = number(value(arg)?, arg)?.clamp(1, 1000) as usize,
            "--connections" => o.connections = number(value(arg)?, arg)?.clamp(1, 256) as usize,
            "--refill" => o.refill = true,
            "--no-sqlite" => o.sqlite = false,
            "--dashboard-runs" => o.dashboard_runs = number(value(arg)?, arg)?.min(100) as usize,
            path => o.waymark = PathBuf::from(path),
        }
    }
    if !o.waymark.is_file() || o.cache.as_os_str().is_empty() {
        return Err(
            "usage: waymark-bench read <path/to/waymark> --cache <dir> [--events N] \
             [--clickhouse clickhouse://host:port] [--geoip files] [--reps 20] [--refill] \
             [--dashboard-runs 10]"
                .into(),
        );
    }
    Ok(o)
}

/// How a store was filled: kept in `fill.json` beside its data.
struct Manifest {
    window_start: u64,
    window_end: u64,
    json: Value,
}

impl Manifest {
    fn load(path: &Path) -> Option<Manifest> {
        let json: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        (json["traffic_version"] == TRAFFIC_VERSION).then_some(())?;
        Some(Manifest {
            window_start: json["window_start"].as_u64()?,
            window_end: json["window_end"].as_u64()?,
            json,
        })
    }
}

/// One store's fill, its size and its timings.
pub struct StoreRun {
    pub name: &'static str,
    pub manifest: Value,
    pub reused: bool,
    pub counts: Counts,
    pub timings: Vec<Timing>,
    pub dashboard: crate::dashboard::Dashboard,
}

/// Rows in the store, and its bytes on disk.
#[derive(Default)]
pub struct Counts {
    pub events: u64,
    pub sessions: u64,
    pub visitors: u64,
    pub bytes: u64,
}

pub fn run(args: &[String]) -> Result {
    let o = options(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio: {e}"))?;
    let client: HttpClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build_http();
    let key = format!("v{TRAFFIC_VERSION}-{}", o.events);
    let mut runs = Vec::new();
    if o.sqlite {
        let dir = o.cache.join(&key).join("sqlite");
        runs.push(store_run(&o, &runtime, &client, "sqlite", "sqlite", &dir)?);
    }
    if let Some(base) = &o.clickhouse {
        let db = format!("read_v{TRAFFIC_VERSION}_{}", o.events);
        let url = format!("{}/{db}", base.trim_end_matches('/'));
        let dir = o.cache.join(&key).join("clickhouse");
        runs.push(store_run(&o, &runtime, &client, "clickhouse", &url, &dir)?);
    }
    reads::print(&runs, o.events, o.reps);
    Ok(())
}

/// Fills one store (unless a fill of this size is kept), then times the
/// reads on a freshly started collector.
fn store_run(
    o: &Options,
    runtime: &tokio::runtime::Runtime,
    client: &HttpClient,
    name: &'static str,
    store: &str,
    dir: &Path,
) -> Result<StoreRun> {
    let manifest_path = dir.join("fill.json");
    let kept = if o.refill {
        None
    } else {
        Manifest::load(&manifest_path)
    };
    let mut flags = vec!["--max-event-age-days".to_owned(), "32".to_owned()];
    if let Some(geoip) = &o.geoip {
        flags.extend([
            "--geoip".to_owned(),
            geoip.clone(),
            "--trust-proxy".to_owned(),
            "1".to_owned(),
        ]);
    }
    let launch = |store| Launch {
        waymark: &o.waymark,
        store,
        data: Some(dir.join("collector")),
        args: flags.clone(),
    };
    let reused = kept.is_some();
    let manifest = match kept {
        Some(m) => {
            eprintln!(
                "waymark-bench: {name}: reusing the fill of {} ({} s), from {}",
                o.events,
                m.json["fill_seconds"],
                dir.display()
            );
            m
        }
        None => {
            let _ = std::fs::remove_dir_all(dir);
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            if let Some(http) = clickhouse_http(store) {
                let db = store.rsplit('/').next().unwrap_or_default();
                runtime.block_on(clickhouse_query(
                    client,
                    &http,
                    &format!("DROP DATABASE IF EXISTS {db}"),
                ))?;
            }
            let filled_at = now_ms();
            let window_end = filled_at - WINDOW_END_BEFORE_FILL_MS;
            let window_start = window_end - WINDOW_DAYS * DAY_MS;
            eprintln!(
                "waymark-bench: {name}: filling {} events over {WINDOW_DAYS} days",
                o.events
            );
            let collector = Collector::launch(launch(store))?;
            let traffic = Traffic::new(o.events, window_start, window_end);
            let base = format!("http://{}", collector.addr);
            let filled = runtime.block_on(fill(
                client,
                &base,
                traffic,
                o.connections,
                o.geoip.is_some(),
            ));
            let drain = if name == "clickhouse" {
                Some(collector.wait_for_empty_spool(Duration::from_secs(3600))?)
            } else {
                None
            };
            let sweep = wait_for_sweep(&collector, filled.sessions);
            let rss = collector.peak_rss_kb();
            let log = collector.log();
            collector.stop();
            report_fill(name, &filled, drain, sweep);
            if filled.failed_batches > 0 || filled.rejected > 0 {
                eprintln!("waymark-bench: {name}: collector log:\n{log}");
            }
            let json = json!({
                "traffic_version": TRAFFIC_VERSION,
                "events_target": o.events,
                "window_start": window_start,
                "window_end": window_end,
                "filled_at": filled_at,
                "geoip": o.geoip.is_some(),
                "connections": o.connections,
                "batches": filled.batches,
                "events_sent": filled.events_sent,
                "accepted": filled.accepted,
                "duplicates": filled.duplicates,
                "rejected": filled.rejected,
                "first_rejection": filled.first_rejection,
                "retries": filled.retries,
                "failed_batches": filled.failed_batches,
                "sessions_sent": filled.sessions,
                "visitors_sent": filled.visitors,
                "fill_seconds": (filled.seconds * 10.0).round() / 10.0,
                "events_per_second": (filled.accepted as f64 / filled.seconds).round(),
                "drain_seconds": drain.map(|d| (d * 10.0).round() / 10.0),
                "sweep_seconds": sweep.map(|d| (d * 10.0).round() / 10.0),
                "peak_rss_kb": rss,
            });
            std::fs::write(&manifest_path, format!("{json:#}\n"))
                .map_err(|e| format!("{}: {e}", manifest_path.display()))?;
            Manifest {
                window_start,
                window_end,
                json,
            }
        }
    };
    let collector = Collector::launch(launch(store))?;
    if let Some(http) = clickhouse_http(store) {
        runtime.block_on(wait_for_compaction(client, &http, store, name))?;
    }
    // SQLite's read index, or ClickHouse's read mirror (built again after
    // the compaction if that marked sessions touched).
    wait_for_read_index(&collector, name);
    let counts = runtime.block_on(counts(client, store, dir))?;
    let base = format!("http://{}", collector.addr);
    let window = (manifest.window_start, manifest.window_end);
    eprintln!(
        "waymark-bench: {name}: timing the read API ({} runs each)",
        o.reps
    );
    let timings = runtime.block_on(reads::time_all(client, &base, window, o.reps));
    let dashboard = crate::dashboard::measure(runtime, &base, o.dashboard_runs, name);
    collector.stop();
    Ok(StoreRun {
        name,
        manifest: manifest.json,
        reused,
        counts,
        timings,
        dashboard,
    })
}

fn report_fill(name: &str, f: &Filled, drain: Option<f64>, sweep: Option<f64>) {
    eprintln!(
        "waymark-bench: {name}: {} events in {} batches acknowledged in {:.1} s ({:.0} events/s); \
         {} rejected, {} retried, {} batches lost{}{}",
        f.accepted,
        f.batches,
        f.seconds,
        f.accepted as f64 / f.seconds,
        f.rejected,
        f.retries,
        f.failed_batches,
        drain.map_or(String::new(), |d| format!("; spool drained {d:.1} s later")),
        sweep.map_or(
            ", the sweeper did not close every visit".to_owned(),
            |d| format!("; every visit closed by the sweeper {d:.1} s later")
        ),
    );
    if let Some(r) = &f.first_rejection {
        eprintln!("waymark-bench: {name}: first rejection: {r}");
    }
}

/// Waits (up to 30 minutes) for the store to have built its read index
/// (SQLite) or read mirror (ClickHouse), so that reads are timed on it;
/// reports how long that took, its size and the collector's memory then.
fn wait_for_read_index(collector: &Collector, name: &str) {
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(1800) {
        match collector.metric("waymark_read_index_ready") {
            Ok(Some(ready)) if ready >= 1.0 => {
                let bytes = collector
                    .metric("waymark_read_index_bytes")
                    .ok()
                    .flatten()
                    .unwrap_or(0.0);
                eprintln!(
                    "waymark-bench: {name}: read index ready {:.1} s after start, about {:.0} MB; \
                     collector RSS {} MB",
                    started.elapsed().as_secs_f64(),
                    bytes / 1e6,
                    collector
                        .rss_kb()
                        .map_or("?".to_owned(), |kb| (kb / 1024).to_string()),
                );
                return;
            }
            // A collector without a read index.
            Ok(None) => return,
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    eprintln!("waymark-bench: {name}: the read index was not ready after 30 minutes");
}

/// Waits (up to 30 minutes) until the sweeper has closed at least
/// `sessions` visits: the seconds that took, `None` on timeout.
fn wait_for_sweep(collector: &Collector, sessions: u64) -> Option<f64> {
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(1800) {
        let swept = collector
            .metric("waymark_sessions_swept_total")
            .ok()
            .flatten()
            .unwrap_or(0.0);
        if swept >= sessions as f64 {
            return Some(started.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    None
}

/// `http://host:port` of a `clickhouse://host:port/db` store.
fn clickhouse_http(store: &str) -> Option<String> {
    let rest = store.strip_prefix("clickhouse://")?;
    let host = rest.split('/').next()?;
    let host = host.rsplit('@').next()?;
    Some(format!("http://{host}/"))
}

/// Runs one query through ClickHouse's HTTP interface: the answer's text.
async fn clickhouse_query(client: &HttpClient, http: &str, sql: &str) -> Result<String> {
    let request = hyper::Request::post(http)
        .body(http_body_util::Full::new(bytes::Bytes::from(
            sql.to_owned(),
        )))
        .map_err(|e| e.to_string())?;
    let (status, body) = reads::send(client, request)
        .await
        .map_err(|e| format!("ClickHouse: {e}"))?;
    let ok = status.is_success();
    let text = String::from_utf8_lossy(&body).trim().to_owned();
    if ok {
        Ok(text)
    } else {
        Err(format!("ClickHouse: {sql}: {text}"))
    }
}

/// Waits (up to 3 minutes) until the collector's compactions have caught up
/// with the fill: no session is left to merge from `sessions_agg` at read
/// time, as on a site whose last minute of traffic is small next to its
/// month.
async fn wait_for_compaction(client: &HttpClient, http: &str, store: &str, name: &str) -> Result {
    let db = store.rsplit('/').next().unwrap_or_default();
    let delta = format!(
        "SELECT count() FROM {db}.sessions_touched WHERE touched_at >= \
         (SELECT max(began_at - margin) FROM {db}.compactions)"
    );
    let started = Instant::now();
    loop {
        // An error until the collector has migrated to schema version 4.
        let left = clickhouse_query(client, http, &delta)
            .await
            .unwrap_or_else(|err| err);
        if left == "0" {
            eprintln!(
                "waymark-bench: {name}: compacted, {:.0} s after the start",
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(180) {
            return Err(format!(
                "{name}: {left} sessions still not compacted after 3 minutes"
            ));
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Events, sessions and visitors stored, and the store's bytes on disk
/// (SQLite: the database file with its WAL; ClickHouse: the active parts
/// of the database's tables).
async fn counts(client: &HttpClient, store: &str, dir: &Path) -> Result<Counts> {
    if let Some(http) = clickhouse_http(store) {
        let db = store.rsplit('/').next().unwrap_or_default();
        let rows = clickhouse_query(
            client,
            &http,
            &format!(
                "SELECT count(), uniqExact(session_id), uniqExact(visitor_id) FROM {db}.events"
            ),
        )
        .await?;
        let bytes = clickhouse_query(
            client,
            &http,
            &format!(
                "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = '{db}' AND active"
            ),
        )
        .await?;
        let n: Vec<u64> = rows.split('\t').map(|v| v.parse().unwrap_or(0)).collect();
        return Ok(Counts {
            events: n.first().copied().unwrap_or(0),
            sessions: n.get(1).copied().unwrap_or(0),
            visitors: n.get(2).copied().unwrap_or(0),
            bytes: bytes.parse().unwrap_or(0),
        });
    }
    let data = dir.join("collector");
    let db = data.join("waymark.db");
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("{}: {e}", db.display()))?;
    let one = |sql: &str| -> Result<u64> {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
            .map_err(|e| format!("{sql}: {e}"))
    };
    let bytes = std::fs::read_dir(&data)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("waymark.db"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    Ok(Counts {
        events: one("SELECT COUNT(*) FROM events")?,
        sessions: one("SELECT COUNT(*) FROM sessions")?,
        visitors: one("SELECT COUNT(DISTINCT visitor_id) FROM sessions")?,
        bytes,
    })
}
