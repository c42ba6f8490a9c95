//! The read API — behind the admin token. Every time is epoch milliseconds.
//!
//! This module: the routes, the token check, the sessions and one
//! session's timeline; [`params`] the query parameters every read endpoint
//! shares; [`reports`] stats, breakdowns, timeseries, realtime and funnels;
//! [`profiles`] a visitor's and a user's profile. The questions and answers
//! themselves are [`crate::read`]'s, the same for every store.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use subtle::ConstantTimeEq;

use serde::Serialize;

use self::params::{Format, Params};
use crate::clock::Clock;
use crate::error::Error;
use crate::read::csv;
use crate::state::AppState;
use crate::store::{
    Cursor, EventCursor, SessionQuery, SessionReader, SessionWithEvents, DEFAULT_EVENTS_PAGE,
    MAX_EVENTS_PAGE,
};

pub mod lifecycle;
mod params;
mod profiles;
mod reports;

/// Sessions per page when `limit` is not given, and the most allowed (for
/// one session's events: [`DEFAULT_EVENTS_PAGE`], [`MAX_EVENTS_PAGE`]).
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 500;

/// What the read API's handlers share: the store's reader and the clock.
#[derive(Debug, Clone)]
struct ReadApi {
    reader: Arc<dyn SessionReader>,
    clock: Arc<dyn Clock>,
}

/// The read API's routes over `reader` (the caller puts them behind
/// [`require_admin`]).
pub fn routes<S>(reader: Arc<dyn SessionReader>, clock: Arc<dyn Clock>) -> Router<S> {
    Router::new()
        .route("/v1/sessions", get(list_sessions))
        .route("/v1/sessions/{id}", get(get_session))
        .route("/v1/stats", get(reports::stats))
        .route("/v1/breakdown", get(reports::breakdown))
        .route("/v1/timeseries", get(reports::timeseries))
        .route("/v1/realtime", get(reports::realtime))
        .route("/v1/funnel", get(reports::funnel))
        .route("/v1/visitors/{id}", get(profiles::visitor))
        .route("/v1/users/{id}", get(profiles::user))
        .with_state(ReadApi { reader, clock })
}

/// Lets a request through only with `Authorization: Bearer <admin token>`,
/// compared in constant time.
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state
        .config()
        .admin_token
        .as_deref()
        .filter(|t| !t.is_empty())
    else {
        return Error::Unauthorized("no admin token is configured").into_response();
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim())
        });
    match given {
        None => Error::Unauthorized("the bearer token is missing").into_response(),
        Some(token) if bool::from(token.as_bytes().ct_eq(expected.as_bytes())) => {
            next.run(request).await
        }
        Some(_) => Error::Unauthorized("the bearer token is wrong").into_response(),
    }
}

/// A table answer: `value` as JSON, or with `format=csv` its `rows` as CSV
/// with `columns` (a page's `next_cursor`, if any, in the
/// `Waymark-Next-Cursor` header).
fn table<T: Serialize>(
    format: Format,
    value: &impl Serialize,
    columns: &[&str],
    rows: &[T],
    next_cursor: Option<&str>,
) -> Result<Response, Error> {
    match format {
        Format::Json => Ok(Json(value).into_response()),
        Format::Csv => {
            let body = csv::table(columns, rows)?;
            let mut response =
                ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response();
            if let Some(cursor) = next_cursor.and_then(|c| c.parse().ok()) {
                response.headers_mut().insert("waymark-next-cursor", cursor);
            }
            Ok(response)
        }
    }
}

/// `cursor`, as a `next_cursor` of a list of sessions gave it.
fn session_cursor(p: &Params) -> Result<Option<Cursor>, Error> {
    p.text("cursor")
        .map(|c| {
            Cursor::decode(&c)
                .filter(|c| i64::try_from(c.started_at).is_ok())
                .ok_or_else(|| {
                    Error::InvalidQuery("cursor: pass back a next_cursor unchanged".to_owned())
                })
        })
        .transpose()
}

/// `GET /v1/sessions?site=&from=&to=&visitor_id=&user_id=&is_bot=&filter=&limit=&cursor=&format=`
async fn list_sessions(
    State(api): State<ReadApi>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Error> {
    let p = Params::parse(
        raw.as_deref(),
        &[
            "site",
            "from",
            "to",
            "visitor_id",
            "user_id",
            "is_bot",
            "limit",
            "cursor",
            "format",
        ],
        &["filter"],
    )?;
    let (from, to) = p.optional_range()?;
    let limit = p.limit(DEFAULT_PAGE, MAX_PAGE)?;
    let format = p.format()?;
    let query = SessionQuery {
        site: p.text("site"),
        from,
        to,
        visitor_id: p.text("visitor_id"),
        user_id: p.text("user_id"),
        is_bot: p.flag("is_bot")?,
        limit,
        cursor: session_cursor(&p)?,
        filters: p.filters()?,
    };
    let page = api.reader.sessions(query).await?;
    table(
        format,
        &page,
        csv::SESSIONS,
        &page.sessions,
        page.next_cursor.as_deref(),
    )
}

/// `GET /v1/sessions/{id}?site=&limit=&cursor=`: the site's session and one
/// page of its events by time, then `seq` (none first), then `event_id`.
/// Without `site`, the session of the one site that has one with this id;
/// an id more than one site uses needs `site` (400).
async fn get_session(
    State(api): State<ReadApi>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<SessionWithEvents>, Error> {
    let p = Params::parse(raw.as_deref(), &["site", "limit", "cursor"], &[])?;
    let limit = p.limit(DEFAULT_EVENTS_PAGE, MAX_EVENTS_PAGE)?;
    let cursor = p
        .text("cursor")
        .map(|c| {
            EventCursor::decode(&c).ok_or_else(|| {
                Error::InvalidQuery("cursor: pass back a next_cursor unchanged".to_owned())
            })
        })
        .transpose()?;
    let site = match p.text("site") {
        Some(site) => site,
        None => {
            let mut sites = api.reader.session_sites(&id, 2).await?;
            if sites.len() > 1 {
                return Err(Error::InvalidQuery(
                    "more than one site has a session with this id: pass site".to_owned(),
                ));
            }
            sites.pop().ok_or(Error::SessionNotFound)?
        }
    };
    // Side by side (on ClickHouse each is a round trip); the events'
    // answer counts only once the session is found.
    let (session, page) = tokio::join!(
        api.reader.session(&site, &id),
        api.reader.session_events(&site, &id, cursor, limit)
    );
    let session = session?.ok_or(Error::SessionNotFound)?;
    let page = page?;
    Ok(Json(SessionWithEvents {
        session,
        events: page.events,
        next_cursor: page.next_cursor,
    }))
}
