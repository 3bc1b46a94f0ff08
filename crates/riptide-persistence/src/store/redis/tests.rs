//! The Redis backend's own tests, each run against a standalone server and a Cluster
//! that the test harness starts (`riptide-test-support`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use riptide_test_support::{redis_cluster, redis_server, start_redis_server, unique};

use super::*;
use crate::keys::ScopeKeys;
use crate::keys::{KeyHash, Namespace, Scope};
use crate::store::prelude::*;
use crate::store::{CachePut, Durability, GcraDecision, GcraLimit};
use crate::tenant_id::TenantId;

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
async fn reports_kind_and_prefix() {
    let [s, c]: [RedisStore; 2] = stores().await.try_into().expect("two stores");
    assert_eq!(s.kind(), StoreKind::Redis);
    assert_eq!(c.kind(), StoreKind::RedisCluster);
    assert_eq!(s.key_prefix(), "riptide");
    s.ping().await.expect("ping standalone");
    c.ping().await.expect("ping cluster");
}

#[tokio::test]
async fn set_get_and_sub_second_expiry() {
    for store in stores().await {
        let scope = new_scope(&store);
        let (k, short) = (scope.record("kv:a"), scope.record("kv:short"));
        let value = b"binary\0\r\nsafe\xff".to_vec();
        store
            .set(&k, &value, None, Durability::Durable)
            .await
            .expect("set");
        store
            .set(&short, b"x", Some(150), Durability::Cache)
            .await
            .expect("set px");
        assert_eq!(
            store.get(&k).await.expect("get").as_deref(),
            Some(&value[..])
        );
        assert_eq!(
            store.get(&short).await.expect("get").as_deref(),
            Some(&b"x"[..])
        );
        assert_eq!(
            store.get(&scope.record("kv:missing")).await.expect("get"),
            None
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            store.get(&short).await.expect("get expired"),
            None,
            "{:?}",
            store.kind()
        );
        // Overwriting without TTL clears an earlier TTL.
        store
            .set(&short, b"y", Some(150), Durability::Cache)
            .await
            .expect("set px");
        store
            .set(&short, b"z", None, Durability::Cache)
            .await
            .expect("set");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            store.get(&short).await.expect("get").as_deref(),
            Some(&b"z"[..])
        );

        let zero = store.set(&k, b"nope", Some(0), Durability::Cache).await;
        assert!(matches!(zero, Err(StoreError::Backend(_))), "{zero:?}");
        assert_eq!(
            store.get(&k).await.expect("get").as_deref(),
            Some(&value[..]),
            "a refused set writes nothing"
        );
    }
}

