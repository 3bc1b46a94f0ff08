//! `/admin/tokens`: admin tokens (role `admin` only). A created token is shown once;
//! listings never show secrets. Creations and deletions are audited (`token.create`,
//! `token.delete`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use riptide_persistence::tenant::AdminRole;
use serde::{Deserialize, Serialize};

use super::AdminCaller;
use super::input::Body;
use crate::admin::{AdminTokenInfo, CreatedAdminToken, audit};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Body of `POST /admin/tokens`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// A unique name (1 to 64 of `A-Z a-z 0-9 _ . @ -`); audit records name the actor
    /// `admin:<name>`.
    pub name: String,
    /// `admin`, `operator`, `billing` or `viewer`.
    pub role: String,
}

/// `POST /admin/tokens {name, role}` → 201 with the token (shown once).
pub async fn create_token(
    caller: AdminCaller,
    State(state): State<AppState>,
    Body(req): Body<CreateTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedAdminToken>)> {
    caller.require_admin()?;
    let role = AdminRole::parse(&req.role).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_role",
            format!(
                "unknown role {:?}: expected admin, operator, billing or viewer",
                req.role.chars().take(32).collect::<String>()
            ),
        )
    })?;
    let result = state
        .admin_tokens
        .create(&req.name, role, &caller.actor())
        .await;
    let resource = match &result {
        Ok(created) => created.info.token_id.clone(),
        Err(_) => String::new(),
    };
    audit::record(
        state.tenants.audit(),
        &caller.actor(),
        None,
        "token.create",
        &resource,
        &audit::outcome_of(&result),
        &[
            ("name", req.name.clone()),
            ("role", role.as_str().to_owned()),
        ],
    )
    .await;
    Ok((StatusCode::CREATED, Json(result?)))
}

/// Every admin token, without secrets.
#[derive(Debug, Serialize)]
pub struct TokenList {
    /// The configured token first (if any), then stored ones, oldest first.
    pub tokens: Vec<AdminTokenInfo>,
}

/// `GET /admin/tokens`.
pub async fn list_tokens(
    caller: AdminCaller,
    State(state): State<AppState>,
) -> ApiResult<Json<TokenList>> {
    caller.require_admin()?;
    Ok(Json(TokenList {
        tokens: state.admin_tokens.list().await?,
    }))
}

/// `DELETE /admin/tokens/{id}` → 204; the token stops working within
/// `tenant.record_cache_ttl_ms` on every instance (at once on this one).
pub async fn delete_token(
    caller: AdminCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let result = state.admin_tokens.delete(&id).await;
    let metadata = match &result {
        Ok(info) => vec![("name", info.name.clone())],
        Err(_) => Vec::new(),
    };
    audit::record(
        state.tenants.audit(),
        &caller.actor(),
        None,
        "token.delete",
        &id,
        &audit::outcome_of(&result),
        &metadata,
    )
    .await;
    result?;
    Ok(StatusCode::NO_CONTENT)
}
