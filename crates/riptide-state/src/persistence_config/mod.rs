//! The whole configuration of the persistence layer, [`PersistenceConfig`]: one section
//! per layer, each defined, defaulted and validated by the layer that reads it
//! (`store/config.rs`, `cache/config.rs`, `tenant/config.rs`, `state/config.rs`,
//! `sync/config.rs`), with the seed's field names and defaults. The sections are
//! re-exported here so `config::CacheConfig` and the like keep working.

mod schema;

use serde::{Deserialize, Serialize};

pub use schema::{
    PERSISTENCE_LIVE, PERSISTENCE_RESTART_ONLY, PERSISTENCE_SECTION, PersistenceSchema,
};

pub use crate::config::StateConfig;
pub use riptide_cache::config::{CacheConfig, CompressionAlgorithm};
pub use riptide_store::config::{EmbeddedConfig, RedisConfig};
use riptide_store::error::InvalidInput;
use riptide_store::{SharedStore, StoreResult};
pub use riptide_sync::config::SyncConfig;
pub use riptide_tenant::config::{
    MeterPrice, PlanConfig, PriceTable, TenancyConfig, default_plans,
};

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

    /// Opens (or shares) the store `url` names with this configuration's store sections.
    pub async fn open_store(&self, url: &str) -> StoreResult<SharedStore> {
        riptide_store::open_store(url, &self.redis, &self.embedded).await
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
