//! The running service the live OpenAPI tests speak to, with everything the documented
//! operations name, and how a request for an operation is made: credentials, concrete
//! paths, example bodies, order.

use std::collections::BTreeMap;

use reqwest::{Method, Response};
use riptide_persistence::tenant::BillingPlan;
use serde_json::{Value, json};

use super::Operation;
use crate::pages::Pages;
use crate::support::{TestServer, admin_token, allow_loopback, json_of, tenant_with_key};

/// The running service with everything the operations name: tenant `acme` (with an API
/// key, a JWT verification key, a session), a warm job, an admin token of each role and a checkpoint.
pub struct Fixture {
    /// The service.
    pub server: TestServer,
    pages: Pages,
    /// The bootstrap admin token (role `admin`).
    pub admin: String,
    /// `acme`'s API key.
    pub api_key: String,
    key_id: String,
    kid: String,
    session_id: String,
    job_id: String,
    checkpoint_id: String,
    /// Tokens by role name.
    pub roles: BTreeMap<&'static str, String>,
    /// A token no test speaks with, for `DELETE /admin/tokens/{id}`.
    spare_token_id: String,
}

impl Fixture {
    pub async fn start() -> Self {
        let server = TestServer::start_with(allow_loopback).await;
        let pages = Pages::start().await;
        let admin = admin_token(&server);
        let api_key = tenant_with_key(&server, "acme", BillingPlan::Professional, &[]).await;
        let mut fixture = Self {
            server,
            pages,
            admin,
            api_key,
            key_id: String::new(),
            kid: String::new(),
            session_id: String::new(),
            job_id: String::new(),
            checkpoint_id: String::new(),
            roles: BTreeMap::new(),
            spare_token_id: String::new(),
        };
        let keys = fixture
            .admin_json(Method::GET, "/admin/tenants/acme/keys", None, 200)
            .await;
        fixture.key_id = keys["keys"][0]["key_id"]
            .as_str()
            .expect("key id")
            .to_owned();
        let jwt_key = json!({ "algorithm": "HS256" });
        let created = fixture
            .admin_json(
                Method::POST,
                "/admin/tenants/acme/jwt-keys",
                Some(jwt_key),
                201,
            )
            .await;
        fixture.kid = created["kid"].as_str().expect("kid").to_owned();
        let response = fixture
            .as_tenant(Method::POST, "/sessions", Some(json!({})))
            .await;
        let session = json_of(response, 201).await;
        fixture.session_id = session["session_id"].as_str().expect("session").to_owned();
        let warm = json!({ "tenant_id": "acme", "urls": [fixture.page()] });
        let job = fixture
            .admin_json(Method::POST, "/admin/cache/warm", Some(warm), 202)
            .await;
        fixture.job_id = job["job_id"].as_str().expect("job id").to_owned();
        let checkpoint = fixture
            .admin_json(Method::POST, "/admin/state/checkpoint", None, 201)
            .await;
        fixture.checkpoint_id = checkpoint["id"].as_str().expect("checkpoint").to_owned();
        for role in ["admin", "operator", "billing", "viewer"] {
            let body = json!({ "name": format!("openapi-{role}"), "role": role });
            let created = fixture
                .admin_json(Method::POST, "/admin/tokens", Some(body), 201)
                .await;
            let token = created["token"].as_str().expect("token").to_owned();
            fixture.roles.insert(role, token);
        }
        let spare = json!({ "name": "openapi-spare", "role": "viewer" });
        let created = fixture
            .admin_json(Method::POST, "/admin/tokens", Some(spare), 201)
            .await;
        fixture.spare_token_id = created["token_id"].as_str().expect("id").to_owned();
        fixture
    }

    fn page(&self) -> String {
        self.pages.url("/pages/article.html")
    }

    async fn admin_json(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let response = self
            .send(method, path, body, &Credentials::Admin(&self.admin))
            .await;
        json_of(response, status).await
    }

