//! The store's capabilities, one trait each, and [`Store`], a backend that has them all.
//!
//! A component that needs one capability can take that trait (`&dyn KeyValue`, say), and a
//! test double implements only what it needs; [`SharedStore`](super::SharedStore) is the whole
//! store. Every method is one round trip to the backend. The contract of each trait is in
//! its documentation and is checked on every backend by the conformance suite in `tests/`.

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    CachePut, CountersApplied, Durability, GcraDecision, GcraLimit, LeaseOp, LeaseState,
    NodeSettings, PutOutcome, RemoveOutcome, ScopeUsage, StoreKind, StoreResult, Subscription,
    WriteOp,
};
use crate::keys::ScopeKeys;

/// What every backend is: its kind, its key prefix, and whether it answers.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
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
}

/// Plain values under keys, with optional TTLs (sessions, records, checkpoints' metadata).
///
/// Guarantees: a value whose TTL has passed is never returned; `get_many` and `set_many`
/// are one round trip each; `set_if_absent` and `compare_and_swap` decide and write in
/// one atomic step.
#[async_trait]
pub trait KeyValue: Send + Sync + 'static {
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
    /// removed with [`CacheIndex::cache_remove`], which keeps its scope's accounting (a plain
    /// `delete` of a cache entry is not required to).
    async fn delete(&self, keys: &[String]) -> StoreResult<u64>;

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
}

/// Cache entries of one scope with their accounting: index, stored sizes, tags and
/// namespace membership, and the scope's budget.
///
/// Guarantees: every method is atomic per scope (two concurrent puts never lose or
/// double-count bytes), and every key passed to one call belongs to that scope (one hash
/// tag).
#[async_trait]
pub trait CacheIndex: Send + Sync + 'static {
    /// Writes cache entries of one scope with accounting, atomically:
    /// 1. drops index entries that have expired (their bytes stop counting);
    /// 2. an overwritten entry's old size and tags stop counting;
    /// 3. when `budget_bytes` is set and the scope would exceed it, evicts the scope's
    ///    soonest-expiring entries (entries without TTL last, ties by key) that are not
    ///    part of this batch until the batch fits;
    /// 4. writes the entries, their index, sizes, tags and namespace membership.
    ///
    /// A batch whose own size exceeds the budget fails with [`StoreError::OverBudget`](super::StoreError::OverBudget)
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

/// Sorted sets of (member, integer score): registries, logs, heartbeats. Durable, no TTL.
///
/// Guarantees: scores are stored exactly (a score a backend cannot hold exactly is
/// refused, never rounded); ranges come back in (score, member) order.
#[async_trait]
pub trait SortedSets: Send + Sync + 'static {
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
}

/// Counters records: named integers under one key, with exactly-once batches. Durable.
///
/// Guarantees: a batch applied with `counters_add_once` counts once however often it is
/// retried, and `counters_get_applied` reads counters and batch flags at one moment.
#[async_trait]
pub trait Counters: Send + Sync + 'static {
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
}

/// The GCRA rate limiter.
///
/// Guarantees: one step is atomic (the read, the decision and the write), and overrides are
/// read in the same step, so a changed quota applies at once on every instance.
#[async_trait]
pub trait RateLimit: Send + Sync + 'static {
    /// One atomic GCRA step on the state at `key` (with its overrides' key in the same
    /// hash tag) at time `now_ms` (from the caller's injectable clock) for `cost` units.
    async fn gcra(
        &self,
        key: &str,
        limit: &GcraLimit,
        now_ms: u64,
        cost: u64,
    ) -> StoreResult<GcraDecision>;
}

/// What instances sharing a store coordinate with: leases with fencing tokens, fenced
/// writes, and publish/subscribe.
///
/// Guarantees: a fencing token never repeats for a lease; a fenced write checks the token
/// and writes in one step; a subscription reports when it may have missed messages.
#[async_trait]
pub trait Coordination: Send + Sync + 'static {
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

    /// Writes `key` (as [`KeyValue::set`]) only while `token` is the fencing token of the
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

    /// Publishes `payload` to every current subscriber of `channel`, on every instance
    /// sharing the store. Returns once the backend has accepted it.
    async fn publish(&self, channel: &str, payload: &[u8]) -> StoreResult<()>;

    /// Subscribes to `channel`. The subscription survives backend outages by itself:
    /// after reconnecting it yields [`SubscriptionEvent::Resubscribed`](super::SubscriptionEvent::Resubscribed).
    async fn subscribe(&self, channel: &str) -> StoreResult<Subscription>;
}

/// All-or-nothing writes of several keys.
///
/// Guarantees: the checks and the writes of one call are one atomic, durable step; a
/// crash leaves all of it or none of it.
#[async_trait]
pub trait Transactions: Send + Sync + 'static {
    /// Applies `ops` all or nothing, durably: first every [`WriteOp::Expect`] is checked
    /// (on plain values, as `get` reads them); if one fails nothing is written and the
    /// answer is `Ok(false)`. Otherwise every write op is applied in order, in one
    /// write transaction (embedded) or one script (Redis), and the answer is `Ok(true)`.
    /// A crash or a lost connection leaves either all of it or none of it.
    ///
    /// On a Redis Cluster every key must carry one hash tag (one slot); keys of two
    /// slots are refused (`CROSSSLOT`) before anything is written. See
    /// [`super::atomic`] for what each op does on each backend.
    async fn write_atomic(&self, ops: &[WriteOp]) -> StoreResult<bool>;
}

/// A whole store: every capability. Implemented for every type that has them all.
pub trait Store:
    Backend + KeyValue + CacheIndex + SortedSets + Counters + RateLimit + Coordination + Transactions
{
}

impl<T> Store for T where
    T: Backend
        + KeyValue
        + CacheIndex
        + SortedSets
        + Counters
        + RateLimit
        + Coordination
        + Transactions
{
}
