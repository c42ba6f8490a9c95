//! How the collector is configured.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use crate::sites::Sites;
pub use crate::store::ClickHouseUrl;
use crate::wire::{TimeBounds, MAX_EVENT_AHEAD_MS};

/// The default limit on a `POST /v1/batch` body: 1 MiB, the wire format's
/// [`MAX_BODY_BYTES`](waymark_wire::MAX_BODY_BYTES).
pub const DEFAULT_MAX_BODY_BYTES: usize = waymark_wire::MAX_BODY_BYTES;
/// Default per-IP rate limit on `POST /v1/batch`: sustained batches per second…
pub const DEFAULT_RATE_LIMIT_PER_SECOND: u32 = 50;
/// …and the burst allowed on top.
pub const DEFAULT_RATE_LIMIT_BURST: u32 = 100;
/// Default most `POST /v1/batch` requests handled at once; more get `503`.
pub const DEFAULT_MAX_BATCHES_IN_FLIGHT: usize = 512;
/// Default most connections open at once; more wait to be accepted.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default time a request's head may take to arrive, in milliseconds.
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// Default time a connection may sit idle, in milliseconds.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;
/// Default idle time after which the sweeper closes a session.
pub const DEFAULT_SESSION_TIMEOUT_MINUTES: u64 = 30;
/// Default age past which events are rejected (reason `ts`).
pub const DEFAULT_MAX_EVENT_AGE_DAYS: u64 = 31;
/// Default most events one session holds besides its `visit_ended`.
pub const DEFAULT_MAX_EVENTS_PER_SESSION: u64 = 10_000;
/// Default time between sweeps.
pub const DEFAULT_SWEEP_INTERVAL_SECONDS: u64 = 60;

/// Default bound of the ClickHouse store's spool: 1 GiB.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 1 << 30;
/// Default longest wait of an event in the spool before its insert.
pub const DEFAULT_FLUSH_INTERVAL_MS: u64 = 1000;
/// Default bound of the ClickHouse store's dead-letter: 256 MiB.
pub const DEFAULT_DEAD_LETTER_MAX_BYTES: u64 = 256 << 20;

