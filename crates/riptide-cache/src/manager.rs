//! [`PersistentCacheManager`]: tenant-scoped get/set/delete and batches, L1 over the store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;

use super::budget::{CacheBudget, FixedBudget};
use super::envelope::{self, CacheMetadata, Codec, Entry, Unreadable};
use super::invalidation::Invalidation;
use super::l1::{Admission, L1, L1Key};
use super::offload::{self, ToEncode};
use super::sealing::{CacheSealer, SealingKey};
use super::single_flight::SingleFlight;
use super::stats::{CacheStats, Op, OpResult, ScopeStats, StatsRegistry};
use super::warmer::CacheWarmer;
use super::{CacheError, CacheResult};
use crate::config::CacheConfig;
use riptide_store::clock::{SharedClock, system_clock};
use riptide_store::keys::{AsScope, KeyHash, Namespace, Scope, ScopeKeys, validate_tag};
use riptide_store::{CachePut, SharedStore};

/// The tenant-scoped, compressed, two-level cache.
///
/// Every method takes the scope as [`AsScope`]: a tenant's [`TenantId`](riptide_store::tenant_id::TenantId) (parsed once at
/// the edge), a tenant id string (validated first; an invalid one is refused before it
/// reaches a key), or `&Scope::Global`. The seed's `get` and `set` take `Option<&str>`
/// (`compat.rs`). A key's namespace is its prefix up to the first `:` when
/// that is a valid namespace name (`search:rust` is in `search`), else `default`.
pub struct PersistentCacheManager {
    pub(super) store: SharedStore,
    /// As built: the keys read once (see `live` for the others).
    pub(super) config: CacheConfig,
    /// `config` with the live keys as last applied (see `live_settings.rs`).
    pub(super) live: ArcSwap<CacheConfig>,
    pub(super) clock: SharedClock,
    pub(super) l1: L1,
    pub(super) flights: SingleFlight,
    pub(super) stats: StatsRegistry,
    budget: ArcSwap<Box<dyn CacheBudget>>,
    sealer: ArcSwapOption<Box<dyn CacheSealer>>,
    pub(super) warmer: ArcSwapOption<CacheWarmer>,
    listener: ArcSwapOption<InvalidationListener>,
}

/// Told of every local change that makes other instances' L1 copies stale; the sync
/// layer publishes them.
pub struct InvalidationListener(pub Box<dyn Fn(&Invalidation) + Send + Sync>);

/// A caller's key placed in the store: computed once per call.
#[derive(Clone)]
pub(super) struct Placed {
    pub(super) scope: Scope,
    pub(super) namespace: Namespace,
    pub(super) store_key: String,
    pub(super) l1: L1Key,
}

/// One value to write, before encoding.
pub(super) struct PutItem {
    pub(super) key: String,
    pub(super) payload: Bytes,
    pub(super) codec: Codec,
    pub(super) ttl: Option<Duration>,
    pub(super) metadata: Option<CacheMetadata>,
}

/// The L1 key of a store key: both sides of every invalidation can compute it.
pub(super) fn l1_key_of(store_key: &str) -> L1Key {
    let mut out = [0u8; 16];
    out.copy_from_slice(&blake3::hash(store_key.as_bytes()).as_bytes()[..16]);
    out
}

impl PersistentCacheManager {
    /// A cache over an existing store.
    pub fn with_store(store: SharedStore, config: CacheConfig) -> CacheResult<Self> {
        Self::with_store_and_clock(store, config, system_clock())
    }

    /// A cache over an existing store with an injected clock (tests).
    pub fn with_store_and_clock(
        store: SharedStore,
        config: CacheConfig,
        clock: SharedClock,
    ) -> CacheResult<Self> {
        config.validate()?;
        Ok(Self {
            l1: L1::new(
                config.l1_capacity_bytes,
                config.l1_max_staleness_ms,
                config.l1_tenant_share_percent,
            ),
            stats: StatsRegistry::new(config.max_tracked_tenants),
            budget: ArcSwap::from_pointee(Box::new(FixedBudget(
                config.default_tenant_budget_bytes,
            ))),
            flights: SingleFlight::default(),
            sealer: ArcSwapOption::empty(),
            warmer: ArcSwapOption::empty(),
            listener: ArcSwapOption::empty(),
            live: ArcSwap::from_pointee(config.clone()),
            store,
            config,
            clock,
        })
    }

    /// The store under this cache.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// The configuration the manager was built with. The live keys (TTL, compression,
    /// warming) may have changed since: [`Self::settings`] has the values in force.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// Replaces where per-scope budgets come from (the tenant layer plugs its
    /// `memory_bytes` quota in here).
    pub fn set_budget(&self, budget: Box<dyn CacheBudget>) {
        self.budget.store(Arc::new(budget));
    }

