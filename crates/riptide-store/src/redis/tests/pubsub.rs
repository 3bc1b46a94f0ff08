//! `publish` / `subscribe` on a standalone server and on a Cluster: delivery, binary
//! payloads, several subscribers, unsubscribing on drop, slow consumers, and
//! resubscribing after the server restarts or a seed node dies.

use std::time::{Duration, Instant};

use riptide_test_support::{RedisServer, start_redis_server, unique};

use super::*;
use crate::{Subscription, SubscriptionEvent};

/// How long a test waits for an event that must come.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

fn channel() -> String {
    unique("riptide-test-channel")
}

fn message(payload: &[u8]) -> SubscriptionEvent {
    SubscriptionEvent::Message(Bytes::copy_from_slice(payload))
}

async fn next_event(sub: &mut Subscription) -> SubscriptionEvent {
    tokio::time::timeout(EVENT_TIMEOUT, sub.events.recv())
        .await
        .expect("an event within the timeout")
        .expect("the subscription is still open")
}

/// Fails if an event arrives within `wait`.
async fn assert_quiet(sub: &mut Subscription, wait: Duration) {
    if let Ok(event) = tokio::time::timeout(wait, sub.events.recv()).await {
        panic!("unexpected event {event:?}");
    }
}

/// `PUBSUB NUMSUB channel` on the one server at `url` (on a Cluster node, it counts that
/// node's subscribers only).
async fn numsub(url: &str, channel: &str) -> i64 {
    let client = redis::Client::open(url).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let reply: Vec<(String, i64)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut conn)
        .await
        .expect("PUBSUB NUMSUB");
    reply.first().map_or(0, |(_, n)| *n)
}

