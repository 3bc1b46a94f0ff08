//! `/healthz`, `/readyz` and `/metrics`.

use crate::support::{TestServer, json_of};

#[tokio::test]
async fn healthz_says_ok() {
    let server = TestServer::start().await;
    let body = json_of(server.get("/healthz").await, 200).await;
    assert_eq!(body, serde_json::json!({ "status": "ok" }));
}

#[tokio::test]
async fn readyz_pings_the_embedded_store() {
    let server = TestServer::start().await;
    let body = json_of(server.get("/readyz").await, 200).await;
    assert_eq!(
        body,
        serde_json::json!({ "status": "ready", "store": "embedded" })
    );
}

#[tokio::test]
async fn metrics_are_prometheus_text_and_count_requests() {
    let server = TestServer::start().await;
    json_of(server.get("/healthz").await, 200).await;
    json_of(server.get("/no/such/route").await, 404).await;

    let response = server.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.expect("body");
    assert!(
        text.contains("# TYPE http_requests_total counter"),
        "{text}"
    );
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/healthz",status="200"}"#),
        "{text}"
    );
    // Unmatched paths share one label value, whatever the path was.
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="unmatched",status="404"}"#),
        "{text}"
    );
    assert!(!text.contains("/no/such/route"), "{text}");
    assert!(
        text.contains("http_request_duration_seconds_bucket{"),
        "{text}"
    );
}
