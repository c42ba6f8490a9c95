//! The npm package as a user gets it: `npm pack` of the package that
//! `cargo xtask build-npm` assembles, installed into the small Vite app in
//! `tests/npm-app/` (with vite 7 and TypeScript), type-checked, built with
//! `vite build`, served from another origin and opened in headless Chromium.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
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

/// Packs the package, installs it into a copy of `tests/npm-app/`, checks its
/// types and builds it; returns the app folder (its build is in `dist/`).
fn build_app() -> tempfile::TempDir {
    let package = target_dir().join("npm/waymark");
    for file in [
        "package.json",
        "index.js",
        "index.d.ts",
        "web/waymark_sdk_bg.wasm",
    ] {
        assert!(
            package.join(file).is_file(),
            "the npm package is not built ({} is missing): {BUILD_HINT}",
            package.join(file).display()
        );
    }
    let app = tempfile::TempDir::new().expect("temp dir");
    let source = root().join("tests/npm-app");
    for entry in std::fs::read_dir(&source).expect("tests/npm-app") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, app.path().join(path.file_name().unwrap())).expect("copy app file");
    }
    let packed = run(
        &package,
        "npm",
        &[
            "pack",
            "--silent",
            "--pack-destination",
            app.path().to_str().unwrap(),
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
        app.path(),
        "npm",
        &[
            "install",
            "--no-audit",
            "--no-fund",
            "--prefer-offline",
            &tarball,
        ],
    );
    run(app.path(), "node_modules/.bin/tsc", &["-p", "."]);
    run(
        app.path(),
        "node_modules/.bin/vite",
        &["build", "--logLevel", "warn"],
    );
    app
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vite_app_built_with_the_packed_package_sends_events() {
    let app = build_app();
    let dist = app.path().join("dist");
    assert!(
        std::fs::read_dir(dist.join("assets"))
            .expect("vite wrote dist/assets")
            .any(|e| e.unwrap().path().extension().is_some_and(|x| x == "wasm")),
        "vite build emitted no .wasm asset"
    );
    let collector = Collector::start().await;
    let site = serve_dir(dist).await;
    let browser = Browser::start().await;
    let page_url = format!("http://{site}/?endpoint={}", collector.url(""));
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
        rows.iter().all(|r| r.site == "npm-app"
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
        Some(serde_json::json!({"bundler": "vite", "nested": {"ok": true, "n": [1, 2]}}))
    );

    browser.close().await;
    collector.stop().await;
}
