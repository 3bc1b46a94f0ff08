//! JWT verification keys through the tenant manager: each operation is checked against
//! the tenant's existence and written to the audit log; revocations are announced to
//! the other instances; and token authentication.

use riptide_store::tenant_id::AsTenantId;
use std::sync::Arc;

use super::error::{TenantError, TenantResult};
use super::jwt_keys::{CreatedJwtKey, JwtAlgorithm, JwtKeyInfo, JwtKeys, VerifiedToken};
use super::manager::{TenantEvent, TenantManager};
use super::model::Tenant;

impl TenantManager {
    /// The JWT verification keys.
    pub fn jwt_keys(&self) -> &JwtKeys {
        &self.jwt_keys
    }

    /// Creates a JWT verification key for an existing tenant; an HS256 secret is in the
    /// result only.
    pub async fn create_jwt_key_by(
        &self,
        actor: &str,
        tenant_id: &(impl AsTenantId + ?Sized),
        algorithm: JwtAlgorithm,
        public_key_pem: Option<&str>,
        label: Option<&str>,
    ) -> TenantResult<CreatedJwtKey> {
        let (id, _) = self.require(tenant_id).await?;
        let result = self
            .jwt_keys
            .create(&id, algorithm, public_key_pem, label)
            .await;
        let detail = result
            .as_ref()
            .map(|k| format!("{} {}", k.kid, k.algorithm.as_str()))
            .unwrap_or_default();
        self.audit_event(actor, Some(&id), "jwt_key.create", &detail, &result)
            .await;
        result
    }

    /// The tenant's JWT verification keys (never an HS256 secret).
    pub async fn list_jwt_keys(
        &self,
        tenant_id: &(impl AsTenantId + ?Sized),
    ) -> TenantResult<Vec<JwtKeyInfo>> {
        let (id, _) = self.require(tenant_id).await?;
        self.jwt_keys.list(&id).await
    }

    /// Revokes a JWT verification key: tokens naming it are refused everywhere within
    /// `record_cache_ttl_ms`.
    pub async fn revoke_jwt_key_by(
        &self,
        actor: &str,
        tenant_id: &(impl AsTenantId + ?Sized),
        kid: &str,
    ) -> TenantResult<()> {
        let (id, _) = self.require(tenant_id).await?;
        let result = self.jwt_keys.revoke(&id, kid).await;
        self.audit_event(actor, Some(&id), "jwt_key.revoke", kid, &result)
            .await;
        if result.is_ok() {
            self.announce(TenantEvent::KeyRevoked {
                tenant_id: id.to_string(),
                key_id: kid.to_owned(),
            });
        }
        result
    }

    /// Verifies a JWT presented for `tenant_id` (the tenant the request names); the
    /// tenant must exist and be active.
    ///
    /// A token for a tenant that does not exist is [`TenantError::InvalidToken`], like
    /// any token that identifies nobody; a suspended tenant is
    /// [`TenantError::Suspended`] once the token has verified.
    pub async fn authenticate_jwt(
        &self,
        tenant_id: &(impl AsTenantId + ?Sized),
        token: &str,
    ) -> TenantResult<(VerifiedToken, Arc<Tenant>)> {
        let (id, tenant) = match self.require(tenant_id).await {
            Ok(found) => found,
            Err(TenantError::NotFound { .. }) => {
                return Err(TenantError::InvalidToken("unknown or revoked key"));
            }
            Err(e) => return Err(e),
        };
        let verified = self.jwt_keys.verify(&id, token).await?;
        if !tenant.is_active() {
            return Err(TenantError::Suspended(tenant.id().to_owned()));
        }
        Ok((verified, tenant))
    }
}
