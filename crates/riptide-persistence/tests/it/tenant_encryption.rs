//! Per-tenant encryption of cache values (issue 3, item 7), on every backend: sealed in
//! the store, bound to their key, unreadable (a counted miss) once the tenant's data key
//! is deleted.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use riptide_persistence::cache::CacheSealer;
use riptide_persistence::keys::{KeyHash, Namespace, Scope, ScopeKeys};
use riptide_persistence::store::CachePut;
use riptide_persistence::tenant::TenantError;
use riptide_persistence::tenant::crypto::MasterKey;
use riptide_persistence::tenant::data_keys::TenantKeys;
use riptide_persistence::{CacheConfig, CacheError, PersistentCacheManager, SharedStore, TenantId};

use super::support::{Backend, on_every_backend, store, tenant};

const MAGIC: u8 = 0xC7;
const FLAG_ENCRYPTED: u8 = 1;

fn scope_keys(store: &SharedStore, t: &str) -> ScopeKeys {
    ScopeKeys::new(
        store.key_prefix(),
        &Scope::Tenant(TenantId::parse(t).unwrap()),
    )
}

fn entry_key(store: &SharedStore, t: &str, key: &str) -> String {
    scope_keys(store, t).entry(&Namespace::of_key(key), &KeyHash::of(key))
}

fn html_page(kb: usize) -> String {
    let mut s = String::from("<html><head><title>Sealed tides</title></head><body>");
    let mut i = 0;
    while s.len() < kb * 1024 {
        s.push_str(&format!(
            "<p class=\"para\">Paragraph {i}: confidential notes on rivers, tides and estuaries.</p>\n"
        ));
        i += 1;
    }
    s.push_str("</body></html>");
    s
}

/// True when some 16-byte window of `plain` occurs in `raw`.
fn shares_a_16_byte_window(raw: &[u8], plain: &[u8]) -> bool {
    let stored: HashSet<&[u8]> = raw.windows(16).collect();
    plain.windows(16).any(|w| stored.contains(w))
}

/// A cache over `store` with `keys` as its sealer.
fn sealed_cache(store: &SharedStore, keys: &Arc<TenantKeys>) -> PersistentCacheManager {
    let cache = PersistentCacheManager::with_store(store.clone(), CacheConfig::default())
        .expect("valid config");
    cache.set_sealer(Box::new(keys.clone()));
    cache
}

async fn raw(store: &SharedStore, t: &str, key: &str) -> Bytes {
    store
        .get(&entry_key(store, t, key))
        .await
        .unwrap()
        .expect("the entry is in the store")
}

on_every_backend!(
    encrypted_tenant_values_are_sealed_in_the_store,
    other_tenants_stay_plain_and_enabled_without_key_refuses,
    deleted_key_makes_leftover_entries_counted_misses,
    sealed_bytes_are_bound_to_their_key,
    instances_agree_on_one_data_key,
);

