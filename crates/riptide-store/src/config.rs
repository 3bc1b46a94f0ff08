//! The store's configuration sections: `redis` and `embedded`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{InvalidInput, config_err, positive};
use crate::keys::DEFAULT_KEY_PREFIX;

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
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if let Err(e) = crate::StoreUrl::parse(&self.url) {
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
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        positive("embedded.sweep_interval_ms", self.sweep_interval_ms)?;
        positive("embedded.sweep_batch", self.sweep_batch as u64)?;
        positive("embedded.flush_interval_ms", self.flush_interval_ms)?;
        if self.page_cache_bytes < 1024 * 1024 {
            return Err(config_err("embedded.page_cache_bytes", "at least 1 MiB"));
        }
        validate_prefix("embedded.key_prefix", &self.key_prefix)
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
