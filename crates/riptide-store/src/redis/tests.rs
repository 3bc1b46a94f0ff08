//! The Redis backend's own tests, each run against a standalone server and a Cluster
//! that the test harness starts (`riptide-test-support`): what is particular to Redis
//! (keys of several slots in one call, scripts flushed from the server, unreachable and
//! killed servers, configuration). The store contract itself is checked on every
//! backend by the conformance suite (`tests/it/store_conformance`).

use std::time::{Duration, Instant};

use bytes::Bytes;
use riptide_test_support::{redis_cluster, redis_server, start_redis_server, unique};

use super::*;
use crate::keys::ScopeKeys;
use crate::keys::{KeyHash, Namespace, Scope};
use crate::prelude::*;
use crate::tenant_id::TenantId;
use crate::{CachePut, Durability, GcraDecision, GcraLimit};

mod lease;
mod pubsub;
mod records;
mod settings;

fn config() -> RedisConfig {
    RedisConfig {
        pool_size: 2,
        connection_timeout_ms: 1_000,
        command_timeout_ms: 5_000,
        ..Default::default()
    }
}

async fn standalone() -> RedisStore {
    let url = redis_server().url();
    RedisStore::connect_standalone(&url, &config())
        .await
        .expect("connect standalone")
}

async fn cluster() -> RedisStore {
    let nodes = redis_cluster().nodes();
    RedisStore::connect_cluster(&nodes, &config())
        .await
        .expect("connect cluster")
}

/// Both backends, so every check runs on a standalone server and on a Cluster.
async fn stores() -> Vec<RedisStore> {
    vec![standalone().await, cluster().await]
}

fn new_scope(store: &RedisStore) -> ScopeKeys {
    let tenant = TenantId::parse(&unique("t")).expect("valid tenant id");
    ScopeKeys::new(store.key_prefix(), &Scope::Tenant(tenant))
}

fn entry(scope: &ScopeKeys, ns: &str, name: &str) -> String {
    scope.entry(
        &Namespace::parse(ns).expect("valid namespace"),
        &KeyHash::of(name),
    )
}

fn put(
    scope: &ScopeKeys,
    ns: &str,
    name: &str,
    len: usize,
    ttl_ms: Option<u64>,
    tags: &[&str],
) -> CachePut {
    CachePut {
        key: entry(scope, ns, name),
        namespace: ns.to_owned(),
        value: Bytes::from(vec![b'v'; len]),
        ttl_ms,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
    }
}

async fn usage(store: &RedisStore, scope: &ScopeKeys) -> (u64, u64) {
    let u = store.cache_usage(scope).await.expect("usage");
    (u.used_bytes, u.entries)
}

/// How many of `keys` exist, read with a raw command (the keys share one slot).
async fn existing(store: &RedisStore, keys: &[String]) -> u64 {
    redis::cmd("EXISTS")
        .arg(keys)
        .query_async(&mut store.pool.get())
        .await
        .expect("EXISTS")
}

#[tokio::test]
async fn delete_counts_existing_keys_even_across_slots() {
    for store in stores().await {
        let (a, b) = (new_scope(&store), new_scope(&store));
        let keys = vec![
            a.record("kv:1"),
            a.record("kv:2"),
            b.record("kv:1"),
            b.record("kv:missing"),
        ];
        for k in &keys[..3] {
            store
                .set(k, b"v", None, Durability::Cache)
                .await
                .expect("set");
        }
        assert_eq!(
            store.delete(&keys).await.expect("delete"),
            3,
            "{:?}",
            store.kind()
        );
        assert_eq!(store.delete(&keys).await.expect("delete again"), 0);
        assert_eq!(store.delete(&[]).await.expect("delete nothing"), 0);
        assert_eq!(store.get(&keys[0]).await.expect("get"), None);
    }
}

