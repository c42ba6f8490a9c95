//! The dashboard in headless Chromium on the filled store: how long
//! `/dashboard/` takes to show the whole overview, and to show it again
//! after a filter click. `waymark-bench read` runs it on each store right
//! after timing the read API, on the same collector.
//!
//! Every run is a fresh Chromium (a new profile: empty cache, nothing kept)
//! started through ChromeDriver, headless, on loopback:
//!
//! 1. it opens `/healthz` to put the admin token and the preferences (the
//!    bench's site, 30 days, bots off) in the origin's localStorage, where
//!    the dashboard's token prompt and pickers keep them;
//! 2. it opens `/dashboard/` and waits for the overview's
//!    `waymark:view-ready` performance mark, which the dashboard sets once a
//!    view is drawn with every read it made answered — for the overview the
//!    cards, the chart, the five panels and "visitors now". The mark's time
//!    since navigation start is the **overview** time;
//! 3. it clicks the top row of the Sources panel and waits for the next
//!    mark: from the click event to the mark is the **filter click** time.
//!
//! Both are read from the page's own clock (`performance`), so polling
//! through ChromeDriver adds nothing to them. The dashboard's range ends
//! now, the fill's ended when it was made: a fill kept from days ago shows
//! fewer of its days.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::collector::ADMIN_TOKEN;
use crate::reads::{percentile, Outcome, Timing};
use crate::traffic::SITE;

/// The overview's label in the report.
const OVERVIEW: &str = "overview, from navigation start to complete";
/// The filter click's label in the report.
const FILTER_CLICK: &str = "filter click (top row of Sources), to complete";
/// How long one view may take to mark itself ready.
const VIEW_TIMEOUT: Duration = Duration::from_secs(120);

/// One store's dashboard timings, and where the median overview's time went.
#[derive(Default)]
pub struct Dashboard {
    pub timings: Vec<Timing>,
    pub detail: Option<String>,
}

/// One run's overview: when it was complete, and its reads.
struct Overview {
    ms: f64,
    detail: String,
}

/// Times the dashboard `runs` times (0: not at all) on the collector at `base`.
pub fn measure(
    runtime: &tokio::runtime::Runtime,
    base: &str,
    runs: usize,
    name: &str,
) -> Dashboard {
    if runs == 0 {
        return Dashboard::default();
    }
    eprintln!("waymark-bench: {name}: the dashboard in headless Chromium ({runs} runs)");
    match runtime.block_on(measure_runs(base, runs)) {
        Ok((mut overviews, mut clicks)) => {
            overviews.sort_by(|a, b| a.ms.total_cmp(&b.ms));
            clicks.sort_by(f64::total_cmp);
            let ms: Vec<f64> = overviews.iter().map(|o| o.ms).collect();
            let timings = vec![timed(OVERVIEW, &ms), timed(FILTER_CLICK, &clicks)];
            let detail = overviews
                .get(overviews.len().saturating_sub(1) / 2)
                .map(|o| o.detail.clone());
            if let Some(d) = &detail {
                eprintln!("waymark-bench: {name}: the median overview: {d}");
            }
            Dashboard { timings, detail }
        }
        Err(e) => {
            eprintln!("waymark-bench: {name}: the dashboard: {e}");
            let failed = |label: &str| Timing {
                label: label.to_owned(),
                outcome: Outcome::Failed(e.clone()),
            };
            Dashboard {
                timings: vec![failed(OVERVIEW), failed(FILTER_CLICK)],
                detail: None,
            }
        }
    }
}

/// The timing of sorted `samples`, printed as the read API's are.
fn timed(label: &str, samples: &[f64]) -> Timing {
    let (p50_ms, p99_ms) = (percentile(samples, 0.5), percentile(samples, 0.99));
    eprintln!(
        "waymark-bench: dashboard {label}: p50 {p50_ms:.1} ms, p99 {p99_ms:.1} ms ({} runs)",
        samples.len()
    );
    Timing {
        label: label.to_owned(),
        outcome: Outcome::Timed {
            p50_ms,
            p99_ms,
            runs: samples.len(),
        },
    }
}

