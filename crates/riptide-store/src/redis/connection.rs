//! The connections of a [`super::RedisStore`]: a small round-robin pool of multiplexed
//! connections to one server or to a Cluster.
//!
//! Each pooled connection is itself multiplexed (many requests in flight on one socket),
//! so the pool only spreads load over a few sockets; it never blocks waiting for a free
//! connection. Handing out a connection is one atomic increment and one `Arc` clone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::try_join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::error::from_redis;
use crate::config::RedisConfig;
use crate::{StoreError, StoreResult};

/// Reconnect attempts a [`ConnectionManager`] makes before failing the commands that wait
/// on it. Kept low so that, while the server is down, callers get
/// [`StoreError::Unavailable`] in well under a second instead of waiting out a long
/// backoff; the next command starts a fresh reconnect, so recovery is still automatic.
const RECONNECT_RETRIES: usize = 2;
/// First reconnect backoff (jittered, doubling per attempt).
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);
/// Longest reconnect backoff.
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);

/// One multiplexed connection, to a single server or to a Cluster.
#[derive(Clone)]
pub(super) enum Connection {
    /// A self-reconnecting connection to one server.
    Standalone(ConnectionManager),
    /// A Cluster connection; it routes each command by its keys' slot and follows
    /// topology changes by itself.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    // Forwarding the inner (already boxed) futures keeps the enum free: no extra
    // allocation on the `get` path.
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Standalone(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Standalone(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// A fixed set of connections handed out round-robin.
pub(super) struct Pool {
    connections: Box<[Connection]>,
    next: AtomicUsize,
}

impl Pool {
    /// Connects `cfg.pool_size` self-reconnecting connections to the server at `url`.
    ///
    /// Fails with [`StoreError::Unavailable`] when the server cannot be reached now.
    pub(super) async fn standalone(url: &str, cfg: &RedisConfig) -> StoreResult<Self> {
        let client =
            redis::Client::open(url).map_err(|e| StoreError::Config(format!("redis url: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(cfg.connection_timeout_ms)))
            .set_response_timeout(Some(Duration::from_millis(cfg.command_timeout_ms)))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_max_delay(RECONNECT_MAX_DELAY);
        let connect = (0..cfg.pool_size.max(1)).map(|_| {
            let client = client.clone();
            let config = config.clone();
            async move { ConnectionManager::new_with_config(client, config).await }
        });
        let managers = try_join_all(connect).await.map_err(from_redis)?;
        Ok(Self::new(
            managers.into_iter().map(Connection::Standalone).collect(),
        ))
    }

    /// Connects `cfg.pool_size` Cluster connections, discovering the topology from the
    /// seed `nodes`.
    pub(super) async fn cluster(nodes: &[String], cfg: &RedisConfig) -> StoreResult<Self> {
        if nodes.is_empty() {
            return Err(StoreError::Config("redis cluster: no seed nodes".into()));
        }
        let client = ClusterClient::builder(nodes.iter().map(String::as_str))
            .connection_timeout(Duration::from_millis(cfg.connection_timeout_ms))
            // Also the overall bound of one request, retries and redirections included.
            .response_timeout(Duration::from_millis(cfg.command_timeout_ms))
            .build()
            .map_err(|e| StoreError::Config(format!("redis cluster: {e}")))?;
        let connect = (0..cfg.pool_size.max(1)).map(|_| client.get_async_connection());
        let connections = try_join_all(connect).await.map_err(from_redis)?;
        Ok(Self::new(
            connections.into_iter().map(Connection::Cluster).collect(),
        ))
    }

    fn new(connections: Box<[Connection]>) -> Self {
        Self {
            connections,
            next: AtomicUsize::new(0),
        }
    }

    /// The next connection, round-robin.
    pub(super) fn get(&self) -> Connection {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[i].clone()
    }
}
