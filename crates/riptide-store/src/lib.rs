//! The store (L2): bytes under keys, as capability traits (`capabilities.rs`), two backends,
//! and the leaf modules every layer above shares: [`error`] (input validation),
//! [`tenant_id`], [`keys`] (every store key), [`clock`], [`private_fs`] and [`fence`]
//! (fenced writes of singleton jobs).
//!
//! The traits know nothing of envelopes, compression or tenants' plans: they store bytes
//! under keys built by [`crate::keys`], and it keeps the per-scope cache accounting
//! (index, sizes, tags, used bytes) atomic, because that is what the budget needs.
//!
//! Contract shared by every backend, checked by the conformance suite in `tests/`:
//! - A value whose TTL has passed is never returned, by `get` or `get_many`.
//! - `get_many` and `set_many` are one round trip. All keys passed to one call of
//!   `get_many`, `set_many` or any `cache_*` method belong to one scope (one hash tag).
//! - `cache_*` methods are atomic per scope: two concurrent puts to one scope never
//!   lose or double-count bytes.

pub mod atomic;
mod capabilities;
pub mod clock;
pub mod config;
pub mod embedded;
pub mod error;
pub mod fence;
pub mod gcra;
pub mod identity;
pub mod keys;
pub mod node_check;
pub mod open;
pub mod private_fs;
pub mod redis;
pub mod tenant_id;

use bytes::Bytes;
use thiserror::Error;

pub use atomic::WriteOp;
pub use open::{StoreUrl, open_store, open_store_with_defaults};

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
    /// Full store key, from [`ScopeKeys::entry`](crate::keys::ScopeKeys::entry).
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

/// What [`Counters::counters_get_applied`] read: the state of one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountersApplied {
    /// The record's counters, as [`Counters::counters_get`] returns them.
    pub counters: Vec<(String, i64)>,
    /// For each batch id asked about, in order: whether it is applied (so its
    /// increments are in `counters`).
    pub applied: Vec<bool>,
}

/// A scope's cache usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScopeUsage {
    /// Sum of the stored sizes of live entries.
    pub used_bytes: u64,
    /// Number of live entries.
    pub entries: u64,
}

/// Parameters of a GCRA rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcraLimit {
    /// Requests admitted per period at the steady rate (at least 1).
    pub rate: u64,
    /// The period in milliseconds (60 000 for "per minute").
    pub period_ms: u64,
    /// Requests admitted at once from a full bucket (at least 1).
    pub burst: u64,
    /// A counters record (see [`Counters::counters_get`]) whose fields, when present,
    /// override `rate` and `burst`: `(key, rate field, burst field)`. Read in the same
    /// round trip as the decision, so a changed quota applies at once on every instance.
    pub overrides: Option<(String, String, String)>,
}

/// The outcome of a GCRA check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraDecision {
    /// The request (of its cost) is admitted.
    pub allowed: bool,
    /// The rate in force (after overrides).
    pub limit: u64,
    /// The burst in force (after overrides).
    pub burst: u64,
    /// Requests of cost 1 that would still be admitted right now.
    pub remaining: u64,
    /// When refused: milliseconds until this request would be admitted (0 when allowed).
    pub retry_after_ms: u64,
    /// Milliseconds until the bucket is full again.
    pub reset_after_ms: u64,
}

/// What a lease operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseOp {
    /// Take the lease when free (a new fencing token), or extend it when already held by
    /// the same holder (same token).
    Acquire,
    /// Give the lease up if held by this holder.
    Release,
}

/// The state of a lease after an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    /// True when the caller holds the lease after the operation.
    pub held: bool,
    /// The current holder, if any.
    pub holder: Option<String>,
    /// Fencing token of the current holding; it increases with every new acquisition of
    /// this lease, so a stale holder's writes can be refused. 0 when free.
    pub token: u64,
    /// Milliseconds until the current holding expires (0 when free).
    pub ttl_ms: u64,
}

/// One event of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionEvent {
    /// A published message.
    Message(Bytes),
    /// The subscription was re-established after an interruption: messages published
    /// meanwhile may have been lost, so whatever they would have invalidated must be
    /// dropped.
    Resubscribed,
}

/// A live subscription to one channel; dropping it unsubscribes.
pub struct Subscription {
    /// Events in order of arrival.
    pub events: tokio::sync::mpsc::Receiver<SubscriptionEvent>,
}

/// The capability traits, to call their methods on a concrete backend
/// (`use riptide_persistence::store::prelude::*`). A [`SharedStore`] needs none of them.
pub mod prelude {
    pub use super::capabilities::{
        Backend, CacheIndex, Coordination, Counters, KeyValue, RateLimit, SortedSets, Store,
        Transactions,
    };
}

pub use self::capabilities::{
    Backend, CacheIndex, Coordination, Counters, KeyValue, RateLimit, SortedSets, Store,
    Transactions,
};

/// How one Redis node keeps data, as `CONFIG GET` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSettings {
    /// The node, `host:port` (no credentials).
    pub node: String,
    /// `maxmemory-policy`; `None` when unknown (refused or not reported).
    pub maxmemory_policy: Option<String>,
    /// Whether AOF (`appendonly yes`) is on; `None` when unknown.
    pub aof: Option<bool>,
    /// Whether RDB snapshots (`save` not empty) are on; `None` when unknown.
    pub rdb: Option<bool>,
    /// Why the node refused to answer (`CONFIG` renamed or forbidden), if it did.
    pub refused: Option<String>,
}

/// Shared store handle.
pub type SharedStore = std::sync::Arc<dyn Store>;
