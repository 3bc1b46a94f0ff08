//! Plain key operations: ping, kind, get/set, get_many/set_many, delete, TTLs.

use bytes::Bytes;
use riptide_persistence::clock::ManualClock;
use riptide_persistence::store::{Durability, StoreError, StoreKind};

use super::{
    SHORT_TTL_MS, cput, filled, open, present, reported, sleep_past_short_ttl, tenant_keys, usage,
};
use crate::support::{Backend, on_every_backend, store_with_clock};

on_every_backend!(
    ping_kind_and_prefix,
    missing_keys_read_as_none,
    binary_values_round_trip,
    overwrite_replaces_value_and_ttl,
    zero_ttl_is_refused_and_writes_nothing,
    ttl_value_is_gone_after_it_expires,
    get_many_keeps_order_with_missing_keys,
    set_many_writes_each_with_its_own_ttl,
    delete_counts_only_keys_that_existed,
);

async fn ping_kind_and_prefix(b: Backend) {
    let (_ts, store) = open(b).await;
    store.ping().await.expect("ping");
    let expected = match b {
        Backend::Embedded => StoreKind::Embedded,
        Backend::Redis => StoreKind::Redis,
        Backend::Cluster => StoreKind::RedisCluster,
    };
    assert_eq!(store.kind(), expected);
    assert!(!store.key_prefix().is_empty());
    let keys = tenant_keys(&store);
    assert!(
        keys.base().starts_with(&format!("{}:", store.key_prefix())),
        "{}",
        keys.base()
    );
}

async fn missing_keys_read_as_none(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    assert_eq!(store.get(&keys.record("nothing")).await.unwrap(), None);
    let missing = vec![keys.record("a"), keys.record("b")];
    assert_eq!(store.get_many(&missing).await.unwrap(), vec![None, None]);
    assert!(store.get_many(&[]).await.unwrap().is_empty());
    store.set_many(&[], Durability::Cache).await.unwrap();
    assert_eq!(store.delete(&[]).await.unwrap(), 0);
}

async fn binary_values_round_trip(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let every_byte: Vec<u8> = (0..=255u8).collect();
    // 1 MB that is not one repeated byte, so truncation or reordering would show.
    let mega: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let cases: [(&str, &[u8]); 3] = [
        ("every-byte", &every_byte),
        ("empty", b""),
        ("one-mb", &mega),
    ];
    for durability in [Durability::Durable, Durability::Cache] {
        for (name, value) in cases {
            let key = keys.record(&format!("{name}-{durability:?}"));
            store.set(&key, value, None, durability).await.unwrap();
            let got = store.get(&key).await.unwrap();
            assert_eq!(
                got.as_deref(),
                Some(value),
                "{name} with {durability:?} (len {:?})",
                got.as_ref().map(Bytes::len)
            );
        }
    }
    // Overwrites of each durability replace the value whole, longer or shorter.
    let key = keys.record("overwritten");
    store
        .set(&key, &mega, None, Durability::Cache)
        .await
        .unwrap();
    store
        .set(&key, &every_byte, None, Durability::Durable)
        .await
        .unwrap();
    assert_eq!(
        store.get(&key).await.unwrap().as_deref(),
        Some(&every_byte[..])
    );
    store.set(&key, b"", None, Durability::Cache).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap().as_deref(), Some(&b""[..]));
    store
        .set(&key, &mega, Some(60_000), Durability::Durable)
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap().as_deref(), Some(&mega[..]));
}

async fn overwrite_replaces_value_and_ttl(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let (made_permanent, made_short) = (keys.record("permanent"), keys.record("short"));
    store
        .set(&made_permanent, b"1", Some(SHORT_TTL_MS), Durability::Cache)
        .await
        .unwrap();
    store
        .set(&made_permanent, b"2", None, Durability::Cache)
        .await
        .unwrap();
    store
        .set(&made_short, b"1", None, Durability::Durable)
        .await
        .unwrap();
    store
        .set(&made_short, b"2", Some(SHORT_TTL_MS), Durability::Durable)
        .await
        .unwrap();
    assert_eq!(
        store.get(&made_short).await.unwrap().as_deref(),
        Some(&b"2"[..])
    );
    sleep_past_short_ttl().await;
    assert_eq!(
        store.get(&made_permanent).await.unwrap().as_deref(),
        Some(&b"2"[..]),
        "rewriting without a TTL drops the old TTL"
    );
    assert_eq!(
        store.get(&made_short).await.unwrap(),
        None,
        "rewriting with a TTL sets it"
    );
}

