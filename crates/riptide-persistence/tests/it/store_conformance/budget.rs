//! The scope budget: eviction order, the batch's own entries, over-budget batches, and
//! other scopes.

use riptide_persistence::store::StoreError;

use super::{
    assert_usage, cput, entries, entry, global_keys, open, present, reported, tenant_keys, usage,
};
use crate::support::{Backend, on_every_backend};

on_every_backend!(
    budget_evicts_soonest_expiring_first_and_no_ttl_last,
    budget_never_evicts_the_current_batch,
    over_budget_batch_changes_nothing,
    budget_never_touches_another_scope,
);

/// `v` sorted (ties in the eviction order are broken by key).
fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn budget_evicts_soonest_expiring_first_and_no_ttl_last(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let puts = [
        cput(&keys, "ns", "late", 200, Some(900_000), &["t"]),
        cput(&keys, "ns", "forever2", 200, None, &[]),
        cput(&keys, "ns", "soon", 200, Some(100_000), &[]),
        cput(&keys, "ns", "forever1", 200, None, &[]),
        // One batch, one TTL: the same expiry, so key order decides.
        cput(&keys, "ns", "tie-b", 100, Some(500_000), &[]),
        cput(&keys, "other", "tie-a", 100, Some(500_000), &[]),
    ];
    let out = store.cache_put(&keys, &puts, Some(1_000)).await.unwrap();
    assert_eq!((out.used_bytes, out.entries), (1_000, 6), "exactly full");
    assert!(out.evicted.is_empty(), "{:?}", out.evicted);

    // 450 more bytes: soon (200), the tie (100 + 100), then late (200) frees 600.
    let out = store
        .cache_put(
            &keys,
            &[cput(&keys, "ns", "new", 450, None, &[])],
            Some(1_000),
        )
        .await
        .unwrap();
    let mut expected = vec![entry(&keys, "ns", "soon")];
    expected.extend(sorted(vec![
        entry(&keys, "ns", "tie-b"),
        entry(&keys, "other", "tie-a"),
    ]));
    expected.push(entry(&keys, "ns", "late"));
    assert_eq!(out.evicted, expected);
    assert_eq!((out.used_bytes, out.entries), (850, 3));
    for key in &expected {
        assert!(!present(&store, key).await, "evicted {key} still readable");
    }
    assert_eq!(
        store.cache_remove_tag(&keys, "t").await.unwrap().removed,
        0,
        "an evicted entry leaves its tags"
    );

    // Only entries without TTL are left besides the batch: evicted in key order.
    let out = store
        .cache_put(
            &keys,
            &[cput(&keys, "ns", "new", 900, None, &[])],
            Some(1_000),
        )
        .await
        .unwrap();
    assert_eq!(
        out.evicted,
        sorted(entries(&keys, "ns", &["forever1", "forever2"]))
    );
    assert_eq!((out.used_bytes, out.entries), (900, 1));
    let mut all: Vec<String> = puts.iter().map(|p| p.key.clone()).collect();
    all.push(entry(&keys, "ns", "new"));
    assert_usage(&store, &keys, &all, usage(900, 1), "after evictions").await;
}