#[tokio::test]
async fn cache_put_refuses_keys_outside_the_scope_or_namespace() {
    for store in stores().await {
        let (scope, other) = (new_scope(&store), new_scope(&store));
        let mut foreign = put(&other, "a", "x", 4, None, &[]);
        let wrong_ns = CachePut {
            namespace: "b".into(),
            ..put(&scope, "a", "x", 4, None, &[])
        };
        let bad_tag = put(&scope, "a", "y", 4, None, &["has space"]);
        let zero_ttl = put(&scope, "a", "z", 4, Some(0), &[]);
        for bad in [foreign.clone(), wrong_ns, bad_tag, zero_ttl] {
            let r = store
                .cache_put(&scope, &[put(&scope, "a", "ok", 1, None, &[]), bad], None)
                .await;
            assert!(matches!(r, Err(StoreError::Backend(_))), "{r:?}");
        }
        foreign.namespace = "b".into();
        assert!(store.cache_put(&other, &[foreign], None).await.is_err());
        assert_eq!(
            usage(&store, &scope).await,
            (0, 0),
            "a refused batch writes nothing"
        );
    }
}

#[tokio::test]
async fn large_values_round_trip() {
    for store in stores().await {
        let scope = new_scope(&store);
        let big: Vec<u8> = (0..16 * 1024 * 1024)
            .map(|i: u32| (i % 251) as u8)
            .collect();
        let p = CachePut {
            value: Bytes::from(big.clone()),
            ..put(&scope, "a", "big", 0, None, &[])
        };
        let out = store
            .cache_put(&scope, std::slice::from_ref(&p), None)
            .await
            .expect("put big");
        assert_eq!(out.used_bytes, big.len() as u64);
        assert_eq!(
            store.get(&p.key).await.expect("get big").as_deref(),
            Some(&big[..])
        );
    }
}

#[tokio::test]
async fn scripts_are_reloaded_after_a_script_flush() {
    for store in stores().await {
        let scope = new_scope(&store);
        store
            .cache_put(&scope, &[put(&scope, "a", "x", 4, None, &[])], None)
            .await
            .expect("put");
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut store.pool.get())
            .await
            .expect("flush");
        assert_eq!(usage(&store, &scope).await, (4, 1));
    }
}

#[tokio::test]
async fn unreachable_server_fails_fast_and_bad_urls_are_config_errors() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let started = Instant::now();
    let r = RedisStore::connect_standalone(&format!("redis://127.0.0.1:{port}"), &config()).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let r = RedisStore::connect_cluster(&[format!("redis://127.0.0.1:{port}")], &config()).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    let r = RedisStore::connect_standalone("redis://127.0.0.1:notaport", &config()).await;
    assert!(matches!(r, Err(StoreError::Config(_))), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_is_unavailable_then_recovers() {
    let server = start_redis_server();
    let store = RedisStore::connect_standalone(&server.url(), &config())
        .await
        .expect("connect");
    let scope = new_scope(&store);
    store
        .cache_put(&scope, &[put(&scope, "a", "x", 4, None, &[])], None)
        .await
        .expect("put");

    server.kill();
    for _ in 0..4 {
        let r = store.get(&entry(&scope, "a", "x")).await;
        assert!(matches!(&r, Err(e) if e.is_retryable()), "{r:?}");
        let r = store.cache_usage(&scope).await;
        assert!(matches!(&r, Err(e) if e.is_retryable()), "{r:?}");
    }

    tokio::task::block_in_place(|| server.restart());
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "no recovery after restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every pooled connection works again (the server came back empty, scripts unloaded).
    for _ in 0..4 {
        let mut ok = false;
        for _ in 0..3 {
            if store.cache_usage(&scope).await.is_ok() {
                ok = true;
                break;
            }
        }
        assert!(ok, "a pooled connection did not recover");
    }
    store
        .cache_put(&scope, &[put(&scope, "a", "y", 6, None, &[])], None)
        .await
        .expect("put after restart");
    assert_eq!(usage(&store, &scope).await, (6, 1));
}
