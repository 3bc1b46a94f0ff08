//! Removal by tag and by namespace, and `cache_clear`.

use bytes::Bytes;
use riptide_persistence::store::{CachePut, Durability, RemoveOutcome};

use super::{
    SHORT_TTL_MS, assert_usage, cput, entries, global_keys, open, present, reported,
    sleep_past_short_ttl, tenant_keys, usage,
};
use crate::support::{Backend, on_every_backend};

on_every_backend!(
    remove_tag_removes_exactly_the_tagged_entries,
    overwrite_without_a_tag_takes_the_entry_out_of_it,
    remove_namespace_removes_exactly_that_namespace,
    clear_removes_thousands_of_entries,
    clear_leaves_other_scopes_and_records,
    clear_counts_only_live_entries,
);

async fn remove_tag_removes_exactly_the_tagged_entries(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let puts = [
        cput(
            &keys,
            "ns",
            "a",
            1,
            None,
            &["red", "blue", "url:example.com"],
        ),
        cput(&keys, "ns", "b", 2, Some(60_000), &["red"]),
        cput(&keys, "other", "c", 4, None, &["blue", "red"]),
        cput(&keys, "ns", "d", 8, None, &["blue"]),
        cput(&keys, "ns", "e", 16, None, &[]),
        cput(&keys, "ns", "f", 32, None, &["reddish"]),
    ];
    let all: Vec<String> = puts.iter().map(|p| p.key.clone()).collect();
    store.cache_put(&keys, &puts, None).await.unwrap();

    let out = store.cache_remove_tag(&keys, "red").await.unwrap();
    assert_eq!(
        out,
        RemoveOutcome {
            removed: 3,
            used_bytes: 56,
            entries: 3
        }
    );
    let live: Vec<bool> = store
        .get_many(&all)
        .await
        .unwrap()
        .iter()
        .map(Option::is_some)
        .collect();
    assert_eq!(live, vec![false, false, false, true, true, true]);
    assert_usage(&store, &keys, &all, usage(56, 3), "after removing tag red").await;

    // The removed entries left their other tags too; the rest keep theirs.
    let out = store
        .cache_remove_tag(&keys, "url:example.com")
        .await
        .unwrap();
    assert_eq!(out.removed, 0);
    let out = store.cache_remove_tag(&keys, "blue").await.unwrap();
    assert_eq!((out.removed, out.used_bytes, out.entries), (1, 48, 2));
    assert!(!present(&store, &all[3]).await);
    assert_eq!(
        store.cache_remove_tag(&keys, "red").await.unwrap().removed,
        0
    );
    assert_eq!(
        store
            .cache_remove_tag(&keys, "never-used")
            .await
            .unwrap()
            .removed,
        0
    );
    let out = store.cache_remove_tag(&keys, "reddish").await.unwrap();
    assert_eq!((out.removed, out.used_bytes, out.entries), (1, 16, 1));
    assert!(present(&store, &all[4]).await, "the untagged entry stays");
}

async fn overwrite_without_a_tag_takes_the_entry_out_of_it(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let first = cput(&keys, "ns", "x", 10, None, &["old", "kept"]);
    let other = cput(&keys, "ns", "y", 20, None, &["old"]);
    store.cache_put(&keys, &[first, other], None).await.unwrap();
    let rewritten = cput(&keys, "ns", "x", 15, None, &["kept", "new"]);
    store
        .cache_put(&keys, std::slice::from_ref(&rewritten), None)
        .await
        .unwrap();

    let out = store.cache_remove_tag(&keys, "old").await.unwrap();
    assert_eq!(
        (out.removed, out.used_bytes, out.entries),
        (1, 15, 1),
        "only y still carries `old`"
    );
    assert_eq!(
        store.get(&rewritten.key).await.unwrap().map(|v| v.len()),
        Some(15),
        "the overwritten entry is not removed by its old tag"
    );
    assert_eq!(
        store.cache_remove_tag(&keys, "new").await.unwrap().removed,
        1
    );
    assert!(!present(&store, &rewritten.key).await);
    assert_eq!(
        store.cache_remove_tag(&keys, "kept").await.unwrap().removed,
        0
    );

    // An overwrite with no tags at all leaves every tag.
    let tagged = cput(&keys, "ns", "z", 5, None, &["t"]);
    store.cache_put(&keys, &[tagged], None).await.unwrap();
    let untagged = cput(&keys, "ns", "z", 6, None, &[]);
    store
        .cache_put(&keys, std::slice::from_ref(&untagged), None)
        .await
        .unwrap();
    assert_eq!(store.cache_remove_tag(&keys, "t").await.unwrap().removed, 0);
    assert!(present(&store, &untagged.key).await);
    assert_eq!(reported(&store, &keys).await, usage(6, 1));
}