#[tokio::test]
async fn get_many_and_set_many_keep_order() {
    for store in stores().await {
        let scope = new_scope(&store);
        let keys: Vec<String> = (0..4).map(|i| scope.record(&format!("kv:{i}"))).collect();
        let entries = vec![
            (keys[0].clone(), Bytes::from_static(b"zero"), None),
            (keys[2].clone(), Bytes::from_static(b"two"), Some(150)),
            (keys[3].clone(), Bytes::from_static(b""), Some(60_000)),
        ];
        store
            .set_many(&entries, Durability::Cache)
            .await
            .expect("set_many");
        let got = store.get_many(&keys).await.expect("get_many");
        let want = [Some(&b"zero"[..]), None, Some(&b"two"[..]), Some(&b""[..])];
        assert_eq!(got.iter().map(|v| v.as_deref()).collect::<Vec<_>>(), want);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let got = store.get_many(&keys).await.expect("get_many");
        assert_eq!(got[2], None, "expired value returned by get_many");
        assert!(
            store
                .get_many(&[])
                .await
                .expect("empty get_many")
                .is_empty()
        );
        store
            .set_many(&[], Durability::Cache)
            .await
            .expect("empty set_many");

        let bad = vec![(keys[1].clone(), Bytes::from_static(b"x"), Some(0))];
        assert!(store.set_many(&bad, Durability::Cache).await.is_err());
        assert_eq!(store.get(&keys[1]).await.expect("get"), None);
    }
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
async fn cache_put_accounts_for_overwrites() {
    for store in stores().await {
        let scope = new_scope(&store);
        let out = store
            .cache_put(
                &scope,
                &[
                    put(&scope, "a", "x", 10, None, &[]),
                    put(&scope, "a", "y", 20, Some(60_000), &[]),
                ],
                None,
            )
            .await
            .expect("put");
        assert_eq!((out.used_bytes, out.entries, out.evicted.len()), (30, 2, 0));
        let out = store
            .cache_put(&scope, &[put(&scope, "a", "x", 5, None, &[])], None)
            .await
            .expect("overwrite");
        assert_eq!((out.used_bytes, out.entries), (25, 2));
        assert_eq!(
            store
                .get(&entry(&scope, "a", "x"))
                .await
                .expect("get")
                .map(|v| v.len()),
            Some(5)
        );
        // The same key twice in one batch: the last write wins and counts once.
        let twice = [
            put(&scope, "a", "z", 7, None, &[]),
            put(&scope, "a", "z", 3, None, &[]),
        ];
        let out = store.cache_put(&scope, &twice, None).await.expect("batch");
        assert_eq!((out.used_bytes, out.entries), (28, 3));
        assert_eq!(usage(&store, &scope).await, (28, 3));
        // An empty batch only reports.
        let out = store.cache_put(&scope, &[], None).await.expect("empty put");
        assert_eq!((out.used_bytes, out.entries), (28, 3));
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
async fn tags_remove_their_entries_only() {
    for store in stores().await {
        let scope = new_scope(&store);
        let puts = [
            put(&scope, "a", "1", 10, None, &["red", "url:example.com"]),
            put(&scope, "a", "2", 20, Some(60_000), &["url:example.com"]),
            put(&scope, "b", "3", 40, None, &[]),
        ];
        store.cache_put(&scope, &puts, None).await.expect("put");
        let out = store
            .cache_remove_tag(&scope, "url:example.com")
            .await
            .expect("remove tag");
        assert_eq!((out.removed, out.used_bytes, out.entries), (2, 40, 1));
        assert_eq!(store.get(&puts[0].key).await.expect("get"), None);
        assert!(store.get(&puts[2].key).await.expect("get").is_some());
        // "red" only named the removed entry: nothing left to remove.
        assert_eq!(
            store
                .cache_remove_tag(&scope, "red")
                .await
                .expect("remove")
                .removed,
            0
        );

        // Overwriting an entry replaces its tags.
        store
            .cache_put(&scope, &[put(&scope, "b", "3", 40, None, &["old"])], None)
            .await
            .expect("tag");
        store
            .cache_put(&scope, &[put(&scope, "b", "3", 40, None, &["new"])], None)
            .await
            .expect("retag");
        assert_eq!(
            store
                .cache_remove_tag(&scope, "old")
                .await
                .expect("remove")
                .removed,
            0
        );
        let out = store.cache_remove_tag(&scope, "new").await.expect("remove");
        assert_eq!((out.removed, out.used_bytes, out.entries), (1, 0, 0));
        // Emptied member sets are gone and no longer listed.
        let sets = [
            scope.tag_members("old"),
            scope.tag_members("new"),
            scope.namespace_members("b"),
            scope.member_sets(),
        ];
        assert_eq!(existing(&store, &sets).await, 0);
    }
}

#[tokio::test]
async fn namespace_removal_and_key_removal() {
    for store in stores().await {
        let (scope, other) = (new_scope(&store), new_scope(&store));
        let mut puts: Vec<CachePut> = (0..3)
            .map(|i| put(&scope, "search", &i.to_string(), 10, None, &["t"]))
            .collect();
        puts.extend((0..2).map(|i| put(&scope, "page", &i.to_string(), 5, None, &[])));
        store.cache_put(&scope, &puts, None).await.expect("put");
        let theirs = put(&other, "search", "0", 7, None, &[]);
        store
            .cache_put(&other, std::slice::from_ref(&theirs), None)
            .await
            .expect("put other");

        let out = store
            .cache_remove_namespace(&scope, "search")
            .await
            .expect("remove ns");
        assert_eq!((out.removed, out.used_bytes, out.entries), (3, 10, 2));
        assert_eq!(store.get(&puts[0].key).await.expect("get"), None);
        assert!(store.get(&puts[3].key).await.expect("get").is_some());
        assert_eq!(
            store
                .cache_remove_tag(&scope, "t")
                .await
                .expect("tag")
                .removed,
            0
        );

        // Removing keys: a missing key and another scope's key are ignored.
        let keys = vec![
            puts[3].key.clone(),
            entry(&scope, "page", "missing"),
            theirs.key.clone(),
        ];
        let out = store.cache_remove(&scope, &keys).await.expect("remove");
        assert_eq!((out.removed, out.used_bytes, out.entries), (1, 5, 1));
        assert_eq!(usage(&store, &other).await, (7, 1), "other scope untouched");
        assert!(store.get(&theirs.key).await.expect("get").is_some());
    }
}

#[tokio::test]
async fn clear_removes_a_large_scope_and_nothing_else() {
    for store in stores().await {
        let (scope, other) = (new_scope(&store), new_scope(&store));
        let total = 5_000;
        for chunk in (0..total).collect::<Vec<_>>().chunks(500) {
            let puts: Vec<CachePut> = chunk
                .iter()
                .map(|i| {
                    let ttl = (i % 2 == 0).then_some(60_000);
                    let tag = format!("g{}", i % 7);
                    put(
                        &scope,
                        if i % 3 == 0 { "a" } else { "b" },
                        &i.to_string(),
                        3,
                        ttl,
                        &[tag.as_str()],
                    )
                })
                .collect();
            store.cache_put(&scope, &puts, None).await.expect("put");
        }
        store
            .cache_put(&other, &[put(&other, "a", "keep", 9, None, &["g1"])], None)
            .await
            .expect("other");
        assert_eq!(
            usage(&store, &scope).await,
            (3 * total as u64, total as u64)
        );

        let out = store.cache_clear(&scope).await.expect("clear");
        assert_eq!(
            (out.removed, out.used_bytes, out.entries),
            (total as u64, 0, 0),
            "{:?}",
            store.kind()
        );
        assert_eq!(usage(&store, &scope).await, (0, 0));
        assert_eq!(
            store.get(&entry(&scope, "a", "0")).await.expect("get"),
            None
        );
        let mut leftovers = vec![
            scope.index(),
            scope.sizes(),
            scope.entry_tags(),
            scope.used_bytes(),
            scope.member_sets(),
        ];
        leftovers.extend((0..7).map(|g| scope.tag_members(&format!("g{g}"))));
        leftovers.extend(["a", "b"].map(|ns| scope.namespace_members(ns)));
        assert_eq!(existing(&store, &leftovers).await, 0);

        assert_eq!(usage(&store, &other).await, (9, 1));
        assert!(
            store
                .get(&entry(&other, "a", "keep"))
                .await
                .expect("get")
                .is_some()
        );
        assert_eq!(
            store
                .cache_remove_tag(&other, "g1")
                .await
                .expect("tag")
                .removed,
            1
        );
        assert_eq!(
            store.cache_clear(&scope).await.expect("clear empty"),
            RemoveOutcome::default()
        );
    }
}

#[tokio::test]
async fn budget_evicts_soonest_expiring_first() {
    for store in stores().await {
        let scope = new_scope(&store);
        let budget = Some(100);
        let a = put(&scope, "a", "a", 30, Some(10_000), &["t"]);
        let b = put(&scope, "a", "b", 30, Some(5_000), &[]);
        let c = put(&scope, "a", "c", 30, None, &[]);
        store
            .cache_put(&scope, &[a.clone(), b.clone(), c.clone()], budget)
            .await
            .expect("fill");
        let d = put(&scope, "a", "d", 30, Some(20_000), &[]);
        let out = store
            .cache_put(&scope, std::slice::from_ref(&d), budget)
            .await
            .expect("evict one");
        assert_eq!(out.evicted, vec![b.key.clone()]);
        assert_eq!((out.used_bytes, out.entries), (90, 3));
        assert_eq!(store.get(&b.key).await.expect("get"), None);

        // Overwriting `c` (not evictable: it is in the batch) still needs room for 60.
        let e = put(&scope, "a", "c", 60, None, &[]);
        let out = store
            .cache_put(&scope, std::slice::from_ref(&e), budget)
            .await
            .expect("evict two");
        assert_eq!(out.evicted, vec![a.key.clone()]);
        assert_eq!((out.used_bytes, out.entries), (90, 2));
        assert_eq!(
            store
                .cache_remove_tag(&scope, "t")
                .await
                .expect("tag")
                .removed,
            0,
            "evicted tags are gone"
        );

        // Without TTL, ties go by key.
        let scope = new_scope(&store);
        let mut no_ttl: Vec<CachePut> = (0..3)
            .map(|i| put(&scope, "a", &format!("n{i}"), 10, None, &[]))
            .collect();
        store
            .cache_put(&scope, &no_ttl, Some(30))
            .await
            .expect("fill");
        no_ttl.sort_by(|x, y| x.key.cmp(&y.key));
        let out = store
            .cache_put(&scope, &[put(&scope, "a", "new", 15, None, &[])], Some(30))
            .await
            .expect("evict");
        assert_eq!(
            out.evicted,
            vec![no_ttl[0].key.clone(), no_ttl[1].key.clone()]
        );
        assert_eq!((out.used_bytes, out.entries), (25, 2));
    }
}

#[tokio::test]
async fn over_budget_batches_write_nothing() {
    for store in stores().await {
        let scope = new_scope(&store);
        store
            .cache_put(&scope, &[put(&scope, "a", "a", 30, None, &[])], Some(50))
            .await
            .expect("put");
        let batch = [
            put(&scope, "a", "b", 30, None, &["t"]),
            put(&scope, "a", "c", 30, None, &[]),
        ];
        let r = store.cache_put(&scope, &batch, Some(50)).await;
        assert!(
            matches!(
                r,
                Err(StoreError::OverBudget {
                    needed: 60,
                    budget: 50
                })
            ),
            "{r:?}"
        );
        assert_eq!(usage(&store, &scope).await, (30, 1));
        assert_eq!(store.get(&batch[0].key).await.expect("get"), None);
        assert!(
            store
                .get(&entry(&scope, "a", "a"))
                .await
                .expect("get")
                .is_some()
        );
        assert_eq!(existing(&store, &[scope.tag_members("t")]).await, 0);
    }
}

#[tokio::test]
async fn expired_entries_drop_out_of_usage() {
    for store in stores().await {
        let scope = new_scope(&store);
        let short = put(&scope, "a", "short", 10, Some(150), &["t"]);
        store
            .cache_put(
                &scope,
                &[short.clone(), put(&scope, "a", "long", 20, None, &[])],
                None,
            )
            .await
            .expect("put");
        assert_eq!(usage(&store, &scope).await, (30, 2));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(usage(&store, &scope).await, (20, 1));
        assert_eq!(store.get(&short.key).await.expect("get"), None);
        // An expired entry is not counted as removed, and its tag set is gone.
        let out = store
            .cache_remove(&scope, std::slice::from_ref(&short.key))
            .await
            .expect("remove");
        assert_eq!((out.removed, out.used_bytes, out.entries), (0, 20, 1));
        assert_eq!(existing(&store, &[scope.tag_members("t")]).await, 0);
    }
}

#[tokio::test]
async fn clear_does_not_count_expired_entries_as_removed() {
    for store in stores().await {
        let scope = new_scope(&store);
        let puts = [
            put(&scope, "a", "s1", 10, Some(100), &["t"]),
            put(&scope, "a", "s2", 10, Some(100), &[]),
            put(&scope, "a", "long", 20, Some(60_000), &["t"]),
        ];
        store.cache_put(&scope, &puts, None).await.expect("put");
        tokio::time::sleep(Duration::from_millis(250)).await;
        // No purge runs first in clear: the expired entries are dropped, not counted.
        let out = store.cache_clear(&scope).await.expect("clear");
        assert_eq!((out.removed, out.used_bytes, out.entries), (1, 0, 0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_keep_used_bytes_exact() {
    for store in stores().await {
        let store = Arc::new(store);
        let scope = new_scope(&store);
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let (store, scope) = (store.clone(), scope.clone());
                tokio::spawn(async move {
                    for i in 0..25 {
                        let name = format!("k{}", (t * 7 + i) % 20);
                        let p = put(&scope, "a", &name, 1 + (t * 31 + i * 17) % 50, None, &["x"]);
                        store.cache_put(&scope, &[p], None).await.expect("put");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        let keys: Vec<String> = (0..20)
            .map(|i| entry(&scope, "a", &format!("k{i}")))
            .collect();
        let values = store.get_many(&keys).await.expect("get_many");
        let live: Vec<&Bytes> = values.iter().flatten().collect();
        let bytes: u64 = live.iter().map(|v| v.len() as u64).sum();
        assert_eq!(
            usage(&store, &scope).await,
            (bytes, live.len() as u64),
            "{:?}",
            store.kind()
        );
        assert_eq!(
            store
                .cache_remove_tag(&scope, "x")
                .await
                .expect("tag")
                .removed,
            live.len() as u64
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
