//! Harness for Waymark's end-to-end tests: the collector in-process on a
//! free loopback port with its SQLite store in a temporary folder, a headless
//! Chromium driven through ChromeDriver, and reads of the real store.
//!
//! Needs the built SDK in `www/pkg/` (`cargo xtask build-sdk`) and Debian's
//! `chromium` and `chromium-driver` (`cargo xtask setup`); `cargo xtask test`
//! sees to both and sets `WAYMARK_TEST_E2E=1`. Without that variable every
//! end-to-end test skips (see [`e2e_wanted`]), so `cargo test --workspace`
//! passes on a machine with Rust alone.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use fantoccini::{Client, ClientBuilder};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The variable that turns the end-to-end tests on.
pub const E2E_VAR: &str = "WAYMARK_TEST_E2E";

/// Whether the end-to-end tests run: `WAYMARK_TEST_E2E=1` says Chromium,
/// ChromeDriver and the built SDK are there (then anything missing fails
/// the test). Unset, empty or `0`: the calling test skips, writing one
/// `SKIP <test>: …` line straight to stderr (past the harness's capture).
/// Any other value fails, so a typo cannot quietly skip them.
pub fn e2e_wanted() -> bool {
    use std::io::Write;
    match std::env::var(E2E_VAR).unwrap_or_default().as_str() {
        "1" => true,
        "" | "0" => {
            let thread = std::thread::current();
            let _ = writeln!(
                std::io::stderr(),
                "SKIP {}: needs Chromium, ChromeDriver and the built SDK; set {E2E_VAR}=1 to run it \
                 (`cargo xtask test` does, after `cargo xtask setup` and `build-sdk`)",
                thread.name().unwrap_or("an end-to-end test")
            );
            false
        }
        other => panic!("{E2E_VAR}={other:?}: use 1 to run the end-to-end tests, 0 to skip them"),
    }
}

/// The system clock in epoch milliseconds (the collector checks event times
/// against it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A collector serving the demo site and the built SDK, on the SQLite store.
#[derive(Debug)]
pub struct Collector {
    pub addr: SocketAddr,
    pub data: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), waymark_ingest::Error>>>,
}

impl Collector {
    pub async fn start() -> Collector {
        Self::launch(None).await
    }

    /// Starts the collector, with `admin_token` for the read API when given.
    async fn launch(admin_token: Option<&str>) -> Collector {
        let sdk_dir = root().join("www/pkg");
        assert!(
            sdk_dir.join("sdk.js").exists() && sdk_dir.join("sdk.wasm").exists(),
            "the SDK is not built: run `cargo xtask build-sdk` (or `cargo xtask test`)"
        );
        let data = TempDir::new().expect("temp dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let config = waymark_ingest::Config {
            addr,
            data_dir: data.path().to_owned(),
            www_dir: root().join("www"),
            sdk_dir,
            admin_token: admin_token.map(str::to_owned),
            ..Default::default()
        };
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(waymark_ingest::serve(config, listener, async {
            let _ = rx.await;
        }));
        Collector {
            addr,
            data,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every stored event, in session order.
    pub fn events(&self) -> Vec<Row> {
        read_events(&self.data.path().join(waymark_ingest::DB_FILE_NAME))
    }

    /// Polls the store until `done` holds for its events (or panics after 20 s).
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Row]) -> bool) -> Vec<Row> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let rows = self.events();
            if done(&rows) {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the store holds {rows:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Graceful shutdown: stops accepting, drains, closes the store.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("collector task")
                .expect("collector stopped cleanly");
        }
    }
}

/// One row of the `events` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub event_id: String,
    pub site: String,
    pub kind: String,
    pub name: Option<String>,
    /// Event time, corrected by the collector for the device's clock skew.
    pub ts: i64,
    /// Event time by the device's clock, as sent.
    pub client_ts: i64,
    pub session_id: String,
    pub visitor_id: String,
    pub user_id: Option<String>,
    pub session_index: Option<i64>,
    pub previous_session_id: Option<String>,
    pub storage: Option<String>,
    pub url: String,
    pub title: Option<String>,
    pub referrer: Option<String>,
    pub props: Option<serde_json::Value>,
    pub context: Option<serde_json::Value>,
}

