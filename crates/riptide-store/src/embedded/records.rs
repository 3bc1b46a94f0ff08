//! Conditional writes of plain values: `set_if_absent` and `compare_and_swap`.
//!
//! Each is one write transaction that reads the current value and writes (or not) in the
//! same transaction; redb runs one write transaction at a time, so the check and the write
//! are atomic. An expired value counts as absent. As with `set`, a key that is also a
//! cache entry does not get its accounting updated by a write, but a delete by
//! `compare_and_swap` keeps it exact, as `delete` does.

use bytes::Bytes;

use super::tables::{CacheTables, KvTables};
use super::{EmbeddedStore, cache, check_ttl, expires_at};
use crate::{Durability, StoreResult};

/// `set_if_absent`: see [`crate::Store::set_if_absent`].
pub(super) async fn set_if_absent(
    store: &EmbeddedStore,
    key: &str,
    value: &[u8],
    ttl_ms: Option<u64>,
    durability: Durability,
) -> StoreResult<bool> {
    check_ttl(ttl_ms)?;
    let key = key.to_owned();
    let value = Bytes::copy_from_slice(value);
    store
        .write(durability, move |tx, now| {
            let mut tables = KvTables::open(tx)?;
            if tables.with_live(&key, now, |live| live.is_some())? {
                return Ok(false);
            }
            tables.put(&key, &value, expires_at(now, ttl_ms))?;
            Ok(true)
        })
        .await
}

/// `compare_and_swap`: see [`crate::Store::compare_and_swap`]. When both
/// `expected` and `new` are `None` and the key is absent, the (empty) swap succeeds.
pub(super) async fn compare_and_swap(
    store: &EmbeddedStore,
    key: &str,
    expected: Option<&[u8]>,
    new: Option<&[u8]>,
    durability: Durability,
) -> StoreResult<bool> {
    let key = key.to_owned();
    let expected = expected.map(Bytes::copy_from_slice);
    let new = new.map(Bytes::copy_from_slice);
    store
        .write(durability, move |tx, now| {
            let mut tables = CacheTables::open(tx)?;
            let matches = tables
                .data
                .with_live(&key, now, |live| live == expected.as_deref())?;
            if !matches {
                return Ok(false);
            }
            match new {
                Some(new) => tables.data.put(&key, &new, 0)?,
                None => {
                    cache::delete(&mut tables, std::slice::from_ref(&key), now)?;
                }
            }
            Ok(true)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cput, fixture, tenant};
    use crate::prelude::*;
    use crate::{Durability, StoreError};

    #[tokio::test]
    async fn set_if_absent_writes_only_over_absent_or_expired_values() {
        let f = fixture();
        let s = &f.store;
        assert!(
            s.set_if_absent("k", b"1", Some(100), Durability::Cache)
                .await
                .unwrap()
        );
        assert!(
            !s.set_if_absent("k", b"2", None, Durability::Durable)
                .await
                .unwrap()
        );
        assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"1"[..]));
        f.clock.advance_ms(100);
        assert!(
            s.set_if_absent("k", b"3", None, Durability::Durable)
                .await
                .unwrap(),
            "an expired value is absent"
        );
        f.clock.advance_ms(1_000_000);
        assert_eq!(
            s.sweep_now().unwrap(),
            0,
            "the rewrite dropped the old expiry"
        );
        assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"3"[..]));
        let err = s
            .set_if_absent("z", b"v", Some(0), Durability::Cache)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err}");
        assert_eq!(s.get("z").await.unwrap(), None);
    }

    #[tokio::test]
    async fn compare_and_swap_treats_expired_as_absent_and_clears_the_ttl() {
        let f = fixture();
        let s = &f.store;
        s.set("k", b"old", Some(100), Durability::Cache)
            .await
            .unwrap();
        assert!(
            !s.compare_and_swap("k", None, Some(b"x"), Durability::Cache)
                .await
                .unwrap()
        );
        assert!(
            s.compare_and_swap("k", Some(b"old"), Some(b"new"), Durability::Cache)
                .await
                .unwrap()
        );
        f.clock.advance_ms(1_000);
        assert_eq!(s.sweep_now().unwrap(), 0);
        assert_eq!(
            s.get("k").await.unwrap().as_deref(),
            Some(&b"new"[..]),
            "no TTL"
        );

        s.set("e", b"gone", Some(10), Durability::Cache)
            .await
            .unwrap();
        f.clock.advance_ms(10);
        assert!(
            !s.compare_and_swap("e", Some(b"gone"), Some(b"y"), Durability::Cache)
                .await
                .unwrap()
        );
        assert!(
            s.compare_and_swap("e", None, Some(b"y"), Durability::Cache)
                .await
                .unwrap()
        );
        assert!(
            s.compare_and_swap("absent", None, None, Durability::Cache)
                .await
                .unwrap()
        );
        assert_eq!(s.get("absent").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_swap_that_deletes_a_cache_entry_keeps_its_accounting() {
        let f = fixture();
        let scope = tenant("acme");
        let put = cput(&scope, "ns", "a", 10, None, &[]);
        f.store
            .cache_put(&scope, std::slice::from_ref(&put), None)
            .await
            .unwrap();
        assert!(
            f.store
                .compare_and_swap(&put.key, Some(&put.value), None, Durability::Cache)
                .await
                .unwrap()
        );
        let usage = f.store.cache_usage(&scope).await.unwrap();
        assert_eq!((usage.used_bytes, usage.entries), (0, 0));
    }
}
