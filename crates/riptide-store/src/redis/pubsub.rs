//! `publish` / `subscribe`: classic Redis pub/sub.
//!
//! Publishing is one `PUBLISH` on a pooled connection (see `super::RedisStore`). On a
//! Cluster the connection routes it by the channel's slot, and the Cluster bus then
//! broadcasts classic (not sharded) pub/sub messages to every node, so a subscriber
//! connected to any one node receives what is published through any other.
//!
//! A subscription is a task owning a dedicated pub/sub connection (a connection in
//! subscribed mode can run nothing else, so it cannot be one of the pool's): standalone,
//! to the store's server; on a Cluster, to the first reachable seed node, tried in turn
//! from the one that worked last. The task loops:
//!
//! 1. connect and `SUBSCRIBE`; if this is not the first subscription, yield
//!    [`SubscriptionEvent::Resubscribed`] (messages published while it was down are lost);
//! 2. forward every message as [`SubscriptionEvent::Message`], and `PING` through the
//!    connection after [`KEEPALIVE`] of silence, so a connection that died without
//!    closing (a crashed host, a dropped NAT entry) is noticed too;
//! 3. when the connection fails or ends: back off (50 ms doubling to 1 s, jittered) and go
//!    back to 1.
//!
//! On a Cluster, the node a subscription listens on only has to be reachable and part of
//! the Cluster (primary or replica): the Cluster bus brings it every message. A node cut
//! off from the rest of the Cluster while still answering its clients would go on
//! answering `PING` but receive nothing published elsewhere; that is the Cluster's own
//! failure to detect (it then marks the node failed), not something a client can see.
//!
//! The first subscription is in place before [`Subscriber::subscribe`] returns, so a
//! message published after that is received; if it cannot be made within the connection
//! timeout, `subscribe` fails with [`StoreError::Unavailable`].
//!
//! A slow consumer never stops the task from reading its connection: Redis disconnects a
//! subscriber whose unread output passes `client-output-buffer-limit pubsub` (32 MB, or
//! 8 MB for 60 s, by default), and an unbounded queue would let a stuck consumer grow
//! memory without bound. So events go into a queue of [`SUBSCRIPTION_CAPACITY`]; when it
//! is full, messages are dropped until there is room again, and then a `Resubscribed` is
//! queued first: to the consumer it is the same loss as an outage, and it calls for the
//! same reaction (drop whatever the lost messages might have invalidated).
//!
//! The task ends as soon as the [`Subscription`]'s receiver is dropped (it watches for that
//! while forwarding, connecting and backing off), and with it the connection: the server
//! then forgets the subscriber. It does not depend on the store handle, which may be
//! dropped first.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rand::Rng;
use redis::Value;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::mpsc::{self, Sender, error::TrySendError};
use tokio::time::{Instant, MissedTickBehavior, interval_at, timeout};

use super::error::from_redis;
use super::refused;
use crate::config::RedisConfig;
use crate::{StoreError, StoreResult, Subscription, SubscriptionEvent};

/// Longest channel name, in bytes.
pub const MAX_CHANNEL_LEN: usize = 256;

/// Events a subscription queues for its consumer before it drops messages (and owes a
/// [`SubscriptionEvent::Resubscribed`]).
pub const SUBSCRIPTION_CAPACITY: usize = 1024;

/// First reconnect backoff; it doubles per failed attempt up to [`BACKOFF_MAX`], and each
/// wait is jittered between half and all of it, so instances that lost the server together
/// do not reconnect in lockstep.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest reconnect backoff.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Silence after which the connection is checked with a `PING`.
const KEEPALIVE: Duration = Duration::from_secs(5);

/// Refuses an empty channel name or one longer than [`MAX_CHANNEL_LEN`] bytes.
pub(super) fn check_channel(channel: &str) -> StoreResult<()> {
    if channel.is_empty() || channel.len() > MAX_CHANNEL_LEN {
        return Err(refused(format!(
            "a channel name of {} bytes (between 1 and {MAX_CHANNEL_LEN})",
            channel.len()
        )));
    }
    Ok(())
}

