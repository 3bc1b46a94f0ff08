//! StateManager as the seed builds it, graceful shutdown, and two fully wired instances
//! (cache, tenants, sessions, state, sync) on one Redis.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use riptide_persistence::clock::system_clock;
use riptide_persistence::config::PersistenceSchema;
use riptide_persistence::config::{RedisConfig, StateConfig, SyncConfig};
use riptide_persistence::state::StateManager;
use riptide_persistence::state::sessions::SessionInit;
use riptide_persistence::store::redis::RedisStore;
use riptide_persistence::sync::DistributedSync;
use riptide_persistence::tenant::metrics::TenantMetrics;
use riptide_persistence::tenant::{BillingPlan, ResourceUsageRecord, TenantError, TenantManager};
use riptide_persistence::{
    CacheConfig, CacheMetadata, Persistence, PersistenceConfig, PersistentCacheManager,
    SharedStore, StartOptions,
};

use super::support::{Backend, on_every_backend, store};
use super::tenant_lifecycle::{owner, section, tenant_config};

fn state_config(dir: &std::path::Path) -> StateConfig {
    std::fs::create_dir_all(dir.join("config")).unwrap();
    StateConfig {
        config_watch_paths: vec![dir.join("config").display().to_string()],
        checkpoint_dir: dir.join("checkpoints"),
        spill_dir: dir.join("spill"),
        ..Default::default()
    }
}

/// The seed's call, with hot reload on and scheduled checkpoints.
#[tokio::test]
async fn seed_call_and_state_report() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/riptide.yml"),
        "persistence:\n  cache:\n    default_ttl_seconds: 60\n",
    )
    .unwrap();
    let redis_url = dir.path().join("store").display().to_string();
    let state_manager = StateManager::new(
        &redis_url,
        StateConfig {
            enable_hot_reload: true,
            config_watch_paths: vec![dir.path().join("config").display().to_string()],
            checkpoint_interval_seconds: 300, // 5 minutes
            checkpoint_dir: dir.path().join("checkpoints"),
            spill_dir: dir.path().join("spill"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let report = state_manager.current_state().await;
    assert_eq!((report.config.generation, report.hot_reload), (1, true));
    assert_eq!(report.config.sources.len(), 1);
    std::fs::write(
        dir.path().join("config/riptide.yml"),
        "persistence:\n  cache:\n    default_ttl_seconds: 120\n",
    )
    .unwrap();
    let outcome = state_manager.reload_config();
    assert_eq!(outcome.as_str(), "applied", "{outcome:?}");
    let info = state_manager.create_checkpoint().await.unwrap();
    let listed = state_manager.list_checkpoints().await.unwrap();
    assert!(listed.iter().any(|c| c.id == info.id && c.valid));
    let report = state_manager.current_state().await;
    assert_eq!(report.config.generation, 2);
    assert_eq!(report.reloads.applied, 1);
    let shutdown = state_manager.shutdown(Duration::from_secs(10)).await;
    assert!(shutdown.failed.is_empty(), "{shutdown:?}");
    assert!(shutdown.checkpoint.is_some(), "final checkpoint taken");
}

#[tokio::test]
async fn an_invalid_config_keeps_the_running_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = state_config(dir.path());
    std::fs::write(
        dir.path().join("config/riptide.yml"),
        "persistence:\n  cache:\n    zstd_level: 3\n",
    )
    .unwrap();
    let ts = store(Backend::Embedded).await;
    let sm = StateManager::with_store(
        ts.store.clone(),
        cfg,
        system_clock(),
        Arc::new(PersistenceSchema),
    )
    .await
    .unwrap();
    std::fs::write(
        dir.path().join("config/riptide.yml"),
        "persistence:\n  cache:\n    zstd_level: 99\n",
    )
    .unwrap();
    let outcome = sm.reload_config();
    assert_eq!(outcome.as_str(), "error");
    let report = sm.current_state().await;
    assert_eq!(report.config.generation, 1);
    assert_eq!(report.reloads.errors, 1);
    let shown = serde_json::to_string(&report.reloads).unwrap();
    assert!(shown.contains("persistence.cache.zstd_level"), "{shown}");
    sm.shutdown(Duration::from_secs(5)).await;
}

on_every_backend!(shutdown_loses_nothing);

async fn shutdown_loses_nothing(b: Backend) {
    let ts = store(b).await;
    let dir = tempfile::tempdir().unwrap();
    let metrics = || Arc::new(RwLock::new(TenantMetrics::new()));
    let tenants = Arc::new(
        TenantManager::with_store(
            ts.store.clone(),
            section(dir.path()),
            metrics(),
            system_clock(),
        )
        .await
        .unwrap(),
    );
    let sm = StateManager::with_store(
        ts.store.clone(),
        state_config(dir.path()),
        system_clock(),
        Arc::new(PersistenceSchema),
    )
    .await
    .unwrap();
    sm.attach_tenants(tenants.clone()).unwrap();
    let id = tenants
        .create_tenant(tenant_config(""), owner(), BillingPlan::Basic)
        .await
        .unwrap();
    let now = chrono::Utc::now();
    for _ in 0..25 {
        let rec = ResourceUsageRecord {
            operation_count: 1,
            data_bytes: 100,
            compute_time_ms: 2,
            storage_bytes: 0,
            timestamp: now,
        };
        tenants.record_usage(&id, "api_request", rec).await.unwrap();
    }
    let session = sm
        .sessions()
        .create(
            &id,
            SessionInit {
                cookies: Vec::new(),
                headers: BTreeMap::from([("x-test".into(), "1".into())]),
                ttl: None,
            },
        )
        .await
        .unwrap();
    let started = Instant::now();
    let report = sm.shutdown(Duration::from_secs(10)).await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        started.elapsed()
    );
    drop(sm);
    // A new process over the same store sees every use and the session.
    let again = TenantManager::with_store(
        ts.store.clone(),
        section(dir.path()),
        metrics(),
        system_clock(),
    )
    .await
    .unwrap();
    let period = now.format("%Y-%m").to_string();
    let usage = again.get_usage(&id, &period).await.unwrap();
    assert_eq!((usage.operations, usage.data_bytes), (25, 2_500));
    let dir2 = tempfile::tempdir().unwrap();
    let sm2 = StateManager::with_store(
        ts.store.clone(),
        state_config(dir2.path()),
        system_clock(),
        Arc::new(PersistenceSchema),
    )
    .await
    .unwrap();
    let found = sm2
        .sessions()
        .get(&id, &session.id)
        .await
        .unwrap()
        .expect("sessions survive shutdown");
    assert_eq!(found.headers.get("x-test").map(String::as_str), Some("1"));
    again.shutdown().await;
    sm2.shutdown(Duration::from_secs(5)).await;
}

