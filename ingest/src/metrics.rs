//! Prometheus metrics, one registry per [`AppState`](crate::AppState) (so
//! tests each see their own counts), served as text at `GET /metrics`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Everything the collector counts.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `waymark_http_requests_total{route, status}`.
    pub requests: IntCounterVec,
    /// `waymark_http_request_duration_seconds{route}`.
    pub request_duration: HistogramVec,
    /// `waymark_events_accepted_total`: valid events stored for the first time.
    pub events_accepted: IntCounter,
    /// `waymark_events_duplicate_total`: valid events already stored.
    pub events_duplicate: IntCounter,
    /// `waymark_events_rejected_total{reason}`: by the field at fault, or by
    /// the batch's error code when the whole batch was refused.
    pub events_rejected: IntCounterVec,
    /// `waymark_events_dropped_by_client_total`: events the SDK dropped for
    /// lack of queue space and reported with a later batch (`"dropped"`).
    pub events_dropped_by_client: IntCounter,
    /// `waymark_urls_redacted_total`: URLs of stored events from which the
    /// collector removed sensitive query parameters (the event is kept).
    pub urls_redacted: IntCounter,
    /// `waymark_sessions_swept_total`: sessions the sweeper closed.
    pub sessions_swept: IntCounter,
    /// `waymark_rate_limited_total`: batches refused by the per-client
    /// rate limit.
    pub rate_limited: IntCounter,
    /// `waymark_batches_shed_total{reason}`: batches refused with `503` to
    /// shed load; `in_flight`: over `max_batches_in_flight`.
    pub batches_shed: IntCounterVec,
    /// `waymark_http_connections`: connections open now ([`serve`](crate::serve)).
    pub connections_open: IntGauge,
    /// `waymark_http_connections_closed_total{reason}`: connections the
    /// collector closed on a client that held them: `header_timeout` (a head
    /// not complete in time), `idle_timeout` (nothing moved for too long).
    pub connections_closed: IntCounterVec,
    /// `waymark_retention_deleted_total{what}`: sessions and events
    /// removed because their session started longer ago than
    /// `--retention-days` (`what`: `sessions`, `events`).
    pub retention_deleted: IntCounterVec,
    /// `waymark_erased_total{what}`: what erasure requests removed
    /// (`what`: `requests`, `visitors`, `sessions`, `events`).
    pub erased: IntCounterVec,
}

/// Metrics a store keeps about itself; registered beside [`Metrics`].
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    /// `waymark_store_commit_seconds`: one observation per transaction.
    pub commit_seconds: Histogram,
    /// `waymark_store_queue_depth`: append requests waiting for the writer.
    pub queue_depth: IntGauge,
    /// `waymark_store_commits_total`.
    pub commits: IntCounter,
    /// `waymark_store_spooled_events`: events acknowledged and waiting in
    /// the ClickHouse store's spool (0 for the other stores).
    pub spooled_events: IntGauge,
    /// `waymark_store_dead_lettered_events_total`: events of inserts
    /// ClickHouse refused for their content, moved to the spool's
    /// dead-letter so the spool behind them is shipped.
    pub dead_lettered_events: IntCounter,
    /// `waymark_store_dead_lettered_batches_total`: those inserts.
    pub dead_lettered_batches: IntCounter,
    /// `waymark_store_dead_letter_full_total`: refused inserts that did not
    /// fit in the dead-letter, and so hold up the spool until it has room.
    pub dead_letter_full: IntCounter,
    /// `waymark_store_dead_letter_bytes`: bytes in the dead-letter.
    pub dead_letter_bytes: IntGauge,
    /// `waymark_read_index_bytes`: about how much memory the read index
    /// takes (the SQLite store's, or the ClickHouse store's read mirror; 0
    /// for the other stores).
    pub read_index_bytes: IntGauge,
    /// `waymark_read_index_ready`: 1 once the read index answers reads, 0
    /// while it is being built (reads use SQL meanwhile).
    pub read_index_ready: IntGauge,
}

