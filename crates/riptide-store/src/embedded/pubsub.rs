//! Publish/subscribe on the embedded store, in process.
//!
//! The store belongs to one process, so "every instance sharing the store" is this
//! process, and messages never touch redb:
//!
//! - **Channels.** One `tokio::sync::broadcast` channel of [`CHANNEL_CAPACITY`] messages
//!   per channel name, created by the first `subscribe` and kept in a map only while it
//!   has receivers: the forwarder of the last subscription removes it when it ends (or
//!   when its task is dropped with its runtime), and a publish that finds no receiver
//!   left removes it too. So the map never holds more channels than there are live
//!   subscriptions, and at most [`MAX_CHANNELS`] (a subscribe to a new channel beyond
//!   that is refused). `publish` to a channel nobody listens to is a no-op.
//! - **Subscriptions.** `subscribe` takes its broadcast receiver before it returns, so a
//!   message published after `subscribe` returns is delivered, and one published before
//!   is not. A forwarder task moves messages from the broadcast receiver into the
//!   subscription's bounded mpsc queue ([`EVENTS_CAPACITY`]), in order. A consumer that
//!   falls more than the broadcast buffer behind makes the forwarder lag: the messages
//!   it missed are gone, so it yields [`SubscriptionEvent::Resubscribed`] (what a Redis
//!   subscription yields after missing messages in a reconnect) and goes on with the
//!   oldest message still buffered. Publishers never wait for subscribers.
//! - **Ends.** The forwarder ends when the [`Subscription`] is dropped (its queue
//!   closes; noticed at once, not at the next message) or when the store is dropped (its
//!   shutdown token fires; the consumer then sees the end of the queue).
//!
//! Channel names are 1 to [`MAX_CHANNEL_LEN`] bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::backend;
use crate::{StoreResult, Subscription, SubscriptionEvent};

/// Messages a channel buffers for its slowest subscriber before that one lags.
pub(super) const CHANNEL_CAPACITY: usize = 4096;
/// Events a subscription's queue holds before its forwarder waits (and may then lag).
pub(super) const EVENTS_CAPACITY: usize = 1024;
/// Channels with live subscriptions at once, at most.
pub(super) const MAX_CHANNELS: usize = 65_536;
/// Longest channel name, in bytes.
pub(super) const MAX_CHANNEL_LEN: usize = 256;

/// Channel name → its broadcast sender.
type Channels = Mutex<HashMap<String, broadcast::Sender<Bytes>>>;

/// The store's channels (see the module docs).
#[derive(Debug, Default)]
pub(super) struct PubSub {
    channels: Arc<Channels>,
}

fn lock(channels: &Channels) -> MutexGuard<'_, HashMap<String, broadcast::Sender<Bytes>>> {
    // Nothing under this lock can leave the map inconsistent, so a poisoned lock is fine.
    channels.lock().unwrap_or_else(|e| e.into_inner())
}

/// Refuses an empty or over-long channel name.
fn check_channel(channel: &str) -> StoreResult<()> {
    if channel.is_empty() || channel.len() > MAX_CHANNEL_LEN {
        return Err(backend(&format!(
            "a channel name must be 1 to {MAX_CHANNEL_LEN} bytes, not {}",
            channel.len()
        )));
    }
    Ok(())
}

/// Removes `channel` from the map if at most `own` receivers (the caller's, still alive)
/// are left on it. Under the map lock, so a concurrent `subscribe` (which takes its
/// receiver under the same lock) either comes first and keeps the channel, or comes
/// after and creates a new one.
fn forget_if_unused(channels: &Channels, channel: &str, own: usize) {
    let mut map = lock(channels);
    if map
        .get(channel)
        .is_some_and(|sender| sender.receiver_count() <= own)
    {
        map.remove(channel);
    }
}

impl PubSub {
    /// `publish`: see [`crate::Coordination::publish`].
    pub(super) fn publish(&self, channel: &str, payload: &[u8]) -> StoreResult<()> {
        check_channel(channel)?;
        let Some(sender) = lock(&self.channels).get(channel).cloned() else {
            return Ok(());
        };
        if sender.send(Bytes::copy_from_slice(payload)).is_err() {
            // Its last subscription just ended.
            forget_if_unused(&self.channels, channel, 0);
        }
        Ok(())
    }

