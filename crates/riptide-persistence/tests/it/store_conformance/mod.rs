//! The store conformance suite: the `Store` trait's contract, checked through the trait
//! alone on every backend (embedded `redb`, standalone Redis, a 3-master Redis Cluster).
//!
//! Every test gets a fresh store (its own temp dir, or its own key prefix on the shared
//! server) and fresh tenant ids. Keys are always built with [`ScopeKeys`], and the keys of
//! one call always come from one `ScopeKeys`, as the trait requires.
//!
//! - `kv`: ping, kind, prefix, get/set/get_many/set_many/delete, TTLs.
//! - `accounting`: `cache_put`/`cache_remove` accounting, expiry, concurrent writers.
//! - `invalidation`: removal by tag and namespace, `cache_clear`.
//! - `budget`: eviction order, the batch's own entries, over-budget batches.
//! - `isolation`: tenants and the global scope never see each other; Redis key layout.
//! - `records`: `set_if_absent`, `compare_and_swap`, sorted sets, counters (with
//!   `counters_add_once`), GCRA rate limiting with overrides.
//! - `counters_applied`: counters read together with the applied flags of batch ids.
//! - `atomic`: `write_atomic`, all or nothing, expectations first, one slot on a Cluster.
//! - `coordination`: leases with fencing tokens, publish/subscribe across instances.
//! - `fenced`: writes refused atomically unless their fencing token holds the lease.

mod accounting;
mod atomic;
mod budget;
mod coordination;
mod counters_applied;
mod fenced;
mod invalidation;
mod isolation;
mod kv;
mod records;

use std::time::Duration;

use bytes::Bytes;
use riptide_persistence::keys::{KeyHash, Namespace, Scope, ScopeKeys};
use riptide_persistence::store::{CachePut, ScopeUsage};
use riptide_persistence::{SharedStore, TenantId};

use crate::support::{self, Backend, TestStore};

/// The TTL the expiry tests give short-lived values.
pub(crate) const SHORT_TTL_MS: u64 = 150;

/// A fresh store on `b`. Keep the returned [`TestStore`] alive for the whole test: it
/// owns the embedded store's temp dir.
pub(crate) async fn open(b: Backend) -> (TestStore, SharedStore) {
    let ts = support::store(b).await;
    let store = ts.store.clone();
    (ts, store)
}

/// The keys of a new, unique tenant on `store`.
pub(crate) fn tenant_keys(store: &SharedStore) -> ScopeKeys {
    let id = TenantId::parse(&support::tenant()).expect("valid tenant id");
    ScopeKeys::new(store.key_prefix(), &Scope::Tenant(id))
}

/// The keys of the global scope on `store` (unique per test: every test store has its
/// own key prefix or its own file).
pub(crate) fn global_keys(store: &SharedStore) -> ScopeKeys {
    ScopeKeys::new(store.key_prefix(), &Scope::Global)
}

/// The store key of the caller's key `name` in namespace `ns` of `keys`' scope.
pub(crate) fn entry(keys: &ScopeKeys, ns: &str, name: &str) -> String {
    keys.entry(
        &Namespace::parse(ns).expect("valid namespace"),
        &KeyHash::of(name),
    )
}

/// The store keys of several caller keys of one namespace.
pub(crate) fn entries(keys: &ScopeKeys, ns: &str, names: &[&str]) -> Vec<String> {
    names.iter().map(|n| entry(keys, ns, n)).collect()
}

/// `len` bytes, all `byte`.
pub(crate) fn filled(len: usize, byte: u8) -> Bytes {
    Bytes::from(vec![byte; len])
}

/// A cache put of `len` bytes for the caller's key `name` in namespace `ns`.
pub(crate) fn cput(
    keys: &ScopeKeys,
    ns: &str,
    name: &str,
    len: usize,
    ttl_ms: Option<u64>,
    tags: &[&str],
) -> CachePut {
    CachePut {
        key: entry(keys, ns, name),
        namespace: ns.to_owned(),
        value: filled(len, name.bytes().next().unwrap_or(b'x')),
        ttl_ms,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
    }
}

/// Usage as `(used_bytes, entries)`.
pub(crate) fn usage(used_bytes: u64, entries: u64) -> ScopeUsage {
    ScopeUsage {
        used_bytes,
        entries,
    }
}

/// The usage recomputed from what `get_many` returns for `keys` (one scope's keys).
pub(crate) async fn live_usage(store: &SharedStore, keys: &[String]) -> ScopeUsage {
    let values = store.get_many(keys).await.expect("get_many");
    let live: Vec<&Bytes> = values.iter().flatten().collect();
    usage(live.iter().map(|v| v.len() as u64).sum(), live.len() as u64)
}

/// The scope's reported usage.
pub(crate) async fn reported(store: &SharedStore, keys: &ScopeKeys) -> ScopeUsage {
    store.cache_usage(keys).await.expect("cache_usage")
}

/// Asserts that `cache_usage` of `keys` equals `expected` and what `get` returns for
/// `candidates` (every entry key the test ever wrote in that scope).
pub(crate) async fn assert_usage(
    store: &SharedStore,
    keys: &ScopeKeys,
    candidates: &[String],
    expected: ScopeUsage,
    context: &str,
) {
    assert_eq!(
        reported(store, keys).await,
        expected,
        "{context}: cache_usage"
    );
    assert_eq!(
        live_usage(store, candidates).await,
        expected,
        "{context}: live values"
    );
}

/// Whether `key` reads as present.
pub(crate) async fn present(store: &SharedStore, key: &str) -> bool {
    store.get(key).await.expect("get").is_some()
}

/// Sleeps well past [`SHORT_TTL_MS`] (real time: Redis expires by its own clock).
pub(crate) async fn sleep_past_short_ttl() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}
