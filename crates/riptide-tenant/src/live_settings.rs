//! The tenant settings a running tenant manager changes without a restart: the plans
//! (quotas, burst, grants, prices), billing on or off, and the default plan.
//!
//! They sit in one `ArcSwap` shared by the manager and the cache budget it hands to the
//! cache, so the request path reads them with one load and no copy: a quota check, an
//! access check or a bill sees the whole previous set or the whole new one. What was
//! derived from them is not stored anywhere else: a rate limit is computed from the
//! plan on every check (the stored GCRA state is only the theoretical arrival time, so
//! a new rate applies from the next request), and a tenant's cache budget is looked up
//! in its plan on every write.
//!
//! Whether multi-tenancy is on (`enabled`, `ENABLE_MULTI_TENANCY`) is **not** live: off,
//! every request runs as the built-in `default` tenant without any credential, so a
//! file dropped into the configuration directory must not be able to switch
//! authentication off in a running service. It is read once, when the manager is built
//! (`TenantManager::multi_tenancy_enabled`); a reload that changes it is reported as
//! waiting for the next restart, and the service's startup checks decide whether that
//! restart may serve without authentication.

use std::collections::BTreeMap;

use super::model::BillingPlan;
use crate::config::{PlanConfig, TenancyConfig};

/// The keys of the `tenant` section applied live; every other key (`enabled` among
/// them) keeps the value the manager was built with.
pub const LIVE_TENANT_KEYS: [&str; 3] = ["enable_billing", "default_plan", "plans"];

/// The live part of [`TenancyConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct LiveTenantSettings {
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
    pub fn of(config: &TenancyConfig) -> Self {
        Self {
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
    pub(super) fn changed(&self, next: &Self) -> Vec<&'static str> {
        let differs = [
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_plans;

    #[test]
    fn changed_names_each_differing_key() {
        let running = LiveTenantSettings::of(&TenancyConfig::default());
        assert!(running.changed(&running.clone()).is_empty());
        let mut next = running.clone();
        next.enable_billing = false;
        next.plans
            .get_mut(&BillingPlan::Free)
            .expect("free")
            .quotas
            .insert("operations_per_minute".into(), 5);
        assert_eq!(running.changed(&next), ["enable_billing", "plans"]);
        assert_eq!(running.plans, default_plans());
    }

    #[test]
    fn every_live_key_is_a_tenant_field() {
        let value = serde_json::to_value(TenancyConfig::default()).expect("serialize");
        for key in LIVE_TENANT_KEYS {
            assert!(value.get(key).is_some(), "{key}");
        }
    }
}
