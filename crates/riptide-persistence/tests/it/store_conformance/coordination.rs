//! Coordination: leases with fencing tokens, and publish/subscribe, with the same
//! answers on every backend.
//!
//! Leases: the lease key and its fencing counter (`<key>:fence`) come from one tenant's
//! [`ScopeKeys`], so on a Cluster they share a slot. On Redis a holding's TTL runs on the
//! server's clock, so the cross-backend expiry test uses a short real TTL and sleeps; the
//! injected-clock variant runs on the embedded store only.
//!
//! Publish/subscribe: a Redis `SUBSCRIBE` becomes live some time after `subscribe`
//! returns (the subscription connection subscribes asynchronously, and a message
//! published before the server registered it is not delivered), so every test first
//! waits until its subscriptions are live ([`wait_until_live`]: publish pings until each
//! subscription has seen one, then a barrier that flushes the pings) and asserts exact
//! message sequences only after that. A "second instance" is a second store handle on
//! the same data: another `RedisStore` connected to the same server (or Cluster) with
//! the same key prefix, or, for the embedded store (one handle per file per process),
//! the same store object.
//!
//! Channel names are taken as given, like keys: the store does not prefix them, so
//! callers build them from the key prefix (`<prefix>:sync`) and these tests use unique
//! names, since every test store on the shared Redis server sees every channel.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use riptide_persistence::SharedStore;
use riptide_persistence::clock::ManualClock;
use riptide_persistence::config::RedisConfig;
use riptide_persistence::store::redis::RedisStore;
use riptide_persistence::store::{
    LeaseOp, LeaseState, StoreError, Subscription, SubscriptionEvent,
};
use riptide_test_support::{redis_cluster, redis_server, unique};

use super::{open, tenant_keys};
use crate::support::{Backend, on_every_backend, store_with_clock};

on_every_backend!(
    lease_acquire_takes_a_free_lease_and_extends_for_its_holder,
    lease_another_holder_is_refused_and_told_who_holds_it,
    lease_release_by_a_non_holder_changes_nothing,
    lease_release_frees_and_the_next_token_is_larger,
    lease_tokens_keep_increasing_over_many_holdings,
    lease_expiry_lets_another_holder_take_over,
    lease_keys_are_independent,
    lease_bad_input_is_refused,
    lease_concurrent_acquirers_exactly_one_holds,
    pubsub_two_subscribers_receive_in_order,
    pubsub_another_instance_receives,
    pubsub_messages_published_before_subscribing_are_not_received,
    pubsub_dropping_a_subscription_leaves_the_others,
    pubsub_binary_payloads_are_intact,
    pubsub_channels_are_independent,
    pubsub_publish_without_subscribers_is_fine,
    pubsub_bad_channel_names_are_refused,
);

/// A TTL no test outlives.
const LONG_TTL_MS: u64 = 60_000;

/// How long a test waits for one event before it fails.
const EVENT_WAIT: Duration = Duration::from_secs(5);

/// A fresh store on `b` and the key of a lease in a new tenant's scope.
async fn lease_store(b: Backend) -> (crate::support::TestStore, SharedStore, String) {
    let (ts, store) = open(b).await;
    let key = tenant_keys(&store).record("lease");
    (ts, store, key)
}

async fn acquire(store: &SharedStore, key: &str, holder: &str, ttl_ms: u64) -> LeaseState {
    store
        .lease(key, holder, ttl_ms, LeaseOp::Acquire)
        .await
        .expect("acquire")
}

async fn release(store: &SharedStore, key: &str, holder: &str) -> LeaseState {
    store
        .lease(key, holder, LONG_TTL_MS, LeaseOp::Release)
        .await
        .expect("release")
}

fn free() -> LeaseState {
    LeaseState {
        held: false,
        holder: None,
        token: 0,
        ttl_ms: 0,
    }
}

/// Asserts that `state` is `holder`'s holding with `token` (any token when `None`) and a
/// remaining TTL in `(0, ttl_ms]` (the server's clock moves on while we look), as seen by
/// the holder (`held`) or by someone else.
#[track_caller]
fn assert_holding(state: &LeaseState, held: bool, holder: &str, token: Option<u64>, ttl_ms: u64) {
    assert_eq!(state.held, held, "{state:?}");
    assert_eq!(state.holder.as_deref(), Some(holder), "{state:?}");
    assert!(state.token >= 1, "tokens start at 1: {state:?}");
    if let Some(token) = token {
        assert_eq!(state.token, token, "{state:?}");
    }
    assert!(
        state.ttl_ms > 0 && state.ttl_ms <= ttl_ms,
        "remaining TTL within (0, {ttl_ms}]: {state:?}"
    );
}

