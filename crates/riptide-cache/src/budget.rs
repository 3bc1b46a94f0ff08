//! Where a scope's cache budget comes from.
//!
//! The cache only asks; the tenant layer answers with each tenant's `memory_bytes` quota.
//! Until one is plugged in, every scope gets `cache.default_tenant_budget_bytes`.

use riptide_store::keys::Scope;

/// Looks up the cache budget of a scope, in stored bytes.
pub trait CacheBudget: Send + Sync + 'static {
    /// The budget of `scope`, or `None` for no limit.
    fn budget_bytes(&self, scope: &Scope) -> Option<u64>;
}

/// The same budget for every scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedBudget(pub u64);

impl CacheBudget for FixedBudget {
    fn budget_bytes(&self, _: &Scope) -> Option<u64> {
        Some(self.0)
    }
}
