//! The release `waymark` binary, started on a free loopback port for one
//! measurement and stopped gracefully after it.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Result;

/// The admin token every benchmark collector is started with.
pub const ADMIN_TOKEN: &str = "bench-admin-token-not-secret";

/// How to start one collector.
pub struct Launch<'a> {
    pub waymark: &'a Path,
    /// `null`, `sqlite` or a `clickhouse://` URL.
    pub store: &'a str,
    /// The data directory; `None`: a fresh one under the system's temporary
    /// directory, removed when the collector stops.
    pub data: Option<PathBuf>,
    /// Further flags, e.g. `--trust-proxy 1`.
    pub args: Vec<String>,
}

/// The repository's `www/`, which every benchmark collector serves: the
/// dashboard that `dashboard.rs` opens.
fn www_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../www")
}

/// The `waymark` binary on a free loopback port with its own data directory,
/// serving the repository's `www/` and no SDK.
pub struct Collector {
    child: Child,
    pub addr: SocketAddr,
    /// Removed on stop: the temporary directory, unless a data directory was
    /// given.
    scratch: PathBuf,
}

impl Collector {
    /// A collector with a fresh data directory, removed when it stops.
    pub fn start(waymark: &Path, store: &str) -> Result<Collector> {
        Collector::launch(Launch {
            waymark,
            store,
            data: None,
            args: Vec::new(),
        })
    }

    pub fn launch(launch: Launch<'_>) -> Result<Collector> {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?;
        let tag = if launch.store.starts_with("clickhouse") {
            "clickhouse"
        } else {
            launch.store
        };
        let scratch =
            std::env::temp_dir().join(format!("waymark-bench-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(scratch.join("www"))
            .map_err(|e| format!("{}: {e}", scratch.display()))?;
        let data = launch.data.unwrap_or_else(|| scratch.join("data"));
        let log =
            std::fs::File::create(scratch.join("collector.log")).map_err(|e| e.to_string())?;
        let child = Command::new(launch.waymark)
            .arg("--addr")
            .arg(addr.to_string())
            .arg("--data")
            .arg(&data)
            .args(["--store", launch.store, "--rate-limit", "0"])
            .arg("--www")
            .arg(www_dir())
            .arg("--sdk-dir")
            .arg(scratch.join("www"))
            .args(&launch.args)
            .env("RUST_LOG", "warn")
            .env("WAYMARK_ADMIN_TOKEN", ADMIN_TOKEN)
            .env_remove("WAYMARK_SITES")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", launch.waymark.display()))?;
        let mut collector = Collector {
            child,
            addr,
            scratch,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline || matches!(collector.child.try_wait(), Ok(Some(_))) {
                let log = collector.log();
                collector.stop();
                return Err(format!(
                    "the collector ({tag}) did not listen on {addr}:\n{log}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(collector)
    }

    /// What the collector logged (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.join("collector.log")).unwrap_or_default()
    }

    /// Reads `/metrics` (plain HTTP/1.1 on a fresh connection).
    pub fn metrics(&self) -> Result<String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.addr).map_err(|e| e.to_string())?;
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .map_err(|e| e.to_string())?;
        let mut text = String::new();
        stream
            .read_to_string(&mut text)
            .map_err(|e| e.to_string())?;
        Ok(text)
    }

    /// One unlabelled metric's value.
    pub fn metric(&self, name: &str) -> Result<Option<f64>> {
        let prefix = format!("{name} ");
        Ok(self
            .metrics()?
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse::<f64>().ok()))
    }

    /// Polls `/metrics` until the ClickHouse store's spool is empty; the
    /// seconds that took.
    pub fn wait_for_empty_spool(&self, limit: Duration) -> Result<f64> {
        let started = Instant::now();
        let deadline = started + limit;
        loop {
            match self.metric("waymark_store_spooled_events")? {
                Some(n) if n <= 0.0 => return Ok(started.elapsed().as_secs_f64()),
                _ if Instant::now() > deadline => {
                    return Err(format!(
                        "the ClickHouse spool did not drain in {} s",
                        limit.as_secs()
                    ))
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// The collector's peak resident set (`VmHWM`), in KiB.
    pub fn peak_rss_kb(&self) -> Option<u64> {
        self.status_kb("VmHWM:")
    }

    /// The collector's resident set now (`VmRSS`), in KiB.
    pub fn rss_kb(&self) -> Option<u64> {
        self.status_kb("VmRSS:")
    }

    fn status_kb(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// SIGTERM (a graceful stop that commits), then SIGKILL after 60 s.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.scratch);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}