async fn measure_runs(base: &str, runs: usize) -> Result<(Vec<Overview>, Vec<f64>), String> {
    let driver = Driver::start()?;
    let mut overviews = Vec::with_capacity(runs);
    let mut clicks = Vec::with_capacity(runs);
    for run in 0..runs {
        let profile = std::env::temp_dir().join(format!(
            "waymark-bench-chromium-{}-{run}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&profile);
        let client = driver.session(&profile).await?;
        let result = one_run(&client, base).await;
        let _ = client.close().await;
        let _ = std::fs::remove_dir_all(&profile);
        let (overview, click) = result.map_err(|e| format!("run {}: {e}", run + 1))?;
        overviews.push(overview);
        clicks.push(click);
    }
    Ok((overviews, clicks))
}

/// Reads of the view that marked itself ready after `after` (its
/// generation), as JSON: `{at, generation, reads: [{what, start, end}]}`,
/// `at` and the reads' times in ms since navigation start; `null` until then.
fn ready_after(after: u64, since: &str) -> String {
    format!(
        "const m = performance.getEntriesByName('waymark:view-ready')
           .find((m) => m.detail && m.detail.view === 'overview' && m.detail.generation > {after});
         if (!m) return null;
         const seen = {{}};
         const reads = performance.getEntriesByType('resource')
           .filter((e) => e.name.includes('/v1/') && e.startTime >= {since} && e.startTime <= m.startTime)
           .map((e) => {{
             const u = new URL(e.name);
             const d = u.searchParams.get('dimension');
             let what = u.pathname + (d ? `?dimension=${{d}}` : '');
             seen[what] = (seen[what] || 0) + 1;
             if (seen[what] > 1) what += ` (${{seen[what]}})`;
             return {{ what, start: e.startTime, end: e.responseEnd }};
           }});
         return {{ at: m.startTime, generation: m.detail.generation, reads }};"
    )
}

/// Opens the overview, then clicks the top source: the overview, and the
/// click's milliseconds.
async fn one_run(client: &Client, base: &str) -> Result<(Overview, f64), String> {
    let cmd = |e: fantoccini::error::CmdError| e.to_string();
    client.goto(&format!("{base}/healthz")).await.map_err(cmd)?;
    let prefs = json!({"site": SITE, "range": "30d", "bots": false}).to_string();
    client
        .execute(
            "localStorage.setItem('waymark.dashboard.token', arguments[0]);
             localStorage.setItem('waymark.dashboard.prefs', arguments[1]);",
            vec![json!(ADMIN_TOKEN), json!(prefs)],
        )
        .await
        .map_err(cmd)?;
    client
        .goto(&format!("{base}/dashboard/"))
        .await
        .map_err(cmd)?;
    let opened = wait_for(client, &ready_after(0, "0")).await?;
    let modules = client
        .execute(
            "const m = performance.getEntriesByType('resource').filter((e) => e.name.endsWith('.js'));
             return Math.max(0, ...m.map((e) => e.responseEnd));",
            vec![],
        )
        .await
        .map_err(cmd)?;
    let overview = Overview {
        ms: opened["at"].as_f64().unwrap_or(f64::NAN),
        detail: describe(&opened, modules.as_f64().unwrap_or(0.0)),
    };

    let generation = opened["generation"].as_u64().unwrap_or(0);
    client
        .execute(
            "window.__clickAt = null;
             document.addEventListener('click', () => { window.__clickAt = performance.now(); },
               { capture: true, once: true });",
            vec![],
        )
        .await
        .map_err(cmd)?;
    client
        .find(Locator::Css("#list-sources li .key"))
        .await
        .map_err(|e| format!("no row in the Sources panel: {e}"))?
        .click()
        .await
        .map_err(cmd)?;
    let clicked = wait_for(client, &ready_after(generation, "window.__clickAt")).await?;
    let at = client
        .execute("return window.__clickAt", vec![])
        .await
        .map_err(cmd)?;
    let click = clicked["at"].as_f64().unwrap_or(f64::NAN) - at.as_f64().unwrap_or(f64::NAN);
    Ok((overview, click))
}

/// Polls `script` until it answers something other than `null`; the answer.
async fn wait_for(client: &Client, script: &str) -> Result<Value, String> {
    let started = Instant::now();
    loop {
        let answer = client
            .execute(script, vec![])
            .await
            .map_err(|e| e.to_string())?;
        if !answer.is_null() {
            return Ok(answer);
        }
        if started.elapsed() > VIEW_TIMEOUT {
            let shown = client
                .execute(
                    "const v = document.querySelector('#view');
                     return v ? `${v.dataset.state}: ${v.textContent.slice(0, 200)}` : document.title",
                    vec![],
                )
                .await
                .unwrap_or_default();
            return Err(format!(
                "the overview was not complete after {} s ({shown})",
                VIEW_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One line on where an overview's time went: when its modules had
/// loaded, each read's span, the last answer, the mark.
fn describe(ready: &Value, modules_ms: f64) -> String {
    let mut reads: Vec<(String, f64, f64)> = ready["reads"]
        .as_array()
        .map(|reads| {
            reads
                .iter()
                .map(|r| {
                    (
                        r["what"].as_str().unwrap_or("?").to_owned(),
                        r["start"].as_f64().unwrap_or(0.0),
                        r["end"].as_f64().unwrap_or(0.0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    reads.sort_by(|a, b| a.1.total_cmp(&b.1));
    let last = reads.iter().map(|r| r.2).fold(0.0, f64::max);
    let spans: Vec<String> = reads
        .iter()
        .map(|(what, start, end)| format!("`{what}` {start:.0}–{end:.0}"))
        .collect();
    format!(
        "scripts loaded by {modules_ms:.0} ms; reads (ms since navigation start) {}; \
         last answer at {last:.0} ms, complete at {:.0} ms",
        spans.join(", "),
        ready["at"].as_f64().unwrap_or(0.0),
    )
}

/// ChromeDriver on a free loopback port; killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Result<Driver, String> {
        let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free port: {e}"))?;
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {chromedriver} ({e}): run `cargo xtask setup`"))?;
        Ok(Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// A new headless Chromium with its profile in `profile`.
    async fn session(&self, profile: &Path) -> Result<Client, String> {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match ClientBuilder::native()
                .capabilities(caps.clone())
                .connect(&self.url)
                .await
            {
                Ok(client) => return Ok(client),
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("ChromeDriver did not start Chromium: {e}"))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
