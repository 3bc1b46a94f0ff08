//! The building blocks of the OpenAPI document: references, schema shorthands, the
//! shared error body, headers, security requirements and the responses of an operation.
//!
//! Every error answer of the service has the body [`crate::error::ApiError`] writes,
//! `{"error":{"code","message"}}`; an operation lists each status it can answer with the
//! stable codes of that status (in the description and in `x-error-codes`).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use riptide_persistence::tenant::{AdminAction, AdminRole};
use serde_json::{Map, Value, json};

use crate::routes::tenant::body::MAX_BODY_BYTES;

/// One error an operation can answer: its status and its stable `code`.
pub type Failure = (u16, &'static str);

/// What any request can meet: a head hyper cannot parse (400 `malformed_request`, 414,
/// 431: answered before a request exists, so without `X-Request-Id`), a panicking
/// handler (500) and the request deadline (503).
pub const ANY: &[Failure] = &[
    (400, "malformed_request"),
    (414, "uri_too_long"),
    (431, "header_too_large"),
    (500, "internal"),
    (503, "timeout"),
];

/// What an operation that reads or writes the store can meet.
pub const STORE: &[Failure] = &[(503, "store_unavailable")];

/// What the tenant middleware answers before a tenant handler runs.
pub const TENANT_GUARD: &[Failure] = &[
    (400, "missing_tenant_header"),
    (400, "invalid_tenant_id"),
    (401, "unauthorized"),
    (403, "tenant_mismatch"),
    (403, "tenant_suspended"),
    (403, "access_denied"),
    (429, "too_many_auth_failures"),
    (429, "rate_limited"),
    (429, "quota_exceeded"),
    (503, "store_unavailable"),
];

/// What a tenant route's JSON body can be refused with.
pub const TENANT_BODY: &[Failure] = &[
    (400, "invalid_json"),
    (400, "invalid_request"),
    (400, "invalid_body"),
    (408, "body_timeout"),
    (413, "body_too_large"),
    (415, "unsupported_media_type"),
];

/// What the admin token check answers before an admin handler runs.
pub const ADMIN_GUARD: &[Failure] = &[
    (401, "unauthorized"),
    (403, "insufficient_role"),
    (429, "too_many_auth_failures"),
    (503, "store_unavailable"),
];

/// What an admin route's JSON body can be refused with.
pub const ADMIN_BODY: &[Failure] = &[
    (400, "invalid_json"),
    (400, "invalid_body"),
    (408, "body_timeout"),
    (413, "body_too_large"),
    (415, "unsupported_media_type"),
];

/// `{"$ref": "#/components/schemas/<name>"}`.
pub fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// `{"$ref": "#/components/parameters/<name>"}`.
pub fn parameter(name: &str) -> Value {
    json!({ "$ref": format!("#/components/parameters/{name}") })
}

/// `{"$ref": "#/components/headers/<name>"}`.
pub fn header(name: &str) -> Value {
    json!({ "$ref": format!("#/components/headers/{name}") })
}

/// A string.
pub fn string(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

/// A non-negative integer.
pub fn count(description: &str) -> Value {
    json!({ "type": "integer", "minimum": 0, "description": description })
}

/// A boolean.
pub fn boolean(description: &str) -> Value {
    json!({ "type": "boolean", "description": description })
}

/// An RFC 3339 time.
pub fn time(description: &str) -> Value {
    json!({ "type": "string", "format": "date-time", "description": description })
}

/// A string of one of `values`.
pub fn one_of_strings(description: &str, values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values, "description": description })
}

/// An array of `items`.
pub fn array(description: &str, items: Value) -> Value {
    json!({ "type": "array", "items": items, "description": description })
}

/// An object whose values are all `values` (a map).
pub fn map(description: &str, values: Value) -> Value {
    json!({ "type": "object", "additionalProperties": values, "description": description })
}

/// `schema` or `null`: a type gains `"null"`, anything else is wrapped in `anyOf`.
pub fn nullable(mut schema: Value) -> Value {
    if let Some(Value::String(t)) = schema.get("type").cloned() {
        schema["type"] = json!([t, "null"]);
        return schema;
    }
    let description = schema.as_object_mut().and_then(|o| o.remove("description"));
    let mut wrapped = json!({ "anyOf": [schema, { "type": "null" }] });
    if let Some(d) = description {
        wrapped["description"] = d;
    }
    wrapped
}

