//! Access popularity: how often each tenant's URLs were asked for, kept as a bounded
//! top-K per tenant and persisted, so warming knows what to load after a restart.
//!
//! **Counting** ([`Popularity::record_access`]) runs on every cached request, so it
//! never touches the store: one shard read lock of the tenant map and one short
//! per-tenant mutex, so tenants never contend with each other. Each tenant keeps at most
//! `top_k_per_tenant` URLs with the *space-saving* rule: a URL not yet tracked, when the
//! table is full, replaces the least counted one and inherits its count plus one. So a
//! URL that is really among the top K is never lost, and counts are over-estimates by at
//! most the count they inherited. The ordered index makes a count and an eviction
//! `O(log K)`. At most `max_tenants` tenants are tracked; accesses of further tenants
//! are refused (counted in [`PopularityStats::refused`]) until [`Popularity::persist`]
//! evicts idle tenants from memory.
//!
//! **Persisting** ([`Popularity::persist`], called periodically and at shutdown by the
//! service) adds each tenant's increments since the last persist to the counters record
//! `<p>:tenant:{<id>}:pop` with `counters_add_once` (a retried batch counts once), so
//! instances sharing a store add up rather than overwrite each other. It then reads the
//! merged record back (so this instance also learns what the others counted), trims it
//! to the top K when it has grown past a quarter more, and registers the tenant in the
//! sorted set `<p>:{popularity}:tenants` (score: the last persist, ms).
//! **Loading** ([`Popularity::load`]) reads the most recently persisted tenants back at
//! start. A batch that could not be written stays pending and is retried, with the same
//! id, at the next persist; nothing counted is dropped silently, except the increments
//! of a URL evicted from the top K before they were persisted (by construction the
//! least counted, below the top K).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dashmap::DashMap;
use futures::StreamExt;
use serde::Serialize;

use super::popular_urls;
use super::sealing::{CacheSealer, SealingKey};
use super::top_k::{Batch, TopK};
use riptide_store::clock::SharedClock;
use riptide_store::error::InvalidInput;
use riptide_store::keys::{Scope, ScopeKeys, records};
use riptide_store::tenant_id::TenantId;
use riptide_store::{SharedStore, StoreError};

/// Longest URL counted, in bytes; longer ones are refused (and counted as refused).
pub const MAX_URL_BYTES: usize = 2_048;

/// Most URLs a tenant may keep (`top_k_per_tenant`).
pub const MAX_TOP_K: usize = 100_000;

/// How long the store remembers an applied batch id, ms: a retry within it counts once.
const DEDUPE_WINDOW_MS: u64 = 60 * 60 * 1_000;

/// Tenants loaded or persisted at once.
const STORE_CONCURRENCY: usize = 16;

/// Bounds of the counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PopularityConfig {
    /// URLs kept per tenant (1 to [`MAX_TOP_K`]).
    pub top_k_per_tenant: usize,
    /// Tenants tracked at once (at least 1).
    pub max_tenants: usize,
}

impl PopularityConfig {
    /// Checks the ranges; errors name the key under `warming.`.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if !(1..=MAX_TOP_K).contains(&self.top_k_per_tenant) {
            return Err(InvalidInput::Config {
                key: "warming.top_k_per_tenant",
                reason: format!("must be between 1 and {MAX_TOP_K}"),
            });
        }
        if self.max_tenants == 0 {
            return Err(InvalidInput::Config {
                key: "warming.max_tracked_tenants",
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

/// A counted URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Popular {
    /// Whose cache it belongs to.
    pub tenant_id: TenantId,
    /// The URL as it was counted (normalized by the caller).
    pub url: String,
    /// Estimated accesses, over every instance that persisted to the store.
    pub count: u64,
}

/// What the counter holds and has done.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PopularityStats {
    /// Tenants tracked in memory.
    pub tenants: usize,
    /// URLs tracked in memory, over every tenant.
    pub urls: usize,
    /// Accesses not counted: a URL longer than [`MAX_URL_BYTES`], or a new tenant while
    /// `max_tenants` were tracked.
    pub refused: u64,
}

/// What one [`Popularity::persist`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PersistReport {
    /// Tenants whose increments were written (or merged back) this time.
    pub written: usize,
    /// Tenants whose write failed, with why; their batch is retried next time.
    pub failed: Vec<(String, String)>,
    /// Idle tenants dropped from memory because the table was full.
    pub evicted: usize,
}

