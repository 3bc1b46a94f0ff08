//! Tombstones: security decisions that outlive a checkpoint restore (issue 10, item 1).
//!
//! A restore copies old records back; without a memory of what was taken away since,
//! it would bring back revoked API keys and deleted tenants with their data keys. So
//! every deletion of a tenant and every revocation of an API key leaves a tombstone,
//! and restore refuses what a tombstone names.
//!
//! | key | what |
//! |---|---|
//! | `<p>:tombstones:tenants` | sorted set: tenant id, scored by its (last) deletion ms |
//! | `<p>:tombstones:api_keys` | sorted set: `<tenant>/<key_id>`, scored by revocation ms |
//! | `<p>:tombstones:horizon` | record: ms (decimal) before which tombstones were pruned |
//!
//! A restore never writes these keys (the checkpoint layout has no line for them), so
//! a restore never removes a tombstone. They are bounded by age: the audit pruner
//! drops tombstones older than `tenant.audit_retention_days` (a decision is remembered
//! as long as the audit record of it), raising the horizon first; restore refuses a
//! checkpoint taken before the horizon, since the tombstones that would guard it are
//! gone.

use riptide_store::tenant_id::TenantId;
use riptide_store::{Durability, Store, StoreResult};

/// Compare-and-swap tries when raising the horizon.
const HORIZON_ATTEMPTS: usize = 16;

/// The tenant tombstones' key.
pub fn tenants_key(prefix: &str) -> String {
    format!("{prefix}:tombstones:tenants")
}

/// The API key tombstones' key.
pub fn api_keys_key(prefix: &str) -> String {
    format!("{prefix}:tombstones:api_keys")
}

fn horizon_key(prefix: &str) -> String {
    format!("{prefix}:tombstones:horizon")
}

fn api_key_member(tenant: &str, key_id: &str) -> String {
    format!("{tenant}/{key_id}")
}

fn score(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// Remembers that `tenant` was deleted at `at_ms` (a later deletion replaces the time).
pub async fn tenant_deleted(store: &dyn Store, tenant: &TenantId, at_ms: u64) -> StoreResult<()> {
    let key = tenants_key(store.key_prefix());
    store
        .zset_add(&key, &[(tenant.to_string(), score(at_ms))])
        .await
}

/// Remembers that key `key_id` of `tenant` was revoked at `at_ms` (the first time
/// counts: a repeated revocation keeps it).
pub async fn api_key_revoked(
    store: &dyn Store,
    tenant: &TenantId,
    key_id: &str,
    at_ms: u64,
) -> StoreResult<()> {
    let key = api_keys_key(store.key_prefix());
    let member = api_key_member(tenant.as_str(), key_id);
    if store.zset_score(&key, &member).await?.is_some() {
        return Ok(());
    }
    store.zset_add(&key, &[(member, score(at_ms))]).await
}

/// When `tenant` was last deleted, if it ever was (within the retention).
pub async fn tenant_deleted_at(store: &dyn Store, tenant: &str) -> StoreResult<Option<i64>> {
    store
        .zset_score(&tenants_key(store.key_prefix()), tenant)
        .await
}

/// When key `key_id` of `tenant` was revoked, if it was (within the retention).
pub async fn api_key_revoked_at(
    store: &dyn Store,
    tenant: &str,
    key_id: &str,
) -> StoreResult<Option<i64>> {
    let member = api_key_member(tenant, key_id);
    store
        .zset_score(&api_keys_key(store.key_prefix()), &member)
        .await
}

/// Ms before which tombstones may have been pruned (0 when never pruned).
pub async fn horizon(store: &dyn Store) -> StoreResult<i64> {
    let raw = store.get(&horizon_key(store.key_prefix())).await?;
    Ok(raw
        .and_then(|b| std::str::from_utf8(&b).ok()?.trim().parse().ok())
        .unwrap_or(0))
}

/// Drops tombstones older than `retention_days` before `now_ms`, after raising the
/// horizon to the cut-off (so a restore never sees a pruned tombstone as absent
/// without also refusing the checkpoint it guarded). Returns how many went.
pub async fn prune(store: &dyn Store, now_ms: u64, retention_days: u32) -> StoreResult<u64> {
    if retention_days == 0 {
        return Ok(0);
    }
    let cutoff = score(now_ms.saturating_sub(u64::from(retention_days) * 86_400_000));
    raise_horizon(store, cutoff).await?;
    let prefix = store.key_prefix();
    let mut removed = 0;
    for key in [tenants_key(prefix), api_keys_key(prefix)] {
        removed += store
            .zset_remove_by_score(&key, i64::MIN, cutoff.saturating_sub(1))
            .await?;
    }
    if removed > 0 {
        tracing::info!(
            tombstones = removed,
            horizon_ms = cutoff,
            "pruned tombstones older than the audit retention"
        );
    }
    Ok(removed)
}

/// Sets the horizon to `to` unless it is already later.
async fn raise_horizon(store: &dyn Store, to: i64) -> StoreResult<()> {
    let key = horizon_key(store.key_prefix());
    let new = to.to_string();
    for _ in 0..HORIZON_ATTEMPTS {
        let old = store.get(&key).await?;
        let current = old
            .as_ref()
            .and_then(|b| std::str::from_utf8(b).ok()?.trim().parse::<i64>().ok())
            .unwrap_or(0);
        if current >= to {
            return Ok(());
        }
        if store
            .compare_and_swap(
                &key,
                old.as_deref(),
                Some(new.as_bytes()),
                Durability::Durable,
            )
            .await?
        {
            return Ok(());
        }
    }
    // Another instance is raising it at the same time: it ends at least as high.
    Ok(())
}
