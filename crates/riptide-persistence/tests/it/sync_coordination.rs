//! DistributedSync with two instances on one store: the registry, the channel, cache
//! coherence, singleton jobs and their takeover, and recovery from a Redis restart.
//!
//! "Two instances" means two `DistributedSync`s over one embedded store object, or over
//! two `RedisStore` connections with the same key prefix. An instance that *dies* runs
//! on a runtime of its own that is shut down under it: nothing of it runs afterwards,
//! no lease release, no deregistration, as after a crash.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use riptide_persistence::cache::Invalidation;
use riptide_persistence::clock::system_clock;
use riptide_persistence::config::{RedisConfig, SyncConfig};
use riptide_persistence::keys::{KeyHash, Namespace, Scope, ScopeKeys};
use riptide_persistence::store::redis::RedisStore;
use riptide_persistence::store::{Durability, LeaseOp};
use riptide_persistence::sync::{
    DistributedSync, OUTBOUND_QUEUE, SyncBody, SyncError, SyncEvent, SyncMessage, tenant_change,
};
use riptide_persistence::{
    CacheConfig, CacheMetadata, PersistentCacheManager, SharedStore, TenantId,
};
use riptide_test_support::{redis_cluster, redis_server, start_redis_server};
use tokio::time::Instant;

use super::support::{Backend, TestStore, on_every_backend, store, tenant};

const LEASE_TTL_MS: u64 = 300;
const INSTANCE_TTL_MS: u64 = 250;

fn sync_config() -> SyncConfig {
    SyncConfig {
        heartbeat_interval_ms: 50,
        instance_ttl_ms: INSTANCE_TTL_MS,
        lease_ttl_ms: LEASE_TTL_MS,
    }
}

/// Another connection to the store behind `first`, with the same key prefix (the same
/// object on the embedded store, which belongs to one process).
async fn same_store(b: Backend, first: &TestStore) -> SharedStore {
    let cfg = RedisConfig {
        key_prefix: first.store.key_prefix().to_owned(),
        pool_size: 2,
        ..Default::default()
    };
    match b {
        Backend::Embedded => first.store.clone(),
        Backend::Redis => Arc::new(
            RedisStore::connect_standalone(&redis_server().url(), &cfg)
                .await
                .expect("second connection"),
        ),
        Backend::Cluster => Arc::new(
            RedisStore::connect_cluster(&redis_cluster().nodes(), &cfg)
                .await
                .expect("second connection"),
        ),
    }
}

async fn start(store: SharedStore) -> Arc<DistributedSync> {
    DistributedSync::start(store, system_clock(), &sync_config())
        .await
        .expect("start sync")
}

/// Two instances on one store.
async fn pair(b: Backend) -> (Arc<DistributedSync>, Arc<DistributedSync>, TestStore) {
    let ts = store(b).await;
    let second = same_store(b, &ts).await;
    let a = start(ts.store.clone()).await;
    let b = start(second).await;
    (a, b, ts)
}

/// Every event a handler saw, with when.
#[derive(Default)]
struct Recorder(Mutex<Vec<(Instant, SyncEvent)>>);

impl Recorder {
    fn attach(sync: &DistributedSync) -> Arc<Self> {
        let r = Arc::new(Self::default());
        let sink = r.clone();
        sync.on_event(Arc::new(move |e| {
            sink.0.lock().unwrap().push((Instant::now(), e.clone()));
        }));
        r
    }

    fn events(&self) -> Vec<SyncEvent> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// When `event` was first seen.
    fn seen(&self, event: &SyncEvent) -> Option<Instant> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(_, e)| e == event)
            .map(|(at, _)| *at)
    }
}

