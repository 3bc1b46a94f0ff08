//! Per-tenant shares of the L1 cache (issue 9): one tenant cannot push every other
//! tenant's hot entries out of the in-process cache all tenants share.
//!
//! L1 evicts by its own policy (S3-FIFO), which knows nothing of tenants: a tenant that
//! reads many distinct entries a few times each (a crawl, a scan, a hostile client) makes
//! them all look hot and pushes out whatever the other tenants use less often. So each
//! tenant's bytes in L1 are counted here, and an insert that would take a tenant past
//! `cache.l1_tenant_share_percent` of L1's capacity is not admitted: the value is stored
//! in L2 as usual and served from there. Whatever one tenant does, the rest of L1 stays
//! for the others. (Several tenants at their share together can still fill L1; the
//! share bounds each of them, not their sum.) Entries of the global scope (no tenant,
//! the single-tenant path) are not limited.
//!
//! # Accounting
//!
//! An admitted value carries a [`Charge`] (its tenant and weight); dropping the value
//! releases it. So every way a value leaves L1 — eviction, `remove`, replacement by a
//! newer value, `retain`, `clear`, expiry, the cache itself being dropped — releases its
//! bytes exactly once, without a hook per path (quick_cache's `Lifecycle` sees evictions
//! and replacements but not `retain` or `clear`). A value a reader still holds when it
//! leaves stays charged until that reader drops it: the bytes are in memory until then.
//!
//! Charging is a reservation: the check and the add happen under one map-shard lock, so
//! concurrent inserts of one tenant cannot overshoot its share. Nothing here is touched
//! on an L1 hit.
//!
//! The map holds only tenants with bytes in L1 (a tenant's entry goes when its count
//! reaches 0), so it is bounded by L1's entry count.

use std::sync::Arc;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use riptide_store::tenant_id::TenantId;

/// Bytes each tenant holds in L1, and the most one may hold.
pub(crate) struct L1Shares {
    limit_bytes: u64,
    held: DashMap<TenantId, u64>,
}

/// The bytes one L1 value is charged to its tenant; released when dropped.
pub(crate) struct Charge {
    shares: Arc<L1Shares>,
    tenant: TenantId,
    bytes: u64,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.shares.release(&self.tenant, self.bytes);
    }
}

impl L1Shares {
    /// Shares of an L1 of `capacity_bytes`, each tenant limited to `percent` of it.
    pub(crate) fn new(capacity_bytes: u64, percent: u32) -> Arc<Self> {
        let percent = u64::from(percent.clamp(1, 100));
        Arc::new(Self {
            limit_bytes: (capacity_bytes / 100).saturating_mul(percent)
                + capacity_bytes % 100 * percent / 100,
            held: DashMap::new(),
        })
    }

    /// Most bytes one tenant may hold.
    #[cfg(test)]
    pub(crate) fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }

    /// Charges `bytes` to `tenant`, or `None` when that would take it past its share.
    pub(crate) fn try_charge(self: &Arc<Self>, tenant: &TenantId, bytes: u64) -> Option<Charge> {
        match self.held.entry(tenant.clone()) {
            Entry::Occupied(mut held) => {
                let after = held.get().checked_add(bytes)?;
                if after > self.limit_bytes {
                    return None;
                }
                *held.get_mut() = after;
            }
            Entry::Vacant(slot) => {
                if bytes > self.limit_bytes {
                    return None;
                }
                slot.insert(bytes);
            }
        }
        Some(Charge {
            shares: Arc::clone(self),
            tenant: tenant.clone(),
            bytes,
        })
    }

    fn release(&self, tenant: &TenantId, bytes: u64) {
        if let Entry::Occupied(mut held) = self.held.entry(tenant.clone()) {
            let left = held.get().saturating_sub(bytes);
            if left == 0 {
                held.remove();
            } else {
                *held.get_mut() = left;
            }
        }
    }

    /// Bytes `tenant` holds in L1 now.
    #[cfg(test)]
    pub(crate) fn held(&self, tenant: &TenantId) -> u64 {
        self.held.get(tenant).map_or(0, |b| *b)
    }

    /// Tenants holding bytes in L1 now.
    #[cfg(test)]
    pub(crate) fn tenants(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: &str) -> TenantId {
        TenantId::parse(id).unwrap()
    }

    #[test]
    fn limit_is_the_percentage_of_capacity() {
        assert_eq!(L1Shares::new(1_000, 25).limit_bytes(), 250);
        assert_eq!(L1Shares::new(64 << 20, 25).limit_bytes(), 16 << 20);
        assert_eq!(L1Shares::new(u64::MAX, 100).limit_bytes(), u64::MAX);
        assert_eq!(L1Shares::new(99, 50).limit_bytes(), 49);
    }

    #[test]
    fn charges_up_to_the_share_and_releases_on_drop() {
        let shares = L1Shares::new(1_000, 25);
        let a = shares.try_charge(&t("a"), 200).unwrap();
        assert!(
            shares.try_charge(&t("a"), 51).is_none(),
            "would pass the share"
        );
        let b = shares.try_charge(&t("a"), 50).unwrap();
        assert_eq!(shares.held(&t("a")), 250);
        assert!(
            shares.try_charge(&t("other"), 250).is_some(),
            "another tenant has a share of its own"
        );
        drop(a);
        assert_eq!(shares.held(&t("a")), 50);
        drop(b);
        assert_eq!(shares.held(&t("a")), 0);
        assert_eq!(shares.tenants(), 0, "no entry is kept for 0 bytes");
        assert!(
            shares.try_charge(&t("a"), 251).is_none(),
            "one value above the share"
        );
        assert_eq!(shares.tenants(), 0, "a refusal leaves no entry either");
    }
}
