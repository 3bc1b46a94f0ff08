//! The cache settings a running [`PersistentCacheManager`] changes without a restart:
//! the default TTL, compression and whether warming is allowed.
//!
//! The manager keeps the configuration it was built with (L1 size, entry size limit,
//! load timeouts... read once) and, beside it, an `ArcSwap` of the settings in force:
//! that configuration with the [`LIVE_CACHE_KEYS`] as last applied. A write loads it
//! once, so every entry of one batch is encoded with the same settings; entries already
//! stored keep the TTL and compression they were written with (an envelope records its
//! own codec, so old and new entries read alike).

use std::sync::Arc;

use super::CacheResult;
use super::manager::PersistentCacheManager;
use crate::config::CacheConfig;

/// The keys of the `cache` section [`PersistentCacheManager::apply_live_settings`]
/// applies; every other key keeps the value the manager was built with.
pub const LIVE_CACHE_KEYS: [&str; 6] = [
    "default_ttl_seconds",
    "enable_compression",
    "compression_threshold_bytes",
    "compression_algorithm",
    "zstd_level",
    "enable_warming",
];

/// `running` with the live keys of `next`, and the names of those that differ.
fn merge(running: &CacheConfig, next: &CacheConfig) -> (CacheConfig, Vec<&'static str>) {
    let merged = CacheConfig {
        default_ttl_seconds: next.default_ttl_seconds,
        enable_compression: next.enable_compression,
        compression_threshold_bytes: next.compression_threshold_bytes,
        compression_algorithm: next.compression_algorithm,
        zstd_level: next.zstd_level,
        enable_warming: next.enable_warming,
        ..running.clone()
    };
    let differs = [
        running.default_ttl_seconds != merged.default_ttl_seconds,
        running.enable_compression != merged.enable_compression,
        running.compression_threshold_bytes != merged.compression_threshold_bytes,
        running.compression_algorithm != merged.compression_algorithm,
        running.zstd_level != merged.zstd_level,
        running.enable_warming != merged.enable_warming,
    ];
    let changed = LIVE_CACHE_KEYS
        .iter()
        .zip(differs)
        .filter_map(|(key, differs)| differs.then_some(*key))
        .collect();
    (merged, changed)
}

impl PersistentCacheManager {
    /// The settings in force: the configuration the manager was built with, with the
    /// [`LIVE_CACHE_KEYS`] as last applied.
    pub fn settings(&self) -> Arc<CacheConfig> {
        self.live.load_full()
    }

    /// Whether `warm_cache` may run now (`enable_warming` as last applied).
    pub fn warming_enabled(&self) -> bool {
        self.live.load().enable_warming
    }

    /// Applies the [`LIVE_CACHE_KEYS`] of `next` to writes from now on; the other keys
    /// of `next` are ignored (they take effect when a manager is built with them).
    ///
    /// `next` is validated as a whole first: an invalid one changes nothing and is
    /// returned as [`super::CacheError::Invalid`]. Returns the keys whose value changed
    /// (empty when none did).
    pub fn apply_live_settings(&self, next: &CacheConfig) -> CacheResult<Vec<&'static str>> {
        next.validate()?;
        let running = self.live.load_full();
        let (merged, changed) = merge(&running, next);
        if !changed.is_empty() {
            self.live.store(Arc::new(merged));
            tracing::info!(cache.changed_keys = ?changed, "live cache settings applied");
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CompressionAlgorithm;

    #[test]
    fn only_live_keys_are_merged_and_reported() {
        let running = CacheConfig::default();
        let next = CacheConfig {
            default_ttl_seconds: 5,
            compression_algorithm: CompressionAlgorithm::Zstd,
            l1_capacity_bytes: 1,
            max_entry_size_bytes: 7,
            ..CacheConfig::default()
        };
        let (merged, changed) = merge(&running, &next);
        assert_eq!(changed, ["default_ttl_seconds", "compression_algorithm"]);
        assert_eq!(merged.default_ttl_seconds, 5);
        assert_eq!(merged.compression_algorithm, CompressionAlgorithm::Zstd);
        assert_eq!(merged.l1_capacity_bytes, running.l1_capacity_bytes);
        assert_eq!(merged.max_entry_size_bytes, running.max_entry_size_bytes);
        assert!(merge(&running, &running).1.is_empty());
    }

    #[test]
    fn every_live_key_is_a_cache_field() {
        let value = serde_json::to_value(CacheConfig::default()).expect("serialize");
        for key in LIVE_CACHE_KEYS {
            assert!(value.get(key).is_some(), "{key}");
        }
    }
}
