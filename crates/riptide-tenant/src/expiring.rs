//! [`ExpiringCache`]: a bounded map whose entries expire a fixed time after they were
//! written, for what the tenant layer keeps of the store (authenticated API keys, JWT
//! verification keys, data keys, stored usage names).
//!
//! Why not moka, which has expiry built in: one bounded-cache crate for the whole
//! persistence layer, and quick_cache (S3-FIFO, no background housekeeping) is the one
//! the cache's L1 and the tenant record cache already use. It has no expiry of its own,
//! so each value carries its deadline: a read past it is a miss, and removes the entry
//! unless a fresh value replaced it meanwhile. An expired entry nobody reads again
//! stays until S3-FIFO evicts it, within the capacity like any other.

use std::hash::Hash;
use std::time::{Duration, Instant};

use quick_cache::sync::{Cache, EntryAction, EntryResult};

#[derive(Clone)]
struct Stamped<V> {
    value: V,
    expires: Instant,
}

impl<V> Stamped<V> {
    fn fresh(&self, now: Instant) -> bool {
        now < self.expires
    }
}

/// A bounded map whose entries expire `ttl` after they were written.
pub(crate) struct ExpiringCache<K, V> {
    inner: Cache<K, Stamped<V>>,
    ttl: Duration,
}

impl<K: Eq + Hash + Clone, V: Clone> ExpiringCache<K, V> {
    /// At most about `capacity` entries, each living `ttl` after its last write.
    pub(crate) fn new(capacity: u64, ttl: Duration) -> Self {
        let capacity = usize::try_from(capacity.max(1)).unwrap_or(usize::MAX);
        Self {
            inner: Cache::new(capacity),
            ttl,
        }
    }

    /// The value under `key`, unless absent or expired.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let stamped = self.inner.get(key)?;
        let now = Instant::now();
        if stamped.fresh(now) {
            return Some(stamped.value);
        }
        self.inner.remove_if(key, |s| !s.fresh(now));
        None
    }

    /// Writes `value` under `key`, living `ttl` from now.
    pub(crate) fn insert(&self, key: K, value: V) {
        let expires = Instant::now() + self.ttl;
        self.inner.insert(key, Stamped { value, expires });
    }

    /// Replaces the value under `key` with `make(the current value)` in one step: no
    /// other write to `key` lands between the read and the write. The new value lives
    /// `ttl` from now.
    pub(crate) fn upsert_with(&self, key: K, make: impl FnOnce(Option<V>) -> V) {
        let mut make = Some(make);
        let now = Instant::now();
        let expires = now + self.ttl;
        let result = self.inner.entry(&key, None, |_, stamped| {
            let current = stamped.fresh(now).then(|| stamped.value.clone());
            if let Some(make) = make.take() {
                *stamped = Stamped {
                    value: make(current),
                    expires,
                };
            }
            EntryAction::Retain(())
        });
        if let EntryResult::Vacant(guard) = result
            && let Some(make) = make.take()
        {
            // Err only if a plain insert or a removal took the slot meanwhile: that
            // write is newer than this one.
            let _ = guard.insert(Stamped {
                value: make(None),
                expires,
            });
        }
    }

    /// Drops `key`'s entry.
    pub(crate) fn invalidate(&self, key: &K) {
        self.inner.remove(key);
    }

    /// Drops every entry.
    pub(crate) fn invalidate_all(&self) {
        self.inner.clear();
    }

    /// Entries held, expired ones not yet dropped included.
    pub(crate) fn entry_count(&self) -> u64 {
        self.inner.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_their_ttl() {
        let cache = ExpiringCache::new(10, Duration::from_millis(30));
        cache.insert("a", 1);
        assert_eq!(cache.get(&"a"), Some(1));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get(&"a"), None);
        assert_eq!(
            cache.entry_count(),
            0,
            "a read past the deadline drops the entry"
        );
    }

    #[test]
    fn upsert_sees_the_live_value_only() {
        let cache = ExpiringCache::new(10, Duration::from_millis(30));
        cache.upsert_with("a", |old| old.unwrap_or(0) + 1);
        cache.upsert_with("a", |old| old.unwrap_or(0) + 1);
        assert_eq!(cache.get(&"a"), Some(2));
        std::thread::sleep(Duration::from_millis(40));
        cache.upsert_with("a", |old| old.unwrap_or(0) + 1);
        assert_eq!(
            cache.get(&"a"),
            Some(1),
            "an expired value is not upserted on"
        );
    }

    #[test]
    fn capacity_bounds_the_entries() {
        let cache = ExpiringCache::new(100, Duration::from_secs(60));
        for i in 0..10_000 {
            cache.insert(i, i);
        }
        assert!(cache.entry_count() <= 200, "{}", cache.entry_count());
        cache.invalidate_all();
        assert_eq!(cache.entry_count(), 0);
    }
}
