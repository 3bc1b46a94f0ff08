//! Helpers of the admin API tests: requests with an admin token, tokens of each role.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestServer, admin_token, json_of};

/// Speaks to a server's admin API with one token.
pub struct Admin<'a> {
    /// The server.
    pub server: &'a TestServer,
    /// The admin token sent.
    pub token: String,
}

impl<'a> Admin<'a> {
    /// With the bootstrap token (role admin).
    pub fn bootstrap(server: &'a TestServer) -> Self {
        Self {
            server,
            token: admin_token(server),
        }
    }

    /// With `token`.
    pub fn with(server: &'a TestServer, token: impl Into<String>) -> Self {
        Self {
            server,
            token: token.into(),
        }
    }

    /// `method path` with an optional JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self
            .server
            .client()
            .request(method, self.server.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("request reaches the server")
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.send(Method::GET, path, None).await
    }

    /// `POST path` with `body`.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.send(Method::POST, path, Some(body)).await
    }

    /// `POST path` without a body.
    pub async fn post_empty(&self, path: &str) -> reqwest::Response {
        self.send(Method::POST, path, None).await
    }

    /// `PUT path` with `body`.
    pub async fn put(&self, path: &str, body: &Value) -> reqwest::Response {
        self.send(Method::PUT, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.send(Method::DELETE, path, None).await
    }

    /// `GET path`, expecting `status`, as JSON.
    pub async fn get_json(&self, path: &str, status: u16) -> Value {
        json_of(self.get(path).await, status).await
    }

    /// `POST path` with `body`, expecting `status`, as JSON.
    pub async fn post_json(&self, path: &str, body: &Value, status: u16) -> Value {
        json_of(self.post(path, body).await, status).await
    }

    /// A new token named `name` with `role`, made through the API.
    pub async fn token_with_role(&self, name: &str, role: &str) -> String {
        let created = self
            .post_json("/admin/tokens", &json!({"name": name, "role": role}), 201)
            .await;
        assert_eq!(created["role"], role, "{created}");
        created["token"].as_str().expect("token").to_owned()
    }

    /// A tenant `id` on plan basic, made through the API.
    pub async fn create_tenant(&self, id: &str) -> Value {
        self.post_json("/admin/tenants", &tenant_body(id), 201)
            .await
    }
}

/// A valid `POST /admin/tenants` body for `id`.
pub fn tenant_body(id: &str) -> Value {
    json!({
        "tenant_id": id,
        "name": format!("Tenant {id}"),
        "owner_email": format!("owner@{id}.example"),
        "owner_name": "Owner",
        "billing_plan": "basic",
    })
}

/// Asserts an error answer: `status` with `code`.
pub async fn expect_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    let body = json_of(response, status).await;
    assert_eq!(body["error"]["code"], code, "{body}");
    body
}
