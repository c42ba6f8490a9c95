//! `waymark`: the collector binary. Configuration, tracing, bind, serve.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use waymark_ingest::{
    check_admin_token, Config, Sites, StoreKind, DEFAULT_DEAD_LETTER_MAX_BYTES,
    DEFAULT_FLUSH_INTERVAL_MS, DEFAULT_HEADER_READ_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS,
    DEFAULT_MAX_BATCHES_IN_FLIGHT, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_EVENTS_PER_SESSION, DEFAULT_MAX_EVENT_AGE_DAYS, DEFAULT_RATE_LIMIT_BURST,
    DEFAULT_RATE_LIMIT_PER_SECOND, DEFAULT_SESSION_TIMEOUT_MINUTES, DEFAULT_SPOOL_MAX_BYTES,
    DEFAULT_SWEEP_INTERVAL_SECONDS,
};

/// The Waymark collector: receives events from the SDK, stores them, serves
/// the SDK and the site.
#[derive(Debug, Parser)]
#[command(name = "waymark", version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "WAYMARK_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Directory for the store's files; created when missing.
    #[arg(long = "data", env = "WAYMARK_DATA", default_value = "./data")]
    data_dir: PathBuf,
    /// Directory of static files served at `/` (demo site and dashboard).
    #[arg(long = "www", env = "WAYMARK_WWW", default_value = "./www")]
    www_dir: PathBuf,
    /// Directory holding the built `sdk.js` and `sdk.wasm`.
    #[arg(long = "sdk-dir", env = "WAYMARK_SDK_DIR", default_value = "./www/pkg")]
    sdk_dir: PathBuf,
    /// Where events are stored: `sqlite`, `null` to validate and discard
    /// (for benchmarks), or `clickhouse://[user[:password]@]host:port/database`
    /// (HTTP port; acknowledged events wait in a spool under --data).
    #[arg(long, env = "WAYMARK_STORE", default_value = "sqlite")]
    store: StoreKind,
    /// Largest accepted batch body, in bytes.
    #[arg(long, env = "WAYMARK_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// MaxMind-format city or country database(s) (.mmdb) for IP → country,
    /// region, city; several separated by commas (e.g. IPv4 and IPv6 files).
    #[arg(long, env = "WAYMARK_GEOIP", value_delimiter = ',')]
    geoip: Vec<PathBuf>,
    /// Sites and their allowed origins: `site=origin,origin;site2=*`. Unset:
    /// demo mode, any site from any origin.
    #[arg(long, env = "WAYMARK_SITES")]
    sites: Option<Sites>,
    /// Bearer token of the read API and /metrics, at least 16 characters.
    /// Unset (or empty): a random token is made and logged at start.
    #[arg(long, env = "WAYMARK_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Reverse proxies in front of the collector whose X-Forwarded-For is
    /// trusted for the client address (0: use the connection's address).
    #[arg(long, env = "WAYMARK_TRUST_PROXY", default_value_t = 0)]
    trust_proxy: usize,
    /// Batches per second per client: per IPv4 address, per IPv6 /64
    /// network (0: no limit).
    #[arg(long, env = "WAYMARK_RATE_LIMIT", default_value_t = DEFAULT_RATE_LIMIT_PER_SECOND)]
    rate_limit: u32,
    /// Batches a client may send at once above the rate.
    #[arg(long, env = "WAYMARK_RATE_LIMIT_BURST", default_value_t = DEFAULT_RATE_LIMIT_BURST)]
    rate_limit_burst: u32,
    /// Batches handled at once; beyond it 503 with Retry-After (0: no limit).
    #[arg(long, env = "WAYMARK_MAX_BATCHES_IN_FLIGHT", default_value_t = DEFAULT_MAX_BATCHES_IN_FLIGHT)]
    max_batches_in_flight: usize,
    /// Connections open at once; beyond it new ones wait to be accepted
    /// (0: no limit). Keep it below the open-files limit (`ulimit -n`).
    #[arg(long, env = "WAYMARK_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Milliseconds a request's head may take to arrive, from when the
    /// connection is ready for it; then the connection is closed (0: none).
    #[arg(long, env = "WAYMARK_HEADER_READ_TIMEOUT_MS", default_value_t = DEFAULT_HEADER_READ_TIMEOUT_MS)]
    header_read_timeout_ms: u64,
    /// Milliseconds a connection may go without a byte moving while none of
    /// its requests is being handled; then it is closed (0: none).
    #[arg(long, env = "WAYMARK_IDLE_TIMEOUT_MS", default_value_t = DEFAULT_IDLE_TIMEOUT_MS)]
    idle_timeout_ms: u64,
    /// Idle minutes after which the sweeper closes a session.
    #[arg(long, env = "WAYMARK_SESSION_TIMEOUT_MINUTES", default_value_t = DEFAULT_SESSION_TIMEOUT_MINUTES)]
    session_timeout_minutes: u64,
    /// Seconds between sweeps for idle sessions.
    #[arg(long, env = "WAYMARK_SWEEP_INTERVAL_SECONDS", default_value_t = DEFAULT_SWEEP_INTERVAL_SECONDS)]
    sweep_interval_seconds: u64,
    /// Days back an event's time may be (after clock-skew correction); older
    /// events are rejected (reason `ts`), as are events over an hour ahead.
    #[arg(long, env = "WAYMARK_MAX_EVENT_AGE_DAYS", default_value_t = DEFAULT_MAX_EVENT_AGE_DAYS)]
    max_event_age_days: u64,
    /// Events one session may hold besides its visit_ended; each further
    /// event is rejected (reason `session_full`).
    #[arg(long, env = "WAYMARK_MAX_EVENTS_PER_SESSION", default_value_t = DEFAULT_MAX_EVENTS_PER_SESSION)]
    max_events_per_session: u64,
    /// ClickHouse store: bytes the spool may hold while ClickHouse is down
    /// (then batches get 503 with Retry-After).
    #[arg(long, env = "WAYMARK_SPOOL_MAX_BYTES", default_value_t = DEFAULT_SPOOL_MAX_BYTES)]
    spool_max_bytes: u64,
    /// ClickHouse store: most milliseconds an event waits before its insert.
    #[arg(long, env = "WAYMARK_FLUSH_INTERVAL_MS", default_value_t = DEFAULT_FLUSH_INTERVAL_MS)]
    flush_interval_ms: u64,
    /// ClickHouse store: bytes the dead-letter (inserts ClickHouse refused
    /// for their content) may hold; a refused insert that does not fit
    /// holds up the spool.
    #[arg(long, env = "WAYMARK_DEAD_LETTER_MAX_BYTES", default_value_t = DEFAULT_DEAD_LETTER_MAX_BYTES)]
    dead_letter_max_bytes: u64,
    /// Days a session is kept, from its start: older sessions and their
    /// events are removed at each sweep. Unset: everything is kept.
    #[arg(long, env = "WAYMARK_RETENTION_DAYS", value_parser = clap::value_parser!(u64).range(1..))]
    retention_days: Option<u64>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// What to do instead of serving.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Copies the SQLite store in --data to a new file, consistently, while
    /// a collector may be running on it; the copy, named `waymark.db` in a
    /// folder, is a store to start a collector on (see the README).
    Backup {
        /// The new file (it must not exist).
        file: PathBuf,
    },
}

