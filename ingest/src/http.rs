//! The HTTP surface: routes, handlers and the layers around them.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tower_http::cors::{Any, CorsLayer};
use tower_http::services::ServeDir;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::clock::Clock;
use crate::config::Config;
use crate::error::Error;
use crate::store::Store;
use crate::wire::{decode_batch, Rejection};

/// What every handler shares: the configuration, the store and the clock.
#[derive(Debug, Clone)]
pub struct AppState {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl AppState {
    /// Tests pass a [`MemoryStore`](crate::MemoryStore) and a
    /// [`FixedClock`](crate::FixedClock); [`serve`](crate::serve) passes the
    /// SQLite store and the system clock.
    pub fn new(config: Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        AppState {
            config: Arc::new(config),
            store,
            clock,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

/// The `200 OK` answer to `POST /v1/batch`, sent once the events are stored.
///
/// `accepted + duplicates + rejected.len()` is the number of events sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAccepted {
    /// Valid events stored for the first time.
    pub accepted: usize,
    /// Valid events whose `event_id` was already stored (a retry); the
    /// stored copy is kept. The client should treat them as delivered.
    pub duplicates: usize,
    /// Invalid events, not stored; retrying them will not help.
    pub rejected: Vec<Rejection>,
}

/// How long one request may take before it is answered `408`, so a stalled
/// client cannot hold up graceful shutdown for ever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The collector's router, with CORS, tracing, a request timeout and the
/// batch body limit.
pub fn app(state: AppState) -> Router {
    // Any page may send events: sendBeacon's `text/plain` needs no
    // preflight, `fetch` with `application/json` does.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(Duration::from_secs(24 * 60 * 60));
    let static_files = Router::new()
        .fallback_service(ServeDir::new(&state.config.www_dir))
        .layer(middleware::from_fn(name_this_collector_in_demo_pages));
    let body_limit = DefaultBodyLimit::max(state.config.max_body_bytes);

    Router::new()
        .route("/v1/batch", post(post_batch).layer(body_limit))
        .route("/sdk.js", get(sdk_js))
        .route("/sdk.wasm", get(sdk_wasm))
        .route("/healthz", get(healthz))
        .fallback_service(static_files)
        .with_state(state)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(cors)
        .layer(TraceLayer::new_for_http())
}

async fn post_batch(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<BatchAccepted>, Error> {
    // The media type first, so a wrong one is not read at all.
    check_content_type(request.headers())?;
    let body = Bytes::from_request(request, &())
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge {
                    limit: state.config.max_body_bytes,
                }
            } else {
                Error::InvalidJson("the body could not be read completely".to_owned())
            }
        })?;

    let batch = decode_batch(&body, state.clock.now_ms())?;
    let outcome = state.store.append(batch.events).await?;
    Ok(Json(BatchAccepted {
        accepted: outcome.inserted,
        duplicates: outcome.duplicates,
        rejected: batch.rejected,
    }))
}

/// `text/plain` (what `sendBeacon` sends for a string) and `application/json`
/// are accepted, with any parameters; no `Content-Type` counts as text.
fn check_content_type(headers: &HeaderMap) -> Result<(), Error> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or_default();
    let essence = text.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("text/plain")
        || essence.eq_ignore_ascii_case("application/json")
    {
        Ok(())
    } else {
        Err(Error::UnsupportedMediaType(text.to_owned()))
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn sdk_js(State(state): State<AppState>) -> Result<Response, Error> {
    sdk_file(&state, "sdk.js", "text/javascript; charset=utf-8").await
}

async fn sdk_wasm(State(state): State<AppState>) -> Result<Response, Error> {
    sdk_file(&state, "sdk.wasm", "application/wasm").await
}

/// A file of the built SDK. `no-cache` (revalidate every time) until the
/// files carry a version in their name.
async fn sdk_file(
    state: &AppState,
    name: &'static str,
    content_type: &'static str,
) -> Result<Response, Error> {
    match tokio::fs::read(state.config.sdk_dir.join(name)).await {
        Ok(bytes) => Ok((
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            bytes,
        )
            .into_response()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Err(Error::SdkNotBuilt(name)),
        Err(err) => Err(Error::Io(err)),
    }
}

/// The collector the demo pages name in their script tag.
const DEMO_COLLECTOR: &str = "http://127.0.0.1:8080";
/// Demo pages are small; anything bigger is served untouched.
const MAX_REWRITTEN_PAGE: usize = 1 << 20;

/// The demo pages carry the README's snippet verbatim, naming the collector
/// at `http://127.0.0.1:8080`. When this collector answers on another address
/// (`WAYMARK_ADDR`, a test on a free port), the HTML it serves names it
/// instead, so the demo works wherever it runs.
async fn name_this_collector_in_demo_pages(request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(|h| format!("http://{h}"));
    let response = next.run(request).await;
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .is_some_and(|c| c.starts_with("text/html"));
    let Some(origin) = host.filter(|h| is_html && h != DEMO_COLLECTOR) else {
        return response;
    };
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_REWRITTEN_PAGE).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let page = String::from_utf8_lossy(&bytes).replace(DEMO_COLLECTOR, &origin);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(page))
}