/// Where and how subscriptions connect.
#[derive(Clone)]
pub(super) struct Subscriber {
    /// The server, or every seed node of a Cluster.
    targets: Arc<[redis::Client]>,
    /// Bound of connecting (TCP, TLS, handshake) to one target.
    connection_timeout: Duration,
    /// Bound of the `SUBSCRIBE` and `PING` replies.
    command_timeout: Duration,
    /// Silence after which a connection is checked ([`KEEPALIVE`]; shorter in tests).
    keepalive: Duration,
}

impl Subscriber {
    /// Subscriptions to the one server at `url`.
    pub(super) fn standalone(url: &str, cfg: &RedisConfig) -> StoreResult<Self> {
        Self::new(&[url], cfg)
    }

    /// Subscriptions to any one of a Cluster's seed `nodes`.
    pub(super) fn cluster(nodes: &[String], cfg: &RedisConfig) -> StoreResult<Self> {
        let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
        Self::new(&nodes, cfg)
    }

    fn new(urls: &[&str], cfg: &RedisConfig) -> StoreResult<Self> {
        if urls.is_empty() {
            return Err(StoreError::Config("redis: no node to subscribe on".into()));
        }
        let targets = urls
            .iter()
            .map(|url| {
                redis::Client::open(*url)
                    .map_err(|e| StoreError::Config(format!("redis url {url:?}: {e}")))
            })
            .collect::<StoreResult<Arc<[_]>>>()?;
        Ok(Self {
            targets,
            connection_timeout: Duration::from_millis(cfg.connection_timeout_ms),
            command_timeout: Duration::from_millis(cfg.command_timeout_ms),
            keepalive: KEEPALIVE,
        })
    }

    /// The same, checking a silent connection after `keepalive` rather than [`KEEPALIVE`].
    #[cfg(test)]
    pub(super) fn with_keepalive(self, keepalive: Duration) -> Self {
        Self { keepalive, ..self }
    }

    /// Subscribes to `channel` and starts the task that keeps the subscription alive.
    pub(super) async fn subscribe(&self, channel: &str) -> StoreResult<Subscription> {
        check_channel(channel)?;
        let mut task = Task {
            subscriber: self.clone(),
            channel: channel.to_owned(),
            next: 0,
        };
        let live = task.connect().await?;
        let (tx, events) = mpsc::channel(SUBSCRIPTION_CAPACITY);
        tokio::spawn(task.run(live, tx));
        Ok(Subscription { events })
    }

    /// One connection to `client`, subscribed to `channel`.
    async fn connect_to(&self, client: &redis::Client, channel: &str) -> StoreResult<Live> {
        let addr = client.get_connection_info().addr();
        let pubsub = timeout(self.connection_timeout, client.get_async_pubsub())
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "subscribe: connecting to {addr} timed out after {:?}",
                    self.connection_timeout
                ))
            })?
            .map_err(from_redis)?;
        let (mut sink, stream) = pubsub.split();
        timeout(self.command_timeout, sink.subscribe(channel))
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "subscribe: no answer to SUBSCRIBE from {addr} within {:?}",
                    self.command_timeout
                ))
            })?
            .map_err(from_redis)?;
        Ok(Live { sink, stream })
    }
}

/// A subscribed connection. Dropping the stream stops the connection's driver task and
/// closes the socket.
struct Live {
    sink: PubSubSink,
    stream: PubSubStream,
}

/// Why forwarding stopped.
enum Ended {
    /// The consumer dropped its receiver: the task is done.
    ReceiverGone,
    /// The connection failed or closed: reconnect.
    ConnectionLost(String),
}

/// The task behind one [`Subscription`].
struct Task {
    subscriber: Subscriber,
    channel: String,
    /// The target tried first on the next connect: the one that worked last.
    next: usize,
}

