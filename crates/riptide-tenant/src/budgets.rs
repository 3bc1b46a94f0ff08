//! What quota and rate checks work with, kept per tenant: the rate limiter's arguments,
//! and the cache budgets the tenant layer hands the cache (from each tenant's plan and
//! overrides, read live).

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use quick_cache::sync::Cache;

use super::live_settings::LiveTenantSettings;
use super::model::{BillingPlan, Tenant};
use super::resource::Resource;
use crate::config::PlanConfig;
use riptide_cache::CacheBudget;
use riptide_store::GcraLimit;
use riptide_store::keys::Scope;
use riptide_store::keys::records;
use riptide_store::tenant_id::TenantId;

/// Rate limits are per minute.
const RATE_PERIOD_MS: u64 = 60_000;
/// Tenants whose cache budget is remembered; beyond it the default plan's applies.
const BUDGET_CAPACITY: usize = 1_000_000;

/// Tenants whose rate-limiter arguments are remembered; beyond it they are built again.
const RATE_ARGS_CAPACITY: usize = 100_000;

/// The rate limiter's arguments for one tenant, built once instead of per request: the
/// bucket's key (`rl`) and the limit naming the overrides record (`q`) and its fields.
/// The keys depend on the tenant id alone; `rate` and `burst` are checked on every use.
pub(super) struct RateArgs {
    pub(super) key: String,
    pub(super) limit: GcraLimit,
}

impl RateArgs {
    pub(super) fn new(keys: &riptide_store::keys::ScopeKeys, rate: u64, burst: u64) -> Self {
        Self {
            key: keys.record(records::RATE_LIMIT),
            limit: GcraLimit {
                rate,
                period_ms: RATE_PERIOD_MS,
                burst,
                overrides: Some((
                    keys.record(records::QUOTA_OVERRIDES),
                    Resource::OperationsPerMinute.as_str().to_owned(),
                    Resource::Burst.as_str().to_owned(),
                )),
            },
        }
    }
}

/// The remembered [`RateArgs`] of recently seen tenants.
pub(super) fn rate_args_cache() -> quick_cache::sync::Cache<TenantId, Arc<RateArgs>> {
    quick_cache::sync::Cache::new(RATE_ARGS_CAPACITY)
}

/// The limit of `resource` for `tenant`: its own override, else its plan's default, else
/// none (unlimited).
pub fn effective_quota(
    tenant: &Tenant,
    plans: &BTreeMap<BillingPlan, PlanConfig>,
    resource: Resource,
) -> Option<u64> {
    tenant
        .config
        .quotas
        .get(resource.as_str())
        .copied()
        .or_else(|| {
            let plan = plans.get(&tenant.plan)?;
            match resource {
                Resource::Burst => Some(plan.burst),
                r => plan.quotas.get(r.as_str()).copied(),
            }
        })
}

/// Where a tenant's cache budget (`memory_bytes`) comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BudgetSource {
    /// The tenant's own quota.
    Own(u64),
    /// Its plan's default, looked up in the live plans when asked.
    Plan(BillingPlan),
}

impl BudgetSource {
    /// The tenant's own `memory_bytes` quota, else its plan.
    pub(super) fn of(tenant: &Tenant) -> Self {
        match tenant.config.quotas.get(Resource::MemoryBytes.as_str()) {
            Some(&own) => Self::Own(own),
            None => Self::Plan(tenant.plan),
        }
    }
}

/// Cache budgets by tenant, kept current by the tenant manager whenever it loads or
/// changes a record. Only where each budget comes from is stored: plan defaults are
/// read from the live settings on each write, so a reloaded plan needs no refresh here.
pub(super) struct TenantBudgets {
    sources: Cache<TenantId, BudgetSource>,
    live: Arc<ArcSwap<LiveTenantSettings>>,
}

impl TenantBudgets {
    pub(super) fn new(live: Arc<ArcSwap<LiveTenantSettings>>) -> Arc<Self> {
        Arc::new(Self {
            sources: Cache::new(BUDGET_CAPACITY),
            live,
        })
    }

    /// Records where `id`'s budget comes from; `None` forgets it (the default plan's
    /// budget applies until its record is read again).
    pub(super) fn set(&self, id: &TenantId, source: Option<BudgetSource>) {
        match source {
            // Records are reloaded every `record_cache_ttl_ms`: skip the write when nothing changed.
            Some(s) if self.sources.get(id) == Some(s) => {}
            Some(s) => self.sources.insert(id.clone(), s),
            None => drop(self.sources.remove(id)),
        }
    }

    /// The budget of a tenant whose source is `source` (`None`: not looked up yet): its
    /// own, else its plan's, else the default plan's, else none.
    fn budget(&self, source: Option<BudgetSource>) -> Option<u64> {
        let live = self.live.load();
        let memory = |plan| {
            live.plan(plan)?
                .quotas
                .get(Resource::MemoryBytes.as_str())
                .copied()
        };
        match source {
            Some(BudgetSource::Own(own)) => Some(own),
            Some(BudgetSource::Plan(plan)) => memory(plan).or_else(|| memory(live.default_plan)),
            None => memory(live.default_plan),
        }
    }
}

/// The [`CacheBudget`] handed to the cache.
pub(super) struct BudgetHandle(pub(super) Arc<TenantBudgets>);

impl CacheBudget for BudgetHandle {
    fn budget_bytes(&self, scope: &Scope) -> Option<u64> {
        match scope {
            Scope::Tenant(t) => self.0.budget(self.0.sources.get(t)),
            Scope::Global => self.0.budget(None),
        }
    }
}
