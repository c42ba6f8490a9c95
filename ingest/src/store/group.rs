//! Group commit, as both the SQLite store's writer and the ClickHouse
//! store's spool do it: one thread owns the file, blocks for the first
//! request, takes whatever else is already queued (up to a bound) and
//! commits the whole group at once — one `fsync` for many concurrent
//! requests — before it answers them.

use std::fmt;
use std::sync::Mutex;
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use super::lock;

/// The queue and the thread of one group committer; requests of type `T`
/// carry their own reply channels.
pub(crate) struct GroupCommit<T> {
    /// `sqlite writer`, `spool writer`: names the thread and the log lines.
    what: &'static str,
    sender: Mutex<Option<mpsc::Sender<T>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
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
                    commit(group);
                }
                tracing::debug!("{what} stopped");
            })?;
        Ok(GroupCommit {
            what,
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
        })
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

impl<T> fmt::Debug for GroupCommit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupCommit")
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}
