//! The collector's one error type and how each error looks to a client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::store::StoreError;
use crate::wire::{DecodeError, Rejection};

/// Everything that can go wrong in the collector.
///
/// As an HTTP response every error is a JSON body
/// `{"error": "<code>", "message": "<what to fix>"}` (plus `rejected` for
/// [`DecodeError::AllEventsRejected`]). Messages say what the client should change
/// and never carry internal details; those go to the log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The batch could not be decoded (the decoder's own error: not JSON,
    /// not a batch, no events, or no valid event).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The body is larger than [`Config::max_body_bytes`](crate::Config::max_body_bytes).
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The request's `Content-Type` is neither `text/plain` nor `application/json`.
    #[error("unsupported content type {0:?}")]
    UnsupportedMediaType(String),
    /// The request's `Content-Encoding` is neither `gzip` nor `identity`.
    #[error("unsupported content encoding {0:?}")]
    UnsupportedEncoding(String),
    /// `WAYMARK_SITES` does not list the batch's site.
    #[error("unknown site {0:?}")]
    UnknownSite(String),
    /// The site does not allow the page's origin.
    #[error("origin {origin:?} is not allowed for site {site:?}")]
    OriginNotAllowed { site: String, origin: String },
    /// Too many batches from one client (IPv4 address, IPv6 /64).
    #[error("rate limited; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// With [`Config::trust_proxy`](crate::Config::trust_proxy) set, the
    /// `X-Forwarded-For` entry the collector takes the client address from
    /// is not an IP address (the entry itself is neither shown nor logged).
    #[error("the trusted X-Forwarded-For entry is not an IP address")]
    InvalidForwardedFor,
    /// [`Config::max_batches_in_flight`](crate::Config::max_batches_in_flight)
    /// batches are being handled already.
    #[error("overloaded: too many batches in flight")]
    Overloaded,
    /// The read API's bearer token is missing or wrong.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// A read API query parameter is wrong.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// No session with that id.
    #[error("no such session")]
    SessionNotFound,
    /// No session of the visitor or user asked for.
    #[error("no such visitor or user")]
    ProfileNotFound,
    /// `sdk.js` or `sdk.wasm` has not been built into the SDK directory.
    #[error("{0} has not been built")]
    SdkNotBuilt(&'static str),
    /// The store could not take or give the events.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// An I/O error outside the store (binding, reading a file, ...).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// [`serve`](crate::serve) refuses the configuration (e.g. an admin
    /// token shorter than [`MIN_ADMIN_TOKEN_LEN`](crate::MIN_ADMIN_TOKEN_LEN)).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected: Option<&'a [Rejection]>,
}

