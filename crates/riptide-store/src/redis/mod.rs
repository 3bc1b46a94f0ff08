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
//! [`Durability`](crate::Durability) is not used here: whether Redis keeps data across a crash is the
//! server's persistence configuration (AOF, RDB), not something a client chooses per write.

mod atomic;
mod cache_index;
mod connection;
mod coordination;
mod counters;
mod error;
mod gcra;
mod kv;
mod lease;
mod pubsub;
mod records;
mod scripts;
mod settings;
mod zset;

use async_trait::async_trait;
use redis::{Cmd, ErrorKind, FromRedisValue, Script, ServerErrorKind};

use self::connection::Pool;
use self::error::from_redis;
use self::pubsub::Subscriber;
use crate::config::RedisConfig;
use crate::{Backend, NodeSettings, RemoveOutcome, StoreError, StoreKind, StoreResult};

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

#[async_trait]
impl Backend for RedisStore {
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
}

#[cfg(test)]
mod tests;
