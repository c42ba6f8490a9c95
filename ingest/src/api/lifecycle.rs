//! A person's data on request, behind the admin token: `DELETE
//! /v1/visitors/{visitor_id}` and `DELETE /v1/users/{user_id}` erase it,
//! `GET /v1/visitors/{visitor_id}/export` and `GET
//! /v1/users/{user_id}/export` hand it over as one JSON document. Mounted
//! whatever the store: one that cannot do it answers `501`.

use axum::extract::{Path, State};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use crate::error::Error;
use crate::event::StoredEvent;
use crate::read::{Person, ProfileQuery};
use crate::session::Session;
use crate::state::AppState;
use crate::store::{
    Erasure, EventCursor, SessionQuery, SessionReader, StoreError, MAX_EVENTS_PAGE,
};

/// Sessions read per page while exporting.
const EXPORT_PAGE: usize = 500;

/// The routes, on the app's state.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/visitors/{id}", delete(erase_visitor))
        .route("/v1/users/{id}", delete(erase_user))
        .route("/v1/visitors/{id}/export", get(export_visitor))
        .route("/v1/users/{id}/export", get(export_user))
}

/// The answer of an erasure.
#[derive(Debug, Serialize)]
struct Erased {
    #[serde(skip_serializing_if = "Option::is_none")]
    visitor_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    /// What was removed.
    erased: Erasure,
}

async fn erase_visitor(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Erased>, Error> {
    let erased = crate::lifecycle::erase(&state, Person::Visitor(id.clone())).await?;
    Ok(Json(Erased {
        visitor_id: Some(id),
        user_id: None,
        erased,
    }))
}

async fn erase_user(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Erased>, Error> {
    let erased = crate::lifecycle::erase(&state, Person::User(id.clone())).await?;
    Ok(Json(Erased {
        visitor_id: None,
        user_id: Some(id),
        erased,
    }))
}

/// One session and every one of its events, in the export.
#[derive(Debug, Serialize)]
struct ExportedSession {
    #[serde(flatten)]
    session: Session,
    /// Oldest first, with `props` and `context` as the JSON the SDK sent.
    events: Vec<Value>,
}

/// The document of an export.
#[derive(Debug, Serialize)]
struct Export {
    #[serde(skip_serializing_if = "Option::is_none")]
    visitor_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    /// When the export was made (epoch ms).
    exported_at: u64,
    /// The visitor ids the export covers (for a user, every one linked).
    visitor_ids: Vec<String>,
    /// The user ids the sessions carry.
    user_ids: Vec<String>,
    /// Every session of those visitors, newest first.
    sessions: Vec<ExportedSession>,
}

async fn export_visitor(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Export>, Error> {
    export(&state, Person::Visitor(id)).await.map(Json)
}

async fn export_user(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Export>, Error> {
    export(&state, Person::User(id)).await.map(Json)
}

/// Everything stored of the person: the sessions of its visitors (for a
/// user, of every visitor a session of the user's links to it) with all
/// their events; `404` when there is none.
async fn export(state: &AppState, person: Person) -> Result<Export, Error> {
    let reader = state
        .reader()
        .ok_or(Error::Store(StoreError::NotSupported("exports")))?;
    let totals = reader
        .profile_totals(ProfileQuery {
            person: person.clone(),
            site: None,
            from: None,
            to: None,
        })
        .await?
        .ok_or(Error::ProfileNotFound)?;
    let (visitor_id, user_id, visitor_ids) = match person {
        Person::Visitor(id) => (Some(id.clone()), None, vec![id]),
        Person::User(id) => (None, Some(id), totals.linked),
    };
    let mut sessions = Vec::new();
    for visitor in &visitor_ids {
        for session in all_sessions(reader.as_ref(), visitor).await? {
            let events = all_events(reader.as_ref(), &session).await?;
            sessions.push(ExportedSession { session, events });
        }
    }
    sessions.sort_by(|a, b| {
        (b.session.started_at, &b.session.session_id)
            .cmp(&(a.session.started_at, &a.session.session_id))
    });
    let mut user_ids: Vec<String> = sessions
        .iter()
        .filter_map(|s| s.session.user_id.clone())
        .collect();
    user_ids.sort_unstable();
    user_ids.dedup();
    Ok(Export {
        visitor_id,
        user_id,
        exported_at: state.clock().now_ms(),
        visitor_ids,
        user_ids,
        sessions,
    })
}

/// Every session of a visitor, a page at a time.
async fn all_sessions(
    reader: &dyn SessionReader,
    visitor: &str,
) -> Result<Vec<Session>, StoreError> {
    let mut sessions = Vec::new();
    let mut cursor = None;
    loop {
        let page = reader
            .sessions(SessionQuery {
                visitor_id: Some(visitor.to_owned()),
                limit: EXPORT_PAGE,
                cursor,
                ..SessionQuery::default()
            })
            .await?;
        sessions.extend(page.sessions);
        match page
            .next_cursor
            .as_deref()
            .and_then(crate::store::Cursor::decode)
        {
            Some(next) => cursor = Some(next),
            None => return Ok(sessions),
        }
    }
}

/// Every event of a session, oldest first, a page at a time.
async fn all_events(reader: &dyn SessionReader, session: &Session) -> Result<Vec<Value>, Error> {
    let mut events = Vec::new();
    let mut after = None;
    loop {
        let page = reader
            .session_events(&session.site, &session.session_id, after, MAX_EVENTS_PAGE)
            .await?;
        for event in &page.events {
            events.push(exported(event)?);
        }
        match page.next_cursor.as_deref().and_then(EventCursor::decode) {
            Some(next) => after = Some(next),
            None => return Ok(events),
        }
    }
}

/// An event as JSON, its `props` and `context` text parsed back into the
/// objects the SDK sent (kept as text if it is not JSON).
fn exported(event: &StoredEvent) -> Result<Value, Error> {
    let mut value =
        serde_json::to_value(event).map_err(|err| Error::Io(std::io::Error::other(err)))?;
    if let Some(object) = value.as_object_mut() {
        for field in ["props", "context"] {
            let parsed = object
                .get(field)
                .and_then(Value::as_str)
                .and_then(|text| serde_json::from_str::<Value>(text).ok());
            if let Some(parsed) = parsed {
                object.insert(field.to_owned(), parsed);
            }
        }
    }
    Ok(value)
}
