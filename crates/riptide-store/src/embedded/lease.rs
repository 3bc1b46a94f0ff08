//! Leases with fencing tokens on the embedded store.
//!
//! Both halves of a lease live in the `kv` table, so they are durable, the sweeper
//! forgets an expired holding, and `delete` removes them as it removes any value:
//!
//! - the **holding** at `key`: a value with the holding's expiry in its header (the
//!   injected clock's `now + ttl_ms`) and the payload `<token>:<holder>`, the token in
//!   ASCII decimal (the value the Redis backend keeps at the key);
//! - the **fencing counter** at `key + ":fence"`: the last token handed out, in ASCII
//!   decimal without TTL (what `INCR` keeps on Redis). A new holding takes counter + 1,
//!   so tokens never repeat: not after the holding expired or was released (the counter
//!   stays), and not after a restart or a crash (every write here commits durably).
//!
//! The holding could have lived in memory (the store belongs to one process, and a
//! restart ends every holder of that process anyway); it is in redb so that a holding
//! and the counter it was taken from are always written by one transaction.
//!
//! A step that changes nothing (acquire of a lease another holder has, release by a
//! non-holder or of a free lease) is answered from a read transaction, without a commit.
//! Every other step is one durable write transaction that reads the holding and the
//! counter and writes them, so it is atomic: redb runs one write transaction at a time,
//! and the write re-checks what the read saw.

use super::tables::{KvTables, is_live, split_value};
use super::{EmbeddedStore, RedbResultExt, backend, check_ttl, expires_at};
use crate::{Durability, LeaseOp, LeaseState, StoreResult};

/// Longest holder name accepted, in bytes.
pub(super) const MAX_HOLDER_LEN: usize = 128;

/// The key of `key`'s fencing counter.
pub(super) fn fence_key(key: &str) -> String {
    format!("{key}:fence")
}

/// A live holding as stored at the lease key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Holding {
    pub(super) token: u64,
    holder: String,
    /// Expiry in ms since the epoch (from the value's header).
    expires_at: u64,
}

impl Holding {
    /// `<token>:<holder>`, the token in ASCII decimal (what Redis keeps at the key).
    fn encode(token: u64, holder: &str) -> Vec<u8> {
        format!("{token}:{holder}").into_bytes()
    }

    fn decode(payload: &[u8], expires_at: u64) -> StoreResult<Self> {
        let not_a_lease = || backend("the value at the lease key is not a lease");
        let text = std::str::from_utf8(payload).map_err(|_| not_a_lease())?;
        let (token, holder) = text.split_once(':').ok_or_else(not_a_lease)?;
        let token = token.parse::<u64>().map_err(|_| not_a_lease())?;
        if holder.is_empty() || holder.len() > MAX_HOLDER_LEN {
            return Err(not_a_lease());
        }
        Ok(Self {
            token,
            holder: holder.to_owned(),
            expires_at,
        })
    }

    /// The state `caller` sees while this holding is live at `now`.
    fn state_for(&self, caller: &str, now: u64) -> LeaseState {
        LeaseState {
            held: self.holder == caller,
            holder: Some(self.holder.clone()),
            token: self.token,
            // A holding without expiry is never written here (only a `set` of the key
            // makes one): it reports 0, as the Redis backend does.
            ttl_ms: if self.expires_at == 0 {
                0
            } else {
                self.expires_at.saturating_sub(now)
            },
        }
    }
}

/// The state of a free lease.
fn free() -> LeaseState {
    LeaseState {
        held: false,
        holder: None,
        token: 0,
        ttl_ms: 0,
    }
}

/// Refuses an empty or over-long holder name.
fn check_holder(holder: &str) -> StoreResult<()> {
    if holder.is_empty() || holder.len() > MAX_HOLDER_LEN {
        return Err(backend(&format!(
            "a lease holder must be 1 to {MAX_HOLDER_LEN} bytes, not {}",
            holder.len()
        )));
    }
    Ok(())
}

/// The live holding in a raw `kv` value (header and payload) at `now`, if any.
pub(super) fn holding_in(raw: Option<&[u8]>, now: u64) -> StoreResult<Option<Holding>> {
    let Some(raw) = raw else { return Ok(None) };
    let (expires_at, payload) = split_value(raw)?;
    if !is_live(expires_at, now) {
        return Ok(None);
    }
    Holding::decode(payload, expires_at).map(Some)
}

/// The next fencing token of `fence` (last + 1), written back in the same transaction.
fn next_token(kv: &mut KvTables<'_>, fence: &str, now: u64) -> StoreResult<u64> {
    let last = kv.with_live(fence, now, |payload| payload.map(parse_counter))?;
    let last = last.transpose()?.unwrap_or(0);
    let next = last
        .checked_add(1)
        .ok_or_else(|| backend("the lease's fencing counter is exhausted"))?;
    kv.put(fence, next.to_string().as_bytes(), 0)?;
    Ok(next)
}

/// A fencing counter as stored: ASCII decimal.
fn parse_counter(payload: &[u8]) -> StoreResult<u64> {
    std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| backend("the value at the fencing counter key is not a counter"))
}

