//! The Redis / DragonflyDB backend, standalone or Cluster.
//!
//! Plain key operations are single commands (`GET`, `MGET`, `SET ... PX`, `DEL`) or one
//! pipeline (`set_many`). Each `cache_*` operation is one Lua script run (`scripts.rs`,
//! `scripts/*.lua`), so a scope's accounting stays exact under concurrent writers, on
//! one server and on a Cluster alike: every key of a scope carries the scope's hash tag
//! (see [`crate::keys`]), so a script touches one slot.
//!
//! Records (`records.rs` holds their checks and conversions): `set_if_absent` is one
//! `SET NX`, sorted sets and `counters_get` are single commands, and `compare_and_swap`,
//! `counters_set`, `counters_add_once` and `gcra` are one script run each. Sorted-set
//! scores are Redis doubles, so scores beyond ±2^53 are refused rather than rounded;
//! `counters_add_once` saturates each increment at the `i64` bounds (as the embedded
//! store does) and applies a batch entirely or not at all; the GCRA script mirrors
//! `store/gcra.rs` in integer µs and takes the caller's clock.
//!
//! Coordination: `lease` is one script run (`lease.rs`, `scripts/lease.lua`) on the lease
//! key and its fencing counter, with the holding's TTL on the server's clock;
//! `set_fenced` is one script run (`scripts/set_fenced.lua`) that checks the holding's
//! token and writes; `publish` is
//! one `PUBLISH` on a pooled connection, and each `subscribe` starts a task owning a
//! dedicated pub/sub connection that resubscribes by itself after outages (`pubsub.rs`).
//! On a Cluster, classic pub/sub is broadcast to every node, so a subscription listens on
//! any one reachable seed node.
//!
//! Connections (`connection.rs`) reconnect by themselves; while the server is down every
//! call fails fast with the retryable [`StoreError::Unavailable`].
//!
//! [`Durability`] is not used here: whether Redis keeps data across a crash is the
//! server's persistence configuration (AOF, RDB), not something a client chooses per write.

mod atomic;
mod connection;
mod error;
mod lease;
mod pubsub;
mod records;
mod scripts;
mod settings;

use async_trait::async_trait;
use bytes::Bytes;
use redis::{Cmd, ErrorKind, FromRedisValue, Script, ServerErrorKind, Value};

use self::connection::Pool;
use self::error::from_redis;
use self::pubsub::Subscriber;
use crate::keys::{ScopeKeys, validate_tag};
use crate::store::config::RedisConfig;
use crate::store::{
    CachePut, CountersApplied, Durability, GcraDecision, GcraLimit, LeaseOp, LeaseState,
    NodeSettings, PutOutcome, RemoveOutcome, ScopeUsage, Store, StoreError, StoreKind, StoreResult,
    Subscription,
};

pub use self::lease::MAX_LEASE_HOLDER_LEN;
pub use self::pubsub::{MAX_CHANNEL_LEN, SUBSCRIPTION_CAPACITY};
pub use self::records::{GCRA_LIMIT_US, MAX_EXACT_SCORE};

/// Longest TTL accepted, in milliseconds (about 35,000 years). Redis refuses expiry times
/// that overflow, and a script cannot take back the writes it did before such a refusal,
/// so the bound is checked before anything is sent.
pub const MAX_TTL_MS: u64 = 1 << 50;

/// A store on one Redis server or on a Redis Cluster.
pub struct RedisStore {
    pool: Pool,
    subscriber: Subscriber,
    kind: StoreKind,
    key_prefix: String,
    /// The server's `host:port` for reports (a Cluster names each master itself).
    node: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("kind", &self.kind)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to one server (`redis://` or `rediss://`) with `cfg.pool_size`
    /// self-reconnecting multiplexed connections.
    ///
    /// Fails with [`StoreError::Unavailable`] when the server cannot be reached now, and
    /// with [`StoreError::Config`] when the URL is malformed.
    pub async fn connect_standalone(url: &str, cfg: &RedisConfig) -> StoreResult<RedisStore> {
        Ok(Self {
            pool: Pool::standalone(url, cfg).await?,
            subscriber: Subscriber::standalone(url, cfg)?,
            kind: StoreKind::Redis,
            key_prefix: cfg.key_prefix.clone(),
            node: settings::node_name(url),
        })
    }

