//! The in-process cache (L1): moka, weighted by bytes, over the store.
//!
//! An L1 entry lives until the earliest of its own expiry and `l1_max_staleness_ms`, so
//! a change made by another instance is seen within that bound even when no
//! invalidation message arrives. Local writes and deletes invalidate L1 directly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use super::envelope::Entry;
use crate::keys::Scope;

/// L1 key: 128 bits of blake3 over (scope, caller key).
pub(crate) type L1Key = [u8; 16];

/// Fixed per-entry weight on top of the payload, for moka's byte accounting.
const ENTRY_OVERHEAD: u64 = 128;

/// What L1 keeps: the decoded entry plus what predicate invalidation needs.
pub(crate) struct L1Value {
    pub(crate) entry: Entry,
    pub(crate) scope: Scope,
    pub(crate) namespace: Arc<str>,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<L1Key, Arc<L1Value>> for PerEntryTtl {
    fn expire_after_create(&self, _: &L1Key, v: &Arc<L1Value>, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }

    fn expire_after_update(
        &self,
        _: &L1Key,
        v: &Arc<L1Value>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// The L1 cache; disabled when its capacity is 0.
pub(crate) struct L1 {
    cache: Option<Cache<L1Key, Arc<L1Value>>>,
    max_staleness: Duration,
}

impl L1 {
    pub(crate) fn new(capacity_bytes: u64, max_staleness_ms: u64) -> Self {
        let cache = (capacity_bytes > 0 && max_staleness_ms > 0).then(|| {
            Cache::builder()
                .max_capacity(capacity_bytes)
                .weigher(|_, v: &Arc<L1Value>| {
                    u32::try_from(v.entry.payload.len() as u64 + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
                })
                .expire_after(PerEntryTtl)
                .support_invalidation_closures()
                .build()
        });
        Self {
            cache,
            max_staleness: Duration::from_millis(max_staleness_ms),
        }
    }

    pub(crate) fn get(&self, key: &L1Key, now_ms: u64) -> Option<Arc<L1Value>> {
        let v = self.cache.as_ref()?.get(key)?;
        if v.entry.is_expired(now_ms) {
            self.invalidate(key);
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
        let ttl = match entry.expires_ms {
            Some(e) if e <= now_ms => return,
            Some(e) => self.max_staleness.min(Duration::from_millis(e - now_ms)),
            None => self.max_staleness,
        };
        cache.insert(
            key,
            Arc::new(L1Value {
                entry,
                scope,
                namespace,
                ttl,
            }),
        );
    }

    pub(crate) fn invalidate(&self, key: &L1Key) {
        if let Some(c) = &self.cache {
            c.invalidate(key);
        }
    }

    /// Drops every entry `pred` selects (tag, namespace or scope invalidation).
    pub(crate) fn invalidate_if(&self, pred: impl Fn(&L1Value) -> bool + Send + Sync + 'static) {
        if let Some(c) = &self.cache {
            // Only fails when closures are not enabled, and they are, in `new`.
            if let Err(e) = c.invalidate_entries_if(move |_, v| pred(v)) {
                tracing::error!(error = %e, "L1 predicate invalidation failed; clearing L1");
                c.invalidate_all();
            }
        }
    }

    pub(crate) fn clear(&self) {
        if let Some(c) = &self.cache {
            c.invalidate_all();
        }
    }

    /// Entries and weighted bytes (approximate: moka applies writes lazily).
    pub(crate) fn usage(&self) -> (u64, u64) {
        self.cache
            .as_ref()
            .map(|c| (c.entry_count(), c.weighted_size()))
            .unwrap_or((0, 0))
    }
}
