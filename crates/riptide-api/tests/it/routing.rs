//! What every response carries, and the answers for unknown paths and methods.

use crate::support::{TestServer, json_of};

#[tokio::test]
async fn unknown_route_is_a_404_json_error() {
    let server = TestServer::start().await;
    let body = json_of(server.get("/extract-nothing").await, 404).await;
    assert_eq!(body["error"]["code"], "not_found");
    assert!(body["error"]["message"].is_string(), "{body}");
}

#[tokio::test]
async fn wrong_method_is_a_405_json_error() {
    let server = TestServer::start().await;
    let response = server
        .client()
        .post(server.url("/healthz"))
        .send()
        .await
        .expect("POST");
    let body = json_of(response, 405).await;
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn request_ids_are_assigned_or_echoed() {
    let server = TestServer::start().await;
    let response = server.get("/healthz").await;
    let assigned = response.headers()["x-request-id"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert_eq!(assigned.len(), 36, "a UUID: {assigned}");

    let response = server
        .client()
        .get(server.url("/healthz"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");

    let response = server.get("/nowhere").await;
    assert!(
        response.headers().contains_key("x-request-id"),
        "errors carry one too"
    );
}
