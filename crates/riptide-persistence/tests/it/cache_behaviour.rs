//! PersistentCacheManager behaviour, on every backend.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use riptide_persistence::cache::{
    CacheWarmer, FixedBudget, Invalidation, LookupSource, WarmLoader, WarmValue,
};
use riptide_persistence::keys::{KeyHash, Namespace, Scope, ScopeKeys};
use riptide_persistence::{
    CacheConfig, CacheError, CacheMetadata, CompressionAlgorithm, LegacyCacheAdapter,
    PersistentCacheManager, TenantId,
};
use serde::{Deserialize, Serialize};

use super::support::{Backend, cache, on_every_backend, tenant};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Page {
    title: String,
    words: u32,
}

fn store_key(cache: &PersistentCacheManager, tenant: Option<&str>, key: &str) -> String {
    let scope = match tenant {
        Some(t) => Scope::Tenant(TenantId::parse(t).unwrap()),
        None => Scope::Global,
    };
    ScopeKeys::new(cache.store().key_prefix(), &scope)
        .entry(&Namespace::of_key(key), &KeyHash::of(key))
}

fn html_page(kb: usize) -> String {
    let mut s = String::from("<html><head><title>RipTide</title></head><body>");
    let mut i = 0;
    while s.len() < kb * 1024 {
        s.push_str(&format!(
            "<p class=\"para\">Paragraph {i} of readable content about rivers and tides.</p>\n"
        ));
        i += 1;
    }
    s.push_str("</body></html>");
    s
}

on_every_backend!(
    typed_round_trip_and_misses,
    sub_second_ttl_expires,
    compression_is_real_in_the_store,
    oversize_entries_are_refused,
    batches_round_trip,
    get_or_load_runs_the_loader_once,
    failed_loads_release_waiters,
    invalidation_by_tag_namespace_and_clear,
    budget_evicts_only_the_tenants_own_entries,
    warming_loads_missing_and_reports,
    remote_invalidation_refreshes_l1,
    legacy_adapter_round_trips,
);

async fn typed_round_trip_and_misses(b: Backend) {
    let (cache, _s) = cache(b, CacheConfig::default()).await;
    let t = tenant();
    let page = Page {
        title: "Tides".into(),
        words: 42,
    };
    assert_eq!(
        cache.get::<Page>("extract:a", Some(&t)).await.unwrap(),
        None
    );
    cache
        .set(
            "extract:a",
            &page,
            Some(&t),
            Some(Duration::from_secs(60)),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        cache.get::<Page>("extract:a", Some(&t)).await.unwrap(),
        Some(page.clone())
    );
    // Global scope and another tenant do not see it.
    assert_eq!(cache.get::<Page>("extract:a", None).await.unwrap(), None);
    assert_eq!(
        cache
            .get::<Page>("extract:a", Some(&tenant()))
            .await
            .unwrap(),
        None
    );
    // Raw bytes are served as stored.
    cache
        .set_bytes("body", Bytes::from_static(b"{\"ok\":1}"), &t, None, None)
        .await
        .unwrap();
    assert_eq!(
        cache.get_bytes("body", &t).await.unwrap().unwrap().as_ref(),
        b"{\"ok\":1}"
    );
    // A value of another type is a clear error, not a panic.
    assert!(matches!(
        cache.get::<u64>("extract:a", Some(&t)).await,
        Err(CacheError::Deserialize(_))
    ));
    // Bad tenant ids never reach a key.
    for bad in ["", "UPPER", "a:b", "{x}", "../etc"] {
        assert!(
            matches!(
                cache.get::<Page>("k", Some(bad)).await,
                Err(CacheError::Invalid(_))
            ),
            "{bad}"
        );
        assert!(cache.set("k", &1, Some(bad), None, None).await.is_err());
    }
    assert!(cache.delete("extract:a", &t).await.unwrap());
    assert!(!cache.delete("extract:a", &t).await.unwrap());
    assert_eq!(
        cache.get::<Page>("extract:a", Some(&t)).await.unwrap(),
        None
    );
    let stats = cache.stats();
    let ts = &stats.tenants[t.as_str()];
    assert!(ts.hits >= 2 && ts.misses >= 2 && ts.sets == 2, "{ts:?}");
    assert!(ts.latency["get"].p99_us > 0.0);
    assert!(matches!(
        cache
            .set("k", &1, Some(&t), Some(Duration::ZERO), None)
            .await,
        Err(CacheError::InvalidTtl(_))
    ));
}

