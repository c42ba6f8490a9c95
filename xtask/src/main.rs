//! Developer commands for Waymark, run as `cargo xtask <command>`.
//!
//! Each command first installs what it is missing (the wasm32 target, the
//! wasm-bindgen CLI matching `Cargo.lock`, binaryen's `wasm-opt`, and for the
//! tests wasm-pack, Chromium and ChromeDriver) and is quick when all is there.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod bench;
mod compress;
mod demo;
mod integrity;
mod npm;
mod setup;
mod wasm_names;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  demo        build the SDK and run the collector with the demo site on http://127.0.0.1:8080;
              prints the dashboard's address and its admin token once it answers
  test        run every test: the gates, native, wasm-pack browser tests, end-to-end in Chromium
  gates       rustfmt --check, clippy -D warnings (native and wasm32), rustdoc -D warnings
  build-sdk   build www/pkg/sdk.js and www/pkg/sdk.wasm (size-optimised, with .br and .gz copies)
  build-npm   build the npm package `waymark` into target/npm/waymark/ (needs wasm-pack: `cargo xtask setup`)
  setup       install what the commands above need
  bench       load-test the release collector (null store, SQLite, ClickHouse), time the read
              API on a month of traffic, and compare the SDK's size and cost with three peers
              in headless Chromium (BENCHMARKS.md); options:
                --loading-only    only the SDK on a throttled page beside a 1 KB baseline
                --read-only       only the read side
                --no-read         everything but the read side
                --read-events N   events of the read side's traffic (default 10000000)
                --read-refill     fill the read side's stores anew instead of reusing them";

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(&args[1..]),
        Some("test") => test(),
        Some("gates") => setup::build_tools().and_then(|()| gates()),
        Some("build-sdk") => setup::build_tools().and_then(|()| build_sdk()),
        Some("build-npm") => setup::build_tools()
            .and_then(|()| setup::test_tools())
            .and_then(|()| npm::build()),
        Some("bench") => bench::bench(&args[1..]),
        Some("setup") => setup::build_tools().and_then(|()| setup::test_tools()),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Runs a command in the workspace root, failing on a non-zero exit.