// ---- leases ----

async fn lease_acquire_takes_a_free_lease_and_extends_for_its_holder(b: Backend) {
    let (_ts, store, key) = lease_store(b).await;
    let first = acquire(&store, &key, "a", 10_000).await;
    assert_holding(&first, true, "a", None, 10_000);
    assert!(first.ttl_ms > 9_000, "{first:?}");
    let extended = acquire(&store, &key, "a", LONG_TTL_MS).await;
    assert_holding(&extended, true, "a", Some(first.token), LONG_TTL_MS);
    assert!(
        extended.ttl_ms > 10_000,
        "extended to the new TTL: {extended:?}"
    );
    // Extending to a shorter TTL shortens it: the holding lasts `ttl_ms` from now.
    let shortened = acquire(&store, &key, "a", 5_000).await;
    assert_holding(&shortened, true, "a", Some(first.token), 5_000);
}

async fn lease_another_holder_is_refused_and_told_who_holds_it(b: Backend) {
    let (_ts, store, key) = lease_store(b).await;
    let a = acquire(&store, &key, "a", LONG_TTL_MS).await;
    let seen = acquire(&store, &key, "b", 1_000).await;
    assert_holding(&seen, false, "a", Some(a.token), LONG_TTL_MS);
    assert!(
        seen.ttl_ms > 1_000,
        "a's remaining TTL, not b's request: {seen:?}"
    );
    // The refusal changed nothing: a still holds it with its token.
    let again = acquire(&store, &key, "a", LONG_TTL_MS).await;
    assert_holding(&again, true, "a", Some(a.token), LONG_TTL_MS);
    // Holders are compared exactly.
    let upper = acquire(&store, &key, "A", LONG_TTL_MS).await;
    assert_holding(&upper, false, "a", Some(a.token), LONG_TTL_MS);
}

async fn lease_release_by_a_non_holder_changes_nothing(b: Backend) {
    let (_ts, store, key) = lease_store(b).await;
    assert_eq!(release(&store, &key, "a").await, free(), "a free lease");
    let a = acquire(&store, &key, "a", LONG_TTL_MS).await;
    let after = release(&store, &key, "b").await;
    assert_holding(&after, false, "a", Some(a.token), LONG_TTL_MS);
    let still = acquire(&store, &key, "b", LONG_TTL_MS).await;
    assert_holding(&still, false, "a", Some(a.token), LONG_TTL_MS);
}

async fn lease_release_frees_and_the_next_token_is_larger(b: Backend) {
    let (_ts, store, key) = lease_store(b).await;
    let a = acquire(&store, &key, "a", LONG_TTL_MS).await;
    assert_eq!(release(&store, &key, "a").await, free());
    assert_eq!(release(&store, &key, "a").await, free(), "twice: no change");
    let b_holds = acquire(&store, &key, "b", LONG_TTL_MS).await;
    assert_holding(&b_holds, true, "b", None, LONG_TTL_MS);
    assert!(b_holds.token > a.token, "{b_holds:?} after {a:?}");
    // The old holder is now refused and sees the new token.
    let a_again = acquire(&store, &key, "a", LONG_TTL_MS).await;
    assert_holding(&a_again, false, "b", Some(b_holds.token), LONG_TTL_MS);
}

async fn lease_tokens_keep_increasing_over_many_holdings(b: Backend) {
    let (_ts, store, key) = lease_store(b).await;
    let mut last = 0;
    for round in 0..10 {
        // The same holder taking it again after a release gets a new token too.
        let holder = if round % 3 == 0 { "same" } else { "other" };
        let state = acquire(&store, &key, holder, LONG_TTL_MS).await;
        assert!(state.held && state.token > last, "round {round}: {state:?}");
        last = state.token;
        assert_eq!(release(&store, &key, holder).await, free());
    }
}

async fn lease_expiry_lets_another_holder_take_over(b: Backend) {
    let (_ts, store, key) = lease_store(b).await;
    let a = acquire(&store, &key, "a", 200).await;
    assert_holding(&a, true, "a", None, 200);
    // Real time: on Redis the holding expires on the server's clock.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        release(&store, &key, "a").await,
        free(),
        "expired: nothing to release"
    );
    let b_holds = acquire(&store, &key, "b", LONG_TTL_MS).await;
    assert_holding(&b_holds, true, "b", None, LONG_TTL_MS);
    assert!(b_holds.token > a.token, "{b_holds:?} after {a:?}");
    // The expired holder coming back is refused and learns the new token.
    let late = acquire(&store, &key, "a", 200).await;
    assert_holding(&late, false, "b", Some(b_holds.token), LONG_TTL_MS);
}

