//! The in-process cache (L1): `quick_cache` (S3-FIFO), weighted by bytes, over the store.
//!
//! An L1 entry is served until the earliest of its own expiry and
//! `l1_max_staleness_ms` after it was cached, so a change made by another instance is
//! seen within that bound even when no invalidation message arrives. Local writes and
//! deletes update L1 directly.
//!
//! Why quick_cache and not moka: the L1-hit budget is a p99 of 2 µs, and moka runs its
//! housekeeping on the reading thread every few dozen reads, which alone puts its p99
//! near 3 µs (docs/BENCHMARKS.md). quick_cache has no background work; expiry is
//! checked on read instead, and expired entries leave by eviction.
//!
//! L1 is shared by every tenant, so each tenant may hold at most
//! `l1_tenant_share_percent` of it (see [`super::l1_share`]): an insert past that share
//! is refused ([`Admission::Refused`]) and the entry is served from the store. The share
//! is checked on insert only; a hit does exactly what it did without it.

use std::sync::Arc;

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use super::envelope::Entry;
use super::l1_share::{Charge, L1Shares};
use riptide_store::keys::Scope;

/// L1 key: 128 bits of blake3 over the entry's store key.
pub(crate) type L1Key = [u8; 16];

/// Fixed per-entry weight on top of the payload, for the byte accounting.
const ENTRY_OVERHEAD: u64 = 128;
/// Guess of the average entry size, to size the cache's tables.
const TYPICAL_ENTRY: u64 = 4 * 1024;

/// What L1 keeps: the decoded entry plus what predicate invalidation needs.
pub(crate) struct L1Value {
    pub(crate) entry: Entry,
    pub(crate) scope: Scope,
    pub(crate) namespace: Arc<str>,
    /// Served until this time (ms since the epoch).
    until_ms: u64,
    /// The bytes charged to the tenant's share, released when this value is dropped
    /// (`None` for the global scope).
    _charge: Option<Charge>,
}

/// What [`L1::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The entry is in L1.
    Admitted,
    /// The tenant holds its share of L1 already: the entry is not in L1 (nor is an older
    /// value of its key).
    Refused,
    /// Not for L1 (already expired, or L1 is off).
    Skipped,
}

