//! Records, sorted sets, counters and GCRA rate limiting: the primitives the tenant
//! manager, usage metering and sync are built on, with the same answers on every backend.
//!
//! Every key of a test comes from one tenant's [`ScopeKeys`], so on a Cluster the keys
//! of one multi-key call (`gcra` with overrides, `counters_add_once` with its dedupe key)
//! share a slot. TTL tests sleep in real time (Redis expires by its own clock); GCRA tests
//! pass an explicit `now_ms`, so they are deterministic.

use std::sync::Arc;

use riptide_persistence::SharedStore;
use riptide_persistence::store::{Durability, GcraLimit, StoreError};

use super::{SHORT_TTL_MS, open, sleep_past_short_ttl, tenant_keys};
use crate::support::{Backend, on_every_backend};

on_every_backend!(
    set_if_absent_writes_only_absent_or_expired_keys,
    set_if_absent_refuses_a_zero_ttl,
    compare_and_swap_compares_writes_and_deletes,
    compare_and_swap_treats_expired_as_absent_and_writes_without_ttl,
    concurrent_compare_and_swap_increments_are_exact,
    zset_orders_by_score_then_member,
    zset_add_updates_and_remove_counts,
    zset_ranges_by_offset_limit_and_score,
    zset_remove_by_score_is_inclusive,
    zset_absent_key_reads_as_empty,
    zset_scores_beyond_2_pow_53_are_refused,
    zset_members_may_be_any_utf8_up_to_kilobytes,
    counters_set_get_and_delete_fields,
    counters_add_once_applies_each_batch_once,
    counters_add_once_saturates,
    counters_add_once_forgets_ids_after_the_window,
    concurrent_counters_add_once_sums_exactly,
    delete_removes_zsets_and_counters,
    gcra_admits_the_burst_then_the_rate,
    gcra_overrides_apply_at_once,
    gcra_cost_above_burst_is_never_admitted,
    gcra_concurrent_callers_admit_exactly_the_burst,
    gcra_keys_are_independent,
);

/// A fixed "now" for GCRA tests, far from 0 (the caller's clock, not the server's).
const NOW: u64 = 1_700_000_000_000;

fn owned(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(m, s)| ((*m).to_owned(), *s)).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// `rate` per minute with `burst`, optionally overridden by the counters record
/// `(key, "rate", "burst")`.
fn per_minute(rate: u64, burst: u64, overrides: Option<&str>) -> GcraLimit {
    GcraLimit {
        rate,
        period_ms: 60_000,
        burst,
        overrides: overrides.map(|k| (k.to_owned(), "rate".to_owned(), "burst".to_owned())),
    }
}

async fn value(store: &SharedStore, key: &str) -> Option<Vec<u8>> {
    store.get(key).await.expect("get").map(|v| v.to_vec())
}

// ---- set_if_absent ----

async fn set_if_absent_writes_only_absent_or_expired_keys(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let (k, short) = (keys.record("nx"), keys.record("nx-short"));
    for durability in [Durability::Durable, Durability::Cache] {
        let k = format!("{k}-{durability:?}");
        assert!(
            store
                .set_if_absent(&k, b"first", None, durability)
                .await
                .unwrap()
        );
        assert!(
            !store
                .set_if_absent(&k, b"second", Some(60_000), durability)
                .await
                .unwrap(),
            "present: not written"
        );
        assert_eq!(value(&store, &k).await.as_deref(), Some(&b"first"[..]));
    }

    assert!(
        store
            .set_if_absent(&short, b"1", Some(SHORT_TTL_MS), Durability::Cache)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_if_absent(&short, b"2", None, Durability::Cache)
            .await
            .unwrap()
    );
    sleep_past_short_ttl().await;
    assert_eq!(value(&store, &short).await, None, "its TTL applied");
    assert!(
        store
            .set_if_absent(&short, b"3", None, Durability::Cache)
            .await
            .unwrap(),
        "expired: absent again"
    );
    assert_eq!(value(&store, &short).await.as_deref(), Some(&b"3"[..]));
}

