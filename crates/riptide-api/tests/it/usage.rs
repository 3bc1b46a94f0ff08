//! `GET /usage`: what a tenant's requests were metered as, its quota headroom and rate
//! limit, and nothing of another tenant's.

use serde_json::json;

use crate::pages::Pages;
use crate::support::json_of;
use crate::tenant_client::{Caller, start, x_cache};

#[tokio::test]
async fn usage_counts_the_tenants_own_requests() {
    let pages = Pages::start().await;
    let server = start(|_| {}).await;
    let acme = Caller::professional(&server, "acme").await;
    let globex = Caller::professional(&server, "globex").await;
    let article = pages.url("/pages/article.html");
    let second = pages.url("/pages/second.html");

    assert_eq!(x_cache(&acme.extract(&article).await), "MISS");
    let hit = acme.extract(&article).await;
    assert_eq!(x_cache(&hit), "HIT");
    let page_bytes = hit.bytes().await.expect("body").len() as u64;
    json_of(
        acme.post("/crawl", json!({ "urls": [article, second, second] }))
            .await,
        200,
    )
    .await;
    server.state.tenants.flush_usage().await.expect("flush");

    let report = json_of(acme.get("/usage").await, 200).await;
    assert_eq!(report["tenant_id"], "acme");
    assert_eq!(report["plan"], "professional");
    let usage = &report["usage"];
    assert_eq!(usage["operations"], 5, "{report}");
    assert_eq!(usage["by_operation"]["extract"], 2);
    assert_eq!(usage["by_operation"]["crawl"], 3);
    // Extract: one miss, one hit; crawl: article hit, second missed (its repeat in the
    // list is no cache access).
    assert_eq!(usage["cache_hits"], 2, "{report}");
    assert_eq!(usage["cache_misses"], 2, "{report}");
    assert!(
        usage["data_bytes"].as_u64().expect("bytes") > 3 * page_bytes,
        "{report}"
    );

    let quotas = &report["quotas"];
    let memory = &quotas["memory_bytes"];
    assert!(memory["used"].as_u64().expect("used") > 0, "{report}");
    assert_eq!(
        memory["remaining"].as_u64().expect("remaining"),
        memory["limit"].as_u64().expect("limit") - memory["used"].as_u64().expect("used")
    );
    assert_eq!(quotas["data_transfer_bytes"]["used"], usage["data_bytes"]);
    assert!(quotas["storage_bytes"]["limit"].is_u64());
    let rate = &report["rate_limit"];
    assert!(rate["limit"].as_u64().expect("limit") > 0, "{report}");
    assert!(
        rate["remaining"].as_u64().expect("remaining") < rate["burst"].as_u64().expect("burst")
    );

    // The other tenant's usage is its own: nothing yet.
    let theirs = json_of(globex.get("/usage").await, 200).await;
    assert_eq!(theirs["tenant_id"], "globex");
    assert_eq!(theirs["usage"]["operations"], 0, "{theirs}");
    assert_eq!(theirs["quotas"]["memory_bytes"]["used"], 0);

    // The usage read itself is metered too.
    let after = json_of(acme.get("/usage").await, 200).await;
    assert_eq!(after["usage"]["by_operation"]["usage"], 1);
}
