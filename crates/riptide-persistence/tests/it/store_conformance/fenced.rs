//! Fenced writes (`set_fenced`): a write lands only while its fencing token is the live
//! holding's of the lease, checked and written in one atomic step, with the same answers
//! on every backend.
//!
//! The lease key and the written keys come from one tenant's [`ScopeKeys`], so on a
//! Cluster they share a slot (the contract: a fenced key shares its lease's hash tag).
//! Expiry runs on the server's clock on Redis, so the expiry test sleeps in real time.

use std::time::Duration;

use riptide_persistence::SharedStore;
use riptide_persistence::store::{Durability, LeaseOp, StoreError};

use super::{SHORT_TTL_MS, open, present, sleep_past_short_ttl, tenant_keys};
use crate::support::{Backend, on_every_backend};

on_every_backend!(
    fenced_current_token_writes_and_a_stale_one_is_refused,
    fenced_refusal_writes_nothing,
    fenced_free_or_expired_lease_refuses,
    fenced_ttl_applies_to_the_written_value,
    fenced_concurrent_stale_and_current_writers,
    fenced_bad_ttl_is_an_error,
);

const LONG_TTL_MS: u64 = 60_000;

struct Keys {
    lease: String,
    target: String,
}

async fn fenced_store(b: Backend) -> (crate::support::TestStore, SharedStore, Keys) {
    let (ts, store) = open(b).await;
    let scope = tenant_keys(&store);
    let keys = Keys {
        lease: scope.record("lease"),
        target: scope.record("marker"),
    };
    (ts, store, keys)
}

async fn acquire(store: &SharedStore, key: &str, holder: &str, ttl_ms: u64) -> u64 {
    let state = store
        .lease(key, holder, ttl_ms, LeaseOp::Acquire)
        .await
        .expect("acquire");
    assert!(state.held, "{holder} takes the lease: {state:?}");
    state.token
}

async fn set(store: &SharedStore, k: &Keys, token: u64, value: &[u8]) -> bool {
    store
        .set_fenced(&k.lease, token, &k.target, value, None, Durability::Durable)
        .await
        .expect("set_fenced")
}

async fn value(store: &SharedStore, key: &str) -> Option<Vec<u8>> {
    store.get(key).await.expect("get").map(|v| v.to_vec())
}

async fn fenced_current_token_writes_and_a_stale_one_is_refused(b: Backend) {
    let (_ts, store, k) = fenced_store(b).await;
    let a = acquire(&store, &k.lease, "a", LONG_TTL_MS).await;
    assert!(set(&store, &k, a, b"by a").await, "the holder's token");
    assert_eq!(
        value(&store, &k.target).await.as_deref(),
        Some(&b"by a"[..])
    );

    // `a` loses the lease (released here; expiry below) and `b` takes it: a new token.
    store
        .lease(&k.lease, "a", LONG_TTL_MS, LeaseOp::Release)
        .await
        .expect("release");
    let b_token = acquire(&store, &k.lease, "b", LONG_TTL_MS).await;
    assert!(b_token > a, "{b_token} after {a}");
    assert!(!set(&store, &k, a, b"late a").await, "a stale token");
    assert_eq!(
        value(&store, &k.target).await.as_deref(),
        Some(&b"by a"[..])
    );
    assert!(set(&store, &k, b_token, b"by b").await);
    assert_eq!(
        value(&store, &k.target).await.as_deref(),
        Some(&b"by b"[..])
    );
    // A token from the future (never handed out) is no better than a stale one.
    assert!(!set(&store, &k, b_token + 1, b"forged").await);
    assert!(!set(&store, &k, 0, b"zero").await);
    assert_eq!(
        value(&store, &k.target).await.as_deref(),
        Some(&b"by b"[..])
    );
}

