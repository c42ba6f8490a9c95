//! The shipper: moves the spool into ClickHouse, in order, in large
//! inserts, retrying with backoff; see the [module documentation](super).
//!
//! An insert ClickHouse refuses for its content ([`Refusal`]) is tried
//! [`REFUSALS_BEFORE_DEAD_LETTER`] times in a row, then written to the
//! spool's dead-letter ([`DeadLetter`]) and marked shipped, so the spool
//! behind it moves on. When the dead-letter is full (or cannot be
//! written) the insert stays in the spool and is retried: shipping is
//! held up, said in the log, counted, and reported by `/healthz`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::refusal::Refusal;
use super::rows::EventRow;
use super::spool::{DeadLetter, Position, Put, Refused, Spool, SpoolReader};
use super::{Ch, REQUEST_TIMEOUT};
use crate::clock::{Clock, SystemClock};
use crate::event::StoredEvent;
use crate::metrics::StoreMetrics;
use crate::store::StoreError;

/// Events in one insert, at most; the shipper inserts at once when this
/// many are waiting.
pub(super) const BATCH_EVENTS: usize = 20_000;
/// Backoff between failed inserts: doubling from the first to the last.
pub(super) const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_LAST: Duration = Duration::from_secs(5);
/// How long shutdown keeps trying to empty the spool into ClickHouse.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Consecutive refusals of one insert for its content before it moves to
/// the dead-letter. ClickHouse refuses the same rows the same way, so one
/// would do; three (about 300 ms of backoff) keep a one-off answer, say
/// from a table being altered at that moment, from moving a batch aside.
pub(super) const REFUSALS_BEFORE_DEAD_LETTER: u32 = 3;

/// Why an insert failed.
enum InsertFailure {
    /// ClickHouse refused the rows themselves.
    Refused(Refusal),
    /// Anything else: unreachable, overloaded, timed out.
    Failed(StoreError),
}

impl Ch {
    async fn insert(&self, events: &[StoredEvent]) -> Result<(), InsertFailure> {
        self.migrate().await.map_err(InsertFailure::Failed)?;
        let insert = async {
            let mut insert = self.inserter.insert::<EventRow>("events").await?;
            for event in events {
                insert.write(&EventRow::from(event)).await?;
            }
            insert.end().await
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, insert).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(match Refusal::of(&err) {
                Some(refusal) => InsertFailure::Refused(refusal),
                None => InsertFailure::Failed(err.into()),
            }),
            Err(_) => Err(InsertFailure::Failed(StoreError::Commit(
                "ClickHouse did not answer in time".to_owned(),
            ))),
        }
    }
}

/// How the shipper is doing, shared with the store
/// ([`ClickHouseStore::shipper_healthy`](super::ClickHouseStore::shipper_healthy)).
#[derive(Debug, Default)]
pub(super) struct Health {
    state: Mutex<HealthState>,
}

#[derive(Debug, Default)]
struct HealthState {
    /// The last failure, until the next batch is shipped.
    last_error: Option<String>,
    /// Whether that failure is the shipper's own (reading the spool,
    /// moving the shipped mark, a refused insert the dead-letter cannot
    /// take) rather than ClickHouse being unavailable.
    spool: bool,
}

