//! The npm package as a user gets it: `npm pack` of the package that
//! `cargo xtask build-npm` assembles, installed into a small app, built,
//! served from another origin and opened in headless Chromium. Two apps: the
//! main entry in the Vite app in `tests/npm-app/` (vite 7 and TypeScript,
//! type-checked), and the `waymark/bundler` subpath in the webpack 5 app in
//! `tests/npm-webpack/` (`experiments.asyncWebAssembly`).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use waymark_e2e::{root, serve_dir, target_dir, Browser, Collector};

const BUILD_HINT: &str = "run `cargo xtask build-npm` (or `cargo xtask test`)";

/// Runs `program args` in `dir`, panicking with its output when it fails.
fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): npm (Node 20+) is needed; {BUILD_HINT}")
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed in {}:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Copies the folder `from` into `to`, subfolders included.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create app folder");
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let path = entry.expect("entry").path();
        let dest = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, dest).expect("copy app file");
        }
    }
}

/// Packs the package and installs the tarball, with the app's own
/// devDependencies, into a copy of `tests/<app>/`; returns the copy.
fn install_app(app: &str) -> tempfile::TempDir {
    let package = target_dir().join("npm/waymark");
    for file in [
        "package.json",
        "index.js",
        "index.d.ts",
        "web/waymark_sdk_bg.wasm",
        "bundler/waymark_sdk.js",
        "bundler/waymark_sdk_bg.wasm",
    ] {
        assert!(
            package.join(file).is_file(),
            "the npm package is not built ({} is missing): {BUILD_HINT}",
            package.join(file).display()
        );
    }
    let dir = tempfile::TempDir::new().expect("temp dir");
    copy_dir(&root().join("tests").join(app), dir.path());
    let packed = run(
        &package,
        "npm",
        &[
            "pack",
            "--silent",
            "--pack-destination",
            dir.path().to_str().unwrap(),
        ],
    );
    let tarball = format!(
        "./{}",
        packed
            .lines()
            .last()
            .expect("npm pack names its tarball")
            .trim()
    );
    run(
        dir.path(),
        "npm",
        &[
            "install",
            "--no-audit",
            "--no-fund",
            "--prefer-offline",
            &tarball,
        ],
    );
    dir
}

/// Whether `dir` holds a `.wasm` file (the bundler emitted the SDK).
fn has_wasm(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .any(|e| e.unwrap().path().extension().is_some_and(|x| x == "wasm"))
}

/// Serves `served` from another origin than the collector's, opens it with
/// `?endpoint=<collector>` and waits for `document.body.dataset.ready`. The
/// page's `window.tracker` must have tracked `npm_loaded` with
/// `{bundler, nested: {ok: true, n: [1, 2]}}` at once; this tracks
/// `after_ready` and checks that the page view and both events arrive in the
/// store with `site` and the ids the tracker reports.
async fn check_app_sends_events(served: PathBuf, site: &str, bundler: &str) {
    let collector = Collector::start().await;
    let addr = serve_dir(served).await;
    let browser = Browser::start().await;
    let page_url = format!("http://{addr}/?endpoint={}", collector.url(""));
    browser.client.goto(&page_url).await.expect("open the app");
    browser
        .wait_until("return document.body.dataset.ready === 'true'")
        .await;
    let ids = browser
        .eval("return [window.tracker.sessionId(), window.tracker.visitorId(), window.tracker.storageKind()]")
        .await;
    let session_id = ids[0].as_str().expect("a session id").to_owned();
    let visitor_id = ids[1].as_str().expect("a visitor id").to_owned();
    assert_eq!(ids[2], "local");
    browser
        .eval("window.tracker.track('after_ready', {n: 2}); window.tracker.flush(); return null")
        .await;

    let rows = collector
        .wait_for("the app's page view and two custom events", |rows| {
            rows.iter().filter(|r| r.kind == "custom").count() >= 2
        })
        .await;
    assert!(
        rows.iter().all(|r| r.site == site
            && r.session_id == session_id
            && r.visitor_id == visitor_id
            && r.url == page_url),
        "{rows:#?}"
    );
    let kinds: Vec<_> = rows
        .iter()
        .map(|r| (r.kind.as_str(), r.name.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("page_view", None),
            ("custom", Some("npm_loaded")),
            ("custom", Some("after_ready"))
        ]
    );
    assert_eq!(
        rows[1].props,
        Some(serde_json::json!({"bundler": bundler, "nested": {"ok": true, "n": [1, 2]}}))
    );

    browser.close().await;
    collector.stop().await;
}

/// The main entry: tsc checks the app against the package's types, `vite
/// build` emits the `.wasm` as an asset, `dist/` is served.
#[tokio::test(flavor = "multi_thread")]
async fn a_vite_app_built_with_the_packed_package_sends_events() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let app = install_app("npm-app");
    run(app.path(), "node_modules/.bin/tsc", &["-p", "."]);
    run(
        app.path(),
        "node_modules/.bin/vite",
        &["build", "--logLevel", "warn"],
    );
    let dist = app.path().join("dist");
    assert!(
        has_wasm(&dist.join("assets")),
        "vite build emitted no .wasm asset"
    );
    check_app_sends_events(dist, "npm-app", "vite").await;
}

/// `waymark/bundler` (wasm-pack's `--target bundler` build) with webpack 5's
/// `experiments.asyncWebAssembly`: the import instantiates the wasm, so
/// `init` runs it at once. The app folder is served (`index.html` loads
/// `dist/main.js`).
#[tokio::test(flavor = "multi_thread")]
async fn a_webpack_app_built_with_the_bundler_subpath_sends_events() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let app = install_app("npm-webpack");
    run(app.path(), "node_modules/.bin/webpack", &[]);
    assert!(
        has_wasm(&app.path().join("dist")),
        "webpack emitted no .wasm asset"
    );
    check_app_sends_events(app.path().to_path_buf(), "npm-webpack", "webpack").await;
}
