//! The OpenAPI 3.1 document of the service, served at `GET /openapi.json`.
//!
//! The document is built in Rust, by area: [`service`] (probes, metrics, this
//! document), [`tenant`] (the tenant routes), [`admin_tenants`], [`admin_jwt_keys`],
//! [`admin_ops`] (caches and state) and [`admin_access`] (audit log and admin tokens),
//! each with its schemas beside it, over the shared pieces of [`common`]. Where the code already states a
//! fact (the limits of a request, the roles of [`AdminRole::allows`], the permission of
//! a tenant route, the enum names of plans, resources and permissions) the document is
//! built from it, so the two cannot drift apart. It is built once, on first use, and
//! served as the same bytes afterwards.
//!
//! The integration test `openapi` checks the document against the router both ways
//! (every registered route is documented, every documented operation is registered)
//! and against the running service (each operation answers a documented status with a
//! body of the documented schema).
//!
//! [`AdminRole::allows`]: riptide_persistence::tenant::AdminRole::allows

pub mod admin_access;
pub mod admin_jwt_keys;
pub mod admin_ops;
pub mod admin_tenant_schemas;
pub mod admin_tenants;
pub mod common;
pub mod ops_schemas;
pub mod service;
pub mod state_schemas;
pub mod tenant;
pub mod tenant_schemas;

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// The document, built on first use.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

/// `GET /openapi.json`: the document as JSON (no credentials needed).
pub async fn get_openapi() -> Response {
    static BYTES: OnceLock<Bytes> = OnceLock::new();
    let bytes = BYTES.get_or_init(|| {
        // A `Value` always serializes.
        Bytes::from(serde_json::to_vec(document()).unwrap_or_default())
    });
    let mut response = bytes.clone().into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Every admin change (any method but GET) can be refused with 503 `audit_unavailable`
/// before its handler runs: the rule of [`crate::routes::admin::AdminCaller`], stated once here.
fn document_audit_gate(paths: &mut Map<String, Value>) {
    for (path, item) in paths.iter_mut() {
        let Some(methods) = item.as_object_mut().filter(|_| path.starts_with("/admin/")) else {
            continue;
        };
        let changes = |method: &str| matches!(method, "post" | "put" | "patch" | "delete");
        for (_, op) in methods.iter_mut().filter(|(method, _)| changes(method)) {
            common::add_failure(&mut op["responses"], 503, "audit_unavailable");
        }
    }
}

/// Builds the document.
pub fn build() -> Value {
    let mut paths = Map::new();
    for area in [
        service::paths(),
        tenant::paths(),
        admin_tenants::paths(),
        admin_jwt_keys::paths(),
        admin_ops::paths(),
        admin_access::paths(),
    ] {
        if let Value::Object(area) = area {
            paths.extend(area);
        }
    }
    document_audit_gate(&mut paths);
    let (mut schemas, headers, parameters, security_schemes) = common::components();
    for area in [
        service::schemas(),
        tenant_schemas::schemas(),
        admin_tenant_schemas::schemas(),
        admin_jwt_keys::schemas(),
        ops_schemas::schemas(),
        state_schemas::schemas(),
    ] {
        schemas.extend(area);
    }
    json!({
        "openapi": "3.1.0",
        "info": info(),
        "servers": [{
            "url": "/",
            "description": "The service that served this document (`server.listen` in \
                config/riptide.yml).",
        }],
        "tags": tags(),
        "paths": paths,
        "components": {
            "schemas": schemas,
            "headers": headers,
            "parameters": parameters,
            "securitySchemes": security_schemes,
        },
    })
}

fn info() -> Value {
    json!({
        "title": "RipTide",
        "version": env!("CARGO_PKG_VERSION"),
        "summary": "Multi-tenant web-content extraction with a per-tenant persistent cache.",
        "description": "A tenant sends a URL; the service fetches it, extracts the readable \
            content and caches the result in that tenant's isolated, quota-bounded, metered \
            cache.\n\n\
            Every response carries `X-Request-Id`. Every error is JSON \
            `{\"error\":{\"code\",\"message\"}}` (schema `Error`); each operation lists the \
            statuses it answers and their codes (`x-error-codes`). A message never quotes \
            more than a short piece of the input and never carries internal details. A \
            path that does not exist is 404 `not_found`; a method a path does not have is \
            405 `method_not_allowed`. A request head over `server.max_header_bytes` (or \
            with more than 100 header fields) is 431 `header_too_large`, a target over \
            64 KiB 414 `uri_too_long`, a head that is not HTTP/1 400 `malformed_request`: \
            these are answered before a request exists (so without `X-Request-Id`), and \
            the connection is closed. A JSON body sent with a `Content-Type` other than \
            `application/json` or `application/*+json` is 415 `unsupported_media_type`; \
            a body without `Content-Type` is read as JSON. Request bodies refuse unknown \
            fields at every depth (400, naming the field). A request that does not finish within \
            `server.request_timeout_ms` is 503 `timeout`. A connection opened while \
            `server.max_connections` are open is answered 503 `too_many_connections` with \
            `Retry-After` before its request is read (so without `X-Request-Id`), and \
            closed.\n\n\
            Tenant routes take an API key or a JWT, and `X-Tenant-ID` (security scheme \
            `apiKey`), \
            are rate limited (`RateLimit-*` headers; 429 with `Retry-After`) and metered. \
            A client address that fails authentication (tenant or admin) more than \
            `server.auth_failure_limit` times per `server.auth_failure_window_ms` gets 429 \
            `too_many_auth_failures` with `Retry-After` on authenticated routes, before \
            its credentials are checked. \
            Admin routes take an admin token (security scheme `adminToken`) whose role \
            must allow the operation (`x-required-roles`).",
        "license": {
            "name": env!("CARGO_PKG_LICENSE"),
            "identifier": env!("CARGO_PKG_LICENSE"),
        },
    })
}

fn tags() -> Value {
    json!([
        { "name": "service", "description": "Probes, metrics and this document; no credentials." },
        { "name": "tenant", "description": "Extraction, sessions and usage, as a tenant." },
        { "name": "admin-tenants", "description": "Tenants, their usage, bills, API keys and JWT verification keys." },
        { "name": "admin-cache", "description": "Cache statistics, invalidation, clearing and warming." },
        { "name": "admin-state", "description": "State report, configuration reload and checkpoints." },
        { "name": "admin-audit", "description": "The audit log of admin operations." },
        { "name": "admin-tokens", "description": "Admin tokens (role `admin`)." },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_are_unique() {
        let mut ids = std::collections::BTreeSet::new();
        for item in document()["paths"].as_object().expect("paths").values() {
            for (method, op) in item.as_object().expect("path item") {
                if method == "parameters" {
                    continue;
                }
                let id = op["operationId"].as_str().expect("operationId");
                assert!(ids.insert(id.to_owned()), "{id} twice");
            }
        }
        assert!(ids.len() > 30, "{}", ids.len());
    }
}