async fn remove_namespace_removes_exactly_that_namespace(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let puts = [
        cput(&keys, "n1", "a", 1, None, &["t"]),
        cput(&keys, "n1", "b", 2, Some(60_000), &[]),
        cput(&keys, "n10", "c", 4, None, &["t"]),
        cput(&keys, "n2.v-1_x", "d", 8, None, &[]),
        cput(&keys, "default", "e", 16, None, &[]),
    ];
    let all: Vec<String> = puts.iter().map(|p| p.key.clone()).collect();
    store.cache_put(&keys, &puts, None).await.unwrap();

    let out = store.cache_remove_namespace(&keys, "n1").await.unwrap();
    assert_eq!(
        out,
        RemoveOutcome {
            removed: 2,
            used_bytes: 28,
            entries: 3
        }
    );
    let live: Vec<bool> = store
        .get_many(&all)
        .await
        .unwrap()
        .iter()
        .map(Option::is_some)
        .collect();
    assert_eq!(live, vec![false, false, true, true, true]);
    assert_usage(&store, &keys, &all, usage(28, 3), "after removing n1").await;
    assert_eq!(
        store
            .cache_remove_namespace(&keys, "n1")
            .await
            .unwrap()
            .removed,
        0
    );
    assert_eq!(
        store
            .cache_remove_namespace(&keys, "nope")
            .await
            .unwrap()
            .removed,
        0
    );
    // The removed entry also left its tag.
    assert_eq!(store.cache_remove_tag(&keys, "t").await.unwrap().removed, 1);
    // The namespace works as new afterwards.
    store
        .cache_put(&keys, &[cput(&keys, "n1", "a", 3, None, &[])], None)
        .await
        .unwrap();
    let out = store.cache_remove_namespace(&keys, "n1").await.unwrap();
    assert_eq!((out.removed, out.used_bytes, out.entries), (1, 24, 2));
    let out = store
        .cache_remove_namespace(&keys, "n2.v-1_x")
        .await
        .unwrap();
    assert_eq!((out.removed, out.used_bytes, out.entries), (1, 16, 1));
}

async fn clear_removes_thousands_of_entries(b: Backend) {
    const N: usize = 3_000;
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let namespaces = ["ns", "other", "third"];
    let puts: Vec<CachePut> = (0..N)
        .map(|i| {
            let tag = format!("tag{}", i % 7);
            let ttl = (i % 2 == 0).then_some(600_000);
            cput(
                &keys,
                namespaces[i % 3],
                &format!("k{i}"),
                1 + i % 50,
                ttl,
                &[tag.as_str(), "all"],
            )
        })
        .collect();
    for chunk in puts.chunks(500) {
        store.cache_put(&keys, chunk, None).await.unwrap();
    }
    let all: Vec<String> = puts.iter().map(|p| p.key.clone()).collect();
    let total: u64 = puts.iter().map(|p| p.value.len() as u64).sum();
    assert_eq!(reported(&store, &keys).await, usage(total, N as u64));

    let out = store.cache_clear(&keys).await.unwrap();
    assert_eq!(
        out,
        RemoveOutcome {
            removed: N as u64,
            used_bytes: 0,
            entries: 0
        }
    );
    assert_usage(&store, &keys, &all, usage(0, 0), "after clear").await;
    assert_eq!(
        store.cache_remove_tag(&keys, "all").await.unwrap().removed,
        0
    );
    assert_eq!(
        store
            .cache_remove_namespace(&keys, "ns")
            .await
            .unwrap()
            .removed,
        0
    );
    assert_eq!(
        store.cache_clear(&keys).await.unwrap(),
        RemoveOutcome::default()
    );

    // The cleared scope works as new, tags included.
    let again = [cput(&keys, "ns", "k0", 9, None, &["all"])];
    let out = store.cache_put(&keys, &again, None).await.unwrap();
    assert_eq!((out.used_bytes, out.entries), (9, 1));
    assert_eq!(
        store.cache_remove_tag(&keys, "all").await.unwrap().removed,
        1
    );
}

