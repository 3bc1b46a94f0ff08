//! Quotas: effective limits (tenant override, else plan default, else unlimited), the
//! checks of the seed's `check_quota`, and the cache budget the tenant layer plugs into
//! the cache (`memory_bytes`).
//!
//! Plan defaults are read from the live settings (see `live_settings.rs`) on every
//! check, with one `ArcSwap` load and no copy, so a reloaded plan applies at once.

use std::sync::Arc;
use std::time::Duration;

use super::error::{TenantError, TenantResult};
use super::manager::TenantManager;
use super::model::Tenant;
use super::resource::Resource;
use riptide_store::GcraDecision;
use riptide_store::keys::records;
use riptide_store::tenant_id::{AsTenantId, TenantId};

use super::budgets::{RateArgs, effective_quota};

impl TenantManager {
    /// The seed's quota check: `Ok` when `amount` more of `resource` fits the tenant's
    /// quota, else `Err(QuotaExceeded { resource, limit, current, retry_after })`.
    ///
    /// - `operations_per_minute`: takes `amount` from the tenant's GCRA bucket (atomic on
    ///   every backend; the quota is read in the same round trip, so a change applies at
    ///   once on every instance).
    /// - `memory_bytes`: compares with the tenant's cached bytes (the cache enforces this
    ///   quota itself by evicting the tenant's own entries).
    /// - `storage_bytes`: compares with the durable bytes recorded by `adjust_storage`.
    /// - `data_transfer_bytes`: compares with this calendar month's response bytes.
    pub async fn check_quota(
        &self,
        tenant_id: &(impl AsTenantId + ?Sized),
        resource: &str,
        amount: u64,
    ) -> TenantResult<()> {
        let resource = Resource::parse(resource).ok_or_else(|| TenantError::InvalidField {
            field: "resource",
            reason: format!(
                "unknown resource {:?}",
                resource.chars().take(64).collect::<String>()
            ),
        })?;
        match resource {
            Resource::OperationsPerMinute => self.check_rate(tenant_id, amount).await.map(drop),
            Resource::Burst => Err(TenantError::InvalidField {
                field: "resource",
                reason: "burst modifies operations_per_minute and is not checked by itself".into(),
            }),
            r => {
                let (id, tenant) = self.require(tenant_id).await?;
                let Some(limit) = effective_quota(&tenant, &self.live.load().plans, r) else {
                    return Ok(());
                };
                let current = self.current_use(&id, r).await?;
                self.metrics_quota_usage(&id, r, current.saturating_add(amount), limit);
                if current.saturating_add(amount) > limit {
                    return Err(TenantError::QuotaExceeded {
                        resource: r.as_str().to_owned(),
                        limit,
                        current,
                        retry_after: None,
                    });
                }
                Ok(())
            }
        }
    }

    /// The rate-limit step of `check_quota("operations_per_minute", cost)`, returning the
    /// decision (limit, remaining, reset) for `RateLimit-*` headers when admitted.
    pub async fn check_rate(
        &self,
        tenant_id: &(impl AsTenantId + ?Sized),
        cost: u64,
    ) -> TenantResult<GcraDecision> {
        let (id, tenant) = self.require(tenant_id).await?;
        self.check_rate_of(&id, &tenant, cost).await
    }

    /// [`Self::check_rate`] for a tenant record the caller already holds (read through
    /// this manager, e.g. by [`Self::authenticate`]), without reading it again. The
    /// stored quota overrides are still read in the rate limiter's own round trip, so a
    /// changed quota applies at once.
    pub async fn check_rate_of(
        &self,
        id: &TenantId,
        tenant: &Tenant,
        cost: u64,
    ) -> TenantResult<GcraDecision> {
        let (rate, burst) = {
            let live = self.live.load();
            (
                effective_quota(tenant, &live.plans, Resource::OperationsPerMinute),
                effective_quota(tenant, &live.plans, Resource::Burst).unwrap_or(1),
            )
        };
        let Some(rate) = rate else {
            // Unlimited: nothing to take, nothing to store.
            return Ok(GcraDecision {
                allowed: true,
                limit: u64::MAX,
                burst,
                remaining: u64::MAX,
                retry_after_ms: 0,
                reset_after_ms: 0,
            });
        };
        let args = match self.rate_args.get(id) {
            Some(args) if args.limit.rate == rate && args.limit.burst == burst => args,
            _ => {
                let args = Arc::new(RateArgs::new(&self.registry.keys(id), rate, burst));
                self.rate_args.insert(id.clone(), args.clone());
                args
            }
        };
        let decision = self
            .store
            .gcra(&args.key, &args.limit, self.clock.now_ms(), cost)
            .await?;
        let used = decision.burst.saturating_sub(decision.remaining);
        self.metrics_quota_usage(id, Resource::OperationsPerMinute, used, decision.burst);
        if decision.allowed {
            Ok(decision)
        } else {
            self.metrics_denied(id, Resource::OperationsPerMinute);
            Err(TenantError::QuotaExceeded {
                resource: Resource::OperationsPerMinute.as_str().to_owned(),
                limit: decision.limit,
                current: used,
                retry_after: Some(Duration::from_millis(decision.retry_after_ms)),
            })
        }
    }