/// The L1 weight of an entry: its payload plus a fixed overhead.
fn weight_of(entry: &Entry) -> u64 {
    entry.payload.len() as u64 + ENTRY_OVERHEAD
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<L1Key, Arc<L1Value>> for ByBytes {
    fn weight(&self, _: &L1Key, v: &Arc<L1Value>) -> u64 {
        weight_of(&v.entry)
    }
}

/// The L1 cache; disabled when its capacity or staleness bound is 0.
pub(crate) struct L1 {
    cache: Option<Cache<L1Key, Arc<L1Value>, ByBytes>>,
    shares: Arc<L1Shares>,
    max_staleness_ms: u64,
}

impl L1 {
    /// An L1 of `capacity_bytes` in which one tenant holds at most
    /// `tenant_share_percent` of the capacity.
    pub(crate) fn new(
        capacity_bytes: u64,
        max_staleness_ms: u64,
        tenant_share_percent: u32,
    ) -> Self {
        let cache = (capacity_bytes > 0 && max_staleness_ms > 0).then(|| {
            let items = (capacity_bytes / TYPICAL_ENTRY).clamp(16, 4_000_000) as usize;
            Cache::with_weighter(items, capacity_bytes, ByBytes)
        });
        Self {
            cache,
            shares: L1Shares::new(capacity_bytes, tenant_share_percent),
            max_staleness_ms,
        }
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.cache.is_some()
    }

    pub(crate) fn get(&self, key: &L1Key, now_ms: u64) -> Option<Arc<L1Value>> {
        let cache = self.cache.as_ref()?;
        let v = cache.get(key)?;
        if now_ms >= v.until_ms {
            cache.remove(key);
            return None;
        }
        Some(v)
    }

    /// Puts `entry` into L1 when its tenant's share has room for it. A refused or
    /// expired entry also drops the key's older value, so L1 never serves a value older
    /// than the one given here.
    pub(crate) fn insert(
        &self,
        key: L1Key,
        entry: Entry,
        scope: Scope,
        namespace: Arc<str>,
        now_ms: u64,
    ) -> Admission {
        let Some(cache) = &self.cache else {
            return Admission::Skipped;
        };
        let stale_at = now_ms.saturating_add(self.max_staleness_ms);
        let until_ms = entry.expires_ms.map_or(stale_at, |e| e.min(stale_at));
        if until_ms <= now_ms {
            cache.remove(&key);
            return Admission::Skipped;
        }
        let charge = match &scope {
            Scope::Global => None,
            Scope::Tenant(tenant) => {
                let bytes = weight_of(&entry);
                match self.shares.try_charge(tenant, bytes) {
                    Some(charge) => Some(charge),
                    None => {
                        // The key's older value is charged too: a new value of a key
                        // replaces it, so count without it before refusing.
                        let older = cache.remove(&key);
                        drop(older);
                        match self.shares.try_charge(tenant, bytes) {
                            Some(charge) => Some(charge),
                            None => return Admission::Refused,
                        }
                    }
                }
            }
        };
        cache.insert(
            key,
            Arc::new(L1Value {
                entry,
                scope,
                namespace,
                until_ms,
                _charge: charge,
            }),
        );
        Admission::Admitted
    }

    pub(crate) fn invalidate(&self, key: &L1Key) {
        if let Some(c) = &self.cache {
            c.remove(key);
        }
    }

    /// Drops every entry `pred` selects (tag, namespace or scope invalidation).
    pub(crate) fn invalidate_if(&self, pred: impl Fn(&L1Value) -> bool) {
        if let Some(c) = &self.cache {
            c.retain(|_, v| !pred(v));
        }
    }

    pub(crate) fn clear(&self) {
        if let Some(c) = &self.cache {
            c.clear();
        }
    }

    /// Entries and weighted bytes.
    pub(crate) fn usage(&self) -> (u64, u64) {
        self.cache
            .as_ref()
            .map(|c| (c.len() as u64, c.weight()))
            .unwrap_or((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::envelope::Codec;

    fn entry(len: usize, expires_ms: Option<u64>) -> Entry {
        Entry {
            payload: Bytes::from(vec![0; len]),
            codec: Codec::Raw,
            created_ms: 0,
            expires_ms,
            metadata: None,
        }
    }

    #[test]
    fn serves_until_expiry_or_staleness_bound() {
        let l1 = L1::new(1 << 20, 1_000, 100);
        l1.insert(
            [1; 16],
            entry(10, None),
            Scope::Global,
            Arc::from("default"),
            0,
        );
        l1.insert(
            [2; 16],
            entry(10, Some(300)),
            Scope::Global,
            Arc::from("default"),
            0,
        );
        assert!(l1.get(&[1; 16], 999).is_some() && l1.get(&[1; 16], 1_000).is_none());
        assert!(l1.get(&[2; 16], 299).is_some() && l1.get(&[2; 16], 300).is_none());
    }

    #[test]
    fn stays_within_its_byte_capacity() {
        let l1 = L1::new(64 * 1024, 10_000, 100);
        for i in 0..1_000u32 {
            let mut k = [0u8; 16];
            k[..4].copy_from_slice(&i.to_le_bytes());
            l1.insert(
                k,
                entry(1_000, None),
                Scope::Global,
                Arc::from("default"),
                0,
            );
        }
        assert!(l1.usage().1 <= 64 * 1024, "{:?}", l1.usage());
    }

    #[test]
    fn predicate_invalidation_drops_only_matches() {
        let l1 = L1::new(1 << 20, 10_000, 100);
        l1.insert([1; 16], entry(1, None), Scope::Global, Arc::from("a"), 0);
        l1.insert([2; 16], entry(1, None), Scope::Global, Arc::from("b"), 0);
        l1.invalidate_if(|v| &*v.namespace == "a");
        assert!(l1.get(&[1; 16], 1).is_none() && l1.get(&[2; 16], 1).is_some());
    }

    fn key(i: u32) -> L1Key {
        let mut k = [0u8; 16];
        k[..4].copy_from_slice(&i.to_le_bytes());
        k
    }

    fn tenant(id: &str) -> Scope {
        Scope::Tenant(riptide_store::tenant_id::TenantId::parse(id).unwrap())
    }

    fn held(l1: &L1, scope: &Scope) -> u64 {
        scope.tenant().map_or(0, |t| l1.shares.held(t))
    }

    #[test]
    fn tenant_bytes_stay_exact_through_every_way_out() {
        let l1 = L1::new(64 * 1024, 10_000, 100);
        let (a, b) = (tenant("a"), tenant("b"));
        let insert = |i: u32, len: usize, scope: &Scope| {
            l1.insert(key(i), entry(len, None), scope.clone(), Arc::from("ns"), 0)
        };
        let w = |len: usize| len as u64 + ENTRY_OVERHEAD;
        // Insert.
        assert_eq!(insert(1, 100, &a), Admission::Admitted);
        assert_eq!(insert(2, 200, &a), Admission::Admitted);
        assert_eq!(insert(3, 300, &b), Admission::Admitted);
        assert_eq!(insert(4, 50, &Scope::Global), Admission::Admitted);
        assert_eq!((held(&l1, &a), held(&l1, &b)), (w(100) + w(200), w(300)));
        // Replace: the old value's bytes go, the new value's come.
        insert(1, 1_000, &a);
        assert_eq!(held(&l1, &a), w(1_000) + w(200));
        // Remove.
        l1.invalidate(&key(2));
        assert_eq!(held(&l1, &a), w(1_000));
        // Retain (predicate invalidation).
        l1.invalidate_if(|v| v.scope == b);
        assert_eq!(held(&l1, &b), 0);
        // Expiry seen by a read.
        l1.insert(key(5), entry(10, Some(5)), b.clone(), Arc::from("ns"), 0);
        assert_eq!(held(&l1, &b), w(10));
        assert!(l1.get(&key(5), 5).is_none());
        assert_eq!(held(&l1, &b), 0);
        // Eviction: far more than fits; what is charged is exactly what L1 holds.
        for i in 100..1_100u32 {
            insert(
                i,
                700 + (i as usize % 300),
                if i % 2 == 0 { &a } else { &b },
            );
        }
        let (_, weight) = l1.usage();
        let global = l1.get(&key(4), 1).map_or(0, |_| w(50));
        assert_eq!(held(&l1, &a) + held(&l1, &b) + global, weight);
        assert!(weight <= 64 * 1024);
        // Clear.
        l1.clear();
        assert_eq!((held(&l1, &a), held(&l1, &b)), (0, 0));
        assert_eq!(l1.shares.tenants(), 0, "no tenant is kept at 0 bytes");
    }

    #[test]
    fn a_tenant_at_its_share_is_refused_and_others_are_not() {
        // 25% of 64 KiB: 16 KiB per tenant.
        let l1 = L1::new(64 * 1024, 10_000, 25);
        let (a, b) = (tenant("a"), tenant("b"));
        let insert = |i: u32, scope: &Scope| {
            l1.insert(
                key(i),
                entry(3_900, None),
                scope.clone(),
                Arc::from("ns"),
                0,
            )
        };
        for i in 0..4 {
            assert_eq!(insert(i, &a), Admission::Admitted);
        }
        assert_eq!(insert(4, &a), Admission::Refused);
        assert!(l1.get(&key(4), 1).is_none());
        assert!(held(&l1, &a) <= 16 * 1024);
        // A new value of a key the tenant holds replaces the old one in its share.
        assert_eq!(insert(0, &a), Admission::Admitted);
        // Other tenants and the global scope are not limited by a's share.
        assert_eq!(insert(10, &b), Admission::Admitted);
        assert_eq!(insert(11, &Scope::Global), Admission::Admitted);
        // Room again once a's entries leave.
        l1.invalidate(&key(1));
        assert_eq!(insert(4, &a), Admission::Admitted);
    }
}
