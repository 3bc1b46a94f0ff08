//! The tenant middleware over HTTP: credentials (401), the tenant header (400, 403),
//! suspension and plan access (403), the rate limit and the transfer quota (429), and
//! multi-tenancy off.

use std::time::Duration;

use reqwest::Method;
use riptide_persistence::tenant::BillingPlan;
use serde_json::json;

use crate::pages::Pages;
use crate::support::json_of;
use crate::tenant_client::{Caller, error_of, eventually, header_u64, start, x_cache};

#[tokio::test]
async fn missing_malformed_unknown_and_revoked_keys_are_401() {
    let server = start(|_| {}).await;
    let acme = Caller::professional(&server, "acme").await;
    let client = server.client();
    let usage = server.url("/usage");

    let none = client
        .get(&usage)
        .header("x-tenant-id", "acme")
        .send()
        .await
        .expect("GET");
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    assert_eq!(error_of(none).await, (401, "unauthorized".to_owned()));

    let basic = client
        .get(&usage)
        .header("authorization", format!("Basic {}", acme.key))
        .header("x-tenant-id", "acme")
        .send()
        .await
        .expect("GET");
    assert_eq!(error_of(basic).await, (401, "unauthorized".to_owned()));

    let unknown = client
        .get(&usage)
        .bearer_auth("rt_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
        .header("x-tenant-id", "acme")
        .send()
        .await
        .expect("GET");
    assert_eq!(error_of(unknown).await, (401, "unauthorized".to_owned()));

    // The key works, then is revoked.
    json_of(acme.get("/usage").await, 200).await;
    let tenants = &server.state.tenants;
    let keys = tenants.list_api_keys("acme").await.expect("keys");
    tenants
        .revoke_api_key_by("test", "acme", &keys[0].key_id)
        .await
        .expect("revoke");
    eventually("the revoked key is refused", || async {
        acme.get("/usage").await.status() == 401
    })
    .await;
}

#[tokio::test]
async fn the_tenant_header_is_required_valid_and_the_keys_own() {
    let server = start(|_| {}).await;
    let acme = Caller::professional(&server, "acme").await;
    let _other = Caller::professional(&server, "globex").await;
    let client = server.client();
    let usage = server.url("/usage");

    let missing = client
        .get(&usage)
        .bearer_auth(&acme.key)
        .send()
        .await
        .expect("GET");
    assert_eq!(
        error_of(missing).await,
        (400, "missing_tenant_header".to_owned())
    );
    let invalid = client
        .get(&usage)
        .bearer_auth(&acme.key)
        .header("x-tenant-id", "Not A Tenant!")
        .send()
        .await
        .expect("GET");
    assert_eq!(
        error_of(invalid).await,
        (400, "invalid_tenant_id".to_owned())
    );
    let mismatch = client
        .get(&usage)
        .bearer_auth(&acme.key)
        .header("x-tenant-id", "globex")
        .send()
        .await
        .expect("GET");
    assert_eq!(
        error_of(mismatch).await,
        (403, "tenant_mismatch".to_owned())
    );
}

#[tokio::test]
async fn a_suspended_tenant_is_403_until_resumed() {
    let server = start(|_| {}).await;
    let acme = Caller::professional(&server, "acme").await;
    json_of(acme.get("/usage").await, 200).await;

    let tenants = &server.state.tenants;
    tenants
        .suspend_tenant("acme", "unpaid")
        .await
        .expect("suspend");
    eventually("the suspension applies", || async {
        acme.get("/usage").await.status() == 403
    })
    .await;
    assert_eq!(
        error_of(acme.get("/usage").await).await,
        (403, "tenant_suspended".to_owned())
    );
    tenants.resume_tenant("acme").await.expect("resume");
    eventually("the tenant is served again", || async {
        acme.get("/usage").await.status() == 200
    })
    .await;
}

#[tokio::test]
async fn the_plan_decides_which_routes_a_tenant_may_use() {
    let pages = Pages::start().await;
    let server = start(|_| {}).await;
    let free = Caller::new(&server, "freebie", BillingPlan::Free, &[]).await;
    let crawl = free
        .post(
            "/crawl",
            json!({ "urls": [pages.url("/pages/article.html")] }),
        )
        .await;
    assert_eq!(error_of(crawl).await, (403, "access_denied".to_owned()));
    assert_eq!(pages.hits("/pages/article.html"), 0, "nothing was fetched");
    // The free plan has extract, sessions and usage.
    json_of(free.get("/usage").await, 200).await;
    let extract = free.extract(&pages.url("/pages/article.html")).await;
    assert_eq!(extract.status(), 200);
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_its_headers() {
    let server = start(|_| {}).await;
    let slow = Caller::new(
        &server,
        "slowpoke",
        BillingPlan::Basic,
        &[("operations_per_minute", 1), ("burst", 1)],
    )
    .await;
    let first = slow.get("/usage").await;
    assert_eq!(first.status(), 200);
    assert_eq!(header_u64(&first, "ratelimit-limit"), 1);
    assert_eq!(header_u64(&first, "ratelimit-remaining"), 0);
    assert!(header_u64(&first, "ratelimit-reset") >= 1);

    let second = slow.get("/usage").await;
    assert_eq!(second.status(), 429);
    let retry_after = header_u64(&second, "retry-after");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(header_u64(&second, "ratelimit-limit"), 1);
    assert_eq!(header_u64(&second, "ratelimit-remaining"), 0);
    assert!(header_u64(&second, "ratelimit-reset") >= retry_after);
    assert_eq!(error_of(second).await, (429, "rate_limited".to_owned()));

    // Another tenant is not affected.
    let other = Caller::professional(&server, "speedy").await;
    json_of(other.get("/usage").await, 200).await;
}

#[tokio::test]
async fn a_used_up_transfer_quota_answers_429() {
    let server = start(|_| {}).await;
    let tiny = Caller::new(
        &server,
        "tiny",
        BillingPlan::Basic,
        &[("data_transfer_bytes", 100)],
    )
    .await;
    // Nothing used yet: admitted, and the answer is larger than the whole quota.
    let first = tiny.get("/usage").await;
    assert_eq!(first.status(), 200);
    assert!(first.bytes().await.expect("body").len() > 100);
    // Past the refresh interval the used-up quota is seen.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let refused = tiny.get("/usage").await;
    let retry_after = header_u64(&refused, "retry-after");
    assert!((1..=31 * 86_400).contains(&retry_after), "{retry_after}");
    assert_eq!(error_of(refused).await, (429, "quota_exceeded".to_owned()));
}

#[tokio::test]
async fn with_multi_tenancy_off_requests_run_as_the_default_tenant_without_a_key() {
    let pages = Pages::start().await;
    let server = start(|c| c.persistence.tenant.enabled = false).await;
    let client = server.client();
    let response = client
        .request(Method::POST, server.url("/extract"))
        .json(&json!({ "url": pages.url("/pages/article.html") }))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200);
    assert_eq!(x_cache(&response), "MISS");
    let usage = json_of(
        client.get(server.url("/usage")).send().await.expect("GET"),
        200,
    )
    .await;
    assert_eq!(usage["tenant_id"], "default");
    assert_eq!(usage["usage"]["by_operation"]["extract"], 1);
}

/// Multi-tenancy is read at start only: settings that turn it off, applied to the running
/// tenant layer as a reload would, leave authentication on.
#[tokio::test]
async fn multi_tenancy_cannot_be_switched_off_live() {
    let server = start(|_| {}).await;
    let anonymous = || async {
        server
            .client()
            .get(server.url("/usage"))
            .send()
            .await
            .expect("GET")
    };
    assert_eq!(
        error_of(anonymous().await).await,
        (401, "unauthorized".to_owned())
    );

    let tenants = &server.state.tenants;
    let mut next = tenants.config().clone();
    next.enabled = false;
    tenants.prepare_live_settings(&next).await.expect("prepare");
    assert!(
        tenants
            .apply_live_settings(&next)
            .expect("apply")
            .is_empty(),
        "enabled is not a live key"
    );
    assert!(tenants.multi_tenancy_enabled());
    assert_eq!(
        error_of(anonymous().await).await,
        (401, "unauthorized".to_owned())
    );
    assert!(
        tenants.get_tenant("default").await.expect("read").is_none(),
        "no default tenant was created for a switch that does not happen"
    );
}

#[tokio::test]
async fn a_wrong_method_is_405_before_any_credential_check() {
    let server = start(|_| {}).await;
    let response = server.get("/extract").await;
    assert_eq!(
        error_of(response).await,
        (405, "method_not_allowed".to_owned())
    );
}
