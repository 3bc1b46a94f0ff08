//! What the tenant route tests share: a service that may fetch from the fixture page
//! server, and a [`Caller`] that speaks to it as one tenant.

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, Response};
use riptide_api::config::AppConfig;
use riptide_persistence::tenant::BillingPlan;
use serde_json::{Value, json};

use crate::support::{TestServer, allow_loopback, tenant_with_key};

/// The service on the embedded store, allowed to fetch from 127.0.0.1, after `adjust`.
pub async fn start(adjust: impl FnOnce(&mut AppConfig)) -> TestServer {
    TestServer::start_with(|c| {
        allow_loopback(c);
        adjust(c);
    })
    .await
}

/// One tenant's credentials on one server.
pub struct Caller<'a> {
    server: &'a TestServer,
    /// The tenant id sent as `X-Tenant-ID`.
    pub tenant: String,
    /// The API key sent as `Authorization: Bearer`.
    pub key: String,
}

impl<'a> Caller<'a> {
    /// A new tenant `id` on `plan` with the quota overrides `quotas`, and a key of it.
    pub async fn new(
        server: &'a TestServer,
        id: &str,
        plan: BillingPlan,
        quotas: &[(&str, u64)],
    ) -> Self {
        let key = tenant_with_key(server, id, plan, quotas).await;
        Self {
            server,
            tenant: id.to_owned(),
            key,
        }
    }

    /// A tenant `id` on the professional plan (every permission) without overrides.
    pub async fn professional(server: &'a TestServer, id: &str) -> Self {
        Self::new(server, id, BillingPlan::Professional, &[]).await
    }

    /// `method path` with this tenant's headers.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.server
            .client()
            .request(method, self.server.url(path))
            .bearer_auth(&self.key)
            .header("x-tenant-id", &self.tenant)
    }

    /// `POST path` with `body` as JSON.
    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path)
            .json(&body)
            .send()
            .await
            .expect("POST reaches the server")
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path)
            .send()
            .await
            .expect("GET reaches the server")
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path)
            .send()
            .await
            .expect("DELETE reaches the server")
    }

    /// `POST /extract {"url": url}`.
    pub async fn extract(&self, url: &str) -> Response {
        self.post("/extract", json!({ "url": url })).await
    }
}

/// The `X-Cache` header of `response`.
pub fn x_cache(response: &Response) -> &str {
    response
        .headers()
        .get("x-cache")
        .map(|v| v.to_str().expect("ASCII"))
        .unwrap_or("-")
}

/// A header of `response` as a number.
pub fn header_u64(response: &Response, name: &str) -> u64 {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header: {response:?}"))
        .to_str()
        .expect("ASCII")
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Status and error code of an error response.
pub async fn error_of(response: Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("JSON error body");
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code: {body}"))
        .to_owned();
    assert!(body["error"]["message"].is_string(), "{body}");
    (status, code)
}

/// Retries `check` until it holds, for at most 5 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not seen within 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