    /// Connects to a Redis Cluster through its seed `nodes` (one `redis://` or
    /// `rediss://` URL each) with `cfg.pool_size` Cluster connections.
    ///
    /// Fails with [`StoreError::Unavailable`] when no seed node can be reached now.
    pub async fn connect_cluster(nodes: &[String], cfg: &RedisConfig) -> StoreResult<RedisStore> {
        Ok(Self {
            pool: Pool::cluster(nodes, cfg).await?,
            subscriber: Subscriber::cluster(nodes, cfg)?,
            kind: StoreKind::RedisCluster,
            key_prefix: cfg.key_prefix.clone(),
            node: "cluster".to_owned(),
        })
    }

    /// Sends one plain command.
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> StoreResult<T> {
        cmd.query_async(&mut self.pool.get())
            .await
            .map_err(from_redis)
    }

    /// Runs a script command built by `scripts`, loading the script first when the
    /// server does not know it yet (new server, restart, failover, `SCRIPT FLUSH`).
    /// A flush can land between the load and the retry, so a few loads are allowed
    /// before the error is returned.
    async fn eval<T: FromRedisValue>(&self, script: &Script, cmd: &Cmd) -> StoreResult<T> {
        const LOADS: usize = 3;
        let mut conn = self.pool.get();
        let mut loads = 0;
        loop {
            match cmd.query_async(&mut conn).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    if loads == LOADS {
                        return Err(from_redis(e));
                    }
                    loads += 1;
                    script
                        .prepare_invoke()
                        .load_async(&mut conn)
                        .await
                        .map_err(from_redis)?;
                }
                result => return result.map_err(from_redis),
            }
        }
    }

    /// Runs a bounded removal script (`{removed, more, used, entries}`) until it reports
    /// nothing more to do.
    async fn remove_all(&self, script: &Script, cmd: Cmd) -> StoreResult<RemoveOutcome> {
        let mut removed = 0;
        loop {
            let (n, more, used_bytes, entries): (i64, i64, i64, i64) =
                self.eval(script, &cmd).await?;
            removed += non_negative(n);
            if more == 0 {
                return Ok(RemoveOutcome {
                    removed,
                    used_bytes: non_negative(used_bytes),
                    entries: non_negative(entries),
                });
            }
        }
    }
}