    async fn as_tenant(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        self.send(method, path, body, &Credentials::Tenant).await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        credentials: &Credentials<'_>,
    ) -> Response {
        let mut request = self.server.client().request(method, self.server.url(path));
        request = match credentials {
            Credentials::None => request,
            Credentials::Admin(token) => request.bearer_auth(token),
            Credentials::Tenant => request
                .bearer_auth(&self.api_key)
                .header("x-tenant-id", "acme"),
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request reaches the server")
    }

    /// `o.path` with each path parameter filled by the fixture's value for it.
    pub fn concrete_path(&self, o: &Operation<'_>) -> String {
        self.path_with(o, |_| None)
    }

    /// `o.path` with path parameter `var` filled by `replace(var)`, or else the
    /// fixture's value for it.
    pub fn path_with(&self, o: &Operation<'_>, replace: impl Fn(&str) -> Option<String>) -> String {
        let sample = |var: &str| -> String {
            if let Some(value) = replace(var) {
                return value;
            }
            match (o.path, var) {
                (p, "id") if p.starts_with("/sessions/") => self.session_id.clone(),
                (p, "id") if p.starts_with("/admin/tenants/") => "acme".to_owned(),
                (p, "id") if p.starts_with("/admin/cache/warm/") => self.job_id.clone(),
                (p, "id") if p.starts_with("/admin/tokens/") => self.spare_token_id.clone(),
                (_, "key_id") => self.key_id.clone(),
                (_, "kid") => self.kid.clone(),
                (p, v) => panic!("no sample value for {{{v}}} of {p}"),
            }
        };
        o.path
            .split('/')
            .map(
                |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(var) => sample(var),
                    None => segment.to_owned(),
                },
            )
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The operation's documented example body, pointed at this fixture: URLs at the
    /// page server, a new tenant id and token name for creations, the real checkpoint.
    pub fn body(&self, o: &Operation<'_>) -> Option<Value> {
        let example = o.op["requestBody"]["content"]["application/json"]["example"].clone();
        if example.is_null() {
            return None;
        }
        let mut body = self.with_local_urls(example);
        match o.op["operationId"].as_str() {
            Some("create_tenant") => body["tenant_id"] = json!("openapi-new"),
            Some("create_admin_token") => body["name"] = json!("openapi-created"),
            Some("restore_checkpoint") => body["checkpoint_id"] = json!(self.checkpoint_id),
            _ => {}
        }
        Some(body)
    }

    fn with_local_urls(&self, v: Value) -> Value {
        match v {
            Value::String(s) if s.starts_with("https://example.com/") => json!(self.page()),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|i| self.with_local_urls(i)).collect())
            }
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, i)| (k, self.with_local_urls(i)))
                    .collect(),
            ),
            other => other,
        }
    }
}

pub enum Credentials<'a> {
    None,
    Admin(&'a str),
    Tenant,
}

pub fn credentials_for<'a>(o: &Operation<'_>, admin: &'a str) -> Credentials<'a> {
    match o.op["security"].as_array().and_then(|s| s.first()) {
        Some(s) if s.get("adminToken").is_some() => Credentials::Admin(admin),
        Some(s) if s.get("apiKey").is_some() => Credentials::Tenant,
        _ => Credentials::None,
    }
}

/// The order operations run in, so that each finds what it names: tenant routes before
/// the admin routes (a suspension would refuse them), suspend before resume, deletions
/// last and the tenant's own deletion at the very end.
pub fn run_order(o: &Operation<'_>) -> (u8, u8, String) {
    let admin = o.path.starts_with("/admin/");
    let group = match (admin, o.method == "delete") {
        (false, false) => 0,
        (false, true) => 1,
        (true, false) => 2,
        (true, true) => 3,
    };
    let late = u8::from(o.path == "/admin/tenants/{id}/resume" || o.path == "/admin/tenants/{id}");
    (group, late, format!("{} {}", o.path, o.method))
}

/// The names of the path parameters of `path`.
pub fn path_vars(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|v| v.strip_suffix('}')))
        .collect()
}

/// A well-formed id no fixture has, for path parameter `var` of `path`.
pub fn unknown_id(path: &str, var: &str) -> &'static str {
    match (path, var) {
        (p, "id") if p.starts_with("/sessions/") => "aaaaaaaaaaaaaaaaaaaaaa",
        (p, "id") if p.starts_with("/admin/tenants/") => "ghost",
        (p, "id") if p.starts_with("/admin/cache/warm/") => "0000000000000000",
        (p, "id") if p.starts_with("/admin/tokens/") => "aaaaaaaaaaaa",
        (_, "key_id" | "kid") => "aaaaaaaaaaaa",
        (p, v) => panic!("no unknown value for {{{v}}} of {p}"),
    }
}
