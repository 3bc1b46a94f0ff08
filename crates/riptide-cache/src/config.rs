//! The cache's configuration section: `cache`.

use serde::{Deserialize, Serialize};

use riptide_store::error::{InvalidInput, config_err, positive};

/// Compression codec for cache values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CompressionAlgorithm {
    /// LZ4 block format (fast; the default).
    #[default]
    Lz4,
    /// Zstandard at `zstd_level` (smaller, slower).
    Zstd,
}

/// Cache manager settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// TTL of entries written without one, in seconds (0: no TTL).
    pub default_ttl_seconds: u64,
    /// Compress values above `compression_threshold_bytes`.
    pub enable_compression: bool,
    /// Values at or below this size are stored uncompressed.
    pub compression_threshold_bytes: usize,
    /// LZ4 or Zstd.
    pub compression_algorithm: CompressionAlgorithm,
    /// Zstd level (1 to 19).
    pub zstd_level: i32,
    /// Largest value accepted (before compression); larger sets fail with a clear error.
    pub max_entry_size_bytes: usize,
    /// Allow `warm_cache`.
    pub enable_warming: bool,
    /// Loads running at once while warming.
    pub warming_concurrency: usize,
    /// An entry that expires within this many seconds is warmed again.
    pub warming_refresh_before_expiry_seconds: u64,
    /// In-process (L1) cache capacity in bytes (0 disables L1).
    pub l1_capacity_bytes: u64,
    /// Longest time an L1 entry is served without re-reading the store, in milliseconds:
    /// bounds staleness when another instance changes an entry.
    pub l1_max_staleness_ms: u64,
    /// Most of L1 one tenant may hold, in percent of `l1_capacity_bytes` (1 to 100). An
    /// entry that would take its tenant past it is not put into L1 (it is stored and
    /// served from the store as usual; `cache_l1_admission_refused_total` counts it), so
    /// one tenant reading many distinct entries cannot push the other tenants' hot
    /// entries out. The default, 25, leaves at least three quarters of L1 to the other
    /// tenants whatever one does, and lets four or more busy tenants use all of it;
    /// deployments with fewer tenants sharing an instance raise it (100 turns the limit
    /// off). Entries without a tenant (the global scope) are not limited.
    pub l1_tenant_share_percent: u32,
    /// How long `get_or_load` waits for another caller's load of the same key, in ms.
    pub load_timeout_ms: u64,
    /// Cache budget of a tenant whose plan sets none, in bytes (seed: 100 MB).
    pub default_tenant_budget_bytes: u64,
    /// Tenants with their own stats and metric labels; the rest are counted as `_other`.
    pub max_tracked_tenants: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            default_ttl_seconds: 3_600,
            enable_compression: true,
            compression_threshold_bytes: 1_024,
            compression_algorithm: CompressionAlgorithm::Lz4,
            zstd_level: 3,
            max_entry_size_bytes: 20 * 1024 * 1024,
            enable_warming: true,
            warming_concurrency: 8,
            warming_refresh_before_expiry_seconds: 60,
            l1_capacity_bytes: 64 * 1024 * 1024,
            l1_max_staleness_ms: 5_000,
            l1_tenant_share_percent: 25,
            load_timeout_ms: 30_000,
            default_tenant_budget_bytes: 100 * 1024 * 1024,
            max_tracked_tenants: 1_000,
        }
    }
}

impl CacheConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if !(1..=19).contains(&self.zstd_level) {
            return Err(config_err("cache.zstd_level", "between 1 and 19"));
        }
        positive(
            "cache.max_entry_size_bytes",
            self.max_entry_size_bytes as u64,
        )?;
        positive("cache.warming_concurrency", self.warming_concurrency as u64)?;
        if !(1..=100).contains(&self.l1_tenant_share_percent) {
            return Err(config_err(
                "cache.l1_tenant_share_percent",
                "between 1 and 100",
            ));
        }
        positive("cache.load_timeout_ms", self.load_timeout_ms)?;
        positive(
            "cache.default_tenant_budget_bytes",
            self.default_tenant_budget_bytes,
        )?;
        positive("cache.max_tracked_tenants", self.max_tracked_tenants as u64)
    }
}
