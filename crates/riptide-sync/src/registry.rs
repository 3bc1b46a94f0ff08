//! The instance registry: every instance heartbeats into a sorted set, so any of them
//! can list who shares the store and when each was last heard from.
//!
//! Keys, under the `{sync}` hash tag so that one `get_many` reads every record on one
//! Redis Cluster slot:
//!
//! | what | key |
//! |---|---|
//! | instance id → last heartbeat (ms since the epoch) | `<p>:{sync}:instances` (sorted set) |
//! | an instance's record, expiring after `instance_ttl_ms` | `<p>:{sync}:instance:<id>` (JSON) |
//!
//! Heartbeat times come from each instance's injected clock, and liveness is judged by
//! the reader's clock: instances on different machines need clocks within a fraction of
//! `instance_ttl_ms` of each other (NTP is plenty). An instance that stops gracefully
//! removes itself; one that dies stays listed, not alive, until it is pruned after
//! [`PRUNE_AFTER_TTLS`] × `instance_ttl_ms`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::{Shared, SyncError};
use crate::InstanceInfo;
use riptide_store::{Durability, StoreResult};

/// A member not heard from for this many `instance_ttl_ms` is removed from the registry.
pub const PRUNE_AFTER_TTLS: u64 = 10;

/// Most instances [`super::DistributedSync::instances`] lists (the most recently seen).
pub const MAX_LISTED_INSTANCES: u64 = 1_000;

/// Prune the registry on every this many heartbeats (and on the first).
const PRUNE_EVERY_BEATS: u64 = 10;

/// Longest host-name part of an instance id, in bytes.
const MAX_HOST_LEN: usize = 48;

/// How long deregistration may take on shutdown.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(2);

/// The record an instance keeps at `<p>:{sync}:instance:<id>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct InstanceRecord {
    id: String,
    started_at: DateTime<Utc>,
    pid: u32,
    version: String,
}

/// The registry's keys under one store prefix.
#[derive(Debug, Clone)]
pub(crate) struct RegistryKeys {
    instances: String,
    record_base: String,
}

impl RegistryKeys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            instances: format!("{prefix}:{{sync}}:instances"),
            record_base: format!("{prefix}:{{sync}}:instance:"),
        }
    }

    fn record(&self, id: &str) -> String {
        format!("{}{id}", self.record_base)
    }
}

/// A new instance id: `<host>-<8 random [a-z0-9]>`, where `<host>` is the host name
/// lower-cased, reduced to `[a-z0-9-]` and at most 48 bytes, or `riptide` when there is
/// none. At most 57 bytes, so it fits a lease holder and a metric label.
pub(crate) fn new_instance_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|raw| sanitize_host(&raw))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "riptide".to_owned());
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let suffix: String = (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{host}-{suffix}")
}

/// Lower-cases `raw`, maps anything outside `[a-z0-9-]` to `-`, trims dashes and
/// shortens it to [`MAX_HOST_LEN`] bytes.
fn sanitize_host(raw: &str) -> String {
    let mapped: String = raw
        .trim()
        .chars()
        .take(MAX_HOST_LEN * 2)
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut host = mapped.trim_matches('-').to_owned();
    host.truncate(MAX_HOST_LEN);
    host.trim_end_matches('-').to_owned()
}

fn to_datetime(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::UNIX_EPOCH)
}