/// A closed object: `properties`, of which `required` are always present, and no other.
pub fn object(description: &str, required: &[&str], properties: Value) -> Value {
    json!({
        "type": "object",
        "description": description,
        "required": required,
        "properties": properties,
        "additionalProperties": false,
    })
}

/// A request body of JSON `schema_name`, with an example.
pub fn json_body(schema_name: &str, required: bool, example: Value) -> Value {
    json!({
        "required": required,
        "content": { "application/json": { "schema": schema(schema_name), "example": example } },
    })
}

/// A success answer with a JSON body of `body` and the response `headers` (component
/// names; `X-Request-Id` is added).
pub fn json_reply(description: &str, body: Value, headers: &[&str]) -> Value {
    json!({
        "description": description,
        "headers": response_headers(headers),
        "content": { "application/json": { "schema": body } },
    })
}

/// A success answer without a body (204).
pub fn empty_reply(description: &str, headers: &[&str]) -> Value {
    json!({ "description": description, "headers": response_headers(headers) })
}

fn response_headers(names: &[&str]) -> Value {
    let mut headers = Map::new();
    for name in std::iter::once(&"X-Request-Id").chain(names) {
        headers.insert((*name).to_owned(), header(&component_of(name)));
    }
    Value::Object(headers)
}

/// The component name of a header (`X-Request-Id` → `XRequestId`).
fn component_of(header: &str) -> String {
    header.split('-').collect()
}

/// An operation's `responses`: the successes `ok` and every failure of `failures`,
/// grouped by status, each with the error body and the stable codes of that status.
pub fn responses(ok: Vec<(u16, Value)>, failures: &[&[Failure]]) -> Value {
    let mut out = Map::new();
    for (status, reply) in ok {
        out.insert(status.to_string(), reply);
    }
    let mut by_status: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    for (status, code) in failures.iter().flat_map(|f| f.iter()) {
        let codes = by_status.entry(*status).or_default();
        if !codes.contains(code) {
            codes.push(code);
        }
    }
    for (status, codes) in by_status {
        out.insert(status.to_string(), error_reply(status, &codes));
    }
    Value::Object(out)
}

