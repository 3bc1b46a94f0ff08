//! Configuration sections of the persistence layer, with the seed's field names and defaults.
//!
//! Each field is read by the component named in its doc. The tenant section is in
//! `tenant.rs`; the state and sync sections in `state.rs`.

mod state;
mod tenant;

pub use state::{StateConfig, SyncConfig};
pub use tenant::{MeterPrice, PlanConfig, PriceTable, TenancyConfig, default_plans};

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::InvalidInput;
use crate::keys::DEFAULT_KEY_PREFIX;

/// Everything the persistence layer is configured with.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PersistenceConfig {
    /// Redis connection settings (used when the store URL is a Redis URL).
    pub redis: RedisConfig,
    /// Embedded store settings (used when the store URL is `embedded` or a path).
    pub embedded: EmbeddedConfig,
    /// Cache manager settings.
    pub cache: CacheConfig,
    /// Tenant manager settings.
    pub tenant: TenancyConfig,
    /// State manager settings.
    pub state: StateConfig,
    /// Coordination between instances.
    pub sync: SyncConfig,
}

impl PersistenceConfig {
    /// Checks every section.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        self.redis.validate()?;
        self.embedded.validate()?;
        self.cache.validate()?;
        self.tenant.validate()?;
        self.state.validate()?;
        self.sync.validate()
    }
}

/// Redis / DragonflyDB connection settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// The store URL, as the seed's `config.redis_url`: `redis://` or `rediss://` (one
    /// server), a comma-separated node list or `redis+cluster://` (a Cluster), or
    /// `embedded` / a directory path for the embedded store (the default). The service
    /// opens its store from this; library constructors take the URL they are given.
    pub url: String,
    /// Multiplexed connections per store (requests are spread round-robin over them).
    pub pool_size: usize,
    /// Timeout for establishing a connection, in milliseconds.
    pub connection_timeout_ms: u64,
    /// Timeout for one command or pipeline, in milliseconds.
    pub command_timeout_ms: u64,
    /// First segment of every key (`riptide`); lets several deployments share a server.
    pub key_prefix: String,
    /// Start (with a warning) on a Redis whose `maxmemory-policy` can evict keys without
    /// a TTL (`allkeys-*`), instead of refusing to.
    pub allow_evicting_policy: bool,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "embedded".to_owned(),
            pool_size: 4,
            connection_timeout_ms: 5_000,
            command_timeout_ms: 5_000,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            allow_evicting_policy: false,
        }
    }
}

impl RedisConfig {
    fn validate(&self) -> Result<(), InvalidInput> {
        if let Err(e) = crate::store::StoreUrl::parse(&self.url) {
            return Err(config_err("redis.url", &e.to_string()));
        }
        positive("redis.pool_size", self.pool_size as u64)?;
        if self.pool_size > 64 {
            return Err(config_err("redis.pool_size", "at most 64"));
        }
        positive("redis.connection_timeout_ms", self.connection_timeout_ms)?;
        positive("redis.command_timeout_ms", self.command_timeout_ms)?;
        validate_prefix("redis.key_prefix", &self.key_prefix)
    }
}

/// Embedded (`redb`) store settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Directory holding `riptide.redb` (used for the URL `embedded`).
    pub data_dir: PathBuf,
    /// How often the sweeper deletes expired entries, in milliseconds.
    pub sweep_interval_ms: u64,
    /// Most expired entries deleted by one sweep transaction.
    pub sweep_batch: usize,
    /// Cache writes use non-durable commits; a durable commit at this interval bounds
    /// what a crash can lose and lets redb reuse freed pages. Milliseconds.
    pub flush_interval_ms: u64,
    /// redb's page cache size in bytes.
    pub page_cache_bytes: usize,
    /// First segment of every key, as for Redis.
    pub key_prefix: String,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            sweep_interval_ms: 1_000,
            sweep_batch: 1_000,
            flush_interval_ms: 1_000,
            page_cache_bytes: 64 * 1024 * 1024,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
        }
    }
}

impl EmbeddedConfig {
    fn validate(&self) -> Result<(), InvalidInput> {
        positive("embedded.sweep_interval_ms", self.sweep_interval_ms)?;
        positive("embedded.sweep_batch", self.sweep_batch as u64)?;
        positive("embedded.flush_interval_ms", self.flush_interval_ms)?;
        if self.page_cache_bytes < 1024 * 1024 {
            return Err(config_err("embedded.page_cache_bytes", "at least 1 MiB"));
        }
        validate_prefix("embedded.key_prefix", &self.key_prefix)
    }
}

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

pub(crate) fn positive(key: &'static str, value: u64) -> Result<(), InvalidInput> {
    if value == 0 {
        Err(config_err(key, "must be greater than 0"))
    } else {
        Ok(())
    }
}

fn validate_prefix(key: &'static str, prefix: &str) -> Result<(), InvalidInput> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 32
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(config_err(key, "1 to 32 of [A-Za-z0-9_-]"))
    }
}

pub(crate) fn config_err(key: &'static str, reason: &str) -> InvalidInput {
    InvalidInput::Config {
        key,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_seed() {
        let cfg = PersistenceConfig::default();
        cfg.validate().unwrap();
        assert_eq!(cfg.cache.compression_threshold_bytes, 1024);
        assert_eq!(cfg.cache.default_tenant_budget_bytes, 100 * 1024 * 1024);
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        let mut cfg = PersistenceConfig::default();
        cfg.cache.zstd_level = 40;
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("cache.zstd_level")
        );
        for share in [0, 101] {
            let mut cfg = PersistenceConfig::default();
            cfg.cache.l1_tenant_share_percent = share;
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains("cache.l1_tenant_share_percent"), "{err}");
        }
        let mut cfg = PersistenceConfig::default();
        cfg.redis.key_prefix = "a:{b}".into();
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("redis.key_prefix")
        );
    }
}
