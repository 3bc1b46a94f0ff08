//! Scopes never see each other: tenants and the global scope. On Redis, the keys really
//! carry the scope's hash tag, so one scope's scripts run on one Cluster slot.

use std::collections::{BTreeMap, BTreeSet};

use riptide_persistence::SharedStore;
use riptide_persistence::keys::ScopeKeys;
use riptide_persistence::store::{Durability, StoreError};
use riptide_test_support::{redis_cluster, redis_server};

use super::{
    assert_usage, cput, entries, entry, global_keys, open, present, reported, tenant_keys, usage,
};
use crate::support::{Backend, on_every_backend};

on_every_backend!(
    same_caller_key_is_a_different_store_key_per_scope,
    invalidation_in_one_scope_never_affects_another,
    cache_calls_never_touch_keys_of_another_scope,
);

/// As `on_every_backend!`, for the Redis backends only.
macro_rules! on_redis_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use crate::support::Backend;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn redis() { super::$name(Backend::Redis).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn cluster() { super::$name(Backend::Cluster).await }
            }
        )*
    };
}

on_redis_backends!(redis_keys_carry_the_scope_hash_tag);

/// A tenant scope, another tenant scope and the global scope of `store`.
fn three_scopes(store: &SharedStore) -> [ScopeKeys; 3] {
    [tenant_keys(store), tenant_keys(store), global_keys(store)]
}

async fn same_caller_key_is_a_different_store_key_per_scope(b: Backend) {
    let (_ts, store) = open(b).await;
    let scopes = three_scopes(&store);
    let caller_key = "extract:https://example.com/page";
    let keys: Vec<String> = scopes
        .iter()
        .map(|s| entry(s, "extract", caller_key))
        .collect();
    let distinct: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(distinct.len(), 3, "{keys:?}");
    let records: Vec<String> = scopes.iter().map(|s| s.record("meta")).collect();
    assert_eq!(
        records.iter().collect::<BTreeSet<_>>().len(),
        3,
        "{records:?}"
    );

    for (i, scope) in scopes.iter().enumerate() {
        let mut put = cput(scope, "extract", caller_key, 10 * (i + 1), None, &["t"]);
        put.value = bytes::Bytes::from(vec![b'a' + i as u8; 10 * (i + 1)]);
        store.cache_put(scope, &[put], None).await.unwrap();
        store
            .set(
                &records[i],
                format!("record {i}").as_bytes(),
                None,
                Durability::Durable,
            )
            .await
            .unwrap();
    }
    for (i, scope) in scopes.iter().enumerate() {
        let value = store.get(&keys[i]).await.unwrap().expect("entry");
        assert_eq!(
            value.as_ref(),
            vec![b'a' + i as u8; 10 * (i + 1)].as_slice()
        );
        let record = store.get(&records[i]).await.unwrap().expect("record");
        assert_eq!(record.as_ref(), format!("record {i}").as_bytes());
        let n = 10 * (i as u64 + 1);
        assert_eq!(reported(&store, scope).await, usage(n, 1), "scope {i}");
    }
    let out = store
        .cache_remove(&scopes[0], std::slice::from_ref(&keys[0]))
        .await
        .unwrap();
    assert_eq!(out.removed, 1);
    assert!(present(&store, &keys[1]).await && present(&store, &keys[2]).await);
}

