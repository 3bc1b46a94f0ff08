//! API key operations through the tenant manager: each is checked against the tenant's
//! existence and written to the audit log.

use super::api_keys::{ApiKeyInfo, AuthenticatedKey, CreatedApiKey};
use super::error::{TenantError, TenantResult};
use super::manager::TenantManager;
use super::model::Tenant;
use riptide_store::tenant_id::AsTenantId;

impl TenantManager {
    /// Creates an API key for an existing tenant; the secret is in the result only.
    pub async fn create_api_key_by(
        &self,
        actor: &str,
        tenant_id: &(impl AsTenantId + ?Sized),
        label: Option<&str>,
    ) -> TenantResult<CreatedApiKey> {
        let (id, _) = self.require(tenant_id).await?;
        let result = self.api_keys().create(&id, label).await;
        let detail = result
            .as_ref()
            .map(|k| k.key_id.clone())
            .unwrap_or_default();
        self.audit_event(actor, Some(&id), "key.create", &detail, &result)
            .await;
        result
    }

    /// The tenant's keys (never their secrets).
    pub async fn list_api_keys(
        &self,
        tenant_id: &(impl AsTenantId + ?Sized),
    ) -> TenantResult<Vec<ApiKeyInfo>> {
        let (id, _) = self.require(tenant_id).await?;
        self.api_keys().list(&id).await
    }

    /// Revokes a key: refused everywhere within `record_cache_ttl_ms`.
    pub async fn revoke_api_key_by(
        &self,
        actor: &str,
        tenant_id: &(impl AsTenantId + ?Sized),
        key_id: &str,
    ) -> TenantResult<()> {
        let (id, _) = self.require(tenant_id).await?;
        let result = self.api_keys().revoke(&id, key_id).await;
        self.audit_event(actor, Some(&id), "key.revoke", key_id, &result)
            .await;
        if result.is_ok() {
            self.announce(super::manager::TenantEvent::KeyRevoked {
                tenant_id: id.to_string(),
                key_id: key_id.to_owned(),
            });
        }
        result
    }

    /// Rotates a key: a new one, and the old one keeps working for the overlap window.
    pub async fn rotate_api_key_by(
        &self,
        actor: &str,
        tenant_id: &(impl AsTenantId + ?Sized),
        key_id: &str,
    ) -> TenantResult<CreatedApiKey> {
        let (id, _) = self.require(tenant_id).await?;
        let result = self.api_keys().rotate(&id, key_id).await;
        let detail = match &result {
            Ok(new) => format!("{key_id} -> {}", new.key_id),
            Err(_) => key_id.to_owned(),
        };
        self.audit_event(actor, Some(&id), "key.rotate", &detail, &result)
            .await;
        result
    }

    /// The tenant a presented key belongs to, which must exist and be active.
    pub async fn authenticate(
        &self,
        presented: &str,
    ) -> TenantResult<(AuthenticatedKey, std::sync::Arc<Tenant>)> {
        let key = self.api_keys().authenticate(presented).await?;
        let (_, tenant) = match self.require(key.tenant_id.as_str()).await {
            Ok(found) => found,
            // A key outliving its tenant authenticates nothing.
            Err(TenantError::NotFound { .. }) => return Err(TenantError::InvalidApiKey),
            Err(e) => return Err(e),
        };
        if !tenant.is_active() {
            return Err(TenantError::Suspended(tenant.id().to_owned()));
        }
        Ok((key, tenant))
    }
}
