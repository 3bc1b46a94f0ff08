//! `lease` on a standalone server and on a Cluster: acquire, extend, refuse, release,
//! expiry, concurrency and the fencing counter.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::{LeaseOp, LeaseState};

/// One raw command on the store's connection (keys of one slot).
async fn raw<T: FromRedisValue>(store: &RedisStore, cmd: &mut Cmd) -> T {
    cmd.query_async(&mut store.pool.get())
        .await
        .expect("raw command")
}

fn free() -> LeaseState {
    LeaseState {
        held: false,
        holder: None,
        token: 0,
        ttl_ms: 0,
    }
}

fn fence(key: &str) -> String {
    format!("{key}:fence")
}

fn is_refusal<T: std::fmt::Debug>(r: &StoreResult<T>) -> bool {
    matches!(r, Err(StoreError::Backend(m)) if m.starts_with("refused: "))
}

async fn acquire(store: &RedisStore, key: &str, holder: &str, ttl_ms: u64) -> LeaseState {
    store
        .lease(key, holder, ttl_ms, LeaseOp::Acquire)
        .await
        .expect("acquire")
}

async fn release(store: &RedisStore, key: &str, holder: &str) -> LeaseState {
    store
        .lease(key, holder, 1_000, LeaseOp::Release)
        .await
        .expect("release")
}

#[tokio::test]
async fn acquire_extend_refuse_and_release() {
    for store in stores().await {
        let key = new_scope(&store).record("lease:a");

        let a = acquire(&store, &key, "a", 10_000).await;
        assert!(a.held, "{a:?}");
        assert_eq!(a.holder.as_deref(), Some("a"));
        assert_eq!(
            (a.token, a.ttl_ms),
            (1, 10_000),
            "the first holding's token is 1"
        );
        let stored: String = raw(&store, redis::cmd("GET").arg(&key)).await;
        assert_eq!(stored, "1:a");

        // Extending: same token, new TTL.
        let extended = acquire(&store, &key, "a", 60_000).await;
        assert_eq!(
            extended,
            LeaseState {
                held: true,
                holder: Some("a".into()),
                token: a.token,
                ttl_ms: 60_000
            }
        );
        let pttl: i64 = raw(&store, redis::cmd("PTTL").arg(&key)).await;
        assert!(pttl > 10_000 && pttl <= 60_000, "{pttl}");

        // Another holder is refused and told who holds it, with which token, for how long.
        let b = acquire(&store, &key, "b", 10_000).await;
        assert!(!b.held);
        assert_eq!((b.holder.as_deref(), b.token), (Some("a"), a.token));
        assert!(b.ttl_ms > 10_000 && b.ttl_ms <= 60_000, "{b:?}");

        // Releasing someone else's lease changes nothing.
        let not_mine = release(&store, &key, "b").await;
        assert!(!not_mine.held);
        assert_eq!(
            (not_mine.holder.as_deref(), not_mine.token),
            (Some("a"), a.token)
        );
        assert!(not_mine.ttl_ms > 0);
        assert_eq!(acquire(&store, &key, "a", 60_000).await.token, a.token);

        // The holder releases it; releasing a free lease is a no-op.
        assert_eq!(release(&store, &key, "a").await, free());
        assert_eq!(existing(&store, std::slice::from_ref(&key)).await, 0);
        assert_eq!(release(&store, &key, "a").await, free());

        // A new holding gets a larger token, even for the same holder.
        let b = acquire(&store, &key, "b", 10_000).await;
        assert!(b.held && b.token > a.token, "{b:?}");
        let a_again = acquire(&store, &key, "a", 10_000).await;
        assert!(!a_again.held);
        release(&store, &key, "b").await;
        let a2 = acquire(&store, &key, "a", 10_000).await;
        assert!(a2.held && a2.token > b.token, "{a2:?}");

        // The script comes back after a SCRIPT FLUSH.
        let _: () = raw(&store, redis::cmd("SCRIPT").arg("FLUSH")).await;
        assert_eq!(acquire(&store, &key, "a", 10_000).await.token, a2.token);
    }
}

#[tokio::test]
async fn an_extension_keeps_the_lease_past_its_first_ttl() {
    for store in stores().await {
        let key = new_scope(&store).record("lease:extend");
        let a = acquire(&store, &key, "a", 200).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(acquire(&store, &key, "a", 10_000).await.held);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let still = acquire(&store, &key, "b", 10_000).await;
        assert!(!still.held, "{still:?}");
        assert_eq!((still.holder.as_deref(), still.token), (Some("a"), a.token));
    }
}

