//! Every error answer is the JSON error body, on the real binary, including those made
//! before a request exists: a request head over `server.max_header_bytes` (431) or not
//! HTTP/1 (400), spoken over raw sockets. Hostile input never comes back (a 1 MB URL, a
//! megabyte in a field of the wrong type), a JSON route refuses other media types (415),
//! and a misspelt field at any depth is refused instead of ignored (a typo in a
//! tenant's `policy` must not wipe its deny list).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::process::{Backend, Launch, Riptide, Tenant, expect_error, json_body};
use super::raw::{read_response, send};

/// A run of the input's filler that must never appear in an answer.
const ECHO: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

const MEGABYTE: usize = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_answer_is_the_json_error_body() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = Riptide::start(&Launch::new(dir.path(), &Backend::Embedded)).await;
    let acme = rt.create_tenant("acme", "professional", json!({})).await;

    refused_heads(&rt).await;
    routing(&rt).await;
    media_types(&rt, &acme).await;
    hostile_input(&rt, &acme).await;
    unknown_fields(&rt, &acme).await;
    rt.stop().await;
}

/// 431 and 400 for heads hyper refuses: JSON, no request id, connection closed.
async fn refused_heads(rt: &Riptide) {
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: riptide\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let heads: [(&[u8], u16, &str); 4] = [
        (big.as_bytes(), 431, "header_too_large"),
        (
            b"GET /healthz HTTP/1.1\r\nHost: riptide\r\nX-Bad: a\x01b\r\n\r\n",
            400,
            "malformed_request",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: riptide\r\nBad Name: v\r\n\r\n",
            400,
            "malformed_request",
        ),
        (
            b"GET /he\x7fal HTTP/1.1\r\nHost: riptide\r\n\r\n",
            400,
            "malformed_request",
        ),
    ];
    for (head, status, code) in heads {
        let mut stream = send(rt.addr(), head).await;
        let answer = read_response(&mut stream, Duration::from_secs(5)).await;
        let shown = String::from_utf8_lossy(&head[..head.len().min(60)]);
        assert_eq!(answer.status, status, "{shown}");
        assert_eq!(answer.code(), code, "{shown}");
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert_eq!(answer.header("connection"), Some("close"));
        assert!(
            answer.header("x-request-id").is_none(),
            "no request existed"
        );
        assert!(answer.body.len() < 512, "{}", answer.body.len());
    }
    // The service is unharmed.
    assert_eq!(rt.get("/healthz").await.status(), 200);
    let metrics = rt.metrics().await;
    let refused = |status| metrics.value("http_requests_malformed_total", &[("status", status)]);
    assert_eq!(refused("431"), 1.0);
    assert_eq!(refused("400"), 3.0);
}

/// 404 and 405 from the router, and a path an extractor cannot decode, are JSON.
async fn routing(rt: &Riptide) {
    let missing = rt.get("/no/such/route").await;
    assert!(missing.headers().contains_key("x-request-id"));
    expect_error(missing, 404, "not_found").await;
    let wrong_method = rt
        .client()
        .delete(rt.url("/healthz"))
        .send()
        .await
        .expect("sent");
    expect_error(wrong_method, 405, "method_not_allowed").await;
    // `%FF` is not UTF-8: axum's own rejection is plain text quoting the path.
    let undecodable = rt
        .admin(Method::GET, "/admin/tenants/%FFsecret", None)
        .await;
    let body = json_body(undecodable, 400).await;
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert!(!body.to_string().contains("secret"), "{body}");
}

/// 415 for a body declared as something other than JSON; JSON types with parameters,
/// and no type at all, are read.
async fn media_types(rt: &Riptide, acme: &Tenant) {
    let body = r#"{"url": "not a url"}"#;
    let post = |content_type: Option<&'static str>| {
        let mut request = rt.as_tenant(acme, Method::POST, "/extract").body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send()
    };
    for refused in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "text/json",
    ] {
        let response = post(Some(refused)).await.expect("sent");
        expect_error(response, 415, "unsupported_media_type").await;
    }
    // Read as JSON: the URL inside is what is refused.
    for read in [
        Some("application/json; charset=utf-8"),
        Some("application/vnd.riptide+json"),
        None,
    ] {
        let response = post(read).await.expect("sent");
        expect_error(response, 400, "invalid_url").await;
    }
    let admin = rt
        .client()
        .post(rt.url("/admin/cache/clear"))
        .bearer_auth(rt.admin_token())
        .header("content-type", "multipart/form-data; boundary=x")
        .body("{}")
        .send()
        .await
        .expect("sent");
    expect_error(admin, 415, "unsupported_media_type").await;
}