async fn encrypted_tenant_values_are_sealed_in_the_store(b: Backend) {
    let ts = store(b).await;
    let keys = TenantKeys::new(ts.store.clone(), MasterKey::generate());
    let cache = sealed_cache(&ts.store, &keys);
    let t = tenant();
    let tid = TenantId::parse(&t).unwrap();
    keys.create(&tid).await.unwrap();

    let html = html_page(50);
    cache
        .set_bytes("page:home", Bytes::from(html.clone()), &t, None, None)
        .await
        .unwrap();
    cache
        .set("extract:a", &vec![html.clone()], Some(&t), None, None)
        .await
        .unwrap();
    assert_eq!(
        cache.get_bytes("page:home", &t).await.unwrap().unwrap(),
        html.as_bytes()
    );

    for key in ["page:home", "extract:a"] {
        let raw = raw(&ts.store, &t, key).await;
        assert_eq!(raw[0], MAGIC, "envelope magic");
        assert_eq!(raw[4] & FLAG_ENCRYPTED, FLAG_ENCRYPTED, "encrypted flag");
        assert!(
            !shares_a_16_byte_window(&raw, html.as_bytes()),
            "{key}: the store holds plaintext"
        );
        assert!(raw.len() < html.len(), "compressed before sealing");
    }
    // The wrapped data key is stored, and is not the plaintext of anything above.
    let dek = ts
        .store
        .get(&keys.record_key(&tid))
        .await
        .unwrap()
        .expect("wrapped data key stored");
    assert_eq!(dek.len(), 65);

    // A fresh manager (empty L1) with the keys opens the entries from the store.
    let fresh = sealed_cache(&ts.store, &keys);
    assert_eq!(
        fresh.get_bytes("page:home", &t).await.unwrap().unwrap(),
        html.as_bytes()
    );
    let batch = fresh
        .get_batch::<Vec<String>, _>(&["extract:a", "extract:missing"], &t)
        .await
        .unwrap();
    assert_eq!(batch, vec![Some(vec![html.clone()]), None]);
    // So does another instance with its own TenantKeys and the same master key.
    let other_keys = TenantKeys::new(ts.store.clone(), keys.master().clone());
    let other = sealed_cache(&ts.store, &other_keys);
    assert_eq!(
        other
            .get::<Vec<String>>("extract:a", Some(&t))
            .await
            .unwrap(),
        Some(vec![html.clone()])
    );
    // A manager without a sealer reads a miss: never ciphertext, never an error.
    let keyless =
        PersistentCacheManager::with_store(ts.store.clone(), CacheConfig::default()).unwrap();
    assert_eq!(keyless.get_bytes("page:home", &t).await.unwrap(), None);
    assert_eq!(keyless.stats().tenants[t.as_str()].misses, 1);
}