fn saturating_i64(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

impl Shared {
    /// Writes one heartbeat: the sorted-set score, the record, and every
    /// [`PRUNE_EVERY_BEATS`] beats, a prune of long-gone members.
    pub(crate) async fn heartbeat(&self, beat: u64) -> StoreResult<()> {
        let now = saturating_i64(self.clock.now_ms());
        let keys = &self.registry_keys;
        self.store
            .zset_add(&keys.instances, &[(self.id.clone(), now)])
            .await?;
        self.store
            .set(
                &keys.record(&self.id),
                &self.record_json,
                Some(self.cfg.instance_ttl_ms),
                Durability::Cache,
            )
            .await?;
        if beat.is_multiple_of(PRUNE_EVERY_BEATS) {
            let horizon = self.cfg.instance_ttl_ms.saturating_mul(PRUNE_AFTER_TTLS);
            let before = now.saturating_sub(saturating_i64(horizon));
            self.store
                .zset_remove_by_score(&keys.instances, i64::MIN, before.saturating_sub(1))
                .await?;
        }
        Ok(())
    }

    /// This instance's record, encoded once.
    pub(crate) fn encode_record(id: &str, started_at_ms: u64) -> Result<Vec<u8>, SyncError> {
        let record = InstanceRecord {
            id: id.to_owned(),
            started_at: to_datetime(saturating_i64(started_at_ms)),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        serde_json::to_vec(&record).map_err(|e| SyncError::Message(format!("instance record: {e}")))
    }

    /// Removes this instance from the registry (graceful stop).
    async fn deregister(&self) -> StoreResult<()> {
        let keys = &self.registry_keys;
        self.store
            .zset_remove(&keys.instances, std::slice::from_ref(&self.id))
            .await?;
        self.store.delete(&[keys.record(&self.id)]).await?;
        Ok(())
    }

    /// The instances seen within the prune horizon, most recently seen first.
    pub(crate) async fn list_instances(&self) -> Result<Vec<InstanceInfo>, SyncError> {
        let now = self.clock.now_ms();
        let horizon = self.cfg.instance_ttl_ms.saturating_mul(PRUNE_AFTER_TTLS);
        let min = saturating_i64(now.saturating_sub(horizon));
        let keys = &self.registry_keys;
        let mut members = self
            .store
            .zset_range_by_score(&keys.instances, min, i64::MAX, MAX_LISTED_INSTANCES)
            .await?;
        // Most recent first; ties by id, so the order is stable.
        members.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let record_keys: Vec<String> = members.iter().map(|(id, _)| keys.record(id)).collect();
        let records = if record_keys.is_empty() {
            Vec::new()
        } else {
            self.store.get_many(&record_keys).await?
        };
        let ttl = self.cfg.instance_ttl_ms;
        Ok(members
            .into_iter()
            .enumerate()
            .map(|(i, (id, seen))| {
                let record = records
                    .get(i)
                    .and_then(Option::as_ref)
                    .and_then(|raw| serde_json::from_slice::<InstanceRecord>(raw).ok())
                    .filter(|r| r.id == id);
                let seen_ms = u64::try_from(seen).unwrap_or(0);
                InstanceInfo {
                    is_self: id == self.id,
                    // A heartbeat from a clock slightly ahead of ours counts as now.
                    alive: now.saturating_sub(seen_ms) <= ttl,
                    last_seen: to_datetime(seen),
                    started_at: record.as_ref().map(|r| r.started_at),
                    pid: record.as_ref().map(|r| r.pid),
                    version: record.map(|r| r.version),
                    id,
                }
            })
            .collect())
    }
}

/// Heartbeats every `heartbeat_interval_ms` until cancelled, then deregisters.
pub(crate) async fn heartbeat_loop(shared: Arc<Shared>, cancel: CancellationToken) {
    let period = Duration::from_millis(shared.cfg.heartbeat_interval_ms);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Beat 0 was written by `start`.
    let mut beat: u64 = 1;
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            _ = ticks.tick() => {}
        }
        if let Err(e) = shared.heartbeat(beat).await {
            shared.metrics.heartbeat_failures.increment(1);
            shared.store_log.warn(&format!("heartbeat failed: {e}"));
        }
        beat = beat.wrapping_add(1);
    }
    match tokio::time::timeout(DEREGISTER_TIMEOUT, shared.deregister()).await {
        Ok(Ok(())) => tracing::debug!(instance.id = %shared.id, "left the instance registry"),
        Ok(Err(e)) => tracing::warn!(
            instance.id = %shared.id, error = %e,
            "could not leave the instance registry; it will be listed as not alive"
        ),
        Err(_) => tracing::warn!(
            instance.id = %shared.id,
            "leaving the instance registry timed out; it will be listed as not alive"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_reduced_to_a_safe_alphabet() {
        assert_eq!(sanitize_host("Web-1.Example.COM\n"), "web-1-example-com");
        assert_eq!(sanitize_host("  --__--  "), "");
        assert_eq!(sanitize_host("höst"), "h-st");
        let long = sanitize_host(&"a-".repeat(100));
        assert!(long.len() <= MAX_HOST_LEN && !long.ends_with('-'), "{long}");
    }

    #[test]
    fn instance_ids_are_bounded_lowercase_and_distinct() {
        let a = new_instance_id();
        let b = new_instance_id();
        assert_ne!(a, b);
        for id in [a, b] {
            assert!(id.len() <= MAX_HOST_LEN + 9, "{id}");
            assert!(
                id.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'),
                "{id}"
            );
            let (host, suffix) = id.rsplit_once('-').unwrap();
            assert!(!host.is_empty());
            assert_eq!(suffix.len(), 8);
        }
    }

    #[test]
    fn registry_keys_share_one_hash_tag() {
        let k = RegistryKeys::new("riptide");
        assert_eq!(k.instances, "riptide:{sync}:instances");
        assert_eq!(k.record("h-1"), "riptide:{sync}:instance:h-1");
    }
}