fn run(cmd: &mut Command) -> Result {
    let shown = format!("{cmd:?}").replace('"', "");
    eprintln!("xtask: $ {shown}");
    let status = cmd
        .current_dir(root())
        .status()
        .map_err(|e| format!("could not start {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

fn cargo() -> Command {
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// wasm-opt's flags beyond `setup::WASM_OPT_FLAGS`, for both SDK builds:
/// inlining a function into its only caller is left to functions of up to
/// 20 bytes. Larger ones inlined make the module a little smaller but
/// compress worse (measured: the script-tag wasm 24,780 B gzipped with
/// binaryen's default, 24,404 B with this).
const WASM_OPT_MORE_FLAGS: [&str; 1] = ["--one-caller-inline-max-function-size=20"];

/// esbuild, which minifies `sdk.js`; kept in its own npm prefix so that
/// installing it and binaryen never prunes the other.
const ESBUILD_VERSION: &str = "0.28.2";

/// Builds the script-tag SDK into `www/pkg/`: `sdk.wasm` and `sdk.js` (the
/// wasm-bindgen glue and the loader in one function scope, minified), each
/// with a brotli `.br` and a gzip `.gz` beside it.
fn build_sdk() -> Result {
    let root = root();
    run(cargo().args([
        "build",
        "-p",
        "waymark-sdk",
        "--lib",
        "--target",
        "wasm32-unknown-unknown",
        "--profile",
        "wasm-release",
    ]))?;
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let raw = target.join("wasm32-unknown-unknown/wasm-release/waymark_sdk.wasm");
    let staging = target.join("sdk-bindgen");
    run(Command::new("wasm-bindgen")
        .arg(&raw)
        .args([
            "--target",
            "no-modules",
            "--no-typescript",
            // The loader always passes the wasm's URL, and every browser
            // that runs this wasm (reference types) has `encodeInto`.
            "--omit-default-module-path",
            "--encode-into",
            "always",
            "--out-name",
            "sdk",
            "--out-dir",
        ])
        .arg(&staging))?;

    let pkg = root.join("www/pkg");
    fs::create_dir_all(&pkg).map_err(|e| format!("creating {}: {e}", pkg.display()))?;
    let wasm = pkg.join("sdk.wasm");
    // After -Oz, every import, export and module name is shortened:
    // wasm-bindgen's hashed import names are a large part of both files.
    // wasm-opt prints the renames, which the glue then gets too.
    let mut opt = Command::new(setup::wasm_opt());
    opt.arg(staging.join("sdk_bg.wasm"))
        .args(setup::WASM_OPT_FLAGS)
        .args(WASM_OPT_MORE_FLAGS)
        .args(["--minify-imports-and-exports-and-modules", "-o"])
        .arg(&wasm);
    let renames = String::from_utf8(output_of(&mut opt)?).map_err(|e| e.to_string())?;
    let optimized = fs::read(&wasm).map_err(|e| format!("reading {}: {e}", wasm.display()))?;
    let glue = fs::read_to_string(staging.join("sdk.js")).map_err(|e| e.to_string())?;
    let glue = wasm_names::trim(&glue)?;
    let glue = wasm_names::apply(&glue, &renames, &optimized)?;
    let loader = fs::read_to_string(root.join("sdk/js/loader.js")).map_err(|e| e.to_string())?;
    let loader = integrity::name_wasm_by_hash(&loader, &optimized)?;
    let script = format!("(function(){{\n{glue}\n{loader}\n}})();\n");
    let unminified = staging.join("sdk.full.js");
    fs::write(&unminified, script).map_err(|e| e.to_string())?;

    let esbuild = setup::tools_dir().join("esbuild/node_modules/.bin/esbuild");
    let installed = Command::new(&esbuild)
        .arg("--version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == ESBUILD_VERSION);
    if !installed {
        setup::npm_install("esbuild", &format!("esbuild@{ESBUILD_VERSION}"))?;
    }
    run(Command::new(&esbuild)
        .arg(&unminified)
        .args(["--minify", "--log-level=warning"])
        .arg(format!("--outfile={}", pkg.join("sdk.js").display())))?;

    for name in ["sdk.wasm", "sdk.js"] {
        let sizes = compress::precompress(&pkg.join(name))?;
        eprintln!(
            "xtask: built www/pkg/{name}: {} bytes, {} brotli (.br), {} gzip (.gz)",
            sizes.raw, sizes.brotli, sizes.gzip
        );
    }
    match integrity::sri(&pkg.join("sdk.js")) {
        Ok(hash) => {
            eprintln!("xtask: sdk.js integrity=\"{hash}\" (with crossorigin=\"anonymous\")")
        }
        Err(e) => eprintln!("xtask: no integrity hash: {e}"),
    }
    Ok(())
}

/// Runs a command in the workspace root and returns what it printed on stdout.
fn output_of(cmd: &mut Command) -> Result<Vec<u8>> {
    let shown = format!("{cmd:?}").replace('"', "");
    eprintln!("xtask: $ {shown}");
    let out = cmd
        .current_dir(root())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("could not start {shown}: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!("{shown} failed ({})", out.status))
    }
}

fn demo(extra: &[String]) -> Result {
    setup::build_tools()?;
    build_sdk()?;
    let mut collector = cargo();
    collector
        .current_dir(root())
        .args([
            "run",
            "--release",
            "-p",
            "waymark-ingest",
            "--bin",
            "waymark",
            "--",
        ])
        .args(extra);
    demo::run(collector, extra)
}

fn test() -> Result {
    setup::build_tools()?;
    setup::test_tools()?;
    gates()?;
    build_sdk()?;
    npm::build()?;
    let tiers = [
        (
            "tier 1: native unit, property and collector tests",
            cargo(),
            &[
                "test",
                "--workspace",
                "--exclude",
                "waymark-e2e",
                "--exclude",
                "xtask",
            ][..],
        ),
        (
            "tier 2: SDK shell in headless Chromium (wasm-pack test)",
            Command::new("wasm-pack"),
            &[
                "test",
                "--headless",
                "--chrome",
                "sdk",
                "--lib",
                "--test",
                "browser",
            ],
        ),
        (
            "tier 3: end to end, real Chromium, real collector, real SQLite",
            cargo(),
            &[
                "test",
                "-p",
                "waymark-e2e",
                "--test",
                "browser",
                "--test",
                "npm",
                "--test",
                "csp",
                "--test",
                "dashboard",
                "--test",
                "dashboard_views",
                "--test",
                "size",
                "--test",
                "throttled",
            ],
        ),
    ];
    let mut totals = TestCount::default();
    let mut failed_tiers = Vec::new();
    for (name, mut command, args) in tiers {
        eprintln!("\nxtask: ===== {name} =====");
        command.args(args).env("CHROMEDRIVER", setup::CHROMEDRIVER);
        // The collector's ClickHouse, GeoIP and chDB tests skip unless told
        // that the server, the database and chDB are there (see
        // ingest/tests/support/optional.rs). `test_tools` installed them, so
        // here every one of them runs, and a missing one fails.
        // Likewise the end-to-end tests (tests/harness.rs): Chromium,
        // ChromeDriver and the built SDK are there.
        command
            .env("WAYMARK_TEST_CLICKHOUSE", "1")
            .env("WAYMARK_TEST_GEOIP", setup::geoip_database())
            .env("WAYMARK_TEST_CHDB", setup::chdb_python())
            .env("WAYMARK_TEST_E2E", "1")
            // ingest/tests/soak.rs: 30 s on each store, side by side.
            .env("WAYMARK_SOAK_SECS", "30");
        match run_tests(&mut command) {
            Ok(count) => totals.add(count),
            Err((count, e)) => {
                totals.add(count);
                eprintln!("xtask: {name}: {e}");
                failed_tiers.push(name);
            }
        }
    }
    println!("\nxtask: {} of 3 test tiers passed", 3 - failed_tiers.len());
    println!("tests: {} passed, {} failed", totals.passed, totals.failed);
    if failed_tiers.is_empty() {
        Ok(())
    } else {
        Err(format!("failed: {}", failed_tiers.join("; ")))
    }
}

/// The checks every change passes before any test runs: formatting, clippy
/// with warnings as errors (natively, and the browser crate for wasm32,
/// where its code lives) and the docs with warnings as errors (stale links).
fn gates() -> Result {
    eprintln!("\nxtask: ===== gates: rustfmt, clippy, rustdoc =====");
    run(cargo().args(["fmt", "--all", "--check"]))?;
    let deny = ["--", "-D", "warnings"];
    run(cargo()
        .args(["clippy", "--workspace", "--all-targets"])
        .args(deny))?;
    run(cargo()
        .args(["clippy", "-p", "waymark-sdk", "--all-targets"])
        .args(["--target", "wasm32-unknown-unknown"])
        .args(deny))?;
    run(cargo()
        .args(["doc", "--no-deps", "--workspace"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    run(cargo()
        .args(["doc", "--no-deps", "-p", "waymark-sdk"])
        .args(["--target", "wasm32-unknown-unknown"])
        .env("RUSTDOCFLAGS", "-D warnings"))
}

/// Tests counted from the `test result:` lines of cargo's test harness and
/// of wasm-bindgen-test-runner.
#[derive(Debug, Default, Clone, Copy)]
struct TestCount {
    passed: u64,
    failed: u64,
}

impl TestCount {
    fn add(&mut self, other: TestCount) {
        self.passed += other.passed;
        self.failed += other.failed;
    }

    /// Reads `test result: ok. 5 passed; 0 failed; …`.
    fn parse(line: &str) -> Option<TestCount> {
        let rest = line.trim().strip_prefix("test result: ")?;
        let number_before = |word: &str| {
            rest.split(';')
                .find_map(|part| {
                    part.trim()
                        .trim_start_matches("ok. ")
                        .trim_start_matches("FAILED. ")
                        .strip_suffix(word)
                })
                .and_then(|n| n.trim().parse().ok())
        };
        Some(TestCount {
            passed: number_before(" passed")?,
            failed: number_before(" failed")?,
        })
    }
}

/// Runs a test command, echoing its output and counting its tests.
fn run_tests(cmd: &mut Command) -> std::result::Result<TestCount, (TestCount, String)> {
    use std::io::{BufRead, BufReader};
    let shown = format!("{cmd:?}").replace('"', "");
    eprintln!("xtask: $ {shown}");
    let mut child = cmd
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            (
                TestCount::default(),
                format!("could not start {shown}: {e}"),
            )
        })?;
    let mut count = TestCount::default();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out)
            .lines()
            .map_while(std::result::Result::ok)
        {
            println!("{line}");
            if let Some(c) = TestCount::parse(&line) {
                count.add(c);
            }
        }
    }
    match child.wait() {
        Ok(status) if status.success() => Ok(count),
        Ok(status) => Err((count, format!("{shown} failed ({status})"))),
        Err(e) => Err((count, e.to_string())),
    }
}
