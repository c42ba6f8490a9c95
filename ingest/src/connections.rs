//! The accept loop of [`serve`](crate::serve): HTTP/1.1 connections served
//! by hyper with the limits `axum::serve` has no settings for.
//!
//! - A cap on open connections ([`Config::max_connections`]): at the cap the
//!   loop stops accepting, and new connections wait in the listen backlog.
//! - A header-read timeout ([`Config::header_read_timeout_ms`], hyper's
//!   own): a request head that has not arrived in full that long after the
//!   connection was ready for it closes the connection, however steadily
//!   its bytes trickle in (slowloris). hyper starts that clock as soon as a
//!   kept-alive connection has sent its response, so it also bounds how long
//!   one may wait for its next request.
//! - An idle timeout ([`Config::idle_timeout_ms`]): a connection on which no
//!   byte has moved either way for that long, while none of its requests is
//!   being handled, is closed: one that never sends anything, one kept alive
//!   and unused, one whose client stopped reading its response.
//!
//! Only HTTP/1.1, as with `axum::serve` in axum's default features: browsers
//! speak HTTP/2 only over TLS, which a proxy in front terminates, and
//! cleartext HTTP/2 would be a second protocol to bound.
//!
//! On shutdown the loop stops accepting, every connection finishes the
//! request it is handling and closes ([`GracefulShutdown`]), then it returns.
//!
//! [`Config::max_connections`]: crate::Config::max_connections
//! [`Config::header_read_timeout_ms`]: crate::Config::header_read_timeout_ms
//! [`Config::idle_timeout_ms`]: crate::Config::idle_timeout_ms

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::config::Config;
use crate::metrics::Metrics;

/// The bounds on each connection and on how many there are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// `None`: no cap.
    max_connections: Option<usize>,
    header_read_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
}

impl ConnectionLimits {
    /// The limits `config` sets; 0 turns each off.
    pub(crate) fn of(config: &Config) -> Self {
        let millis = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        ConnectionLimits {
            max_connections: (config.max_connections > 0).then_some(config.max_connections),
            header_read_timeout: millis(config.header_read_timeout_ms),
            idle_timeout: millis(config.idle_timeout_ms),
        }
    }
}

/// Serves `router` on every connection `listener` accepts until `shutdown`
/// resolves, then waits for the connections to finish their requests.
/// Handlers see the peer address as `ConnectInfo<SocketAddr>`.
pub(crate) async fn serve_connections(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: Metrics,
    shutdown: impl Future<Output = ()>,
) {
    let slots = limits
        .max_connections
        .map(|max| Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let slot = match &slots {
            None => None,
            Some(slots) => tokio::select! {
                // The semaphore is never closed.
                slot = Arc::clone(slots).acquire_owned() => slot.ok(),
                () = &mut shutdown => break,
            },
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    if pause_after(&err) {
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            () = &mut shutdown => break,
                        }
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            stream,
            activity: Arc::clone(&activity),
        });
        let service = {
            let (router, activity) = (router.clone(), Arc::clone(&activity));
            hyper::service::service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                let handling = activity.handling();
                let response = router.clone().oneshot(request);
                async move {
                    let response = response.await;
                    drop(handling);
                    response
                }
            })
        };
        let connection = graceful.watch(builder.serve_connection(io, service));
        let metrics = metrics.clone();
        let idle_timeout = limits.idle_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            metrics.connections_open.inc();
            tokio::select! {
                served = connection => match served {
                    Err(err) if err.is_timeout() => metrics
                        .connections_closed
                        .with_label_values(&["header_timeout"])
                        .inc(),
                    Err(err) => tracing::debug!(error = %err, "connection ended with an error"),
                    Ok(()) => {}
                },
                () = idle(&activity, idle_timeout) => metrics
                    .connections_closed
                    .with_label_values(&["idle_timeout"])
                    .inc(),
            }
            metrics.connections_open.dec();
        });
    }
    drop(listener);
    tracing::debug!(
        connections = graceful.count(),
        "not accepting; waiting for connections to finish"
    );
    graceful.shutdown().await;
}

/// Whether to wait before accepting again after `err`. A connection that
/// failed before it was accepted concerns that client only; anything else
/// (no file descriptors left, most often) is logged and retried in a
/// second, as hyper and axum do.
fn pause_after(err: &io::Error) -> bool {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return false;
    }
    tracing::error!(error = %err, "cannot accept connections; retrying in 1 s");
    true
}

/// Resolves once the connection has been idle for `timeout`: nothing read
/// or written and no request being handled. Never without a timeout.
async fn idle(activity: &Activity, timeout: Option<Duration>) {
    let Some(timeout) = timeout else {
        return std::future::pending().await;
    };
    loop {
        let now = Instant::now();
        let deadline = if activity.handling.load(Ordering::Acquire) > 0 {
            now + timeout
        } else {
            activity.last() + timeout
        };
        if deadline <= now {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// When a connection last moved a byte or finished handling a request, and
/// how many of its requests are being handled.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    /// Milliseconds after `opened`.
    last_ms: AtomicU64,
    handling: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
            handling: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::AcqRel);
    }

    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Acquire))
    }

    /// Counts a request as being handled until the guard is dropped.
    fn handling(self: &Arc<Self>) -> Handling {
        self.handling.fetch_add(1, Ordering::AcqRel);
        self.touch();
        Handling(Arc::clone(self))
    }
}

/// A request being handled on a connection.
#[derive(Debug)]
struct Handling(Arc<Activity>);

impl Drop for Handling {
    fn drop(&mut self) {
        // Touched first, so the idle clock starts now, not at the last byte
        // of the request.
        self.0.touch();
        self.0.handling.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The socket, noting in [`Activity`] every byte that moves.
#[derive(Debug)]
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl Watched {
    fn moved<T>(
        &self,
        polled: Poll<io::Result<T>>,
        bytes: impl Fn(&T) -> bool,
    ) -> Poll<io::Result<T>> {
        if let Poll::Ready(Ok(done)) = &polled {
            if bytes(done) {
                self.activity.touch();
            }
        }
        polled
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        let read = buf.filled().len() > before;
        self.moved(polled, |()| read)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.moved(polled, |n| *n > 0)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.moved(polled, |n| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
