//! The store's own tests; shared fixtures for the cache and sweeper tests too.

use super::*;
use crate::clock::ManualClock;
use crate::keys::ScopeKeys;
use crate::keys::{KeyHash, Namespace, Scope};
use crate::prelude::*;
use crate::tenant_id::TenantId;
use crate::{CachePut, Durability, ScopeUsage};

/// A fixed start time, far from 0.
pub(crate) const T0: u64 = 1_700_000_000_000;

/// Background tasks that never run during a test unless it asks for them.
pub(crate) fn quiet_config() -> EmbeddedConfig {
    EmbeddedConfig {
        sweep_interval_ms: 3_600_000,
        flush_interval_ms: 3_600_000,
        page_cache_bytes: 4 * 1024 * 1024,
        ..EmbeddedConfig::default()
    }
}

pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub store: Arc<EmbeddedStore>,
}

pub(crate) fn fixture_with(cfg: &EmbeddedConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = EmbeddedStore::open(dir.path(), cfg, clock.clone()).unwrap();
    Fixture { dir, clock, store }
}

pub(crate) fn fixture() -> Fixture {
    fixture_with(&quiet_config())
}

pub(crate) fn tenant(id: &str) -> ScopeKeys {
    ScopeKeys::new("riptide", &Scope::Tenant(TenantId::parse(id).unwrap()))
}

pub(crate) fn entry_key(scope: &ScopeKeys, ns: &str, name: &str) -> String {
    scope.entry(&Namespace::parse(ns).unwrap(), &KeyHash::of(name))
}

/// A cache put of `len` bytes of `name`'s first byte.
pub(crate) fn cput(
    scope: &ScopeKeys,
    ns: &str,
    name: &str,
    len: usize,
    ttl_ms: Option<u64>,
    tags: &[&str],
) -> CachePut {
    CachePut {
        key: entry_key(scope, ns, name),
        namespace: ns.to_owned(),
        value: Bytes::from(vec![name.as_bytes()[0]; len]),
        ttl_ms,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
    }
}

#[tokio::test]
async fn set_get_and_missing() {
    let f = fixture();
    assert_eq!(f.store.kind(), StoreKind::Embedded);
    assert_eq!(f.store.key_prefix(), "riptide");
    f.store.ping().await.unwrap();
    f.store
        .set("k", b"hello", None, Durability::Durable)
        .await
        .unwrap();
    assert_eq!(
        f.store.get("k").await.unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(f.store.get("nope").await.unwrap(), None);
    f.store
        .set("k", b"", None, Durability::Cache)
        .await
        .unwrap();
    assert_eq!(f.store.get("k").await.unwrap().as_deref(), Some(&b""[..]));
}

#[tokio::test]
async fn ttl_expires_to_the_millisecond() {
    let f = fixture();
    f.store
        .set("short", b"v", Some(250), Durability::Cache)
        .await
        .unwrap();
    f.store
        .set("long", b"v", Some(60_000), Durability::Cache)
        .await
        .unwrap();
    f.clock.advance_ms(249);
    assert!(f.store.get("short").await.unwrap().is_some());
    f.clock.advance_ms(1);
    assert_eq!(f.store.get("short").await.unwrap(), None);
    let many = f
        .store
        .get_many(&["short".into(), "long".into()])
        .await
        .unwrap();
    assert_eq!(many, vec![None, Some(Bytes::from_static(b"v"))]);
}

#[tokio::test]
async fn rewriting_a_value_replaces_its_ttl() {
    let f = fixture();
    f.store
        .set("k", b"1", Some(100), Durability::Cache)
        .await
        .unwrap();
    f.store
        .set("k", b"2", None, Durability::Cache)
        .await
        .unwrap();
    f.clock.advance_ms(1_000);
    assert_eq!(f.store.sweep_now().unwrap(), 0);
    assert_eq!(f.store.get("k").await.unwrap().as_deref(), Some(&b"2"[..]));
}

#[tokio::test]
async fn ttl_of_zero_is_refused() {
    let f = fixture();
    let err = f
        .store
        .set("k", b"v", Some(0), Durability::Cache)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err}");
    let batch = vec![
        ("a".to_owned(), Bytes::from_static(b"1"), None),
        ("b".to_owned(), Bytes::new(), Some(0)),
    ];
    assert!(matches!(
        f.store.set_many(&batch, Durability::Cache).await,
        Err(StoreError::Backend(_))
    ));
    assert_eq!(
        f.store.get("a").await.unwrap(),
        None,
        "nothing of a refused batch is written"
    );
    let scope = tenant("acme");
    let put = cput(&scope, "ns", "x", 1, Some(0), &[]);
    assert!(matches!(
        f.store.cache_put(&scope, &[put], None).await,
        Err(StoreError::Backend(_))
    ));
}

