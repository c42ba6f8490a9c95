//! What every request handler and the sweeper share: [`AppState`].

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::clock::Clock;
use crate::config::Config;
use crate::enrich::GeoIp;
use crate::limit::RateLimit;
use crate::metrics::Metrics;
use crate::store::{EventSink, Lifecycle, SessionReader, SessionSweeper};

/// What every handler shares: the configuration, the store (and what it
/// offers besides taking events: reading, sweeping), the clock, the GeoIP
/// databases, the rate limiter, the in-flight limit and the metrics.
#[derive(Debug, Clone)]
pub struct AppState {
    config: Arc<Config>,
    store: Arc<dyn EventSink>,
    reader: Option<Arc<dyn SessionReader>>,
    sweeper: Option<Arc<dyn SessionSweeper>>,
    lifecycle: Option<Arc<dyn Lifecycle>>,
    clock: Arc<dyn Clock>,
    geo: Arc<GeoIp>,
    rate_limit: Option<Arc<RateLimit>>,
    batches_in_flight: Option<Arc<Semaphore>>,
    metrics: Arc<Metrics>,
}

impl AppState {
    /// Tests pass a [`MemoryStore`](crate::MemoryStore) and a
    /// [`FixedClock`](crate::FixedClock); [`serve`](crate::serve) passes the
    /// SQLite store and the system clock. No GeoIP database: see
    /// [`with_geoip`](Self::with_geoip).
    pub fn new(config: Config, store: Arc<dyn EventSink>, clock: Arc<dyn Clock>) -> Self {
        let reader = Arc::clone(&store).reader();
        let sweeper = Arc::clone(&store).sweeper();
        let lifecycle = Arc::clone(&store).lifecycle();
        let rate_limit =
            RateLimit::new(config.rate_limit_per_second, config.rate_limit_burst).map(Arc::new);
        let batches_in_flight = (config.max_batches_in_flight > 0).then(|| {
            Arc::new(Semaphore::new(
                config.max_batches_in_flight.min(Semaphore::MAX_PERMITS),
            ))
        });
        let metrics = Arc::new(Metrics::new(store.metrics()));
        AppState {
            config: Arc::new(config),
            store,
            reader,
            sweeper,
            lifecycle,
            clock,
            geo: Arc::new(GeoIp::none()),
            rate_limit,
            batches_in_flight,
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

    pub fn store(&self) -> &Arc<dyn EventSink> {
        &self.store
    }

    /// The store as a [`SessionReader`], if it is one: the read API is
    /// served only then.
    pub fn reader(&self) -> Option<&Arc<dyn SessionReader>> {
        self.reader.as_ref()
    }

    /// The store as a [`SessionSweeper`], if it is one: the sweeper sweeps
    /// only then.
    pub fn sweeper(&self) -> Option<&Arc<dyn SessionSweeper>> {
        self.sweeper.as_ref()
    }

    /// The store as a [`Lifecycle`], if it can expire and erase: retention
    /// and the erasure endpoints work only then.
    pub fn lifecycle(&self) -> Option<&Arc<dyn Lifecycle>> {
        self.lifecycle.as_ref()
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

    /// A slot for one batch under [`Config::max_batches_in_flight`], held
    /// until the batch is answered: `Ok(None)` without a limit, `Err(())`
    /// when every slot is taken.
    pub(crate) fn batch_slot(&self) -> Result<Option<OwnedSemaphorePermit>, ()> {
        match &self.batches_in_flight {
            None => Ok(None),
            Some(slots) => Arc::clone(slots)
                .try_acquire_owned()
                .map(Some)
                .map_err(|_| ()),
        }
    }

    /// How many clients the rate limit holds state for now (an IPv4
    /// address or an IPv6 /64 network each); 0 without a rate limit.
    pub fn rate_limit_clients(&self) -> usize {
        self.rate_limit.as_deref().map_or(0, RateLimit::clients)
    }

    /// Forgets rate-limit state of addresses that have been quiet, so the
    /// limiter's memory stays bounded; the sweeper calls it.
    pub fn forget_quiet_clients(&self) {
        if let Some(limit) = &self.rate_limit {
            limit.forget_quiet();
        }
    }
}
