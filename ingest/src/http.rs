//! The HTTP surface: routes, handlers and the layers around them.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::services::ServeDir;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::api;
use crate::enrich::{enrich, RequestFacts};
use crate::error::Error;
use crate::metrics::reason_label;
use crate::sdk_files;
use crate::sites::SiteRefusal;
use crate::state::AppState;
use crate::wire::{DecodeError, Envelope, Rejection};

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

/// The collector's router: the batch endpoint (rate limit, gzip, body
/// limit), the read API and `/metrics` behind the admin token, the SDK and
/// the static site; CORS, request metrics, tracing and a timeout around all.
pub fn app(state: AppState) -> Router {
    // Any page may send events: sendBeacon's `text/plain` needs no
    // preflight, `fetch` with `application/json` does. Sites and origins are
    // checked per batch (WAYMARK_SITES), where the site is known; the read
    // API is authorised by a bearer token, never by cookies.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::CONTENT_ENCODING,
            header::AUTHORIZATION,
        ])
        // The loader checks that the wasm is the one it was built with by
        // its ETag, also from another origin.
        .expose_headers([header::ETAG])
        .max_age(Duration::from_secs(24 * 60 * 60));
    let static_files = Router::new()
        .fallback_service(ServeDir::new(&state.config().www_dir))
        .layer(middleware::from_fn(name_this_collector_in_demo_pages))
        .layer(middleware::from_fn(protect_own_pages))
        // Outermost, so what is compressed is the page as rewritten. The
        // SDK's files are compressed ahead of time instead (`sdk_files`).
        .layer(CompressionLayer::new().br(true).gzip(true));
    // Applies to the body as the handler reads it, after decompression: a
    // gzip bomb is cut off at the limit.
    let body_limit = DefaultBodyLimit::max(state.config().max_body_bytes);

    let batch = post(post_batch)
        .layer::<_, Infallible>(body_limit)
        .layer::<_, Infallible>(RequestDecompressionLayer::new().gzip(true))
        .layer::<_, Infallible>(middleware::from_fn_with_state(state.clone(), batch_gate));
    // The read API only with a store that reads sessions back; without
    // one its paths are not routes at all (404).
    // Erasure and export whatever the store (501 from one that cannot).
    let mut admin = Router::new()
        .route("/metrics", get(metrics_text))
        .merge(api::lifecycle::routes());
    if let Some(reader) = state.reader() {
        admin = admin.merge(api::routes(Arc::clone(reader), Arc::clone(state.clock())));
    }
    let admin = admin.route_layer(middleware::from_fn_with_state(
        state.clone(),
        api::require_admin,
    ));

    Router::new()
        .route("/v1/batch", batch)
        .route("/sdk.js", get(sdk_files::sdk_js))
        .route("/sdk.wasm", get(sdk_files::sdk_wasm))
        .route("/healthz", get(healthz))
        .merge(admin)
        .fallback_service(static_files)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(cors)
        .layer(middleware::map_response(no_sniffing))
        .layer(TraceLayer::new_for_http())
}

