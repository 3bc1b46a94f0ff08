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

use std::sync::Arc;

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use super::envelope::Entry;
use crate::keys::Scope;

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
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<L1Key, Arc<L1Value>> for ByBytes {
    fn weight(&self, _: &L1Key, v: &Arc<L1Value>) -> u64 {
        v.entry.payload.len() as u64 + ENTRY_OVERHEAD
    }
}

/// The L1 cache; disabled when its capacity or staleness bound is 0.
pub(crate) struct L1 {
    cache: Option<Cache<L1Key, Arc<L1Value>, ByBytes>>,
    max_staleness_ms: u64,
}

impl L1 {
    pub(crate) fn new(capacity_bytes: u64, max_staleness_ms: u64) -> Self {
        let cache = (capacity_bytes > 0 && max_staleness_ms > 0).then(|| {
            let items = (capacity_bytes / TYPICAL_ENTRY).clamp(16, 4_000_000) as usize;
            Cache::with_weighter(items, capacity_bytes, ByBytes)
        });
        Self {
            cache,
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

    pub(crate) fn insert(
        &self,
        key: L1Key,
        entry: Entry,
        scope: Scope,
        namespace: Arc<str>,
        now_ms: u64,
    ) {
        let Some(cache) = &self.cache else { return };
        let stale_at = now_ms.saturating_add(self.max_staleness_ms);
        let until_ms = entry.expires_ms.map_or(stale_at, |e| e.min(stale_at));
        if until_ms <= now_ms {
            cache.remove(&key);
            return;
        }
        cache.insert(
            key,
            Arc::new(L1Value {
                entry,
                scope,
                namespace,
                until_ms,
            }),
        );
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
    use crate::cache::envelope::Codec;

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
        let l1 = L1::new(1 << 20, 1_000);
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
        let l1 = L1::new(64 * 1024, 10_000);
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
        let l1 = L1::new(1 << 20, 10_000);
        l1.insert([1; 16], entry(1, None), Scope::Global, Arc::from("a"), 0);
        l1.insert([2; 16], entry(1, None), Scope::Global, Arc::from("b"), 0);
        l1.invalidate_if(|v| &*v.namespace == "a");
        assert!(l1.get(&[1; 16], 1).is_none() && l1.get(&[2; 16], 1).is_some());
    }
}