/// Polls `check` every 5 ms until it returns `Some` or `within` passes.
async fn eventually<T, F, Fut>(within: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn suspend(tenant_id: &str) -> SyncBody {
    SyncBody::TenantChanged {
        tenant_id: tenant_id.to_owned(),
        change: tenant_change::SUSPEND.to_owned(),
    }
}

on_every_backend!(
    instances_list_each_other,
    messages_reach_the_other_instance_only,
    cache_invalidations_reach_the_other_l1,
    a_singleton_job_runs_on_one_instance_and_moves_on_shutdown,
    a_dead_holder_is_replaced_within_one_lease_and_listed_not_alive,
    a_job_is_stopped_when_its_lease_is_lost,
    a_stale_run_s_fenced_writes_are_refused_and_it_stops,
);

async fn instances_list_each_other(b: Backend) {
    let (a, b_side, _s) = pair(b).await;
    assert_ne!(a.id(), b_side.id());
    for (me, other) in [(&a, &b_side), (&b_side, &a)] {
        let list = me.instances().await.unwrap();
        assert_eq!(list.len(), 2, "{list:?}");
        let mine = list.iter().find(|i| i.id == me.id()).unwrap();
        let theirs = list.iter().find(|i| i.id == other.id()).unwrap();
        assert!(mine.is_self && !theirs.is_self);
        assert!(mine.alive && theirs.alive, "{list:?}");
        assert_eq!(theirs.pid, Some(std::process::id()));
        assert_eq!(theirs.version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
        assert!(theirs.started_at.is_some());
    }
    // Heartbeats keep both alive well past the TTL.
    tokio::time::sleep(Duration::from_millis(INSTANCE_TTL_MS * 2)).await;
    assert!(a.instances().await.unwrap().iter().all(|i| i.alive));
    // A graceful stop leaves the registry at once.
    b_side.shutdown().await;
    let list = a.instances().await.unwrap();
    assert_eq!(
        list.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        [a.id()]
    );
    assert!(matches!(
        b_side.publish(suspend("acme")).await,
        Err(SyncError::ShutDown)
    ));
}

async fn messages_reach_the_other_instance_only(b: Backend) {
    let (a, b_side, s) = pair(b).await;
    let seen_a = Recorder::attach(&a);
    let seen_b = Recorder::attach(&b_side);
    let t = tenant();

    let sent = Instant::now();
    a.publish(suspend(&t)).await.unwrap();
    let want = SyncEvent::Message(suspend(&t));
    let at = eventually(Duration::from_secs(2), || async { seen_b.seen(&want) })
        .await
        .expect("B got A's message");
    let latency = at - sent;
    assert!(latency <= Duration::from_millis(100), "{latency:?}");

    let back = SyncBody::KeyRevoked {
        tenant_id: t.clone(),
        key_id: "k_1".into(),
    };
    b_side.publish(back.clone()).await.unwrap();
    let want_back = SyncEvent::Message(back);
    eventually(Duration::from_secs(2), || async { seen_a.seen(&want_back) })
        .await
        .expect("A got B's message");

    // Garbage on the channel is refused, and what follows still flows.
    s.store.publish(a.channel(), b"{not json").await.unwrap();
    let wrong_version = br#"{"v":9,"from":"x","body":{"type":"cache","data":"All"}}"#;
    s.store.publish(a.channel(), wrong_version).await.unwrap();
    let reload = SyncBody::ReloadConfig {
        requested_by: "admin".into(),
    };
    a.publish(reload.clone()).await.unwrap();
    let want_reload = SyncEvent::Message(reload);
    eventually(Duration::from_secs(2), || async {
        seen_b.seen(&want_reload)
    })
    .await
    .expect("messages flow after garbage");
    // Nobody hears itself.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(seen_a.events(), [want_back]);
    assert_eq!(seen_b.events(), [want, want_reload]);

    // Bodies that peers would refuse are not sent.
    let bad = SyncBody::TenantChanged {
        tenant_id: "Not A Tenant".into(),
        change: tenant_change::PLAN.into(),
    };
    assert!(matches!(a.publish(bad).await, Err(SyncError::Message(_))));
    // A foreign message with our own format decodes the same way on the other side.
    let own = SyncMessage::new(a.id(), suspend(&t));
    assert_eq!(SyncMessage::decode(&own.encode().unwrap()).unwrap(), own);
}

fn entry_key(cache: &PersistentCacheManager, tenant: &str, key: &str) -> String {
    let scope = Scope::Tenant(TenantId::parse(tenant).unwrap());
    ScopeKeys::new(cache.store().key_prefix(), &scope)
        .entry(&Namespace::of_key(key), &KeyHash::of(key))
}

async fn cache_invalidations_reach_the_other_l1(b: Backend) {
    let (a, b_side, s) = pair(b).await;
    let cache_a = Arc::new(
        PersistentCacheManager::with_store(s.store.clone(), CacheConfig::default()).unwrap(),
    );
    let store_b = same_store(b, &s).await;
    let cache_b =
        Arc::new(PersistentCacheManager::with_store(store_b, CacheConfig::default()).unwrap());
    b_side.attach_cache(cache_b.clone());
    let t = tenant();
    let tags = || Some(CacheMetadata::with_tags(["g"]));

    cache_a
        .set("k", &1u32, Some(&t), None, tags())
        .await
        .unwrap();
    assert_eq!(cache_b.get::<u32>("k", Some(&t)).await.unwrap(), Some(1));
    // A not yet attached: B's L1 keeps serving what it read.
    cache_a
        .set("k", &2u32, Some(&t), None, tags())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        cache_b.get::<u32>("k", Some(&t)).await.unwrap(),
        Some(1),
        "stale, from B's L1"
    );

    // Attached: A's writes and invalidations reach B's L1 within 100 ms.
    a.attach_cache(cache_a.clone());
    let fresh = async |want: Option<u32>| {
        let start = Instant::now();
        let got = eventually(Duration::from_secs(2), || async {
            let v = cache_b.get::<u32>("k", Some(&t)).await.unwrap();
            (v == want).then_some(())
        })
        .await;
        assert!(got.is_some(), "B never read {want:?}");
        let took = start.elapsed();
        assert!(
            took <= Duration::from_millis(100),
            "{want:?} after {took:?}"
        );
    };
    cache_a
        .set("k", &3u32, Some(&t), None, tags())
        .await
        .unwrap();
    fresh(Some(3)).await;
    assert_eq!(cache_a.invalidate_tag("g", &t).await.unwrap(), 1);
    fresh(None).await;
    cache_a.set("k", &4u32, Some(&t), None, None).await.unwrap();
    fresh(Some(4)).await;
    assert!(cache_a.delete("k", &t).await.unwrap());
    fresh(None).await;
    cache_a.set("k", &5u32, Some(&t), None, None).await.unwrap();
    fresh(Some(5)).await;
    cache_a.clear(&t).await.unwrap();
    fresh(None).await;

    // The explicit hook, as a cache manager without a listener would call it.
    cache_b.get::<u32>("k", Some(&t)).await.unwrap();
    let plain =
        PersistentCacheManager::with_store(s.store.clone(), CacheConfig::default()).unwrap();
    plain.set("k", &6u32, Some(&t), None, None).await.unwrap();
    assert_eq!(
        cache_b.get::<u32>("k", Some(&t)).await.unwrap(),
        Some(6),
        "L1 held no value"
    );
    plain.set("k", &7u32, Some(&t), None, None).await.unwrap();
    a.publish_invalidation(&Invalidation::Key {
        store_key: entry_key(&plain, &t, "k"),
    });
    fresh(Some(7)).await;
}

/// Runs of a singleton job: (instance id, fencing token, when).
type Runs = Arc<Mutex<Vec<(String, u64, Instant)>>>;

fn start_job(sync: &Arc<DistributedSync>, name: &str, runs: &Runs) {
    let runs = runs.clone();
    let id = sync.id().to_owned();
    sync.run_singleton(name, Duration::from_millis(20), move |lease| {
        let runs = runs.clone();
        let id = id.clone();
        async move {
            runs.lock().unwrap().push((id, lease.token, Instant::now()));
        }
    })
    .expect("start the job");
}

fn runners(runs: &Runs, since: Instant) -> Vec<String> {
    let mut ids: Vec<String> = runs
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, at)| *at >= since)
        .map(|(id, _, _)| id.clone())
        .collect();
    ids.dedup();
    ids
}