async fn lease_keys_are_independent(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let (one, two) = (keys.record("lease-one"), keys.record("lease-two"));
    let a = acquire(&store, &one, "a", LONG_TTL_MS).await;
    let b_holds = acquire(&store, &two, "b", LONG_TTL_MS).await;
    assert_holding(&a, true, "a", None, LONG_TTL_MS);
    assert_holding(&b_holds, true, "b", None, LONG_TTL_MS);
    assert_eq!(
        a.token, b_holds.token,
        "each key has its own fencing counter"
    );
    // Another tenant's lease of the same name is another lease.
    let other = tenant_keys(&store).record("lease-one");
    assert_holding(
        &acquire(&store, &other, "c", LONG_TTL_MS).await,
        true,
        "c",
        None,
        LONG_TTL_MS,
    );
}

async fn lease_bad_input_is_refused(b: Backend) {
    let (_ts, store, key) = lease_store(b).await;
    let too_long = "h".repeat(129);
    for op in [LeaseOp::Acquire, LeaseOp::Release] {
        for (holder, ttl_ms) in [("a", 0), ("", 1_000), (too_long.as_str(), 1_000)] {
            let err = store
                .lease(&key, holder, ttl_ms, op)
                .await
                .expect_err("refused");
            assert!(
                matches!(err, StoreError::Backend(_)),
                "{op:?} {} bytes, ttl {ttl_ms}: {err}",
                holder.len()
            );
        }
    }
    // Nothing was taken: the first real acquisition gets token 1.
    let longest = "h".repeat(128);
    let state = acquire(&store, &key, &longest, LONG_TTL_MS).await;
    assert_holding(&state, true, &longest, Some(1), LONG_TTL_MS);
    // Holders are any UTF-8, ':' included.
    let other = tenant_keys(&store).record("lease");
    let odd = "wörker:7 ☃";
    assert_holding(
        &acquire(&store, &other, odd, LONG_TTL_MS).await,
        true,
        odd,
        Some(1),
        LONG_TTL_MS,
    );
    assert_holding(
        &acquire(&store, &other, "x", LONG_TTL_MS).await,
        false,
        odd,
        Some(1),
        LONG_TTL_MS,
    );
}

async fn lease_concurrent_acquirers_exactly_one_holds(b: Backend) {
    let (_ts, store, key) = lease_store(b).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (store, key) = (Arc::clone(&store), key.clone());
        tasks.push(tokio::spawn(async move {
            let holder = format!("worker-{i}");
            let state = acquire(&store, &key, &holder, LONG_TTL_MS).await;
            (holder, state)
        }));
    }
    let mut states = Vec::new();
    for task in tasks {
        states.push(task.await.expect("task"));
    }
    let winners: Vec<&String> = states
        .iter()
        .filter(|(_, s)| s.held)
        .map(|(h, _)| h)
        .collect();
    assert_eq!(winners.len(), 1, "{states:?}");
    let winner = winners[0].as_str();
    for (holder, state) in &states {
        assert_holding(state, holder == winner, winner, Some(1), LONG_TTL_MS);
    }
}

/// The injected clock drives the holding's expiry on the embedded store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_expiry_follows_the_injected_clock_on_the_embedded_store() {
    let clock = ManualClock::new(1_700_000_000_000);
    let ts = store_with_clock(Backend::Embedded, clock.clone()).await;
    let store = ts.store.clone();
    let key = tenant_keys(&store).record("lease");
    let a = acquire(&store, &key, "a", 1_000).await;
    assert_eq!(a.ttl_ms, 1_000);
    clock.advance_ms(999);
    let seen = acquire(&store, &key, "b", 1_000).await;
    assert_eq!((seen.held, seen.token, seen.ttl_ms), (false, a.token, 1));
    clock.advance_ms(1);
    let b_holds = acquire(&store, &key, "b", 1_000).await;
    assert!(b_holds.held && b_holds.token == a.token + 1, "{b_holds:?}");
}

// ---- publish / subscribe ----