async fn clear_leaves_other_scopes_and_records(b: Backend) {
    let (_ts, store) = open(b).await;
    let (a, other, global) = (
        tenant_keys(&store),
        tenant_keys(&store),
        global_keys(&store),
    );
    let meta = a.record("meta");
    store
        .set(&meta, b"tenant record", None, Durability::Durable)
        .await
        .unwrap();
    let records = vec![
        (a.record("usage:2025-01"), Bytes::from_static(b"42"), None),
        (a.record("session"), Bytes::from_static(b"s"), Some(60_000)),
    ];
    store.set_many(&records, Durability::Durable).await.unwrap();

    // The same caller keys, tags and namespaces in all three scopes.
    let mut written = Vec::new();
    for (keys, len) in [(&a, 10), (&other, 20), (&global, 40)] {
        let puts = [
            cput(keys, "ns", "x", len, None, &["t"]),
            cput(keys, "m", "y", len, Some(60_000), &[]),
        ];
        store.cache_put(keys, &puts, None).await.unwrap();
        written.push(puts.map(|p| p.key));
    }

    let out = store.cache_clear(&a).await.unwrap();
    assert_eq!(
        out,
        RemoveOutcome {
            removed: 2,
            used_bytes: 0,
            entries: 0
        }
    );
    assert_usage(&store, &a, &written[0], usage(0, 0), "cleared scope").await;
    assert_eq!(
        store.get(&meta).await.unwrap().as_deref(),
        Some(&b"tenant record"[..]),
        "clear removes cache entries only"
    );
    let kept = store
        .get_many(&[records[0].0.clone(), records[1].0.clone()])
        .await
        .unwrap();
    assert_eq!(
        kept,
        vec![Some(records[0].1.clone()), Some(records[1].1.clone())]
    );

    assert_usage(&store, &other, &written[1], usage(40, 2), "other tenant").await;
    assert_usage(&store, &global, &written[2], usage(80, 2), "global scope").await;
    assert_eq!(
        store.cache_remove_tag(&other, "t").await.unwrap().removed,
        1
    );
    assert_eq!(
        store
            .cache_remove_namespace(&global, "m")
            .await
            .unwrap()
            .removed,
        1
    );
    assert_eq!(store.cache_clear(&global).await.unwrap().removed, 1);
    assert!(present(&store, &written[1][1]).await);
}

/// `RemoveOutcome::removed` counts live entries: an entry whose TTL has passed was not
/// removed by the clear, it had expired already.
async fn clear_counts_only_live_entries(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let puts = [
        cput(&keys, "ns", "live1", 10, None, &[]),
        cput(&keys, "ns", "live2", 20, Some(60_000), &[]),
        cput(&keys, "ns", "short1", 30, Some(SHORT_TTL_MS), &[]),
        cput(&keys, "ns", "short2", 40, Some(SHORT_TTL_MS), &[]),
        cput(&keys, "ns", "short3", 50, Some(SHORT_TTL_MS), &[]),
    ];
    store.cache_put(&keys, &puts, None).await.unwrap();
    sleep_past_short_ttl().await;
    let out = store.cache_clear(&keys).await.unwrap();
    assert_eq!(
        out,
        RemoveOutcome {
            removed: 2,
            used_bytes: 0,
            entries: 0
        }
    );
    let all = entries(
        &keys,
        "ns",
        &["live1", "live2", "short1", "short2", "short3"],
    );
    assert_usage(&store, &keys, &all, usage(0, 0), "after clear").await;
}