async fn other_tenants_stay_plain_and_enabled_without_key_refuses(b: Backend) {
    let ts = store(b).await;
    let keys = TenantKeys::new(ts.store.clone(), MasterKey::generate());
    let cache = sealed_cache(&ts.store, &keys);
    let html = html_page(50);

    // Never told, no data key: plain (compressed) as before.
    let plain = tenant();
    // Told "off": plain, without even looking for a key.
    let off = tenant();
    keys.set_enabled(&TenantId::parse(&off).unwrap(), false);
    for t in [&plain, &off] {
        cache
            .set_bytes("page", Bytes::from(html.clone()), t, None, None)
            .await
            .unwrap();
        let raw = raw(&ts.store, t, "page").await;
        assert_eq!(raw[4] & FLAG_ENCRYPTED, 0, "not sealed");
        assert_eq!(raw[3], 1, "LZ4 compressed");
        // Readable without any key.
        let keyless =
            PersistentCacheManager::with_store(ts.store.clone(), CacheConfig::default()).unwrap();
        assert_eq!(
            keyless.get_bytes("page", t).await.unwrap().unwrap(),
            html.as_bytes()
        );
    }
    // Global entries are never sealed.
    cache
        .set_bytes(
            "page",
            Bytes::from(html.clone()),
            &Scope::Global,
            None,
            None,
        )
        .await
        .unwrap();

    // Not told, no key yet (remembered briefly); then another instance creates the key
    // and this one is told "on": the next write is sealed at once.
    let later = tenant();
    let later_id = TenantId::parse(&later).unwrap();
    cache
        .set_bytes("page", Bytes::from(html.clone()), &later, None, None)
        .await
        .unwrap();
    assert_eq!(raw(&ts.store, &later, "page").await[4] & FLAG_ENCRYPTED, 0);
    TenantKeys::new(ts.store.clone(), keys.master().clone())
        .create(&later_id)
        .await
        .unwrap();
    keys.set_enabled(&later_id, true);
    cache
        .set_bytes("page", Bytes::from(html.clone()), &later, None, None)
        .await
        .unwrap();
    let sealed = raw(&ts.store, &later, "page").await;
    assert_eq!(sealed[4] & FLAG_ENCRYPTED, FLAG_ENCRYPTED);
    assert!(!shares_a_16_byte_window(&sealed, html.as_bytes()));

    // Told "on" but no data key: the write fails and nothing is stored in the clear.
    let on = tenant();
    keys.set_enabled(&TenantId::parse(&on).unwrap(), true);
    let err = cache
        .set_bytes("page", Bytes::from(html.clone()), &on, None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, CacheError::Sealing(_)), "{err:?}");
    assert_eq!(
        ts.store
            .get(&entry_key(&ts.store, &on, "page"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(cache.get_bytes("page", &on).await.unwrap(), None);
}

async fn deleted_key_makes_leftover_entries_counted_misses(b: Backend) {
    let ts = store(b).await;
    let master = MasterKey::generate();
    let keys = TenantKeys::new(ts.store.clone(), master.clone());
    let cache = sealed_cache(&ts.store, &keys);
    let t = tenant();
    let tid = TenantId::parse(&t).unwrap();
    keys.create(&tid).await.unwrap();
    cache
        .set_bytes("page", Bytes::from(html_page(50)), &t, None, None)
        .await
        .unwrap();
    cache
        .set("extract:x", &"value", Some(&t), None, None)
        .await
        .unwrap();

    assert!(keys.delete(&tid).await.unwrap(), "there was a key");
    assert!(!keys.delete(&tid).await.unwrap(), "deleted once");
    assert_eq!(keys.key_for(&tid).await.unwrap().map(|_| ()), None);

    // The entries are still in the store, but nobody can read them any more.
    assert!(
        ts.store
            .get(&entry_key(&ts.store, &t, "page"))
            .await
            .unwrap()
            .is_some()
    );
    for keys in [
        keys.clone(),
        TenantKeys::new(ts.store.clone(), master.clone()),
    ] {
        let fresh = sealed_cache(&ts.store, &keys);
        assert_eq!(fresh.get_bytes("page", &t).await.unwrap(), None);
        assert_eq!(
            fresh
                .get_batch::<String, _>(&["extract:x", "extract:y"], &t)
                .await
                .unwrap(),
            vec![None, None]
        );
        let stats = fresh.stats();
        let s = &stats.tenants[t.as_str()];
        assert_eq!((s.hits, s.misses, s.errors), (0, 3, 0), "{s:?}");
    }
}

async fn sealed_bytes_are_bound_to_their_key(b: Backend) {
    let ts = store(b).await;
    let master = MasterKey::generate();
    let keys = TenantKeys::new(ts.store.clone(), master.clone());
    let cache = sealed_cache(&ts.store, &keys);
    let (t, u) = (tenant(), tenant());
    let (tid, uid) = (TenantId::parse(&t).unwrap(), TenantId::parse(&u).unwrap());
    keys.create(&tid).await.unwrap();
    keys.create(&uid).await.unwrap();
    let html = html_page(20);
    cache
        .set_bytes("a", Bytes::from(html.clone()), &t, None, None)
        .await
        .unwrap();

    // Copy the sealed bytes of `a` onto key `b` of the same tenant, and onto `a` of
    // another encrypted tenant.
    let sealed = raw(&ts.store, &t, "a").await;
    for (owner, key) in [(&t, "b"), (&u, "a")] {
        let put = CachePut {
            key: entry_key(&ts.store, owner, key),
            namespace: "default".to_owned(),
            value: sealed.clone(),
            ttl_ms: None,
            tags: Vec::new(),
        };
        ts.store
            .cache_put(&scope_keys(&ts.store, owner), &[put], None)
            .await
            .unwrap();
    }
    let fresh = sealed_cache(&ts.store, &keys);
    assert_eq!(fresh.get_bytes("b", &t).await.unwrap(), None);
    assert_eq!(fresh.get_bytes("a", &u).await.unwrap(), None);
    assert_eq!(
        fresh.get_bytes("a", &t).await.unwrap().unwrap(),
        html.as_bytes()
    );
    let stats = fresh.stats();
    assert_eq!(stats.tenants[t.as_str()].misses, 1);
    assert_eq!(stats.tenants[u.as_str()].misses, 1);

    // An edited header (a later expiry) does not open either.
    let mut edited = sealed.to_vec();
    edited[13..21].copy_from_slice(&u64::MAX.to_le_bytes());
    let put = CachePut {
        key: entry_key(&ts.store, &t, "a"),
        namespace: "default".to_owned(),
        value: Bytes::from(edited),
        ttl_ms: None,
        tags: Vec::new(),
    };
    ts.store
        .cache_put(&scope_keys(&ts.store, &t), &[put], None)
        .await
        .unwrap();
    let fresh = sealed_cache(&ts.store, &keys);
    assert_eq!(fresh.get_bytes("a", &t).await.unwrap(), None);

    // A wrapped data key copied to another tenant does not unwrap there.
    let dek = ts.store.get(&keys.record_key(&tid)).await.unwrap().unwrap();
    ts.store.delete(&[keys.record_key(&uid)]).await.unwrap();
    ts.store
        .set(
            &keys.record_key(&uid),
            &dek,
            None,
            riptide_persistence::store::Durability::Durable,
        )
        .await
        .unwrap();
    let other = TenantKeys::new(ts.store.clone(), master);
    let err = other.key_for(&uid).await.unwrap_err();
    assert!(matches!(err, TenantError::Crypto(_)), "{err:?}");
    // Through the cache, a key that cannot be unwrapped fails the read loudly (a wrong
    // master key is a configuration error, not a miss).
    let loud = sealed_cache(&ts.store, &other);
    let err = loud.get_bytes("a", &u).await.unwrap_err();
    assert!(matches!(err, CacheError::Sealing(_)), "{err:?}");
}

async fn instances_agree_on_one_data_key(b: Backend) {
    let ts = store(b).await;
    let master = MasterKey::generate();
    let one = TenantKeys::new(ts.store.clone(), master.clone());
    let two = TenantKeys::new(ts.store.clone(), master.clone());
    let t = tenant();
    let tid = TenantId::parse(&t).unwrap();
    let (a, b2) = tokio::join!(one.create(&tid), two.create(&tid));
    a.unwrap();
    b2.unwrap();
    // Instance two was never told about the setting: the stored key makes it seal.
    let scope = Scope::Tenant(tid.clone());
    assert!(two.key_for_write(&scope).await.unwrap().is_some());
    let three = TenantKeys::new(ts.store.clone(), master);
    assert!(three.key_for_write(&scope).await.unwrap().is_some());

    let c1 = sealed_cache(&ts.store, &one);
    let c2 = sealed_cache(&ts.store, &two);
    c1.set("k1", &"from one", Some(&t), None, None)
        .await
        .unwrap();
    c2.set("k2", &"from two", Some(&t), None, None)
        .await
        .unwrap();
    assert_eq!(
        c2.get::<String>("k1", Some(&t)).await.unwrap().as_deref(),
        Some("from one")
    );
    assert_eq!(
        c1.get::<String>("k2", Some(&t)).await.unwrap().as_deref(),
        Some("from two")
    );
    // Both wrote sealed entries.
    for key in ["k1", "k2"] {
        assert_eq!(
            raw(&ts.store, &t, key).await[4] & FLAG_ENCRYPTED,
            FLAG_ENCRYPTED
        );
    }
    // Creating again keeps the key: old entries stay readable.
    one.create(&tid).await.unwrap();
    let c3 = sealed_cache(
        &ts.store,
        &TenantKeys::new(ts.store.clone(), one.master().clone()),
    );
    assert_eq!(
        c3.get::<String>("k1", Some(&t)).await.unwrap().as_deref(),
        Some("from one")
    );
}