async fn set_if_absent_refuses_a_zero_ttl(b: Backend) {
    let (_ts, store) = open(b).await;
    let k = tenant_keys(&store).record("nx-zero");
    let err = store
        .set_if_absent(&k, b"v", Some(0), Durability::Cache)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err}");
    assert_eq!(value(&store, &k).await, None, "nothing written");
}

// ---- compare_and_swap ----

async fn compare_and_swap_compares_writes_and_deletes(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let k = keys.record("cas");
    let d = Durability::Durable;

    assert!(
        !store
            .compare_and_swap(&k, Some(b"x"), Some(b"y"), d)
            .await
            .unwrap(),
        "absent does not match a value"
    );
    assert_eq!(value(&store, &k).await, None);
    assert!(
        store
            .compare_and_swap(&k, None, Some(b"1"), d)
            .await
            .unwrap()
    );
    assert_eq!(value(&store, &k).await.as_deref(), Some(&b"1"[..]));
    assert!(
        !store
            .compare_and_swap(&k, None, Some(b"x"), d)
            .await
            .unwrap(),
        "present does not match absent"
    );
    assert!(
        !store
            .compare_and_swap(&k, Some(b"2"), Some(b"x"), d)
            .await
            .unwrap(),
        "mismatch"
    );
    assert!(
        !store
            .compare_and_swap(&k, Some(b"1\0"), Some(b"x"), d)
            .await
            .unwrap(),
        "a longer value does not match"
    );
    assert_eq!(value(&store, &k).await.as_deref(), Some(&b"1"[..]));
    assert!(
        store
            .compare_and_swap(&k, Some(b"1"), Some(b"2"), d)
            .await
            .unwrap()
    );
    assert_eq!(value(&store, &k).await.as_deref(), Some(&b"2"[..]));
    assert!(
        store
            .compare_and_swap(&k, Some(b"2"), Some(b""), Durability::Cache)
            .await
            .unwrap()
    );
    assert_eq!(
        value(&store, &k).await.as_deref(),
        Some(&b""[..]),
        "an empty value is present"
    );
    assert!(
        !store
            .compare_and_swap(&k, None, Some(b"x"), d)
            .await
            .unwrap(),
        "an empty value is not absent"
    );
    assert!(
        !store
            .compare_and_swap(&k, Some(b"2"), None, d)
            .await
            .unwrap()
    );
    assert!(
        store
            .compare_and_swap(&k, Some(b""), None, d)
            .await
            .unwrap()
    );
    assert_eq!(value(&store, &k).await, None, "deleted");
}

async fn compare_and_swap_treats_expired_as_absent_and_writes_without_ttl(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let (expiring, replaced) = (keys.record("cas-exp"), keys.record("cas-ttl"));
    let d = Durability::Cache;
    store
        .set(&expiring, b"old", Some(SHORT_TTL_MS), d)
        .await
        .unwrap();
    store
        .set(&replaced, b"old", Some(SHORT_TTL_MS), d)
        .await
        .unwrap();
    assert!(
        store
            .compare_and_swap(&replaced, Some(b"old"), Some(b"new"), d)
            .await
            .unwrap()
    );
    sleep_past_short_ttl().await;
    assert_eq!(
        value(&store, &replaced).await.as_deref(),
        Some(&b"new"[..]),
        "the swapped-in value has no TTL"
    );
    assert!(
        !store
            .compare_and_swap(&expiring, Some(b"old"), Some(b"x"), d)
            .await
            .unwrap(),
        "an expired value no longer matches"
    );
    assert!(
        store
            .compare_and_swap(&expiring, None, Some(b"fresh"), d)
            .await
            .unwrap(),
        "an expired value is absent"
    );
    assert_eq!(
        value(&store, &expiring).await.as_deref(),
        Some(&b"fresh"[..])
    );
}