async fn invalidation_in_one_scope_never_affects_another(b: Backend) {
    let (_ts, store) = open(b).await;
    let scopes = three_scopes(&store);
    let mut all: Vec<Vec<String>> = Vec::new();
    for scope in &scopes {
        let puts = [
            cput(scope, "ns", "x", 1, None, &["t"]),
            cput(scope, "m", "y", 2, Some(60_000), &["t"]),
            cput(scope, "ns", "z", 4, None, &["u"]),
        ];
        store.cache_put(scope, &puts, None).await.unwrap();
        let mut keys = entries(scope, "ns", &["x", "z"]);
        keys.push(entry(scope, "m", "y"));
        all.push(keys);
    }
    let full = usage(7, 3);

    let out = store.cache_remove_tag(&scopes[0], "t").await.unwrap();
    assert_eq!((out.removed, out.used_bytes, out.entries), (2, 4, 1));
    assert_usage(
        &store,
        &scopes[1],
        &all[1],
        full,
        "tag removed in tenant A: B",
    )
    .await;
    assert_usage(
        &store,
        &scopes[2],
        &all[2],
        full,
        "tag removed in tenant A: global",
    )
    .await;

    let out = store
        .cache_remove_namespace(&scopes[1], "ns")
        .await
        .unwrap();
    assert_eq!((out.removed, out.used_bytes, out.entries), (2, 2, 1));
    assert_usage(
        &store,
        &scopes[0],
        &all[0],
        usage(4, 1),
        "namespace in B: A",
    )
    .await;
    assert_usage(&store, &scopes[2], &all[2], full, "namespace in B: global").await;

    let out = store.cache_clear(&scopes[2]).await.unwrap();
    assert_eq!((out.removed, out.used_bytes, out.entries), (3, 0, 0));
    assert_usage(&store, &scopes[0], &all[0], usage(4, 1), "clear global: A").await;
    assert_usage(&store, &scopes[1], &all[1], usage(2, 1), "clear global: B").await;

    let out = store.cache_clear(&scopes[0]).await.unwrap();
    assert_eq!(out.removed, 1);
    assert_usage(&store, &scopes[1], &all[1], usage(2, 1), "clear A: B").await;
    assert_eq!(
        store
            .cache_remove_tag(&scopes[1], "t")
            .await
            .unwrap()
            .removed,
        1
    );
}

async fn cache_calls_never_touch_keys_of_another_scope(b: Backend) {
    let (_ts, store) = open(b).await;
    let [mine, theirs, global] = three_scopes(&store);
    let their_entry = cput(&theirs, "ns", "x", 10, None, &["t"]);
    store
        .cache_put(&theirs, std::slice::from_ref(&their_entry), None)
        .await
        .unwrap();

    // A put into my scope of a key of another scope, or of a namespace that is not
    // the key's, is refused and writes nothing anywhere.
    let foreign = cput(&theirs, "ns", "y", 5, None, &[]);
    let err = store
        .cache_put(&mine, std::slice::from_ref(&foreign), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    let mut wrong_ns = cput(&mine, "ns", "z", 5, None, &[]);
    wrong_ns.namespace = "other".into();
    let err = store.cache_put(&mine, &[wrong_ns], None).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert!(!present(&store, &foreign.key).await);
    assert_eq!(reported(&store, &mine).await, usage(0, 0));

    // Removing another scope's key through my scope removes nothing.
    let out = store
        .cache_remove(&mine, std::slice::from_ref(&their_entry.key))
        .await
        .unwrap();
    assert_eq!(out.removed, 0);
    assert_eq!(store.cache_remove_tag(&mine, "t").await.unwrap().removed, 0);
    assert_eq!(
        store
            .cache_remove_namespace(&mine, "ns")
            .await
            .unwrap()
            .removed,
        0
    );
    assert_eq!(store.cache_clear(&global).await.unwrap().removed, 0);
    assert!(present(&store, &their_entry.key).await);
    assert_eq!(reported(&store, &theirs).await, usage(10, 1));
}

/// The hash tag of a Redis key (the Cluster's rule: between the first `{` and the next `}`).
fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let len = key[open + 1..].find('}')?;
    (len > 0).then(|| &key[open + 1..open + 1 + len])
}

