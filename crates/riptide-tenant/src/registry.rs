//! Tenant records in the store: the record itself, its quota overrides (read by the
//! rate-limit script), the registry of all tenants, and a short-lived in-process cache.
//!
//! | key | what |
//! |---|---|
//! | `<p>:tenant:{<id>}:meta` | the [`Tenant`] as JSON (durable) |
//! | `<p>:tenant:{<id>}:q` | quota overrides as counters (`operations_per_minute`, `burst`, ...) |
//! | `<p>:tenant:{<id>}:deleting` | tombstone of a deletion whose clean-up has not finished |
//! | `<p>:tenants` | registry: sorted set of ids by creation time |
//!
//! A tenant exists exactly when its `meta` record does: every read and every
//! authentication goes through it. Creation and deletion write `meta` together with
//! what must change with it in one [`Store::write_atomic`] (see `lifecycle.rs`).
//!
//! [`Store::write_atomic`]: riptide_store::Store::write_atomic

use std::sync::Arc;
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;

use super::error::{TenantError, TenantResult};
use super::model::Tenant;
use super::resource::Resource;
use riptide_store::keys::{Scope, ScopeKeys, records};
use riptide_store::tenant_id::TenantId;
use riptide_store::{Durability, SharedStore, StoreKind, WriteOp};

/// Most tenant records cached in process.
const RECORD_CACHE_CAPACITY: usize = 100_000;
/// The record that makes a tenant exist (see the module docs).
pub(super) const TENANT_RECORD: &str = records::TENANT;
/// The tombstone a deletion leaves until its clean-up has finished.
const TOMBSTONE: &str = records::DELETING;
/// Tries of a read-modify-write before giving up with `Conflict`.
const CAS_RETRIES: usize = 8;

/// Called with every record read from or written to the store, so what derives from a
/// record on this instance (cache budget, encryption setting) follows it.
pub(super) type OnLoad = Box<dyn Fn(&TenantId, &Tenant) + Send + Sync>;

/// Reads and writes tenant records.
pub(super) struct Registry {
    store: SharedStore,
    /// Records (or their absence) with when they were read: quick_cache has no
    /// housekeeping on the read path (moka's costs the quota check its p99), and the age
    /// is checked on read instead.
    cache: Cache<TenantId, (Instant, Option<Arc<Tenant>>)>,
    ttl: Duration,
    on_load: OnLoad,
}

impl Registry {
    pub(super) fn new(store: SharedStore, cache_ttl_ms: u64, on_load: OnLoad) -> Self {
        Self {
            store,
            cache: Cache::new(RECORD_CACHE_CAPACITY),
            ttl: Duration::from_millis(cache_ttl_ms),
            on_load,
        }
    }

    pub(super) fn keys(&self, id: &TenantId) -> ScopeKeys {
        ScopeKeys::new(self.store.key_prefix(), &Scope::Tenant(id.clone()))
    }

    fn registry_key(&self) -> String {
        format!("{}:tenants", self.store.key_prefix())
    }

    /// The tenant's tombstone key (see [`Self::creation_ops`] and [`Self::deletion_ops`]).
    pub(super) fn tombstone(&self, id: &TenantId) -> String {
        self.keys(id).record(TOMBSTONE)
    }

    /// Whether the registry entry can be written in the same atomic write as the
    /// tenant's own keys. Not on a Cluster: the registry is one key for all tenants, so
    /// it lives on another slot than the tenant's `{<id>}` keys.
    pub(super) fn entry_is_atomic(&self) -> bool {
        self.store.kind() != StoreKind::RedisCluster
    }

