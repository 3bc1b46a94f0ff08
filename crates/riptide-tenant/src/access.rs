//! The request-path calls of the seed: `validate_access`, `record_usage`, `get_usage`,
//! `billing`.

use super::billing::{Bill, Period};
use super::error::{TenantError, TenantResult};
use super::manager::TenantManager;
use super::model::{ResourceUsageRecord, Tenant, TenantStatus};
use super::resource::{Permission, Resource};
use super::usage::UsageSummary;
use riptide_store::tenant_id::{AsTenantId, TenantId};

impl TenantManager {
    /// `Ok` when the tenant is active and may perform `action` on `resource`
    /// (`("cache", "read")`, `("extract", "")`...): what its plan grants, adjusted by its
    /// own policy.
    pub async fn validate_access(
        &self,
        tenant_id: &(impl AsTenantId + ?Sized),
        resource: &str,
        action: &str,
    ) -> TenantResult<()> {
        let (_, tenant) = self.require(tenant_id).await?;
        self.validate_access_of(&tenant, resource, action)
    }

    /// [`Self::validate_access`] for a tenant record the caller already holds (read
    /// through this manager, e.g. by [`Self::authenticate`]), without reading it again.
    pub fn validate_access_of(
        &self,
        tenant: &Tenant,
        resource: &str,
        action: &str,
    ) -> TenantResult<()> {
        if let TenantStatus::Suspended { .. } = tenant.status {
            return Err(TenantError::Suspended(tenant.id().to_owned()));
        }
        let permission = Permission::from_pair(resource, action).ok_or_else(|| {
            TenantError::AccessDenied(format!("unknown permission {resource}:{action}"))
        })?;
        let live = self.live.load();
        let grants = live
            .plan(tenant.plan)
            .map(|p| p.grants.as_slice())
            .unwrap_or(&[]);
        if tenant.policy.permits(grants, permission) {
            Ok(())
        } else {
            Err(TenantError::AccessDenied(format!(
                "{permission} is not granted to this tenant"
            )))
        }
    }

    /// Records usage for billing: aggregated in memory and flushed in batches, so this
    /// is cheap on the request path. The month is taken from `usage.timestamp`.
    pub async fn record_usage(
        &self,
        tenant_id: &(impl AsTenantId + ?Sized),
        operation: &str,
        usage: ResourceUsageRecord,
    ) -> TenantResult<()> {
        let id = tenant_id.as_tenant_id()?;
        self.usage.record(&id, operation, &usage).map(drop)
    }

    /// One request's usage and its cache hits and misses, recorded in one step for the
    /// tenant the caller already validated (what [`Self::record_usage`] and
    /// [`Self::record_cache_use`] record, in the month of `usage.timestamp`).
    pub fn record_request_usage(
        &self,
        tenant_id: &TenantId,
        operation: &str,
        usage: &ResourceUsageRecord,
        cache_hits: u64,
        cache_misses: u64,
    ) -> TenantResult<()> {
        self.usage
            .record_with_cache(tenant_id, operation, usage, cache_hits, cache_misses)
            .map(drop)
    }

    /// Cache hits and misses of a tenant, for its monthly usage.
    pub fn record_cache_use(
        &self,
        tenant_id: &TenantId,
        hits: u64,
        misses: u64,
    ) -> TenantResult<()> {
        self.usage.record_cache(tenant_id, hits, misses).map(drop)
    }

    /// The tenant's usage in `period` (`YYYY-MM`), flushed and not yet flushed.
    pub async fn get_usage(
        &self,
        tenant_id: &(impl AsTenantId + ?Sized),
        period: &str,
    ) -> TenantResult<UsageSummary> {
        let (id, _) = self.require(tenant_id).await?;
        self.usage.usage(&id, period).await
    }

    /// Flushes buffered usage now (also done every `usage_flush_interval_ms`).
    pub async fn flush_usage(&self) -> TenantResult<()> {
        self.usage.flush().await.map(drop)
    }

    pub(super) fn metrics_quota_usage(
        &self,
        id: &TenantId,
        resource: Resource,
        used: u64,
        limit: u64,
    ) {
        self.metrics
            .with(|m| m.record_quota_usage(id, resource, used, limit));
    }

    pub(super) fn metrics_denied(&self, id: &TenantId, resource: Resource) {
        self.metrics.with(|m| m.record_quota_denied(id, resource));
    }

    pub(super) fn metrics_billing(&self, id: &TenantId, bill: &Bill) {
        let Ok(period) = Period::parse(&bill.period) else {
            return;
        };
        self.metrics
            .with(|m| m.record_billing_units(id, period, bill.total_cents));
    }
}