impl Health {
    fn set(&self, last_error: Option<String>, spool: bool) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) =
            HealthState { last_error, spool };
    }

    /// False while the shipper keeps failing on the spool itself (or on
    /// the dead-letter).
    pub(super) fn spool_ok(&self) -> bool {
        !self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .spool
    }

    /// The last failure, until the next batch is shipped.
    pub(super) fn last_error(&self) -> Option<String> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last_error
            .clone()
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
    pub(super) health: Arc<Health>,
    pub(super) dead: DeadLetter,
    /// The wait before the next try after the spool could not be read.
    pub(super) read_retry: Duration,
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

    /// Sleeps `wait`, or less when shutdown starts; the wait after it.
    async fn pause(&mut self, wait: Duration) -> Duration {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            Ok(()) = self.stopping.changed() => {}
        }
        (wait * 2).min(RETRY_LAST)
    }

    /// Moves a refused insert to the dead-letter: true once it is there
    /// (logged and counted); false when it must stay in the spool because
    /// the dead-letter is full (counted once per batch, in `held`) or
    /// cannot be written, which is logged and makes the shipper unhealthy.
    fn dead_letter(&mut self, refused: &Refused<'_>, held: &mut bool) -> bool {
        let events = refused.events.len();
        let put = self.dead.put(refused);
        self.metrics
            .dead_letter_bytes
            .set(i64::try_from(self.dead.bytes()).unwrap_or(i64::MAX));
        match put {
            Ok(Put::Stored(path)) => {
                self.metrics.dead_lettered_events.inc_by(events as u64);
                self.metrics.dead_lettered_batches.inc();
                tracing::error!(
                    code = refused.code,
                    error = %refused.error,
                    events,
                    file = %path.display(),
                    "ClickHouse refused an insert for its content: moved it to the dead-letter, \
                     and shipping goes on (see docs/clickhouse.md to replay it)"
                );
                true
            }
            Ok(Put::Full { needed }) => {
                if !*held {
                    *held = true;
                    self.metrics.dead_letter_full.inc();
                }
                tracing::error!(
                    code = refused.code,
                    error = %refused.error,
                    events,
                    needed,
                    dead_letter_bytes = self.dead.bytes(),
                    max_bytes = self.dead.max_bytes(),
                    dir = %self.dead.dir().display(),
                    "ClickHouse refused an insert for its content and the dead-letter is full: \
                     the insert holds up the spool until the dead-letter has room; retrying"
                );
                self.health.set(
                    Some(format!(
                        "an insert ClickHouse refused ({}) holds up the spool: the dead-letter \
                         {} is full",
                        refused.code,
                        self.dead.dir().display()
                    )),
                    true,
                );
                false
            }
            Err(err) => {
                tracing::error!(
                    error = %err,
                    dir = %self.dead.dir().display(),
                    "cannot write a refused insert to the dead-letter; retrying"
                );
                self.health
                    .set(Some(format!("cannot write the dead-letter: {err}")), true);
                false
            }
        }
    }

    /// Inserts the next batch, retrying until it is in (or, refused for
    /// its content, in the dead-letter); false when shutdown gave up on it
    /// (it stays in the spool). A spool that cannot be read or a shipped
    /// mark that cannot be written is retried with backoff too: the
    /// shipper never stops while the collector runs.
    async fn ship_once(&mut self, mut drain_until: Option<Instant>) -> bool {
        let from = self.reader.at();
        let (events, bytes, next) = match self.reader.read(self.spool.durable(), BATCH_EVENTS) {
            Ok(read) => {
                self.read_retry = RETRY_FIRST;
                read
            }
            Err(err) => {
                tracing::error!(
                    error = %err,
                    retry_in_ms = self.read_retry.as_millis() as u64,
                    spooled = self.spool.pending_events(),
                    "cannot read the spool; retrying"
                );
                self.health
                    .set(Some(format!("cannot read the spool: {err}")), true);
                if *self.stopping.borrow() {
                    return false;
                }
                self.read_retry = self.pause(self.read_retry).await;
                return true;
            }
        };
        let mut wait = RETRY_FIRST;
        let mut refusals = 0;
        let mut held = false;
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
                Err(InsertFailure::Refused(refusal)) => {
                    refusals += 1;
                    if refusals < REFUSALS_BEFORE_DEAD_LETTER {
                        tracing::warn!(
                            code = refusal.code,
                            error = %refusal.error,
                            events = events.len(),
                            refusals,
                            "ClickHouse refused the insert for its content; trying again \
                             before moving it to the dead-letter"
                        );
                    } else {
                        let refused = Refused {
                            from,
                            to: next,
                            code: refusal.code,
                            error: &refusal.error,
                            events: &events,
                            now_ms: SystemClock.now_ms(),
                        };
                        if self.dead_letter(&refused, &mut held) {
                            break;
                        }
                    }
                }
                Err(InsertFailure::Failed(err)) => {
                    refusals = 0;
                    tracing::warn!(
                        error = %err,
                        events = events.len(),
                        spooled = self.spool.pending_events(),
                        "the ClickHouse insert failed; retrying"
                    );
                    self.health
                        .set(Some(format!("the ClickHouse insert failed: {err}")), false);
                }
            }
            if *self.stopping.borrow() && drain_until.is_none() {
                drain_until = Some(Instant::now() + DRAIN_TIMEOUT);
            }
            if drain_until.is_some_and(|until| Instant::now() + wait > until) {
                return false;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY_LAST);
        }
        // The events are in ClickHouse: only the mark is retried, and a
        // replay of them after a restart is deduplicated.
        let mut wait = RETRY_FIRST;
        while let Err(err) = self.reader.commit(next, bytes, events.len() as u64) {
            tracing::error!(
                error = %err,
                retry_in_ms = wait.as_millis() as u64,
                "cannot move the spool's shipped mark; retrying"
            );
            self.health.set(
                Some(format!("cannot move the spool's shipped mark: {err}")),
                true,
            );
            if *self.stopping.borrow() {
                return false;
            }
            wait = self.pause(wait).await;
        }
        self.health.set(None, false);
        self.shipped.send_replace(next);
        self.metrics
            .spooled_events
            .set(i64::try_from(self.spool.pending_events()).unwrap_or(i64::MAX));
        true
    }
}
