//! The shipper: moves the spool into ClickHouse, in order, in large
//! inserts, retrying with backoff; see the [module documentation](super).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::rows::EventRow;
use super::spool::{Position, Spool, SpoolReader};
use super::{timed, Ch};
use crate::event::StoredEvent;
use crate::metrics::StoreMetrics;
use crate::store::StoreError;

/// Events in one insert, at most; the shipper inserts at once when this
/// many are waiting.
pub(super) const BATCH_EVENTS: usize = 20_000;
/// Backoff between failed inserts: doubling from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_LAST: Duration = Duration::from_secs(5);
/// How long shutdown keeps trying to empty the spool into ClickHouse.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

impl Ch {
    async fn insert(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        self.migrate().await?;
        timed(async {
            let mut insert = self.inserter.insert::<EventRow>("events").await?;
            for event in events {
                insert.write(&EventRow::from(event)).await?;
            }
            insert.end().await
        })
        .await
    }
}

/// Moves the spool into ClickHouse; see the module docs.
pub(super) struct Shipper {
    pub(super) ch: Arc<Ch>,
    pub(super) spool: Arc<Spool>,
    pub(super) reader: SpoolReader,
    pub(super) shipped: watch::Sender<Position>,
    pub(super) flush_now: Arc<Notify>,
    pub(super) stopping: watch::Receiver<bool>,
    pub(super) flush_interval: Duration,
    pub(super) metrics: StoreMetrics,
}

impl Shipper {
    pub(super) async fn run(mut self) {
        let mut durable = self.spool.watch_durable();
        let mut drain_until: Option<Instant> = None;
        loop {
            let stopping = *self.stopping.borrow();
            if stopping && drain_until.is_none() {
                drain_until = Some(Instant::now() + DRAIN_TIMEOUT);
            }
            let end = *durable.borrow_and_update();
            if self.reader.at() >= end {
                if stopping {
                    break;
                }
                tokio::select! {
                    _ = durable.changed() => {}
                    _ = self.stopping.changed() => {}
                    () = self.flush_now.notified() => {}
                }
                continue;
            }
            if !stopping {
                self.gather().await;
            }
            if !self.ship_once(drain_until).await {
                break;
            }
        }
        tracing::debug!("the ClickHouse shipper stopped");
    }

    /// Waits for a full insert's worth of events, the flush interval, a
    /// `sync` or shutdown, whichever comes first.
    async fn gather(&mut self) {
        let deadline = Instant::now() + self.flush_interval;
        while self.spool.pending_events() < BATCH_EVENTS as u64 {
            let mut durable = self.spool.watch_durable();
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return,
                () = self.flush_now.notified() => return,
                _ = self.stopping.changed() => return,
                _ = durable.changed() => {}
            }
        }
    }

    /// Inserts the next batch, retrying until it is in; false when shutdown
    /// gave up on it (it stays in the spool).
    async fn ship_once(&mut self, mut drain_until: Option<Instant>) -> bool {
        let (events, bytes, next) = match self.reader.read(self.spool.durable(), BATCH_EVENTS) {
            Ok(read) => read,
            Err(err) => {
                tracing::error!(error = %err, "cannot read the spool; shipping stopped");
                return false;
            }
        };
        let mut wait = RETRY_FIRST;
        loop {
            let started = std::time::Instant::now();
            match self.ch.insert(&events).await {
                Ok(()) => {
                    self.metrics
                        .commit_seconds
                        .observe(started.elapsed().as_secs_f64());
                    self.metrics.commits.inc();
                    break;
                }
                Err(err) => {
                    tracing::warn!(
                        error = %err,
                        events = events.len(),
                        spooled = self.spool.pending_events(),
                        "the ClickHouse insert failed; retrying"
                    );
                    if *self.stopping.borrow() && drain_until.is_none() {
                        drain_until = Some(Instant::now() + DRAIN_TIMEOUT);
                    }
                    if drain_until.is_some_and(|until| Instant::now() + wait > until) {
                        return false;
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_LAST);
                }
            }
        }
        if let Err(err) = self.reader.commit(next, bytes, events.len() as u64) {
            // The events are in ClickHouse; a replay after a restart is
            // deduplicated.
            tracing::error!(error = %err, "cannot move the spool's shipped mark");
            return false;
        }
        self.shipped.send_replace(next);
        self.metrics
            .spooled_events
            .set(i64::try_from(self.spool.pending_events()).unwrap_or(i64::MAX));
        true
    }
}