    /// Records `delta` bytes of durable data (sessions...) for the tenant; a positive
    /// delta that does not fit `storage_bytes` is refused with `QuotaExceeded` and not
    /// recorded. Returns the bytes in use afterwards.
    ///
    /// Check and charge are one step across instances: a growth is added first and the
    /// total read back; a total over the limit takes the growth back out and refuses.
    /// Every charge that passes saw a total holding itself and every charge added before
    /// it, so writes that pass never sum past the limit (concurrent growths that do not
    /// all fit may all be refused, never all admitted).
    pub async fn adjust_storage(
        &self,
        tenant_id: &(impl AsTenantId + ?Sized),
        delta: i64,
    ) -> TenantResult<u64> {
        let (id, tenant) = self.require(tenant_id).await?;
        if delta <= 0 {
            let current = self.current_use(&id, Resource::StorageBytes).await?;
            // Never below zero: a release of more than is recorded clamps.
            let delta = delta.max(-(i64::try_from(current).unwrap_or(i64::MAX)));
            if delta != 0 {
                self.add_storage(&id, delta).await?;
            }
            return Ok(current.saturating_add_signed(delta));
        }
        let limit = effective_quota(&tenant, &self.live.load().plans, Resource::StorageBytes);
        self.add_storage(&id, delta).await?;
        let total = match self.current_use(&id, Resource::StorageBytes).await {
            Ok(total) => total,
            Err(e) => {
                // Unknown whether it fits: take it back (if that fails too, the bytes
                // stay counted, which errs on the tenant's side of the quota).
                let _ = self.add_storage(&id, -delta).await;
                return Err(e);
            }
        };
        match limit {
            Some(limit) if total > limit => {
                self.add_storage(&id, -delta).await?;
                self.metrics_denied(&id, Resource::StorageBytes);
                Err(TenantError::QuotaExceeded {
                    resource: Resource::StorageBytes.as_str().to_owned(),
                    limit,
                    current: total.saturating_sub(delta as u64),
                    retry_after: None,
                })
            }
            _ => Ok(total),
        }
    }

    /// Adds `delta` to the tenant's stored bytes, once (a retried write is not counted twice).
    async fn add_storage(&self, id: &TenantId, delta: i64) -> TenantResult<()> {
        let key = self.registry.keys(id).record(records::STORAGE);
        let batch = format!("{}-{}", self.instance_id, self.next_batch());
        self.store
            .counters_add_once(
                &key,
                &format!("{key}:batches"),
                &batch,
                &[("bytes".to_owned(), delta)],
                60_000,
            )
            .await?;
        Ok(())
    }

    async fn current_use(&self, id: &TenantId, resource: Resource) -> TenantResult<u64> {
        Ok(match resource {
            Resource::MemoryBytes => {
                self.store
                    .cache_usage(&self.registry.keys(id))
                    .await?
                    .used_bytes
            }
            Resource::StorageBytes => {
                let key = self.registry.keys(id).record(records::STORAGE);
                let counters = self.store.counters_get(&key).await?;
                counters
                    .iter()
                    .find(|(f, _)| f == "bytes")
                    .map(|(_, v)| (*v).max(0) as u64)
                    .unwrap_or(0)
            }
            Resource::DataTransferBytes => {
                let month = super::billing::Period::of_unix_ms(self.clock.now_ms())?;
                self.usage.usage_of(id, month).await?.data_bytes
            }
            Resource::OperationsPerMinute | Resource::Burst => 0,
        })
    }
}