/// Script counters are Lua numbers; a negative one would mean corrupted bookkeeping,
/// reported as zero rather than wrapped into a huge `u64`.
fn non_negative(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Input refused before it reaches the server.
fn refused(reason: String) -> StoreError {
    StoreError::Backend(format!("refused: {reason}"))
}

fn check_ttl(ttl_ms: Option<u64>) -> StoreResult<()> {
    match ttl_ms {
        Some(0) => Err(refused("a TTL of 0 ms".into())),
        Some(ttl) if ttl > MAX_TTL_MS => {
            Err(refused(format!("a TTL of {ttl} ms (at most {MAX_TTL_MS})")))
        }
        _ => Ok(()),
    }
}

/// Every put must be a cache entry key of `scope` in its stated namespace (the scripts
/// find an entry's namespace set from its key), with valid tags.
fn check_puts(scope: &ScopeKeys, puts: &[CachePut]) -> StoreResult<()> {
    let entries = format!("{}:c:", scope.base());
    for p in puts {
        check_ttl(p.ttl_ms)?;
        let in_namespace = p
            .key
            .strip_prefix(&entries)
            .and_then(|rest| rest.strip_prefix(p.namespace.as_str()))
            .is_some_and(|rest| rest.starts_with(':'));
        if p.namespace.is_empty() || p.namespace.contains(':') || !in_namespace {
            return Err(refused(format!(
                "cache key {:?} is not an entry of {:?} in namespace {:?}",
                p.key,
                scope.base(),
                p.namespace
            )));
        }
        for tag in &p.tags {
            validate_tag(tag).map_err(|e| refused(e.to_string()))?;
        }
    }
    Ok(())
}

#[async_trait]
impl Store for RedisStore {
    fn kind(&self) -> StoreKind {
        self.kind
    }

    fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    async fn ping(&self) -> StoreResult<()> {
        redis::cmd("PING")
            .query_async(&mut self.pool.get())
            .await
            .map_err(from_redis)
    }

    async fn node_settings(&self) -> StoreResult<Vec<NodeSettings>> {
        settings::read(self.pool.get(), &self.node).await
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Bytes>> {
        // The hot path: one command, and the reply's buffer becomes the `Bytes` as is.
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.pool.get())
            .await
            .map_err(from_redis)?;
        Ok(value.map(Bytes::from))
    }

    async fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut self.pool.get())
            .await
            .map_err(from_redis)?;
        Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect())
    }

    async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
        _durability: Durability,
    ) -> StoreResult<()> {
        check_ttl(ttl_ms)?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        if let Some(ttl) = ttl_ms {
            cmd.arg("PX").arg(ttl);
        }
        cmd.query_async(&mut self.pool.get())
            .await
            .map_err(from_redis)
    }

    async fn set_many(
        &self,
        entries: &[(String, Bytes, Option<u64>)],
        _durability: Durability,
    ) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        for (_, _, ttl) in entries {
            check_ttl(*ttl)?;
        }
        // One round trip; not a transaction: every SET stands alone.
        let mut pipe = redis::pipe();
        for (key, value, ttl) in entries {
            pipe.cmd("SET").arg(key).arg(&value[..]);
            if let Some(ttl) = ttl {
                pipe.arg("PX").arg(*ttl);
            }
            pipe.ignore();
        }
        pipe.query_async(&mut self.pool.get())
            .await
            .map_err(from_redis)
    }

    async fn delete(&self, keys: &[String]) -> StoreResult<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        // On a Cluster, the connection splits a DEL whose keys span slots into one DEL
        // per node and sums the replies.
        redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut self.pool.get())
            .await
            .map_err(from_redis)
    }

    async fn cache_put(
        &self,
        scope: &ScopeKeys,
        puts: &[CachePut],
        budget_bytes: Option<u64>,
    ) -> StoreResult<PutOutcome> {
        check_puts(scope, puts)?;
        let cmd = scripts::put(scope, puts, budget_bytes);
        let (evicted, used_bytes, entries): (Vec<String>, i64, i64) =
            self.eval(&scripts::PUT, &cmd).await?;
        Ok(PutOutcome {
            evicted,
            used_bytes: non_negative(used_bytes),
            entries: non_negative(entries),
        })
    }

    async fn cache_remove(&self, scope: &ScopeKeys, keys: &[String]) -> StoreResult<RemoveOutcome> {
        // A key outside the scope cannot be one of its entries; leaving it out also keeps
        // the script on the scope's Cluster slot.
        let entries = format!("{}:c:", scope.base());
        let ours: Vec<&str> = keys
            .iter()
            .map(String::as_str)
            .filter(|k| k.starts_with(&entries))
            .collect();
        let cmd = scripts::remove(scope, ours.into_iter());
        let (removed, used_bytes, entries): (i64, i64, i64) =
            self.eval(&scripts::REMOVE, &cmd).await?;
        Ok(RemoveOutcome {
            removed: non_negative(removed),
            used_bytes: non_negative(used_bytes),
            entries: non_negative(entries),
        })
    }

    async fn cache_remove_tag(&self, scope: &ScopeKeys, tag: &str) -> StoreResult<RemoveOutcome> {
        let set = scope.tag_members(tag);
        self.remove_all(&scripts::REMOVE_SET, scripts::remove_set(scope, &set))
            .await
    }

    async fn cache_remove_namespace(
        &self,
        scope: &ScopeKeys,
        namespace: &str,
    ) -> StoreResult<RemoveOutcome> {
        let set = scope.namespace_members(namespace);
        self.remove_all(&scripts::REMOVE_SET, scripts::remove_set(scope, &set))
            .await
    }

    async fn cache_clear(&self, scope: &ScopeKeys) -> StoreResult<RemoveOutcome> {
        self.remove_all(&scripts::CLEAR, scripts::clear(scope))
            .await
    }

    async fn cache_usage(&self, scope: &ScopeKeys) -> StoreResult<ScopeUsage> {
        let cmd = scripts::usage(scope);
        loop {
            let (used_bytes, entries, more): (i64, i64, i64) =
                self.eval(&scripts::USAGE, &cmd).await?;
            if more == 0 {
                return Ok(ScopeUsage {
                    used_bytes: non_negative(used_bytes),
                    entries: non_negative(entries),
                });
            }
        }
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
        _durability: Durability,
    ) -> StoreResult<bool> {
        check_ttl(ttl_ms)?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("NX");
        if let Some(ttl) = ttl_ms {
            cmd.arg("PX").arg(ttl);
        }
        // `OK` when written, nil when the key exists.
        let reply: Value = self.query(&cmd).await?;
        Ok(!matches!(reply, Value::Nil))
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
        _durability: Durability,
    ) -> StoreResult<bool> {
        let cmd = scripts::cas(key, expected, new);
        let swapped: i64 = self.eval(&scripts::CAS, &cmd).await?;
        Ok(swapped == 1)
    }

    async fn zset_add(&self, key: &str, members: &[(String, i64)]) -> StoreResult<()> {
        if members.is_empty() {
            return Ok(());
        }
        records::check_scores(members)?;
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(key);
        for (member, score) in members {
            cmd.arg(*score).arg(member);
        }
        let _added: i64 = self.query(&cmd).await?;
        Ok(())
    }

    async fn zset_remove(&self, key: &str, members: &[String]) -> StoreResult<u64> {
        if members.is_empty() {
            return Ok(0);
        }
        let removed: i64 = self.query(redis::cmd("ZREM").arg(key).arg(members)).await?;
        Ok(non_negative(removed))
    }

    async fn zset_range(
        &self,
        key: &str,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Vec<(String, i64)>> {
        let Some((start, stop)) = records::rank_range(offset, limit) else {
            return Ok(Vec::new());
        };
        let reply: Vec<(String, f64)> = self
            .query(
                redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(start)
                    .arg(stop)
                    .arg("WITHSCORES"),
            )
            .await?;
        records::scored(reply)
    }

    async fn zset_range_by_score(
        &self,
        key: &str,
        min: i64,
        max: i64,
        limit: u64,
    ) -> StoreResult<Vec<(String, i64)>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let reply: Vec<(String, f64)> = self
            .query(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(key)
                    .arg(records::score_bound(min))
                    .arg(records::score_bound(max))
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(records::count(limit)),
            )
            .await?;
        records::scored(reply)
    }

    async fn zset_remove_by_score(&self, key: &str, min: i64, max: i64) -> StoreResult<u64> {
        let removed: i64 = self
            .query(
                redis::cmd("ZREMRANGEBYSCORE")
                    .arg(key)
                    .arg(records::score_bound(min))
                    .arg(records::score_bound(max)),
            )
            .await?;
        Ok(non_negative(removed))
    }

    async fn zset_score(&self, key: &str, member: &str) -> StoreResult<Option<i64>> {
        let score: Option<f64> = self
            .query(redis::cmd("ZSCORE").arg(key).arg(member))
            .await?;
        score.map(|s| records::score_from(member, s)).transpose()
    }

    async fn zset_len(&self, key: &str) -> StoreResult<u64> {
        let len: i64 = self.query(redis::cmd("ZCARD").arg(key)).await?;
        Ok(non_negative(len))
    }

    async fn counters_get(&self, key: &str) -> StoreResult<Vec<(String, i64)>> {
        let reply: Vec<(String, String)> = self.query(redis::cmd("HGETALL").arg(key)).await?;
        records::counters_from(reply)
    }

    async fn counters_set(&self, key: &str, fields: &[(String, Option<i64>)]) -> StoreResult<()> {
        if fields.is_empty() {
            return Ok(());
        }
        let cmd = scripts::counters_set(key, fields);
        let _: i64 = self.eval(&scripts::COUNTERS_SET, &cmd).await?;
        Ok(())
    }

    async fn counters_add_once(
        &self,
        key: &str,
        dedupe_key: &str,
        batch_id: &str,
        increments: &[(String, i64)],
        dedupe_ttl_ms: u64,
    ) -> StoreResult<bool> {
        records::check_dedupe_ttl(dedupe_ttl_ms)?;
        let cmd = scripts::counters_add_once(key, dedupe_key, batch_id, increments, dedupe_ttl_ms);
        let applied: i64 = self.eval(&scripts::COUNTERS_ADD_ONCE, &cmd).await?;
        Ok(applied == 1)
    }

    async fn counters_get_applied(
        &self,
        key: &str,
        dedupe_key: &str,
        batch_ids: &[String],
    ) -> StoreResult<CountersApplied> {
        let cmd = scripts::counters_get_applied(key, dedupe_key, batch_ids);
        let (fields, flags): (Vec<(String, String)>, Vec<i64>) =
            self.eval(&scripts::COUNTERS_GET_APPLIED, &cmd).await?;
        if flags.len() != batch_ids.len() {
            return Err(StoreError::Backend(format!(
                "counters_get_applied: {} flags for {} batch ids",
                flags.len(),
                batch_ids.len()
            )));
        }
        Ok(CountersApplied {
            counters: records::counters_from(fields)?,
            applied: flags.into_iter().map(|f| f == 1).collect(),
        })
    }

    async fn gcra(
        &self,
        key: &str,
        limit: &GcraLimit,
        now_ms: u64,
        cost: u64,
    ) -> StoreResult<GcraDecision> {
        records::check_gcra(limit, now_ms, cost)?;
        let cmd = scripts::gcra(key, limit, now_ms, cost);
        let reply: records::GcraReply = self.eval(&scripts::GCRA, &cmd).await?;
        Ok(records::decision(reply))
    }

    async fn lease(
        &self,
        key: &str,
        holder: &str,
        ttl_ms: u64,
        op: LeaseOp,
    ) -> StoreResult<LeaseState> {
        lease::check(holder, ttl_ms)?;
        let cmd = scripts::lease(key, holder, ttl_ms, op);
        let reply: lease::LeaseReply = self.eval(&scripts::LEASE, &cmd).await?;
        Ok(lease::state(reply))
    }

    async fn set_fenced(
        &self,
        lease_key: &str,
        token: u64,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
        _durability: Durability,
    ) -> StoreResult<bool> {
        check_ttl(ttl_ms)?;
        let cmd = scripts::set_fenced(lease_key, token, key, value, ttl_ms);
        let written: i64 = self.eval(&scripts::SET_FENCED, &cmd).await?;
        Ok(written == 1)
    }

    async fn publish(&self, channel: &str, payload: &[u8]) -> StoreResult<()> {
        pubsub::check_channel(channel)?;
        // Replies with the number of subscribers reached; on a Cluster only those of the
        // node it ran on, so it says nothing useful and is ignored.
        let _receivers: i64 = self
            .query(redis::cmd("PUBLISH").arg(channel).arg(payload))
            .await?;
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> StoreResult<Subscription> {
        self.subscriber.subscribe(channel).await
    }

    // ---- atomic multi-key writes (issue 10, item 5) ----

    async fn write_atomic(&self, ops: &[crate::store::WriteOp]) -> StoreResult<bool> {
        atomic::write_atomic(self, ops).await
    }
}

#[cfg(test)]
mod tests;