fn tokens_of(runs: &Runs, id: &str) -> Vec<u64> {
    runs.lock()
        .unwrap()
        .iter()
        .filter(|(who, _, _)| who == id)
        .map(|(_, token, _)| *token)
        .collect()
}

/// The first run by `id` at or after `since`.
async fn first_run_by(runs: &Runs, id: &str, since: Instant, within: Duration) -> Option<Instant> {
    eventually(within, || async {
        runs.lock()
            .unwrap()
            .iter()
            .find(|(who, _, at)| who == id && *at >= since)
            .map(|(_, _, at)| *at)
    })
    .await
}

async fn a_singleton_job_runs_on_one_instance_and_moves_on_shutdown(b: Backend) {
    let (a, b_side, _s) = pair(b).await;
    let job = format!("job-{}", tenant());
    let runs: Runs = Arc::default();
    start_job(&a, &job, &runs);
    let began = Instant::now();
    first_run_by(&runs, a.id(), began, Duration::from_secs(2))
        .await
        .expect("A runs the job");
    start_job(&b_side, &job, &runs);
    // Several renewals and job runs later, still only A.
    tokio::time::sleep(Duration::from_millis(LEASE_TTL_MS * 2)).await;
    assert_eq!(runners(&runs, began), [a.id()]);
    assert!(tokens_of(&runs, a.id()).len() >= 10, "runs every 20 ms");
    assert_eq!(a.leader(&job).as_deref(), Some(a.id()));
    assert_eq!(b_side.leader(&job).as_deref(), Some(a.id()));
    assert!(a.is_leader(&job) && !b_side.is_leader(&job));
    // The same name twice on one instance is refused, as are bad names.
    assert!(matches!(
        a.run_singleton(&job, Duration::from_millis(20), |_| async {}),
        Err(SyncError::Job(_))
    ));
    assert!(matches!(
        a.run_singleton("Bad Name", Duration::from_millis(20), |_| async {}),
        Err(SyncError::Job(_))
    ));

    let stopped = Instant::now();
    a.shutdown().await;
    let took_over = first_run_by(&runs, b_side.id(), stopped, Duration::from_secs(3))
        .await
        .expect("B takes over");
    let after = took_over - stopped;
    assert!(
        after <= Duration::from_millis(LEASE_TTL_MS),
        "took over {after:?} after a graceful stop"
    );
    let last_a = tokens_of(&runs, a.id()).into_iter().max().unwrap();
    let b_tokens = tokens_of(&runs, b_side.id());
    assert!(
        b_tokens.iter().all(|t| *t > last_a),
        "{last_a} then {b_tokens:?}"
    );
    assert!(
        tokens_of(&runs, a.id()).iter().all(|t| *t == last_a),
        "one holding"
    );
    let a_runs = tokens_of(&runs, a.id()).len();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        tokens_of(&runs, a.id()).len(),
        a_runs,
        "A stopped running it"
    );
    assert_eq!(b_side.leader(&job).as_deref(), Some(b_side.id()));
}