/// The shortest admin token [`serve`](crate::serve) and the `waymark` binary
/// accept, in characters.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// Whether `token` may be the admin token: at least [`MIN_ADMIN_TOKEN_LEN`]
/// characters. The error says what to fix without repeating the token.
///
/// [`serve`](crate::serve) and the binary check it at start; [`app`](crate::app)
/// does not, so tests may build a router with any token.
///
/// ```
/// assert!(waymark_ingest::check_admin_token("t").is_err());
/// assert!(waymark_ingest::check_admin_token("0123456789abcdef").is_ok());
/// ```
pub fn check_admin_token(token: &str) -> Result<(), String> {
    if token.chars().count() < MIN_ADMIN_TOKEN_LEN {
        Err(format!(
            "the admin token (WAYMARK_ADMIN_TOKEN, --admin-token) must be at least \
             {MIN_ADMIN_TOKEN_LEN} characters; use a long random one, e.g. `openssl rand -hex 32`, \
             or leave it unset for a random token for this run"
        ))
    } else {
        Ok(())
    }
}

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
///
/// Its `Debug` shows every field but the admin token, which it redacts.
#[derive(Clone, PartialEq, Eq)]
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
    /// Batches per second per client (0 turns the limit off): per IPv4
    /// address, per IPv6 /64 network.
    pub rate_limit_per_second: u32,
    /// Batches a client may send at once above the rate.
    pub rate_limit_burst: u32,
    /// Most `POST /v1/batch` requests handled at once (0: no limit); beyond
    /// it a batch gets `503` with `Retry-After`, counted in
    /// `waymark_batches_shed_total{reason="in_flight"}`.
    pub max_batches_in_flight: usize,
    /// [`serve`](crate::serve): most connections open at once (0: no
    /// limit); beyond it new connections wait in the listen backlog.
    pub max_connections: usize,
    /// [`serve`](crate::serve): longest a request's head (request line and
    /// headers) may take to arrive, counted from when the connection is ready
    /// for it (accepted, or its previous response sent), in milliseconds (0:
    /// no limit). The connection is closed after it.
    pub header_read_timeout_ms: u64,
    /// [`serve`](crate::serve): a connection on which no byte moves in
    /// either direction for this long, while none of its requests is being
    /// handled, is closed, in milliseconds (0: no limit).
    pub idle_timeout_ms: u64,
    /// Idle minutes after which the sweeper closes a session.
    pub session_timeout_minutes: u64,
    /// Seconds between sweeps.
    pub sweep_interval_seconds: u64,
    /// Events older than this many days (after the clock-skew correction)
    /// are rejected with reason `ts`, as are events more than an hour in
    /// the future ([`MAX_EVENT_AHEAD_MS`](crate::MAX_EVENT_AHEAD_MS)).
    pub max_event_age_days: u64,
    /// The most events one session (a site's session id) holds besides its
    /// `visit_ended`; each further event is rejected with reason
    /// `session_full`.
    pub max_events_per_session: u64,
    /// ClickHouse store: the most bytes of events its spool holds while
    /// ClickHouse is unreachable; beyond it batches get 503 + Retry-After.
    pub spool_max_bytes: u64,
    /// ClickHouse store: longest an acknowledged event waits in the spool
    /// before it is inserted (sooner when a full insert has gathered).
    pub flush_interval_ms: u64,
    /// ClickHouse store: the most bytes its dead-letter (inserts ClickHouse
    /// refused for their content, set aside so the spool moves on) holds;
    /// a refused insert that does not fit holds up the spool.
    pub dead_letter_max_bytes: u64,
    /// Days a session is kept, counted from its start: the sweeper removes
    /// older sessions with their events (and everything built from them).
    /// `None` (the default): kept for ever.
    pub retention_days: Option<u64>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured, so a new field cannot be left out unnoticed.
        let Config {
            addr,
            data_dir,
            www_dir,
            sdk_dir,
            max_body_bytes,
            store,
            geoip,
            sites,
            admin_token,
            trust_proxy,
            rate_limit_per_second,
            rate_limit_burst,
            max_batches_in_flight,
            max_connections,
            header_read_timeout_ms,
            idle_timeout_ms,
            session_timeout_minutes,
            sweep_interval_seconds,
            spool_max_bytes,
            flush_interval_ms,
            dead_letter_max_bytes,
            max_event_age_days,
            max_events_per_session,
            retention_days,
        } = self;
        f.debug_struct("Config")
            .field("addr", addr)
            .field("data_dir", data_dir)
            .field("www_dir", www_dir)
            .field("sdk_dir", sdk_dir)
            .field("max_body_bytes", max_body_bytes)
            .field("store", store)
            .field("geoip", geoip)
            .field("sites", sites)
            .field("admin_token", &admin_token.as_ref().map(|_| Redacted))
            .field("trust_proxy", trust_proxy)
            .field("rate_limit_per_second", rate_limit_per_second)
            .field("rate_limit_burst", rate_limit_burst)
            .field("max_batches_in_flight", max_batches_in_flight)
            .field("max_connections", max_connections)
            .field("header_read_timeout_ms", header_read_timeout_ms)
            .field("idle_timeout_ms", idle_timeout_ms)
            .field("session_timeout_minutes", session_timeout_minutes)
            .field("sweep_interval_seconds", sweep_interval_seconds)
            .field("spool_max_bytes", spool_max_bytes)
            .field("flush_interval_ms", flush_interval_ms)
            .field("dead_letter_max_bytes", dead_letter_max_bytes)
            .field("max_event_age_days", max_event_age_days)
            .field("max_events_per_session", max_events_per_session)
            .field("retention_days", retention_days)
            .finish()
    }
}

