//! `/admin/cache`: stats, invalidation by URL, key, tag and namespace, clearing one
//! tenant or everything; bad selectors; every operation audited.

use std::time::Duration;

use riptide_api::extraction::cache_key::ExtractKey;
use riptide_extract::normalize_url;
use riptide_persistence::TenantId;
use riptide_persistence::cache::CacheMetadata;
use serde_json::json;

use crate::admin_common::{Admin, expect_error};
use crate::support::TestServer;

const TTL: Option<Duration> = Some(Duration::from_secs(600));

async fn put(server: &TestServer, tenant: Option<&str>, key: &str, tags: &[&str]) {
    let metadata = (!tags.is_empty()).then(|| CacheMetadata::with_tags(tags.iter().copied()));
    server
        .state
        .cache
        .set(key, &json!({"key": key}), tenant, TTL, metadata)
        .await
        .expect("cache write");
}

async fn present(server: &TestServer, tenant: Option<&str>, key: &str) -> bool {
    server
        .state
        .cache
        .get::<serde_json::Value>(key, tenant)
        .await
        .expect("cache read")
        .is_some()
}

#[tokio::test]
async fn stats_invalidation_and_clearing() {
    let server = TestServer::start().await;
    let admin = Admin::bootstrap(&server);
    admin.create_tenant("acme").await;
    admin.create_tenant("beta").await;

    // An /extract entry, as the handler keys it.
    let acme = TenantId::parse("acme").expect("id");
    let url = normalize_url("https://Example.com/page#top").expect("url");
    let extract_key = ExtractKey::new(&acme, &url, None);
    put(&server, Some("acme"), extract_key.as_str(), &[]).await;
    put(&server, Some("acme"), "plain", &[]).await;
    put(&server, Some("acme"), "tagged-1", &["news"]).await;
    put(&server, Some("acme"), "tagged-2", &["news"]).await;
    put(&server, Some("acme"), "search:rust", &[]).await;
    put(&server, Some("acme"), "search:go", &[]).await;
    put(&server, Some("beta"), "plain", &["news"]).await;
    put(&server, None, "global-entry", &[]).await;
    assert!(present(&server, Some("acme"), "plain").await);

    // Stats: overall and per tenant, with percentiles.
    let stats = admin.get_json("/admin/cache/stats", 200).await;
    assert!(stats["overall"]["sets"].as_u64() >= Some(8), "{stats}");
    assert!(
        stats["overall"]["latency"]["set"]["p99_us"].is_number(),
        "{stats}"
    );
    assert!(
        stats["tenants"]["acme"]["sets"].as_u64() >= Some(6),
        "{stats}"
    );
    assert!(stats["l1"]["entries"].is_number(), "{stats}");
    let one = admin
        .get_json("/admin/cache/stats?tenant_id=acme", 200)
        .await;
    assert_eq!(one["tenant_id"], "acme");
    assert_eq!(one["store"]["entries"], 6, "{one}");
    assert!(one["stats"]["hits"].as_u64() >= Some(1), "{one}");

    // By URL: another spelling of the same URL hits the /extract entry.
    let removed = admin
        .post_json(
            "/admin/cache/invalidate",
            &json!({"tenant_id": "acme", "url": "HTTPS://example.com:443/page"}),
            200,
        )
        .await;
    assert_eq!(removed["removed"], 1, "{removed}");
    assert_eq!(removed["value"], "https://example.com/page");
    assert!(!present(&server, Some("acme"), extract_key.as_str()).await);

    let by_key = admin
        .post_json(
            "/admin/cache/invalidate",
            &json!({"tenant_id": "acme", "key": "plain"}),
            200,
        )
        .await;
    assert_eq!(by_key["removed"], 1);
    assert!(!present(&server, Some("acme"), "plain").await);
    assert!(
        present(&server, Some("beta"), "plain").await,
        "beta untouched"
    );

    let by_tag = admin
        .post_json(
            "/admin/cache/invalidate",
            &json!({"tenant_id": "acme", "tag": "news"}),
            200,
        )
        .await;
    assert_eq!(by_tag["removed"], 2);
    let by_ns = admin
        .post_json(
            "/admin/cache/invalidate",
            &json!({"tenant_id": "acme", "namespace": "search"}),
            200,
        )
        .await;
    assert_eq!(by_ns["removed"], 2);
    let global = admin
        .post_json(
            "/admin/cache/invalidate",
            &json!({"key": "global-entry"}),
            200,
        )
        .await;
    assert_eq!(global["removed"], 1);
    assert!(global["tenant_id"].is_null());

    // Clear one tenant, then everything.
    put(&server, Some("acme"), "again", &[]).await;
    let cleared = admin
        .post_json("/admin/cache/clear", &json!({"tenant_id": "acme"}), 200)
        .await;
    assert_eq!(cleared["removed"], 1);
    assert!(present(&server, Some("beta"), "plain").await);
    put(&server, None, "global-entry", &[]).await;
    let all = admin
        .post_json("/admin/cache/clear", &json!({"all": true}), 200)
        .await;
    assert_eq!(all["all"], true);
    assert_eq!(all["scopes"], 3, "two tenants and the global scope: {all}");
    assert_eq!(all["removed"], 2, "{all}");
    assert!(!present(&server, Some("beta"), "plain").await);
    assert!(!present(&server, None, "global-entry").await);

    // Audited, with what was removed.
    let audit = admin.get_json("/admin/audit?action=cache", 200).await;
    let records = audit["records"].as_array().expect("records");
    assert_eq!(records.len(), 7, "{audit}");
    assert_eq!(records[0]["operation"], "cache.invalidate");
    assert_eq!(records[0]["resource"], "url=https://example.com/page");
    assert_eq!(records[0]["tenant_id"], "acme");
    assert_eq!(records[0]["metadata"]["removed"], "1");
    assert_eq!(records[0]["actor"], "admin:bootstrap");
    let last = &records[6];
    assert_eq!(last["operation"], "cache.clear");
    assert_eq!(last["resource"], "all");
    assert_eq!(last["outcome"], "ok");
}

