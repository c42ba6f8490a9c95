//! `GET /sdk.js` and `GET /sdk.wasm`: the built SDK, in the best encoding
//! the browser accepts.
//!
//! `cargo xtask build-sdk` writes a brotli (`.br`, quality 11) and a gzip
//! (`.gz`, level 9) copy beside each file; the collector only picks one.
//! Each encoding has its own strong `ETag` (the content hash of the
//! uncompressed file, with `-br` or `-gz` for a compressed copy), and every
//! answer says `Vary: Accept-Encoding`, so no cache hands one encoding to a
//! browser that asked for another.

use std::io;
use std::path::Path;
use std::time::SystemTime;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::Error;
use crate::state::AppState;

pub(crate) async fn sdk_js(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    sdk_file(
        &state,
        &headers,
        "sdk.js",
        "text/javascript; charset=utf-8",
        None,
    )
    .await
}

/// `/sdk.wasm?v=<hash>`: `sdk.js` names the wasm it was built with by its
/// content hash ([`content_hash`]), which makes that URL immutable.
pub(crate) async fn sdk_wasm(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let version = query.as_deref().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("v="))
            .map(str::to_owned)
    });
    sdk_file(&state, &headers, "sdk.wasm", "application/wasm", version).await
}

/// Cache lifetime of a content-addressed file: a year, never revalidated.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// A copy of a file in one content coding, as build-sdk names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Brotli,
    Gzip,
}

impl Coding {
    /// Best first: brotli is about 15 % smaller than gzip on the SDK.
    const PREFERRED: [Coding; 2] = [Coding::Brotli, Coding::Gzip];

    fn token(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The file's extension, and the suffix of its `ETag`.
    fn extension(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gz",
        }
    }
}

/// Whether `Accept-Encoding` takes `coding`: named (or `*`) with a quality
/// above zero. Names are case-insensitive; a named coding overrides `*`.
fn accepts(request: &HeaderMap, coding: Coding) -> bool {
    let mut named = None;
    let mut any = None;
    for entry in request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = entry.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let quality = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case(coding.token()) {
            named = Some(quality > 0.0);
        } else if name == "*" {
            any = Some(quality > 0.0);
        }
    }
    named.or(any).unwrap_or(false)
}

/// A file's bytes, or `None` when it does not exist.
async fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match tokio::fs::read(path).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(Error::Io(err)),
    }
}

async fn modified(path: &Path) -> Option<SystemTime> {
    tokio::fs::metadata(path).await.ok()?.modified().ok()
}

/// The best compressed copy of `plain` the browser accepts, if one was
/// built at the same time or after it (a copy older than its file is
/// stale, left over from another build, and never served).
async fn compressed_copy(
    plain: &Path,
    request: &HeaderMap,
) -> Result<Option<(Coding, Vec<u8>)>, Error> {
    let built = modified(plain).await;
    for coding in Coding::PREFERRED {
        if !accepts(request, coding) {
            continue;
        }
        let mut name = plain.as_os_str().to_owned();
        name.push(".");
        name.push(coding.extension());
        let path = Path::new(&name);
        if modified(path).await < built {
            continue;
        }
        if let Some(bytes) = read_if_present(path).await? {
            return Ok(Some((coding, bytes)));
        }
    }
    Ok(None)
}

/// A file of the built SDK, with a strong `ETag` per encoding and `304 Not
/// Modified` for a matching `If-None-Match`. `sdk.js` is the stable URL of
/// the snippet, so it is `no-cache`: browsers keep it and revalidate on every
/// load (a 304 without a body), and a new build is picked up at once. The
/// wasm it names by hash (`versioned`, when that is the current file) is
/// immutable; any other request for it is revalidated like `sdk.js`.
async fn sdk_file(
    state: &AppState,
    request: &HeaderMap,
    name: &'static str,
    content_type: &'static str,
    versioned: Option<String>,
) -> Result<Response, Error> {
    let path = state.config().sdk_dir.join(name);
    let Some(plain) = read_if_present(&path).await? else {
        return Err(Error::SdkNotBuilt(name));
    };
    let hash = content_hash(&plain);
    let cache = if versioned.as_deref() == Some(hash.as_str()) {
        IMMUTABLE
    } else {
        "no-cache"
    };
    let (coding, body) = match compressed_copy(&path, request).await? {
        Some((coding, bytes)) => (Some(coding), bytes),
        None => (None, plain),
    };
    let etag = match coding {
        Some(coding) => format!("\"{hash}-{}\"", coding.extension()),
        None => format!("\"{hash}\""),
    };
    let matches = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*");
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")),
    );
    if let Some(coding) = coding {
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(coding.token()),
        );
    }
    Ok(if matches {
        (StatusCode::NOT_MODIFIED, headers).into_response()
    } else {
        (headers, body).into_response()
    })
}

/// The content hash naming a build of the SDK: 64-bit FNV-1a as 16 hex
/// digits. `cargo xtask build-sdk` computes the same for the wasm URL it
/// writes into `sdk.js`. (A cache key, not a security measure: integrity is
/// SRI's job.)
fn content_hash(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}
