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

pub mod atomic;
pub mod config;
pub mod embedded;
pub mod gcra;
pub mod identity;
pub mod node_check;
pub mod open;
pub mod redis;

use async_trait::async_trait;
use bytes::Bytes;
use thiserror::Error;

use crate::keys::ScopeKeys;

pub use atomic::WriteOp;
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

/// What [`Store::counters_get_applied`] read: the state of one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountersApplied {
    /// The record's counters, as [`Store::counters_get`] returns them.
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
    /// A counters record (see [`Store::counters_get`]) whose fields, when present,
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

/// The store trait. Every method is one round trip to the backend.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The backend.
    fn kind(&self) -> StoreKind;

    /// The prefix every key of this store starts with (see [`crate::keys`]).
    fn key_prefix(&self) -> &str;

    /// Checks that the backend answers.
    async fn ping(&self) -> StoreResult<()>;

    /// How each server node keeps data (see [`NodeSettings`]): one entry for a Redis
    /// server, one per master of a Cluster, none for the embedded store (it has no
    /// eviction policy and always persists).
    async fn node_settings(&self) -> StoreResult<Vec<NodeSettings>> {
        Ok(Vec::new())
    }

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

    // ---- records ----

    /// Writes `key` only when it does not exist (or has expired). Returns whether it wrote.
    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
        durability: Durability,
    ) -> StoreResult<bool>;

    /// Replaces the value of `key` only when it currently equals `expected` (`None`:
    /// absent); `new: None` deletes it. The new value has no TTL. Returns whether it wrote.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
        durability: Durability,
    ) -> StoreResult<bool>;

    // ---- sorted sets: registries, logs, heartbeats (durable; no TTL) ----

    /// Adds members with scores, or updates their scores.
    async fn zset_add(&self, key: &str, members: &[(String, i64)]) -> StoreResult<()>;

    /// Removes members; returns how many were present.
    async fn zset_remove(&self, key: &str, members: &[String]) -> StoreResult<u64>;

    /// Members in (score, member) order, skipping `offset`, at most `limit`.
    async fn zset_range(
        &self,
        key: &str,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Vec<(String, i64)>>;

    /// Members with `min <= score <= max` in (score, member) order, at most `limit`.
    async fn zset_range_by_score(
        &self,
        key: &str,
        min: i64,
        max: i64,
        limit: u64,
    ) -> StoreResult<Vec<(String, i64)>>;

    /// Removes members with `min <= score <= max`; returns how many.
    async fn zset_remove_by_score(&self, key: &str, min: i64, max: i64) -> StoreResult<u64>;

    /// The score of `member`, if present.
    async fn zset_score(&self, key: &str, member: &str) -> StoreResult<Option<i64>>;

    /// Number of members.
    async fn zset_len(&self, key: &str) -> StoreResult<u64>;

    // ---- counters (a record of named integers; durable) ----

    /// Every counter of `key` (empty when absent).
    async fn counters_get(&self, key: &str) -> StoreResult<Vec<(String, i64)>>;

    /// Sets counters to the given values (absolute, not added); `None` removes the field.
    async fn counters_set(&self, key: &str, fields: &[(String, Option<i64>)]) -> StoreResult<()>;

    /// Adds `increments` to the counters of `key` exactly once per `batch_id`: the id is
    /// remembered in `dedupe_key` (same hash tag as `key`) for `dedupe_ttl_ms`, and a
    /// batch already applied is skipped. Returns whether it applied the batch. This is
    /// what makes a retried usage flush count once.
    async fn counters_add_once(
        &self,
        key: &str,
        dedupe_key: &str,
        batch_id: &str,
        increments: &[(String, i64)],
        dedupe_ttl_ms: u64,
    ) -> StoreResult<bool>;

    /// The counters of `key` (as [`Self::counters_get`]) and, read at the same moment,
    /// whether each of `batch_ids` is remembered in `dedupe_key` (same hash tag as
    /// `key`) as applied by [`Self::counters_add_once`]. One atomic read: a batch whose
    /// flag is `true` is in the counters returned, one whose flag is `false` is not. This
    /// is what lets usage reads add what is still pending in memory without counting a
    /// batch being written at that moment twice, or not at all.
    async fn counters_get_applied(
        &self,
        key: &str,
        dedupe_key: &str,
        batch_ids: &[String],
    ) -> StoreResult<CountersApplied>;

    // ---- rate limiting ----

    /// One atomic GCRA step on the state at `key` (with its overrides' key in the same
    /// hash tag) at time `now_ms` (from the caller's injectable clock) for `cost` units.
    async fn gcra(
        &self,
        key: &str,
        limit: &GcraLimit,
        now_ms: u64,
        cost: u64,
    ) -> StoreResult<GcraDecision>;

    // ---- coordination ----

    /// One atomic lease step on `key` for `holder` (the fencing counter lives beside it
    /// at `key + ":fence"`, under the same hash tag). `ttl_ms` is the holding's lifetime
    /// from now.
    async fn lease(
        &self,
        key: &str,
        holder: &str,
        ttl_ms: u64,
        op: LeaseOp,
    ) -> StoreResult<LeaseState>;

    // ---- fenced writes (issue 10, item 3: fencing enforced) ----

    /// Writes `key` (as [`Self::set`]) only while `token` is the fencing token of the
    /// live holding of the lease at `lease_key` (see [`Self::lease`]): the check and the
    /// write are one atomic step, so a holder that was paused past its lease and replaced
    /// cannot write after the fact. `key` must share `lease_key`'s hash tag. Returns
    /// whether it wrote; `false` (a stale or unknown token, or a lease that is free or
    /// expired) means nothing was written.
    async fn set_fenced(
        &self,
        lease_key: &str,
        token: u64,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
        durability: Durability,
    ) -> StoreResult<bool>;

    // ---- end of fenced writes ----

    /// Publishes `payload` to every current subscriber of `channel`, on every instance
    /// sharing the store. Returns once the backend has accepted it.
    async fn publish(&self, channel: &str, payload: &[u8]) -> StoreResult<()>;

    /// Subscribes to `channel`. The subscription survives backend outages by itself:
    /// after reconnecting it yields [`SubscriptionEvent::Resubscribed`].
    async fn subscribe(&self, channel: &str) -> StoreResult<Subscription>;

    // ---- atomic multi-key writes (issue 10, item 5: crash consistency) ----

    /// Applies `ops` all or nothing, durably: first every [`WriteOp::Expect`] is checked
    /// (on plain values, as `get` reads them); if one fails nothing is written and the
    /// answer is `Ok(false)`. Otherwise every write op is applied in order, in one
    /// write transaction (embedded) or one script (Redis), and the answer is `Ok(true)`.
    /// A crash or a lost connection leaves either all of it or none of it.
    ///
    /// On a Redis Cluster every key must carry one hash tag (one slot); keys of two
    /// slots are refused (`CROSSSLOT`) before anything is written. See
    /// [`atomic`] for what each op does on each backend.
    async fn write_atomic(&self, ops: &[WriteOp]) -> StoreResult<bool>;
}

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