#[tokio::test]
async fn get_many_and_set_many_keep_order() {
    let f = fixture();
    let batch: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|k| ((*k).to_owned(), Bytes::from(k.repeat(3)), None))
        .collect();
    f.store.set_many(&batch, Durability::Durable).await.unwrap();
    let keys: Vec<String> = ["c", "missing", "a", "b", "a"]
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
    let got = f.store.get_many(&keys).await.unwrap();
    let got: Vec<Option<&[u8]>> = got.iter().map(|v| v.as_deref()).collect();
    assert_eq!(
        got,
        vec![
            Some(&b"ccc"[..]),
            None,
            Some(b"aaa"),
            Some(b"bbb"),
            Some(b"aaa")
        ]
    );
    assert!(f.store.get_many(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn delete_counts_live_values_once() {
    let f = fixture();
    f.store
        .set("a", b"1", None, Durability::Durable)
        .await
        .unwrap();
    f.store
        .set("b", b"2", Some(10), Durability::Durable)
        .await
        .unwrap();
    f.clock.advance_ms(10);
    let keys: Vec<String> = ["a", "b", "c", "a"]
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
    assert_eq!(f.store.delete(&keys).await.unwrap(), 1);
    assert_eq!(f.store.get("a").await.unwrap(), None);
    assert_eq!(
        f.store.sweep_now().unwrap(),
        0,
        "the expired value went with its index row"
    );
}

#[tokio::test]
async fn reopen_after_drop_keeps_data() {
    let f = fixture();
    let scope = tenant("acme");
    f.store
        .set("durable", b"d", None, Durability::Durable)
        .await
        .unwrap();
    let put = cput(&scope, "ns", "x", 10, Some(60_000), &["t"]);
    f.store
        .cache_put(&scope, std::slice::from_ref(&put), None)
        .await
        .unwrap();
    let weak = Arc::downgrade(&f.store.inner);
    drop(f.store);
    assert!(
        weak.upgrade().is_none(),
        "no background task keeps the store alive"
    );

    let store = EmbeddedStore::open(f.dir.path(), &quiet_config(), f.clock.clone()).unwrap();
    assert_eq!(
        store.get("durable").await.unwrap().as_deref(),
        Some(&b"d"[..])
    );
    assert_eq!(store.get(&put.key).await.unwrap(), Some(put.value));
    let usage = store.cache_usage(&scope).await.unwrap();
    assert_eq!(
        usage,
        ScopeUsage {
            used_bytes: 10,
            entries: 1
        }
    );
    assert_eq!(
        store.cache_remove_tag(&scope, "t").await.unwrap().removed,
        1
    );
}

#[tokio::test]
async fn a_second_open_of_a_live_store_is_refused() {
    let f = fixture();
    let err = EmbeddedStore::open(f.dir.path(), &quiet_config(), f.clock.clone()).unwrap_err();
    assert!(matches!(err, StoreError::Config(_)), "{err}");
}

#[test]
fn open_outside_a_runtime_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = EmbeddedStore::open(dir.path(), &quiet_config(), ManualClock::new(T0)).unwrap_err();
    assert!(matches!(err, StoreError::Config(_)), "{err}");
}

#[tokio::test]
async fn flush_tracks_non_durable_commits() {
    let f = fixture();
    let inner = &f.store.inner;
    assert!(!inner.flush().unwrap(), "nothing to flush after open");
    f.store
        .set("c", b"1", None, Durability::Cache)
        .await
        .unwrap();
    assert!(inner.flush().unwrap());
    assert!(!inner.flush().unwrap());
    f.store
        .set("c", b"2", None, Durability::Cache)
        .await
        .unwrap();
    f.store
        .set("d", b"3", None, Durability::Durable)
        .await
        .unwrap();
    assert!(
        !inner.flush().unwrap(),
        "a durable write covers earlier cache writes"
    );
}