async fn a_dead_holder_is_replaced_within_one_lease_and_listed_not_alive(b: Backend) {
    let ts = store(b).await;
    let job = format!("job-{}", tenant());
    let runs: Runs = Arc::default();

    // A lives on a runtime of its own, with its own connections.
    let rt_a = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let store_a = if b == Backend::Embedded {
        ts.store.clone()
    } else {
        let cfg = RedisConfig {
            key_prefix: ts.store.key_prefix().to_owned(),
            pool_size: 2,
            ..Default::default()
        };
        let cluster = b == Backend::Cluster;
        rt_a.spawn(async move {
            let s = if cluster {
                RedisStore::connect_cluster(&redis_cluster().nodes(), &cfg).await
            } else {
                RedisStore::connect_standalone(&redis_server().url(), &cfg).await
            };
            Arc::new(s.expect("A's connection")) as SharedStore
        })
        .await
        .unwrap()
    };
    let a = {
        let runs = runs.clone();
        let job = job.clone();
        rt_a.spawn(async move {
            let a = start(store_a).await;
            start_job(&a, &job, &runs);
            a
        })
        .await
        .unwrap()
    };
    let b_side = start(same_store(b, &ts).await).await;
    first_run_by(
        &runs,
        a.id(),
        Instant::now() - Duration::from_secs(5),
        Duration::from_secs(2),
    )
    .await
    .expect("A runs the job");
    start_job(&b_side, &job, &runs);
    tokio::time::sleep(Duration::from_millis(LEASE_TTL_MS)).await;
    assert_eq!(
        runners(&runs, Instant::now() - Duration::from_secs(5)),
        [a.id()]
    );

    // A dies: nothing of it runs any more. B watches the lease and the registry.
    let died = Instant::now();
    rt_a.shutdown_background();
    let takeover = first_run_by(&runs, b_side.id(), died, Duration::from_secs(3));
    let declared_dead = eventually(Duration::from_secs(3), || async {
        let list = b_side.instances().await.unwrap();
        let a_info = list.iter().find(|i| i.id == a.id())?.clone();
        (!a_info.alive).then_some((a_info, Instant::now()))
    });
    let (took_over, declared_dead) = tokio::join!(takeover, declared_dead);

    let after = took_over.expect("B takes over") - died;
    // The lease expires LEASE_TTL_MS after A's last renewal, which came before its
    // death, and B tries again right then; the margin is for a loaded machine.
    assert!(
        after <= Duration::from_millis(LEASE_TTL_MS + 75),
        "took over {after:?} after the holder died"
    );
    let last_a = tokens_of(&runs, a.id()).into_iter().max().unwrap();
    assert!(tokens_of(&runs, b_side.id()).iter().all(|t| *t > last_a));
    assert_eq!(b_side.leader(&job).as_deref(), Some(b_side.id()));

    // Still listed, alive until its TTL passed since its last heartbeat (about one
    // heartbeat interval before its death; two on a loaded machine), then not alive.
    let (a_info, at) = declared_dead.expect("A listed, not alive");
    let after = at - died;
    assert!(
        after >= Duration::from_millis(INSTANCE_TTL_MS - 2 * 50),
        "declared dead {after:?} after its death, before its TTL"
    );
    assert!(
        after <= Duration::from_millis(INSTANCE_TTL_MS * 2),
        "declared dead only {after:?} after its death"
    );
    assert!(!a_info.is_self);
    let list = b_side.instances().await.unwrap();
    assert!(
        list.iter()
            .any(|i| i.id == b_side.id() && i.alive && i.is_self)
    );
    drop(a);
}

