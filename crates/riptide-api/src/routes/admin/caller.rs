//! [`AdminCaller`]: the extractor every admin route takes. It authenticates the admin
//! token of `Authorization: Bearer <token>` and gives the handler who is calling and
//! with which role; the handler then checks its [`AdminAction`] with
//! [`AdminCaller::require`].
//!
//! A client address over its limit of failed authentications is refused first (429
//! `too_many_auth_failures`), without its token being hashed or looked up; a token that
//! identifies nobody counts as one failure of its address ([`crate::auth_failures`]).
//!
//! A request that may change something (any method but GET, HEAD, OPTIONS, TRACE) is
//! refused with 503 `audit_unavailable` before its handler runs when the audit log
//! cannot take its record (head lost or rolled back): no admin change goes unaudited.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use riptide_persistence::tenant::{AdminAction, AdminRole};

use crate::auth_failures::{Credential, client_ip};
use crate::error::ApiError;
use crate::state::AppState;

/// An authenticated admin: the token's id and name, and its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminCaller {
    /// The token's id (`env` for the configured token).
    pub token_id: String,
    /// The token's name.
    pub name: String,
    /// What it may do.
    pub role: AdminRole,
}

impl AdminCaller {
    /// `Ok` when the caller's role allows `action`; otherwise 403 `insufficient_role`.
    pub fn require(&self, action: AdminAction) -> Result<(), ApiError> {
        if self.role.allows(action) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "insufficient_role",
                format!(
                    "role {} may not {}",
                    self.role.as_str(),
                    describe_action(action)
                ),
            ))
        }
    }

    /// `Ok` for role `admin` (managing admin tokens needs it); otherwise 403
    /// `insufficient_role`.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == AdminRole::Admin {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "insufficient_role",
                format!(
                    "role {} may not manage admin tokens; role admin may",
                    self.role.as_str()
                ),
            ))
        }
    }

    /// Who is acting, for audit records: `admin:<token name>`.
    pub fn actor(&self) -> String {
        format!("admin:{}", self.name)
    }
}

/// What an action is, for the 403 message.
fn describe_action(action: AdminAction) -> &'static str {
    match action {
        AdminAction::ReadTenants => "read tenants",
        AdminAction::WriteTenants => "change tenants or their keys",
        AdminAction::ReadUsage => "read usage",
        AdminAction::ReadBilling => "read billing",
        AdminAction::ReadCache => "read cache stats",
        AdminAction::WriteCache => "warm, invalidate or clear caches",
        AdminAction::ReadState => "read the state",
        AdminAction::WriteState => "reload the configuration or take a checkpoint",
        AdminAction::RestoreState => "restore a checkpoint",
        AdminAction::ReadAudit => "read the audit log",
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized("missing admin token: send Authorization: Bearer <admin token>")
    })?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not ASCII"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(ApiError::unauthorized(
            "the Authorization header must be Bearer <admin token>",
        )),
    }
}

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let client = client_ip(&parts.extensions);
        state.auth_failures.admit(client, Credential::AdminToken)?;
        let token = bearer(parts)?;
        match state.admin_tokens.authenticate(token).await? {
            Some(who) => {
                // Fail closed: a change that could not be audited is not made at all.
                if !parts.method.is_safe() {
                    state.tenants.audit().ensure_writable().await?;
                }
                Ok(AdminCaller {
                    token_id: who.token_id,
                    name: who.name,
                    role: who.role,
                })
            }
            None => {
                state.auth_failures.failed(client, Credential::AdminToken);
                Err(ApiError::unauthorized("invalid admin token"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: AdminRole) -> AdminCaller {
        AdminCaller {
            token_id: "abcdefghijkl".into(),
            name: "ops".into(),
            role,
        }
    }

    #[test]
    fn roles_are_checked_with_403_insufficient_role() {
        assert!(
            caller(AdminRole::Operator)
                .require(AdminAction::WriteCache)
                .is_ok()
        );
        let err = caller(AdminRole::Viewer)
            .require(AdminAction::WriteCache)
            .unwrap_err();
        assert_eq!(err.status().as_u16(), 403);
        assert_eq!(err.code(), "insufficient_role");
        assert!(caller(AdminRole::Admin).require_admin().is_ok());
        assert_eq!(
            caller(AdminRole::Operator)
                .require_admin()
                .unwrap_err()
                .code(),
            "insufficient_role"
        );
        assert_eq!(caller(AdminRole::Billing).actor(), "admin:ops");
    }

    #[test]
    fn bearer_header_forms() {
        let parts = |value: Option<&str>| {
            let mut builder = axum::http::Request::builder();
            if let Some(v) = value {
                builder = builder.header(AUTHORIZATION, v);
            }
            builder.body(()).expect("request").into_parts().0
        };
        assert_eq!(bearer(&parts(Some("Bearer abc"))).ok(), Some("abc"));
        assert_eq!(bearer(&parts(Some("bearer  abc "))).ok(), Some("abc"));
        for bad in [None, Some("Basic abc"), Some("Bearer"), Some("Bearer   ")] {
            let err = bearer(&parts(bad)).unwrap_err();
            assert_eq!(err.status().as_u16(), 401, "{bad:?}");
        }
    }
}