    /// Installs where the keys that seal (encrypt) entries come from: the tenant layer
    /// plugs its per-tenant data keys in here (see [`CacheSealer`]). Without a sealer
    /// every entry is stored in the clear, and sealed entries read as misses.
    pub fn set_sealer(&self, sealer: Box<dyn CacheSealer>) {
        self.sealer.store(Some(Arc::new(sealer)));
    }

    /// Installs the listener told of every local write, delete and invalidation (the sync
    /// layer publishes them so other instances drop their L1 copies).
    pub fn set_invalidation_listener(&self, listener: InvalidationListener) {
        self.listener.store(Some(Arc::new(listener)));
    }

    /// Tells the listener, if any, about a local change.
    pub(super) fn announce(&self, inv: Invalidation) {
        if let Some(l) = self.listener.load().as_ref() {
            (l.0)(&inv);
        }
    }

    /// Installs the warmer `warm_cache` uses.
    pub fn enable_warming(&self, warmer: Arc<CacheWarmer>) {
        self.warmer.store(Some(warmer));
    }

    /// Counters and latency percentiles, overall and per tenant.
    pub fn stats(&self) -> CacheStats {
        self.stats.snapshot()
    }

    /// L1 entries and weighted bytes (approximate).
    pub fn l1_usage(&self) -> (u64, u64) {
        self.l1.usage()
    }

    pub(super) fn place(&self, keys: &ScopeKeys, scope: &Scope, key: &str) -> Placed {
        let namespace = Namespace::of_key(key);
        let store_key = keys.entry(&namespace, &KeyHash::of(key));
        Placed {
            scope: scope.clone(),
            l1: l1_key_of(&store_key),
            namespace,
            store_key,
        }
    }

    pub(super) fn scope_stats(&self, scope: &Scope) -> Arc<ScopeStats> {
        self.stats.scope(scope.label())
    }

    // ---- reads ----

    /// The stored bytes of `key` (as given to `set_bytes`, or the JSON of `set`).
    pub async fn get_bytes(
        &self,
        key: &str,
        scope: &(impl AsScope + ?Sized),
    ) -> CacheResult<Option<Bytes>> {
        Ok(self.get_entry(key, scope).await?.map(|e| e.payload))
    }

    /// The whole entry of `key`: payload, codec, times and metadata.
    pub async fn get_entry(
        &self,
        key: &str,
        scope: &(impl AsScope + ?Sized),
    ) -> CacheResult<Option<Entry>> {
        let start = Instant::now();
        let scope = scope.as_scope()?;
        let keys = ScopeKeys::new(self.store.key_prefix(), &scope);
        let placed = self.place(&keys, &scope, key);
        self.get_placed(start, placed).await
    }

    /// [`Self::get_entry`] of a key already placed (the tenant parsed, the keys built).
    pub(super) async fn get_placed(
        &self,
        start: Instant,
        placed: Placed,
    ) -> CacheResult<Option<Entry>> {
        let scope = placed.scope.clone();
        let stats = self.scope_stats(&scope);
        let now = self.clock.now_ms();
        if let Some(v) = self.l1.get(&placed.l1, now) {
            self.stats
                .record(&stats, Op::Get, OpResult::Hit, start.elapsed(), 1);
            return Ok(Some(v.entry.clone()));
        }
        // Boxed: the miss path's future (a store read, decoding that may go to the
        // blocking pool) is several times the hit path's, and would otherwise be part of
        // every hit's future too. One allocation per miss, against a store read.
        Box::pin(self.get_from_store(start, scope, placed, stats, now)).await
    }

    /// `get_entry` after an L1 miss: read the store, decode, remember in L1.
    async fn get_from_store(
        &self,
        start: Instant,
        scope: Scope,
        placed: Placed,
        stats: Arc<ScopeStats>,
        now: u64,
    ) -> CacheResult<Option<Entry>> {
        let found = match self.store.get(&placed.store_key).await {
            Ok(found) => found,
            Err(e) => {
                self.stats
                    .record(&stats, Op::Get, OpResult::Error, start.elapsed(), 1);
                return Err(e.into());
            }
        };
        let sealed = found.as_ref().is_some_and(|b| envelope::is_sealed(b));
        let key = match self.read_key(&scope, sealed).await {
            Ok(key) => key,
            Err(e) => {
                self.stats
                    .record(&stats, Op::Get, OpResult::Error, start.elapsed(), 1);
                return Err(e);
            }
        };
        let entry = match found {
            Some(bytes) => {
                self.decode_stored(&placed.store_key, &bytes, now, key.as_ref())
                    .await
            }
            None => None,
        };
        let result = if entry.is_some() {
            OpResult::Hit
        } else {
            OpResult::Miss
        };
        if let Some(e) = &entry {
            self.remember(&placed, e.clone(), now, &stats);
        }
        self.stats
            .record(&stats, Op::Get, result, start.elapsed(), 1);
        Ok(entry)
    }