/// One instance: its own store handle, cache, tenants, state and sync.
struct Instance {
    cache: Arc<PersistentCacheManager>,
    tenants: Arc<TenantManager>,
    state: Arc<StateManager>,
    sync: Arc<DistributedSync>,
    _dir: tempfile::TempDir,
}

async fn instance(
    store: SharedStore,
    secrets: &std::path::Path,
    checkpoint_every: u64,
) -> Instance {
    let dir = tempfile::tempdir().unwrap();
    let mut state = state_config(dir.path());
    state.checkpoint_interval_seconds = checkpoint_every;
    let config = PersistenceConfig {
        cache: CacheConfig {
            l1_max_staleness_ms: 60_000,
            ..Default::default()
        },
        tenant: section(secrets),
        state,
        sync: SyncConfig {
            heartbeat_interval_ms: 100,
            instance_ttl_ms: 500,
            lease_ttl_ms: 300,
        },
        ..Default::default()
    };
    let p = Persistence::start_with_store(store, &config, StartOptions::default())
        .await
        .unwrap();
    Instance {
        cache: p.cache,
        tenants: p.tenants,
        state: p.state,
        sync: p.sync,
        _dir: dir,
    }
}

async fn redis_pair(url: &str, cluster: Option<Vec<String>>) -> (SharedStore, SharedStore) {
    let cfg = RedisConfig {
        key_prefix: riptide_test_support::unique("p"),
        pool_size: 2,
        ..Default::default()
    };
    let open = || async {
        let s: SharedStore = match &cluster {
            Some(nodes) => Arc::new(RedisStore::connect_cluster(nodes, &cfg).await.unwrap()),
            None => Arc::new(RedisStore::connect_standalone(url, &cfg).await.unwrap()),
        };
        s
    };
    (open().await, open().await)
}