    /// `subscribe`: see [`crate::Coordination::subscribe`]. The forwarder stops when
    /// `shutdown` fires.
    pub(super) fn subscribe(
        &self,
        channel: &str,
        shutdown: &CancellationToken,
    ) -> StoreResult<Subscription> {
        check_channel(channel)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| backend("subscribe must run inside a tokio runtime"))?;
        let receiver = {
            let mut map = lock(&self.channels);
            match map.get(channel) {
                Some(sender) => sender.subscribe(),
                None => {
                    if map.len() >= MAX_CHANNELS {
                        map.retain(|_, sender| sender.receiver_count() > 0);
                        if map.len() >= MAX_CHANNELS {
                            return Err(backend(&format!(
                                "too many channels with subscribers (at most {MAX_CHANNELS})"
                            )));
                        }
                    }
                    let (sender, receiver) = broadcast::channel(CHANNEL_CAPACITY);
                    map.insert(channel.to_owned(), sender);
                    receiver
                }
            }
        };
        let (events, queue) = mpsc::channel(EVENTS_CAPACITY);
        let forwarding = Forwarding {
            receiver,
            channels: Arc::downgrade(&self.channels),
            channel: channel.to_owned(),
        };
        runtime.spawn(forward(forwarding, events, shutdown.clone()));
        Ok(Subscription { events: queue })
    }

    /// Channels with live subscriptions.
    #[cfg(test)]
    pub(super) fn channel_count(&self) -> usize {
        lock(&self.channels).len()
    }
}

/// What a forwarder owns of its channel. Dropping it (when the forwarder ends, or when
/// its task is dropped with its runtime) removes the channel from the map if this was its
/// last receiver.
struct Forwarding {
    receiver: broadcast::Receiver<Bytes>,
    channels: Weak<Channels>,
    channel: String,
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        if let Some(channels) = self.channels.upgrade() {
            // `self.receiver` still counts here (fields drop after this), and while it
            // lives the map's entry for the channel is the one it came from.
            forget_if_unused(&channels, &self.channel, 1);
        }
    }
}

