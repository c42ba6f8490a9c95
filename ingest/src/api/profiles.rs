//! `GET /v1/visitors/{visitor_id}` and `GET /v1/users/{user_id}`: a person's
//! profile — first and last seen, totals, the ids linked to it, and its
//! sessions newest first, a page at a time.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;

use super::params::Params;
use super::{session_cursor, table, ReadApi, DEFAULT_PAGE, MAX_PAGE};
use crate::error::Error;
use crate::read::{csv, Person, Profile, ProfileQuery};
use crate::store::SessionQuery;

/// `GET /v1/visitors/{visitor_id}?site=&from=&to=&limit=&cursor=&format=`
pub(super) async fn visitor(
    State(api): State<ReadApi>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Error> {
    profile(&api, Person::Visitor(id), raw.as_deref()).await
}

/// `GET /v1/users/{user_id}?site=&from=&to=&limit=&cursor=&format=`
pub(super) async fn user(
    State(api): State<ReadApi>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Error> {
    profile(&api, Person::User(id), raw.as_deref()).await
}

/// The profile over the person's sessions of `site` (every site without
/// it) started in `[from, to)` (all time without them), bots included: a
/// profile is one person's, whatever their browser looked like.
async fn profile(api: &ReadApi, person: Person, raw: Option<&str>) -> Result<Response, Error> {
    let p = Params::parse(
        raw,
        &["site", "from", "to", "limit", "cursor", "format"],
        &[],
    )?;
    let (from, to) = p.optional_range()?;
    let limit = p.limit(DEFAULT_PAGE, MAX_PAGE)?;
    let format = p.format()?;
    let cursor = session_cursor(&p)?;
    let site = p.text("site");
    let (visitor_id, user_id) = match &person {
        Person::Visitor(id) => (Some(id.clone()), None),
        Person::User(id) => (None, Some(id.clone())),
    };
    let totals = api
        .reader
        .profile_totals(ProfileQuery {
            person: person.clone(),
            site: site.clone(),
            from,
            to,
        })
        .await?
        .ok_or(Error::ProfileNotFound)?;
    let page = api
        .reader
        .sessions(SessionQuery {
            site: site.clone(),
            from,
            to,
            visitor_id: visitor_id.clone(),
            user_id: user_id.clone(),
            is_bot: None,
            limit,
            cursor,
            filters: Vec::new(),
        })
        .await?;
    let (user_ids, visitor_ids) = match person {
        Person::Visitor(_) => (Some(totals.linked), None),
        Person::User(_) => (None, Some(totals.linked)),
    };
    let answer = Profile {
        visitor_id,
        user_id,
        site,
        first_seen: totals.first_seen,
        last_seen: totals.last_seen,
        visits: totals.visits,
        page_views: totals.page_views,
        events: totals.events,
        duration_ms: totals.duration_ms,
        user_ids,
        visitor_ids,
        sessions: page.sessions,
        next_cursor: page.next_cursor,
    };
    table(
        format,
        &answer,
        csv::SESSIONS,
        &answer.sessions,
        answer.next_cursor.as_deref(),
    )
}
