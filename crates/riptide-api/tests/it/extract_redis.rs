//! `POST /extract` on Redis: MISS then HIT with the same bytes, tenant isolation, and the
//! rate limit's 429 (the GCRA script runs in Redis).

use riptide_persistence::tenant::BillingPlan;
use riptide_test_support::{redis_server, unique};

use crate::pages::Pages;
use crate::tenant_client::{Caller, error_of, header_u64, start, x_cache};

#[tokio::test]
async fn hits_misses_and_the_rate_limit_on_redis() {
    let pages = Pages::start().await;
    let url = redis_server().url();
    let server = start(|c| {
        c.persistence.redis.url = url;
        c.persistence.redis.key_prefix = unique("rt-tenant");
    })
    .await;
    let acme = Caller::professional(&server, "acme").await;
    let page = pages.url("/pages/article.html");

    let miss = acme.extract(&page).await;
    assert_eq!(miss.status(), 200);
    assert_eq!(x_cache(&miss), "MISS");
    let miss = miss.bytes().await.expect("body");
    let hit = acme.extract(&page).await;
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(hit.bytes().await.expect("body"), miss);
    assert_eq!(pages.hits("/pages/article.html"), 1);

    let globex = Caller::professional(&server, "globex").await;
    assert_eq!(x_cache(&globex.extract(&page).await), "MISS");

    let limited = Caller::new(
        &server,
        "limited",
        BillingPlan::Basic,
        &[("operations_per_minute", 2), ("burst", 2)],
    )
    .await;
    for _ in 0..2 {
        assert_eq!(limited.extract(&page).await.status(), 200);
    }
    let refused = limited.extract(&page).await;
    assert!(header_u64(&refused, "retry-after") >= 1);
    assert_eq!(header_u64(&refused, "ratelimit-limit"), 2);
    assert_eq!(header_u64(&refused, "ratelimit-remaining"), 0);
    assert_eq!(error_of(refused).await, (429, "rate_limited".to_owned()));
    server.stop().await.expect("clean shutdown");
}