/// The dashboard's policy: its own script, style sheet and read API, nothing
/// else; no framing, no `<base>`, no form posts, no plugins.
pub const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The demo pages' policy. They carry the README's snippet verbatim (an
/// inline stub, inline `onclick`s, the SDK and its wasm from this
/// collector), so scripts are not restricted; framing, `<base>` and plugins
/// are.
pub const DEMO_PAGE_CSP: &str = "frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// The collector's own pages and files (everything `www/` serves): a
/// Content-Security-Policy (strict for `/dashboard/`, see [`DASHBOARD_CSP`];
/// [`DEMO_PAGE_CSP`] elsewhere) and a `Referrer-Policy` (`no-referrer` for the
/// dashboard). Not for `/sdk.js`, `/sdk.wasm` and `/v1/batch`, which other
/// sites' pages use.
async fn protect_own_pages(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let dashboard = path == "/dashboard" || path.starts_with("/dashboard/");
    let mut response = next.run(request).await;
    let (csp, referrer) = if dashboard {
        (DASHBOARD_CSP, "no-referrer")
    } else {
        (DEMO_PAGE_CSP, "strict-origin-when-cross-origin")
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static(referrer));
    response
}

/// `X-Content-Type-Options: nosniff` on every response: a browser takes each
/// for its declared type only (no script or style sniffed out of JSON or
/// text).
async fn no_sniffing(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The client's address: the socket peer, or with `trust_proxy = n` the
/// n-th entry from the right of `X-Forwarded-For` (each trusted proxy
/// appends the address it got the request from). Used for the rate limit
/// and the geo lookup only; never stored.
///
/// An entry is an IP address, optionally with a port (`198.51.100.7:4711`,
/// `[2001:db8::1]:443`). With fewer entries than `n` (no header at all: the
/// request did not come through the proxies) the peer is the client.
///
/// # Errors
///
/// [`Error::InvalidForwardedFor`] when the entry at the trusted position is
/// not an address. That entry was written by a proxy the collector trusts,
/// or the proxies are fewer than `n` and a client wrote it: either way the
/// collector cannot tell who the client is. Falling back to the peer (the
/// proxy) would put every such client in one rate-limit bucket; keying by
/// the raw text would let a client pick a fresh bucket per request. So the
/// batch is refused, saying what to fix, and counted
/// (`waymark_events_rejected_total{reason="invalid_forwarded_for"}`).
pub fn client_ip(request: &Request, trust_proxy: usize) -> Result<Option<IpAddr>, Error> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if trust_proxy == 0 {
        return Ok(peer);
    }
    let forwarded: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or_default())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    match forwarded
        .len()
        .checked_sub(trust_proxy)
        .and_then(|i| forwarded.get(i))
    {
        None => Ok(peer),
        Some(entry) => parse_forwarded_entry(entry)
            .map(Some)
            .ok_or(Error::InvalidForwardedFor),
    }
}

/// `ip` or `ip:port` (IPv6 with a port in brackets).
fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// Before a batch is read: the client address, the per-client rate limit,
/// the in-flight limit (its slot held until the batch is answered) and the
/// content encoding.
async fn batch_gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let ip = match client_ip(&request, state.config().trust_proxy) {
        Ok(ip) => ip,
        Err(err) => {
            state
                .metrics()
                .events_rejected
                .with_label_values(&[err.code()])
                .inc();
            return err.into_response();
        }
    };
    if let (Some(limit), Some(ip)) = (state.rate_limit(), ip) {
        if let Err(retry_after_secs) = limit.check(ip) {
            state.metrics().rate_limited.inc();
            return Error::RateLimited { retry_after_secs }.into_response();
        }
    }
    let Ok(_slot) = state.batch_slot() else {
        state
            .metrics()
            .batches_shed
            .with_label_values(&["in_flight"])
            .inc();
        return Error::Overloaded.into_response();
    };
    if let Some(encoding) = request.headers().get(header::CONTENT_ENCODING) {
        let encoding = encoding.to_str().unwrap_or_default().trim();
        if !(encoding.eq_ignore_ascii_case("gzip") || encoding.eq_ignore_ascii_case("identity")) {
            return Error::UnsupportedEncoding(encoding.to_owned()).into_response();
        }
    }
    next.run(request).await
}

/// Counts every request by route (the matched pattern, so ids do not make
/// new series) and status.
async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("static", |p| p.as_str())
        .to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = state.metrics();
    metrics
        .requests
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    metrics
        .request_duration
        .with_label_values(&[route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics().render(),
    )
        .into_response()
}

async fn post_batch(State(state): State<AppState>, request: Request) -> Response {
    match receive_batch(&state, request).await {
        Ok(accepted) => Json(accepted).into_response(),
        Err(err) => {
            let metrics = state.metrics();
            match &err {
                Error::Decode(DecodeError::AllEventsRejected(rejected)) => {
                    for r in rejected {
                        metrics
                            .events_rejected
                            .with_label_values(&[reason_label(&r.reason)])
                            .inc();
                    }
                }
                other => metrics
                    .events_rejected
                    .with_label_values(&[other.code()])
                    .inc(),
            }
            err.into_response()
        }
    }
}