/// Marks when a job's future is dropped (finished or cancelled).
struct DropFlag(Arc<Mutex<Option<Instant>>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(Instant::now());
    }
}

async fn a_job_is_stopped_when_its_lease_is_lost(b: Backend) {
    let ts = store(b).await;
    let a = start(ts.store.clone()).await;
    let job = format!("job-{}", tenant());
    let started: Arc<Mutex<Vec<u64>>> = Arc::default();
    let dropped: Arc<Mutex<Option<Instant>>> = Arc::default();
    {
        let (started, dropped) = (started.clone(), dropped.clone());
        a.run_singleton(&job, Duration::from_millis(20), move |lease| {
            let (started, flag) = (started.clone(), DropFlag(dropped.clone()));
            async move {
                started.lock().unwrap().push(lease.token);
                // Runs far longer than the lease: only renewals keep it going.
                let _flag = flag;
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        })
        .unwrap();
    }
    eventually(Duration::from_secs(2), || async {
        (!started.lock().unwrap().is_empty()).then_some(())
    })
    .await
    .expect("the job started");
    // Renewals keep the long job running past several lease lifetimes (the extra 50 ms
    // keeps what follows away from A's renewal times).
    tokio::time::sleep(Duration::from_millis(LEASE_TTL_MS * 2 + 50)).await;
    assert!(dropped.lock().unwrap().is_none(), "still running");
    assert_eq!(started.lock().unwrap().len(), 1);
    let first_token = started.lock().unwrap()[0];

    // Someone else gets the lease (as after an expiry A did not notice). Should A renew
    // between the delete and the intruder's acquire, it holds under a new token, which
    // stops its job just the same; the intruder then tries again.
    let key = format!("{}:lease:{{{job}}}", ts.store.key_prefix());
    let (intruder, stolen) = eventually(Duration::from_secs(3), || async {
        ts.store.delete(std::slice::from_ref(&key)).await.unwrap();
        let at = Instant::now();
        let state = ts
            .store
            .lease(&key, "intruder", 60_000, LeaseOp::Acquire)
            .await
            .unwrap();
        state.held.then_some((state, at))
    })
    .await
    .expect("the intruder takes the lease");
    assert!(intruder.token > first_token, "the fencing token grew");
    let stopped = eventually(Duration::from_secs(2), || async {
        *dropped.lock().unwrap()
    })
    .await
    .expect("A's job was stopped");
    // A notices at its next renewal, a third of a lease later; the run in progress then
    // has one more lease to reach a (refused) fenced write before it is dropped.
    assert!(
        stopped - stolen <= Duration::from_millis(LEASE_TTL_MS / 3 + LEASE_TTL_MS + 75),
        "stopped {:?} after the lease was lost",
        stopped - stolen
    );
    assert_eq!(a.leader(&job).as_deref(), Some("intruder"));
    assert!(!a.is_leader(&job));
    tokio::time::sleep(Duration::from_millis(LEASE_TTL_MS)).await;
    assert_eq!(started.lock().unwrap().len(), 1, "not restarted while lost");
    a.shutdown().await;
    // Shutdown released nothing of the intruder's.
    let still = ts
        .store
        .lease(&key, "intruder", 60_000, LeaseOp::Acquire)
        .await
        .unwrap();
    assert!(still.held && still.token == intruder.token);
}

/// A job run that panics does not end the job: the lease stays held and the schedule
/// goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_job_run_keeps_its_schedule_and_lease() {
    let ts = store(Backend::Embedded).await;
    let a = start(ts.store.clone()).await;
    let job = format!("job-{}", tenant());
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    a.run_singleton(&job, Duration::from_millis(20), move |_| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Every third call panics at once, every third run panics in its future.
        assert!(!n.is_multiple_of(3), "call {n} fails");
        async move {
            assert!(n % 3 != 1, "run {n} fails");
        }
    })
    .unwrap();
    let enough = eventually(Duration::from_secs(3), || async {
        (runs.load(std::sync::atomic::Ordering::SeqCst) >= 9).then_some(())
    })
    .await;
    assert!(enough.is_some(), "the schedule went on after panics");
    assert!(a.is_leader(&job));
    a.shutdown().await;
    assert_eq!(a.leader(&job), None, "the job's loop ended");
}