/// The forwarder of one subscription (see the module docs).
async fn forward(
    mut from: Forwarding,
    events: mpsc::Sender<SubscriptionEvent>,
    shutdown: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            () = events.closed() => return,
            received = from.receiver.recv() => match received {
                Ok(payload) => SubscriptionEvent::Message(payload),
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(
                        channel = from.channel,
                        missed,
                        "embedded store: subscriber lagged"
                    );
                    SubscriptionEvent::Resubscribed
                }
                Err(RecvError::Closed) => return,
            },
        };
        let sent = tokio::select! {
            () = shutdown.cancelled() => false,
            sent = events.send(event) => sent.is_ok(),
        };
        if !sent {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;
    use std::time::Duration;

    use bytes::Bytes;

    use super::super::tests::fixture;
    use super::{CHANNEL_CAPACITY, EVENTS_CAPACITY, MAX_CHANNEL_LEN};
    use crate::{StoreError, Subscription, SubscriptionEvent};

    const WAIT: Duration = Duration::from_secs(5);

    async fn next(sub: &mut Subscription) -> Option<SubscriptionEvent> {
        tokio::time::timeout(WAIT, sub.events.recv())
            .await
            .expect("an event or the end of the subscription in time")
    }

    fn message(i: u32) -> SubscriptionEvent {
        SubscriptionEvent::Message(Bytes::from(i.to_le_bytes().to_vec()))
    }

    /// Waits until the store has `n` channels.
    async fn channels_become(store: &super::super::EmbeddedStore, n: usize) {
        for _ in 0..500 {
            if store.inner.pubsub.channel_count() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} channels, never {n}", store.inner.pubsub.channel_count());
    }

    #[tokio::test]
    async fn subscribers_get_what_is_published_after_they_subscribe_in_order() {
        let f = fixture();
        let s = &f.store;
        s.publish("c", b"before").await.unwrap();
        assert_eq!(
            s.inner.pubsub.channel_count(),
            0,
            "no subscriber, no channel"
        );
        let mut a = s.subscribe("c").await.unwrap();
        let mut b = s.subscribe("c").await.unwrap();
        let mut other = s.subscribe("d").await.unwrap();
        for i in 0..100u32 {
            s.publish("c", &i.to_le_bytes()).await.unwrap();
        }
        s.publish("d", b"x").await.unwrap();
        for sub in [&mut a, &mut b] {
            for i in 0..100 {
                assert_eq!(next(sub).await, Some(message(i)));
            }
        }
        assert_eq!(
            next(&mut other).await,
            Some(SubscriptionEvent::Message(Bytes::from_static(b"x")))
        );
        assert!(a.events.try_recv().is_err(), "nothing else");
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_told_and_goes_on() {
        let f = fixture();
        let s = &f.store;
        let mut slow = s.subscribe("c").await.unwrap();
        // On this single-threaded runtime the forwarder runs only when the test awaits
        // something that is not ready, so these publishes overflow the broadcast buffer.
        let total = u32::try_from(CHANNEL_CAPACITY * 2 + EVENTS_CAPACITY).unwrap();
        for i in 0..total {
            s.publish("c", &i.to_le_bytes()).await.unwrap();
        }
        assert_eq!(next(&mut slow).await, Some(SubscriptionEvent::Resubscribed));
        let first = total - u32::try_from(CHANNEL_CAPACITY).unwrap();
        for i in first..total {
            assert_eq!(next(&mut slow).await, Some(message(i)), "oldest kept first");
        }
        // Still subscribed after the lag.
        s.publish("c", b"after").await.unwrap();
        assert_eq!(
            next(&mut slow).await,
            Some(SubscriptionEvent::Message(Bytes::from_static(b"after")))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_lags_instead_of_blocking_the_publisher() {
        let f = fixture();
        let s = &f.store;
        let mut slow = s.subscribe("c").await.unwrap();
        let total = u32::try_from(CHANNEL_CAPACITY * 4).unwrap();
        for i in 0..total {
            s.publish("c", &i.to_le_bytes()).await.unwrap();
        }
        // Whatever the forwarder managed to move, the order holds, nothing repeats, and
        // every gap is announced.
        let mut expected = 0;
        let mut lagged = false;
        while expected < total {
            match next(&mut slow).await.expect("still subscribed") {
                SubscriptionEvent::Resubscribed => lagged = true,
                SubscriptionEvent::Message(m) => {
                    let i = u32::from_le_bytes(m.as_ref().try_into().unwrap());
                    assert!(i >= expected, "{i} after {expected}");
                    assert!(i == expected || lagged, "gap before {i} not announced");
                    lagged = false;
                    expected = i + 1;
                }
            }
        }
        assert!(slow.events.try_recv().is_err());
    }

    #[tokio::test]
    async fn dropping_subscriptions_ends_forwarders_and_shrinks_the_map() {
        let f = fixture();
        let s = &f.store;
        let a1 = s.subscribe("a").await.unwrap();
        let mut a2 = s.subscribe("a").await.unwrap();
        let b = s.subscribe("b").await.unwrap();
        assert_eq!(s.inner.pubsub.channel_count(), 2);
        drop(b);
        channels_become(s, 1).await;
        drop(a1);
        s.publish("a", b"m").await.unwrap();
        assert_eq!(
            next(&mut a2).await,
            Some(SubscriptionEvent::Message(Bytes::from_static(b"m"))),
            "the other subscription of the channel lives on"
        );
        assert_eq!(s.inner.pubsub.channel_count(), 1);
        drop(a2);
        channels_become(s, 0).await;
        s.publish("a", b"nobody").await.unwrap();
        assert_eq!(s.inner.pubsub.channel_count(), 0);
        // A channel is created again on demand.
        let mut again = s.subscribe("a").await.unwrap();
        s.publish("a", b"n").await.unwrap();
        assert_eq!(
            next(&mut again).await,
            Some(SubscriptionEvent::Message(Bytes::from_static(b"n")))
        );
    }

    #[tokio::test]
    async fn a_forwarder_dropped_with_its_runtime_leaves_the_map_too() {
        let f = fixture();
        let store = std::sync::Arc::clone(&f.store);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let sub = runtime.block_on(store.subscribe("c")).unwrap();
            assert_eq!(store.inner.pubsub.channel_count(), 1);
            // The forwarder task is dropped with its runtime, before the subscription.
            drop(runtime);
            assert_eq!(store.inner.pubsub.channel_count(), 0);
            drop(sub);
        })
        .join()
        .unwrap();
        f.store.publish("c", b"nobody").await.unwrap();
    }

    #[tokio::test]
    async fn dropping_the_store_ends_subscriptions() {
        let f = fixture();
        let mut sub = f.store.subscribe("c").await.unwrap();
        let weak = std::sync::Arc::downgrade(&f.store.inner);
        drop(f.store);
        assert_eq!(next(&mut sub).await, None, "the forwarder ended");
        assert!(
            weak.upgrade().is_none(),
            "no forwarder keeps the store alive"
        );
    }

    #[tokio::test]
    async fn bad_channel_names_are_refused() {
        let f = fixture();
        let s = &f.store;
        let long = "c".repeat(MAX_CHANNEL_LEN + 1);
        for bad in ["", long.as_str()] {
            let err = s.publish(bad, b"x").await.unwrap_err();
            assert!(matches!(err, StoreError::Backend(_)), "{err}");
            let err = s.subscribe(bad).await.err().expect("refused");
            assert!(matches!(err, StoreError::Backend(_)), "{err}");
        }
        let longest = "c".repeat(MAX_CHANNEL_LEN);
        let mut sub = s.subscribe(&longest).await.unwrap();
        let all: Vec<u8> = (0..=255).collect();
        s.publish(&longest, &all).await.unwrap();
        assert_eq!(
            next(&mut sub).await,
            Some(SubscriptionEvent::Message(Bytes::from(all)))
        );
    }
}
