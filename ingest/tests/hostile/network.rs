//! The network edge: clients that dodge the rate limit, pool others into one
//! bucket, pile up batches, or hold connections open without using them.
//!
//! The rate-limit and in-flight tests drive `app()` without a socket; the
//! connection tests run `serve` on a 127.0.0.1 port with timeouts of a few
//! hundred milliseconds and talk raw HTTP/1.1 over a `TcpStream`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinHandle;
use tower::ServiceExt;
use waymark_ingest::{
    AppendOutcome, BoxFuture, Config, EventSink, MemoryStore, SessionReader, SqliteStore,
    StoreError, StoreKind, StoredEvent,
};

use crate::support::app::{Reply, TestApp};

/// Late 2024, the in-process apps' clock.
const NOW: u64 = 1_732_350_000_000;
const TOKEN: &str = "network-test-admin-token";

fn page_view(n: u128, ts: u64) -> Value {
    json!({
        "event_id": uuid::Uuid::from_u128(n).hyphenated().to_string(),
        "type": "page_view", "ts": ts,
        "session_id": "s-net", "visitor_id": "v-net",
        "url": format!("https://shop.example/page-{n}"),
    })
}

fn batch_body(n: u128, ts: u64) -> String {
    json!({"v": 1, "site": "shop", "sent_at": ts, "events": [page_view(n, ts)]}).to_string()
}

/// A batch from the socket peer `peer`, with `forwarded` as its
/// `X-Forwarded-For` when given.
fn batch_from(peer: &str, forwarded: Option<&str>, n: u128) -> Request<Body> {
    let mut request = Request::post("/v1/batch")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(batch_body(n, NOW)))
        .unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    if let Some(forwarded) = forwarded {
        request
            .headers_mut()
            .insert("x-forwarded-for", forwarded.parse().unwrap());
    }
    request
}

fn limited(per_second: u32, burst: u32, trust_proxy: usize) -> Config {
    Config {
        rate_limit_per_second: per_second,
        rate_limit_burst: burst,
        trust_proxy,
        ..Config::default()
    }
}

fn memory_app(config: Config) -> TestApp<MemoryStore> {
    let dir = tempfile::tempdir().unwrap();
    TestApp::on(Arc::new(MemoryStore::new()), config, NOW, dir)
}

