//! The OpenAPI document against the running service: every operation answers a
//! documented status with the documented headers and body; spoiled requests (no
//! credentials, malformed or unknown ids, broken or non-JSON bodies, unknown query parameters) are
//! refused with a documented status and code; and each role is refused exactly where
//! the document says.

use reqwest::Method;
use serde_json::Value;

use super::fixture::{Credentials, Fixture, credentials_for, path_vars, run_order, unknown_id};
use super::schema_check::check;
use super::{Operation, deref, operations, served_document};

#[tokio::test]
async fn every_operation_answers_a_documented_status_with_a_documented_body() {
    let fixture = Fixture::start().await;
    let doc = served_document(&fixture.server).await;
    let mut ops = operations(&doc);
    ops.sort_by_key(run_order);
    let mut failures = Vec::new();
    for o in &ops {
        let name = format!("{} {}", o.method.to_uppercase(), o.path);
        let path = fixture.concrete_path(o);
        let method = Method::from_bytes(o.method.to_uppercase().as_bytes()).expect("method");
        let credentials = credentials_for(o, &fixture.admin);
        let response = fixture
            .send(method, &path, fixture.body(o), &credentials)
            .await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let Some(documented) = o.op["responses"].get(status.to_string()) else {
            failures.push(format!(
                "{name}: answered {status}, not documented: {bytes:?}"
            ));
            continue;
        };
        if !(200..300).contains(&status) {
            failures.push(format!("{name}: answered {status}: {bytes:?}"));
        }
        if let Err(e) = check_answer(&doc, documented, &headers, &bytes) {
            failures.push(format!("{name} {status}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The answer has the documented required headers and a body of the documented schema
/// (for an error: one of the documented codes).
fn check_answer(
    doc: &Value,
    documented: &Value,
    headers: &reqwest::header::HeaderMap,
    bytes: &[u8],
) -> Result<(), String> {
    for (name, header) in documented["headers"].as_object().into_iter().flatten() {
        if deref(doc, header)["required"] == true && !headers.contains_key(name.as_str()) {
            return Err(format!("header {name} is missing"));
        }
    }
    let Some(content) = documented["content"].as_object() else {
        return if bytes.is_empty() {
            Ok(())
        } else {
            Err(format!("a body where none is documented: {bytes:?}"))
        };
    };
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (media, spec) = content.iter().next().ok_or("no media type documented")?;
    if !content_type.starts_with(media.split(';').next().unwrap_or(media)) {
        return Err(format!("content type {content_type}, documented {media}"));
    }
    if !media.starts_with("application/json") {
        return Ok(());
    }
    let body: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    check(doc, &spec["schema"], &body, "$")?;
    if let Some(Value::Array(codes)) = documented.get("x-error-codes")
        && !codes.contains(&body["error"]["code"])
    {
        return Err(format!(
            "code {} is not among {codes:?}",
            body["error"]["code"]
        ));
    }
    Ok(())
}

#[tokio::test]
async fn the_documented_roles_are_the_enforced_roles() {
    let fixture = Fixture::start().await;
    let doc = served_document(&fixture.server).await;
    let mut ops = operations(&doc);
    ops.retain(|o| o.path.starts_with("/admin/"));
    ops.sort_by_key(run_order);
    let mut mismatches = Vec::new();
    // Every role tries every operation; the path and body are well-formed, so the role
    // check decides. What an allowed write changes cannot turn a later answer into a
    // role refusal.
    for o in &ops {
        let name = format!("{} {}", o.method.to_uppercase(), o.path);
        let allowed: Vec<&str> = o.op["x-required-roles"]
            .as_array()
            .expect("x-required-roles")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for (role, token) in &fixture.roles {
            let method = Method::from_bytes(o.method.to_uppercase().as_bytes()).expect("method");
            let path = fixture.concrete_path(o);
            let response = fixture
                .send(method, &path, fixture.body(o), &Credentials::Admin(token))
                .await;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let refused = status == 403 && body["error"]["code"] == "insufficient_role";
            if status == 401 || refused == allowed.contains(role) {
                mismatches.push(format!("{name} as {role}: {status} {body}"));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// How a request is spoiled, and the statuses it must then be answered with.
#[derive(Clone, Copy, Debug)]
enum Spoil {
    /// No credentials: 401.
    NoCredentials,
    /// Every path id malformed: 400.
    MalformedIds,
    /// Every path id well-formed but unknown: 404.
    UnknownIds,
    /// A body that is not JSON: 400.
    BrokenBody,
    /// A body declared as text: 415.
    TextBody,
    /// An unknown query parameter: 400.
    UnknownQuery,
}

impl Spoil {
    fn applies(self, o: &Operation<'_>) -> bool {
        let has_in = |place: &str| o.parameters.iter().any(|p| p["in"] == place);
        match self {
            Spoil::NoCredentials => o.op["security"].as_array().is_some_and(|s| !s.is_empty()),
            Spoil::MalformedIds | Spoil::UnknownIds => o.path.contains('{'),
            Spoil::BrokenBody | Spoil::TextBody => o.op.get("requestBody").is_some(),
            Spoil::UnknownQuery => has_in("query"),
        }
    }

    fn expected(self) -> u16 {
        match self {
            Spoil::NoCredentials => 401,
            Spoil::UnknownIds => 404,
            Spoil::TextBody => 415,
            _ => 400,
        }
    }
}

#[tokio::test]
async fn refusals_answer_documented_statuses_and_codes() {
    let fixture = Fixture::start().await;
    let doc = served_document(&fixture.server).await;
    let mut ops = operations(&doc);
    ops.sort_by_key(run_order);
    let mut failures = Vec::new();
    let mut tried = 0;
    for spoil in [
        Spoil::NoCredentials,
        Spoil::MalformedIds,
        Spoil::UnknownIds,
        Spoil::BrokenBody,
        Spoil::TextBody,
        Spoil::UnknownQuery,
    ] {
        for o in ops.iter().filter(|o| spoil.applies(o)) {
            let vars = path_vars(o.path);
            let paths: Vec<String> = match spoil {
                Spoil::MalformedIds => vars
                    .iter()
                    .map(|var| fixture.path_with(o, |v| (v == *var).then(|| "NOT~VALID".into())))
                    .collect(),
                Spoil::UnknownIds => vars
                    .iter()
                    .map(|var| {
                        fixture.path_with(o, |v| (v == *var).then(|| unknown_id(o.path, v).into()))
                    })
                    .collect(),
                Spoil::UnknownQuery => vec![fixture.concrete_path(o) + "?nope=1"],
                _ => vec![fixture.concrete_path(o)],
            };
            for path in paths {
                tried += 1;
                let name = format!("{} {path} ({spoil:?})", o.method.to_uppercase());
                let method =
                    Method::from_bytes(o.method.to_uppercase().as_bytes()).expect("method");
                let credentials = match spoil {
                    Spoil::NoCredentials => Credentials::None,
                    _ => credentials_for(o, &fixture.admin),
                };
                let mut request = fixture
                    .server
                    .client()
                    .request(method, fixture.server.url(&path));
                request = match credentials {
                    Credentials::Admin(token) => request.bearer_auth(token),
                    Credentials::Tenant => request
                        .bearer_auth(&fixture.api_key)
                        .header("x-tenant-id", "acme"),
                    Credentials::None => request,
                };
                request = match (spoil, fixture.body(o)) {
                    (Spoil::BrokenBody, _) => request
                        .header("content-type", "application/json")
                        .body("{\"unclosed\": "),
                    (Spoil::TextBody, body) => request
                        .header("content-type", "text/plain")
                        .body(body.map(|b| b.to_string()).unwrap_or_default()),
                    (_, Some(body)) => request.json(&body),
                    (_, None) => request,
                };
                let response = request.send().await.expect("request reaches the server");
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                let bytes = response.bytes().await.expect("body");
                if status != spoil.expected() {
                    failures.push(format!("{name}: answered {status}: {bytes:?}"));
                }
                match o.op["responses"].get(status.to_string()) {
                    Some(documented) => {
                        if let Err(e) = check_answer(&doc, documented, &headers, &bytes) {
                            failures.push(format!("{name} {status}: {e}"));
                        }
                    }
                    None => failures.push(format!("{name}: {status} is not documented")),
                }
            }
        }
    }
    assert!(tried > 60, "{tried}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
