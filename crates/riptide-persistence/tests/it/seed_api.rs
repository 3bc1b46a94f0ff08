//! The seed's calls compile and work exactly as the seed writes them.

use std::sync::Arc;
use std::time::Duration;

use riptide_persistence::{
    CacheConfig, CacheWarmer, LegacyCacheAdapter, PersistenceConfig, PersistentCacheManager,
    RedisConfig,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SearchResponse {
    results: Vec<String>,
}

struct TenantCtx {
    tenant_id: String,
}

/// `AppState::new` and the search handler of the seed, against a store URL.
async fn seed_flow(url: String) -> anyhow::Result<()> {
    let config_redis_url = url;
    let cache_ttl = 3600;
    let persistence_config = PersistenceConfig {
        redis: RedisConfig {
            url: config_redis_url.clone(),
            pool_size: 10,
            connection_timeout_ms: 5000,
            command_timeout_ms: 5000,
            ..Default::default()
        },
        cache: CacheConfig {
            default_ttl_seconds: cache_ttl,
            enable_compression: true,
            compression_threshold_bytes: 1024,
            enable_warming: true,
            ..Default::default()
        },
        ..Default::default()
    };

    let cache =
        PersistentCacheManager::new(&config_redis_url, persistence_config.cache.clone()).await?;

    // Enable cache warming
    let warmer = Arc::new(CacheWarmer::new(100));
    cache.enable_warming(warmer.clone());

    // Warm cache on startup
    let warm_keys: Vec<String> = vec![];
    cache.warm_cache(warm_keys).await?;

    let cache = Arc::new(cache);
    let tenant_ctx = TenantCtx {
        tenant_id: riptide_test_support::unique("tenant"),
    };
    let query = "rust persistence";
    let cache_key = format!("search:{}", query);
    let cached: Option<SearchResponse> = cache.get(&cache_key, Some(&tenant_ctx.tenant_id)).await?;
    assert!(cached.is_none());
    let result = SearchResponse {
        results: vec!["riptide".into()],
    };
    cache
        .set(
            &cache_key,
            &result,
            Some(&tenant_ctx.tenant_id),
            Some(std::time::Duration::from_secs(3600)),
            None, // metadata
        )
        .await?;
    let cached: Option<SearchResponse> = cache.get(&cache_key, Some(&tenant_ctx.tenant_id)).await?;
    assert_eq!(cached, Some(result));

    // Rollback plan: the legacy adapter.
    let mut legacy = LegacyCacheAdapter::new(cache.clone());
    legacy.set("legacy:key", "value", 60).await?;
    assert_eq!(legacy.get("legacy:key").await?.as_deref(), Some("value"));
    let _ = Duration::from_secs(1);
    Ok(())
}

#[tokio::test]
async fn seed_flow_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    seed_flow(dir.path().display().to_string()).await.unwrap();
}

#[tokio::test]
async fn seed_flow_on_redis() {
    seed_flow(riptide_test_support::redis_server().url())
        .await
        .unwrap();
}

#[tokio::test]
async fn seed_flow_on_redis_cluster() {
    seed_flow(riptide_test_support::redis_cluster().url())
        .await
        .unwrap();
}

#[tokio::test]
async fn managers_from_one_url_share_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().display().to_string();
    let a = PersistentCacheManager::new(&url, CacheConfig::default())
        .await
        .unwrap();
    let b = PersistentCacheManager::new(&url, CacheConfig::default())
        .await
        .unwrap();
    assert!(
        Arc::ptr_eq(a.store(), b.store()),
        "one open database per path"
    );
    a.set("k", &7u32, None, None, None).await.unwrap();
    assert_eq!(b.get::<u32>("k", None).await.unwrap(), Some(7));
    let r1 = PersistentCacheManager::new(
        &riptide_test_support::redis_server().url(),
        CacheConfig::default(),
    )
    .await
    .unwrap();
    let r2 = PersistentCacheManager::new(
        &riptide_test_support::redis_server().url(),
        CacheConfig::default(),
    )
    .await
    .unwrap();
    assert!(
        Arc::ptr_eq(r1.store(), r2.store()),
        "one pool per Redis URL"
    );
}

#[tokio::test]
async fn bad_urls_and_configs_are_clear_errors() {
    for url in ["", "http://example.com", "redis://", "memcached://x"] {
        let err = PersistentCacheManager::new(url, CacheConfig::default())
            .await
            .err()
            .expect(url);
        assert!(!err.to_string().is_empty());
    }
    let err = PersistentCacheManager::new("redis://127.0.0.1:1", CacheConfig::default())
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("unavailable"), "{err}");
    let bad = CacheConfig {
        zstd_level: 0,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let err = PersistentCacheManager::new(&dir.path().display().to_string(), bad)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("cache.zstd_level"), "{err}");
}
