//! `GET /openapi.json`: the document is OpenAPI 3.1, covers exactly the routes the
//! router registers (read from the source, both ways), every operation is complete and
//! every `$ref` resolves. The tests against the running service are in [`live`]: each
//! operation answers a documented status with a body of the documented schema and
//! error codes, refusals too, and the documented roles are the enforced ones.

mod fixture;
mod live;
mod schema_check;
mod source_routes;

use std::collections::BTreeSet;

use serde_json::{Value, json};

use self::schema_check::resolve;
use crate::support::{TestServer, json_of};

/// The methods a path item may hold.
const METHODS: [&str; 8] = [
    "get", "post", "put", "delete", "patch", "head", "options", "trace",
];

/// One documented operation.
pub struct Operation<'a> {
    /// `get`, `post`...
    pub method: &'a str,
    /// The path template.
    pub path: &'a str,
    /// The operation object.
    pub op: &'a Value,
    /// The path item's parameters, then the operation's.
    pub parameters: Vec<&'a Value>,
}

pub fn operations(doc: &Value) -> Vec<Operation<'_>> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let shared: Vec<&Value> = item["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        for method in METHODS {
            if let Some(op) = item.get(method) {
                let mut parameters: Vec<&Value> = shared.clone();
                parameters.extend(op["parameters"].as_array().into_iter().flatten());
                out.push(Operation {
                    method,
                    path,
                    op,
                    parameters,
                });
            }
        }
    }
    out
}

/// A `$ref` followed once, or the value itself.
pub fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(doc, r).unwrap_or_else(|| panic!("unresolved {r}")),
        None => v,
    }
}

pub async fn served_document(server: &TestServer) -> Value {
    json_of(server.get("/openapi.json").await, 200).await
}

#[tokio::test]
async fn the_document_is_served_as_openapi_3_1() {
    let server = TestServer::start().await;
    let doc = served_document(&server).await;
    assert_eq!(&doc, riptide_api::openapi::document());
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "RipTide");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(doc["servers"][0]["url"].is_string(), "{}", doc["servers"]);
    let components = &doc["components"];
    let error = &components["schemas"]["Error"];
    assert_eq!(error["required"], json!(["error"]));
    assert_eq!(
        error["properties"]["error"]["required"],
        json!(["code", "message"])
    );
    assert_eq!(components["securitySchemes"]["apiKey"]["scheme"], "bearer");
    assert_eq!(
        components["securitySchemes"]["adminToken"]["scheme"],
        "bearer"
    );
    assert_eq!(
        components["parameters"]["TenantHeader"]["name"],
        "X-Tenant-ID"
    );
    assert!(components["schemas"].as_object().expect("schemas").len() > 40);
}

#[test]
fn every_route_is_documented_and_every_operation_is_routed() {
    let registered = source_routes::registered();
    for known in [
        ("GET", "/healthz"),
        ("POST", "/extract"),
        ("GET", "/sessions/{id}"),
        ("DELETE", "/sessions/{id}"),
        ("PUT", "/admin/tenants/{id}"),
        ("POST", "/admin/tenants/{id}/keys/{key_id}/rotate"),
        ("GET", "/openapi.json"),
    ] {
        assert!(
            registered.contains(&(known.0.to_owned(), known.1.to_owned())),
            "the route reader missed {known:?}: {registered:?}"
        );
    }
    let doc = riptide_api::openapi::document();
    let documented: BTreeSet<(String, String)> = operations(doc)
        .iter()
        .map(|o| (o.method.to_uppercase(), o.path.to_owned()))
        .collect();
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&registered).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the OpenAPI document: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented operations no route serves: {unrouted:?}"
    );
}

/// Every `$ref` under `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                match (k.as_str(), child) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
        _ => {}
    }
}

#[test]
fn every_operation_is_complete_and_every_ref_resolves() {
    let doc = riptide_api::openapi::document();
    let mut all = Vec::new();
    refs(doc, &mut all);
    assert!(all.len() > 100, "{}", all.len());
    for r in all {
        assert!(resolve(doc, r).is_some(), "unresolved $ref {r}");
    }
    let mut ids = BTreeSet::new();
    for o in operations(doc) {
        let name = format!("{} {}", o.method.to_uppercase(), o.path);
        let op = o.op;
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: operationId"));
        assert!(ids.insert(id.to_owned()), "{name}: operationId {id} twice");
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{name}: summary"
        );
        assert!(op["description"].is_string(), "{name}: description");
        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}"));
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{name}: no 2xx response"
        );
        let has = |status: &str| responses.contains_key(status);
        for status in ["500", "503"] {
            assert!(has(status), "{name}: {status} not listed");
        }
        for (status, response) in responses {
            assert!(response["description"].is_string(), "{name} {status}");
            assert!(
                response["headers"]["X-Request-Id"].is_object(),
                "{name} {status}"
            );
            if !status.starts_with('2') {
                let body = &response["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(body, "#/components/schemas/Error", "{name} {status}");
                let codes = response["x-error-codes"].as_array();
                assert!(
                    codes.is_some_and(|c| !c.is_empty()),
                    "{name} {status}: codes"
                );
            }
        }
        let security = op["security"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: security"));
        let parameters: Vec<&Value> = o.parameters.iter().map(|p| deref(doc, p)).collect();
        if o.path.starts_with("/admin/") {
            assert_eq!(security, &[json!({ "adminToken": [] })], "{name}");
            assert!(
                op["x-required-roles"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty()),
                "{name}"
            );
            for status in ["401", "403"] {
                assert!(has(status), "{name}: {status} not listed");
            }
            assert!(
                responses["401"]["headers"]["WWW-Authenticate"].is_object(),
                "{name}"
            );
        } else if ["/extract", "/crawl", "/sessions", "/usage"]
            .iter()
            .any(|p| o.path == *p || o.path.starts_with(&format!("{p}/")))
        {
            assert_eq!(security, &[json!({ "apiKey": [] })], "{name}");
            assert!(
                parameters
                    .iter()
                    .any(|p| p["name"] == "X-Tenant-ID" && p["required"] == true),
                "{name}: X-Tenant-ID"
            );
            for status in ["400", "401", "403", "429"] {
                assert!(has(status), "{name}: {status} not listed");
            }
            assert!(
                responses["429"]["headers"]["Retry-After"].is_object(),
                "{name}"
            );
            assert!(
                responses["429"]["headers"]["RateLimit-Limit"].is_object(),
                "{name}"
            );
        } else {
            assert!(security.is_empty(), "{name}: probes need no credentials");
        }
        if op.get("requestBody").is_some() {
            assert!(has("400") && has("413"), "{name}: a body can be refused");
        }
        for p in &parameters {
            let pname = p["name"].as_str().expect("parameter name");
            match p["in"].as_str() {
                Some("path") => {
                    assert_eq!(p["required"], true, "{name}: {pname}");
                    assert!(has("400"), "{name}: a path id can be malformed");
                }
                Some("query") => assert!(has("400"), "{name}: a query can be malformed"),
                Some("header") => {}
                other => panic!("{name}: parameter {pname} in {other:?}"),
            }
        }
        for segment in o.path.split('/') {
            if let Some(var) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                assert!(
                    parameters
                        .iter()
                        .any(|p| p["name"] == var && p["in"] == "path"),
                    "{name}: path parameter {var} is not declared"
                );
            }
        }
    }
}