    /// Decodes stored bytes, opening sealed ones with `key` (the scope's key, if it has
    /// one), large ones off the async workers (see `offload.rs`); a corrupt or (by our
    /// clock) expired envelope is a miss, and so is a sealed one that has no key or does
    /// not open.
    pub(super) async fn decode_stored(
        &self,
        store_key: &str,
        bytes: &Bytes,
        now_ms: u64,
        key: Option<&Arc<dyn SealingKey>>,
    ) -> Option<Entry> {
        match offload::decode_entry(self.config.max_entry_size_bytes, store_key, bytes, key).await {
            Ok(e) if e.is_expired(now_ms) => None,
            Ok(e) => Some(e),
            Err(reason @ (Unreadable::NoKey | Unreadable::NotOpened)) => {
                // Expected after a tenant's key was deleted; never an error, never plaintext.
                tracing::debug!(cache.key = store_key, %reason, "sealed cache entry treated as a miss");
                None
            }
            Err(reason) => {
                tracing::warn!(cache.key = store_key, %reason, "unreadable cache entry treated as a miss");
                None
            }
        }
    }

    /// The key to open sealed entries of `scope` with: asked of the sealer only when
    /// what was read holds a sealed entry (`any_sealed`), so unsealed reads never pay.
    pub(super) async fn read_key(
        &self,
        scope: &Scope,
        any_sealed: bool,
    ) -> CacheResult<Option<Arc<dyn SealingKey>>> {
        if !any_sealed {
            return Ok(None);
        }
        match self.sealer.load_full() {
            Some(sealer) => sealer.key_for_read(scope).await,
            None => Ok(None),
        }
    }

    /// The key new entries of `scope` are sealed with, if any.
    async fn write_key(&self, scope: &Scope) -> CacheResult<Option<Arc<dyn SealingKey>>> {
        match self.sealer.load_full() {
            Some(sealer) => sealer.key_for_write(scope).await,
            None => Ok(None),
        }
    }

    /// Puts an entry read from or written to the store into L1, counting a refusal
    /// (its tenant holds its share of L1) on the scope's stats.
    pub(super) fn remember(&self, placed: &Placed, entry: Entry, now_ms: u64, stats: &ScopeStats) {
        if !self.l1.is_enabled() {
            return;
        }
        let admission = self.l1.insert(
            placed.l1,
            entry,
            placed.scope.clone(),
            Arc::from(placed.namespace.as_str()),
            now_ms,
        );
        if admission == Admission::Refused {
            stats.record_l1_refused();
        }
    }

    // ---- writes ----

    /// Stores raw bytes (e.g. a ready HTTP body) under `key`.
    pub async fn set_bytes(
        &self,
        key: &str,
        value: Bytes,
        scope: &(impl AsScope + ?Sized),
        ttl: Option<Duration>,
        metadata: Option<CacheMetadata>,
    ) -> CacheResult<()> {
        let item = PutItem {
            key: key.to_owned(),
            payload: value,
            codec: Codec::Raw,
            ttl,
            metadata,
        };
        self.put(scope.as_scope()?.into_owned(), vec![item], Op::Set)
            .await
    }

    /// Encodes and writes items of one scope with one `cache_put`; keeps L1 coherent.
    pub(super) async fn put(&self, scope: Scope, items: Vec<PutItem>, op: Op) -> CacheResult<()> {
        if items.is_empty() {
            return Ok(());
        }
        let start = Instant::now();
        let stats = self.scope_stats(&scope);
        let result = self.put_inner(&scope, items, &stats).await;
        let outcome = if result.is_ok() {
            OpResult::Ok
        } else {
            OpResult::Error
        };
        let count = result.as_ref().map(|n| *n as u64).unwrap_or(1);
        self.stats
            .record(&stats, op, outcome, start.elapsed(), count);
        result.map(|_| ())
    }

