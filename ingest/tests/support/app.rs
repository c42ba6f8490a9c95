//! The collector's router in-process: `app()` driven through
//! `tower::ServiceExt::oneshot`, no socket, on a store and a clock the test
//! holds, with a temporary folder for whatever the test puts on disk (the
//! store's files, `www/`, `pkg/`).
//!
//! `http.rs` uses it on a memory store at a fixed time, `sessions.rs` on the
//! SQLite and ClickHouse stores with a clock it moves; each adds its own
//! constructors and helpers in an `impl TestApp` of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt;
use waymark_ingest::{app, AppState, Config, EventSink, ManualClock, MemoryStore, Store};

/// `app()` on `store`; `S` is the store's own type, so the test can look
/// inside it (`dyn Store` for a store chosen at run time that can be read).
pub struct TestApp<S: EventSink + ?Sized = dyn Store> {
    pub router: Router,
    pub state: AppState,
    pub store: Arc<S>,
    /// The app's clock: it stays where it was started unless the test moves it.
    pub clock: Arc<ManualClock>,
    dir: TempDir,
}

impl<S: EventSink + 'static> TestApp<S> {
    /// The app with `config` on `store`, its clock at `now_ms`; `dir` is kept
    /// (and removed) with it.
    pub fn on(store: Arc<S>, config: Config, now_ms: u64, dir: TempDir) -> Self {
        let shared: Arc<dyn EventSink> = store.clone();
        TestApp::assemble(store.clone(), shared, config, now_ms, dir)
    }
}

impl TestApp<MemoryStore> {
    /// A memory store at `now_ms` serving `www/` and `pkg/` from a temporary
    /// folder that holds `files`: each a path below that folder
    /// (`www/index.html`, `pkg/sdk.js`; its folders are made) and its bytes.
    pub fn serving(files: &[(&str, &[u8])], now_ms: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (path, bytes) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let config = Config {
            data_dir: dir.path().join("unused-data"),
            www_dir: dir.path().join("www"),
            sdk_dir: dir.path().join("pkg"),
            ..Config::default()
        };
        TestApp::on(Arc::new(MemoryStore::new()), config, now_ms, dir)
    }
}

impl TestApp {
    /// [`TestApp::on`] for a store chosen at run time.
    pub fn on_dyn(store: Arc<dyn Store>, config: Config, now_ms: u64, dir: TempDir) -> Self {
        let shared: Arc<dyn EventSink> = store.clone();
        TestApp::assemble(store, shared, config, now_ms, dir)
    }
}

impl<S: EventSink + ?Sized> TestApp<S> {
    fn assemble(
        store: Arc<S>,
        shared: Arc<dyn EventSink>,
        config: Config,
        now_ms: u64,
        dir: TempDir,
    ) -> Self {
        let clock = Arc::new(ManualClock::new(now_ms));
        let state = AppState::new(config, shared, clock.clone());
        TestApp {
            router: app(state.clone()),
            state,
            store,
            clock,
            dir,
        }
    }

    /// The temporary folder the app was given.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The app's answer to `request`, read whole.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            body: bytes.to_vec(),
        }
    }
}

/// One answer of the app.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics, showing the body, when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    /// Asserts an error response: status, code, and a message to act on.
    pub fn assert_error(&self, status: StatusCode, code: &str) -> Value {
        let body = self.json();
        assert_eq!(self.status, status, "{body}");
        assert_eq!(body["error"], code, "{body}");
        assert!(!body["message"].as_str().unwrap().is_empty(), "{body}");
        body
    }
}