impl StoreMetrics {
    #[allow(clippy::expect_used)] // Constant, valid options: cannot fail.
    pub fn new() -> StoreMetrics {
        StoreMetrics {
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "waymark_store_commit_seconds",
                    "Store transaction commit latency",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ]),
            )
            .expect("valid histogram"),
            queue_depth: IntGauge::new(
                "waymark_store_queue_depth",
                "Append requests waiting for the store's writer",
            )
            .expect("valid gauge"),
            commits: IntCounter::new(
                "waymark_store_commits_total",
                "Store transactions committed",
            )
            .expect("valid counter"),
            spooled_events: IntGauge::new(
                "waymark_store_spooled_events",
                "Events acknowledged and not yet inserted into ClickHouse",
            )
            .expect("valid gauge"),
            dead_lettered_events: IntCounter::new(
                "waymark_store_dead_lettered_events_total",
                "Events of inserts ClickHouse refused for their content, moved to the dead-letter",
            )
            .expect("valid counter"),
            dead_lettered_batches: IntCounter::new(
                "waymark_store_dead_lettered_batches_total",
                "Inserts ClickHouse refused for their content, moved to the dead-letter",
            )
            .expect("valid counter"),
            dead_letter_full: IntCounter::new(
                "waymark_store_dead_letter_full_total",
                "Refused inserts held in the spool because the dead-letter was full",
            )
            .expect("valid counter"),
            dead_letter_bytes: IntGauge::new(
                "waymark_store_dead_letter_bytes",
                "Bytes in the ClickHouse store's dead-letter",
            )
            .expect("valid gauge"),
            read_index_bytes: IntGauge::new(
                "waymark_read_index_bytes",
                "Approximate memory of the in-memory read index (SQLite) or read mirror (ClickHouse)",
            )
            .expect("valid gauge"),
            read_index_ready: IntGauge::new(
                "waymark_read_index_ready",
                "1 when the read index (SQLite) or read mirror (ClickHouse) answers reads, 0 while it is built",
            )
            .expect("valid gauge"),
        }
    }

    fn register(&self, registry: &Registry) {
        for collector in [
            Box::new(self.commit_seconds.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(self.queue_depth.clone()),
            Box::new(self.commits.clone()),
            Box::new(self.spooled_events.clone()),
            Box::new(self.dead_lettered_events.clone()),
            Box::new(self.dead_lettered_batches.clone()),
            Box::new(self.dead_letter_full.clone()),
            Box::new(self.dead_letter_bytes.clone()),
            Box::new(self.read_index_bytes.clone()),
            Box::new(self.read_index_ready.clone()),
        ] {
            if let Err(err) = registry.register(collector) {
                tracing::warn!(error = %err, "store metric not registered");
            }
        }
    }
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    #[allow(clippy::expect_used)] // Constant, valid, distinct names: cannot fail.
    pub fn new(store: Option<&StoreMetrics>) -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "waymark_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "waymark_http_request_duration_seconds",
                "HTTP request latency",
            ),
            &["route"],
        )
        .expect("valid metric");
        let events_accepted = IntCounter::new(
            "waymark_events_accepted_total",
            "Events stored for the first time",
        )
        .expect("valid metric");
        let events_duplicate = IntCounter::new(
            "waymark_events_duplicate_total",
            "Valid events that were already stored",
        )
        .expect("valid metric");
        let events_rejected = IntCounterVec::new(
            Opts::new(
                "waymark_events_rejected_total",
                "Events not stored, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let events_dropped_by_client = IntCounter::new(
            "waymark_events_dropped_by_client_total",
            "Events the SDK dropped for lack of queue space, as reported by later batches",
        )
        .expect("valid metric");
        let urls_redacted = IntCounter::new(
            "waymark_urls_redacted_total",
            "URLs of stored events from which sensitive query parameters were removed",
        )
        .expect("valid metric");
        let sessions_swept = IntCounter::new(
            "waymark_sessions_swept_total",
            "Idle sessions the sweeper closed with a visit_ended",
        )
        .expect("valid metric");
        let rate_limited = IntCounter::new(
            "waymark_rate_limited_total",
            "Batches refused by the per-client rate limit",
        )
        .expect("valid metric");
        let batches_shed = IntCounterVec::new(
            Opts::new(
                "waymark_batches_shed_total",
                "Batches refused with 503 to shed load, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let connections_open =
            IntGauge::new("waymark_http_connections", "HTTP connections open now")
                .expect("valid metric");
        let connections_closed = IntCounterVec::new(
            Opts::new(
                "waymark_http_connections_closed_total",
                "HTTP connections the collector closed on a slow or idle client, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let retention_deleted = IntCounterVec::new(
            Opts::new(
                "waymark_retention_deleted_total",
                "Sessions and events removed for being older than the retention",
            ),
            &["what"],
        )
        .expect("valid metric");
        let erased = IntCounterVec::new(
            Opts::new(
                "waymark_erased_total",
                "Erasure requests and the visitors, sessions and events they removed",
            ),
            &["what"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(retention_deleted.clone()),
            Box::new(erased.clone()),
            Box::new(request_duration.clone()),
            Box::new(events_accepted.clone()),
            Box::new(events_duplicate.clone()),
            Box::new(events_rejected.clone()),
            Box::new(events_dropped_by_client.clone()),
            Box::new(urls_redacted.clone()),
            Box::new(sessions_swept.clone()),
            Box::new(rate_limited.clone()),
            Box::new(batches_shed.clone()),
            Box::new(connections_open.clone()),
            Box::new(connections_closed.clone()),
        ] {
            registry.register(collector).expect("distinct metric names");
        }
        if let Some(store) = store {
            store.register(&registry);
        }
        // Shown at 0 from the start, so an alert on them has a series.
        batches_shed.with_label_values(&["in_flight"]);
        for reason in ["header_timeout", "idle_timeout"] {
            connections_closed.with_label_values(&[reason]);
        }
        for what in ["sessions", "events"] {
            retention_deleted.with_label_values(&[what]);
        }
        for what in ["requests", "visitors", "sessions", "events"] {
            erased.with_label_values(&[what]);
        }
        Metrics {
            registry,
            requests,
            request_duration,
            events_accepted,
            events_duplicate,
            events_rejected,
            events_dropped_by_client,
            urls_redacted,
            sessions_swept,
            rate_limited,
            batches_shed,
            connections_open,
            connections_closed,
            retention_deleted,
            erased,
        }
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(error = %err, "metrics could not be encoded");
        }
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

/// The metric label for a rejection reason: the field at fault
/// (`event_id: not a UUID` → `event_id`), or `not_an_object`.
pub fn reason_label(reason: &str) -> &str {
    match reason.split_once(':') {
        Some((field, _)) if field.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => field,
        _ => "not_an_object",
    }
}
