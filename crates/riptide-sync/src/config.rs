//! The sync layer's configuration section: `sync`.

use serde::{Deserialize, Serialize};

use riptide_store::error::{InvalidInput, config_err, positive};

/// The `sync` section: how instances sharing a store coordinate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// How often an instance writes its heartbeat, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// An instance not heard from for this long is listed as gone, in milliseconds.
    pub instance_ttl_ms: u64,
    /// Lifetime of a singleton-job lease; the holder renews it at a third of this, and
    /// another instance takes over within one lease after the holder dies.
    pub lease_ttl_ms: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 1_000,
            instance_ttl_ms: 5_000,
            lease_ttl_ms: 5_000,
        }
    }
}

impl SyncConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        positive("sync.heartbeat_interval_ms", self.heartbeat_interval_ms)?;
        if self.instance_ttl_ms <= self.heartbeat_interval_ms {
            return Err(config_err(
                "sync.instance_ttl_ms",
                "must exceed sync.heartbeat_interval_ms",
            ));
        }
        if self.lease_ttl_ms < 30 {
            return Err(config_err("sync.lease_ttl_ms", "at least 30"));
        }
        Ok(())
    }
}