async fn sub_second_ttl_expires(b: Backend) {
    let (cache, _s) = cache(b, CacheConfig::default()).await;
    let t = tenant();
    cache
        .set(
            "short",
            "lived",
            Some(&t),
            Some(Duration::from_millis(150)),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        cache
            .get::<String>("short", Some(&t))
            .await
            .unwrap()
            .as_deref(),
        Some("lived")
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        cache.get::<String>("short", Some(&t)).await.unwrap(),
        None,
        "expired in L1 and L2"
    );
    assert_eq!(
        cache.usage(&t).await.unwrap().entries,
        0,
        "expired entries stop counting"
    );
}

async fn compression_is_real_in_the_store(b: Backend) {
    for (algo, byte) in [
        (CompressionAlgorithm::Lz4, 1u8),
        (CompressionAlgorithm::Zstd, 2u8),
    ] {
        let cfg = CacheConfig {
            compression_algorithm: algo,
            ..Default::default()
        };
        let (cache, _s) = cache(b, cfg).await;
        let t = tenant();
        let html = html_page(50);
        cache
            .set_bytes("page", Bytes::from(html.clone()), &t, None, None)
            .await
            .unwrap();
        let raw = cache
            .store()
            .get(&store_key(&cache, Some(&t), "page"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(raw[0], 0xC7, "envelope magic");
        assert_eq!(raw[3], byte, "compression byte for {algo:?}");
        assert!(
            raw.len() * 4 < html.len(),
            "{algo:?}: {} stored for {} plain",
            raw.len(),
            html.len()
        );
        assert!(
            !raw.windows(9)
                .any(|w| w == b"Paragraph 4".get(..9).unwrap())
                || raw.len() < html.len()
        );
        // A fresh manager (empty L1) decodes it from the store.
        let other =
            PersistentCacheManager::with_store(cache.store().clone(), CacheConfig::default())
                .unwrap();
        assert_eq!(
            other.get_bytes("page", &t).await.unwrap().unwrap().as_ref(),
            html.as_bytes()
        );
        // Small values stay plain.
        cache
            .set_bytes("tiny", Bytes::from_static(b"tiny"), &t, None, None)
            .await
            .unwrap();
        let raw = cache
            .store()
            .get(&store_key(&cache, Some(&t), "tiny"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(raw[3], 0);
    }
}

async fn oversize_entries_are_refused(b: Backend) {
    let cfg = CacheConfig {
        max_entry_size_bytes: 1000,
        ..Default::default()
    };
    let (cache, _s) = cache(b, cfg).await;
    let t = tenant();
    let err = cache
        .set_bytes("big", Bytes::from(vec![b'x'; 1001]), &t, None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CacheError::EntryTooLarge {
                size: 1001,
                max: 1000
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("max_entry_size_bytes"));
    assert_eq!(cache.get_bytes("big", &t).await.unwrap(), None);
}

async fn batches_round_trip(b: Backend) {
    let (cache, _s) = cache(b, CacheConfig::default()).await;
    let t = tenant();
    let entries: Vec<(String, u32)> = (0..100).map(|i| (format!("k{i}"), i)).collect();
    cache.set_batch(&entries, &t, None, None).await.unwrap();
    let mut keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
    keys.push("absent".into());
    // A second manager has an empty L1, so this is one store round trip for all keys.
    let cold =
        PersistentCacheManager::with_store(cache.store().clone(), CacheConfig::default()).unwrap();
    let got: Vec<Option<u32>> = cold.get_batch(&keys, &t).await.unwrap();
    assert_eq!(got.len(), 101);
    assert!(
        got[..100]
            .iter()
            .enumerate()
            .all(|(i, v)| *v == Some(i as u32))
    );
    assert_eq!(got[100], None);
    let s = &cold.stats().tenants[t.as_str()];
    assert_eq!((s.hits, s.misses), (100, 1));
    assert_eq!(cache.usage(&t).await.unwrap().entries, 100);
}

async fn get_or_load_runs_the_loader_once(b: Backend) {
    let (cache, _s) = cache(b, CacheConfig::default()).await;
    let cache = Arc::new(cache);
    let t = tenant();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (cache, t, calls) = (cache.clone(), t.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_load_bytes("extract:https://example.com/", &t, None, None, || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok::<_, String>(Bytes::from_static(b"extracted"))
                })
                .await
                .unwrap()
        }));
    }
    let mut sources = Vec::new();
    for task in tasks {
        let found = task.await.unwrap();
        assert_eq!(found.value.as_ref(), b"extracted");
        sources.push(found.source);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one load for 32 concurrent misses"
    );
    assert_eq!(
        sources
            .iter()
            .filter(|s| **s == LookupSource::Loaded)
            .count(),
        1
    );
    let again = cache
        .get_or_load_bytes("extract:https://example.com/", &t, None, None, || async {
            Err::<Bytes, _>("must not run")
        })
        .await
        .unwrap();
    assert_eq!(again.source, LookupSource::Hit);
    // Typed form.
    let page = cache
        .get_or_load("typed", &t, None, None, || async {
            Ok::<_, String>(Page {
                title: "x".into(),
                words: 1,
            })
        })
        .await
        .unwrap();
    assert_eq!((page.value.words, page.source), (1, LookupSource::Loaded));
}

async fn failed_loads_release_waiters(b: Backend) {
    let cfg = CacheConfig {
        load_timeout_ms: 200,
        ..Default::default()
    };
    let (cache, _s) = cache(b, cfg).await;
    let cache = Arc::new(cache);
    let t = tenant();
    let leader = {
        let (cache, t) = (cache.clone(), t.clone());
        tokio::spawn(async move {
            cache
                .get_or_load_bytes("k", &t, None, None, || async {
                    tokio::time::sleep(Duration::from_millis(80)).await;
                    Err::<Bytes, _>("origin said 502")
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let follower = cache
        .get_or_load_bytes("k", &t, None, None, || async {
            Ok::<_, String>(Bytes::new())
        })
        .await;
    match follower {
        Err(CacheError::LoadFailed { source, .. }) => {
            assert!(source.to_string().contains("502"))
        }
        other => panic!("follower should share the failure, got {other:?}"),
    }
    assert!(matches!(
        leader.await.unwrap(),
        Err(CacheError::LoadFailed { .. })
    ));
    // Nothing was cached; the next caller loads again.
    let ok = cache
        .get_or_load_bytes("k", &t, None, None, || async {
            Ok::<_, String>(Bytes::from_static(b"v"))
        })
        .await;
    assert_eq!(ok.unwrap().source, LookupSource::Loaded);
    // A slow leader makes followers time out with a clear error.
    let slow = {
        let (cache, t) = (cache.clone(), t.clone());
        tokio::spawn(async move {
            cache
                .get_or_load_bytes("slow", &t, None, None, || async {
                    tokio::time::sleep(Duration::from_millis(600)).await;
                    Ok::<_, String>(Bytes::from_static(b"late"))
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let waited = cache
        .get_or_load_bytes("slow", &t, None, None, || async {
            Ok::<_, String>(Bytes::new())
        })
        .await;
    assert!(
        matches!(waited, Err(CacheError::LoadTimeout { waited_ms: 200, .. })),
        "{waited:?}"
    );
    assert!(slow.await.unwrap().is_ok());
}

async fn invalidation_by_tag_namespace_and_clear(b: Backend) {
    let (cache, _s) = cache(b, CacheConfig::default()).await;
    let (a, other) = (tenant(), tenant());
    let tagged = Some(CacheMetadata::with_tags(["site:example.com"]));
    for t in [&a, &other] {
        cache
            .set("extract:1", &1, Some(t), None, tagged.clone())
            .await
            .unwrap();
        cache
            .set("extract:2", &2, Some(t), None, None)
            .await
            .unwrap();
        cache
            .set("search:3", &3, Some(t), None, tagged.clone())
            .await
            .unwrap();
        cache
            .set("search:4", &4, Some(t), None, None)
            .await
            .unwrap();
    }
    assert_eq!(
        cache.invalidate_tag("site:example.com", &a).await.unwrap(),
        2
    );
    assert_eq!(cache.get::<u32>("extract:1", Some(&a)).await.unwrap(), None);
    assert_eq!(
        cache.get::<u32>("extract:2", Some(&a)).await.unwrap(),
        Some(2)
    );
    assert_eq!(cache.invalidate_namespace("search", &a).await.unwrap(), 1);
    assert_eq!(cache.get::<u32>("search:4", Some(&a)).await.unwrap(), None);
    assert_eq!(cache.clear(&a).await.unwrap(), 1);
    assert_eq!(cache.usage(&a).await.unwrap().entries, 0);
    // The other tenant kept everything.
    for (k, v) in [
        ("extract:1", 1),
        ("extract:2", 2),
        ("search:3", 3),
        ("search:4", 4),
    ] {
        assert_eq!(
            cache.get::<u32>(k, Some(&other)).await.unwrap(),
            Some(v),
            "{k}"
        );
    }
    assert!(cache.invalidate_tag("bad tag", &a).await.is_err());
    assert!(cache.invalidate_namespace("Bad*", &a).await.is_err());
}

async fn budget_evicts_only_the_tenants_own_entries(b: Backend) {
    let (cache, _s) = cache(
        b,
        CacheConfig {
            enable_compression: false,
            ..Default::default()
        },
    )
    .await;
    cache.set_budget(Box::new(FixedBudget(20_000)));
    let (a, bystander) = (tenant(), tenant());
    cache
        .set_bytes(
            "keep",
            Bytes::from(vec![b'b'; 5_000]),
            &bystander,
            None,
            None,
        )
        .await
        .unwrap();
    for i in 0..10u64 {
        // Later entries expire later, so the oldest-expiring go first.
        let ttl = Duration::from_secs(100 + i);
        cache
            .set_bytes(
                &format!("e{i}"),
                Bytes::from(vec![b'a'; 3_000]),
                &a,
                Some(ttl),
                None,
            )
            .await
            .unwrap();
    }
    let usage = cache.usage(&a).await.unwrap();
    assert!(usage.used_bytes <= 20_000, "{usage:?}");
    // Exactly what the store holds for the tenant.
    let mut stored = 0;
    let mut live = Vec::new();
    for i in 0..10 {
        if let Some(raw) = cache
            .store()
            .get(&store_key(&cache, Some(&a), &format!("e{i}")))
            .await
            .unwrap()
        {
            stored += raw.len() as u64;
            live.push(i);
        }
    }
    assert_eq!(stored, usage.used_bytes);
    assert_eq!(live.len() as u64, usage.entries);
    assert_eq!(
        live,
        (10 - live.len()..10).collect::<Vec<_>>(),
        "soonest-expiring evicted first"
    );
    assert!(cache.stats().tenants[a.as_str()].evictions >= 4);
    assert!(cache.get_bytes("keep", &bystander).await.unwrap().is_some());
    let err = cache
        .set_bytes("huge", Bytes::from(vec![0; 25_000]), &a, None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CacheError::OverBudget { budget: 20_000, .. }),
        "{err}"
    );
    // Overwrites replace, not add.
    let before = cache.usage(&a).await.unwrap();
    cache
        .set_bytes(
            "e9",
            Bytes::from(vec![b'z'; 3_000]),
            &a,
            Some(Duration::from_secs(200)),
            None,
        )
        .await
        .unwrap();
    assert_eq!(cache.usage(&a).await.unwrap(), before);
}

struct CountingLoader(Arc<AtomicUsize>);

#[async_trait::async_trait]
impl WarmLoader for CountingLoader {
    async fn load(&self, _tenant: Option<&TenantId>, key: &str) -> Result<WarmValue, String> {
        self.0.fetch_add(1, Ordering::SeqCst);
        if key.contains("broken") {
            return Err(format!("cannot fetch {key}"));
        }
        Ok(WarmValue::bytes(Bytes::from(format!("content of {key}"))))
    }
}

async fn warming_loads_missing_and_reports(b: Backend) {
    let (cache, _s) = cache(b, CacheConfig::default()).await;
    let t = tenant();
    // The seed's startup path: a warmer without loader and no keys is fine.
    let warmer = Arc::new(CacheWarmer::new(100));
    cache.enable_warming(warmer.clone());
    assert_eq!(cache.warm_cache(vec![]).await.unwrap().requested, 0);
    assert!(matches!(
        cache.warm_cache(vec!["x".into()]).await,
        Err(CacheError::NoWarmLoader)
    ));
    let calls = Arc::new(AtomicUsize::new(0));
    cache.enable_warming(Arc::new(
        CacheWarmer::new(3).with_loader(CountingLoader(calls.clone())),
    ));
    cache
        .set_bytes("u0", Bytes::from_static(b"already"), &t, None, None)
        .await
        .unwrap();
    let keys: Vec<String> = ["u0", "u1", "u2", "u3", "u4", "broken", "u1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let report = cache.warm_cache_for(&t, keys).await.unwrap();
    assert_eq!(
        (
            report.requested,
            report.warmed,
            report.fresh,
            report.failed.len()
        ),
        (6, 4, 1, 1),
        "{report:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!(
        cache.get_bytes("u3", &t).await.unwrap().unwrap().as_ref(),
        b"content of u3"
    );
    assert_eq!(
        cache.get_bytes("u0", &t).await.unwrap().unwrap().as_ref(),
        b"already"
    );
    // Entries close to expiry are warmed again; fresh ones are not.
    cache
        .set_bytes(
            "u4",
            Bytes::from_static(b"old"),
            &t,
            Some(Duration::from_secs(5)),
            None,
        )
        .await
        .unwrap();
    let report = cache
        .warm_cache_for(&t, vec!["u3".into(), "u4".into()])
        .await
        .unwrap();
    assert_eq!((report.warmed, report.fresh), (1, 1));
    // Disabled by config is an error, not a silent no-op.
    let (off, _s2) = super::support::cache(
        b,
        CacheConfig {
            enable_warming: false,
            ..Default::default()
        },
    )
    .await;
    assert!(matches!(
        off.warm_cache(vec!["k".into()]).await,
        Err(CacheError::WarmingDisabled)
    ));
}

async fn remote_invalidation_refreshes_l1(b: Backend) {
    let (a, s) = cache(b, CacheConfig::default()).await;
    let b_side =
        PersistentCacheManager::with_store(s.store.clone(), CacheConfig::default()).unwrap();
    let t = tenant();
    a.set(
        "k",
        &1,
        Some(&t),
        None,
        Some(CacheMetadata::with_tags(["g"])),
    )
    .await
    .unwrap();
    assert_eq!(b_side.get::<u32>("k", Some(&t)).await.unwrap(), Some(1));
    a.set(
        "k",
        &2,
        Some(&t),
        None,
        Some(CacheMetadata::with_tags(["g"])),
    )
    .await
    .unwrap();
    assert_eq!(
        b_side.get::<u32>("k", Some(&t)).await.unwrap(),
        Some(1),
        "served from B's L1"
    );
    b_side.apply_remote_invalidation(&Invalidation::Key {
        store_key: store_key(&a, Some(&t), "k"),
    });
    assert_eq!(b_side.get::<u32>("k", Some(&t)).await.unwrap(), Some(2));
    a.set(
        "k",
        &3,
        Some(&t),
        None,
        Some(CacheMetadata::with_tags(["g"])),
    )
    .await
    .unwrap();
    let scope = Scope::Tenant(TenantId::parse(&t).unwrap());
    b_side.apply_remote_invalidation(&Invalidation::Tag {
        scope: scope.clone(),
        tag: "g".into(),
    });
    assert_eq!(b_side.get::<u32>("k", Some(&t)).await.unwrap(), Some(3));
    a.set("k", &4, Some(&t), None, None).await.unwrap();
    b_side.apply_remote_invalidation(&Invalidation::Scope(scope));
    assert_eq!(b_side.get::<u32>("k", Some(&t)).await.unwrap(), Some(4));
}

async fn legacy_adapter_round_trips(b: Backend) {
    let (cache, _s) = cache(b, CacheConfig::default()).await;
    let mut legacy = LegacyCacheAdapter::new(Arc::new(cache));
    legacy.set("search:rust", "[\"result\"]", 60).await.unwrap();
    assert_eq!(
        legacy.get("search:rust").await.unwrap().as_deref(),
        Some("[\"result\"]")
    );
    assert_eq!(legacy.get("search:none").await.unwrap(), None);
}