fn read_events(db: &Path) -> Vec<Row> {
    if !db.exists() {
        return Vec::new();
    }
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open store");
    waymark_ingest::SqliteStore::register_functions(&conn).expect("the store's SQL functions");
    let (url, referrer) = (
        waymark_ingest::SqliteStore::url_sql("url"),
        waymark_ingest::SqliteStore::url_sql("referrer"),
    );
    let mut stmt = conn
        .prepare(&format!(
            "SELECT wm_text(event_id), site, type, name, ts, COALESCE(client_ts, ts), wm_text(session_id), wm_text(visitor_id), user_id, session_index, wm_text(previous_session_id), storage, {url}, \
             title, {referrer}, props, context \
             FROM events ORDER BY ts, seq, rowid",
        ))
        .expect("query");
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    stmt.query_map([], |r| {
        Ok(Row {
            event_id: r.get(0)?,
            site: r.get(1)?,
            kind: r.get(2)?,
            name: r.get(3)?,
            ts: r.get(4)?,
            client_ts: r.get(5)?,
            session_id: r.get(6)?,
            visitor_id: r.get(7)?,
            user_id: r.get(8)?,
            session_index: r.get(9)?,
            previous_session_id: r.get(10)?,
            storage: r.get(11)?,
            url: r.get(12)?,
            title: r.get(13)?,
            referrer: r.get(14)?,
            props: json(r.get(15)?),
            context: json(r.get(16)?),
        })
    })
    .expect("rows")
    .collect::<Result<_, _>>()
    .expect("decode rows")
}

