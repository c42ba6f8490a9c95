//! Group commit, as both the SQLite store's writer and the ClickHouse
//! store's spool do it: one thread owns the file, blocks for the first
//! request, takes whatever else is already queued (up to a bound) and
//! commits the whole group at once — one `fsync` for many concurrent
//! requests — before it answers them.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::lock;

/// The queue and the thread of one group committer; requests of type `T`
/// carry their own reply channels.
pub(crate) struct GroupCommit<T> {
    /// `sqlite writer`, `spool writer`: names the thread and the log lines.
    what: &'static str,
    sender: Mutex<Option<mpsc::Sender<T>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// When the thread took the group it is committing, in milliseconds
    /// since `started` plus one; 0 while it waits for a request.
    busy_since: Arc<AtomicU64>,
    started: Instant,
}

impl<T: Send + 'static> GroupCommit<T> {
    /// Starts the thread `waymark-<what>`. Up to `capacity` requests wait in
    /// the queue before senders wait for room. The thread blocks for a
    /// request, then takes more from the queue while the group's total
    /// `weight` is below `max_weight` (so the last request taken may push it
    /// past; a request is never split), and hands the group to `commit`,
    /// until every sender is gone.
    pub(crate) fn spawn(
        what: &'static str,
        capacity: usize,
        max_weight: usize,
        weight: fn(&T) -> usize,
        mut commit: impl FnMut(Vec<T>) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (sender, mut receiver) = mpsc::channel::<T>(capacity);
        let started = Instant::now();
        let busy_since = Arc::new(AtomicU64::new(0));
        let busy = Arc::clone(&busy_since);
        let thread = std::thread::Builder::new()
            .name(format!("waymark-{}", what.replace(' ', "-")))
            .spawn(move || {
                while let Some(first) = receiver.blocking_recv() {
                    let mut queued = weight(&first);
                    let mut group = vec![first];
                    while queued < max_weight {
                        match receiver.try_recv() {
                            Ok(next) => {
                                queued += weight(&next);
                                group.push(next);
                            }
                            Err(_) => break,
                        }
                    }
                    busy.store(millis_since(started) + 1, Ordering::Relaxed);
                    commit(group);
                    busy.store(0, Ordering::Relaxed);
                }
                tracing::debug!("{what} stopped");
            })?;
        Ok(GroupCommit {
            what,
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            busy_since,
            started,
        })
    }

    /// `Err` with the reason while the thread has stopped (it panicked; or
    /// [`close`](Self::close) was called) or has been committing one group
    /// for longer than `stuck_after`.
    pub(crate) fn health(&self, stuck_after: Duration) -> Result<(), String> {
        match lock(&self.thread).as_ref() {
            None => return Err(format!("the {} is closed", self.what)),
            Some(thread) if thread.is_finished() => {
                return Err(format!("the {} thread has stopped", self.what));
            }
            Some(_) => {}
        }
        let since = self.busy_since.load(Ordering::Relaxed);
        let busy_ms = millis_since(self.started).saturating_sub(since.saturating_sub(1));
        if since != 0 && u128::from(busy_ms) > stuck_after.as_millis() {
            return Err(format!(
                "the {} has been committing for {} s",
                self.what,
                busy_ms / 1000
            ));
        }
        Ok(())
    }

    /// A sender for the next request; `None` once [`close`](Self::close)d.
    pub(crate) fn sender(&self) -> Option<mpsc::Sender<T>> {
        lock(&self.sender).clone()
    }

    /// Takes no more requests, lets the thread commit everything already
    /// queued and waits for it to finish. Blocks. Calling it again does
    /// nothing.
    pub(crate) fn close(&self) {
        drop(lock(&self.sender).take());
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::error!("the {} thread panicked", self.what);
            }
        }
    }
}

fn millis_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl<T> fmt::Debug for GroupCommit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupCommit")
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_commit_running_too_long_is_unhealthy_until_it_ends() {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Mutex::new(released);
        let group = GroupCommit::spawn(
            "test writer",
            4,
            10,
            |_: &u8| 1,
            move |_| {
                lock(&released).recv().unwrap();
            },
        )
        .unwrap();
        assert_eq!(group.health(Duration::from_millis(50)), Ok(()));
        group.sender().unwrap().try_send(1).unwrap();
        wait_until("stuck", || group.health(Duration::from_millis(50)).is_err());
        let err = group.health(Duration::from_millis(50)).unwrap_err();
        assert!(err.contains("test writer has been committing"), "{err}");
        release.send(()).unwrap();
        wait_until("healthy", || {
            group.health(Duration::from_millis(50)).is_ok()
        });
        group.close();
    }

    #[test]
    fn a_thread_that_died_is_unhealthy() {
        let group = GroupCommit::spawn(
            "test writer",
            4,
            10,
            |_: &u8| 1,
            |_| {
                panic!("the commit panics");
            },
        )
        .unwrap();
        group.sender().unwrap().try_send(1).unwrap();
        wait_until("dead", || group.health(Duration::from_secs(60)).is_err());
        let err = group.health(Duration::from_secs(60)).unwrap_err();
        assert!(err.contains("test writer thread has stopped"), "{err}");
    }
}
