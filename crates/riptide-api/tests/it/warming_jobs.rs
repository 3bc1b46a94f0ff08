//! On-demand warming over HTTP: `POST /admin/cache/warm` answers 202 with a job id, the
//! job's progress ends `done` with its counts and failures, the warmed page is then a
//! `HIT` of `/extract`; unknown ids, bad requests, roles and a disabled warming are
//! refused with their status; each request is audited.

use std::time::{Duration, Instant};

use reqwest::Response;
use riptide_api::warming::RunState;
use riptide_persistence::TenantId;
use serde_json::{Value, json};

use crate::pages::Pages;
use crate::support::{TestServer, admin_token, json_of};
use crate::tenant_client::{Caller, error_of, start, x_cache};

/// `method path` with the admin token `token`.
async fn admin(
    server: &TestServer,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Response {
    let mut request = server
        .client()
        .request(method, server.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request
        .send()
        .await
        .expect("admin request reaches the server")
}

/// Starts a warm job with `body`, expecting 202; returns its id.
async fn start_job(server: &TestServer, token: &str, body: Value) -> String {
    let response = admin(
        server,
        token,
        reqwest::Method::POST,
        "/admin/cache/warm",
        Some(body),
    )
    .await;
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().expect("ASCII").to_owned());
    let started = json_of(response, 202).await;
    let id = started["job_id"].as_str().expect("job_id").to_owned();
    assert_eq!(
        location.as_deref(),
        Some(format!("/admin/cache/warm/{id}").as_str())
    );
    id
}

/// Polls the job until it is no longer running (at most 10 s) and returns it.
async fn finished_job(server: &TestServer, token: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let path = format!("/admin/cache/warm/{id}");
        let job = json_of(
            admin(server, token, reqwest::Method::GET, &path, None).await,
            200,
        )
        .await;
        if job["state"] != "running" && job["state"] != "pending" {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} still running: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (at most 10 s) for the startup tier to finish.
pub async fn startup_finished(server: &TestServer) -> riptide_api::warming::RunView {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let startup = server.state.warming.status().startup;
        if startup.state == RunState::Done {
            return startup;
        }
        assert!(
            Instant::now() < deadline,
            "startup warming not done: {startup:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_warm_job_reports_progress_and_fills_the_tenant_cache() {
    let pages = Pages::start().await;
    let server = start(|_| {}).await;
    let token = admin_token(&server);
    let acme = Caller::professional(&server, "acme").await;
    let (article, second, missing) = (
        pages.url("/pages/article.html"),
        pages.url("/pages/second.html"),
        pages.url("/status/404"),
    );

    let id = start_job(
        &server,
        &token,
        json!({"tenant_id": "acme", "urls": [article, second, missing]}),
    )
    .await;
    let job = finished_job(&server, &token, &id).await;
    assert_eq!(job["id"], id.as_str());
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["source"], "urls");
    assert_eq!(
        (&job["total"], &job["done"], &job["warmed"], &job["failed"]),
        (&json!(3), &json!(3), &json!(2), &json!(1)),
        "{job}"
    );
    assert_eq!(job["failures"][0]["tenant_id"], "acme");
    assert_eq!(job["failures"][0]["url"], missing.as_str());
    assert!(job["failures"][0]["error"].is_string(), "{job}");
    assert!(
        job["started_at"].is_string() && job["finished_at"].is_string(),
        "{job}"
    );

    // Stored where /extract looks: a hit without another fetch.
    let hit = acme.extract(&article).await;
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(pages.hits("/pages/article.html"), 1);

    // Warming again finds both pages fresh and fetches nothing.
    let again = start_job(
        &server,
        &token,
        json!({"tenant_id": "acme", "urls": [article, second]}),
    )
    .await;
    let job = finished_job(&server, &token, &again).await;
    assert_eq!(
        (&job["fresh"], &job["warmed"]),
        (&json!(2), &json!(0)),
        "{job}"
    );
    assert_eq!(pages.hits("/pages/second.html"), 1);

    // The requests are in the audit log, with the job ids.
    let tenant = TenantId::parse("acme").expect("id");
    let records = server
        .state
        .tenants
        .audit()
        .query(
            Some(&tenant),
            chrono::Utc::now() - chrono::Duration::hours(1),
            chrono::Utc::now() + chrono::Duration::hours(1),
            100,
        )
        .await
        .expect("audit query");
    let warms: Vec<&str> = records
        .iter()
        .filter(|r| r.operation == "cache.warm")
        .map(|r| r.resource.as_str())
        .collect();
    assert_eq!(warms, [id.as_str(), again.as_str()]);
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn sources_warm_what_was_accessed_and_the_manual_list() {
    let pages = Pages::start().await;
    let manual = pages.url("/pages/second.html");
    let manual_list = manual.clone();
    let server = start(move |c| {
        c.warming.manual.insert("acme".into(), vec![manual_list]);
    })
    .await;
    // The startup tier ran before acme existed: nothing of it was warmed.
    startup_finished(&server).await;
    let token = admin_token(&server);
    let acme = Caller::professional(&server, "acme").await;
    let article = pages.url("/pages/article.html");
    let tenant = TenantId::parse("acme").expect("id");
    for _ in 0..3 {
        server.state.warming.record_access(&tenant, &article);
    }

    let analytics = start_job(&server, &token, json!({"source": "analytics"})).await;
    let job = finished_job(&server, &token, &analytics).await;
    assert_eq!(
        (&job["source"], &job["warmed"]),
        (&json!("analytics"), &json!(1)),
        "{job}"
    );
    assert_eq!(pages.hits("/pages/article.html"), 1);
    assert_eq!(pages.hits("/pages/second.html"), 0);

    let manual_job = start_job(
        &server,
        &token,
        json!({"source": "manual", "tenant_id": "acme"}),
    )
    .await;
    let job = finished_job(&server, &token, &manual_job).await;
    assert_eq!(
        (&job["total"], &job["warmed"]),
        (&json!(1), &json!(1)),
        "{job}"
    );
    assert_eq!(x_cache(&acme.extract(&manual).await), "HIT");

    // Everything, with a suspended tenant: skipped, not warmed.
    server
        .state
        .tenants
        .suspend_tenant("acme", "test")
        .await
        .expect("suspend");
    let all = start_job(&server, &token, json!({})).await;
    let job = finished_job(&server, &token, &all).await;
    assert_eq!(
        (&job["source"], &job["total"], &job["skipped"]),
        (&json!("all"), &json!(2), &json!(2)),
        "{job}"
    );
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn bad_requests_unknown_jobs_and_roles_are_refused() {
    let server = start(|_| {}).await;
    let token = admin_token(&server);
    Caller::professional(&server, "acme").await;
    let post = |body: Value| {
        admin(
            &server,
            &token,
            reqwest::Method::POST,
            "/admin/cache/warm",
            Some(body),
        )
    };
    let cases = [
        (
            json!({"urls": ["https://example.com/"]}),
            400,
            "invalid_warm_request",
        ),
        (
            json!({"tenant_id": "acme", "urls": []}),
            400,
            "invalid_warm_request",
        ),
        (
            json!({"tenant_id": "acme", "urls": ["ftp://x/"]}),
            400,
            "invalid_warm_request",
        ),
        (
            json!({"tenant_id": "acme", "urls": ["https://x/"], "source": "all"}),
            400,
            "invalid_warm_request",
        ),
        (json!({"limit": 0}), 400, "invalid_warm_request"),
        (json!({"limit": 10_000_000}), 400, "invalid_warm_request"),
        (json!({"source": "everything"}), 400, "invalid_json"),
        (json!({"tenant_id": "Not Valid"}), 400, "invalid_tenant_id"),
        (
            json!({"tenant_id": "nobody", "source": "tenant"}),
            404,
            "not_found",
        ),
    ];
    for (body, status, code) in cases {
        let refused = error_of(post(body.clone()).await).await;
        assert_eq!(refused, (status, code.to_owned()), "{body}");
    }

    let get = |path: &'static str| admin(&server, &token, reqwest::Method::GET, path, None);
    assert_eq!(
        error_of(get("/admin/cache/warm/0123456789abcdef").await)
            .await
            .0,
        404
    );
    assert_eq!(
        error_of(get("/admin/cache/warm/not-a-job").await).await,
        (400, "invalid_job_id".to_owned())
    );

    let anonymous = server
        .client()
        .post(server.url("/admin/cache/warm"))
        .json(&json!({}))
        .send()
        .await
        .expect("reaches the server");
    assert_eq!(anonymous.status(), 401);

    // A viewer may read jobs but not start them.
    let created = admin(
        &server,
        &token,
        reqwest::Method::POST,
        "/admin/tokens",
        Some(json!({"name": "watcher", "role": "viewer"})),
    )
    .await;
    let viewer = json_of(created, 201).await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let refused = admin(
        &server,
        &viewer,
        reqwest::Method::POST,
        "/admin/cache/warm",
        Some(json!({})),
    )
    .await;
    assert_eq!(
        error_of(refused).await,
        (403, "insufficient_role".to_owned())
    );
    let id = start_job(&server, &token, json!({"source": "manual"})).await;
    let path = format!("/admin/cache/warm/{id}");
    let seen = admin(&server, &viewer, reqwest::Method::GET, &path, None).await;
    assert_eq!(seen.status(), 200);
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn warming_disabled_refuses_jobs() {
    let server = start(|c| c.persistence.cache.enable_warming = false).await;
    let token = admin_token(&server);
    let refused = admin(
        &server,
        &token,
        reqwest::Method::POST,
        "/admin/cache/warm",
        Some(json!({})),
    )
    .await;
    assert_eq!(
        error_of(refused).await,
        (409, "warming_disabled".to_owned())
    );
    let status = server.state.warming.status();
    assert!(!status.enabled);
    assert_eq!(status.startup.state, RunState::Pending);
    server.stop().await.expect("clean shutdown");
}