async fn budget_never_evicts_the_current_batch(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let existing = [
        cput(&keys, "ns", "x", 500, Some(100_000), &[]),
        cput(&keys, "ns", "y", 500, Some(900_000), &[]),
    ];
    store
        .cache_put(&keys, &existing, Some(1_000))
        .await
        .unwrap();

    // x expires first, but it is rewritten by this batch: y is evicted instead.
    let batch = [
        cput(&keys, "ns", "x", 600, Some(100_000), &[]),
        cput(&keys, "ns", "n", 400, None, &[]),
    ];
    let out = store.cache_put(&keys, &batch, Some(1_000)).await.unwrap();
    assert_eq!(out.evicted, vec![existing[1].key.clone()]);
    assert_eq!((out.used_bytes, out.entries), (1_000, 2));
    assert_eq!(
        store.get(&batch[0].key).await.unwrap().map(|v| v.len()),
        Some(600)
    );
    assert!(present(&store, &batch[1].key).await);

    // A batch exactly the size of the budget evicts everything else, never itself.
    let whole = [
        cput(&keys, "ns", "p", 300, Some(1_000), &[]),
        cput(&keys, "ns", "q", 700, Some(2_000), &[]),
    ];
    let out = store.cache_put(&keys, &whole, Some(1_000)).await.unwrap();
    // x (TTL) goes before n (no TTL), although p and q expire sooner than both.
    assert_eq!(
        out.evicted,
        vec![batch[0].key.clone(), batch[1].key.clone()]
    );
    assert_eq!((out.used_bytes, out.entries), (1_000, 2));
    let all = entries(&keys, "ns", &["x", "y", "n", "p", "q"]);
    assert_usage(&store, &keys, &all, usage(1_000, 2), "after a full batch").await;
}

async fn over_budget_batch_changes_nothing(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let keep = cput(&keys, "ns", "keep", 100, None, &["t"]);
    let soon = cput(&keys, "ns", "soon", 200, Some(100_000), &[]);
    store
        .cache_put(&keys, &[keep.clone(), soon.clone()], None)
        .await
        .unwrap();
    let before_usage = reported(&store, &keys).await;
    let before_keep = store.get(&keep.key).await.unwrap();

    let batch = [
        cput(&keys, "ns", "x", 600, None, &["t"]),
        cput(&keys, "ns", "keep", 500, None, &[]),
    ];
    let err = store
        .cache_put(&keys, &batch, Some(1_000))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::OverBudget {
                needed: 1_100,
                budget: 1_000
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    let single = [cput(&keys, "ns", "huge", 1_001, None, &[])];
    let err = store
        .cache_put(&keys, &single, Some(1_000))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::OverBudget {
                needed: 1_001,
                budget: 1_000
            }
        ),
        "{err:?}"
    );

    assert_eq!(reported(&store, &keys).await, before_usage);
    assert_eq!(store.get(&keep.key).await.unwrap(), before_keep);
    assert!(present(&store, &soon.key).await, "nothing was evicted");
    assert!(!present(&store, &batch[0].key).await);
    assert!(!present(&store, &single[0].key).await);
    assert_eq!(
        store.cache_remove_tag(&keys, "t").await.unwrap().removed,
        1,
        "tags unchanged: only `keep` carries t"
    );
}

async fn budget_never_touches_another_scope(b: Backend) {
    let (_ts, store) = open(b).await;
    let (mine, other, global) = (
        tenant_keys(&store),
        tenant_keys(&store),
        global_keys(&store),
    );
    // The other scopes hold entries that would be first in any global eviction order.
    let mut theirs = Vec::new();
    for keys in [&other, &global] {
        let puts = [
            cput(keys, "ns", "a", 300, Some(1_000), &[]),
            cput(keys, "ns", "b", 300, Some(2_000), &[]),
        ];
        store.cache_put(keys, &puts, None).await.unwrap();
        theirs.push(puts.map(|p| p.key));
    }
    let old = cput(&mine, "ns", "old", 400, Some(600_000), &[]);
    store
        .cache_put(&mine, std::slice::from_ref(&old), Some(500))
        .await
        .unwrap();
    let out = store
        .cache_put(
            &mine,
            &[cput(&mine, "ns", "new", 400, None, &[])],
            Some(500),
        )
        .await
        .unwrap();
    assert_eq!(out.evicted, vec![old.key.clone()]);
    assert_eq!((out.used_bytes, out.entries), (400, 1));
    assert_usage(&store, &other, &theirs[0], usage(600, 2), "other tenant").await;
    assert_usage(&store, &global, &theirs[1], usage(600, 2), "global scope").await;
}