#[tokio::test]
async fn ipv6_addresses_in_one_64_share_one_rate_limit_bucket() {
    let app = memory_app(limited(1, 3, 0));
    // One subscriber's /64: it may pick any of 2^64 addresses per request.
    for n in 0..3u128 {
        let peer = format!("[2001:db8:aa:bb:{n:x}:{n:x}:{n:x}:1]:443");
        let reply = app.send(batch_from(&peer, None, n)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let rotated = app
        .send(batch_from("[2001:db8:aa:bb:dead:beef:0:7]:443", None, 3))
        .await;
    rotated.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    for n in 4..40u128 {
        let peer = format!("[2001:db8:aa:bb:{n:x}::{n:x}]:443");
        let reply = app.send(batch_from(&peer, None, n)).await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(
        app.state.rate_limit_clients(),
        1,
        "one /64 is one entry in the limiter, however many addresses it uses"
    );
    // The next /64 is another client; so is an IPv4 address.
    for (peer, n) in [("[2001:db8:aa:bc::1]:443", 50), ("198.51.100.7:80", 51)] {
        assert_eq!(
            app.send(batch_from(peer, None, n)).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(app.state.rate_limit_clients(), 3);
    assert_eq!(app.store.len(), 5);
}

#[tokio::test]
async fn an_ipv6_client_behind_a_proxy_is_keyed_by_its_64_too() {
    let app = memory_app(limited(1, 2, 1));
    let proxy = "10.0.0.1:40000";
    for n in 0..2u128 {
        let client = format!("2001:db8:1:2::{n:x}");
        assert_eq!(
            app.send(batch_from(proxy, Some(&client), n)).await.status,
            StatusCode::OK
        );
    }
    app.send(batch_from(proxy, Some("2001:db8:1:2:ffff::9"), 2))
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(app.state.rate_limit_clients(), 1);
}

fn rejected_for(reply_metrics: &str, reason: &str) -> u64 {
    let prefix = format!("waymark_events_rejected_total{{reason=\"{reason}\"}} ");
    reply_metrics
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn garbage_in_the_trusted_forwarded_for_entry_is_refused_not_pooled_with_the_proxy() {
    let app = memory_app(limited(1, 2, 1));
    let proxy = "10.0.0.1:40000";
    // Before: each of these fell back to the proxy's own address, so they
    // all shared (and used up) one bucket, and were stored.
    for (n, garbage) in [
        "unknown",
        "not-an-ip",
        "999.1.1.1",
        "",
        "_hidden",
        "1.2.3.4 5",
    ]
    .into_iter()
    .enumerate()
    {
        let forwarded = format!("203.0.113.50, {garbage}");
        let reply = app
            .send(batch_from(proxy, Some(&forwarded), n as u128))
            .await;
        let body = reply.assert_error(StatusCode::BAD_REQUEST, "invalid_forwarded_for");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("X-Forwarded-For"), "{message}");
        assert!(
            !message.contains(garbage) || garbage.is_empty(),
            "{message}"
        );
    }
    assert_eq!(app.store.len(), 0, "a refused batch is not stored");
    assert_eq!(
        rejected_for(&app.state.metrics().render(), "invalid_forwarded_for"),
        6
    );
    // The proxy's bucket is untouched, and clients named properly (with or
    // without a port) are each their own client.
    let clients = ["203.0.113.7", "203.0.113.8:5555", "[2001:db8::5]:443"];
    for (n, client) in clients.into_iter().enumerate() {
        let reply = app
            .send(batch_from(proxy, Some(client), 100 + n as u128))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{client}: {}", reply.text());
    }
    assert_eq!(app.state.rate_limit_clients(), 3);
    // Without X-Forwarded-For the request did not come through the proxy:
    // the peer is the client.
    assert_eq!(
        app.send(batch_from("192.0.2.1:1", None, 200)).await.status,
        StatusCode::OK
    );
}

/// A sink whose appends wait until the test opens the gate.
#[derive(Debug)]
struct GatedStore {
    waiting: AtomicUsize,
    gate: Semaphore,
}

impl EventSink for GatedStore {
    fn append(&self, events: Vec<StoredEvent>) -> BoxFuture<'_, Result<AppendOutcome, StoreError>> {
        Box::pin(async move {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let _permit = self.gate.acquire().await.map_err(|_| StoreError::Closed)?;
            Ok(AppendOutcome {
                inserted: events.len(),
                ..AppendOutcome::default()
            })
        })
    }
}

async fn send_router(app: &TestApp<GatedStore>, request: Request<Body>) -> Reply {
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        body: body.to_vec(),
    }
}

#[tokio::test]
async fn batches_over_the_in_flight_limit_get_503_with_retry_after() {
    let store = Arc::new(GatedStore {
        waiting: AtomicUsize::new(0),
        gate: Semaphore::new(0),
    });
    let config = Config {
        max_batches_in_flight: 2,
        rate_limit_per_second: 0,
        ..Config::default()
    };
    let app = Arc::new(TestApp::on(
        store.clone(),
        config,
        NOW,
        tempfile::tempdir().unwrap(),
    ));
    let held: Vec<_> = (0..2u128)
        .map(|n| {
            let app = Arc::clone(&app);
            tokio::spawn(async move { send_router(&app, batch_from("192.0.2.1:1", None, n)).await })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(10), async {
        while store.waiting.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("both batches reach the store");

    let shed = tokio::time::timeout(
        Duration::from_secs(2),
        send_router(&app, batch_from("192.0.2.2:1", None, 2)),
    )
    .await
    .expect("a batch over the limit is answered at once, not queued");
    shed.assert_error(StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    let retry_after: u64 = shed.header("retry-after").parse().unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    assert_eq!(
        store.waiting.load(Ordering::SeqCst),
        2,
        "never reached the store"
    );
    let metrics = app.state.metrics().render();
    assert!(
        metrics.contains("waymark_batches_shed_total{reason=\"in_flight\"} 1"),
        "{metrics}"
    );

    store.gate.add_permits(100);
    for request in held {
        assert_eq!(request.await.unwrap().status, StatusCode::OK);
    }
    // The slots are free again.
    let again = send_router(&app, batch_from("192.0.2.2:1", None, 3)).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
}

/// `serve` on a 127.0.0.1 port, with its files in a temporary folder.
struct Served {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), waymark_ingest::Error>>,
    dir: tempfile::TempDir,
}

impl Served {
    async fn start(config: Config) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().join("data"),
            www_dir: dir.path().join("www"),
            sdk_dir: dir.path().join("pkg"),
            admin_token: Some(TOKEN.to_owned()),
            ..config
        };
        std::fs::create_dir_all(&config.www_dir).unwrap();
        // Larger than what the kernel buffers between the two ends of a
        // loopback connection.
        std::fs::write(config.www_dir.join("big.bin"), vec![0u8; BIG]).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(waymark_ingest::serve(config, listener, async move {
            let _ = stopped.await;
        }));
        Served {
            addr,
            stop: Some(stop),
            task,
            dir,
        }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    /// `/metrics`, on a connection of its own.
    async fn metrics(&self) -> String {
        let mut stream = self.connect().await;
        let request =
            format!("GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let (status, body) = read_response(&mut stream).await;
        assert_eq!(status, 200);
        String::from_utf8(body).unwrap()
    }

    /// `waymark_http_connections_closed_total{reason}`.
    async fn closed_for(&self, reason: &str) -> u64 {
        let prefix = format!("waymark_http_connections_closed_total{{reason=\"{reason}\"}} ");
        let metrics = self.metrics().await;
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no {prefix}in {metrics}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Stops serving and waits for `serve` to return.
    async fn shut_down(mut self) -> tempfile::TempDir {
        let _ = self.stop.take().map(|stop| stop.send(()));
        tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("serve returns after the shutdown signal")
            .unwrap()
            .unwrap();
        self.dir
    }
}

fn timeouts(header_read_ms: u64, idle_ms: u64) -> Config {
    Config {
        header_read_timeout_ms: header_read_ms,
        idle_timeout_ms: idle_ms,
        store: StoreKind::Null,
        rate_limit_per_second: 0,
        ..Config::default()
    }
}

/// The size of `www/big.bin`.
const BIG: usize = 64 << 20;

const GET_HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// One response read off `stream`: its status and body (by Content-Length).
async fn read_response(stream: &mut TcpStream) -> (u16, Vec<u8>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before a response: {buffer:?}");
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buffer.len() < head_end + length {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed in the middle of a body");
        buffer.extend_from_slice(&chunk[..n]);
    }
    (status, buffer[head_end..head_end + length].to_vec())
}

/// Reads (and drops) until the server closes `stream`; how long that took
/// and how many bytes came. Panics if it is still open after `limit`.
async fn wait_for_close(stream: &mut TcpStream, limit: Duration) -> (Duration, usize) {
    let started = Instant::now();
    let mut read = 0;
    let mut chunk = vec![0u8; 1 << 16];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the connection is still open after {limit:?}"));
    (started.elapsed(), read)
}

#[tokio::test]
async fn a_slowloris_head_is_cut_off_after_the_header_read_timeout() {
    let served = Served::start(timeouts(300, 10_000)).await;
    let stream = served.connect().await;
    let (mut reader, mut writer) = stream.into_split();
    // A byte every 20 ms: never idle, never done.
    let trickle = tokio::spawn(async move {
        let head = format!(
            "POST /v1/batch HTTP/1.1\r\nHost: x\r\nX-Pad: {}",
            "a".repeat(500)
        );
        for byte in head.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let started = Instant::now();
    let mut sink = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), reader.read_to_end(&mut sink))
        .await
        .expect("the trickling connection is closed within 3 s")
        .ok();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250),
        "closed too soon: {took:?}"
    );
    trickle.abort();
    served.shut_down().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let served = Served::start(timeouts(10_000, 300)).await;
    let mut stream = served.connect().await;
    // Used within the idle time, it stays open.
    for _ in 0..3 {
        stream.write_all(GET_HEALTHZ).await.unwrap();
        assert_eq!(read_response(&mut stream).await.0, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (took, _) = wait_for_close(&mut stream, Duration::from_secs(3)).await;
    assert!(
        took >= Duration::from_millis(150),
        "closed too soon: {took:?}"
    );
    // A connection that never sends anything is idle too.
    let mut silent = served.connect().await;
    wait_for_close(&mut silent, Duration::from_secs(3)).await;
    assert_eq!(served.closed_for("idle_timeout").await, 2);
    served.shut_down().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_its_response_is_closed_after_the_idle_timeout() {
    let served = Served::start(timeouts(10_000, 300)).await;
    let mut stream = served.connect().await;
    stream
        .write_all(b"GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    // The server fills the socket buffers, then nothing moves.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (_, read) = wait_for_close(&mut stream, Duration::from_secs(5)).await;
    assert!(
        read < 64 << 20,
        "the whole file came: the connection was kept"
    );
    served.shut_down().await;
}

#[tokio::test]
async fn connections_over_the_cap_wait_to_be_accepted() {
    let served = Served::start(Config {
        max_connections: 2,
        ..timeouts(10_000, 10_000)
    })
    .await;
    let mut first = served.connect().await;
    let mut second = served.connect().await;
    for stream in [&mut first, &mut second] {
        stream.write_all(GET_HEALTHZ).await.unwrap();
        assert_eq!(read_response(stream).await.0, 200);
    }
    let mut third = served.connect().await;
    third.write_all(GET_HEALTHZ).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), read_response(&mut third))
            .await
            .is_err(),
        "a third connection is served while two are open"
    );
    drop(first);
    let (status, _) = tokio::time::timeout(Duration::from_secs(3), read_response(&mut third))
        .await
        .expect("served once a connection closes");
    assert_eq!(status, 200);
    served.shut_down().await;
}

#[tokio::test]
async fn shutdown_lets_a_batch_in_flight_finish_and_commits_it() {
    // A request being handled is not idle, however long its body stalls
    // (the request timeout bounds that).
    let served = Served::start(Config {
        store: StoreKind::Sqlite,
        ..timeouts(10_000, 200)
    })
    .await;
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let body = batch_body(1, ts);
    let (half, rest) = body.as_bytes().split_at(body.len() / 2);
    let mut stream = served.connect().await;
    // Once this is answered the store is open and the connection accepted.
    stream.write_all(GET_HEALTHZ).await.unwrap();
    assert_eq!(read_response(&mut stream).await.0, 200);
    let head = format!(
        "POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(half).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let addr = served.addr;
    let Served {
        stop, task, dir, ..
    } = served;
    let _ = stop.map(|stop| stop.send(()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no new connection is accepted after the shutdown signal"
    );
    assert!(!task.is_finished(), "serve waits for the batch in flight");
    stream.write_all(rest).await.unwrap();
    let (status, answer) = read_response(&mut stream).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("serve returns once the batch is answered")
        .unwrap()
        .unwrap();

    let store = SqliteStore::open(dir.path().join("data")).unwrap();
    let session = store
        .session("shop", "s-net")
        .await
        .unwrap()
        .expect("committed");
    assert_eq!(session.event_count, 1);
}