    /// The ops that create `tenant`: its record (only if absent, and only if no
    /// unfinished deletion of the same id left its tombstone), its quota overrides
    /// and, when [`Self::entry_is_atomic`], its registry entry.
    pub(super) fn creation_ops(&self, tenant: &Tenant) -> TenantResult<Vec<WriteOp>> {
        let id = TenantId::parse(tenant.id())?;
        let keys = self.keys(&id);
        let mut ops = vec![
            WriteOp::absent(keys.record(TENANT_RECORD)),
            WriteOp::absent(self.tombstone(&id)),
            WriteOp::put(keys.record(TENANT_RECORD), encode(tenant)?),
            WriteOp::Counters {
                key: keys.record(records::QUOTA_OVERRIDES),
                fields: quota_fields(tenant),
            },
        ];
        if self.entry_is_atomic() {
            ops.push(WriteOp::ZsetAdd {
                key: self.registry_key(),
                members: vec![(id.to_string(), tenant.config.created_at.timestamp_millis())],
            });
        }
        Ok(ops)
    }

    /// After the creation ops were written: what this instance derives from the record.
    pub(super) fn created(&self, id: &TenantId, tenant: &Tenant) {
        (self.on_load)(id, tenant);
        self.cache.remove(id);
    }

    /// Whether the store holds the tenant's record (not the in-process cache).
    pub(super) async fn stored(&self, id: &TenantId) -> TenantResult<bool> {
        Ok(self
            .store
            .get(&self.keys(id).record(TENANT_RECORD))
            .await?
            .is_some())
    }

    /// The ops that make a tenant stop existing: its record, quota overrides and (when
    /// [`Self::entry_is_atomic`]) registry entry go, and a tombstone stays until the
    /// clean-up of everything else has finished ([`Self::clean_up_done`]).
    pub(super) fn deletion_ops(&self, id: &TenantId, now_ms: i64) -> Vec<WriteOp> {
        let keys = self.keys(id);
        let mut ops = vec![
            WriteOp::put(self.tombstone(id), now_ms.to_string().into_bytes()),
            WriteOp::delete(keys.record(TENANT_RECORD)),
            WriteOp::delete(keys.record(records::QUOTA_OVERRIDES)),
        ];
        if self.entry_is_atomic() {
            ops.push(WriteOp::ZsetRemove {
                key: self.registry_key(),
                members: vec![id.to_string()],
            });
        }
        ops
    }

    /// Whether a deletion of `id` left its tombstone (its clean-up has not finished).
    pub(super) async fn deletion_pending(&self, id: &TenantId) -> TenantResult<bool> {
        Ok(self.store.get(&self.tombstone(id)).await?.is_some())
    }

    /// Removes the tombstone: the deletion's clean-up is complete.
    pub(super) async fn clean_up_done(&self, id: &TenantId) -> TenantResult<()> {
        self.store.delete(&[self.tombstone(id)]).await?;
        Ok(())
    }

    /// The tenant, from the in-process cache (at most `record_cache_ttl_ms` old) or the store.
    pub(super) async fn get(&self, id: &TenantId) -> TenantResult<Option<Arc<Tenant>>> {
        if let Some((read_at, hit)) = self.cache.get(id)
            && read_at.elapsed() < self.ttl
        {
            return Ok(hit);
        }
        let fresh = self.load(id).await?.map(|(t, _)| Arc::new(t));
        if let Some(t) = &fresh {
            (self.on_load)(id, t);
        }
        self.cache
            .insert(id.clone(), (Instant::now(), fresh.clone()));
        Ok(fresh)
    }

    /// The tenant and its raw bytes straight from the store.
    async fn load(&self, id: &TenantId) -> TenantResult<Option<(Tenant, bytes::Bytes)>> {
        let key = self.keys(id).record(TENANT_RECORD);
        let Some(raw) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let tenant = serde_json::from_slice(&raw).map_err(|e| TenantError::Corrupt {
            key,
            reason: e.to_string(),
        })?;
        Ok(Some((tenant, raw)))
    }