/// Adds the failure `(status, code)` to an operation's `responses`, merged with the
/// codes that status already lists.
pub fn add_failure(responses: &mut Value, status: u16, code: &str) {
    let key = status.to_string();
    let mut codes: Vec<String> = responses[&key]["x-error-codes"]
        .as_array()
        .map(|listed| {
            listed
                .iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !codes.iter().any(|c| c == code) {
        codes.push(code.to_owned());
    }
    let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
    responses[key] = error_reply(status, &codes);
}

fn error_reply(status: u16, codes: &[&str]) -> Value {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let listed: Vec<String> = codes.iter().map(|c| format!("`{c}`")).collect();
    let mut headers = vec!["X-Request-Id"];
    match status {
        401 => headers.push("WWW-Authenticate"),
        429 if codes.contains(&"rate_limited") => headers.extend([
            "Retry-After",
            "RateLimit-Limit",
            "RateLimit-Remaining",
            "RateLimit-Reset",
        ]),
        429 => headers.push("Retry-After"),
        _ => {}
    }
    let mut header_refs = Map::new();
    for name in headers {
        header_refs.insert(name.to_owned(), header(&component_of(name)));
    }
    if matches!(status, 414 | 431) {
        // Written for a head that never became a request: there is no id.
        header_refs.insert("X-Request-Id".to_owned(), header("XRequestIdNone"));
    }
    json!({
        "description": format!("{reason}: {}.", listed.join(", ")),
        "headers": header_refs,
        "content": { "application/json": { "schema": schema("Error") } },
        "x-error-codes": codes,
    })
}

/// The roles whose tokens may perform `action` (from [`AdminRole::allows`]).
pub fn roles_allowed(action: AdminAction) -> Vec<&'static str> {
    [
        AdminRole::Admin,
        AdminRole::Operator,
        AdminRole::Billing,
        AdminRole::Viewer,
    ]
    .into_iter()
    .filter(|r| r.allows(action))
    .map(|r| r.as_str())
    .collect()
}

/// Who may call an admin operation.
#[derive(Debug, Clone, Copy)]
pub enum AdminAccess {
    /// Tokens whose role allows this action.
    Action(AdminAction),
    /// Tokens of role `admin` only (managing admin tokens).
    AdminOnly,
}

/// `op` as an admin operation: the `adminToken` requirement, `x-required-roles`, and
/// the roles at the end of its description.
pub fn admin_op(access: AdminAccess, mut op: Value) -> Value {
    let roles = match access {
        AdminAccess::Action(action) => roles_allowed(action),
        AdminAccess::AdminOnly => vec![AdminRole::Admin.as_str()],
    };
    let note = format!(
        "\n\nAdmin token roles allowed: {}; other roles get 403 `insufficient_role`.",
        roles.join(", ")
    );
    append_description(&mut op, &note);
    op["security"] = json!([{ "adminToken": [] }]);
    op["x-required-roles"] = json!(roles);
    op
}

/// `op` as a tenant operation that needs `permission`: the `apiKey` requirement, the
/// `X-Tenant-ID` header parameter, `x-permission`, and a note in its description.
pub fn tenant_op(permission: &str, mut op: Value) -> Value {
    let note = format!(
        "\n\nNeeds the tenant permission `{permission}` (from the plan, adjusted by the \
         tenant's access policy); without it: 403 `access_denied`."
    );
    append_description(&mut op, &note);
    op["security"] = json!([{ "apiKey": [] }]);
    op["x-permission"] = json!(permission);
    let mut parameters = vec![parameter("TenantHeader")];
    if let Some(Value::Array(own)) = op.get("parameters") {
        parameters.extend(own.iter().cloned());
    }
    op["parameters"] = Value::Array(parameters);
    op
}

fn append_description(op: &mut Value, note: &str) {
    let current = op["description"].as_str().unwrap_or_default().to_owned();
    op["description"] = json!(current + note);
}

/// The shared components: the error body, headers, parameters and security schemes.
pub fn components() -> (Map<String, Value>, Value, Value, Value) {
    let mut schemas = Map::new();
    schemas.insert("Error".to_owned(), error_schema());
    (schemas, headers(), parameters(), security_schemes())
}

fn error_schema() -> Value {
    let inner = object(
        "What went wrong.",
        &["code", "message"],
        json!({
            "code": string("Stable, machine-readable code (`not_found`, `invalid_json`, \
                `rate_limited`...); each response lists the codes of its status."),
            "message": string("For people; never carries internal details, and at most 300 \
                bytes (quoted input is cut short)."),
        }),
    );
    object(
        "The body of every error answer.",
        &["error"],
        json!({ "error": inner }),
    )
}

fn headers() -> Value {
    let int = |description: &str| json!({ "description": description, "schema": { "type": "integer", "minimum": 0 } });
    json!({
        "XRequestId": {
            "description": "The request's id: the client's `X-Request-Id` when it sent one, \
                else a new UUID. Also in the service's logs. Absent only on 400 \
                `malformed_request`, which answers a head that never became a request.",
            "required": true,
            "schema": { "type": "string" },
        },
        "XRequestIdNone": {
            "description": "Absent: this answer is written for a request head that was not \
                read whole, before any request exists.",
            "required": false,
            "schema": { "type": "string" },
        },
        "XCache": {
            "description": "`HIT`: served from the tenant's cache; `MISS`: fetched now \
                (also with `force_refresh`).",
            "required": true,
            "schema": { "type": "string", "enum": ["HIT", "MISS"] },
        },
        "RateLimitLimit": int("Requests per minute the tenant's `operations_per_minute` quota allows \
            (absent when it has none)."),
        "RateLimitRemaining": int("Requests that would be admitted right now."),
        "RateLimitReset": int("Seconds until the tenant's bucket is full again."),
        "RetryAfter": int("Seconds to wait before retrying."),
        "WWWAuthenticate": {
            "description": "`Bearer`.",
            "required": true,
            "schema": { "type": "string", "const": "Bearer" },
        },
        "Location": {
            "description": "Where the created resource is read.",
            "required": true,
            "schema": { "type": "string" },
        },
    })
}

fn parameters() -> Value {
    let path = |description: &str, pattern: &str| {
        json!({
            "name": "id",
            "in": "path",
            "required": true,
            "description": description,
            "schema": { "type": "string", "pattern": pattern },
        })
    };
    json!({
        "TenantHeader": {
            "name": "X-Tenant-ID",
            "in": "header",
            "required": true,
            "description": "The tenant the API key belongs to, or the JWT is for. Missing: \
                400 `missing_tenant_header`; malformed: 400 `invalid_tenant_id`; another \
                tenant than the API key's: 403 `tenant_mismatch` (a JWT that is not this \
                tenant's: 401). Ignored when multi-tenancy is off.",
            "schema": { "type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$" },
        },
        "TenantId": path("A tenant id (malformed: 400 `invalid_tenant_id`).",
            "^[a-z0-9][a-z0-9_-]{0,63}$"),
        "SessionId": path("A session id of the caller's tenant (malformed: 400 \
            `invalid_session_id`; another tenant's: 404).", "^[A-Za-z0-9_-]{22,64}$"),
        "WarmJobId": path("A warm job id (malformed: 400 `invalid_job_id`).", "^[0-9a-f]{16}$"),
        "TokenId": path("An admin token id, or `env` for the configured token (malformed: \
            400 `invalid_input`).", "^([a-z2-7]{12}|env)$"),
        "Kid": {
            "name": "kid",
            "in": "path",
            "required": true,
            "description": "A JWT verification key id (malformed: 400 `invalid_key_id`).",
            "schema": { "type": "string", "pattern": "^[a-z2-7]{12}$" },
        },
        "KeyId": {
            "name": "key_id",
            "in": "path",
            "required": true,
            "description": "An API key id (malformed: 400 `invalid_key_id`).",
            "schema": { "type": "string", "pattern": "^[a-z2-7]{12}$" },
        },
    })
}

fn security_schemes() -> Value {
    json!({
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "RipTide API key or JWT",
            "description": format!("A tenant's API key, or a JWT signed with one of its \
                verification keys (`/admin/tenants/{{id}}/jwt-keys`: header `kid` required, \
                claims `tenant` and `exp` required, `nbf` and `aud` honoured), as \
                `Authorization: Bearer <credential>`, with the required header `X-Tenant-ID` \
                naming its tenant. Missing, malformed, unknown, revoked or expired keys, and \
                tokens that do not verify for that tenant: 401 with \
                `WWW-Authenticate: Bearer`. With \
                multi-tenancy off (`ENABLE_MULTI_TENANCY=false`) no key is needed and \
                requests run as tenant `default`. Request bodies of tenant routes are \
                limited to {MAX_BODY_BYTES} bytes."),
        },
        "adminToken": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "RipTide admin token",
            "description": "An admin token as `Authorization: Bearer <token>`: the \
                configured `admin.token`, the one written under `data_dir` on first start, \
                or one made with `POST /admin/tokens`. Each token has a role (`admin`, \
                `operator`, `billing`, `viewer`); each operation lists the roles it \
                allows in `x-required-roles`.",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_grouped_by_status_with_their_codes() {
        let out = responses(
            vec![(200, empty_reply("ok", &[]))],
            &[
                ANY,
                &[(400, "a"), (400, "b"), (429, "rate_limited")],
                &[(400, "a")],
            ],
        );
        assert_eq!(
            out["400"]["x-error-codes"],
            json!(["malformed_request", "a", "b"])
        );
        // A refused head has no request, so no request id.
        assert_eq!(
            out["431"]["headers"]["X-Request-Id"]["$ref"],
            "#/components/headers/XRequestIdNone"
        );
        assert!(
            out["429"]["headers"]["RateLimit-Limit"].is_object(),
            "{out}"
        );
        assert!(
            out["500"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("`internal`"))
        );
        assert!(out["200"]["headers"]["X-Request-Id"].is_object());
    }

    #[test]
    fn nullable_keeps_the_description() {
        assert_eq!(nullable(string("s"))["type"], json!(["string", "null"]));
        let wrapped = nullable(json!({ "$ref": "#/x", "description": "d" }));
        assert_eq!(wrapped["description"], "d");
        assert_eq!(wrapped["anyOf"][1]["type"], "null");
    }

    #[test]
    fn roles_come_from_the_policy() {
        assert_eq!(roles_allowed(AdminAction::WriteTenants), ["admin"]);
        assert_eq!(
            roles_allowed(AdminAction::ReadBilling),
            ["admin", "billing", "viewer"]
        );
    }
}
