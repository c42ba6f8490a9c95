//! Running the collector: store, GeoIP, router, sweeper, listener, graceful
//! shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::SystemClock;
use crate::config::{check_admin_token, Config, StoreKind};
use crate::connections::{serve_connections, ConnectionLimits};
use crate::enrich::GeoIp;
use crate::error::Error;
use crate::http::app;
use crate::state::AppState;
use crate::store::{ClickHouseStore, EventSink, NullStore, SpoolOptions, SqliteStore};
use crate::sweeper::run_sweeper;

/// Serves the collector on `listener` until `shutdown` resolves.
///
/// Opens the store in [`Config::data_dir`] (creating the directory) and the
/// GeoIP databases, serves [`app`] and runs the sweeper. Without an admin
/// token it makes a random one and logs it; an admin token shorter than
/// [`MIN_ADMIN_TOKEN_LEN`](crate::MIN_ADMIN_TOKEN_LEN) characters is refused
/// ([`Error::InvalidConfig`]) before anything is opened.
///
/// It serves HTTP/1.1 with [`Config::max_connections`],
/// [`Config::header_read_timeout_ms`] and [`Config::idle_timeout_ms`]
/// applied to the connections, and the peer address given to handlers as
/// `ConnectInfo<SocketAddr>` ([`client_ip`](crate::client_ip)).
///
/// On shutdown it stops accepting connections, lets the requests in flight
/// finish, stops the sweeper, then waits for the store to commit everything
/// queued. When it returns `Ok`, every acknowledged event is on disk.
pub async fn serve(
    mut config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    if let Some(token) = config.admin_token.as_deref().filter(|t| !t.is_empty()) {
        check_admin_token(token).map_err(Error::InvalidConfig)?;
    }
    let store: Arc<dyn EventSink> = match &config.store {
        StoreKind::Sqlite => {
            let data_dir = config.data_dir.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(data_dir))
                .await
                .map_err(|err| Error::Io(std::io::Error::other(err)))??
                .with_max_events_per_session(config.max_events_per_session);
            tracing::info!(path = %store.path().display(), "opened the sqlite store");
            Arc::new(store)
        }
        StoreKind::Null => {
            tracing::warn!("the null store keeps nothing: every event is validated and discarded");
            Arc::new(NullStore)
        }
        StoreKind::ClickHouse(url) => {
            let options = SpoolOptions {
                max_bytes: config.spool_max_bytes,
                flush_interval: Duration::from_millis(config.flush_interval_ms),
                dead_letter_max_bytes: config.dead_letter_max_bytes,
            };
            let store = ClickHouseStore::open_with(url, &config.data_dir, options)
                .await?
                .with_max_events_per_session(config.max_events_per_session);
            tracing::info!(clickhouse = %url, spool = %config.data_dir.join("spool").display(), "opened the ClickHouse store");
            Arc::new(store)
        }
    };

    let paths = config.geoip.clone();
    let geo = tokio::task::spawn_blocking(move || GeoIp::open(&paths))
        .await
        .map_err(|err| Error::Io(std::io::Error::other(err)))?
        .map_err(|err| Error::Io(std::io::Error::other(err)))?;
    if geo.is_empty() {
        tracing::info!(
            "no GeoIP database (WAYMARK_GEOIP): sessions get no country, region or city"
        );
    } else {
        tracing::info!(databases = ?config.geoip, "GeoIP databases loaded");
    }
    if config.sites.is_demo_mode() {
        tracing::warn!(
            "WAYMARK_SITES is not set: demo mode, events for any site from any origin are accepted"
        );
    } else {
        tracing::info!(sites = %config.sites, "accepting events for the configured sites");
    }
    if config.admin_token.as_deref().is_none_or(str::is_empty) {
        let token = random_token();
        tracing::warn!(
            "WAYMARK_ADMIN_TOKEN is not set; the read API and /metrics take this token for this run: {token}"
        );
        config.admin_token = Some(token);
    }

    let state = AppState::new(config, store.clone(), Arc::new(SystemClock)).with_geoip(geo);
    let (stop_sweeper, stopped) = watch::channel(false);
    let sweeper = tokio::spawn(run_sweeper(state.clone(), async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|stop| *stop).await;
    }));

    let limits = ConnectionLimits::of(state.config());
    let metrics = state.metrics().clone();
    serve_connections(listener, app(state), limits, metrics, shutdown).await;

    // Every connection is closed, so no request is waiting on the store.
    let _ = stop_sweeper.send(true);
    if let Err(err) = sweeper.await {
        tracing::error!(error = %err, "the sweeper task failed");
    }
    store.shutdown().await;
    tracing::info!("the store is closed");
    Ok(())
}

/// 244 random bits from the OS, as 64 hex digits.
fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}
