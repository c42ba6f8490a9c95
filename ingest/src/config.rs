//! How the collector is configured.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use crate::sites::Sites;

/// The default limit on a `POST /v1/batch` body: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default per-IP rate limit on `POST /v1/batch`: sustained batches per second…
pub const DEFAULT_RATE_LIMIT_PER_SECOND: u32 = 50;
/// …and the burst allowed on top.
pub const DEFAULT_RATE_LIMIT_BURST: u32 = 100;
/// Default idle time after which the sweeper closes a session.
pub const DEFAULT_SESSION_TIMEOUT_MINUTES: u64 = 30;
/// Default time between sweeps.
pub const DEFAULT_SWEEP_INTERVAL_SECONDS: u64 = 60;

/// Everything [`serve`](crate::serve) and [`app`](crate::app) need to know.
///
/// Build one with struct-update syntax over [`Config::default`]:
///
/// ```
/// let config = waymark_ingest::Config {
///     data_dir: "/var/lib/waymark".into(),
///     ..Default::default()
/// };
/// assert_eq!(config.max_body_bytes, 1024 * 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The address the binary binds (`serve` itself takes a bound listener).
    pub addr: SocketAddr,
    /// Where the store keeps its files; created when missing.
    pub data_dir: PathBuf,
    /// Static files served for every path the collector does not handle.
    pub www_dir: PathBuf,
    /// Where `sdk.js` and `sdk.wasm` are, as built by `cargo xtask build-sdk`.
    pub sdk_dir: PathBuf,
    /// Largest accepted `POST /v1/batch` body, in bytes.
    pub max_body_bytes: usize,
    /// Which store backs the collector.
    pub store: StoreKind,
    /// MaxMind-format databases for IP → country, region, city, tried in
    /// order (e.g. an IPv4 and an IPv6 file). Empty: no geo.
    pub geoip: Vec<PathBuf>,
    /// Sites and their allowed origins; [`Sites::any`] is demo mode.
    pub sites: Sites,
    /// The read API's bearer token. `None` in [`serve`](crate::serve): a
    /// random one is made and logged; `None` in [`app`](crate::app): the
    /// read API refuses everyone.
    pub admin_token: Option<String>,
    /// Reverse proxies in front of the collector whose `X-Forwarded-For`
    /// entries are trusted: 0 uses the socket's peer address; n takes the
    /// n-th address from the right of `X-Forwarded-For`.
    pub trust_proxy: usize,
    /// Batches per second per client IP (0 turns the limit off).
    pub rate_limit_per_second: u32,
    /// Batches a client IP may send at once above the rate.
    pub rate_limit_burst: u32,
    /// Idle minutes after which the sweeper closes a session.
    pub session_timeout_minutes: u64,
    /// Seconds between sweeps.
    pub sweep_interval_seconds: u64,
}

impl Config {
    pub fn session_timeout_ms(&self) -> u64 {
        self.session_timeout_minutes.saturating_mul(60_000)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            data_dir: PathBuf::from("./data"),
            www_dir: PathBuf::from("./www"),
            sdk_dir: PathBuf::from("./www/pkg"),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            store: StoreKind::Sqlite,
            geoip: Vec::new(),
            sites: Sites::any(),
            admin_token: None,
            trust_proxy: 0,
            rate_limit_per_second: DEFAULT_RATE_LIMIT_PER_SECOND,
            rate_limit_burst: DEFAULT_RATE_LIMIT_BURST,
            session_timeout_minutes: DEFAULT_SESSION_TIMEOUT_MINUTES,
            sweep_interval_seconds: DEFAULT_SWEEP_INTERVAL_SECONDS,
        }
    }
}

/// The kind of store events go to.
///
/// Parsed from `--store` / `WAYMARK_STORE`: `sqlite`, or `null` (keeps
/// nothing, for benchmarks); a `clickhouse://…` URL is recognised and refused
/// with a clear message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StoreKind {
    /// A SQLite file, `waymark.db`, in the data directory.
    #[default]
    Sqlite,
    /// Accepts and discards every event: the ceiling in benchmarks.
    Null,
}

impl FromStr for StoreKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        if trimmed.eq_ignore_ascii_case("sqlite") {
            Ok(StoreKind::Sqlite)
        } else if trimmed.eq_ignore_ascii_case("null") {
            Ok(StoreKind::Null)
        } else if trimmed.to_ascii_lowercase().starts_with("clickhouse") {
            Err("the ClickHouse store is not built yet; use `sqlite`".to_owned())
        } else {
            Err(format!(
                "unknown store {trimmed:?}; the stores built so far are `sqlite` and `null`"
            ))
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreKind::Sqlite => f.write_str("sqlite"),
            StoreKind::Null => f.write_str("null"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_kind_accepts_sqlite_and_refuses_clickhouse_clearly() {
        assert_eq!("sqlite".parse::<StoreKind>(), Ok(StoreKind::Sqlite));
        assert_eq!("SQLite".parse::<StoreKind>(), Ok(StoreKind::Sqlite));
        assert_eq!("null".parse::<StoreKind>(), Ok(StoreKind::Null));
        let err = "clickhouse://localhost:9000/waymark"
            .parse::<StoreKind>()
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("ClickHouse") && err.contains("not built yet"),
            "{err}"
        );
        let err = "postgres".parse::<StoreKind>().err().unwrap_or_default();
        assert!(err.contains("unknown store"), "{err}");
    }
}