async fn zero_ttl_is_refused_and_writes_nothing(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let key = keys.record("zero");
    for durability in [Durability::Cache, Durability::Durable] {
        let err = store
            .set(&key, b"v", Some(0), durability)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
        assert!(!err.is_retryable());
    }
    assert_eq!(store.get(&key).await.unwrap(), None);

    let batch = vec![
        (keys.record("ok"), Bytes::from_static(b"1"), None),
        (keys.record("zero"), Bytes::from_static(b"2"), Some(0)),
    ];
    let err = store.set_many(&batch, Durability::Cache).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert_eq!(
        store
            .get_many(&[batch[0].0.clone(), batch[1].0.clone()])
            .await
            .unwrap(),
        vec![None, None],
        "nothing of a refused batch is written"
    );

    let puts = [
        cput(&keys, "ns", "fine", 10, None, &[]),
        cput(&keys, "ns", "zero", 10, Some(0), &[]),
    ];
    let err = store.cache_put(&keys, &puts, None).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert!(!present(&store, &puts[0].key).await);
    assert_eq!(reported(&store, &keys).await, usage(0, 0));
}

async fn ttl_value_is_gone_after_it_expires(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let (short, stays, decade) = (
        keys.record("short"),
        keys.record("stays"),
        keys.record("decade"),
    );
    store
        .set(&stays, b"stays", None, Durability::Durable)
        .await
        .unwrap();
    store
        .set(
            &decade,
            b"decade",
            Some(10 * 365 * 86_400_000),
            Durability::Cache,
        )
        .await
        .unwrap();
    // The short-lived writes last, right before the read that must still see them.
    store
        .set(&short, b"short", Some(SHORT_TTL_MS), Durability::Cache)
        .await
        .unwrap();
    let cached = cput(&keys, "ns", "cached", 7, Some(SHORT_TTL_MS), &["t"]);
    store
        .cache_put(&keys, std::slice::from_ref(&cached), None)
        .await
        .unwrap();
    let all = vec![
        short.clone(),
        stays.clone(),
        decade.clone(),
        cached.key.clone(),
    ];
    let before = store.get_many(&all).await.unwrap();
    assert!(before.iter().all(Option::is_some), "{before:?}");

    sleep_past_short_ttl().await;
    assert_eq!(store.get(&short).await.unwrap(), None);
    assert_eq!(store.get(&cached.key).await.unwrap(), None);
    let after = store.get_many(&all).await.unwrap();
    assert_eq!(
        after,
        vec![
            None,
            Some(Bytes::from_static(b"stays")),
            Some(Bytes::from_static(b"decade")),
            None
        ]
    );
}

/// The embedded store reads time from the injected clock: expiry is exact to the
/// millisecond and needs no sleeping. (Redis keeps its own clock, so this is embedded only.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_ttl_follows_the_injected_clock() {
    let clock = ManualClock::new(1_700_000_000_000);
    let ts = store_with_clock(Backend::Embedded, clock.clone()).await;
    let store = ts.store.clone();
    let keys = tenant_keys(&store);
    let (set_key, many_key, stays) = (
        keys.record("set"),
        keys.record("many"),
        keys.record("stays"),
    );
    store
        .set(&set_key, b"a", Some(SHORT_TTL_MS), Durability::Durable)
        .await
        .unwrap();
    store
        .set_many(
            &[
                (
                    many_key.clone(),
                    Bytes::from_static(b"b"),
                    Some(SHORT_TTL_MS),
                ),
                (
                    stays.clone(),
                    Bytes::from_static(b"c"),
                    Some(SHORT_TTL_MS + 1),
                ),
            ],
            Durability::Cache,
        )
        .await
        .unwrap();
    let puts = [
        cput(&keys, "ns", "short", 10, Some(SHORT_TTL_MS), &["t"]),
        cput(&keys, "ns", "long", 20, Some(SHORT_TTL_MS + 1), &["t"]),
    ];
    store.cache_put(&keys, &puts, None).await.unwrap();
    let all = vec![
        set_key.clone(),
        many_key.clone(),
        stays.clone(),
        puts[0].key.clone(),
        puts[1].key.clone(),
    ];

    clock.advance_ms(SHORT_TTL_MS - 1);
    let got = store.get_many(&all).await.unwrap();
    assert!(
        got.iter().all(Option::is_some),
        "1 ms before expiry: {got:?}"
    );
    assert_eq!(reported(&store, &keys).await, usage(30, 2));

    clock.advance_ms(1);
    assert_eq!(store.get(&set_key).await.unwrap(), None);
    let got = store.get_many(&all).await.unwrap();
    let live: Vec<bool> = got.iter().map(Option::is_some).collect();
    assert_eq!(live, vec![false, false, true, false, true]);
    assert_eq!(reported(&store, &keys).await, usage(20, 1));
    assert_eq!(store.cache_remove_tag(&keys, "t").await.unwrap().removed, 1);

    clock.advance_ms(1);
    assert_eq!(store.get(&stays).await.unwrap(), None);
}

