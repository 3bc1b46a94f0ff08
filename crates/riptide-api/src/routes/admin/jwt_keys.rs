//! `/admin/tenants/{id}/jwt-keys`: a tenant's JWT verification keys — list (never an
//! HS256 secret), create (an HS256 secret is in that response only; EdDSA and RS256 take
//! the caller's public key), revoke. Through the tenant layer's `*_by(actor, ...)`
//! calls, which audit them; a revocation reaches the other instances within
//! `tenant.record_cache_ttl_ms`. Rotation is create, switch the issuer, revoke: both
//! keys verify in between.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use riptide_persistence::tenant::AdminAction;
use riptide_persistence::tenant::jwt_keys::{JwtAlgorithm, JwtKeyInfo};
use serde::{Deserialize, Serialize};

use super::AdminCaller;
use super::input::{Body, tenant_id};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A tenant's JWT verification keys.
#[derive(Debug, Serialize)]
pub struct JwtKeyList {
    /// The tenant.
    pub tenant_id: String,
    /// Its keys, oldest first, revoked ones included.
    pub keys: Vec<JwtKeyInfo>,
}

/// A new verification key; an HS256 `secret` is shown only here.
#[derive(Debug, Serialize)]
pub struct CreatedJwtKeyReply {
    /// The tenant (the value of the tokens' `tenant` claim).
    pub tenant_id: String,
    /// The id to put in the tokens' `kid` header.
    pub kid: String,
    /// The algorithm tokens must be signed with.
    pub algorithm: JwtAlgorithm,
    /// HS256: the secret to sign with, used as is. Absent for public keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Body of `POST /admin/tenants/{id}/jwt-keys`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateJwtKeyRequest {
    /// `HS256`, `EdDSA` or `RS256`.
    pub algorithm: JwtAlgorithm,
    /// EdDSA and RS256: the public key in PEM (required); HS256: absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_pem: Option<String>,
    /// A label for listings (at most 200 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A kid from a path: 12 characters of lower-case base32, else 400.
fn kid(raw: &str) -> ApiResult<&str> {
    let ok = raw.len() == 12
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
    if ok {
        Ok(raw)
    } else {
        Err(ApiError::bad_request(
            "invalid_key_id",
            "a kid is 12 characters of a-z and 2-7",
        ))
    }
}

/// `GET /admin/tenants/{id}/jwt-keys`.
pub async fn list_jwt_keys(
    caller: AdminCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<JwtKeyList>> {
    caller.require(AdminAction::ReadTenants)?;
    let id = tenant_id(&id)?;
    let keys = state.tenants.list_jwt_keys(&id).await?;
    Ok(Json(JwtKeyList {
        tenant_id: id.to_string(),
        keys,
    }))
}

/// `POST /admin/tenants/{id}/jwt-keys {algorithm, public_key_pem?, name?}` → 201.
pub async fn create_jwt_key(
    caller: AdminCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(req): Body<CreateJwtKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedJwtKeyReply>)> {
    caller.require(AdminAction::WriteTenants)?;
    let id = tenant_id(&id)?;
    let key = state
        .tenants
        .create_jwt_key_by(
            &caller.actor(),
            &id,
            req.algorithm,
            req.public_key_pem.as_deref(),
            req.name.as_deref(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedJwtKeyReply {
            tenant_id: id.to_string(),
            kid: key.kid,
            algorithm: key.algorithm,
            secret: key.secret,
            created_at: key.created_at,
        }),
    ))
}

/// `DELETE /admin/tenants/{id}/jwt-keys/{kid}` → 204.
pub async fn revoke_jwt_key(
    caller: AdminCaller,
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(AdminAction::WriteTenants)?;
    let id = tenant_id(&id)?;
    let key = kid(&key)?;
    state
        .tenants
        .revoke_jwt_key_by(&caller.actor(), &id, key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kids_are_validated() {
        assert!(kid("abcdefgh2345").is_ok());
        for bad in ["", "abc", "ABCDEFGH2345", "abcdefgh2341", "abcdefgh23456"] {
            assert_eq!(kid(bad).unwrap_err().code(), "invalid_key_id", "{bad}");
        }
    }
}
