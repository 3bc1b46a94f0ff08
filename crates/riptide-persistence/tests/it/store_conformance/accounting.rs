//! Cache accounting: `used_bytes` is the sum of the live entries' sizes and `entries`
//! their count, after puts, overwrites, removals, expiry and concurrent writers.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use riptide_persistence::store::{PutOutcome, RemoveOutcome};

use super::{
    SHORT_TTL_MS, assert_usage, cput, entries, open, present, reported, sleep_past_short_ttl,
    tenant_keys, usage,
};
use crate::support::{Backend, on_every_backend};

on_every_backend!(
    put_accounting_matches_live_values,
    a_key_twice_in_one_batch_counts_once,
    remove_counts_only_existing_entries,
    expired_entries_drop_out_of_usage,
    concurrent_puts_keep_usage_exact,
);

async fn put_accounting_matches_live_values(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let all = entries(&keys, "ns", &["a", "b", "c"]);

    let puts = [
        cput(&keys, "ns", "a", 100, None, &[]),
        cput(&keys, "ns", "b", 200, Some(60_000), &["t"]),
    ];
    let out = store.cache_put(&keys, &puts, None).await.unwrap();
    assert_eq!(
        out,
        PutOutcome {
            evicted: vec![],
            used_bytes: 300,
            entries: 2
        }
    );
    assert_usage(&store, &keys, &all, usage(300, 2), "after two puts").await;

    // Bigger overwrite.
    let out = store
        .cache_put(&keys, &[cput(&keys, "ns", "a", 1_000, None, &[])], None)
        .await
        .unwrap();
    assert_eq!((out.used_bytes, out.entries), (1_200, 2));
    assert_usage(
        &store,
        &keys,
        &all,
        usage(1_200, 2),
        "after a bigger overwrite",
    )
    .await;

    // Smaller overwrite, and a new empty entry (size 0 still counts as an entry).
    let puts = [
        cput(&keys, "ns", "b", 5, Some(60_000), &[]),
        cput(&keys, "ns", "c", 0, None, &[]),
    ];
    let out = store.cache_put(&keys, &puts, None).await.unwrap();
    assert_eq!((out.used_bytes, out.entries), (1_005, 3));
    assert_usage(
        &store,
        &keys,
        &all,
        usage(1_005, 3),
        "after a smaller overwrite",
    )
    .await;

    // An empty batch writes nothing and reports the usage.
    let out = store.cache_put(&keys, &[], None).await.unwrap();
    assert_eq!((out.used_bytes, out.entries), (1_005, 3));
    assert!(out.evicted.is_empty());

    // Remove.
    let out = store
        .cache_remove(&keys, std::slice::from_ref(&all[0]))
        .await
        .unwrap();
    assert_eq!(
        out,
        RemoveOutcome {
            removed: 1,
            used_bytes: 5,
            entries: 2
        }
    );
    assert_usage(&store, &keys, &all, usage(5, 2), "after a remove").await;

    let out = store.cache_remove(&keys, &all).await.unwrap();
    assert_eq!(
        out,
        RemoveOutcome {
            removed: 2,
            used_bytes: 0,
            entries: 0
        }
    );
    assert_usage(&store, &keys, &all, usage(0, 0), "after removing all").await;
}

async fn a_key_twice_in_one_batch_counts_once(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let puts = [
        cput(&keys, "ns", "dup", 10, None, &["first"]),
        cput(&keys, "ns", "other", 1, None, &[]),
        cput(&keys, "ns", "dup", 30, None, &["second"]),
    ];
    let out = store.cache_put(&keys, &puts, None).await.unwrap();
    assert_eq!((out.used_bytes, out.entries), (31, 2));
    assert_eq!(
        store.get(&puts[0].key).await.unwrap().map(|v| v.len()),
        Some(30),
        "the last write of a key in a batch wins"
    );
    let all = entries(&keys, "ns", &["dup", "other"]);
    assert_usage(
        &store,
        &keys,
        &all,
        usage(31, 2),
        "after a batch with a duplicate",
    )
    .await;
    assert_eq!(
        store
            .cache_remove_tag(&keys, "first")
            .await
            .unwrap()
            .removed,
        0,
        "the overridden write's tags are not kept"
    );
    assert_eq!(
        store
            .cache_remove_tag(&keys, "second")
            .await
            .unwrap()
            .removed,
        1
    );
}