    async fn put_inner(
        &self,
        scope: &Scope,
        items: Vec<PutItem>,
        stats: &ScopeStats,
    ) -> CacheResult<usize> {
        let keys = ScopeKeys::new(self.store.key_prefix(), scope);
        let budget = self.budget.load().budget_bytes(scope);
        // One snapshot of the live settings for the whole batch.
        let settings = self.live.load_full();
        // Asked before anything is encoded: when the scope must be sealed and its key
        // cannot be had, nothing is written.
        let seal_key = self.write_key(scope).await?;
        let now = self.clock.now_ms();
        let mut puts = Vec::with_capacity(items.len());
        let mut placed = Vec::with_capacity(items.len());
        for item in items {
            if item.payload.len() > self.config.max_entry_size_bytes {
                return Err(CacheError::EntryTooLarge {
                    size: item.payload.len(),
                    max: self.config.max_entry_size_bytes,
                });
            }
            if let Some(m) = &item.metadata {
                m.tags.iter().try_for_each(|t| validate_tag(t))?;
            }
            let ttl_ms = ttl_ms(&settings, item.ttl)?;
            let expires = ttl_ms.map(|t| now.saturating_add(t));
            let p = self.place(&keys, scope, &item.key);
            let enc = offload::encode_entry(
                ToEncode {
                    payload: &item.payload,
                    codec: item.codec,
                    created_ms: now,
                    expires_ms: expires,
                    metadata: item.metadata.as_ref(),
                    settings: &settings,
                    key: seal_key.as_ref(),
                    store_key: &p.store_key,
                },
                scope,
            )
            .await?;
            if let Some(b) = budget.filter(|&b| enc.len() as u64 > b) {
                return Err(CacheError::OverBudget {
                    size: enc.len() as u64,
                    budget: b,
                });
            }
            let entry = Entry {
                payload: item.payload,
                codec: item.codec,
                created_ms: now,
                expires_ms: expires,
                metadata: item.metadata.map(Arc::new),
            };
            puts.push(CachePut {
                key: p.store_key.clone(),
                namespace: p.namespace.as_str().to_owned(),
                value: enc,
                ttl_ms,
                tags: entry.tags().to_vec(),
            });
            placed.push((p, entry));
        }
        let bytes: u64 = puts.iter().map(|p| p.value.len() as u64).sum();
        let outcome = match self.store.cache_put(&keys, &puts, budget).await {
            Ok(o) => o,
            Err(e) => {
                // The store may hold older values or none: don't let L1 serve ours.
                placed.iter().for_each(|(p, _)| self.l1.invalidate(&p.l1));
                return Err(e.into());
            }
        };
        let evicted = outcome.evicted.len() as u64;
        for key in outcome.evicted {
            self.l1.invalidate(&l1_key_of(&key));
            self.announce(Invalidation::Key { store_key: key });
        }
        let n = placed.len();
        for (p, entry) in placed {
            self.remember(&p, entry, now, stats);
            self.announce(Invalidation::Key {
                store_key: p.store_key,
            });
        }
        self.stats.record_put(stats, bytes, evicted);
        stats.observe_usage(outcome.used_bytes, outcome.entries);
        Ok(n)
    }

    /// Deletes `key`; returns whether a live entry was removed.
    pub async fn delete(&self, key: &str, scope: &(impl AsScope + ?Sized)) -> CacheResult<bool> {
        let start = Instant::now();
        let scope = scope.as_scope()?;
        let keys = ScopeKeys::new(self.store.key_prefix(), &scope);
        let placed = self.place(&keys, &scope, key);
        let stats = self.scope_stats(&scope);
        self.l1.invalidate(&placed.l1);
        let result = self
            .store
            .cache_remove(&keys, std::slice::from_ref(&placed.store_key))
            .await;
        // Invalidate again: a concurrent reader may have refilled L1 from the old value.
        self.l1.invalidate(&placed.l1);
        self.announce(Invalidation::Key {
            store_key: placed.store_key.clone(),
        });
        match result {
            Ok(o) => {
                self.stats
                    .record(&stats, Op::Delete, OpResult::Ok, start.elapsed(), 1);
                stats.observe_usage(o.used_bytes, o.entries);
                Ok(o.removed > 0)
            }
            Err(e) => {
                self.stats
                    .record(&stats, Op::Delete, OpResult::Error, start.elapsed(), 1);
                Err(e.into())
            }
        }
    }

    /// Exact live usage of a scope, from the store.
    pub async fn usage(
        &self,
        scope: &(impl AsScope + ?Sized),
    ) -> CacheResult<riptide_store::ScopeUsage> {
        let scope = scope.as_scope()?;
        let keys = ScopeKeys::new(self.store.key_prefix(), &scope);
        let usage = self.store.cache_usage(&keys).await?;
        self.scope_stats(&scope)
            .observe_usage(usage.used_bytes, usage.entries);
        Ok(usage)
    }
}

/// Resolves a TTL argument to milliseconds (sub-millisecond rounds up to 1 ms); `None`
/// takes `default_ttl_seconds` of `settings`.
fn ttl_ms(settings: &CacheConfig, ttl: Option<Duration>) -> CacheResult<Option<u64>> {
    match ttl {
        Some(d) if d.is_zero() => Err(CacheError::InvalidTtl("a ttl of zero".into())),
        Some(d) => Ok(Some(
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1),
        )),
        None if settings.default_ttl_seconds == 0 => Ok(None),
        None => Ok(Some(settings.default_ttl_seconds.saturating_mul(1_000))),
    }
}