/// Invalidations queued faster than they can be published become one `All`, and a
/// panicking handler neither stops the receiver nor the other handlers.
#[tokio::test(flavor = "current_thread")]
async fn an_overflowing_queue_becomes_one_clear_and_handler_panics_are_contained() {
    let ts = store(Backend::Embedded).await;
    let a = start(ts.store.clone()).await;
    let b_side = start(ts.store.clone()).await;
    b_side.on_event(Arc::new(|e| {
        if matches!(e, SyncEvent::Message(SyncBody::ReloadConfig { .. })) {
            panic!("a handler that panics");
        }
    }));
    let seen_b = Recorder::attach(&b_side);
    let t = tenant();
    let key = |i: usize| Invalidation::Key {
        store_key: format!("riptide:tenant:{{{t}}}:c:default:{i:032x}"),
    };
    // One thread, no await: the publisher cannot drain while the queue fills.
    for i in 0..OUTBOUND_QUEUE + 100 {
        a.publish_invalidation(&key(i));
    }
    let all = SyncEvent::Message(SyncBody::Cache(Invalidation::All));
    eventually(Duration::from_secs(2), || async { seen_b.seen(&all) })
        .await
        .expect("B told to clear everything");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        seen_b.events(),
        std::slice::from_ref(&all),
        "one clear instead of the backlog"
    );
    // Later invalidations flow one by one again.
    a.publish_invalidation(&key(1));
    let one = SyncEvent::Message(SyncBody::Cache(key(1)));
    eventually(Duration::from_secs(2), || async { seen_b.seen(&one) })
        .await
        .expect("then invalidations flow");

    let reload = SyncBody::ReloadConfig {
        requested_by: "admin".into(),
    };
    a.publish(reload.clone()).await.unwrap();
    a.publish(suspend(&t)).await.unwrap();
    let after = SyncEvent::Message(suspend(&t));
    eventually(Duration::from_secs(2), || async { seen_b.seen(&after) })
        .await
        .expect("the receiver survived the panic");
    assert!(
        seen_b.seen(&SyncEvent::Message(reload)).is_some(),
        "later handlers still ran"
    );
}

