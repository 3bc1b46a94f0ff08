//! `POST /sessions`, `GET /sessions/{id}`, `DELETE /sessions/{id}`: a tenant's sessions,
//! the cookies and headers `/extract` sends with `session_id`.
//!
//! Sessions are looked up under the caller's tenant only: another tenant's session id
//! answers 404 exactly like an unknown one, so its existence is never revealed.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::Path;
use axum::extract::State;
use axum::extract::rejection::PathRejection;
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use riptide_persistence::state::sessions::{
    MAX_SESSION_TTL, Session, SessionCookie, SessionError, SessionInit, validate_session_id,
};
use serde::{Deserialize, Serialize};

use super::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::tenant_context::TenantContext;

/// Body of `POST /sessions`; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CreateSession {
    /// Lifetime in seconds, 1 to 30 days; default `persistence.state.session_ttl_seconds`.
    pub ttl_seconds: Option<u64>,
    /// Cookies sent with fetches (each only to its `domain` and `path`, when given).
    pub cookies: Vec<SessionCookie>,
    /// Headers sent with fetches, by name.
    pub headers: BTreeMap<String, String>,
}

/// Answer of `POST /sessions`.
#[derive(Debug, Serialize)]
pub struct Created {
    /// The new session's id, for `/extract` and `/sessions/{id}`.
    pub session_id: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// A session as `GET /sessions/{id}` shows it to its tenant.
#[derive(Debug, Serialize)]
pub struct SessionView {
    /// The id.
    pub session_id: String,
    /// Cookies, in the order given.
    pub cookies: Vec<SessionCookie>,
    /// Headers by lower-case name.
    pub headers: BTreeMap<String, String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

impl From<Session> for SessionView {
    fn from(s: Session) -> Self {
        Self {
            session_id: s.id,
            cookies: s.cookies,
            headers: s.headers,
            created_at: s.created_at,
            updated_at: s.updated_at,
            expires_at: s.expires_at,
        }
    }
}

/// `POST /sessions`: 201 `{session_id, expires_at}` with `Location: /sessions/{id}`.
pub async fn post_session(
    State(state): State<AppState>,
    ctx: TenantContext,
    JsonBody(body): JsonBody<CreateSession>,
) -> ApiResult<Response> {
    let ttl = body.ttl_seconds.map(session_ttl).transpose()?;
    let init = SessionInit {
        cookies: body.cookies,
        headers: body.headers,
        ttl,
    };
    let session = state
        .state_manager
        .sessions()
        .create(&ctx.tenant_id, init)
        .await
        .map_err(session_error)?;
    let location = HeaderValue::try_from(format!("/sessions/{}", session.id))
        .map_err(|_| ApiError::Internal)?;
    let created = Created {
        session_id: session.id,
        expires_at: session.expires_at,
    };
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(created)).into_response())
}

/// `GET /sessions/{id}`: the session, or 404.
pub async fn get_session(
    State(state): State<AppState>,
    ctx: TenantContext,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<SessionView>> {
    let id = session_id(id)?;
    let session = find(&state, &ctx, &id).await?;
    Ok(Json(session.into()))
}

/// `DELETE /sessions/{id}`: 204, or 404 when there is no such live session.
pub async fn delete_session(
    State(state): State<AppState>,
    ctx: TenantContext,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let id = session_id(id)?;
    let ended = state
        .state_manager
        .sessions()
        .terminate(&ctx.tenant_id, &id)
        .await
        .map_err(session_error)?;
    if ended {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::missing("session", id))
    }
}

/// The live session `id` of the caller's tenant, or 404 `not_found`.
pub async fn find(state: &AppState, ctx: &TenantContext, id: &str) -> ApiResult<Session> {
    validate_session_id(id).map_err(session_error)?;
    state
        .state_manager
        .sessions()
        .get(&ctx.tenant_id, id)
        .await
        .map_err(session_error)?
        .ok_or_else(|| ApiError::missing("session", id))
}

fn session_id(path: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    let Path(id) = path.map_err(|e| ApiError::bad_request("invalid_session_id", e.body_text()))?;
    validate_session_id(&id).map_err(session_error)?;
    Ok(id)
}

/// `ttl_seconds` of a session: 1 s to 30 days.
fn session_ttl(secs: u64) -> ApiResult<Duration> {
    if secs == 0 || secs > MAX_SESSION_TTL.as_secs() {
        return Err(ApiError::bad_request(
            "invalid_ttl",
            format!(
                "ttl_seconds must be between 1 and {}",
                MAX_SESSION_TTL.as_secs()
            ),
        ));
    }
    Ok(Duration::from_secs(secs))
}

/// A session-layer failure as the HTTP answer.
pub fn session_error(e: SessionError) -> ApiError {
    match e {
        SessionError::Invalid { field, .. } => {
            let code = match field {
                "session_id" => "invalid_session_id",
                "cookies" => "invalid_cookies",
                "headers" => "invalid_headers",
                "ttl" => "invalid_ttl",
                _ => "invalid_input",
            };
            ApiError::bad_request(code, e.to_string())
        }
        SessionError::NotFound => ApiError::missing("session", ""),
        SessionError::QuotaExceeded(tenant) | SessionError::Tenant(tenant) => tenant.into(),
        SessionError::TooManySessions { limit, .. } => ApiError::QuotaExceeded {
            resource: "sessions".to_owned(),
            limit,
            current: limit,
            retry_after_secs: None,
        },
        SessionError::Store(store) => store.into(),
        SessionError::Conflict => ApiError::Conflict {
            code: "conflict",
            message: e.to_string(),
        },
        SessionError::Io { .. } | SessionError::Crypto(_) | SessionError::Corrupt { .. } => {
            tracing::error!(error = %e, "session layer failure");
            ApiError::Internal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_bounds() {
        assert!(session_ttl(0).is_err());
        assert!(session_ttl(1).is_ok());
        assert!(session_ttl(30 * 86_400).is_ok());
        assert_eq!(
            session_ttl(30 * 86_400 + 1).unwrap_err().code(),
            "invalid_ttl"
        );
    }

    #[test]
    fn session_errors_map_to_statuses() {
        let bad = session_error(validate_session_id("x").unwrap_err());
        assert_eq!(
            (bad.status().as_u16(), bad.code()),
            (400, "invalid_session_id")
        );
        let many = session_error(SessionError::TooManySessions {
            tenant: "acme".into(),
            limit: 3,
        });
        assert_eq!(many.status().as_u16(), 429);
        assert_eq!(session_error(SessionError::Conflict).status().as_u16(), 409);
    }
}