/// Polls `check` until it holds or `within` passes; returns how long it took.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "not seen within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn two_instances(sa: SharedStore, sb: SharedStore) {
    let secrets = tempfile::tempdir().unwrap();
    let a = instance(sa, secrets.path(), 1).await;
    let b = instance(sb, secrets.path(), 1).await;
    let t = a
        .tenants
        .create_tenant(tenant_config(""), owner(), BillingPlan::Basic)
        .await
        .unwrap();
    let tag = Some(CacheMetadata::with_tags(["site:x"]));
    let budget = Duration::from_millis(100);

    // A set on A replaces what B has in L1 within 100 ms.
    a.cache
        .set("extract:1", &1u32, Some(&t), None, tag.clone())
        .await
        .unwrap();
    assert_eq!(
        b.cache.get::<u32>("extract:1", Some(&t)).await.unwrap(),
        Some(1)
    );
    a.cache
        .set("extract:1", &2u32, Some(&t), None, tag.clone())
        .await
        .unwrap();
    eventually(budget, || async {
        b.cache.get::<u32>("extract:1", Some(&t)).await.unwrap() == Some(2)
    })
    .await;
    // Delete, tag invalidation and tenant clear likewise.
    a.cache.delete("extract:1", &t).await.unwrap();
    eventually(budget, || async {
        b.cache
            .get::<u32>("extract:1", Some(&t))
            .await
            .unwrap()
            .is_none()
    })
    .await;
    a.cache
        .set("extract:2", &2u32, Some(&t), None, tag.clone())
        .await
        .unwrap();
    assert!(
        b.cache
            .get::<u32>("extract:2", Some(&t))
            .await
            .unwrap()
            .is_some()
    );
    a.cache.invalidate_tag("site:x", &t).await.unwrap();
    eventually(budget, || async {
        b.cache
            .get::<u32>("extract:2", Some(&t))
            .await
            .unwrap()
            .is_none()
    })
    .await;
    a.cache
        .set_bytes("extract:3", Bytes::from_static(b"v"), &t, None, None)
        .await
        .unwrap();
    assert!(b.cache.get_bytes("extract:3", &t).await.unwrap().is_some());
    a.cache.clear(&t).await.unwrap();
    eventually(budget, || async {
        b.cache.get_bytes("extract:3", &t).await.unwrap().is_none()
    })
    .await;

    // A suspension and a key revocation on A are enforced by B within a second.
    let key = a.tenants.create_api_key_by("test", &t, None).await.unwrap();
    b.tenants.authenticate(&key.secret).await.unwrap();
    b.tenants.validate_access(&t, "extract", "").await.unwrap();
    a.tenants.suspend_tenant(&t, "test").await.unwrap();
    eventually(Duration::from_secs(1), || async {
        matches!(
            b.tenants.validate_access(&t, "extract", "").await,
            Err(TenantError::Suspended(_))
        )
    })
    .await;
    a.tenants.resume_tenant(&t).await.unwrap();
    a.tenants
        .revoke_api_key_by("test", &t, &key.key_id)
        .await
        .unwrap();
    eventually(Duration::from_secs(1), || async {
        b.tenants.authenticate(&key.secret).await.is_err()
    })
    .await;

    // Both are registered; the checkpoint lease is held by one and moves when it stops.
    let listed = a.sync.instances().await.unwrap();
    assert!(listed.iter().filter(|i| i.alive).count() >= 2, "{listed:?}");
    eventually(Duration::from_secs(2), || async {
        a.sync.is_leader("checkpoint") || b.sync.is_leader("checkpoint")
    })
    .await;
    let (leader, follower) = if a.sync.is_leader("checkpoint") {
        (a, b)
    } else {
        (b, a)
    };
    assert!(!follower.sync.is_leader("checkpoint"));
    leader.state.shutdown(Duration::from_secs(5)).await;
    eventually(Duration::from_secs(2), || async {
        follower.sync.is_leader("checkpoint")
    })
    .await;
    follower.state.shutdown(Duration::from_secs(5)).await;
    follower.tenants.shutdown().await;
    leader.tenants.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_redis() {
    let (a, b) = redis_pair(&riptide_test_support::redis_server().url(), None).await;
    two_instances(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_redis_cluster() {
    let (a, b) = redis_pair("", Some(riptide_test_support::redis_cluster().nodes())).await;
    two_instances(a, b).await;
}

/// redis-server is killed and restarted mid-test: coordination resumes, and what B
/// held in L1 before the outage is not served afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordination_resumes_after_redis_restarts() {
    let server = riptide_test_support::start_redis_server();
    let (sa, sb) = redis_pair(&server.url(), None).await;
    let secrets = tempfile::tempdir().unwrap();
    let a = instance(sa, secrets.path(), 0).await;
    let b = instance(sb, secrets.path(), 0).await;
    a.cache.set("k", &1u32, None, None, None).await.unwrap();
    assert_eq!(b.cache.get::<u32>("k", None).await.unwrap(), Some(1));
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart();
    // The data is gone with the restarted (persistence-less) server; B must not keep
    // serving its L1 copy once it has resubscribed.
    eventually(Duration::from_secs(5), || async {
        matches!(b.cache.get::<u32>("k", None).await, Ok(None))
    })
    .await;
    // Messages flow again.
    a.cache.set("k", &2u32, None, None, None).await.unwrap();
    assert_eq!(b.cache.get::<u32>("k", None).await.unwrap(), Some(2));
    a.cache.set("k", &3u32, None, None, None).await.unwrap();
    eventually(Duration::from_secs(1), || async {
        b.cache.get::<u32>("k", None).await.ok().flatten() == Some(3)
    })
    .await;
    a.state.shutdown(Duration::from_secs(5)).await;
    b.state.shutdown(Duration::from_secs(5)).await;
}