/// A second handle on `store`'s data (see the module docs).
async fn second_instance(b: Backend, store: &SharedStore) -> SharedStore {
    let cfg = RedisConfig {
        key_prefix: store.key_prefix().to_owned(),
        pool_size: 2,
        ..Default::default()
    };
    match b {
        Backend::Embedded => Arc::clone(store),
        Backend::Redis => Arc::new(
            RedisStore::connect_standalone(&redis_server().url(), &cfg)
                .await
                .expect("second connection to the test redis-server"),
        ),
        Backend::Cluster => Arc::new(
            RedisStore::connect_cluster(&redis_cluster().nodes(), &cfg)
                .await
                .expect("second connection to the test Redis Cluster"),
        ),
    }
}

fn channel() -> String {
    unique("ch")
}

const PING: &[u8] = b"\0ping";
const BARRIER: &[u8] = b"\0barrier";

/// The next event of `sub`; fails the test after [`EVENT_WAIT`] or at its end.
async fn next(sub: &mut Subscription) -> SubscriptionEvent {
    tokio::time::timeout(EVENT_WAIT, sub.events.recv())
        .await
        .expect("an event in time")
        .expect("the subscription is still open")
}

/// The next message of `sub` (any other event fails the test).
async fn next_message(sub: &mut Subscription) -> Bytes {
    match next(sub).await {
        SubscriptionEvent::Message(payload) => payload,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Asserts that `sub` yields nothing within a short while.
async fn assert_quiet(sub: &mut Subscription, context: &str) {
    let got = tokio::time::timeout(Duration::from_millis(200), sub.events.recv()).await;
    assert!(got.is_err(), "{context}: unexpected {got:?}");
}

/// Returns once every subscription in `subs` to `channel` is live: `publisher` publishes
/// pings until each has received one, then a barrier, and each subscription is drained
/// up to the barrier. Anything but pings before the barrier fails the test, so messages
/// published before subscribing must not show up here either.
async fn wait_until_live(publisher: &SharedStore, channel: &str, subs: &mut [&mut Subscription]) {
    let mut live = vec![false; subs.len()];
    for _ in 0..100 {
        publisher
            .publish(channel, PING)
            .await
            .expect("publish ping");
        for (sub, live) in subs.iter_mut().zip(live.iter_mut()) {
            while !*live {
                match tokio::time::timeout(Duration::from_millis(50), sub.events.recv()).await {
                    Err(_) => break,
                    Ok(Some(SubscriptionEvent::Message(m))) if m.as_ref() == PING => *live = true,
                    Ok(other) => panic!("before the subscription is live: {other:?}"),
                }
            }
        }
        if live.iter().all(|l| *l) {
            publisher
                .publish(channel, BARRIER)
                .await
                .expect("publish barrier");
            for sub in subs.iter_mut() {
                loop {
                    let m = next_message(sub).await;
                    if m.as_ref() == BARRIER {
                        break;
                    }
                    assert_eq!(m.as_ref(), PING, "only pings before the barrier");
                }
            }
            return;
        }
    }
    panic!("the subscriptions never became live");
}

async fn pubsub_two_subscribers_receive_in_order(b: Backend) {
    let (_ts, store) = open(b).await;
    let ch = channel();
    let mut one = store.subscribe(&ch).await.expect("subscribe");
    let mut two = store.subscribe(&ch).await.expect("subscribe");
    wait_until_live(&store, &ch, &mut [&mut one, &mut two]).await;
    for i in 0..50u32 {
        store
            .publish(&ch, format!("m{i}").as_bytes())
            .await
            .expect("publish");
    }
    for sub in [&mut one, &mut two] {
        for i in 0..50u32 {
            assert_eq!(next_message(sub).await, format!("m{i}").as_bytes());
        }
        assert_quiet(sub, "nothing after the last message").await;
    }
}

async fn pubsub_another_instance_receives(b: Backend) {
    let (_ts, store) = open(b).await;
    let other = second_instance(b, &store).await;
    let ch = channel();
    let mut here = store.subscribe(&ch).await.expect("subscribe");
    let mut there = other.subscribe(&ch).await.expect("subscribe");
    wait_until_live(&other, &ch, &mut [&mut here, &mut there]).await;
    other.publish(&ch, b"from there").await.expect("publish");
    store.publish(&ch, b"from here").await.expect("publish");
    for sub in [&mut here, &mut there] {
        assert_eq!(next_message(sub).await, &b"from there"[..]);
        assert_eq!(next_message(sub).await, &b"from here"[..]);
    }
}

async fn pubsub_messages_published_before_subscribing_are_not_received(b: Backend) {
    let (_ts, store) = open(b).await;
    let ch = channel();
    store.publish(&ch, b"early").await.expect("publish");
    let mut sub = store.subscribe(&ch).await.expect("subscribe");
    // `wait_until_live` fails on anything but pings: "early" must not show up.
    wait_until_live(&store, &ch, &mut [&mut sub]).await;
    store.publish(&ch, b"late").await.expect("publish");
    assert_eq!(next_message(&mut sub).await, &b"late"[..]);
    assert_quiet(&mut sub, "only what was published after subscribing").await;
}

async fn pubsub_dropping_a_subscription_leaves_the_others(b: Backend) {
    let (_ts, store) = open(b).await;
    let ch = channel();
    let mut keep = store.subscribe(&ch).await.expect("subscribe");
    let mut gone = store.subscribe(&ch).await.expect("subscribe");
    wait_until_live(&store, &ch, &mut [&mut keep, &mut gone]).await;
    drop(gone);
    for i in 0..5u32 {
        store.publish(&ch, &i.to_be_bytes()).await.expect("publish");
    }
    for i in 0..5u32 {
        assert_eq!(next_message(&mut keep).await, &i.to_be_bytes()[..]);
    }
    // Dropping the last one and subscribing again works.
    drop(keep);
    let mut again = store.subscribe(&ch).await.expect("subscribe again");
    wait_until_live(&store, &ch, &mut [&mut again]).await;
    store.publish(&ch, b"again").await.expect("publish");
    assert_eq!(next_message(&mut again).await, &b"again"[..]);
}

async fn pubsub_binary_payloads_are_intact(b: Backend) {
    let (_ts, store) = open(b).await;
    let ch = channel();
    let mut sub = store.subscribe(&ch).await.expect("subscribe");
    wait_until_live(&store, &ch, &mut [&mut sub]).await;
    let all: Vec<u8> = (0..=255).collect();
    let reversed: Vec<u8> = (0..=255).rev().collect();
    let big: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let payloads = [all, reversed, Vec::new(), vec![0], big];
    for p in &payloads {
        store.publish(&ch, p).await.expect("publish");
    }
    for p in &payloads {
        assert_eq!(next_message(&mut sub).await, p.as_slice());
    }
}

async fn pubsub_channels_are_independent(b: Backend) {
    let (_ts, store) = open(b).await;
    let (ch_a, ch_b) = (channel(), channel());
    let mut a = store.subscribe(&ch_a).await.expect("subscribe");
    let mut b_sub = store.subscribe(&ch_b).await.expect("subscribe");
    wait_until_live(&store, &ch_a, &mut [&mut a]).await;
    wait_until_live(&store, &ch_b, &mut [&mut b_sub]).await;
    store.publish(&ch_a, b"to a").await.expect("publish");
    store.publish(&ch_b, b"to b").await.expect("publish");
    assert_eq!(next_message(&mut a).await, &b"to a"[..]);
    assert_eq!(next_message(&mut b_sub).await, &b"to b"[..]);
    assert_quiet(&mut a, "nothing from another channel").await;
    assert_quiet(&mut b_sub, "nothing from another channel").await;
}

async fn pubsub_publish_without_subscribers_is_fine(b: Backend) {
    let (_ts, store) = open(b).await;
    let ch = channel();
    for _ in 0..3 {
        store.publish(&ch, b"nobody").await.expect("publish");
    }
    // A subscription that came and went leaves the channel usable.
    let sub = store.subscribe(&ch).await.expect("subscribe");
    drop(sub);
    store.publish(&ch, b"nobody").await.expect("publish");
}

async fn pubsub_bad_channel_names_are_refused(b: Backend) {
    let (_ts, store) = open(b).await;
    let too_long = "c".repeat(257);
    for bad in ["", too_long.as_str()] {
        let err = store.publish(bad, b"x").await.expect_err("refused");
        assert!(
            matches!(err, StoreError::Backend(_)),
            "{} bytes: {err}",
            bad.len()
        );
        let err = store.subscribe(bad).await.err().expect("refused");
        assert!(
            matches!(err, StoreError::Backend(_)),
            "{} bytes: {err}",
            bad.len()
        );
    }
    let longest = "c".repeat(256);
    let mut sub = store.subscribe(&longest).await.expect("256 bytes");
    wait_until_live(&store, &longest, &mut [&mut sub]).await;
    store.publish(&longest, b"ok").await.expect("publish");
    assert_eq!(next_message(&mut sub).await, &b"ok"[..]);
}
