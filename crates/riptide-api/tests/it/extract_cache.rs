//! `POST /extract` through the tenant cache: MISS then HIT with identical bytes, one
//! fetch for concurrent requests, `force_refresh`, `ttl_seconds`, and tenant isolation.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::pages::Pages;
use crate::tenant_client::{Caller, start, x_cache};

#[tokio::test]
async fn a_miss_then_a_hit_with_the_same_bytes() {
    let pages = Pages::start().await;
    let server = start(|_| {}).await;
    let acme = Caller::professional(&server, "acme").await;
    let url = pages.url("/pages/article.html");

    let first = acme.extract(&url).await;
    assert_eq!(first.status(), 200);
    assert_eq!(x_cache(&first), "MISS");
    assert!(
        first.headers()["content-type"]
            .to_str()
            .expect("ASCII")
            .starts_with("application/json")
    );
    let miss_bytes = first.bytes().await.expect("body");
    let page: Value = serde_json::from_slice(&miss_bytes).expect("JSON");
    assert_eq!(page["title"], "Tides of the North Sea");
    assert_eq!(page["url"], url);
    assert!(
        page["text"]
            .as_str()
            .is_some_and(|t| t.contains("twice a day")),
        "{page}"
    );

    let second = acme.extract(&url).await;
    assert_eq!(x_cache(&second), "HIT");
    assert_eq!(second.bytes().await.expect("body"), miss_bytes);

    // Another spelling of the same URL is the same entry.
    let respelled = url.replace("http://", "HTTP://") + "#section";
    let third = acme.extract(&respelled).await;
    assert_eq!(x_cache(&third), "HIT");
    assert_eq!(pages.hits("/pages/article.html"), 1);

    // Every page served counts for warming, under its normalized URL.
    let acme_id = riptide_persistence::TenantId::parse("acme").expect("id");
    let top = server.state.warming.popularity().top_of(&acme_id, 10);
    assert_eq!(top.len(), 1, "{top:?}");
    assert_eq!((top[0].url.as_str(), top[0].count), (url.as_str(), 3));
}

#[tokio::test]
async fn twenty_concurrent_requests_fetch_the_page_once() {
    let pages = Pages::start().await;
    let server = start(|_| {}).await;
    let acme = Caller::professional(&server, "acme").await;
    let url = pages.url("/pages/article.html?delay_ms=300");

    let responses = join_all((0..20).map(|_| acme.extract(&url))).await;
    let mut bodies = Vec::new();
    for response in responses {
        assert_eq!(response.status(), 200);
        assert_eq!(x_cache(&response), "MISS", "every one waited for the fetch");
        bodies.push(response.bytes().await.expect("body"));
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(pages.hits("/pages/article.html"), 1);
}

#[tokio::test]
async fn force_refresh_fetches_again_and_replaces_the_entry() {
    let pages = Pages::start().await;
    let server = start(|_| {}).await;
    let acme = Caller::professional(&server, "acme").await;
    let url = pages.url("/pages/second.html");

    assert_eq!(x_cache(&acme.extract(&url).await), "MISS");
    let refreshed = acme
        .post("/extract", json!({ "url": url, "force_refresh": true }))
        .await;
    assert_eq!(refreshed.status(), 200);
    assert_eq!(x_cache(&refreshed), "MISS");
    let refreshed: Value = refreshed.json().await.expect("JSON");
    assert_eq!(pages.hits("/pages/second.html"), 2);

    let cached = acme.extract(&url).await;
    assert_eq!(x_cache(&cached), "HIT");
    let cached: Value = cached.json().await.expect("JSON");
    assert_eq!(
        cached["fetched_at"], refreshed["fetched_at"],
        "the refresh replaced the entry"
    );
    assert_eq!(pages.hits("/pages/second.html"), 2);
}

#[tokio::test]
async fn ttl_seconds_bounds_the_entry() {
    let pages = Pages::start().await;
    let server = start(|_| {}).await;
    let acme = Caller::professional(&server, "acme").await;
    let url = pages.url("/pages/second.html");
    let body = json!({ "url": url, "ttl_seconds": 1 });

    assert_eq!(x_cache(&acme.post("/extract", body.clone()).await), "MISS");
    assert_eq!(x_cache(&acme.post("/extract", body.clone()).await), "HIT");
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(x_cache(&acme.post("/extract", body).await), "MISS");
    assert_eq!(pages.hits("/pages/second.html"), 2);
}

#[tokio::test]
async fn another_tenant_never_gets_a_cached_result() {
    let pages = Pages::start().await;
    let server = start(|_| {}).await;
    let acme = Caller::professional(&server, "acme").await;
    let globex = Caller::professional(&server, "globex").await;
    let url = pages.url("/pages/article.html");

    assert_eq!(x_cache(&acme.extract(&url).await), "MISS");
    assert_eq!(x_cache(&acme.extract(&url).await), "HIT");
    assert_eq!(x_cache(&globex.extract(&url).await), "MISS");
    assert_eq!(pages.hits("/pages/article.html"), 2);
    assert_eq!(x_cache(&globex.extract(&url).await), "HIT");
}