impl Error {
    /// The stable machine-readable code in the `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Decode(DecodeError::InvalidJson(_)) => "invalid_json",
            Error::Decode(DecodeError::InvalidBatch(_)) => "invalid_batch",
            Error::Decode(DecodeError::EmptyBatch) => "empty_batch",
            Error::Decode(DecodeError::AllEventsRejected(_)) => "all_events_rejected",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::UnsupportedMediaType(_) => "unsupported_media_type",
            Error::UnsupportedEncoding(_) => "unsupported_encoding",
            Error::UnknownSite(_) => "unknown_site",
            Error::OriginNotAllowed { .. } => "origin_not_allowed",
            Error::RateLimited { .. } => "rate_limited",
            Error::InvalidForwardedFor => "invalid_forwarded_for",
            Error::Overloaded => "overloaded",
            Error::Unauthorized(_) => "unauthorized",
            Error::InvalidQuery(_) => "invalid_query",
            Error::SessionNotFound | Error::ProfileNotFound => "not_found",
            Error::SdkNotBuilt(_) => "sdk_not_built",
            Error::Store(StoreError::NotSupported(_)) => "not_implemented",
            Error::Store(_) => "store_unavailable",
            Error::Io(_) | Error::InvalidConfig(_) => "internal_error",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::Decode(_) | Error::InvalidQuery(_) | Error::InvalidForwardedFor => {
                StatusCode::BAD_REQUEST
            }
            Error::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::UnknownSite(_) | Error::OriginNotAllowed { .. } => StatusCode::FORBIDDEN,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::SessionNotFound => StatusCode::NOT_FOUND,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::SdkNotBuilt(_) | Error::ProfileNotFound => StatusCode::NOT_FOUND,
            Error::Store(StoreError::NotSupported(_)) => StatusCode::NOT_IMPLEMENTED,
            Error::Store(_) | Error::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Error::Io(_) | Error::InvalidConfig(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the client should do about it; safe to show to anyone.
    fn client_message(&self) -> String {
        match self {
            Error::Decode(DecodeError::InvalidJson(detail)) => {
                format!("the body must be JSON: {detail}")
            }
            Error::Decode(DecodeError::InvalidBatch(detail)) => {
                format!("the body must be a version 1 batch: {detail}")
            }
            Error::Decode(DecodeError::EmptyBatch) => {
                "`events` must hold at least one event".to_owned()
            }
            Error::Decode(DecodeError::AllEventsRejected(_)) => {
                "every event was invalid and none was stored; see `rejected` for why".to_owned()
            }
            Error::PayloadTooLarge { limit } => {
                format!("the body must be at most {limit} bytes; send fewer events per batch")
            }
            Error::UnsupportedMediaType(_) => {
                "send the batch as `text/plain` or `application/json`".to_owned()
            }
            Error::UnsupportedEncoding(_) => {
                "send the body uncompressed or with `Content-Encoding: gzip`".to_owned()
            }
            Error::UnknownSite(site) => format!(
                "site {site:?} is not one this collector takes events for (WAYMARK_SITES)"
            ),
            Error::OriginNotAllowed { site, origin } => format!(
                "pages on {origin} may not send events for site {site:?}; add the origin to WAYMARK_SITES"
            ),
            Error::RateLimited { retry_after_secs } => format!(
                "too many batches from this address; retry after {retry_after_secs} s"
            ),
            Error::InvalidForwardedFor => "the X-Forwarded-For entry this collector takes the client \
                address from (WAYMARK_TRUST_PROXY: the n-th from the right) is not an IP address; \
                the reverse proxy in front must append the address it received the request from"
                .to_owned(),
            Error::Overloaded => format!(
                "the collector is handling too many batches; retry after {OVERLOADED_RETRY_AFTER_SECS} s"
            ),
            Error::Unauthorized(why) => format!(
                "{why}; send `Authorization: Bearer <token>` with the WAYMARK_ADMIN_TOKEN"
            ),
            Error::InvalidQuery(detail) => detail.clone(),
            Error::SessionNotFound => "no session has that id".to_owned(),
            Error::ProfileNotFound => "no session of the range carries that id".to_owned(),
            Error::SdkNotBuilt(file) => {
                format!("{file} has not been built; run `cargo xtask build-sdk`")
            }
            Error::Store(StoreError::NotSupported(what)) => format!(
                "{what} are not supported by this store yet; the SQLite store serves them"
            ),
            Error::Store(_) => "the store is unavailable right now; retry later".to_owned(),
            Error::Io(_) | Error::InvalidConfig(_) => "internal error".to_owned(),
        }
    }
}

/// `Retry-After` of a 503 for a full spool.
const STORE_RETRY_AFTER_SECS: u64 = 30;
/// `Retry-After` of a 503 for too many batches in flight: a moment's load.
const OVERLOADED_RETRY_AFTER_SECS: u64 = 1;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        // Neither is a fault: shedding is counted in a metric (a log line
        // per shed batch would add to the load it sheds), and a store that
        // does not serve a question yet says so to every caller.
        if status.is_server_error()
            && !matches!(
                self,
                Error::Overloaded | Error::Store(StoreError::NotSupported(_))
            )
        {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, "request refused");
        }
        let rejected = match &self {
            Error::Decode(DecodeError::AllEventsRejected(rejected)) => Some(rejected.as_slice()),
            _ => None,
        };
        let body = ErrorBody {
            error: self.code(),
            message: self.client_message(),
            rejected,
        };
        let mut response = (status, Json(body)).into_response();
        let retry_after = match &self {
            Error::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            // The store is down or its spool is full: come back in a while.
            Error::Store(StoreError::Full) => Some(STORE_RETRY_AFTER_SECS),
            Error::Overloaded => Some(OVERLOADED_RETRY_AFTER_SECS),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        if let Error::Unauthorized(_) = self {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
