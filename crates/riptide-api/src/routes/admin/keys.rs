//! `/admin/tenants/{id}/keys`: a tenant's API keys — list (never secrets), create and
//! rotate (the secret is in that response only), revoke. Through the tenant layer's
//! `*_by(actor, ...)` calls, which audit them; a revocation reaches the other instances
//! within `tenant.record_cache_ttl_ms`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use riptide_persistence::tenant::AdminAction;
use riptide_persistence::tenant::api_keys::{ApiKeyInfo, CreatedApiKey, KEY_ID_LEN};
use serde::{Deserialize, Serialize};

use super::AdminCaller;
use super::input::{OptionalBody, tenant_id};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A tenant's keys.
#[derive(Debug, Serialize)]
pub struct KeyList {
    /// The tenant.
    pub tenant_id: String,
    /// Its keys, oldest first, revoked and expired ones included.
    pub keys: Vec<ApiKeyInfo>,
}

/// A new key; `secret` is shown only here.
#[derive(Debug, Serialize)]
pub struct CreatedKey {
    /// The tenant.
    pub tenant_id: String,
    /// The key's id.
    pub key_id: String,
    /// The full key, to send as `Authorization: Bearer <secret>` with `X-Tenant-ID`.
    pub secret: String,
    /// The recognisable start of the key, as listings show it.
    pub display_prefix: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// After a rotation: the key it replaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

impl CreatedKey {
    fn of(tenant_id: &str, key: CreatedApiKey, replaces: Option<String>) -> Self {
        Self {
            tenant_id: tenant_id.to_owned(),
            key_id: key.key_id,
            secret: key.secret,
            display_prefix: key.display_prefix,
            created_at: key.created_at,
            replaces,
        }
    }
}

/// Body of `POST /admin/tenants/{id}/keys` (may be empty).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// A label for listings (at most 200 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A key id from a path: [`KEY_ID_LEN`] characters of lower-case base32, else 400.
fn key_id(raw: &str) -> ApiResult<&str> {
    let ok = raw.len() == KEY_ID_LEN
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
    if ok {
        Ok(raw)
    } else {
        Err(ApiError::bad_request(
            "invalid_key_id",
            format!("a key id is {KEY_ID_LEN} characters of a-z and 2-7"),
        ))
    }
}

/// `GET /admin/tenants/{id}/keys`.
pub async fn list_keys(
    caller: AdminCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyList>> {
    caller.require(AdminAction::ReadTenants)?;
    let id = tenant_id(&id)?;
    let keys = state.tenants.list_api_keys(&id).await?;
    Ok(Json(KeyList {
        tenant_id: id.to_string(),
        keys,
    }))
}

/// `POST /admin/tenants/{id}/keys {name?}` → 201 with the secret.
pub async fn create_key(
    caller: AdminCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalBody(req): OptionalBody<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    caller.require(AdminAction::WriteTenants)?;
    let id = tenant_id(&id)?;
    let key = state
        .tenants
        .create_api_key_by(&caller.actor(), &id, req.name.as_deref())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey::of(id.as_str(), key, None)),
    ))
}

/// `DELETE /admin/tenants/{id}/keys/{key_id}` → 204.
pub async fn revoke_key(
    caller: AdminCaller,
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(AdminAction::WriteTenants)?;
    let id = tenant_id(&id)?;
    let key = key_id(&key)?;
    state
        .tenants
        .revoke_api_key_by(&caller.actor(), &id, key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /admin/tenants/{id}/keys/{key_id}/rotate` → 201 with the new key; the old one
/// keeps working for `tenant.api_key_rotation_overlap_seconds`.
pub async fn rotate_key(
    caller: AdminCaller,
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    caller.require(AdminAction::WriteTenants)?;
    let id = tenant_id(&id)?;
    let old = key_id(&key)?;
    let new = state
        .tenants
        .rotate_api_key_by(&caller.actor(), &id, old)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey::of(id.as_str(), new, Some(old.to_owned()))),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_are_validated() {
        assert!(key_id("abcdefgh2345").is_ok());
        for bad in ["", "abc", "ABCDEFGH2345", "abcdefgh2341", "abcdefgh23456"] {
            assert_eq!(key_id(bad).unwrap_err().code(), "invalid_key_id", "{bad}");
        }
    }
}
