//! The tenant settings a running [`TenantManager`] changes without a restart: the plans
//! (quotas, burst, grants, prices), billing on or off, the default plan, and whether
//! multi-tenancy is on.
//!
//! They sit in one `ArcSwap` shared by the manager and the cache budget it hands to the
//! cache, so the request path reads them with one load and no copy: a quota check, an
//! access check or a bill sees the whole previous set or the whole new one. What was
//! derived from them is not stored anywhere else: a rate limit is computed from the
//! plan on every check (the stored GCRA state is only the theoretical arrival time, so
//! a new rate applies from the next request), and a tenant's cache budget is looked up
//! in its plan on every write.
//!
//! Turning multi-tenancy off makes every request run as the built-in `default` tenant,
//! so [`TenantManager::prepare_live_settings`] creates that tenant (with the new default
//! plan) before the switch; other tenants and their data stay, unreachable through the
//! tenant routes until multi-tenancy is on again. Turning it on leaves `default` as it
//! is: an ordinary tenant reachable with its own API keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::error::TenantResult;
use super::manager::TenantManager;
use super::model::BillingPlan;
use crate::config::{PlanConfig, TenantConfig};

/// The keys of the `tenant` section applied live; every other key keeps the value the
/// manager was built with.
pub const LIVE_TENANT_KEYS: [&str; 4] = ["enabled", "enable_billing", "default_plan", "plans"];

/// The live part of [`TenantConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct LiveTenantSettings {
    /// Multi-tenancy on (`ENABLE_MULTI_TENANCY`); off, only `default` is served and
    /// creating tenants is refused.
    pub enabled: bool,
    /// Bills are computed (usage is metered either way).
    pub enable_billing: bool,
    /// Plan of the built-in `default` tenant when it is created, and whose
    /// `memory_bytes` is the cache budget of a tenant not yet looked up.
    pub default_plan: BillingPlan,
    /// Plans by name: default quotas, burst, grants and prices.
    pub plans: BTreeMap<BillingPlan, PlanConfig>,
}

impl LiveTenantSettings {
    /// The live keys of `config`.
    pub fn of(config: &TenantConfig) -> Self {
        Self {
            enabled: config.enabled,
            enable_billing: config.enable_billing,
            default_plan: config.default_plan,
            plans: config.plans.clone(),
        }
    }

    /// The configuration of `plan`, if configured (validation requires all four).
    pub fn plan(&self, plan: BillingPlan) -> Option<&PlanConfig> {
        self.plans.get(&plan)
    }

    /// The keys of [`LIVE_TENANT_KEYS`] whose value differs in `next`.
    fn changed(&self, next: &Self) -> Vec<&'static str> {
        let differs = [
            self.enabled != next.enabled,
            self.enable_billing != next.enable_billing,
            self.default_plan != next.default_plan,
            self.plans != next.plans,
        ];
        LIVE_TENANT_KEYS
            .iter()
            .zip(differs)
            .filter_map(|(key, differs)| differs.then_some(*key))
            .collect()
    }
}

impl TenantManager {
    /// The live settings in force.
    pub fn live_settings(&self) -> Arc<LiveTenantSettings> {
        self.live.load_full()
    }

    /// Whether multi-tenancy is on now (`enabled` as last applied). The request path
    /// reads this, not the start configuration, so a reload switches it.
    pub fn multi_tenancy_enabled(&self) -> bool {
        self.live.load().enabled
    }

    /// Checks `next` and readies the store for it, changing nothing requests see:
    /// `next` is validated as a whole, and when it has multi-tenancy off, the `default`
    /// tenant is created if missing (with `next`'s default plan), so the switch never
    /// leaves requests without a tenant. Call it before [`Self::apply_live_settings`].
    pub async fn prepare_live_settings(&self, next: &TenantConfig) -> TenantResult<()> {
        next.validate()?;
        if !next.enabled {
            self.ensure_default_tenant(next.default_plan).await?;
        }
        Ok(())
    }

    /// Applies the [`LIVE_TENANT_KEYS`] of `next` from the next call on (quota and
    /// access checks, bills, cache budgets, tenant creation); the other keys are ignored.
    /// Returns the keys whose value changed.
    ///
    /// `next` is validated first: an invalid one changes nothing. Run
    /// [`Self::prepare_live_settings`] with the same `next` first, so that turning
    /// multi-tenancy off finds the `default` tenant in place.
    pub fn apply_live_settings(&self, next: &TenantConfig) -> TenantResult<Vec<&'static str>> {
        next.validate()?;
        let next = LiveTenantSettings::of(next);
        let running = self.live.load_full();
        let changed = running.changed(&next);
        if changed.is_empty() {
            return Ok(changed);
        }
        self.live.store(Arc::new(next));
        tracing::info!(tenant.changed_keys = ?changed, "live tenant settings applied");
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_plans;

    #[test]
    fn changed_names_each_differing_key() {
        let running = LiveTenantSettings::of(&TenantConfig::default());
        assert!(running.changed(&running.clone()).is_empty());
        let mut next = running.clone();
        next.enabled = false;
        next.plans
            .get_mut(&BillingPlan::Free)
            .expect("free")
            .quotas
            .insert("operations_per_minute".into(), 5);
        assert_eq!(running.changed(&next), ["enabled", "plans"]);
        assert_eq!(running.plans, default_plans());
    }

    #[test]
    fn every_live_key_is_a_tenant_field() {
        let value = serde_json::to_value(TenantConfig::default()).expect("serialize");
        for key in LIVE_TENANT_KEYS {
            assert!(value.get(key).is_some(), "{key}");
        }
    }
}
