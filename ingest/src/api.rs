//! The read API: sessions, one session's timeline, stats — behind the admin
//! token. Every time is epoch milliseconds.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::error::Error;
use crate::state::AppState;
use crate::store::{
    Cursor, EventCursor, Interval, SessionPage, SessionQuery, SessionReader, SessionWithEvents,
    Stats, StatsQuery, DEFAULT_EVENTS_PAGE, MAX_EVENTS_PAGE,
};

/// Sessions per page when `limit` is not given, and the most allowed (for
/// one session's events: [`DEFAULT_EVENTS_PAGE`], [`MAX_EVENTS_PAGE`]).
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 500;
/// `/v1/stats` without `from` covers this much before `to`.
const DEFAULT_STATS_RANGE_MS: u64 = 7 * 86_400_000;
/// Ranges up to this long are bucketed by hour, longer ones by day.
const HOURLY_UP_TO_MS: u64 = 2 * 86_400_000;
/// The longest `/v1/stats` range: about three years of daily buckets.
const MAX_STATS_RANGE_MS: u64 = 1100 * 86_400_000;

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
        .route("/v1/stats", get(get_stats))
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

/// Query parameters, each given at most once.
struct Params(HashMap<String, String>);

impl Params {
    fn parse(raw: Option<&str>, known: &[&str]) -> Result<Params, Error> {
        let mut map = HashMap::new();
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            if !known.contains(&key.as_ref()) {
                return Err(Error::InvalidQuery(format!(
                    "unknown parameter {key:?}; known: {}",
                    known.join(", ")
                )));
            }
            if map.insert(key.to_string(), value.into_owned()).is_some() {
                return Err(Error::InvalidQuery(format!("{key} is given twice")));
            }
        }
        Ok(Params(map))
    }

    fn text(&self, key: &str) -> Option<String> {
        self.0.get(key).filter(|v| !v.is_empty()).cloned()
    }

    /// A non-negative integer no larger than `i64::MAX`: every number the
    /// stores take is a signed 64-bit integer, so a larger one is the
    /// client's mistake (400), not the store's (503).
    fn number(&self, key: &str) -> Result<Option<u64>, Error> {
        self.text(key)
            .map(|v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| i64::try_from(*n).is_ok())
                    .ok_or_else(|| {
                        Error::InvalidQuery(format!(
                            "{key} must be a non-negative integer up to {}, got {v:?}",
                            i64::MAX
                        ))
                    })
            })
            .transpose()
    }

    /// `limit`: `default` when not given, else 1 to `max`.
    fn limit(&self, default: usize, max: usize) -> Result<usize, Error> {
        match self.number("limit") {
            Ok(None) => Ok(default),
            Ok(Some(n)) if (1..=max as u64).contains(&n) => Ok(usize::try_from(n).unwrap_or(max)),
            _ => Err(Error::InvalidQuery(format!("limit must be 1 to {max}"))),
        }
    }

    fn flag(&self, key: &str) -> Result<Option<bool>, Error> {
        match self.text(key).as_deref() {
            None => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(v) => Err(Error::InvalidQuery(format!(
                "{key} must be true or false, got {v:?}"
            ))),
        }
    }
}

fn check_range(from: Option<u64>, to: Option<u64>) -> Result<(), Error> {
    match (from, to) {
        (Some(from), Some(to)) if from >= to => Err(Error::InvalidQuery(
            "from must be before to (epoch milliseconds, to exclusive)".to_owned(),
        )),
        _ => Ok(()),
    }
}

/// `GET /v1/sessions?site=&from=&to=&visitor_id=&user_id=&is_bot=&limit=&cursor=`
async fn list_sessions(
    State(api): State<ReadApi>,
    RawQuery(raw): RawQuery,
) -> Result<Json<SessionPage>, Error> {
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
        ],
    )?;
    let (from, to) = (p.number("from")?, p.number("to")?);
    check_range(from, to)?;
    let limit = p.limit(DEFAULT_PAGE, MAX_PAGE)?;
    let cursor = p
        .text("cursor")
        .map(|c| {
            Cursor::decode(&c)
                .filter(|c| i64::try_from(c.started_at).is_ok())
                .ok_or_else(|| {
                    Error::InvalidQuery("cursor: pass back a next_cursor unchanged".to_owned())
                })
        })
        .transpose()?;
    let query = SessionQuery {
        site: p.text("site"),
        from,
        to,
        visitor_id: p.text("visitor_id"),
        user_id: p.text("user_id"),
        is_bot: p.flag("is_bot")?,
        limit,
        cursor,
    };
    Ok(Json(api.reader.sessions(query).await?))
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
    let p = Params::parse(raw.as_deref(), &["site", "limit", "cursor"])?;
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
    let session = api
        .reader
        .session(&site, &id)
        .await?
        .ok_or(Error::SessionNotFound)?;
    let page = api.reader.session_events(&site, &id, cursor, limit).await?;
    Ok(Json(SessionWithEvents {
        session,
        events: page.events,
        next_cursor: page.next_cursor,
    }))
}

/// `GET /v1/stats?site=&from=&to=&include_bots=`
async fn get_stats(
    State(api): State<ReadApi>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Stats>, Error> {
    let p = Params::parse(raw.as_deref(), &["site", "from", "to", "include_bots"])?;
    let to = match p.number("to")? {
        Some(to) => to,
        None => api.clock.now_ms(),
    };
    let from = match p.number("from")? {
        Some(from) => from,
        None => to.saturating_sub(DEFAULT_STATS_RANGE_MS),
    };
    check_range(Some(from), Some(to))?;
    if to - from > MAX_STATS_RANGE_MS {
        return Err(Error::InvalidQuery(
            "the range may span at most 1100 days".to_owned(),
        ));
    }
    let interval = if to - from <= HOURLY_UP_TO_MS {
        Interval::Hour
    } else {
        Interval::Day
    };
    let query = StatsQuery {
        site: p.text("site"),
        from,
        to,
        include_bots: p.flag("include_bots")?.unwrap_or(false),
        interval,
    };
    Ok(Json(api.reader.stats(query).await?))
}
