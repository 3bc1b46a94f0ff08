//! `POST /crawl`: hits, misses and errors in request order, one fetch per distinct URL,
//! entries shared with `/extract`, and the limits on its input.

use serde_json::{Value, json};

use crate::pages::Pages;
use crate::support::json_of;
use crate::tenant_client::{Caller, error_of, start, x_cache};

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
                    .expect("cache or error"),
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
            (article.as_str(), "ok", "HIT"),
            (second.as_str(), "ok", "MISS"),
        ]
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
