//! The real `waymark` binary as a child process, and plain HTTP/1.1 to it
//! over `std::net::TcpStream` (127.0.0.1 only).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(20);

/// A running collector; killed on drop so a failing test leaves nothing behind.
#[derive(Debug)]
pub struct Collector {
    pub child: Child,
    pub port: u16,
}

impl Collector {
    /// The collector on the SQLite store in `<root>/data`, logging to
    /// `<root>/<name>.log`.
    pub fn start(root: &Path, name: &str) -> Collector {
        Collector::start_with(root, name, &root.join("data"), &[])
    }

    /// The collector with its store's files in `data` and `args` added to
    /// its command line; without a `--rate-limit` there, no per-IP limit (one
    /// client streaming as fast as it can).
    pub fn start_with(root: &Path, name: &str, data: &Path, args: &[&str]) -> Collector {
        let port = free_port();
        let unlimited: &[&str] = if args.contains(&"--rate-limit") {
            &[]
        } else {
            &["--rate-limit", "0"]
        };
        let log = File::create(root.join(format!("{name}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_waymark"))
            .arg("--addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data")
            .arg(data)
            .arg("--www")
            .arg(root.join("www"))
            .arg("--sdk-dir")
            .arg(root.join("pkg"))
            .args(unlimited)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("WAYMARK_STORE")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut collector = Collector { child, port };
        collector.wait_until_healthy();
        collector
    }

    pub fn get(&self, path: &str, token: &str) -> io::Result<(u16, Value)> {
        let (status, body) = request_with(self.port, "GET", path, "", token)?;
        let json = serde_json::from_str(&body).map_err(io::Error::other)?;
        Ok((status, json))
    }

    fn wait_until_healthy(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the collector exited before it was healthy: {status}");
            }
            if matches!(request(self.port, "GET", "/healthz", ""), Ok((200, _))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the collector never became healthy"
            );
            thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn post_batch(&self, body: &str) -> io::Result<(u16, Value)> {
        let (status, body) = request(self.port, "POST", "/v1/batch", body)?;
        let json = serde_json::from_str(&body).map_err(io::Error::other)?;
        Ok((status, json))
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the collector ignored SIGTERM");
            thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request on a fresh connection; the status and the body.
pub fn request(port: u16, method: &str, path: &str, body: &str) -> io::Result<(u16, String)> {
    request_with(port, method, path, body, "")
}

/// [`request`] with `Authorization: Bearer <token>` (none when empty).
pub fn request_with(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
    token: &str,
) -> io::Result<(u16, String)> {
    let (status, _, body) = exchange(port, method, path, body, token)?;
    Ok((status, body))
}

/// One request: the status, the response head and the body.
pub fn exchange(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
    token: &str,
) -> io::Result<(u16, String, String)> {
    let mut headers = String::from("Content-Type: text/plain;charset=UTF-8\r\n");
    if !token.is_empty() {
        headers.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    exchange_raw(port, method, path, &headers, body.as_bytes())
}

/// One request with `headers` (each line ending in `\r\n`) added to `Host`,
/// `Content-Length` and `Connection: close`, and any bytes as its body: the
/// status, the response head and the body.
pub fn exchange_raw(
    port: u16,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> io::Result<(u16, String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other("incomplete response"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line in {head:?}")))?;
    Ok((status, head.to_owned(), body.to_owned()))
}