async fn remove_counts_only_existing_entries(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let puts = [
        cput(&keys, "ns", "a", 10, None, &[]),
        cput(&keys, "ns", "b", 20, Some(60_000), &[]),
        cput(&keys, "other", "c", 40, None, &[]),
    ];
    store.cache_put(&keys, &puts, None).await.unwrap();
    // A plain record of the scope is not a cache entry: cache_remove leaves it alone.
    let record = keys.record("meta");
    store
        .set(
            &record,
            b"meta",
            None,
            riptide_persistence::store::Durability::Durable,
        )
        .await
        .unwrap();

    let targets = vec![
        puts[0].key.clone(),
        super::entry(&keys, "ns", "never-written"),
        puts[2].key.clone(),
        puts[0].key.clone(),
        record.clone(),
    ];
    let out = store.cache_remove(&keys, &targets).await.unwrap();
    assert_eq!(
        out,
        RemoveOutcome {
            removed: 2,
            used_bytes: 20,
            entries: 1
        }
    );
    assert_eq!(reported(&store, &keys).await, usage(20, 1));
    assert!(present(&store, &puts[1].key).await);
    assert!(
        present(&store, &record).await,
        "a record is not a cache entry"
    );
    let again = store.cache_remove(&keys, &targets).await.unwrap();
    assert_eq!(again.removed, 0);
    assert_eq!(store.cache_remove(&keys, &[]).await.unwrap().removed, 0);
}

async fn expired_entries_drop_out_of_usage(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let puts = [
        cput(&keys, "ns", "short1", 100, Some(SHORT_TTL_MS), &["t"]),
        cput(&keys, "ns", "short2", 200, Some(SHORT_TTL_MS), &["t"]),
        cput(&keys, "gone", "short3", 400, Some(SHORT_TTL_MS), &[]),
        cput(&keys, "ns", "long", 10, Some(60_000), &["t"]),
        cput(&keys, "ns", "forever", 20, None, &[]),
    ];
    let all: Vec<String> = puts.iter().map(|p| p.key.clone()).collect();
    store.cache_put(&keys, &puts, None).await.unwrap();
    assert_usage(&store, &keys, &all, usage(730, 5), "before expiry").await;

    sleep_past_short_ttl().await;
    // No explicit remove: expiry alone takes them out of the accounting.
    assert_usage(&store, &keys, &all, usage(30, 2), "after expiry").await;
    // Expired entries are gone from tags, namespaces and removal too.
    let out = store
        .cache_remove(&keys, std::slice::from_ref(&all[0]))
        .await
        .unwrap();
    assert_eq!((out.removed, out.used_bytes, out.entries), (0, 30, 2));
    assert_eq!(
        store
            .cache_remove_namespace(&keys, "gone")
            .await
            .unwrap()
            .removed,
        0
    );
    let out = store.cache_remove_tag(&keys, "t").await.unwrap();
    assert_eq!((out.removed, out.used_bytes, out.entries), (1, 20, 1));
    // A put after expiry reports the live usage.
    let out = store
        .cache_put(&keys, &[cput(&keys, "ns", "new", 5, None, &[])], None)
        .await
        .unwrap();
    assert_eq!((out.used_bytes, out.entries), (25, 2));
}

async fn concurrent_puts_keep_usage_exact(b: Backend) {
    const TASKS: u64 = 16;
    const PUTS: usize = 50;
    const KEYS: usize = 40;
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let names: Arc<Vec<String>> = Arc::new((0..KEYS).map(|i| format!("k{i}")).collect());

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (store, keys, names) = (store.clone(), keys.clone(), names.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(0x5eed + t);
            for _ in 0..PUTS {
                // Overlapping keys: writers keep overwriting each other's entries.
                let name = &names[rng.random_range(0..KEYS)];
                let len = rng.random_range(0..4_000);
                let ttl = rng.random_bool(0.5).then_some(60_000);
                let put = cput(&keys, "ns", name, len, ttl, &["all"]);
                let out = store.cache_put(&keys, &[put], None).await.unwrap();
                assert!(out.entries as usize <= KEYS, "{out:?}");
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer task");
    }

    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let all = entries(&keys, "ns", &refs);
    let live = super::live_usage(&store, &all).await;
    assert!(live.entries > 0);
    assert_eq!(
        reported(&store, &keys).await,
        live,
        "usage after concurrent puts"
    );
    let out = store.cache_remove_tag(&keys, "all").await.unwrap();
    assert_eq!(
        (out.removed, out.used_bytes, out.entries),
        (live.entries, 0, 0)
    );
}