impl Task {
    /// Connects and subscribes, trying every target once, starting with `next`.
    async fn connect(&mut self) -> StoreResult<Live> {
        let targets = Arc::clone(&self.subscriber.targets);
        let mut last_error = None;
        for i in 0..targets.len() {
            let at = (self.next + i) % targets.len();
            match self
                .subscriber
                .connect_to(&targets[at], &self.channel)
                .await
            {
                Ok(live) => {
                    self.next = at;
                    return Ok(live);
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| StoreError::Config("redis: no node".into())))
    }

    async fn run(mut self, mut live: Live, tx: Sender<SubscriptionEvent>) {
        // True while a `Resubscribed` is owed to the consumer (after an outage, or after
        // messages were dropped because the queue was full).
        let mut owed = false;
        loop {
            match self.forward(&mut live, &tx, &mut owed).await {
                Ended::ReceiverGone => return,
                Ended::ConnectionLost(reason) => tracing::warn!(
                    channel = %self.channel,
                    %reason,
                    "redis subscription lost; resubscribing"
                ),
            }
            drop(live);
            owed = true;
            live = match self.reconnect(&tx).await {
                Some(live) => live,
                None => return,
            };
        }
    }

    /// Backs off and reconnects until it succeeds (`Some`) or the receiver is dropped
    /// (`None`).
    async fn reconnect(&mut self, tx: &Sender<SubscriptionEvent>) -> Option<Live> {
        let mut step = BACKOFF_MIN;
        loop {
            let wait = jittered(step);
            step = (step * 2).min(BACKOFF_MAX);
            tokio::select! {
                () = tx.closed() => return None,
                () = tokio::time::sleep(wait) => {}
            }
            tokio::select! {
                () = tx.closed() => return None,
                result = self.connect() => match result {
                    Ok(live) => return Some(live),
                    Err(e) => tracing::debug!(
                        channel = %self.channel,
                        error = %e,
                        "redis resubscription failed; retrying"
                    ),
                },
            }
        }
    }

    /// Forwards messages (and an owed `Resubscribed` first) until the connection or the
    /// receiver goes away.
    async fn forward(
        &self,
        live: &mut Live,
        tx: &Sender<SubscriptionEvent>,
        owed: &mut bool,
    ) -> Ended {
        let period = self.subscriber.keepalive;
        let mut keepalive = interval_at(Instant::now() + period, period);
        keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = tx.closed() => return Ended::ReceiverGone,
                permit = tx.reserve(), if *owed => match permit {
                    Ok(permit) => {
                        permit.send(SubscriptionEvent::Resubscribed);
                        *owed = false;
                    }
                    Err(_) => return Ended::ReceiverGone,
                },
                msg = live.stream.next() => {
                    let Some(msg) = msg else {
                        return Ended::ConnectionLost("the connection closed".into());
                    };
                    keepalive.reset();
                    if *owed {
                        // No room since an earlier drop: the owed `Resubscribed` covers it.
                        continue;
                    }
                    let event =
                        SubscriptionEvent::Message(Bytes::copy_from_slice(msg.get_payload_bytes()));
                    match tx.try_send(event) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => *owed = true,
                        Err(TrySendError::Closed(_)) => return Ended::ReceiverGone,
                    }
                }
                _ = keepalive.tick() => {
                    match timeout(self.subscriber.command_timeout, live.sink.ping::<Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Ended::ConnectionLost(format!("PING failed: {e}")),
                        Err(_) => {
                            return Ended::ConnectionLost(format!(
                                "no answer to PING within {:?}",
                                self.subscriber.command_timeout
                            ));
                        }
                    }
                }
            }
        }
    }
}

/// A wait between half and all of `step`.
fn jittered(step: Duration) -> Duration {
    let half = step / 2;
    half + rand::rng().random_range(Duration::ZERO..=half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_are_checked() {
        assert!(check_channel("c").is_ok());
        assert!(check_channel(&"c".repeat(MAX_CHANNEL_LEN)).is_ok());
        for bad in [String::new(), "c".repeat(MAX_CHANNEL_LEN + 1)] {
            assert!(
                matches!(check_channel(&bad), Err(StoreError::Backend(m)) if m.starts_with("refused: "))
            );
        }
    }

    #[test]
    fn backoff_is_jittered_within_its_step() {
        for _ in 0..100 {
            let wait = jittered(BACKOFF_MIN);
            assert!(wait >= BACKOFF_MIN / 2 && wait <= BACKOFF_MIN, "{wait:?}");
        }
        let mut step = BACKOFF_MIN;
        for _ in 0..10 {
            step = (step * 2).min(BACKOFF_MAX);
        }
        assert_eq!(step, BACKOFF_MAX);
    }
}
