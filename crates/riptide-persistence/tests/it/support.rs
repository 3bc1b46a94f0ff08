//! Stores for tests: a real embedded store in a temp dir, a real Redis, a real Cluster.

use std::sync::Arc;

use riptide_persistence::clock::SharedClock;
use riptide_persistence::config::{EmbeddedConfig, RedisConfig};
use riptide_persistence::store::embedded::EmbeddedStore;
use riptide_persistence::store::redis::RedisStore;
use riptide_persistence::{CacheConfig, PersistentCacheManager, SharedStore};
use riptide_test_support::{redis_cluster, redis_server, unique};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Redis,
    Cluster,
}

/// A store plus whatever must live as long as it (the embedded temp dir).
pub struct TestStore {
    pub store: SharedStore,
    _dir: Option<tempfile::TempDir>,
}

/// A fresh store on `backend`: its own temp dir, or its own key prefix on the shared
/// server, so tests never see each other's keys.
pub async fn store(backend: Backend) -> TestStore {
    store_with_clock(backend, riptide_persistence::clock::system_clock()).await
}

/// As [`store`], with an injected clock for the embedded store (Redis keeps its own).
pub async fn store_with_clock(backend: Backend, clock: SharedClock) -> TestStore {
    let redis_cfg = || RedisConfig {
        key_prefix: unique("p"),
        pool_size: 2,
        ..Default::default()
    };
    match backend {
        Backend::Embedded => {
            let dir = tempfile::tempdir().expect("temp dir");
            let cfg = EmbeddedConfig {
                sweep_interval_ms: 50,
                ..Default::default()
            };
            let store: SharedStore =
                EmbeddedStore::open(dir.path(), &cfg, clock).expect("open embedded store");
            TestStore {
                store,
                _dir: Some(dir),
            }
        }
        Backend::Redis => {
            let s = RedisStore::connect_standalone(&redis_server().url(), &redis_cfg())
                .await
                .expect("connect to the test redis-server");
            TestStore {
                store: Arc::new(s),
                _dir: None,
            }
        }
        Backend::Cluster => {
            let s = RedisStore::connect_cluster(&redis_cluster().nodes(), &redis_cfg())
                .await
                .expect("connect to the test Redis Cluster");
            TestStore {
                store: Arc::new(s),
                _dir: None,
            }
        }
    }
}

/// A cache manager over a fresh store.
pub async fn cache(backend: Backend, config: CacheConfig) -> (PersistentCacheManager, TestStore) {
    let ts = store(backend).await;
    let cache = PersistentCacheManager::with_store(ts.store.clone(), config).expect("valid config");
    (cache, ts)
}

/// A unique, valid tenant id.
pub fn tenant() -> String {
    unique("t")
}

/// Instantiates an async test body `fn(Backend)` once per backend.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use crate::support::Backend;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn embedded() { super::$name(Backend::Embedded).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn redis() { super::$name(Backend::Redis).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn cluster() { super::$name(Backend::Cluster).await }
            }
        )*
    };
}
pub(crate) use on_every_backend;

/// A new tenant id with a stand-in tenant record: keys are only ever created for a
/// tenant that exists (has its `meta` record).
pub async fn stand_in_tenant(store: &SharedStore) -> riptide_persistence::TenantId {
    let t = riptide_persistence::TenantId::parse(&tenant()).expect("valid tenant id");
    let meta = riptide_persistence::keys::ScopeKeys::new(
        store.key_prefix(),
        &riptide_persistence::keys::Scope::Tenant(t.clone()),
    )
    .record("meta");
    store
        .set(
            &meta,
            b"{}",
            None,
            riptide_persistence::store::Durability::Durable,
        )
        .await
        .expect("tenant record");
    t
}