/// `lease`: see [`crate::Store::lease`] and the module docs. A `ttl_ms` of 0 is
/// refused (as `set` refuses it) whatever the operation.
pub(super) async fn lease(
    store: &EmbeddedStore,
    key: &str,
    holder: &str,
    ttl_ms: u64,
    op: LeaseOp,
) -> StoreResult<LeaseState> {
    check_ttl(Some(ttl_ms))?;
    check_holder(holder)?;

    // Read first: a step that changes nothing needs no write transaction.
    {
        let table = store.inner.read_kv()?;
        let now = store.inner.clock.now_ms();
        let raw = table.get(key).ctx("read lease")?;
        let current = holding_in(raw.as_ref().map(|raw| raw.value()), now)?;
        match (op, current) {
            (LeaseOp::Acquire, Some(h)) | (LeaseOp::Release, Some(h)) if h.holder != holder => {
                return Ok(h.state_for(holder, now));
            }
            (LeaseOp::Release, None) => return Ok(free()),
            _ => {}
        }
    }

    let key = key.to_owned();
    let holder = holder.to_owned();
    store
        .write(Durability::Durable, move |tx, now| {
            let mut kv = KvTables::open(tx)?;
            let current = kv.with_raw(&key, |raw| holding_in(raw, now))??;
            match (op, current) {
                (_, Some(h)) if h.holder != holder => Ok(h.state_for(&holder, now)),
                (LeaseOp::Acquire, current) => {
                    let token = match current {
                        // Held by the caller: extended, same token.
                        Some(h) => h.token,
                        None => next_token(&mut kv, &fence_key(&key), now)?,
                    };
                    let expires = expires_at(now, Some(ttl_ms));
                    kv.put(&key, &Holding::encode(token, &holder), expires)?;
                    Ok(LeaseState {
                        held: true,
                        holder: Some(holder),
                        token,
                        ttl_ms: expires.saturating_sub(now),
                    })
                }
                (LeaseOp::Release, Some(_)) => {
                    kv.remove(&key)?;
                    Ok(free())
                }
                (LeaseOp::Release, None) => Ok(free()),
            }
        })
        .await
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;
    use std::sync::Arc;

    use super::super::tests::{fixture, quiet_config};
    use super::{MAX_HOLDER_LEN, fence_key};
    use crate::embedded::EmbeddedStore;
    use crate::{Durability, LeaseOp, LeaseState, StoreError};

    const KEY: &str = "p:{t}:lease";

    fn held(holder: &str, token: u64, ttl_ms: u64) -> LeaseState {
        LeaseState {
            held: true,
            holder: Some(holder.to_owned()),
            token,
            ttl_ms,
        }
    }

    fn seen(holder: &str, token: u64, ttl_ms: u64) -> LeaseState {
        LeaseState {
            held: false,
            ..held(holder, token, ttl_ms)
        }
    }

    fn free() -> LeaseState {
        super::free()
    }

    async fn acquire(s: &EmbeddedStore, holder: &str, ttl_ms: u64) -> LeaseState {
        s.lease(KEY, holder, ttl_ms, LeaseOp::Acquire)
            .await
            .unwrap()
    }

    async fn release(s: &EmbeddedStore, holder: &str) -> LeaseState {
        s.lease(KEY, holder, 1_000, LeaseOp::Release).await.unwrap()
    }

    #[tokio::test]
    async fn acquire_extend_refuse_and_release() {
        let f = fixture();
        let s = &f.store;
        assert_eq!(acquire(s, "a", 1_000).await, held("a", 1, 1_000));
        f.clock.advance_ms(400);
        assert_eq!(acquire(s, "b", 1_000).await, seen("a", 1, 600));
        assert_eq!(
            acquire(s, "a", 2_000).await,
            held("a", 1, 2_000),
            "extended, same token"
        );
        assert_eq!(release(s, "b").await, seen("a", 1, 2_000), "not b's");
        assert_eq!(release(s, "a").await, free());
        assert_eq!(release(s, "a").await, free(), "already free");
        assert_eq!(acquire(s, "b", 500).await, held("b", 2, 500));
        assert_eq!(
            s.get(&fence_key(KEY)).await.unwrap().as_deref(),
            Some(&b"2"[..]),
            "the counter in ASCII decimal, as INCR keeps it"
        );
        assert_eq!(
            s.get(KEY).await.unwrap().as_deref(),
            Some(&b"2:b"[..]),
            "the holding as the Redis backend keeps it"
        );
    }

    #[tokio::test]
    async fn an_expired_holding_is_free_to_the_millisecond() {
        let f = fixture();
        let s = &f.store;
        assert_eq!(acquire(s, "a", 1_000).await, held("a", 1, 1_000));
        f.clock.advance_ms(999);
        assert_eq!(acquire(s, "b", 1_000).await, seen("a", 1, 1));
        f.clock.advance_ms(1);
        assert_eq!(release(s, "a").await, free(), "expired: nothing to release");
        assert_eq!(acquire(s, "b", 1_000).await, held("b", 2, 1_000));
        // The previous holder coming back after expiry gets a new token, not its old one.
        f.clock.advance_ms(1_000);
        assert_eq!(acquire(s, "a", 1_000).await, held("a", 3, 1_000));
        // The sweeper forgets an expired holding but never the counter.
        f.clock.advance_ms(1_000);
        assert_eq!(s.sweep_now().unwrap(), 1);
        assert_eq!(s.get(KEY).await.unwrap(), None);
        assert_eq!(acquire(s, "c", 1_000).await, held("c", 4, 1_000));
    }

    #[tokio::test]
    async fn the_fencing_counter_survives_a_reopen() {
        let f = fixture();
        assert_eq!(acquire(&f.store, "a", 60_000).await, held("a", 1, 60_000));
        assert_eq!(release(&f.store, "a").await, free());
        assert_eq!(acquire(&f.store, "a", 60_000).await, held("a", 2, 60_000));
        drop(f.store);

        let store = EmbeddedStore::open(f.dir.path(), &quiet_config(), f.clock.clone()).unwrap();
        assert_eq!(
            acquire(&store, "b", 1_000).await,
            seen("a", 2, 60_000),
            "the holding is durable too"
        );
        f.clock.advance_ms(60_000);
        assert_eq!(acquire(&store, "b", 1_000).await, held("b", 3, 1_000));
    }

    #[tokio::test]
    async fn bad_input_is_refused_without_writing() {
        let f = fixture();
        let s = &f.store;
        for op in [LeaseOp::Acquire, LeaseOp::Release] {
            let err = s.lease(KEY, "a", 0, op).await.unwrap_err();
            assert!(matches!(err, StoreError::Backend(_)), "{err}");
            let err = s.lease(KEY, "", 1_000, op).await.unwrap_err();
            assert!(matches!(err, StoreError::Backend(_)), "{err}");
            let long = "h".repeat(MAX_HOLDER_LEN + 1);
            let err = s.lease(KEY, &long, 1_000, op).await.unwrap_err();
            assert!(matches!(err, StoreError::Backend(_)), "{err}");
        }
        assert_eq!(s.get(&fence_key(KEY)).await.unwrap(), None);
        let longest = "é".repeat(MAX_HOLDER_LEN / 2);
        assert_eq!(acquire(s, &longest, 1_000).await, held(&longest, 1, 1_000));
        // A huge TTL saturates instead of overflowing.
        let state = s
            .lease("other", "a", u64::MAX, LeaseOp::Acquire)
            .await
            .unwrap();
        assert!(state.held && state.ttl_ms > 1 << 60, "{state:?}");
    }

    #[tokio::test]
    async fn values_that_are_not_leases_are_errors_not_panics() {
        let f = fixture();
        let s = &f.store;
        for garbage in [&b""[..], b"7", b"7:", b"x:a", b":a", b"-1:a", b"7:\xff"] {
            s.set(KEY, garbage, None, Durability::Durable)
                .await
                .unwrap();
            for op in [LeaseOp::Acquire, LeaseOp::Release] {
                let err = s.lease(KEY, "a", 1_000, op).await.unwrap_err();
                assert!(matches!(err, StoreError::Backend(_)), "{garbage:?}: {err}");
            }
        }
        // A lease-shaped value without TTL reads as a holding with 0 ms left (as on Redis).
        s.set(KEY, b"9:z", None, Durability::Durable).await.unwrap();
        assert_eq!(acquire(s, "a", 1_000).await, seen("z", 9, 0));
        s.delete(&[KEY.to_owned()]).await.unwrap();
        s.set(&fence_key(KEY), b"nope", None, Durability::Durable)
            .await
            .unwrap();
        let err = s
            .lease(KEY, "a", 1_000, LeaseOp::Acquire)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err}");
        assert_eq!(s.get(KEY).await.unwrap(), None, "nothing written");
        s.set(
            &fence_key(KEY),
            u64::MAX.to_string().as_bytes(),
            None,
            Durability::Durable,
        )
        .await
        .unwrap();
        let err = s
            .lease(KEY, "a", 1_000, LeaseOp::Acquire)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err}");
        // `delete` of both keys starts the lease over, as on Redis.
        s.delete(&[KEY.to_owned(), fence_key(KEY)]).await.unwrap();
        assert_eq!(acquire(s, "a", 1_000).await, held("a", 1, 1_000));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_acquirers_exactly_one_holds() {
        let f = fixture();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = Arc::clone(&f.store);
            tasks.push(tokio::spawn(async move {
                let holder = format!("h{i}");
                let state = store
                    .lease(KEY, &holder, 60_000, LeaseOp::Acquire)
                    .await
                    .unwrap();
                (holder, state)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (holder, state) = task.await.unwrap();
            assert_eq!(state.token, 1, "{state:?}");
            if state.held {
                winners.push(holder);
            }
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        assert_eq!(acquire(&f.store, &winners[0], 60_000).await.token, 1);
    }
}