/// Waits until `PUBSUB NUMSUB` on `url` reports `want` subscribers of `channel`.
async fn await_numsub(url: &str, channel: &str, want: i64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let n = numsub(url, channel).await;
        if n == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{channel} has {n} subscribers on {url}, not {want}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Publishes, retrying while the store reconnects after an outage.
async fn publish_retrying(store: &RedisStore, channel: &str, payload: &[u8]) {
    let deadline = Instant::now() + EVENT_TIMEOUT;
    loop {
        match store.publish(channel, payload).await {
            Ok(()) => return,
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("publish: {e}"),
        }
    }
}

fn restart(server: &RedisServer) {
    tokio::task::block_in_place(|| server.restart());
}

#[tokio::test]
async fn a_message_published_right_after_subscribing_arrives() {
    for store in stores().await {
        let ch = channel();
        let mut sub = store.subscribe(&ch).await.expect("subscribe");
        store.publish(&ch, b"hello").await.expect("publish");
        assert_eq!(next_event(&mut sub).await, message(b"hello"));

        // Only this channel's messages, in order.
        store
            .publish(&channel(), b"elsewhere")
            .await
            .expect("publish");
        for i in 0..20 {
            store
                .publish(&ch, format!("m{i}").as_bytes())
                .await
                .expect("publish");
        }
        for i in 0..20 {
            assert_eq!(
                next_event(&mut sub).await,
                message(format!("m{i}").as_bytes())
            );
        }
        assert_quiet(&mut sub, Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn cluster_messages_reach_a_subscriber_on_any_node() {
    let nodes = redis_cluster().nodes();
    let publisher = cluster().await;
    let ch = channel();
    // One subscription per node: each store's seed list starts with another node, and a
    // subscription listens on the first seed that answers.
    let mut subs = Vec::new();
    for i in 0..nodes.len() {
        let mut seeds = nodes.clone();
        seeds.rotate_left(i);
        let store = RedisStore::connect_cluster(&seeds, &config())
            .await
            .expect("connect cluster");
        subs.push(store.subscribe(&ch).await.expect("subscribe"));
    }
    // Each node has exactly one subscriber of the channel: they really are spread out.
    for node in &nodes {
        assert_eq!(numsub(node, &ch).await, 1, "{node}");
    }
    // The cluster connection sends each PUBLISH to one primary (the channel's slot owner);
    // every node is a primary with one subscriber, so most subscribers sit on another
    // node than the one a message was published on, and still receive it.
    for i in 0..10 {
        let payload = format!("m{i}");
        publisher
            .publish(&ch, payload.as_bytes())
            .await
            .expect("publish");
        for sub in &mut subs {
            assert_eq!(next_event(sub).await, message(payload.as_bytes()));
        }
    }
    drop(subs);
    for node in &nodes {
        await_numsub(node, &ch, 0, Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn dropping_a_subscription_unsubscribes() {
    let url = redis_server().url();
    let store = standalone().await;
    let ch = channel();
    let first = store.subscribe(&ch).await.expect("subscribe");
    let mut second = store.subscribe(&ch).await.expect("subscribe");
    assert_eq!(numsub(&url, &ch).await, 2);
    drop(first);
    await_numsub(&url, &ch, 1, Duration::from_secs(1)).await;
    store.publish(&ch, b"still here").await.expect("publish");
    assert_eq!(next_event(&mut second).await, message(b"still here"));
    drop(second);
    await_numsub(&url, &ch, 0, Duration::from_secs(1)).await;

    // The store handle is not needed to keep a subscription alive.
    let mut kept = store.subscribe(&ch).await.expect("subscribe");
    drop(store);
    let publisher = standalone().await;
    publisher.publish(&ch, b"later").await.expect("publish");
    assert_eq!(next_event(&mut kept).await, message(b"later"));
}

#[tokio::test]
async fn a_slow_consumer_loses_messages_and_is_told_so() {
    let store = standalone().await;
    let ch = channel();
    let mut sub = store.subscribe(&ch).await.expect("subscribe");
    let total = SUBSCRIPTION_CAPACITY + 100;
    let mut pipe = redis::pipe();
    for i in 0..total {
        pipe.cmd("PUBLISH").arg(&ch).arg(i.to_string()).ignore();
    }
    let _: () = pipe
        .query_async(&mut store.pool.get())
        .await
        .expect("publish");
    // Let the subscription read all of them while nobody consumes.
    tokio::time::sleep(Duration::from_millis(500)).await;

    for i in 0..SUBSCRIPTION_CAPACITY {
        assert_eq!(
            next_event(&mut sub).await,
            message(i.to_string().as_bytes())
        );
    }
    assert_eq!(
        next_event(&mut sub).await,
        SubscriptionEvent::Resubscribed,
        "dropped messages must be followed by Resubscribed"
    );
    store.publish(&ch, b"after").await.expect("publish");
    assert_eq!(next_event(&mut sub).await, message(b"after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_is_resubscribed_to() {
    let server = start_redis_server();
    let store = RedisStore::connect_standalone(&server.url(), &config())
        .await
        .expect("connect");
    let ch = channel();
    let mut sub = store.subscribe(&ch).await.expect("subscribe");
    store.publish(&ch, b"before").await.expect("publish");
    assert_eq!(next_event(&mut sub).await, message(b"before"));

    server.kill();
    // Down for a while: several reconnect attempts fail.
    tokio::time::sleep(Duration::from_millis(600)).await;
    restart(&server);

    assert_eq!(
        next_event(&mut sub).await,
        SubscriptionEvent::Resubscribed,
        "the subscription must report the outage once it is back"
    );
    // Resubscribed is only sent once the new SUBSCRIBE is confirmed.
    assert_eq!(numsub(&server.url(), &ch).await, 1);
    publish_retrying(&store, &ch, b"after").await;
    assert_eq!(next_event(&mut sub).await, message(b"after"));

    // And again: every outage is reported.
    restart(&server);
    assert_eq!(next_event(&mut sub).await, SubscriptionEvent::Resubscribed);
    publish_retrying(&store, &ch, b"again").await;
    assert_eq!(next_event(&mut sub).await, message(b"again"));
    assert_quiet(&mut sub, Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_seed_node_is_replaced_by_the_next_one() {
    // Two plain servers stand in for seed nodes: the subscription only needs one node to
    // listen on.
    let (a, b) = (start_redis_server(), start_redis_server());
    let subscriber = Subscriber::cluster(&[a.url(), b.url()], &config()).expect("subscriber");
    let ch = channel();
    let mut sub = subscriber.subscribe(&ch).await.expect("subscribe");
    assert_eq!(
        (numsub(&a.url(), &ch).await, numsub(&b.url(), &ch).await),
        (1, 0),
        "the first seed is tried first"
    );

    a.kill();
    assert_eq!(next_event(&mut sub).await, SubscriptionEvent::Resubscribed);
    let on_b = RedisStore::connect_standalone(&b.url(), &config())
        .await
        .expect("connect");
    assert_eq!(numsub(&b.url(), &ch).await, 1);
    on_b.publish(&ch, b"via b").await.expect("publish");
    assert_eq!(next_event(&mut sub).await, message(b"via b"));

    // A dead first seed does not stop a new subscription either.
    let mut second = subscriber.subscribe(&ch).await.expect("subscribe");
    on_b.publish(&ch, b"both").await.expect("publish");
    assert_eq!(next_event(&mut sub).await, message(b"both"));
    assert_eq!(next_event(&mut second).await, message(b"both"));
}

#[tokio::test]
async fn subscribing_to_an_unreachable_server_is_unavailable() {
    let server = start_redis_server();
    let store = RedisStore::connect_standalone(&server.url(), &config())
        .await
        .expect("connect");
    server.kill();
    let started = Instant::now();
    let r = store.subscribe(&channel()).await;
    assert!(
        matches!(&r, Err(StoreError::Unavailable(_))),
        "{:?}",
        r.map(|_| ())
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    let dead = server.url();
    let subscriber = Subscriber::cluster(&[dead.clone(), dead], &config()).expect("subscriber");
    let r = subscriber.subscribe(&channel()).await;
    assert!(
        matches!(&r, Err(StoreError::Unavailable(_))),
        "{:?}",
        r.map(|_| ())
    );
}

/// The task and its connection end when the receiver is dropped, also while the server is
/// down and the task is backing off.
#[tokio::test(flavor = "current_thread")]
async fn a_dropped_subscription_leaves_no_task_behind() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let server = start_redis_server();
    let subscriber = Subscriber::standalone(&server.url(), &config()).expect("subscriber");
    let baseline = metrics.num_alive_tasks();

    let ch = channel();
    let sub = subscriber.subscribe(&ch).await.expect("subscribe");
    assert!(metrics.num_alive_tasks() > baseline);
    drop(sub);
    await_tasks(baseline).await;
    await_numsub(&server.url(), &ch, 0, Duration::from_secs(1)).await;

    let sub = subscriber.subscribe(&ch).await.expect("subscribe");
    server.kill();
    // Long enough to be in the backoff loop, reconnects failing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(metrics.num_alive_tasks() > baseline);
    drop(sub);
    await_tasks(baseline).await;
}

async fn await_tasks(baseline: usize) {
    let metrics = tokio::runtime::Handle::current().metrics();
    let deadline = Instant::now() + Duration::from_secs(1);
    while metrics.num_alive_tasks() > baseline {
        assert!(
            Instant::now() < deadline,
            "{} tasks alive, {baseline} before subscribing",
            metrics.num_alive_tasks()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A connection that stops answering without closing is noticed by the keepalive `PING`
/// and replaced; the pings themselves do not disturb a healthy subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_detected_and_replaced() {
    let server = start_redis_server();
    let cfg = RedisConfig {
        command_timeout_ms: 300,
        ..config()
    };
    let subscriber = Subscriber::standalone(&server.url(), &cfg)
        .expect("subscriber")
        .with_keepalive(Duration::from_millis(100));
    let store = RedisStore::connect_standalone(&server.url(), &config())
        .await
        .expect("connect");
    let ch = channel();
    let mut sub = subscriber.subscribe(&ch).await.expect("subscribe");
    assert_quiet(&mut sub, Duration::from_millis(500)).await;
    store.publish(&ch, b"pinged").await.expect("publish");
    assert_eq!(next_event(&mut sub).await, message(b"pinged"));

    // The server stops answering every client for 1.5 s; the socket stays open.
    let _: () = store
        .query(redis::cmd("CLIENT").arg("PAUSE").arg(1_500).arg("ALL"))
        .await
        .expect("CLIENT PAUSE");
    assert_eq!(next_event(&mut sub).await, SubscriptionEvent::Resubscribed);
    store.publish(&ch, b"after").await.expect("publish");
    assert_eq!(next_event(&mut sub).await, message(b"after"));
}
