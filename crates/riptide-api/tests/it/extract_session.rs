//! `POST /extract` with `session_id`: the session's cookies and headers reach the page,
//! and what was fetched through a session is cached for that session only.

use serde_json::{Value, json};

use crate::pages::Pages;
use crate::tenant_client::{Caller, error_of, start, x_cache};

async fn create_session(caller: &Caller<'_>, body: Value) -> String {
    let response = caller.post("/sessions", body).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.expect("JSON");
    created["session_id"]
        .as_str()
        .expect("session_id")
        .to_owned()
}

#[tokio::test]
async fn a_sessions_cookies_and_headers_reach_the_page() {
    let pages = Pages::start().await;
    let server = start(|_| {}).await;
    let acme = Caller::professional(&server, "acme").await;
    let session = create_session(
        &acme,
        json!({
            "cookies": [
                { "name": "sid", "value": "s3cr3t" },
                { "name": "elsewhere", "value": "no", "domain": "example.org" },
                { "name": "scoped", "value": "yes", "path": "/pages" },
            ],
            "headers": { "X-Trace": "t-42" },
        }),
    )
    .await;
    let url = pages.url("/pages/article.html");
    let path = "/pages/article.html";

    let with = acme
        .post("/extract", json!({ "url": url, "session_id": session }))
        .await;
    assert_eq!(with.status(), 200);
    assert_eq!(x_cache(&with), "MISS");
    assert_eq!(
        pages.last_header(path, "cookie").as_deref(),
        Some("sid=s3cr3t; scoped=yes")
    );
    assert_eq!(pages.last_header(path, "x-trace").as_deref(), Some("t-42"));

    // Without the session: its own entry, fetched without the cookies.
    let without = acme.extract(&url).await;
    assert_eq!(x_cache(&without), "MISS");
    assert_eq!(pages.last_header(path, "cookie"), None);
    assert_eq!(pages.hits(path), 2);

    // Through the session again: its entry.
    let again = acme
        .post("/extract", json!({ "url": url, "session_id": session }))
        .await;
    assert_eq!(x_cache(&again), "HIT");

    // Another session of the same tenant does not see it either.
    let other = create_session(&acme, json!({})).await;
    let through_other = acme
        .post("/extract", json!({ "url": url, "session_id": other }))
        .await;
    assert_eq!(x_cache(&through_other), "MISS");
    assert_eq!(pages.hits(path), 3);

    // Only the page served without a session counts for warming.
    let acme_id = riptide_persistence::TenantId::parse("acme").expect("id");
    let top = server.state.warming.popularity().top_of(&acme_id, 10);
    assert_eq!(top.len(), 1, "{top:?}");
    assert_eq!(top[0].count, 1);
}

#[tokio::test]
async fn another_tenants_session_cannot_be_used() {
    let pages = Pages::start().await;
    let server = start(|_| {}).await;
    let acme = Caller::professional(&server, "acme").await;
    let globex = Caller::professional(&server, "globex").await;
    let session = create_session(
        &acme,
        json!({ "cookies": [{ "name": "sid", "value": "a" }] }),
    )
    .await;

    let response = globex
        .post(
            "/extract",
            json!({ "url": pages.url("/pages/article.html"), "session_id": session }),
        )
        .await;
    assert_eq!(error_of(response).await, (404, "not_found".to_owned()));
    assert_eq!(pages.hits("/pages/article.html"), 0);
}