async fn get_many_keeps_order_with_missing_keys(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let all: Vec<String> = (0..100).map(|i| keys.record(&format!("k{i}"))).collect();
    // Every third key is missing; the others hold their own index, so order shows.
    let written: Vec<(String, Bytes, Option<u64>)> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(i, k)| (k.clone(), Bytes::from(format!("value {i}")), None))
        .collect();
    store.set_many(&written, Durability::Durable).await.unwrap();
    let asked: Vec<String> = all.iter().rev().cloned().collect();
    let got = store.get_many(&asked).await.unwrap();
    assert_eq!(got.len(), 100);
    for (pos, value) in got.iter().enumerate() {
        let i = 99 - pos;
        let expected = (i % 3 != 0).then(|| Bytes::from(format!("value {i}")));
        assert_eq!(value, &expected, "position {pos} (key k{i})");
    }
    // A key asked twice is answered twice.
    let twice = vec![all[1].clone(), all[0].clone(), all[1].clone()];
    let got = store.get_many(&twice).await.unwrap();
    assert_eq!(
        got,
        vec![
            Some(Bytes::from_static(b"value 1")),
            None,
            Some(Bytes::from_static(b"value 1"))
        ]
    );
}

async fn set_many_writes_each_with_its_own_ttl(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let batch = vec![
        (keys.record("none"), Bytes::from_static(b"n"), None),
        (
            keys.record("short"),
            Bytes::from_static(b"s"),
            Some(SHORT_TTL_MS),
        ),
        (keys.record("long"), Bytes::from_static(b"l"), Some(60_000)),
        (keys.record("empty"), Bytes::new(), None),
        (keys.record("big"), filled(256 * 1024, 7), Some(60_000)),
    ];
    store.set_many(&batch, Durability::Cache).await.unwrap();
    let names: Vec<String> = batch.iter().map(|(k, _, _)| k.clone()).collect();
    let expect = |expired: bool| -> Vec<Option<Bytes>> {
        batch
            .iter()
            .map(|(_, v, ttl)| (!(expired && *ttl == Some(SHORT_TTL_MS))).then(|| v.clone()))
            .collect()
    };
    assert_eq!(store.get_many(&names).await.unwrap(), expect(false));
    sleep_past_short_ttl().await;
    assert_eq!(store.get_many(&names).await.unwrap(), expect(true));
    // Durable batches write the same way.
    let durable = vec![(keys.record("durable"), Bytes::from_static(b"d"), None)];
    store.set_many(&durable, Durability::Durable).await.unwrap();
    assert!(present(&store, &durable[0].0).await);
}

async fn delete_counts_only_keys_that_existed(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let (a, bb, missing, short) = (
        keys.record("a"),
        keys.record("b"),
        keys.record("missing"),
        keys.record("short"),
    );
    store
        .set(&a, b"1", None, Durability::Durable)
        .await
        .unwrap();
    store
        .set(&bb, b"2", Some(60_000), Durability::Cache)
        .await
        .unwrap();
    store
        .set(&short, b"3", Some(SHORT_TTL_MS), Durability::Cache)
        .await
        .unwrap();
    let n = store
        .delete(&[a.clone(), missing.clone(), bb.clone(), a.clone()])
        .await
        .unwrap();
    assert_eq!(n, 2, "a (asked twice) and b existed; `missing` did not");
    assert_eq!(
        store.get_many(&[a.clone(), bb.clone()]).await.unwrap(),
        vec![None, None]
    );
    assert_eq!(store.delete(&[a, bb]).await.unwrap(), 0, "already gone");
    sleep_past_short_ttl().await;
    assert_eq!(
        store.delete(std::slice::from_ref(&short)).await.unwrap(),
        0,
        "an expired value does not exist"
    );
}