/// Headless Chromium through a ChromeDriver of its own.
#[derive(Debug)]
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        Self::launch("normal").await
    }

    /// A browser whose navigations return at `DOMContentLoaded`, before
    /// the page's async scripts and `load` (WebDriver's `eager` page load
    /// strategy), so a test can leave a page before the SDK has started.
    pub async fn start_eager() -> Browser {
        Self::launch("eager").await
    }

    async fn launch(page_load_strategy: &str) -> Browser {
        let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {chromedriver} ({e}): run `cargo xtask setup`")
            });
        let profile = TempDir::new().expect("profile dir");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        caps.insert("pageLoadStrategy".into(), page_load_strategy.into());
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            match ClientBuilder::native()
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(e) if Instant::now() > deadline => {
                    panic!("ChromeDriver did not start a session: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Runs `script` in the page and returns its result.
    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("script ran")
    }

    /// Waits until `script` returns something truthy in the page.
    pub async fn wait_until(&self, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.eval(script).await;
            if !(v.is_null() || v == false || v == "" || v == 0) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for `{script}`"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A second web server on another origin, serving one HTML page at `/`.
pub async fn serve_page(html: String) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(html) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The inline stub of the README's snippet: queues the page's calls with
/// their times, keeps the page view's facts, and saves both on `pagehide`
/// if the SDK has not started.
pub const STUB: &str = r#"<script>!function(w,d,f){if(w.waymark)return;f=w.waymark=function(){f.q.push([].slice.call(arguments));f.t.push(Date.now())};f.q=[];f.t=[];f.p=[Date.now(),location.href,d.referrer];f.k='waymark.early.'+f.p[0]+Math.random();w.addEventListener('pagehide',function(){try{w.waymark!=f||d.querySelector('[data-require-consent=true]')||localStorage.setItem(f.k,JSON.stringify([f.p.concat(d.title),f.q,f.t]))}catch(e){}})}(window,document)</script>"#;

/// The script-tag snippet of the README, pointed at `collector`: the stub,
/// the wasm's preload and the SDK's script tag.
pub fn snippet(collector: &str, site: &str, extra: &str) -> String {
    format!(
        "{STUB}\n<link rel=\"preload\" href=\"{collector}/sdk.wasm\" as=\"fetch\" crossorigin>\n\
         <script async src=\"{collector}/sdk.js\" data-endpoint=\"{collector}\" data-site=\"{site}\"{extra}></script>"
    )
}

/// The snippet as first published (a stub that only queues, no preload),
/// which keeps working.
pub fn legacy_snippet(collector: &str, site: &str, extra: &str) -> String {
    format!(
        "<script>window.waymark=window.waymark||function(){{(window.waymark.q=window.waymark.q||[]).push(arguments)}};</script>\n\
         <script async src=\"{collector}/sdk.js\" data-endpoint=\"{collector}\" data-site=\"{site}\"{extra}></script>"
    )
}

/// A web server on another origin serving the files under `dir` (e.g. an
/// app's build output), with `index.html` for `/`.
pub async fn serve_dir(dir: PathBuf) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let app = axum::Router::new().fallback_service(tower_http::services::ServeDir::new(dir));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Like [`serve_page`], with extra response headers (e.g. a
/// `Content-Security-Policy`).
pub async fn serve_page_with_headers(
    html: String,
    headers: Vec<(&'static str, String)>,
) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move {
            let mut response =
                axum::response::IntoResponse::into_response(axum::response::Html(html));
            for (name, value) in headers {
                response.headers_mut().insert(
                    name,
                    axum::http::HeaderValue::from_str(&value).expect("header value"),
                );
            }
            response
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The Cargo target folder (`CARGO_TARGET_DIR` or `target/`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

impl Collector {
    /// A collector like [`Collector::start`] whose read API and `/metrics`
    /// take `Authorization: Bearer <token>`.
    pub async fn start_with_admin_token(token: &str) -> Collector {
        Self::launch(Some(token)).await
    }
}

impl Browser {
    /// Runs `script` in the page as an asynchronous script: it answers by
    /// calling its last argument, `arguments[arguments.length - 1]`.
    pub async fn eval_async(&self, script: &str) -> serde_json::Value {
        self.client
            .execute_async(script, vec![])
            .await
            .expect("async script ran")
    }

    /// The text of the first element matching the CSS `selector`.
    pub async fn text_of(&self, selector: &str) -> String {
        self.client
            .find(fantoccini::Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no element {selector}: {e}"))
            .text()
            .await
            .expect("element text")
    }

    /// Clicks the first element matching the CSS `selector`.
    pub async fn click(&self, selector: &str) {
        self.client
            .find(fantoccini::Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no element {selector}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {selector}: {e}"));
    }
}

/// One DevTools protocol command through ChromeDriver
/// (`POST /session/{id}/goog/cdp/execute`).
#[derive(Debug)]
struct Cdp {
    method: &'static str,
    params: serde_json::Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        let body = serde_json::json!({ "cmd": self.method, "params": self.params });
        (axum::http::Method::POST, Some(body.to_string()))
    }
}

impl Browser {
    /// Sends a DevTools protocol command to the page's target.
    pub async fn cdp(&self, method: &'static str, params: serde_json::Value) -> serde_json::Value {
        self.client
            .issue_cmd(Cdp { method, params })
            .await
            .unwrap_or_else(|e| panic!("CDP {method}: {e}"))
    }

    /// Chrome DevTools' "Fast 3G" (562.5 ms round trip, 1.44 Mbit/s down,
    /// 675 kbit/s up) and a 4x CPU slowdown, for every later request and
    /// script of this tab.
    pub async fn throttle_fast_3g(&self) {
        self.cdp("Network.enable", serde_json::json!({})).await;
        self.cdp(
            "Network.emulateNetworkConditions",
            serde_json::json!({
                "offline": false,
                "latency": 562.5,
                "downloadThroughput": 180_000,
                "uploadThroughput": 84_375,
            }),
        )
        .await;
        self.cdp(
            "Emulation.setCPUThrottlingRate",
            serde_json::json!({ "rate": 4 }),
        )
        .await;
    }
}