impl From<Args> for Config {
    fn from(args: Args) -> Self {
        Config {
            addr: args.addr,
            data_dir: args.data_dir,
            www_dir: args.www_dir,
            sdk_dir: args.sdk_dir,
            max_body_bytes: args.max_body_bytes,
            store: args.store,
            geoip: args.geoip,
            sites: args.sites.unwrap_or_else(Sites::any),
            admin_token: args.admin_token.filter(|t| !t.is_empty()),
            trust_proxy: args.trust_proxy,
            rate_limit_per_second: args.rate_limit,
            rate_limit_burst: args.rate_limit_burst,
            max_batches_in_flight: args.max_batches_in_flight,
            max_connections: args.max_connections,
            header_read_timeout_ms: args.header_read_timeout_ms,
            idle_timeout_ms: args.idle_timeout_ms,
            session_timeout_minutes: args.session_timeout_minutes.max(1),
            sweep_interval_seconds: args.sweep_interval_seconds.max(1),
            max_event_age_days: args.max_event_age_days.max(1),
            max_events_per_session: args.max_events_per_session.max(1),
            spool_max_bytes: args.spool_max_bytes,
            flush_interval_ms: args.flush_interval_ms.max(1),
            dead_letter_max_bytes: args.dead_letter_max_bytes,
            retention_days: args.retention_days,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = Args::parse();
    if let Some(Command::Backup { file }) = args.command.take() {
        return backup(&args.data_dir, &file);
    }
    let config = Config::from(args);
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .init();

    // Before binding, so a short token is the one thing reported.
    if let Some(Err(message)) = config.admin_token.as_deref().map(check_admin_token) {
        tracing::error!("{message}");
        return ExitCode::FAILURE;
    }

    let listener = match tokio::net::TcpListener::bind(config.addr).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!("could not listen on {}: {err}", config.addr);
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => tracing::info!("listening on http://{addr}"),
        Err(err) => tracing::warn!("listening, but the address is unknown: {err}"),
    }

    match waymark_ingest::serve(config, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for Ctrl-C: {err}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(err) => {
                tracing::warn!("cannot listen for SIGTERM: {err}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// `waymark backup <file>`: the SQLite store in `data_dir` copied to `file`.
fn backup(data_dir: &std::path::Path, file: &std::path::Path) -> ExitCode {
    let started = std::time::Instant::now();
    match waymark_ingest::SqliteStore::backup(data_dir, file) {
        Ok(()) => {
            println!(
                "backed up {} to {} in {:.1} s",
                data_dir.join(waymark_ingest::DB_FILE_NAME).display(),
                file.display(),
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("waymark backup: {err}");
            ExitCode::FAILURE
        }
    }
}
