//! The store (L2): one small trait on bytes, two backends.
//!
//! The trait knows nothing of envelopes, compression or tenants' plans: it stores bytes
//! under keys built by [`crate::keys`], and it keeps the per-scope cache accounting
//! (index, sizes, tags, used bytes) atomic, because that is what the budget needs.
//!
//! Contract shared by every backend, checked by the conformance suite in `tests/`:
//! - A value whose TTL has passed is never returned, by `get` or `get_many`.
//! - `get_many` and `set_many` are one round trip. All keys passed to one call of
//!   `get_many`, `set_many` or any `cache_*` method belong to one scope (one hash tag).
//! - `cache_*` methods are atomic per scope: two concurrent puts to one scope never
//!   lose or double-count bytes.

pub mod embedded;
pub mod open;
pub mod redis;

use async_trait::async_trait;
use bytes::Bytes;
use thiserror::Error;

use crate::keys::ScopeKeys;

pub use open::{StoreUrl, open_store};

/// How hard a write must try to survive a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Cache data: may be lost in a crash (embedded: non-durable commit).
    Cache,
    /// Records that must survive a crash (embedded: durable commit, fsync).
    Durable,
}

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded `redb` file.
    Embedded,
    /// One Redis (or DragonflyDB) server.
    Redis,
    /// A Redis Cluster.
    RedisCluster,
}

impl StoreKind {
    /// Stable lower-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            StoreKind::Embedded => "embedded",
            StoreKind::Redis => "redis",
            StoreKind::RedisCluster => "redis-cluster",
        }
    }
}

/// A store failure.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The backend could not be reached (connection refused, timed out, cluster down).
    /// Retryable.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend answered with an error.
    #[error("store error: {0}")]
    Backend(String),
    /// A cache batch that is larger than the scope's whole budget. Nothing was written.
    #[error("batch of {needed} bytes exceeds the scope's budget of {budget} bytes")]
    OverBudget {
        /// Bytes the batch needs.
        needed: u64,
        /// The budget.
        budget: u64,
    },
    /// The store URL or configuration is wrong.
    #[error("store configuration: {0}")]
    Config(String),
}

impl StoreError {
    /// True when trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Result with [`StoreError`].
pub type StoreResult<T> = Result<T, StoreError>;

/// One cache entry to write with accounting.
#[derive(Debug, Clone)]
pub struct CachePut {
    /// Full store key, from [`ScopeKeys::entry`].
    pub key: String,
    /// Namespace of the key (the `<namespace>` in the key), for namespace invalidation.
    pub namespace: String,
    /// The stored bytes (an encoded envelope).
    pub value: Bytes,
    /// Time to live in milliseconds; `None` keeps the entry until evicted or removed.
    pub ttl_ms: Option<u64>,
    /// Tags for invalidation by tag (validated by [`crate::keys::validate_tag`]).
    pub tags: Vec<String>,
}

/// What a `cache_put` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOutcome {
    /// Keys evicted to make room, in eviction order (soonest-expiring first).
    pub evicted: Vec<String>,
    /// The scope's bytes in use after the put.
    pub used_bytes: u64,
    /// The scope's entry count after the put.
    pub entries: u64,
}

/// What a `cache_remove*` or `cache_clear` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoveOutcome {
    /// How many live entries were removed.
    pub removed: u64,
    /// The scope's bytes in use afterwards.
    pub used_bytes: u64,
    /// The scope's entry count afterwards.
    pub entries: u64,
}

/// A scope's cache usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScopeUsage {
    /// Sum of the stored sizes of live entries.
    pub used_bytes: u64,
    /// Number of live entries.
    pub entries: u64,
}

/// The store trait. Every method is one round trip to the backend.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The backend.
    fn kind(&self) -> StoreKind;

    /// The prefix every key of this store starts with (see [`crate::keys`]).
    fn key_prefix(&self) -> &str;

    /// Checks that the backend answers.
    async fn ping(&self) -> StoreResult<()>;

    /// The value of `key`, or `None` when missing or expired.
    async fn get(&self, key: &str) -> StoreResult<Option<Bytes>>;

    /// The values of `keys`, in order, in one round trip.
    async fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Bytes>>>;

    /// Writes `key` with an optional TTL in milliseconds (a TTL of 0 is refused).
    async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
        durability: Durability,
    ) -> StoreResult<()>;

    /// Writes several keys in one round trip.
    async fn set_many(
        &self,
        entries: &[(String, Bytes, Option<u64>)],
        durability: Durability,
    ) -> StoreResult<()>;

    /// Deletes keys; returns how many existed. This is for records: a cache entry is
    /// removed with [`Store::cache_remove`], which keeps its scope's accounting (a plain
    /// `delete` of a cache entry is not required to).
    async fn delete(&self, keys: &[String]) -> StoreResult<u64>;

    /// Writes cache entries of one scope with accounting, atomically:
    /// 1. drops index entries that have expired (their bytes stop counting);
    /// 2. an overwritten entry's old size and tags stop counting;
    /// 3. when `budget_bytes` is set and the scope would exceed it, evicts the scope's
    ///    soonest-expiring entries (entries without TTL last, ties by key) that are not
    ///    part of this batch until the batch fits;
    /// 4. writes the entries, their index, sizes, tags and namespace membership.
    ///
    /// A batch whose own size exceeds the budget fails with [`StoreError::OverBudget`]
    /// before anything is written.
    async fn cache_put(
        &self,
        scope: &ScopeKeys,
        puts: &[CachePut],
        budget_bytes: Option<u64>,
    ) -> StoreResult<PutOutcome>;

    /// Removes the given entries of one scope with accounting.
    async fn cache_remove(&self, scope: &ScopeKeys, keys: &[String]) -> StoreResult<RemoveOutcome>;

    /// Removes every entry of the scope that carries `tag`.
    async fn cache_remove_tag(&self, scope: &ScopeKeys, tag: &str) -> StoreResult<RemoveOutcome>;

    /// Removes every entry of the scope in `namespace`.
    async fn cache_remove_namespace(
        &self,
        scope: &ScopeKeys,
        namespace: &str,
    ) -> StoreResult<RemoveOutcome>;

    /// Removes every cache entry of the scope, and its index, tags and counters.
    async fn cache_clear(&self, scope: &ScopeKeys) -> StoreResult<RemoveOutcome>;

    /// The scope's live cache usage (expired entries are dropped from the count first).
    async fn cache_usage(&self, scope: &ScopeKeys) -> StoreResult<ScopeUsage>;
}

/// Shared store handle.
pub type SharedStore = std::sync::Arc<dyn Store>;
