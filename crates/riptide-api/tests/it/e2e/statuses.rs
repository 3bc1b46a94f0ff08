//! Every error status the service answers, over the real binary, each with its JSON
//! body `{"error":{"code","message"}}` and stable code: 400, 401, 403, 404, 405, 409,
//! 413, 415, 429, 502, 504, and (on Redis, whose server this test kills) 503.

use std::time::Duration;

use reqwest::Method;
use riptide_test_support::{RedisServer, start_redis_server};
use serde_json::json;

use super::process::{
    Backend, Launch, Riptide, Tenant, eventually, expect_error, header_u64, json_body,
};
use crate::pages::Pages;

/// Longest a change may take to reach the request path (the record cache lives 1 s).
const PROPAGATION: Duration = Duration::from_millis(2_500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_status_on_the_embedded_store() {
    every_error_status(Backend::Embedded, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_status_on_redis_and_503_while_it_is_down() {
    let redis = start_redis_server();
    every_error_status(Backend::redis_at(redis.url()), Some(&redis)).await;
}

async fn every_error_status(backend: Backend, redis: Option<&RedisServer>) {
    let pages = Pages::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let launch = Launch::new(dir.path(), &backend)
        .set("extract.timeout_ms", json!(1000))
        .set("extract.connect_timeout_ms", json!(1000))
        .set("extract.max_body_bytes", json!(16 * 1024));
    let rt = Riptide::start(&launch).await;
    let acme = rt.create_tenant("acme", "professional", json!({})).await;
    let other = rt.create_tenant("other", "professional", json!({})).await;
    let article = pages.url("/pages/article.html");

    bad_requests(&rt, &acme, &article).await;
    unauthorized(&rt, &acme).await;
    forbidden(&rt, &acme, &other, &article).await;
    not_found_and_conflicts(&rt).await;
    too_large(&rt, &acme, &pages).await;
    rate_limited(&rt).await;
    upstream_failures(&rt, &acme, &pages).await;

    if let Some(redis) = redis {
        store_down(&rt, &acme, redis).await;
    }
    rt.stop().await;
}

/// 400: no `X-Tenant-ID`, malformed JSON, a bad URL, a malformed tenant id.
async fn bad_requests(rt: &Riptide, acme: &Tenant, article: &str) {
    let no_header = rt
        .client()
        .post(rt.url("/extract"))
        .bearer_auth(&acme.key)
        .json(&json!({"url": article}))
        .send()
        .await
        .expect("sent");
    expect_error(no_header, 400, "missing_tenant_header").await;

    let malformed = rt
        .as_tenant(acme, Method::POST, "/extract")
        .header("content-type", "application/json")
        .body("{\"url\": ")
        .send()
        .await
        .expect("sent");
    expect_error(malformed, 400, "invalid_json").await;

    for url in [
        "not a url",
        "ftp://example.com/",
        "http://user:pw@example.com/",
    ] {
        expect_error(rt.extract(acme, url).await, 400, "invalid_url").await;
    }
    let unknown_field = rt
        .post(acme, "/extract", json!({"url": article, "nope": 1}))
        .await;
    expect_error(unknown_field, 400, "invalid_request").await;

    let bad_id = rt
        .client()
        .get(rt.url("/usage"))
        .bearer_auth(&acme.key)
        .header("x-tenant-id", "NOT A TENANT")
        .send()
        .await
        .expect("sent");
    expect_error(bad_id, 400, "invalid_tenant_id").await;
    let admin_bad_json = rt
        .client()
        .post(rt.url("/admin/tenants"))
        .bearer_auth(rt.admin_token())
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("sent");
    expect_error(admin_bad_json, 400, "invalid_json").await;
}

/// 401: no key, an unknown key, a revoked key; the admin API without a valid token.
async fn unauthorized(rt: &Riptide, acme: &Tenant) {
    let no_key = rt
        .client()
        .get(rt.url("/usage"))
        .header("x-tenant-id", &acme.id)
        .send()
        .await
        .expect("sent");
    let headers = expect_error(no_key, 401, "unauthorized").await;
    assert_eq!(headers["www-authenticate"], "Bearer");

    let forged = Tenant {
        key: "rt_thisisnotakeyofanytenantatall0000".to_owned(),
        ..acme.clone()
    };
    expect_error(rt.get_as(&forged, "/usage").await, 401, "unauthorized").await;

    let second = rt.create_key(&acme.id).await;
    json_body(rt.get_as(&second, "/usage").await, 200).await;
    let revoked = rt
        .admin(
            Method::DELETE,
            &format!("/admin/tenants/{}/keys/{}", acme.id, second.key_id),
            None,
        )
        .await;
    assert_eq!(revoked.status(), 204);
    eventually("the revoked key is refused", PROPAGATION, || async {
        rt.get_as(&second, "/usage").await.status() == 401
    })
    .await;
    expect_error(rt.get_as(&second, "/usage").await, 401, "unauthorized").await;
    json_body(rt.get_as(acme, "/usage").await, 200).await;

    let anonymous = rt.client().get(rt.url("/admin/tenants")).send().await;
    expect_error(anonymous.expect("sent"), 401, "unauthorized").await;
    let wrong = rt
        .admin_as(&"x".repeat(40), Method::GET, "/admin/tenants", None)
        .await;
    expect_error(wrong, 401, "unauthorized").await;
}

/// 403: another tenant's id with a key, a suspended tenant, a plan without the route,
/// an admin token whose role is too low.
async fn forbidden(rt: &Riptide, acme: &Tenant, other: &Tenant, article: &str) {
    let mismatch = rt
        .client()
        .get(rt.url("/usage"))
        .bearer_auth(&acme.key)
        .header("x-tenant-id", &other.id)
        .send()
        .await
        .expect("sent");
    expect_error(mismatch, 403, "tenant_mismatch").await;

    let paused = rt.create_tenant("paused", "professional", json!({})).await;
    json_body(rt.get_as(&paused, "/usage").await, 200).await;
    let suspend = json!({"reason": "unpaid invoice"});
    let view = rt
        .admin_json(
            Method::POST,
            "/admin/tenants/paused/suspend",
            Some(&suspend),
            200,
        )
        .await;
    assert_eq!(view["status"], "suspended", "{view}");
    eventually("the suspension applies", PROPAGATION, || async {
        rt.extract(&paused, article).await.status() == 403
    })
    .await;
    expect_error(rt.extract(&paused, article).await, 403, "tenant_suspended").await;

    let free = rt.create_tenant("freebie", "free", json!({})).await;
    json_body(rt.get_as(&free, "/usage").await, 200).await;
    let crawl = rt.post(&free, "/crawl", json!({"urls": [article]})).await;
    expect_error(crawl, 403, "access_denied").await;

    let viewer = rt
        .admin_json(
            Method::POST,
            "/admin/tokens",
            Some(&json!({"name": "watcher", "role": "viewer"})),
            201,
        )
        .await;
    let viewer = viewer["token"].as_str().expect("token");
    let listed = rt
        .admin_as(viewer, Method::GET, "/admin/tenants", None)
        .await;
    json_body(listed, 200).await;
    let body = json!({
        "tenant_id": "nope", "name": "n", "owner_email": "n@example.com",
        "owner_name": "n", "billing_plan": "free",
    });
    let create = rt
        .admin_as(viewer, Method::POST, "/admin/tenants", Some(&body))
        .await;
    expect_error(create, 403, "insufficient_role").await;
}

/// 404 (a route, a session, a tenant), 405, 409.
async fn not_found_and_conflicts(rt: &Riptide) {
    expect_error(rt.get("/no/such/route").await, 404, "not_found").await;
    let ghost = rt.admin(Method::GET, "/admin/tenants/ghost", None).await;
    expect_error(ghost, 404, "not_found").await;
    let owner = rt.create_key("acme").await;
    let session = format!("/sessions/{}", "a".repeat(32));
    expect_error(rt.get_as(&owner, &session).await, 404, "not_found").await;
    expect_error(rt.delete_as(&owner, &session).await, 404, "not_found").await;

    expect_error(rt.get("/extract").await, 405, "method_not_allowed").await;
    let delete = rt.client().delete(rt.url("/healthz")).send().await;
    expect_error(delete.expect("sent"), 405, "method_not_allowed").await;

    let again = json!({
        "tenant_id": "acme", "name": "Acme again", "owner_email": "a@example.com",
        "owner_name": "A", "billing_plan": "basic",
    });
    let duplicate = rt.admin(Method::POST, "/admin/tenants", Some(&again)).await;
    expect_error(duplicate, 409, "already_exists").await;
}

/// 413 for a request body over the limit and for a page over `extract.max_body_bytes`;
/// 415 for a page that is not HTML.
async fn too_large(rt: &Riptide, acme: &Tenant, pages: &Pages) {
    let huge = json!({"url": format!("http://example.com/{}", "a".repeat(1_100_000))});
    let response = rt.post(acme, "/extract", huge).await;
    expect_error(response, 413, "body_too_large").await;

    let big = rt.extract(acme, &pages.url("/big")).await;
    expect_error(big, 413, "page_too_large").await;

    let json_page = rt.extract(acme, &pages.url("/data.json")).await;
    expect_error(json_page, 415, "not_html").await;
}

/// 429 with `Retry-After` and `RateLimit-*` from a tenant allowed one request a minute.
async fn rate_limited(rt: &Riptide) {
    let quotas = json!({"operations_per_minute": 1, "burst": 1});
    let limited = rt.create_tenant("limited", "basic", quotas).await;
    let first = rt.get_as(&limited, "/usage").await;
    assert_eq!(header_u64(first.headers(), "ratelimit-limit"), 1);
    assert_eq!(header_u64(first.headers(), "ratelimit-remaining"), 0);
    json_body(first, 200).await;

    let refused = rt.get_as(&limited, "/usage").await;
    let headers = expect_error(refused, 429, "rate_limited").await;
    let retry_after = header_u64(&headers, "retry-after");
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(header_u64(&headers, "ratelimit-limit"), 1);
    assert_eq!(header_u64(&headers, "ratelimit-remaining"), 0);
    let reset = header_u64(&headers, "ratelimit-reset");
    assert!(
        (retry_after..=60).contains(&reset),
        "RateLimit-Reset {reset}"
    );
}

/// 502 for an unreachable upstream and an upstream error status, 504 for a page slower
/// than `extract.timeout_ms`.
async fn upstream_failures(rt: &Riptide, acme: &Tenant, pages: &Pages) {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let unreachable = rt
        .extract(acme, &format!("http://127.0.0.1:{closed}/gone"))
        .await;
    expect_error(unreachable, 502, "upstream_unreachable").await;
    let failing = rt.extract(acme, &pages.url("/status/503")).await;
    expect_error(failing, 502, "upstream_status").await;

    let started = std::time::Instant::now();
    let slow = rt
        .extract(acme, &pages.url("/pages/article.html?delay_ms=5000"))
        .await;
    expect_error(slow, 504, "upstream_timeout").await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the fetch was cut at extract.timeout_ms: {:?}",
        started.elapsed()
    );
}

/// 503 while the Redis server is down: `/readyz` says so, liveness stays 200, a tenant
/// request that needs the store is refused; both recover when Redis is back.
async fn store_down(rt: &Riptide, acme: &Tenant, redis: &RedisServer) {
    // A Redis that keeps its data (an RDB snapshot, loaded on restart): one that comes back
    // empty is a lost store, 503 `store_identity_lost` (see `store_sanity.rs`).
    redis.command(&["SAVE"]).expect("SAVE");
    redis.kill();
    let ready = rt.get("/readyz").await;
    expect_error(ready, 503, "store_unavailable").await;
    json_body(rt.get("/healthz").await, 200).await;
    // Once the cached tenant record expires, authenticating needs the store.
    eventually("a tenant request is refused", PROPAGATION * 2, || async {
        rt.get_as(acme, "/usage").await.status() == 503
    })
    .await;
    expect_error(rt.get_as(acme, "/usage").await, 503, "store_unavailable").await;

    redis.restart();
    eventually("ready again", Duration::from_secs(15), || async {
        rt.get("/readyz").await.status() == 200
    })
    .await;
}
