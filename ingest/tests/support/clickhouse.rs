//! A real ClickHouse server for the store's tests: Debian's
//! `clickhouse-server` on free loopback ports, its data in a temporary
//! folder, killed and started again at will. `cargo xtask test` installs it.
//!
//! Only when `WAYMARK_TEST_CLICKHOUSE=1` (see [`super::optional`]): take the
//! server with [`ClickHouse::start_if_wanted`], which skips the test
//! otherwise.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const BINARY: &str = "/usr/sbin/clickhouse-server";
const CONFIG: &str = "/etc/clickhouse-server/config.xml";
const USERS: &str = "/etc/clickhouse-server/users.xml";

/// One ClickHouse server; killed when dropped.
#[derive(Debug)]
pub struct ClickHouse {
    dir: TempDir,
    pub http_port: u16,
    tcp_port: u16,
    interserver_port: u16,
    /// Whether every query goes to `system.query_log`.
    log_queries: bool,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

impl ClickHouse {
    /// A started server when the ClickHouse tests are to run
    /// (`WAYMARK_TEST_CLICKHOUSE=1`); otherwise `None`, the calling test's
    /// skip said on stderr.
    pub fn start_if_wanted() -> Option<ClickHouse> {
        super::optional::clickhouse().then(ClickHouse::start)
    }

    /// Starts a server and waits until it answers; panics when there is no
    /// `clickhouse-server`.
    pub fn start() -> ClickHouse {
        ClickHouse::start_with(false)
    }

    /// [`ClickHouse::start`] with every query logged to `system.query_log`
    /// (the default profile's `log_queries`), so a test can see what the
    /// collector asked and how many rows each answer had
    /// ([`ClickHouse::query`] with `SYSTEM FLUSH LOGS` first).
    pub fn start_logging_queries() -> ClickHouse {
        ClickHouse::start_with(true)
    }

    fn start_with(log_queries: bool) -> ClickHouse {
        assert!(
            Path::new(BINARY).is_file(),
            "{BINARY} is missing: run `cargo xtask setup` (it installs Debian's clickhouse-server), \
             or unset {} to skip the ClickHouse tests",
            super::optional::CLICKHOUSE_VAR
        );
        let mut server = ClickHouse {
            dir: TempDir::new().unwrap(),
            http_port: free_port(),
            tcp_port: free_port(),
            interserver_port: free_port(),
            log_queries,
            child: None,
        };
        server.resume();
        server
    }

    /// `clickhouse://127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("clickhouse://127.0.0.1:{}/{database}", self.http_port)
    }

    /// Kills the server at once (SIGKILL), as a crash or a pulled cable would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and data.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let dir = self.dir.path();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let arg = |name: &str, value: &str| format!("--{name}={value}");
        let mut users = Vec::new();
        if self.log_queries {
            // The packaged users file, its default profile (the first
            // `<default>`) logging every query.
            let path = dir.join("users.xml");
            let packaged = std::fs::read_to_string(USERS).unwrap();
            assert!(
                packaged.contains("<default>"),
                "{USERS} has no default profile"
            );
            let logging =
                packaged.replacen("<default>", "<default><log_queries>1</log_queries>", 1);
            std::fs::write(&path, logging).unwrap();
            users.push(arg("users_config", &path.display().to_string()));
        }
        // A shell between the test and the server kills the server when its
        // stdin closes: when `kill` drops it, or when the test process ends
        // in any way (a server shared by a whole test binary is never
        // dropped).
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#""$0" "$@" & pid=$!; read _; kill -9 $pid; wait $pid"#)
            .arg(BINARY)
            .arg(format!("--config-file={CONFIG}"))
            .arg("--")
            .arg(arg("path", &format!("{}/", dir.display())))
            .arg(arg("tmp_path", &format!("{}/tmp/", dir.display())))
            .arg(arg("logger.log", &dir.join("log").display().to_string()))
            .arg(arg(
                "logger.errorlog",
                &dir.join("err").display().to_string(),
            ))
            .arg(arg("listen_host", "127.0.0.1"))
            .arg(arg("http_port", &self.http_port.to_string()))
            .arg(arg("tcp_port", &self.tcp_port.to_string()))
            .arg(arg(
                "interserver_http_port",
                &self.interserver_port.to_string(),
            ))
            .args(&users)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start clickhouse-server");
        self.child = Some(child);
        // 120 s: on the 2-core CI machine, with tier 1's test binaries
        // running beside it, a start once took over 60 s.
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.get("/ping").as_deref() != Some("Ok.\n") {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let err = std::fs::read_to_string(dir.join("err")).unwrap_or_default();
                panic!("clickhouse-server exited with {status}: {err}");
            }
            assert!(
                Instant::now() < deadline,
                "clickhouse-server did not start in 120 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `sql` over HTTP; the body of the answer (panics on an error).
    pub fn query(&self, sql: &str) -> String {
        let (status, body) = self.request("POST", "/", sql).expect("clickhouse answers");
        assert_eq!(status, 200, "{sql}: {body}");
        body
    }

    fn get(&self, path: &str) -> Option<String> {
        self.request("GET", path, "").map(|(_, body)| body)
    }

    fn request(&self, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.http_port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .ok()?;
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        let (head, body) = answer.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_owned()))
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits (up to 20 s) until `store`'s read mirror answers.
pub async fn read_mirror_ready(store: &waymark_ingest::ClickHouseStore) {
    for _ in 0..400 {
        if store.read_mirror_ready() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the read mirror is not ready within 20 s");
}