async fn concurrent_compare_and_swap_increments_are_exact(b: Backend) {
    const TASKS: u64 = 16;
    const EACH: u64 = 10;
    let (_ts, store) = open(b).await;
    let k = tenant_keys(&store).record("cas-counter");
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (store, k) = (store.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            let mut retries = 0u64;
            for _ in 0..EACH {
                loop {
                    let current = store.get(&k).await.unwrap();
                    let n: u64 = match &current {
                        Some(v) => std::str::from_utf8(v).unwrap().parse().unwrap(),
                        None => 0,
                    };
                    let next = (n + 1).to_string();
                    if store
                        .compare_and_swap(
                            &k,
                            current.as_deref(),
                            Some(next.as_bytes()),
                            Durability::Cache,
                        )
                        .await
                        .unwrap()
                    {
                        break;
                    }
                    retries += 1;
                    assert!(retries < 100_000, "CAS never succeeded");
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total = (TASKS * EACH).to_string();
    assert_eq!(value(&store, &k).await.as_deref(), Some(total.as_bytes()));
}

// ---- sorted sets ----

async fn zset_orders_by_score_then_member(b: Backend) {
    let (_ts, store) = open(b).await;
    let z = tenant_keys(&store).record("z-order");
    store
        .zset_add(
            &z,
            &owned(&[
                ("b", 1),
                ("é", 1),
                ("a", 1),
                ("d", 10),
                ("c", -5),
                ("B", 1),
                ("ts", 1_700_000_000_000),
                ("neg-ts", -1_700_000_000_000),
            ]),
        )
        .await
        .unwrap();
    // Equal scores: members in byte order ("B" < "a" < "b" < "é").
    assert_eq!(
        store.zset_range(&z, 0, 100).await.unwrap(),
        owned(&[
            ("neg-ts", -1_700_000_000_000),
            ("c", -5),
            ("B", 1),
            ("a", 1),
            ("b", 1),
            ("é", 1),
            ("d", 10),
            ("ts", 1_700_000_000_000),
        ])
    );
    assert_eq!(store.zset_len(&z).await.unwrap(), 8);
}

async fn zset_add_updates_and_remove_counts(b: Backend) {
    let (_ts, store) = open(b).await;
    let z = tenant_keys(&store).record("z-update");
    store
        .zset_add(&z, &owned(&[("a", 1), ("b", 2), ("c", 3)]))
        .await
        .unwrap();
    store
        .zset_add(&z, &owned(&[("a", 20), ("d", 0)]))
        .await
        .unwrap();
    assert_eq!(
        store.zset_len(&z).await.unwrap(),
        4,
        "an update adds no member"
    );
    assert_eq!(store.zset_score(&z, "a").await.unwrap(), Some(20));
    assert_eq!(store.zset_score(&z, "d").await.unwrap(), Some(0));
    assert_eq!(store.zset_score(&z, "zz").await.unwrap(), None);
    assert_eq!(
        store.zset_range(&z, 0, 10).await.unwrap(),
        owned(&[("d", 0), ("b", 2), ("c", 3), ("a", 20)])
    );
    // An update to a lower score moves the member back.
    store.zset_add(&z, &owned(&[("a", -1)])).await.unwrap();
    assert_eq!(
        store.zset_range(&z, 0, 1).await.unwrap(),
        owned(&[("a", -1)])
    );

    assert_eq!(
        store
            .zset_remove(&z, &strings(&["a", "missing", "c"]))
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.zset_score(&z, "a").await.unwrap(), None);
    assert_eq!(store.zset_len(&z).await.unwrap(), 2);
    assert_eq!(
        store.zset_range(&z, 0, 10).await.unwrap(),
        owned(&[("d", 0), ("b", 2)])
    );
    assert_eq!(store.zset_remove(&z, &strings(&["a"])).await.unwrap(), 0);
    assert_eq!(
        store.zset_remove(&z, &strings(&["d", "b"])).await.unwrap(),
        2
    );
    assert_eq!(store.zset_len(&z).await.unwrap(), 0);
    assert!(store.zset_range(&z, 0, 10).await.unwrap().is_empty());
}

async fn zset_ranges_by_offset_limit_and_score(b: Backend) {
    let (_ts, store) = open(b).await;
    let z = tenant_keys(&store).record("z-range");
    // m0..m9 with scores 0, 0, 10, 10, 20, 20, ...: pairs of equal scores.
    let members: Vec<(String, i64)> = (0..10).map(|i| (format!("m{i}"), (i / 2) * 10)).collect();
    store.zset_add(&z, &members).await.unwrap();
    let names = |v: Vec<(String, i64)>| v.into_iter().map(|(m, _)| m).collect::<Vec<_>>();

    assert_eq!(
        names(store.zset_range(&z, 0, 3).await.unwrap()),
        strings(&["m0", "m1", "m2"])
    );
    assert_eq!(
        names(store.zset_range(&z, 3, 2).await.unwrap()),
        strings(&["m3", "m4"])
    );
    assert_eq!(
        names(store.zset_range(&z, 8, 100).await.unwrap()),
        strings(&["m8", "m9"])
    );
    assert!(
        store.zset_range(&z, 10, 5).await.unwrap().is_empty(),
        "offset past the end"
    );
    assert!(
        store.zset_range(&z, 0, 0).await.unwrap().is_empty(),
        "limit 0"
    );
    assert_eq!(store.zset_range(&z, 0, u64::MAX).await.unwrap(), members);
    assert!(
        store
            .zset_range(&z, u64::MAX, u64::MAX)
            .await
            .unwrap()
            .is_empty()
    );

    // Inclusive bounds.
    assert_eq!(
        store.zset_range_by_score(&z, 10, 30, 100).await.unwrap(),
        owned(&[
            ("m2", 10),
            ("m3", 10),
            ("m4", 20),
            ("m5", 20),
            ("m6", 30),
            ("m7", 30)
        ])
    );
    assert_eq!(
        names(store.zset_range_by_score(&z, 11, 29, 100).await.unwrap()),
        strings(&["m4", "m5"])
    );
    assert_eq!(
        names(store.zset_range_by_score(&z, 10, 30, 3).await.unwrap()),
        strings(&["m2", "m3", "m4"]),
        "limit keeps the lowest"
    );
    assert_eq!(
        names(store.zset_range_by_score(&z, 40, 40, 100).await.unwrap()),
        strings(&["m8", "m9"])
    );
    assert!(
        store
            .zset_range_by_score(&z, 41, 1_000, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .zset_range_by_score(&z, -100, -1, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .zset_range_by_score(&z, 30, 10, 100)
            .await
            .unwrap()
            .is_empty(),
        "min > max"
    );
    assert!(
        store
            .zset_range_by_score(&z, 0, 40, 0)
            .await
            .unwrap()
            .is_empty(),
        "limit 0"
    );
    assert_eq!(
        store
            .zset_range_by_score(&z, i64::MIN, i64::MAX, u64::MAX)
            .await
            .unwrap(),
        members,
        "the whole i64 range"
    );
}

async fn zset_remove_by_score_is_inclusive(b: Backend) {
    let (_ts, store) = open(b).await;
    let z = tenant_keys(&store).record("z-trim");
    store
        .zset_add(
            &z,
            &owned(&[("a", 1), ("b", 2), ("c", 2), ("d", 3), ("e", 4), ("f", -7)]),
        )
        .await
        .unwrap();
    assert_eq!(store.zset_remove_by_score(&z, 2, 3).await.unwrap(), 3);
    assert_eq!(
        store.zset_range(&z, 0, 10).await.unwrap(),
        owned(&[("f", -7), ("a", 1), ("e", 4)])
    );
    assert_eq!(store.zset_remove_by_score(&z, 5, 100).await.unwrap(), 0);
    assert_eq!(
        store.zset_remove_by_score(&z, 4, 1).await.unwrap(),
        0,
        "min > max"
    );
    assert_eq!(store.zset_len(&z).await.unwrap(), 3);
    // Trimming everything older than a cutoff, as heartbeats and logs do.
    assert_eq!(
        store.zset_remove_by_score(&z, i64::MIN, 1).await.unwrap(),
        2
    );
    assert_eq!(
        store.zset_range(&z, 0, 10).await.unwrap(),
        owned(&[("e", 4)])
    );
    assert_eq!(
        store
            .zset_remove_by_score(&z, i64::MIN, i64::MAX)
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.zset_len(&z).await.unwrap(), 0);
}

async fn zset_absent_key_reads_as_empty(b: Backend) {
    let (_ts, store) = open(b).await;
    let z = tenant_keys(&store).record("z-none");
    assert!(store.zset_range(&z, 0, 10).await.unwrap().is_empty());
    assert!(
        store
            .zset_range_by_score(&z, i64::MIN, i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.zset_score(&z, "m").await.unwrap(), None);
    assert_eq!(store.zset_len(&z).await.unwrap(), 0);
    assert_eq!(store.zset_remove(&z, &strings(&["m"])).await.unwrap(), 0);
    assert_eq!(store.zset_remove_by_score(&z, 0, 10).await.unwrap(), 0);
}

async fn zset_scores_beyond_2_pow_53_are_refused(b: Backend) {
    // Redis scores are doubles, exact up to 2^53: both backends accept exactly that range.
    const MAX: i64 = 1 << 53;
    let (_ts, store) = open(b).await;
    let z = tenant_keys(&store).record("z-bounds");
    store
        .zset_add(&z, &owned(&[("max", MAX), ("min", -MAX)]))
        .await
        .unwrap();
    assert_eq!(
        store.zset_range(&z, 0, 10).await.unwrap(),
        owned(&[("min", -MAX), ("max", MAX)])
    );
    for bad in [MAX + 1, -MAX - 1, i64::MAX, i64::MIN] {
        let err = store
            .zset_add(&z, &owned(&[("ok", 0), ("bad", bad)]))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{bad}: {err}");
    }
    assert_eq!(
        store.zset_len(&z).await.unwrap(),
        2,
        "a refused batch writes nothing"
    );
    assert_eq!(store.zset_score(&z, "ok").await.unwrap(), None);
}

async fn zset_members_may_be_any_utf8_up_to_kilobytes(b: Backend) {
    let (_ts, store) = open(b).await;
    let z = tenant_keys(&store).record("z-utf8");
    let long = "ü".repeat(2_000); // 4 KB
    let odd = [
        "",
        " ",
        "a b",
        "line\nbreak",
        "nul\0byte",
        "{tag}",
        "日本語",
        "emoji 🦀",
        "x:y:z",
    ];
    let mut members: Vec<(String, i64)> = odd.iter().map(|m| ((*m).to_owned(), 5)).collect();
    members.push((long.clone(), 5));
    store.zset_add(&z, &members).await.unwrap();
    assert_eq!(store.zset_len(&z).await.unwrap(), members.len() as u64);
    members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    assert_eq!(store.zset_range(&z, 0, 100).await.unwrap(), members);
    for (member, _) in &members {
        assert_eq!(
            store.zset_score(&z, member).await.unwrap(),
            Some(5),
            "{member:?}"
        );
    }
    assert_eq!(
        store.zset_remove(&z, &[long, String::new()]).await.unwrap(),
        2
    );
    assert_eq!(store.zset_len(&z).await.unwrap(), odd.len() as u64 - 1);
}

// ---- counters ----

async fn counters_set_get_and_delete_fields(b: Backend) {
    let (_ts, store) = open(b).await;
    let c = tenant_keys(&store).record("counters");
    assert!(store.counters_get(&c).await.unwrap().is_empty(), "absent");
    store
        .counters_set(
            &c,
            &[
                ("b".into(), Some(2)),
                ("a".into(), Some(1)),
                ("z".into(), Some(-9)),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        store.counters_get(&c).await.unwrap(),
        owned(&[("a", 1), ("b", 2), ("z", -9)]),
        "sorted by name"
    );
    store
        .counters_set(
            &c,
            &[
                ("a".into(), None),
                ("b".into(), Some(i64::MAX)),
                ("c".into(), Some(i64::MIN)),
                ("missing".into(), None),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        store.counters_get(&c).await.unwrap(),
        owned(&[("b", i64::MAX), ("c", i64::MIN), ("z", -9)]),
        "absolute values, None deletes"
    );
    store
        .counters_set(
            &c,
            &[("b".into(), None), ("c".into(), None), ("z".into(), None)],
        )
        .await
        .unwrap();
    assert!(
        store.counters_get(&c).await.unwrap().is_empty(),
        "no fields: absent"
    );
    store
        .counters_set(&c, &[("zero".into(), Some(0))])
        .await
        .unwrap();
    assert_eq!(
        store.counters_get(&c).await.unwrap(),
        owned(&[("zero", 0)]),
        "0 is a value"
    );
}

async fn counters_add_once_applies_each_batch_once(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let (c, dedupe) = (keys.record("usage"), keys.record("usage-applied"));
    store
        .counters_set(&c, &[("requests".into(), Some(100))])
        .await
        .unwrap();
    let batch = owned(&[("requests", 5), ("bytes", 1_000)]);
    assert!(
        store
            .counters_add_once(&c, &dedupe, "b1", &batch, 60_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .counters_add_once(&c, &dedupe, "b1", &batch, 60_000)
            .await
            .unwrap(),
        "the same batch again is skipped"
    );
    assert_eq!(
        store.counters_get(&c).await.unwrap(),
        owned(&[("bytes", 1_000), ("requests", 105)])
    );
    assert!(
        store
            .counters_add_once(
                &c,
                &dedupe,
                "b2",
                &owned(&[("requests", -3), ("new", 1)]),
                60_000
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .counters_add_once(&c, &dedupe, "b2", &owned(&[("requests", 1_000)]), 60_000)
            .await
            .unwrap(),
        "an applied id is skipped whatever its increments"
    );
    assert_eq!(
        store.counters_get(&c).await.unwrap(),
        owned(&[("bytes", 1_000), ("new", 1), ("requests", 102)])
    );
    // The same id under another dedupe key, or on another record, is another batch.
    let (other, other_dedupe) = (keys.record("usage-2"), keys.record("usage-2-applied"));
    assert!(
        store
            .counters_add_once(&other, &other_dedupe, "b1", &batch, 60_000)
            .await
            .unwrap()
    );
    assert_eq!(
        store.counters_get(&other).await.unwrap(),
        owned(&[("bytes", 1_000), ("requests", 5)])
    );
}

async fn counters_add_once_saturates(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let (c, dedupe) = (keys.record("sat"), keys.record("sat-applied"));
    store
        .counters_set(
            &c,
            &[
                ("hi".into(), Some(i64::MAX - 1)),
                ("lo".into(), Some(i64::MIN + 1)),
            ],
        )
        .await
        .unwrap();
    let batch = owned(&[("hi", 5), ("lo", -5), ("fresh", i64::MAX)]);
    assert!(
        store
            .counters_add_once(&c, &dedupe, "s1", &batch, 60_000)
            .await
            .unwrap()
    );
    assert_eq!(
        store.counters_get(&c).await.unwrap(),
        owned(&[("fresh", i64::MAX), ("hi", i64::MAX), ("lo", i64::MIN)])
    );
    assert!(
        store
            .counters_add_once(
                &c,
                &dedupe,
                "s2",
                &owned(&[("hi", i64::MAX), ("fresh", -1)]),
                60_000
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store.counters_get(&c).await.unwrap(),
        owned(&[("fresh", i64::MAX - 1), ("hi", i64::MAX), ("lo", i64::MIN)])
    );
}

async fn counters_add_once_forgets_ids_after_the_window(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let (c, dedupe) = (keys.record("window"), keys.record("window-applied"));
    let batch = owned(&[("n", 1)]);
    assert!(
        store
            .counters_add_once(&c, &dedupe, "w", &batch, SHORT_TTL_MS)
            .await
            .unwrap()
    );
    assert!(
        !store
            .counters_add_once(&c, &dedupe, "w", &batch, SHORT_TTL_MS)
            .await
            .unwrap()
    );
    sleep_past_short_ttl().await;
    assert!(
        store
            .counters_add_once(&c, &dedupe, "w", &batch, SHORT_TTL_MS)
            .await
            .unwrap(),
        "outside the window the id is new again"
    );
    assert_eq!(store.counters_get(&c).await.unwrap(), owned(&[("n", 2)]));
}

async fn concurrent_counters_add_once_sums_exactly(b: Backend) {
    const TASKS: i64 = 8;
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let (c, dedupe) = (keys.record("conc"), keys.record("conc-applied"));
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let (store, c, dedupe) = (store.clone(), c.clone(), dedupe.clone());
        tasks.push(tokio::spawn(async move {
            let batch = owned(&[("n", 1), ("sum", i), ("shared", 10)]);
            let id = format!("batch-{i}");
            let first = store.counters_add_once(&c, &dedupe, &id, &batch, 60_000);
            let applied = first.await.unwrap();
            // A retry of the same batch, as a flush that timed out would send.
            let retried = store.counters_add_once(&c, &dedupe, &id, &batch, 60_000);
            (applied, retried.await.unwrap())
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), (true, false));
    }
    assert_eq!(
        store.counters_get(&c).await.unwrap(),
        owned(&[
            ("n", TASKS),
            ("shared", 10 * TASKS),
            ("sum", (0..TASKS).sum())
        ])
    );
}

async fn delete_removes_zsets_and_counters(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let (z, c, v) = (
        keys.record("del-z"),
        keys.record("del-c"),
        keys.record("del-v"),
    );
    store.zset_add(&z, &owned(&[("m", 1)])).await.unwrap();
    store
        .counters_set(&c, &[("f".into(), Some(1))])
        .await
        .unwrap();
    store
        .set(&v, b"1", None, Durability::Durable)
        .await
        .unwrap();
    let all = vec![z.clone(), c.clone(), v.clone(), keys.record("del-none")];
    assert_eq!(store.delete(&all).await.unwrap(), 3);
    assert_eq!(store.zset_len(&z).await.unwrap(), 0);
    assert!(store.counters_get(&c).await.unwrap().is_empty());
    assert_eq!(value(&store, &v).await, None);
    assert_eq!(store.delete(&all).await.unwrap(), 0);

    // Deleting the dedupe key forgets the batch ids applied under it.
    let (usage, dedupe) = (keys.record("del-usage"), keys.record("del-usage-applied"));
    let batch = owned(&[("n", 1)]);
    assert!(
        store
            .counters_add_once(&usage, &dedupe, "x", &batch, 60_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .counters_add_once(&usage, &dedupe, "x", &batch, 60_000)
            .await
            .unwrap()
    );
    assert_eq!(
        store.delete(std::slice::from_ref(&dedupe)).await.unwrap(),
        1
    );
    assert!(
        store
            .counters_add_once(&usage, &dedupe, "x", &batch, 60_000)
            .await
            .unwrap()
    );
    assert_eq!(
        store.counters_get(&usage).await.unwrap(),
        owned(&[("n", 2)])
    );
}

// ---- GCRA ----

async fn gcra_admits_the_burst_then_the_rate(b: Backend) {
    let (_ts, store) = open(b).await;
    let k = tenant_keys(&store).record("rl");
    // 10 per minute: one every 6 s; a burst of 5.
    let limit = per_minute(10, 5, None);
    for expected_remaining in (0..5).rev() {
        let d = store.gcra(&k, &limit, NOW, 1).await.unwrap();
        assert!(d.allowed);
        assert_eq!(
            (d.limit, d.burst, d.remaining, d.retry_after_ms),
            (10, 5, expected_remaining, 0)
        );
    }
    let d = store.gcra(&k, &limit, NOW, 1).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(
        (d.remaining, d.retry_after_ms, d.reset_after_ms),
        (0, 6_000, 30_000)
    );
    let d = store.gcra(&k, &limit, NOW + 5_999, 1).await.unwrap();
    assert_eq!((d.allowed, d.retry_after_ms), (false, 1));
    let d = store.gcra(&k, &limit, NOW + 6_000, 1).await.unwrap();
    assert!(d.allowed, "one more after one interval");
    assert_eq!((d.remaining, d.reset_after_ms), (0, 30_000));
    assert!(
        !store
            .gcra(&k, &limit, NOW + 6_000, 1)
            .await
            .unwrap()
            .allowed
    );
    // A refusal does not use up anything: the next interval admits one again.
    let d = store.gcra(&k, &limit, NOW + 12_000, 1).await.unwrap();
    assert!(d.allowed);
    // After the whole tolerance, the bucket is full again.
    let d = store
        .gcra(&k, &limit, NOW + 12_000 + 30_000, 0)
        .await
        .unwrap();
    assert_eq!((d.allowed, d.remaining, d.reset_after_ms), (true, 5, 0));
}

async fn gcra_overrides_apply_at_once(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let (k, quota) = (keys.record("rl-o"), keys.record("quota"));
    let limit = per_minute(10, 2, Some(&quota));

    // No override record: the limit's own values.
    for _ in 0..2 {
        let d = store.gcra(&k, &limit, NOW, 1).await.unwrap();
        assert_eq!((d.allowed, d.limit, d.burst), (true, 10, 2));
    }
    assert!(!store.gcra(&k, &limit, NOW, 1).await.unwrap().allowed);

    // A larger burst applies to the very next call.
    store
        .counters_set(&quota, &[("burst".into(), Some(5))])
        .await
        .unwrap();
    let d = store.gcra(&k, &limit, NOW, 1).await.unwrap();
    assert_eq!((d.allowed, d.limit, d.burst, d.remaining), (true, 10, 5, 2));

    // A rate override too; other fields of the record are ignored.
    store
        .counters_set(
            &quota,
            &[("rate".into(), Some(600)), ("other".into(), Some(1))],
        )
        .await
        .unwrap();
    let d = store.gcra(&k, &limit, NOW, 0).await.unwrap();
    assert_eq!((d.limit, d.burst), (600, 5));

    // Values of 0 or below are ignored.
    store
        .counters_set(
            &quota,
            &[("rate".into(), Some(0)), ("burst".into(), Some(-1))],
        )
        .await
        .unwrap();
    let d = store.gcra(&k, &limit, NOW, 0).await.unwrap();
    assert_eq!((d.limit, d.burst), (10, 2));

    // An override raised by counters_add_once, then removed by delete.
    let dedupe = keys.record("quota-applied");
    store
        .counters_set(&quota, &[("burst".into(), Some(1))])
        .await
        .unwrap();
    assert!(
        store
            .counters_add_once(&quota, &dedupe, "q1", &owned(&[("burst", 2)]), 60_000)
            .await
            .unwrap()
    );
    assert_eq!(store.gcra(&k, &limit, NOW, 0).await.unwrap().burst, 3);
    store.delete(std::slice::from_ref(&quota)).await.unwrap();
    let d = store.gcra(&k, &limit, NOW, 0).await.unwrap();
    assert_eq!((d.limit, d.burst), (10, 2), "no record: the defaults again");
}

async fn gcra_cost_above_burst_is_never_admitted(b: Backend) {
    let (_ts, store) = open(b).await;
    let k = tenant_keys(&store).record("rl-cost");
    let limit = per_minute(10, 5, None);
    for later in [0, 60_000, 3_600_000] {
        let d = store.gcra(&k, &limit, NOW + later, 6).await.unwrap();
        assert!(!d.allowed, "cost 6 > burst 5");
    }
    // The refusals took nothing: the whole burst is still there, in one request.
    let d = store.gcra(&k, &limit, NOW + 3_600_000, 5).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 0));
    assert!(
        !store
            .gcra(&k, &limit, NOW + 3_600_000, 1)
            .await
            .unwrap()
            .allowed
    );
}

async fn gcra_concurrent_callers_admit_exactly_the_burst(b: Backend) {
    const CALLERS: usize = 200;
    const BURST: u64 = 7;
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let (k, quota) = (keys.record("rl-conc"), keys.record("quota-conc"));
    let limit = Arc::new(per_minute(1, BURST, Some(&quota)));
    let mut tasks = Vec::new();
    for _ in 0..CALLERS {
        let (store, k, limit) = (store.clone(), k.clone(), Arc::clone(&limit));
        tasks.push(tokio::spawn(async move {
            store.gcra(&k, &limit, NOW, 1).await.unwrap().allowed
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += u64::from(task.await.unwrap());
    }
    assert_eq!(admitted, BURST);
}

async fn gcra_keys_are_independent(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let (a, other) = (keys.record("rl-a"), keys.record("rl-b"));
    let limit = per_minute(10, 1, None);
    assert!(store.gcra(&a, &limit, NOW, 1).await.unwrap().allowed);
    assert!(!store.gcra(&a, &limit, NOW, 1).await.unwrap().allowed);
    assert!(store.gcra(&other, &limit, NOW, 1).await.unwrap().allowed);
    let elsewhere = tenant_keys(&store).record("rl-a");
    assert!(
        store
            .gcra(&elsewhere, &limit, NOW, 1)
            .await
            .unwrap()
            .allowed,
        "another tenant"
    );
}