/// Every key under `prefix`, by the node holding it, SCANned node by node.
async fn stored_keys(b: Backend, prefix: &str) -> BTreeMap<String, usize> {
    let urls = match b {
        Backend::Redis => vec![redis_server().url()],
        Backend::Cluster => redis_cluster().nodes(),
        Backend::Embedded => unreachable!("Redis backends only"),
    };
    let mut found = BTreeMap::new();
    for (node, url) in urls.iter().enumerate() {
        let client = redis::Client::open(url.as_str()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to a node");
        let mut cursor = 0u64;
        loop {
            let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}:*"))
                .arg("COUNT")
                .arg(1_000)
                .query_async(&mut conn)
                .await
                .expect("SCAN");
            for key in page {
                found.insert(key, node);
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    found
}

async fn redis_keys_carry_the_scope_hash_tag(b: Backend) {
    let (_ts, store) = open(b).await;
    let (tenant, global) = (tenant_keys(&store), global_keys(&store));
    let tenant_id = hash_tag(tenant.base())
        .expect("tenant base has a hash tag")
        .to_owned();
    let mut layout: BTreeMap<String, &str> = BTreeMap::new();
    for (scope, tag) in [(&tenant, tenant_id.as_str()), (&global, "global")] {
        let puts = [
            cput(
                scope,
                "ns",
                "x",
                10,
                Some(60_000),
                &["tag-a", "url:example.com"],
            ),
            cput(scope, "other", "y", 5, None, &["tag-b"]),
        ];
        store.cache_put(scope, &puts, None).await.unwrap();
        store
            .set(&scope.record("meta"), b"m", None, Durability::Durable)
            .await
            .unwrap();
        let documented = [
            puts[0].key.clone(),
            puts[1].key.clone(),
            scope.index(),
            scope.sizes(),
            scope.entry_tags(),
            scope.used_bytes(),
            scope.tag_members("tag-a"),
            scope.tag_members("url:example.com"),
            scope.tag_members("tag-b"),
            scope.namespace_members("ns"),
            scope.namespace_members("other"),
            scope.member_sets(),
            scope.record("meta"),
        ];
        for key in documented {
            layout.insert(key, tag);
        }
    }

    // Every key this store wrote carries its scope's hash tag, and the documented keys
    // (entries, index, sizes, tags, counters, member sets) are really there.
    let stored = stored_keys(b, store.key_prefix()).await;
    for (key, tag) in &layout {
        assert!(
            stored.contains_key(key),
            "{key} not in Redis; found {stored:#?}"
        );
        assert_eq!(hash_tag(key), Some(*tag), "{key}");
    }
    for key in stored.keys() {
        let tag = hash_tag(key);
        assert!(
            tag == Some(tenant_id.as_str()) || tag == Some("global"),
            "{key} carries no scope hash tag"
        );
    }

    if b == Backend::Cluster {
        // One node per scope, and one slot: the slot of the hash tag itself.
        let client = redis::cluster::ClusterClient::new(redis_cluster().nodes()).expect("client");
        let mut conn = client
            .get_async_connection()
            .await
            .expect("cluster connection");
        for tag in [tenant_id.as_str(), "global"] {
            let keyslot = |key: String| redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).clone();
            let expected: i64 = keyslot(tag.to_owned())
                .query_async(&mut conn)
                .await
                .expect("CLUSTER KEYSLOT");
            let of_scope: Vec<(&String, &usize)> = stored
                .iter()
                .filter(|(k, _)| hash_tag(k) == Some(tag))
                .collect();
            assert!(of_scope.len() >= 13, "{of_scope:?}");
            let nodes: BTreeSet<usize> = of_scope.iter().map(|(_, n)| **n).collect();
            assert_eq!(nodes.len(), 1, "scope {tag} spans nodes: {of_scope:?}");
            for (key, _) in of_scope {
                let slot: i64 = keyslot(key.clone())
                    .query_async(&mut conn)
                    .await
                    .expect("CLUSTER KEYSLOT");
                assert_eq!(slot, expected, "{key}");
            }
        }
    }
}
