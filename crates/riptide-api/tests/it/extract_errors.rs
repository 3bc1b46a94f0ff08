//! `POST /extract` refusing bad input (400, 413) and answering each kind of fetch
//! failure with its own status and code.

use serde_json::json;

use crate::pages::Pages;
use crate::tenant_client::{Caller, error_of, start};

#[tokio::test]
async fn bad_bodies_urls_ttls_and_sessions_are_400() {
    let server = start(|_| {}).await;
    let acme = Caller::professional(&server, "acme").await;

    let not_json = acme
        .request(reqwest::Method::POST, "/extract")
        .header("content-type", "application/json")
        .body("{\"url\":")
        .send()
        .await
        .expect("POST");
    assert_eq!(error_of(not_json).await, (400, "invalid_json".to_owned()));

    let cases = [
        (
            json!({ "url": "http://example.com/", "extra": 1 }),
            "invalid_request",
        ),
        (json!({ "ttl_seconds": 5 }), "invalid_request"),
        (json!({ "url": 42 }), "invalid_request"),
        (json!({ "url": "not a url" }), "invalid_url"),
        (json!({ "url": "ftp://example.com/file" }), "invalid_url"),
        (
            json!({ "url": "http://user:pw@example.com/" }),
            "invalid_url",
        ),
        (
            json!({ "url": "http://example.com/", "ttl_seconds": 0 }),
            "invalid_ttl",
        ),
        (
            json!({ "url": "http://example.com/", "ttl_seconds": 30 * 86_400 + 1 }),
            "invalid_ttl",
        ),
        (
            json!({ "url": "http://example.com/", "session_id": "short" }),
            "invalid_session_id",
        ),
    ];
    for (body, code) in cases {
        let response = acme.post("/extract", body.clone()).await;
        assert_eq!(error_of(response).await, (400, code.to_owned()), "{body}");
    }

    let unknown_session = acme
        .post(
            "/extract",
            json!({ "url": "http://example.com/", "session_id": "a".repeat(22) }),
        )
        .await;
    assert_eq!(
        error_of(unknown_session).await,
        (404, "not_found".to_owned())
    );
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let server = start(|_| {}).await;
    let acme = Caller::professional(&server, "acme").await;
    let url = format!("http://example.com/{}", "a".repeat(1_100_000));
    let response = acme.post("/extract", json!({ "url": url })).await;
    assert_eq!(error_of(response).await, (413, "body_too_large".to_owned()));
}

#[tokio::test]
async fn each_fetch_failure_has_its_status_and_code() {
    let pages = Pages::start().await;
    let server = start(|c| {
        c.extract.timeout_ms = 500;
        c.extract.max_body_bytes = 4096;
    })
    .await;
    let acme = Caller::professional(&server, "acme").await;

    let cases = [
        (pages.url("/status/404"), 502, "upstream_status"),
        (pages.url("/status/503"), 502, "upstream_status"),
        (pages.url("/data.json"), 415, "not_html"),
        (pages.url("/big"), 413, "page_too_large"),
        (pages.url("/slow"), 504, "upstream_timeout"),
        (
            "http://127.0.0.1:1/".to_owned(),
            502,
            "upstream_unreachable",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            400,
            "blocked_address",
        ),
        ("http://10.0.0.7/".to_owned(), 400, "blocked_address"),
    ];
    for (url, status, code) in cases {
        let response = acme.extract(&url).await;
        assert_eq!(error_of(response).await, (status, code.to_owned()), "{url}");
    }
    // Failures are not cached: the page is asked for again.
    acme.extract(&pages.url("/status/404")).await;
    assert_eq!(pages.hits("/status/404"), 2);
}

#[tokio::test]
async fn loopback_is_refused_unless_allowed() {
    let pages = Pages::start().await;
    let server = crate::support::TestServer::start().await;
    let acme = Caller::professional(&server, "acme").await;
    let response = acme.extract(&pages.url("/pages/article.html")).await;
    assert_eq!(
        error_of(response).await,
        (400, "blocked_address".to_owned())
    );
    assert_eq!(pages.hits("/pages/article.html"), 0);
}

#[test]
fn a_bad_extract_setting_names_its_key() {
    let mut config = riptide_api::config::AppConfig::default();
    config.extract.timeout_ms = 0;
    assert_eq!(
        config.validate().expect_err("refused").key,
        "extract.timeout_ms"
    );
    config.extract.timeout_ms = 1_000;
    config.extract.allow_addresses = vec!["localhost".to_owned()];
    assert_eq!(
        config.validate().expect_err("refused").key,
        "extract.allow_addresses"
    );
}