async fn connect(url: &str, cfg: &RedisConfig) -> SharedStore {
    Arc::new(
        RedisStore::connect_standalone(url, cfg)
            .await
            .expect("connect"),
    )
}

/// Redis is killed and restarted under two instances: B's handlers get `Resynced`, its
/// attached cache drops what it held, and messages flow again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordination_resumes_after_a_redis_restart() {
    let server = start_redis_server();
    let cfg = RedisConfig {
        key_prefix: tenant(),
        pool_size: 2,
        ..Default::default()
    };
    let (store_a, store_b) = (
        connect(&server.url(), &cfg).await,
        connect(&server.url(), &cfg).await,
    );
    let a = start(store_a.clone()).await;
    let b_side = start(store_b.clone()).await;
    let cache_b =
        Arc::new(PersistentCacheManager::with_store(store_b, CacheConfig::default()).unwrap());
    b_side.attach_cache(cache_b.clone());
    // Registered after the cache: handlers run in order, so once this one has seen
    // `Resynced` the cache has been cleared.
    let seen_b = Recorder::attach(&b_side);
    let t = tenant();
    cache_b.set("k", &1u32, Some(&t), None, None).await.unwrap();
    assert_eq!(cache_b.get::<u32>("k", Some(&t)).await.unwrap(), Some(1));

    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart();
    // The restarted server is empty; B must not keep serving its L1 copy.
    eventually(Duration::from_secs(10), || async {
        seen_b.seen(&SyncEvent::Resynced).map(drop)
    })
    .await
    .expect("B resynced");
    // The first command on a reconnecting connection may fail; what answers must not
    // be the old L1 copy.
    let read = eventually(Duration::from_secs(5), || async {
        cache_b.get::<u32>("k", Some(&t)).await.ok()
    })
    .await;
    assert_eq!(read, Some(None), "L1 cleared, the empty store answers");

    // Messages flow again (A's connection may need a moment to come back).
    let body = suspend(&t);
    let want = SyncEvent::Message(body.clone());
    let delivered = eventually(Duration::from_secs(10), || async {
        let _ = a.publish(body.clone()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen_b.seen(&want)
    })
    .await;
    assert!(
        delivered.is_some(),
        "A's message reached B after the restart"
    );
    // Heartbeats repopulate the registry.
    let both = eventually(Duration::from_secs(5), || async {
        let list = b_side.instances().await.ok()?;
        (list.len() == 2 && list.iter().all(|i| i.alive)).then_some(())
    })
    .await;
    assert!(both.is_some(), "both instances listed again");
    a.shutdown().await;
    b_side.shutdown().await;
}

