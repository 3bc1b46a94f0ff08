//! The seed's rollback plan: the old string `get`/`set` interface over the new cache.

use std::sync::Arc;
use std::time::Duration;

use super::CacheResult;
use super::manager::PersistentCacheManager;

/// The legacy `CacheManager` interface (`&mut self`, strings, TTL in seconds), backed by
/// the global scope of a [`PersistentCacheManager`], so old handlers keep working while
/// they migrate.
pub struct LegacyCacheAdapter {
    cache: Arc<PersistentCacheManager>,
}

impl LegacyCacheAdapter {
    /// Wraps a cache manager.
    pub fn new(cache: Arc<PersistentCacheManager>) -> Self {
        Self { cache }
    }

    /// The string stored under `key`, if any.
    pub async fn get(&mut self, key: &str) -> CacheResult<Option<String>> {
        self.cache.get(key, None).await
    }

    /// Stores `value` under `key` for `ttl` seconds (0 means the default TTL).
    pub async fn set(&mut self, key: &str, value: &str, ttl: u64) -> CacheResult<()> {
        let ttl = (ttl > 0).then(|| Duration::from_secs(ttl));
        self.cache.set(key, value, None, ttl, None).await
    }
}
