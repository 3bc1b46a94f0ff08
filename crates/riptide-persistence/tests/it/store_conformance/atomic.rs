//! `write_atomic`: several keys of one slot written all or nothing, with expectations
//! checked first (what tenant and API key creation and deletion rely on so a crash never
//! leaves half of one).

use std::sync::Arc;

use bytes::Bytes;
use riptide_persistence::SharedStore;
use riptide_persistence::store::{Durability, StoreKind, WriteOp};

use super::{open, tenant_keys};
use crate::support::{Backend, on_every_backend};

on_every_backend!(
    write_atomic_applies_every_op,
    write_atomic_with_a_failed_expectation_writes_nothing,
    write_atomic_refuses_a_bad_batch_before_writing,
    concurrent_write_atomic_creations_have_one_winner,
);

async fn value(store: &SharedStore, key: &str) -> Option<Bytes> {
    store.get(key).await.expect("get")
}

async fn write_atomic_applies_every_op(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let (meta, q, reg, old) = (
        keys.record("meta"),
        keys.record("q"),
        keys.record("reg"),
        keys.record("old"),
    );
    store
        .set(&old, b"bye", Some(60_000), Durability::Durable)
        .await
        .unwrap();
    store.zset_add(&reg, &[("gone".into(), 1)]).await.unwrap();
    let ops = vec![
        WriteOp::absent(meta.clone()),
        WriteOp::put(meta.clone(), Bytes::from_static(b"record")),
        WriteOp::Counters {
            key: q.clone(),
            fields: vec![("a".into(), Some(5)), ("b".into(), None)],
        },
        WriteOp::ZsetAdd {
            key: reg.clone(),
            members: vec![("t1".into(), 10)],
        },
        WriteOp::ZsetRemove {
            key: reg.clone(),
            members: vec!["gone".into()],
        },
        WriteOp::delete(old.clone()),
    ];
    assert!(store.write_atomic(&ops).await.unwrap());
    assert_eq!(value(&store, &meta).await.as_deref(), Some(&b"record"[..]));
    assert_eq!(store.counters_get(&q).await.unwrap(), vec![("a".into(), 5)]);
    assert_eq!(
        store.zset_range(&reg, 0, 10).await.unwrap(),
        vec![("t1".into(), 10)]
    );
    assert_eq!(value(&store, &old).await, None);

    // An expectation of a value: holds for the current value only.
    let swap = vec![
        WriteOp::Expect {
            key: meta.clone(),
            value: Some(Bytes::from_static(b"record")),
        },
        WriteOp::put(meta.clone(), Bytes::from_static(b"v2")),
    ];
    assert!(store.write_atomic(&swap).await.unwrap());
    assert!(
        !store.write_atomic(&swap).await.unwrap(),
        "v2 is not `record`"
    );
    assert_eq!(value(&store, &meta).await.as_deref(), Some(&b"v2"[..]));

    // An expectation of presence: any live value, never an absent one.
    let child = keys.record("child");
    let under = |parent: &str| {
        vec![
            WriteOp::present(parent.to_owned()),
            WriteOp::put(child.clone(), Bytes::from_static(b"c")),
        ]
    };
    assert!(
        !store.write_atomic(&under(&old)).await.unwrap(),
        "old is gone"
    );
    assert_eq!(value(&store, &child).await, None);
    assert!(store.write_atomic(&under(&meta)).await.unwrap());
    assert_eq!(value(&store, &child).await.as_deref(), Some(&b"c"[..]));
}

async fn write_atomic_with_a_failed_expectation_writes_nothing(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let (meta, q, reg, other) = (
        keys.record("meta"),
        keys.record("q"),
        keys.record("reg"),
        keys.record("other"),
    );
    store
        .set(&meta, b"taken", None, Durability::Durable)
        .await
        .unwrap();
    store
        .set(&other, b"keep", None, Durability::Durable)
        .await
        .unwrap();
    // The failing expectation comes last: it is still checked before any write.
    let ops = vec![
        WriteOp::put(other.clone(), Bytes::from_static(b"overwritten")),
        WriteOp::Counters {
            key: q.clone(),
            fields: vec![("a".into(), Some(1))],
        },
        WriteOp::ZsetAdd {
            key: reg.clone(),
            members: vec![("t1".into(), 1)],
        },
        WriteOp::delete(other.clone()),
        WriteOp::absent(meta.clone()),
    ];
    assert!(!store.write_atomic(&ops).await.unwrap());
    assert_eq!(value(&store, &meta).await.as_deref(), Some(&b"taken"[..]));
    assert_eq!(value(&store, &other).await.as_deref(), Some(&b"keep"[..]));
    assert!(store.counters_get(&q).await.unwrap().is_empty());
    assert_eq!(store.zset_len(&reg).await.unwrap(), 0);
}

async fn write_atomic_refuses_a_bad_batch_before_writing(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = tenant_keys(&store);
    let (v, reg) = (keys.record("v"), keys.record("reg"));
    // A score no backend can hold exactly: refused as a whole.
    let ops = vec![
        WriteOp::put(v.clone(), Bytes::from_static(b"x")),
        WriteOp::ZsetAdd {
            key: reg.clone(),
            members: vec![("m".into(), i64::MAX)],
        },
    ];
    assert!(store.write_atomic(&ops).await.is_err());
    assert_eq!(value(&store, &v).await, None);
    assert_eq!(store.zset_len(&reg).await.unwrap(), 0);

    // Keys of two tenants are two slots on a Cluster: refused there with nothing
    // written; one transaction / one script elsewhere.
    let elsewhere = tenant_keys(&store).record("v");
    let ops = vec![
        WriteOp::put(v.clone(), Bytes::from_static(b"x")),
        WriteOp::put(elsewhere.clone(), Bytes::from_static(b"y")),
    ];
    let result = store.write_atomic(&ops).await;
    if store.kind() == StoreKind::RedisCluster {
        assert!(result.is_err(), "{result:?}");
        assert_eq!(value(&store, &v).await, None);
        assert_eq!(value(&store, &elsewhere).await, None);
    } else {
        assert!(result.unwrap());
        assert!(value(&store, &v).await.is_some());
        assert!(value(&store, &elsewhere).await.is_some());
    }
}

async fn concurrent_write_atomic_creations_have_one_winner(b: Backend) {
    let (_ts, store) = open(b).await;
    let keys = Arc::new(tenant_keys(&store));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (store, keys) = (store.clone(), keys.clone());
            tokio::spawn(async move {
                let ops = vec![
                    WriteOp::absent(keys.record("meta")),
                    WriteOp::put(keys.record("meta"), Bytes::from(format!("creator-{i}"))),
                    WriteOp::ZsetAdd {
                        key: keys.record("reg"),
                        members: vec![(format!("creator-{i}"), i)],
                    },
                ];
                store.write_atomic(&ops).await.unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    let meta = value(&store, &keys.record("meta")).await.unwrap();
    let reg = store.zset_range(&keys.record("reg"), 0, 100).await.unwrap();
    assert_eq!(reg.len(), 1, "only the winner's registry entry: {reg:?}");
    assert_eq!(
        reg[0].0.as_bytes(),
        &meta[..],
        "record and entry of one creator"
    );
}