/// What a run saw of its fenced writes: (token, result) in order.
type Writes = Arc<Mutex<Vec<(u64, Result<(), String>)>>>;

/// A holder replaced while its run is in progress (as when its process was paused past
/// the lease): the run goes on, and its next fenced write is refused, writes nothing
/// and is an error the run sees, so it stops; the new holder's writes land.
async fn a_stale_run_s_fenced_writes_are_refused_and_it_stops(b: Backend) {
    let ts = store(b).await;
    let a = start(ts.store.clone()).await;
    let job = format!("job-{}", tenant());
    let writes: Writes = Arc::default();
    let go_on = Arc::new(tokio::sync::Notify::new());
    {
        let (writes, go_on) = (writes.clone(), go_on.clone());
        a.run_singleton(&job, Duration::from_secs(60), move |lease| {
            let (writes, go_on) = (writes.clone(), go_on.clone());
            async move {
                let first = lease.set("mark", b"a-1", None, Durability::Durable).await;
                writes
                    .lock()
                    .unwrap()
                    .push((lease.token, first.map_err(|e| e.to_string())));
                go_on.notified().await;
                // Every write after the pause, until one is refused.
                loop {
                    let next = lease
                        .set("mark", b"a-late", None, Durability::Durable)
                        .await;
                    let refused = next.is_err();
                    writes
                        .lock()
                        .unwrap()
                        .push((lease.token, next.map_err(|e| e.to_string())));
                    if refused {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
        .unwrap();
    }
    eventually(Duration::from_secs(2), || async {
        (!writes.lock().unwrap().is_empty()).then_some(())
    })
    .await
    .expect("the job wrote");
    let (first_token, first) = writes.lock().unwrap()[0].clone();
    assert_eq!(first, Ok(()), "the holder's write lands");
    let key = format!("{}:lease:{{{job}}}", ts.store.key_prefix());
    let mark = format!("{key}:mark");
    assert_eq!(
        ts.store.get(&mark).await.unwrap().as_deref(),
        Some(&b"a-1"[..])
    );

    // Another holder takes the lease and writes under its own token.
    let intruder = eventually(Duration::from_secs(3), || async {
        ts.store.delete(std::slice::from_ref(&key)).await.unwrap();
        let state = ts
            .store
            .lease(&key, "intruder", 60_000, LeaseOp::Acquire)
            .await
            .unwrap();
        state.held.then_some(state)
    })
    .await
    .expect("the intruder takes the lease");
    assert!(intruder.token > first_token);
    let written = ts
        .store
        .set_fenced(
            &key,
            intruder.token,
            &mark,
            b"intruder",
            None,
            Durability::Durable,
        )
        .await
        .unwrap();
    assert!(written);

    // The stale run resumes: its write is refused, nothing lands, the run stops.
    go_on.notify_one();
    let seen = eventually(Duration::from_secs(2), || async {
        let w = writes.lock().unwrap();
        w.last().filter(|(_, r)| r.is_err()).map(|_| w.clone())
    })
    .await
    .expect("a refused write");
    let (token, refused) = seen.last().unwrap().clone();
    assert_eq!(token, first_token);
    let refused = refused.unwrap_err();
    assert!(refused.contains("stale"), "{refused}");
    assert_eq!(
        ts.store.get(&mark).await.unwrap().as_deref(),
        Some(&b"intruder"[..]),
        "the stale write changed nothing"
    );
    // A's loop learns it at its next renewal.
    eventually(Duration::from_secs(2), || async {
        (!a.is_leader(&job)).then_some(())
    })
    .await
    .expect("A no longer leads");
    a.shutdown().await;
}
