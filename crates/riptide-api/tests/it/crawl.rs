//! `POST /crawl`: hits, misses and errors in request order, one fetch per distinct URL
//! (repeats point at their first result), entries shared with `/extract`, and the
//! limits on its input.

use riptide_persistence::tenant::BillingPlan;
use serde_json::{Value, json};

use crate::pages::Pages;
use crate::support::json_of;
use crate::tenant_client::{Caller, error_of, header_u64, start, x_cache};

#[tokio::test]
async fn hits_misses_and_errors_come_back_in_request_order() {
    let pages = Pages::start().await;
    let server = start(|_| {}).await;
    let acme = Caller::professional(&server, "acme").await;
    let article = pages.url("/pages/article.html");
    let second = pages.url("/pages/second.html");
    let missing = pages.url("/status/404");
    assert_eq!(x_cache(&acme.extract(&article).await), "MISS");

    let urls = json!([article, second, missing, "not a url", article, second]);
    let body = json_of(
        acme.post("/crawl", json!({ "urls": urls, "concurrency": 2 }))
            .await,
        200,
    )
    .await;
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 6);
    let summary: Vec<(&str, &str, &str)> = results
        .iter()
        .map(|r| {
            (
                r["url"].as_str().expect("url"),
                r["status"].as_str().expect("status"),
                r["cache"]
                    .as_str()
                    .or_else(|| r["error"]["code"].as_str())
                    .or_else(|| r["same_as"].as_u64().map(|i| ["0", "1"][i as usize]))
                    .expect("cache, error or same_as"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (article.as_str(), "ok", "HIT"),
            (second.as_str(), "ok", "MISS"),
            (missing.as_str(), "error", "upstream_status"),
            ("not a url", "error", "invalid_url"),
            (article.as_str(), "duplicate", "0"),
            (second.as_str(), "duplicate", "1"),
        ]
    );
    assert!(
        results[4].get("data").is_none(),
        "a repeat is not sent twice"
    );
    assert_eq!(results[0]["data"]["title"], "Tides of the North Sea");
    assert_eq!(results[1]["data"]["title"], "Reading a Harbour Chart");
    assert!(results[2]["error"]["message"].is_string());
    assert_eq!(pages.hits("/pages/article.html"), 1);
    assert_eq!(
        pages.hits("/pages/second.html"),
        1,
        "a repeated URL is fetched once"
    );

    // The crawl stored what it fetched, for /extract too; the failure was not stored.
    let cached = acme.extract(&second).await;
    assert_eq!(x_cache(&cached), "HIT");
    let cached: Value = cached.json().await.expect("JSON");
    assert_eq!(cached, results[1]["data"]);
    let again = json_of(
        acme.post("/crawl", json!({ "urls": [second, missing] }))
            .await,
        200,
    )
    .await;
    assert_eq!(again["results"][0]["cache"], "HIT");
    assert_eq!(again["results"][1]["status"], "error");
    assert_eq!(pages.hits("/status/404"), 2);
}

#[tokio::test]
async fn the_number_of_urls_and_the_concurrency_are_bounded() {
    let server = start(|_| {}).await;
    let acme = Caller::professional(&server, "acme").await;
    let many: Vec<String> = (0..101)
        .map(|i| format!("http://example.com/{i}"))
        .collect();
    let cases = [
        (json!({ "urls": many }), "too_many_urls"),
        (json!({ "urls": [] }), "no_urls"),
        (
            json!({ "urls": ["http://example.com/"], "concurrency": 17 }),
            "invalid_concurrency",
        ),
        (
            json!({ "urls": ["http://example.com/"], "concurrency": 0 }),
            "invalid_concurrency",
        ),
        (json!({ "url": "http://example.com/" }), "invalid_request"),
    ];
    for (body, code) in cases {
        let response = acme.post("/crawl", body).await;
        assert_eq!(error_of(response).await, (400, code.to_owned()));
    }
}

#[tokio::test]
async fn a_crawl_costs_one_request_per_url_all_or_none() {
    let pages = Pages::start().await;
    let server = start(|_| {}).await;
    // 60 per minute, 10 at once.
    let quotas = [("operations_per_minute", 60), ("burst", 10)];
    let acme = Caller::new(&server, "acme", BillingPlan::Professional, &quotas).await;
    let urls: Vec<String> = (0..8)
        .map(|i| pages.url(&format!("/pages/article.html?n={i}")))
        .collect();
    let first = acme.post("/crawl", json!({ "urls": urls })).await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        header_u64(&first, "ratelimit-remaining"),
        2,
        "8 of 10 taken"
    );

    // 8 more do not fit in the 2 left (plus what has dripped back since): refused as a
    // whole, before anything is fetched.
    let fetched = pages.hits("/pages/article.html");
    let refused = acme.post("/crawl", json!({ "urls": urls })).await;
    assert_eq!(refused.status(), 429);
    assert!(header_u64(&refused, "retry-after") >= 1);
    assert_eq!(error_of(refused).await, (429, "rate_limited".to_owned()));
    assert_eq!(pages.hits("/pages/article.html"), fetched);

    // More URLs than the bucket ever holds can never pass: 400, not a retry.
    let eleven: Vec<String> = (0..11).map(|i| format!("http://example.com/{i}")).collect();
    let response = acme.post("/crawl", json!({ "urls": eleven })).await;
    assert_eq!(error_of(response).await, (400, "too_many_urls".to_owned()));
}

#[tokio::test]
async fn page_data_beyond_the_answer_budget_is_reported_as_stored() {
    let pages = Pages::start().await;
    let server = start(|c| c.crawl.max_answer_bytes = 64 * 1024).await;
    let acme = Caller::professional(&server, "acme").await;
    // /big is 64 KiB of HTML: its extraction does not fit next to the article.
    let (article, big) = (pages.url("/pages/article.html"), pages.url("/big"));
    let body = json_of(
        acme.post("/crawl", json!({ "urls": [article, big, article] }))
            .await,
        200,
    )
    .await;
    let results = &body["results"];
    assert_eq!(results[0]["status"], "ok");
    assert_eq!(results[1]["status"], "stored", "{body}");
    assert_eq!(results[1]["cache"], "MISS");
    assert!(results[1].get("data").is_none());
    assert_eq!(results[2]["status"], "duplicate");
    // What was left out is in the cache.
    assert_eq!(x_cache(&acme.extract(&big).await), "HIT");
}