#[tokio::test]
async fn the_fencing_counter_outlives_the_lease_key() {
    for store in stores().await {
        let key = new_scope(&store).record("lease:fence");
        let first = acquire(&store, &key, "a", 100).await;
        let counter_ttl: i64 = raw(&store, redis::cmd("PTTL").arg(fence(&key))).await;
        assert_eq!(counter_ttl, -1, "the fencing counter must never expire");

        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(existing(&store, std::slice::from_ref(&key)).await, 0);
        let counter: u64 = raw(&store, redis::cmd("GET").arg(fence(&key))).await;
        assert_eq!(counter, first.token);

        // The same holder, after its holding expired, gets a new holding and token.
        let second = acquire(&store, &key, "a", 100).await;
        assert!(second.held);
        assert_eq!(second.token, first.token + 1);
        release(&store, &key, "a").await;
        let third = acquire(&store, &key, "a", 100).await;
        assert_eq!(third.token, second.token + 1);
        let counter_ttl: i64 = raw(&store, redis::cmd("PTTL").arg(fence(&key))).await;
        assert_eq!(counter_ttl, -1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_sixteen_concurrent_acquirers_holds_the_lease() {
    for store in stores().await {
        let store = Arc::new(store);
        let key = new_scope(&store).record("lease:race");
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (store, key) = (Arc::clone(&store), key.clone());
                tokio::spawn(async move { acquire(&store, &key, &format!("h{i}"), 10_000).await })
            })
            .collect();
        let mut states = Vec::new();
        for task in tasks {
            states.push(task.await.expect("task"));
        }
        let winners: Vec<&LeaseState> = states.iter().filter(|s| s.held).collect();
        assert_eq!(winners.len(), 1, "{states:?}");
        let winner = winners[0];
        assert_eq!(winner.token, 1);
        let seen: BTreeSet<(Option<&str>, u64)> = states
            .iter()
            .map(|s| (s.holder.as_deref(), s.token))
            .collect();
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            vec![(winner.holder.as_deref(), winner.token)],
            "every acquirer sees the same holding"
        );
        let counter: u64 = raw(&store, redis::cmd("GET").arg(fence(&key))).await;
        assert_eq!(counter, 1, "only the winner took a token");
    }
}

#[tokio::test]
async fn holders_are_kept_verbatim_and_bad_input_is_refused() {
    for store in stores().await {
        let scope = new_scope(&store);
        let key = scope.record("lease:holders");
        let holder = "node:7/ü:{tag}";
        let a = acquire(&store, &key, holder, 10_000).await;
        assert_eq!(a.holder.as_deref(), Some(holder));
        assert_eq!(acquire(&store, &key, holder, 10_000).await.token, a.token);
        assert_eq!(
            acquire(&store, &key, "node", 10_000)
                .await
                .holder
                .as_deref(),
            Some(holder),
            "a holder is not matched by prefix"
        );
        assert_eq!(release(&store, &key, holder).await, free());

        let longest = "h".repeat(MAX_LEASE_HOLDER_LEN);
        assert!(acquire(&store, &key, &longest, 10_000).await.held);
        release(&store, &key, &longest).await;

        let fresh = scope.record("lease:refused");
        for (holder, ttl) in [
            ("a", 0),
            ("a", MAX_TTL_MS + 1),
            ("", 1_000),
            (&*"h".repeat(MAX_LEASE_HOLDER_LEN + 1), 1_000),
        ] {
            for op in [LeaseOp::Acquire, LeaseOp::Release] {
                let r = store.lease(&fresh, holder, ttl, op).await;
                assert!(is_refusal(&r), "{r:?}");
            }
        }
        assert_eq!(existing(&store, &[fresh.clone(), fence(&fresh)]).await, 0);

        // A key that holds something else is reported, not overwritten.
        let other = scope.record("lease:other");
        store
            .set(&other, b"not a lease", None, Durability::Durable)
            .await
            .expect("set");
        let r = store.lease(&other, "a", 1_000, LeaseOp::Acquire).await;
        assert!(
            matches!(&r, Err(StoreError::Backend(m)) if !m.starts_with("refused: ")),
            "{r:?}"
        );
        assert_eq!(
            store.get(&other).await.expect("get").as_deref(),
            Some(&b"not a lease"[..])
        );
    }
}