/// Megabytes in, a short answer out. A URL is never quoted back; a value of the wrong
/// type or an unknown field name is, cut to the message's 300 bytes.
async fn hostile_input(rt: &Riptide, acme: &Tenant) {
    let filler = "a".repeat(MEGABYTE);
    let unknown_field = Value::Object([(filler.clone(), json!(1))].into_iter().collect());
    let cases = [
        (json!({ "url": filler }), "invalid_url", false),
        (
            json!({ "url": format!("{filler}:x") }),
            "invalid_url",
            false,
        ),
        (
            json!({ "url": format!("https://example.com/{filler}") }),
            "invalid_url",
            false,
        ),
        (
            json!({ "url": "https://example.com/", "ttl_seconds": filler }),
            "invalid_request",
            true,
        ),
        (unknown_field, "invalid_request", true),
    ];
    for (body, code, quoted) in cases {
        let response = rt.post(acme, "/extract", body).await;
        let answer = short_error(response, 400, code).await;
        assert!(quoted || !answer.contains(ECHO), "{answer}");
    }

    let half = "a".repeat(MEGABYTE / 3);
    let urls = json!([half, format!("https://example.com/{half}")]);
    let crawl = rt.post(acme, "/crawl", json!({ "urls": urls })).await;
    assert_eq!(crawl.status(), 200);
    let answer: Value = crawl.json().await.expect("crawl answer");
    for result in answer["results"].as_array().expect("results") {
        assert_eq!(result["error"]["code"], "invalid_url", "{result}");
        let url = result["url"].as_str().expect("url");
        assert!(
            url.len() <= 2048 && url.ends_with('…'),
            "{} bytes",
            url.len()
        );
        assert!(
            !result["error"]["message"].to_string().contains(ECHO),
            "{result}"
        );
    }

    let too_large = rt
        .post(
            acme,
            "/extract",
            json!({ "url": "a".repeat(MEGABYTE + 100_000) }),
        )
        .await;
    let answer = short_error(too_large, 413, "body_too_large").await;
    assert!(!answer.contains(ECHO), "{answer}");
}

/// The error `status`/`code` with a message of at most 300 bytes; returns the body's
/// text.
async fn short_error(response: reqwest::Response, status: u16, code: &str) -> String {
    let body = json_body(response, status).await;
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.len() <= 300, "{} bytes", message.len());
    body.to_string()
}

/// A misspelt field at any depth is a 400 naming it, and changes nothing.
async fn unknown_fields(rt: &Riptide, acme: &Tenant) {
    let path = format!("/admin/tenants/{}", acme.id);
    let deny = json!({ "policy": { "deny": ["crawl"] } });
    rt.admin_json(Method::PUT, &path, Some(&deny), 200).await;
    let cases = [
        (json!({ "policy": { "denny": [] } }), "denny"),
        (
            json!({ "policy": { "deny": [], "alow": ["crawl"] } }),
            "alow",
        ),
        (
            json!({ "owner": { "id": "o", "name": "n", "email": "o@example.com", "colour": "x" } }),
            "colour",
        ),
    ];
    for (update, field) in cases {
        let response = rt.admin(Method::PUT, &path, Some(&update)).await;
        let body = json_body(response, 400).await;
        assert_eq!(body["error"]["code"], "invalid_json", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{body}");
    }
    let tenant = rt.admin_json(Method::GET, &path, None, 200).await;
    assert_eq!(tenant["policy"]["deny"], json!(["crawl"]), "{tenant}");

    let cookie = json!({ "cookies": [{ "name": "a", "value": "b", "domian": "example.com" }] });
    let session = rt.post(acme, "/sessions", cookie).await;
    let body: Value = json_body(session, 400).await;
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert!(body.to_string().contains("domian"), "{body}");
}