/// Stands for a secret in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Config {
    pub fn session_timeout_ms(&self) -> u64 {
        self.session_timeout_minutes.saturating_mul(60_000)
    }

    /// The times events may carry: [`max_event_age_days`](Self::max_event_age_days)
    /// back, an hour ahead.
    pub fn time_bounds(&self) -> TimeBounds {
        TimeBounds {
            max_age_ms: self.max_event_age_days.saturating_mul(86_400_000),
            max_ahead_ms: MAX_EVENT_AHEAD_MS,
        }
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
            max_batches_in_flight: DEFAULT_MAX_BATCHES_IN_FLIGHT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout_ms: DEFAULT_HEADER_READ_TIMEOUT_MS,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            session_timeout_minutes: DEFAULT_SESSION_TIMEOUT_MINUTES,
            sweep_interval_seconds: DEFAULT_SWEEP_INTERVAL_SECONDS,
            max_event_age_days: DEFAULT_MAX_EVENT_AGE_DAYS,
            max_events_per_session: DEFAULT_MAX_EVENTS_PER_SESSION,
            spool_max_bytes: DEFAULT_SPOOL_MAX_BYTES,
            flush_interval_ms: DEFAULT_FLUSH_INTERVAL_MS,
            dead_letter_max_bytes: DEFAULT_DEAD_LETTER_MAX_BYTES,
            retention_days: None,
        }
    }
}

/// The kind of store events go to.
///
/// Parsed from `--store` / `WAYMARK_STORE`: `sqlite`, `null` (keeps
/// nothing, for benchmarks) or `clickhouse://[user[:password]@]host:port/database`
/// (the server's HTTP port).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StoreKind {
    /// A SQLite file, `waymark.db`, in the data directory.
    #[default]
    Sqlite,
    /// Accepts and discards every event: the ceiling in benchmarks.
    Null,
    /// A ClickHouse server, with a durable spool in the data directory.
    ClickHouse(ClickHouseUrl),
}

impl FromStr for StoreKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        if trimmed.eq_ignore_ascii_case("sqlite") {
            Ok(StoreKind::Sqlite)
        } else if trimmed.eq_ignore_ascii_case("null") {
            Ok(StoreKind::Null)
        } else if trimmed.to_ascii_lowercase().starts_with("clickhouse:") {
            Ok(StoreKind::ClickHouse(trimmed.parse()?))
        } else {
            Err(format!(
                "unknown store {trimmed:?}; use `sqlite`, `null` or `clickhouse://host:port/database`"
            ))
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreKind::Sqlite => f.write_str("sqlite"),
            StoreKind::Null => f.write_str("null"),
            StoreKind::ClickHouse(url) => write!(f, "{url}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_kind_parses_sqlite_null_and_clickhouse_urls() {
        assert_eq!("sqlite".parse::<StoreKind>(), Ok(StoreKind::Sqlite));
        assert_eq!("SQLite".parse::<StoreKind>(), Ok(StoreKind::Sqlite));
        assert_eq!("null".parse::<StoreKind>(), Ok(StoreKind::Null));
        let Ok(StoreKind::ClickHouse(url)) =
            "clickhouse://ingest:s%40cret@127.0.0.1:8123/analytics".parse::<StoreKind>()
        else {
            panic!("a clickhouse URL is a store");
        };
        assert_eq!(url.http, "http://127.0.0.1:8123");
        assert_eq!(url.database, "analytics");
        assert_eq!(url.user.as_deref(), Some("ingest"));
        assert_eq!(url.password.as_deref(), Some("s@cret"));
        assert_eq!(
            format!("{url:?}"),
            "clickhouse://ingest@127.0.0.1:8123/analytics",
            "the password is never shown"
        );
        let Ok(StoreKind::ClickHouse(url)) = "clickhouse://ch".parse::<StoreKind>() else {
            panic!("host alone is enough");
        };
        assert_eq!(
            (url.http.as_str(), url.database.as_str()),
            ("http://ch:8123", "waymark")
        );
        let err = "clickhouse://h:1/bad-name"
            .parse::<StoreKind>()
            .err()
            .unwrap_or_default();
        assert!(err.contains("database name"), "{err}");
        let err = "postgres".parse::<StoreKind>().err().unwrap_or_default();
        assert!(err.contains("unknown store"), "{err}");
    }
}