async fn fenced_refusal_writes_nothing(b: Backend) {
    let (_ts, store, k) = fenced_store(b).await;
    let old = acquire(&store, &k.lease, "a", LONG_TTL_MS).await;
    store
        .lease(&k.lease, "a", LONG_TTL_MS, LeaseOp::Release)
        .await
        .expect("release");
    let current = acquire(&store, &k.lease, "b", LONG_TTL_MS).await;

    // An absent key stays absent.
    assert!(!set(&store, &k, old, b"x").await);
    assert!(!present(&store, &k.target).await, "nothing written");

    // A present key keeps its value and its TTL (a refused write with no TTL would have
    // made it permanent).
    store
        .set_fenced(
            &k.lease,
            current,
            &k.target,
            b"kept",
            Some(SHORT_TTL_MS),
            Durability::Durable,
        )
        .await
        .expect("set_fenced");
    assert!(!set(&store, &k, old, b"overwrite").await);
    assert_eq!(
        value(&store, &k.target).await.as_deref(),
        Some(&b"kept"[..])
    );
    sleep_past_short_ttl().await;
    assert!(
        !present(&store, &k.target).await,
        "the refusal did not touch the value's TTL"
    );
    // The lease itself is untouched by a refused write.
    let state = store
        .lease(&k.lease, "b", LONG_TTL_MS, LeaseOp::Acquire)
        .await
        .expect("acquire");
    assert!(state.held && state.token == current, "{state:?}");
}

async fn fenced_free_or_expired_lease_refuses(b: Backend) {
    let (_ts, store, k) = fenced_store(b).await;
    assert!(!set(&store, &k, 1, b"x").await, "no lease at all");
    let a = acquire(&store, &k.lease, "a", 200).await;
    assert!(set(&store, &k, a, b"in time").await);
    // Real time: on Redis the holding expires on the server's clock. Nobody took the
    // lease over, but the holding is gone: a write under it is no longer under a lease.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!set(&store, &k, a, b"too late").await);
    assert_eq!(
        value(&store, &k.target).await.as_deref(),
        Some(&b"in time"[..])
    );
    // Released: refused as well.
    let again = acquire(&store, &k.lease, "a", LONG_TTL_MS).await;
    assert!(again > a);
    store
        .lease(&k.lease, "a", LONG_TTL_MS, LeaseOp::Release)
        .await
        .expect("release");
    assert!(!set(&store, &k, again, b"released").await);
}

async fn fenced_ttl_applies_to_the_written_value(b: Backend) {
    let (_ts, store, k) = fenced_store(b).await;
    let a = acquire(&store, &k.lease, "a", LONG_TTL_MS).await;
    let written = store
        .set_fenced(
            &k.lease,
            a,
            &k.target,
            b"short",
            Some(SHORT_TTL_MS),
            Durability::Cache,
        )
        .await
        .expect("set_fenced");
    assert!(written);
    assert!(present(&store, &k.target).await);
    sleep_past_short_ttl().await;
    assert!(!present(&store, &k.target).await, "expired");
    // Without a TTL the value stays.
    assert!(set(&store, &k, a, b"stays").await);
    sleep_past_short_ttl().await;
    assert_eq!(
        value(&store, &k.target).await.as_deref(),
        Some(&b"stays"[..])
    );
}

async fn fenced_concurrent_stale_and_current_writers(b: Backend) {
    let (_ts, store, k) = fenced_store(b).await;
    let stale = acquire(&store, &k.lease, "a", LONG_TTL_MS).await;
    store
        .lease(&k.lease, "a", LONG_TTL_MS, LeaseOp::Release)
        .await
        .expect("release");
    let current = acquire(&store, &k.lease, "b", LONG_TTL_MS).await;
    let mut tasks = Vec::new();
    for i in 0..32u64 {
        let store = store.clone();
        let (lease, target) = (k.lease.clone(), k.target.clone());
        let token = if i % 2 == 0 { stale } else { current };
        tasks.push(tokio::spawn(async move {
            let value = format!("{token}:{i}");
            let written = store
                .set_fenced(
                    &lease,
                    token,
                    &target,
                    value.as_bytes(),
                    None,
                    Durability::Cache,
                )
                .await
                .expect("set_fenced");
            (token, written)
        }));
    }
    for task in tasks {
        let (token, written) = task.await.expect("task");
        assert_eq!(written, token == current, "token {token}");
    }
    let last = value(&store, &k.target).await.expect("written");
    let last = String::from_utf8(last).expect("utf-8");
    assert!(
        last.starts_with(&format!("{current}:")),
        "only current writes landed: {last}"
    );
}

async fn fenced_bad_ttl_is_an_error(b: Backend) {
    let (_ts, store, k) = fenced_store(b).await;
    let a = acquire(&store, &k.lease, "a", LONG_TTL_MS).await;
    let err = store
        .set_fenced(&k.lease, a, &k.target, b"x", Some(0), Durability::Cache)
        .await
        .expect_err("a TTL of 0");
    assert!(matches!(err, StoreError::Backend(_)), "{err}");
    assert!(!present(&store, &k.target).await);
}