async fn receive_batch(state: &AppState, request: Request) -> Result<BatchAccepted, Error> {
    // The media type first, so a wrong one is not read at all.
    check_content_type(request.headers())?;
    // Checked by `batch_gate` already: a bad entry never gets here.
    let ip = client_ip(&request, state.config().trust_proxy)
        .ok()
        .flatten();
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned);
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned);
    let body = Bytes::from_request(request, &())
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge {
                    limit: state.config().max_body_bytes,
                }
            } else {
                Error::Decode(DecodeError::InvalidJson(
                    "the body could not be read completely (or is not valid gzip)".to_owned(),
                ))
            }
        })?;

    let envelope = Envelope::parse(&body)?;
    state
        .config()
        .sites
        .check(&envelope.site, origin.as_deref())
        .map_err(|refusal| match refusal {
            SiteRefusal::UnknownSite => Error::UnknownSite(envelope.site.clone()),
            SiteRefusal::OriginNotAllowed => Error::OriginNotAllowed {
                site: envelope.site.clone(),
                origin: origin.clone().unwrap_or_default(),
            },
        })?;
    // The SDK forgets its `dropped` count once a batch is answered with
    // anything but a retry (5xx, 408, 429): count it then, and only then, so
    // a retried batch is not counted twice. A batch of only invalid events
    // is answered (400) and counts; a store failure (503) is retried.
    let dropped = envelope.dropped;
    let mut batch = envelope
        .validate_within(state.clock().now_ms(), state.config().time_bounds())
        .inspect_err(|_| state.metrics().events_dropped_by_client.inc_by(dropped))?;
    enrich(
        state.geo(),
        RequestFacts {
            ip,
            user_agent: user_agent.as_deref(),
        },
        &mut batch.events,
    );
    // Where each event to store was in the batch, for the store's
    // per-event refusals.
    let positions = valid_positions(&batch.rejected, batch.events.len());
    let outcome = state.store().append(batch.events).await?;
    let mut rejected = batch.rejected;
    if !outcome.session_full.is_empty() {
        let max = state.config().max_events_per_session;
        rejected.extend(
            outcome
                .session_full
                .iter()
                .filter_map(|i| positions.get(*i))
                .map(|index| Rejection {
                    index: *index,
                    reason: format!(
                        "session_full: the session already holds {max} events, the most one may"
                    ),
                }),
        );
        rejected.sort_by_key(|r| r.index);
    }

    let metrics = state.metrics();
    metrics.events_dropped_by_client.inc_by(batch.dropped);
    // Counted once the store has the events: a batch retried after a 503 is
    // not counted twice (a resent batch answered as duplicates is).
    metrics.urls_redacted.inc_by(batch.urls_redacted);
    metrics.events_accepted.inc_by(outcome.inserted as u64);
    metrics.events_duplicate.inc_by(outcome.duplicates as u64);
    for r in &rejected {
        metrics
            .events_rejected
            .with_label_values(&[reason_label(&r.reason)])
            .inc();
    }
    Ok(BatchAccepted {
        accepted: outcome.inserted,
        duplicates: outcome.duplicates,
        rejected,
    })
}

/// The batch positions of the `count` events that passed validation, in
/// order: every position but the `rejected` ones (ascending).
fn valid_positions(rejected: &[Rejection], count: usize) -> Vec<usize> {
    let mut skip = rejected.iter().map(|r| r.index).peekable();
    (0..)
        .filter(|i| skip.next_if_eq(i).is_none())
        .take(count)
        .collect()
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

/// `200 {"status":"ok"}`, or `503 {"status":"unavailable","reason":…}`
/// while the store cannot take events ([`EventSink::health`](crate::EventSink::health)).
async fn healthz(State(state): State<AppState>) -> Response {
    match state.store().health() {
        Ok(()) => Json(serde_json::json!({ "status": "ok" })).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "unavailable", "reason": reason })),
        )
            .into_response(),
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