#[tokio::test]
async fn selectors_are_checked() {
    let server = TestServer::start().await;
    let admin = Admin::bootstrap(&server);
    admin.create_tenant("acme").await;
    for body in [
        json!({"tenant_id": "acme"}),
        json!({"tenant_id": "acme", "key": "a", "tag": "b"}),
        json!({"url": "https://example.com/"}),
    ] {
        let response = admin.post("/admin/cache/invalidate", &body).await;
        expect_error(response, 400, "invalid_selector").await;
    }
    for (body, status, code) in [
        (
            json!({"tenant_id": "acme", "url": "ftp://x/"}),
            400,
            "invalid_url",
        ),
        (
            json!({"tenant_id": "acme", "tag": "has space"}),
            400,
            "invalid_input",
        ),
        (
            json!({"tenant_id": "acme", "namespace": "UPPER"}),
            400,
            "invalid_input",
        ),
        (
            json!({"tenant_id": "Bad Id", "key": "k"}),
            400,
            "invalid_tenant_id",
        ),
        (json!({"tenant_id": "nobody", "key": "k"}), 404, "not_found"),
        (
            json!({"tenant_id": "acme", "keys": ["k"]}),
            400,
            "invalid_json",
        ),
    ] {
        let response = admin.post("/admin/cache/invalidate", &body).await;
        expect_error(response, status, code).await;
    }
    for body in [
        json!({}),
        json!({"all": false}),
        json!({"all": true, "tenant_id": "acme"}),
    ] {
        let response = admin.post("/admin/cache/clear", &body).await;
        expect_error(response, 400, "invalid_selector").await;
    }
    expect_error(
        admin
            .post("/admin/cache/clear", &json!({"all": "yes"}))
            .await,
        400,
        "invalid_json",
    )
    .await;
    expect_error(
        admin.get("/admin/cache/stats?tenant_id=nobody").await,
        404,
        "not_found",
    )
    .await;
    expect_error(
        admin.get("/admin/cache/stats?tenant=acme").await,
        400,
        "invalid_query",
    )
    .await;
}