/// Per-tenant bounded URL access counts, persisted to the store. See the module docs.
pub struct Popularity {
    store: SharedStore,
    clock: SharedClock,
    config: PopularityConfig,
    tenants: DashMap<TenantId, Mutex<TopK>>,
    /// Unique per instance, so batch ids of instances sharing a store never collide.
    instance: String,
    batch_seq: AtomicU64,
    refused: AtomicU64,
    /// Tenants' data keys: the URLs of a tenant with one are sealed in the store.
    sealing: Option<Arc<dyn CacheSealer>>,
}

impl Popularity {
    /// An empty counter over `store`.
    pub fn new(
        store: SharedStore,
        clock: SharedClock,
        config: PopularityConfig,
    ) -> Result<Self, InvalidInput> {
        config.validate()?;
        Ok(Self {
            store,
            clock,
            config,
            tenants: DashMap::new(),
            instance: format!("{:016x}", rand::random::<u64>()),
            batch_seq: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            sealing: None,
        })
    }

    /// Seals, in the store, the URLs of every tenant that has a data key (see
    /// `popular_urls`).
    pub fn with_sealing(mut self, keys: Arc<dyn CacheSealer>) -> Self {
        self.sealing = Some(keys);
        self
    }

    /// The key `tenant`'s URLs are sealed with in the store, if any.
    async fn url_key(&self, tenant: &TenantId) -> Result<Option<Arc<dyn SealingKey>>, String> {
        match &self.sealing {
            Some(keys) => keys
                .key_for_read(&Scope::Tenant(tenant.clone()))
                .await
                .map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }

    /// The bounds in force.
    pub fn config(&self) -> PopularityConfig {
        self.config
    }

    /// Counts one access of `url` by `tenant`. Never touches the store.
    pub fn record_access(&self, tenant: &TenantId, url: &str) {
        if url.is_empty() || url.len() > MAX_URL_BYTES {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Some(top) = self.tenants.get(tenant) {
            lock(&top).record(url, self.config.top_k_per_tenant);
            return;
        }
        if self.tenants.len() >= self.config.max_tenants {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let top = self.tenants.entry(tenant.clone()).or_default();
        lock(&top).record(url, self.config.top_k_per_tenant);
    }

    /// The `n` most counted URLs of `tenant`, most counted first.
    pub fn top_of(&self, tenant: &TenantId, n: usize) -> Vec<Popular> {
        let Some(top) = self.tenants.get(tenant) else {
            return Vec::new();
        };
        let top = lock(&top);
        top.descending()
            .take(n)
            .map(|(count, url)| Popular {
                tenant_id: tenant.clone(),
                url: url.to_owned(),
                count,
            })
            .collect()
    }

    /// The `n` most counted (tenant, URL) pairs over every tenant, most counted first.
    pub fn top(&self, n: usize) -> Vec<Popular> {
        if n == 0 {
            return Vec::new();
        }
        // A min-heap of the best n so far; each tenant is walked in descending order
        // only while it can still beat the heap's minimum.
        let mut best: BinaryHeap<Reverse<(u64, TenantId, Arc<str>)>> = BinaryHeap::new();
        for item in &self.tenants {
            let top = lock(item.value());
            for (count, url) in top.descending_arcs() {
                if best.len() == n {
                    let Some(Reverse((min, ..))) = best.peek() else {
                        break;
                    };
                    if count <= *min {
                        break;
                    }
                    best.pop();
                }
                best.push(Reverse((count, item.key().clone(), url.clone())));
            }
        }
        let mut out: Vec<Popular> = best
            .into_iter()
            .map(|Reverse((count, tenant_id, url))| Popular {
                tenant_id,
                url: url.to_string(),
                count,
            })
            .collect();
        out.sort_by(|a, b| (b.count, &a.tenant_id, &a.url).cmp(&(a.count, &b.tenant_id, &b.url)));
        out
    }

    /// The tenants tracked in memory.
    pub fn tenants(&self) -> Vec<TenantId> {
        self.tenants.iter().map(|t| t.key().clone()).collect()
    }

    /// What is tracked and what was refused.
    pub fn stats(&self) -> PopularityStats {
        let mut stats = PopularityStats {
            refused: self.refused.load(Ordering::Relaxed),
            ..Default::default()
        };
        for item in &self.tenants {
            stats.tenants += 1;
            stats.urls += lock(item.value()).len();
        }
        stats
    }

    /// Forgets `tenant` here and in the store (a deleted tenant).
    pub async fn forget(&self, tenant: &TenantId) -> Result<(), StoreError> {
        self.tenants.remove(tenant);
        let keys = self.keys(tenant);
        self.store
            .delete(&[
                keys.record(records::POPULARITY),
                keys.record(records::POPULARITY_APPLIED),
            ])
            .await?;
        self.store
            .zset_remove(&self.registry_key(), &[tenant.as_str().to_owned()])
            .await?;
        Ok(())
    }

    /// Reads back the most recently persisted tenants (at most `max_tenants`) and
    /// merges their counts into what is counted here: at start, and to refresh what
    /// other instances sharing the store have counted. Returns how many tenants were
    /// loaded; ids in the registry that are no longer valid are skipped.
    pub async fn load(&self) -> Result<usize, StoreError> {
        let registry = self.registry_key();
        let total = self.store.zset_len(&registry).await?;
        let max = self.config.max_tenants as u64;
        let ids = self
            .store
            .zset_range(&registry, total.saturating_sub(max), max)
            .await?;
        let ids: Vec<TenantId> = ids
            .into_iter()
            .filter_map(|(id, _)| TenantId::parse(&id).ok())
            .collect();
        let mut loads = futures::stream::iter(ids)
            .map(|id| async move {
                let counts = self
                    .store
                    .counters_get(&self.keys(&id).record(records::POPULARITY))
                    .await;
                let key = self.url_key(&id).await;
                (id, counts, key)
            })
            .buffer_unordered(STORE_CONCURRENCY);
        let mut loaded = 0;
        while let Some((id, counts, key)) = loads.next().await {
            let key = match key {
                Ok(key) => key,
                Err(e) => {
                    tracing::warn!(tenant.id = %id, error = %e, "popularity not loaded: the tenant's data key is unreadable");
                    continue;
                }
            };
            let counts = open_counts(key.as_deref(), &id, counts?);
            let full = self.tenants.len() >= self.config.max_tenants;
            if counts.is_empty() || (full && !self.tenants.contains_key(&id)) {
                continue;
            }
            let top = self.tenants.entry(id).or_default();
            lock(&top).merge_persisted(counts, self.config.top_k_per_tenant);
            loaded += 1;
        }
        Ok(loaded)
    }

    /// Writes every tenant's increments since the last persist (see the module docs),
    /// then, when the tenant table is full, drops idle tenants from memory.
    pub async fn persist(&self) -> PersistReport {
        let ids = self.tenants();
        let mut report = PersistReport::default();
        let mut writes = futures::stream::iter(ids)
            .map(|id| async move {
                let result = self.persist_tenant(&id).await;
                (id, result)
            })
            .buffer_unordered(STORE_CONCURRENCY);
        while let Some((id, result)) = writes.next().await {
            match result {
                Ok(true) => report.written += 1,
                Ok(false) => {}
                Err(e) => report.failed.push((id.to_string(), e)),
            }
        }
        report.evicted = self.evict_idle();
        report
    }

    /// One tenant's persist; `Ok(false)` when it had nothing to write.
    async fn persist_tenant(&self, id: &TenantId) -> Result<bool, String> {
        let Some(batch) = self.take_batch(id) else {
            return Ok(false);
        };
        let url_key = self.url_key(id).await?;
        let increments: Vec<(String, i64)> = batch
            .increments
            .iter()
            .filter_map(|(url, n)| Some((popular_urls::field_of(url_key.as_deref(), id, url)?, *n)))
            .collect();
        let keys = self.keys(id);
        let record = keys.record(records::POPULARITY);
        let store_err = |e: StoreError| e.to_string();
        self.store
            .counters_add_once(
                &record,
                &keys.record(records::POPULARITY_APPLIED),
                &batch.id,
                &increments,
                DEDUPE_WINDOW_MS,
            )
            .await
            .map_err(store_err)?;
        if let Some(top) = self.tenants.get(id) {
            let mut top = lock(&top);
            if top.pending.as_ref().is_some_and(|p| p.id == batch.id) {
                top.pending = None;
            }
        }
        let mut persisted = self.store.counters_get(&record).await.map_err(store_err)?;
        let k = self.config.top_k_per_tenant;
        if persisted.len() > k + k / 4 {
            persisted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let trimmed: Vec<(String, Option<i64>)> =
                persisted.drain(k..).map(|(url, _)| (url, None)).collect();
            self.store
                .counters_set(&record, &trimmed)
                .await
                .map_err(store_err)?;
        }
        self.store
            .zset_add(
                &self.registry_key(),
                &[(id.as_str().to_owned(), self.clock.now_ms() as i64)],
            )
            .await
            .map_err(store_err)?;
        if let Some(top) = self.tenants.get(id) {
            let persisted = open_counts(url_key.as_deref(), id, persisted);
            lock(&top).merge_persisted(persisted, k);
        }
        Ok(true)
    }

    /// The tenant's pending batch (a failed one is retried as it was), or a new one of
    /// its increments since the last persist; `None` when there is nothing to write.
    fn take_batch(&self, id: &TenantId) -> Option<Batch> {
        let top = self.tenants.get(id)?;
        let mut top = lock(&top);
        if top.pending.is_none() {
            let increments = top.take_increments();
            if increments.is_empty() {
                return None;
            }
            let seq = self.batch_seq.fetch_add(1, Ordering::Relaxed);
            top.pending = Some(Batch {
                id: format!("{}-{seq}", self.instance),
                increments,
            });
        }
        top.idle_persists = 0;
        top.pending.clone()
    }

    /// When the table is full, drops tenants with nothing unwritten that were not
    /// counted since the previous persist, least counted first, down to 90% of
    /// `max_tenants` (their counts stay in the store).
    fn evict_idle(&self) -> usize {
        let mut idle = Vec::new();
        for item in &self.tenants {
            let mut top = lock(item.value());
            top.idle_persists = top.idle_persists.saturating_add(1);
            if top.idle_persists > 1 && top.pending.is_none() && !top.has_increments() {
                idle.push((top.best(), item.key().clone()));
            }
        }
        let target = self.config.max_tenants - self.config.max_tenants / 10;
        let excess = self.tenants.len().saturating_sub(target);
        if self.tenants.len() < self.config.max_tenants || excess == 0 {
            return 0;
        }
        idle.sort();
        idle.into_iter()
            .take(excess)
            .filter(|(_, id)| self.tenants.remove(id).is_some())
            .count()
    }

    fn keys(&self, tenant: &TenantId) -> ScopeKeys {
        ScopeKeys::new(self.store.key_prefix(), &Scope::Tenant(tenant.clone()))
    }

    fn registry_key(&self) -> String {
        format!("{}:{{popularity}}:tenants", self.store.key_prefix())
    }
}

/// The store's counts with their URLs opened; fields that do not open are left out.
fn open_counts(
    key: Option<&dyn SealingKey>,
    tenant: &TenantId,
    counts: Vec<(String, i64)>,
) -> Vec<(String, i64)> {
    counts
        .into_iter()
        .filter_map(|(field, n)| Some((popular_urls::url_of(key, tenant, &field)?, n)))
        .collect()
}

fn lock(top: &Mutex<TopK>) -> MutexGuard<'_, TopK> {
    top.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bounds_are_refused() {
        for (k, tenants) in [(0, 1), (MAX_TOP_K + 1, 1), (10, 0)] {
            let cfg = PopularityConfig {
                top_k_per_tenant: k,
                max_tenants: tenants,
            };
            assert!(cfg.validate().is_err(), "{cfg:?}");
        }
    }
}