    /// Read-modify-write of a tenant under compare-and-swap; `change` may refuse.
    pub(super) async fn update<F>(&self, id: &TenantId, mut change: F) -> TenantResult<Tenant>
    where
        F: FnMut(&mut Tenant) -> TenantResult<()>,
    {
        let key = self.keys(id).record(TENANT_RECORD);
        for _ in 0..CAS_RETRIES {
            let Some((mut tenant, raw)) = self.load(id).await? else {
                return Err(TenantError::tenant_not_found(id.as_str()));
            };
            change(&mut tenant)?;
            tenant.version += 1;
            let json = encode(&tenant)?;
            let swapped = self
                .store
                .compare_and_swap(&key, Some(&raw), Some(&json), Durability::Durable)
                .await?;
            self.cache.remove(id);
            if swapped {
                (self.on_load)(id, &tenant);
                return Ok(tenant);
            }
        }
        Err(TenantError::Conflict(id.to_string()))
    }

    /// Mirrors the quotas the rate-limit script reads into the counters record `q`.
    pub(super) async fn write_quota_overrides(&self, tenant: &Tenant) -> TenantResult<()> {
        let id = TenantId::parse(tenant.id())?;
        self.store
            .counters_set(
                &self.keys(&id).record(records::QUOTA_OVERRIDES),
                &quota_fields(tenant),
            )
            .await?;
        Ok(())
    }

    /// Adds the id to the registry.
    pub(super) async fn register(&self, id: &TenantId, created_ms: i64) -> TenantResult<()> {
        self.store
            .zset_add(&self.registry_key(), &[(id.to_string(), created_ms)])
            .await?;
        Ok(())
    }

    /// Removes the id from the registry.
    pub(super) async fn unregister(&self, id: &TenantId) -> TenantResult<()> {
        self.store
            .zset_remove(&self.registry_key(), &[id.to_string()])
            .await?;
        Ok(())
    }

    /// Deletes the record, its quota overrides, rate and storage state, and sessions.
    pub(super) async fn remove(&self, id: &TenantId) -> TenantResult<()> {
        let keys = self.keys(id);
        // Sessions are the tenant's own keys too: listed by their index, never scanned.
        let index = keys.record(records::SESSION_INDEX);
        loop {
            let page = self.store.zset_range(&index, 0, 500).await?;
            if page.is_empty() {
                break;
            }
            let records: Vec<String> = page
                .iter()
                .map(|(sid, _)| keys.record(&records::session(sid)))
                .collect();
            self.store.delete(&records).await?;
            let members: Vec<String> = page.into_iter().map(|(sid, _)| sid).collect();
            self.store.zset_remove(&index, &members).await?;
        }
        let records = [
            TENANT_RECORD,
            "q",
            "rl",
            "storage",
            "sessions",
            "session_bytes",
        ]
        .map(|r| keys.record(r));
        self.store.delete(&records).await?;
        self.cache.remove(id);
        Ok(())
    }

    /// Ids in creation order, paged.
    pub(super) async fn ids(&self, offset: u64, limit: u64) -> TenantResult<Vec<TenantId>> {
        let page = self
            .store
            .zset_range(&self.registry_key(), offset, limit)
            .await?;
        page.into_iter()
            .map(|(id, _)| TenantId::parse(&id).map_err(TenantError::from))
            .collect()
    }

    /// Drops a cached record (after a change made by another instance).
    pub(super) fn forget(&self, id: &TenantId) {
        self.cache.remove(id);
    }

    /// Drops every cached record.
    pub(super) fn forget_all(&self) {
        self.cache.clear();
    }

    /// Number of registered tenants.
    pub(super) async fn count(&self) -> TenantResult<u64> {
        Ok(self.store.zset_len(&self.registry_key()).await?)
    }
}

/// The quota overrides of `tenant` as counters fields (`None`: no override).
fn quota_fields(tenant: &Tenant) -> Vec<(String, Option<i64>)> {
    Resource::ALL
        .iter()
        .map(|r| {
            let v = tenant
                .config
                .quotas
                .get(r.as_str())
                .and_then(|v| i64::try_from(*v).ok());
            (r.as_str().to_owned(), v)
        })
        .collect()
}

fn encode(tenant: &Tenant) -> TenantResult<Vec<u8>> {
    serde_json::to_vec(tenant).map_err(|e| TenantError::InvalidField {
        field: "tenant",
        reason: e.to_string(),
    })
}
