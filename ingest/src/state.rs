//! What every request handler and the sweeper share: [`AppState`].

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::enrich::GeoIp;
use crate::limit::RateLimit;
use crate::metrics::Metrics;
use crate::store::Store;

/// What every handler shares: the configuration, the store, the clock, the
/// GeoIP databases, the rate limiter and the metrics.
#[derive(Debug, Clone)]
pub struct AppState {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    geo: Arc<GeoIp>,
    rate_limit: Option<Arc<RateLimit>>,
    metrics: Arc<Metrics>,
}

impl AppState {
    /// Tests pass a [`MemoryStore`](crate::MemoryStore) and a
    /// [`FixedClock`](crate::FixedClock); [`serve`](crate::serve) passes the
    /// SQLite store and the system clock. No GeoIP database: see
    /// [`with_geoip`](Self::with_geoip).
    pub fn new(config: Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        let rate_limit =
            RateLimit::new(config.rate_limit_per_second, config.rate_limit_burst).map(Arc::new);
        let metrics = Arc::new(Metrics::new(store.metrics()));
        AppState {
            config: Arc::new(config),
            store,
            clock,
            geo: Arc::new(GeoIp::none()),
            rate_limit,
            metrics,
        }
    }

    /// Looks client IPs up in `geo`.
    pub fn with_geoip(mut self, geo: GeoIp) -> Self {
        self.geo = Arc::new(geo);
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The GeoIP databases client IPs are looked up in.
    pub(crate) fn geo(&self) -> &GeoIp {
        &self.geo
    }

    /// The per-IP rate limit of `POST /v1/batch`, when one is configured.
    pub(crate) fn rate_limit(&self) -> Option<&RateLimit> {
        self.rate_limit.as_deref()
    }

    /// Forgets rate-limit state of addresses that have been quiet, so the
    /// limiter's memory stays bounded; the sweeper calls it.
    pub fn forget_quiet_clients(&self) {
        if let Some(limit) = &self.rate_limit {
            limit.forget_quiet();
        }
    }
}
