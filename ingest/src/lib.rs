//! The Waymark collector.
//!
//! The browser SDK beacons batches of events to `POST /v1/batch`. The
//! collector decodes and validates each batch ([`decode_batch`]), stores the
//! valid events through an [`EventSink`] and answers only after the store has
//! committed them, so everything the SDK saw acknowledged survives a crash.
//! It also serves the SDK itself (`GET /sdk.js`, `GET /sdk.wasm`), a liveness
//! probe (`GET /healthz`, 503 while the store cannot take events:
//! [`EventSink::health`]) and, for every other path, the static files of the
//! demo site and dashboard.
//!
//! The crate is shaped for tests: [`app`] builds the whole router from an
//! [`AppState`] whose store and clock are trait objects, so a test can drive
//! it with a [`MemoryStore`] and a [`FixedClock`] without a socket; [`serve`]
//! adds the SQLite store under [`Config::data_dir`], the listener and graceful
//! shutdown.
//!
//! ```no_run
//! use std::sync::Arc;
//! use waymark_ingest::{app, AppState, Config, FixedClock, MemoryStore};
//!
//! let store = Arc::new(MemoryStore::new());
//! let state = AppState::new(Config::default(), store.clone(), Arc::new(FixedClock(1_000)));
//! let router = app(state);
//! # let _ = router;
//! ```
//!
//! Running the collector for real:
//!
//! ```no_run
//! # async fn run() -> Result<(), waymark_ingest::Error> {
//! let config = waymark_ingest::Config::default();
//! let listener = tokio::net::TcpListener::bind(config.addr).await?;
//! waymark_ingest::serve(config, listener, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```

pub use crate::clock::{Clock, FixedClock, ManualClock, SystemClock};
pub use crate::config::{
    check_admin_token, ClickHouseUrl, Config, StoreKind, DEFAULT_DEAD_LETTER_MAX_BYTES,
    DEFAULT_FLUSH_INTERVAL_MS, DEFAULT_HEADER_READ_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS,
    DEFAULT_MAX_BATCHES_IN_FLIGHT, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_EVENTS_PER_SESSION, DEFAULT_MAX_EVENT_AGE_DAYS, DEFAULT_RATE_LIMIT_BURST,
    DEFAULT_RATE_LIMIT_PER_SECOND, DEFAULT_SESSION_TIMEOUT_MINUTES, DEFAULT_SPOOL_MAX_BYTES,
    DEFAULT_SWEEP_INTERVAL_SECONDS, MIN_ADMIN_TOKEN_LEN,
};
pub use crate::enrich::{enrich, parse_user_agent, Agent, GeoIp, Place, RequestFacts};
pub use crate::error::Error;
pub use crate::event::{Enrichment, EventType, StoredEvent};
pub use crate::http::{app, client_ip, BatchAccepted};
pub use crate::lifecycle::{expire_old_sessions, id_hash, Retained, RETENTION_BATCH};
pub use crate::metrics::{Metrics, StoreMetrics};
pub use crate::server::serve;
pub use crate::session::{
    collector_end_id, fold_session, is_collector_end_id, source_of, Session, SessionState,
};
pub use crate::sites::Sites;
pub use crate::state::AppState;
/// Every statement the ClickHouse store sends, for the tests that run them
/// on other ClickHouse versions; not part of the API.
#[doc(hidden)]
pub use crate::store::clickhouse_sql;
pub use crate::store::{
    AppendOutcome, BoxFuture, Bucket, ClickHouseStore, Cursor, Erasure, EventCursor, EventPage,
    EventSink, Expiry, Interval, KeyCount, Lifecycle, MemoryStore, NullStore, SessionPage,
    SessionQuery, SessionReader, SessionSweeper, SessionWithEvents, SpoolOptions, SqliteStore,
    Stats, StatsQuery, Store, StoreError, SweepCursor, SweepPage, Table, TableRole, DB_FILE_NAME,
};
pub use crate::sweeper::{run_sweeper, sweep_idle_sessions};
pub use crate::wire::{
    decode_batch, DecodeError, DecodedBatch, Envelope, Rejection, TimeBounds, MAX_EVENTS_PER_BATCH,
    MAX_EVENT_AHEAD_MS, MAX_UNCORRECTED_SKEW_MS, WIRE_VERSION,
};

mod api;
mod clock;
mod config;
mod connections;
mod enrich;
mod error;
mod event;
mod http;
mod lifecycle;
mod limit;
mod metrics;
pub mod read;
mod sdk_files;
mod server;
mod session;
mod sites;
mod state;
mod store;
mod sweeper;
mod wire;
