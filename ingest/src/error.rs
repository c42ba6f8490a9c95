//! The collector's one error type and how each error looks to a client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::store::StoreError;
use crate::wire::Rejection;

/// Everything that can go wrong in the collector.
///
/// As an HTTP response every error is a JSON body
/// `{"error": "<code>", "message": "<what to fix>"}` (plus `rejected` for
/// [`Error::AllEventsRejected`]). Messages say what the client should change
/// and never carry internal details; those go to the log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body is not JSON at all.
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    /// The body is JSON but not a version-1 batch.
    #[error("the body is not a valid batch: {0}")]
    InvalidBatch(String),
    /// The batch has no events.
    #[error("the batch has no events")]
    EmptyBatch,
    /// Every event in the batch failed validation; nothing was stored.
    #[error("every event in the batch was rejected")]
    AllEventsRejected(Vec<Rejection>),
    /// The body is larger than [`Config::max_body_bytes`](crate::Config::max_body_bytes).
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The request's `Content-Type` is neither `text/plain` nor `application/json`.
    #[error("unsupported content type {0:?}")]
    UnsupportedMediaType(String),
    /// `sdk.js` or `sdk.wasm` has not been built into the SDK directory.
    #[error("{0} has not been built")]
    SdkNotBuilt(&'static str),
    /// The store could not take or give the events.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// An I/O error outside the store (binding, reading a file, ...).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
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
            Error::InvalidJson(_) => "invalid_json",
            Error::InvalidBatch(_) => "invalid_batch",
            Error::EmptyBatch => "empty_batch",
            Error::AllEventsRejected(_) => "all_events_rejected",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::UnsupportedMediaType(_) => "unsupported_media_type",
            Error::SdkNotBuilt(_) => "sdk_not_built",
            Error::Store(_) => "store_unavailable",
            Error::Io(_) => "internal_error",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidJson(_)
            | Error::InvalidBatch(_)
            | Error::EmptyBatch
            | Error::AllEventsRejected(_) => StatusCode::BAD_REQUEST,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::SdkNotBuilt(_) => StatusCode::NOT_FOUND,
            Error::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the client should do about it; safe to show to anyone.
    fn client_message(&self) -> String {
        match self {
            Error::InvalidJson(detail) => format!("the body must be JSON: {detail}"),
            Error::InvalidBatch(detail) => format!("the body must be a version 1 batch: {detail}"),
            Error::EmptyBatch => "`events` must hold at least one event".to_owned(),
            Error::AllEventsRejected(_) => {
                "every event was invalid and none was stored; see `rejected` for why".to_owned()
            }
            Error::PayloadTooLarge { limit } => {
                format!("the body must be at most {limit} bytes; send fewer events per batch")
            }
            Error::UnsupportedMediaType(_) => {
                "send the batch as `text/plain` or `application/json`".to_owned()
            }
            Error::SdkNotBuilt(file) => {
                format!("{file} has not been built; run `cargo xtask build-sdk`")
            }
            Error::Store(_) => "events cannot be stored right now; retry later".to_owned(),
            Error::Io(_) => "internal error".to_owned(),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, "request refused");
        }
        let rejected = match &self {
            Error::AllEventsRejected(rejected) => Some(rejected.as_slice()),
            _ => None,
        };
        let body = ErrorBody {
            error: self.code(),
            message: self.client_message(),
            rejected,
        };
        (status, Json(body)).into_response()
    }
}
