//! The operations without credentials: the probes, the metrics (unless `metrics.token`
//! is set) and this document.

use serde_json::{Map, Value, json};

use super::common::{ANY, STORE, json_reply, object, one_of_strings, responses};

/// Paths of `/healthz`, `/readyz`, `/metrics` and `/openapi.json`.
pub fn paths() -> Value {
    json!({
        "/healthz": { "get": {
            "operationId": "get_healthz",
            "tags": ["service"],
            "summary": "Liveness",
            "description": "200 while the process serves HTTP. Touches nothing else, so a \
                slow store never gets a live process restarted.",
            "security": [],
            "responses": responses(
                vec![(200, json_reply("The process is alive.", super::common::schema("Health"), &[]))],
                &[ANY],
            ),
        }},
        "/readyz": { "get": {
            "operationId": "get_readyz",
            "tags": ["service"],
            "summary": "Readiness",
            "description": "200 when the store answers a ping and still holds the identity \
                this instance adopted at start. 503 `store_unavailable` when the store does \
                not answer; `store_identity_lost` when it was wiped or replaced (restart the \
                instances once it is the store to use); `store_evicting_policy` when a Redis \
                node came back from a reconnect with an `allkeys-*` maxmemory-policy. Cache \
                warming never holds readiness back.",
            "security": [],
            "responses": responses(
                vec![(200, json_reply("The store answers.", super::common::schema("Ready"), &[]))],
                &[ANY, STORE, &[(503, "store_identity_lost"), (503, "store_evicting_policy")]],
            ),
        }},
        "/metrics": { "get": {
            "operationId": "get_metrics",
            "tags": ["service"],
            "summary": "Prometheus metrics",
            "description": "Every metric of this process in the Prometheus text exposition \
                format 0.0.4: cache, tenant, state, warming and HTTP request metrics. Open \
                unless `metrics.token` (`RIPTIDE_METRICS_TOKEN`) is set; then it requires \
                `Authorization: Bearer <metrics.token>` (401 `unauthorized` with \
                `WWW-Authenticate: Bearer` without it or with another token, which counts \
                as a failed authentication of the client address).",
            "security": [],
            "responses": responses(
                vec![(200, metrics_reply())],
                &[ANY, &[(401, "unauthorized"), (429, "too_many_auth_failures")]],
            ),
        }},
        "/openapi.json": { "get": {
            "operationId": "get_openapi",
            "tags": ["service"],
            "summary": "This OpenAPI document",
            "description": "The OpenAPI 3.1 document of every route of the service.",
            "security": [],
            "responses": responses(
                vec![(200, json_reply("The document.", json!({ "type": "object" }), &[]))],
                &[ANY],
            ),
        }},
    })
}

fn metrics_reply() -> Value {
    json!({
        "description": "The metrics.",
        "headers": { "X-Request-Id": super::common::header("XRequestId") },
        "content": { "text/plain; version=0.0.4; charset=utf-8": { "schema": { "type": "string" } } },
    })
}

/// Schemas of the probes.
pub fn schemas() -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(
        "Health".to_owned(),
        object(
            "Liveness.",
            &["status"],
            json!({ "status": one_of_strings("Always `ok`.", &["ok"]) }),
        ),
    );
    out.insert(
        "Ready".to_owned(),
        object(
            "Readiness.",
            &["status", "store"],
            json!({
                "status": one_of_strings("Always `ready`.", &["ready"]),
                "store": one_of_strings("The store the service runs on.",
                    &["embedded", "redis", "redis-cluster"]),
            }),
        ),
    );
    out
}
