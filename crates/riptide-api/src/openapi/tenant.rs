//! The tenant operations: `/extract`, `/crawl`, `/sessions`, `/sessions/{id}` and
//! `/usage`, each behind the tenant middleware (see [`crate::middleware::tenant`]).

use serde_json::{Value, json};

use super::common::{
    ANY, Failure, TENANT_BODY, TENANT_GUARD, empty_reply, json_body, json_reply, parameter,
    responses, schema, tenant_op,
};
use crate::middleware::tenant::RouteSpec;
use crate::routes::tenant::{CRAWL, EXTRACT, SESSIONS, USAGE};

/// What a tenant's successful answer carries: the state of its rate limit.
const RATE_HEADERS: &[&str] = &["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"];

/// How fetching a page can fail (see [`crate::routes::tenant::errors`]).
const FETCH: &[Failure] = &[
    (400, "invalid_url"),
    (400, "blocked_address"),
    (413, "page_too_large"),
    (415, "not_html"),
    (422, "page_too_complex"),
    (429, "queue_full"),
    (502, "dns_failure"),
    (502, "upstream_unreachable"),
    (502, "upstream_status"),
    (502, "too_many_redirects"),
    (502, "decode_failed"),
    (503, "extraction_unavailable"),
    (504, "upstream_timeout"),
];

/// The permission `validate_access` checks for `route`: `resource` or `resource:action`.
fn permission(route: &RouteSpec) -> String {
    if route.action.is_empty() {
        route.resource.to_owned()
    } else {
        format!("{}:{}", route.resource, route.action)
    }
}

/// Paths of the tenant routes.
pub fn paths() -> Value {
    json!({
        "/extract": { "post": extract() },
        "/crawl": { "post": crawl() },
        "/sessions": { "post": create_session() },
        "/sessions/{id}": {
            "parameters": [parameter("SessionId")],
            "get": get_session(),
            "delete": delete_session(),
        },
        "/usage": { "get": usage() },
    })
}

fn extract() -> Value {
    let ok = json_reply(
        "The page's extraction, from the cache (`X-Cache: HIT`) or fetched now (`MISS`).",
        schema("Extraction"),
        &["X-Cache", RATE_HEADERS[0], RATE_HEADERS[1], RATE_HEADERS[2]],
    );
    tenant_op(
        &permission(&EXTRACT),
        json!({
            "operationId": "post_extract",
            "tags": ["tenant"],
            "summary": "Extract a page through the tenant's cache",
            "description": "Cache-aside with single flight: concurrent requests of one URL \
                (and options) cause one fetch; a hit serves the stored extraction as it is. \
                `force_refresh` fetches anyway and replaces the entry. With `session_id` the \
                session's cookies and headers go with the fetch, and the result is cached \
                for that session only. Metered as one `extract` operation.",
            "requestBody": json_body("ExtractRequest", true,
                json!({ "url": "https://example.com/article", "ttl_seconds": 3600 })),
            "responses": responses(
                vec![(200, ok)],
                &[ANY, TENANT_GUARD, TENANT_BODY, FETCH, &[
                    (400, "invalid_ttl"),
                    (400, "invalid_session_id"),
                    (400, "invalid_input"),
                    (404, "not_found"),
                    (413, "over_budget"),
                ]],
            ),
        }),
    )
}

fn crawl() -> Value {
    tenant_op(
        &permission(&CRAWL),
        json!({
            "operationId": "post_crawl",
            "tags": ["tenant"],
            "summary": "Extract many pages through the tenant's cache",
            "description": "Every URL looked up and, on a miss, fetched and stored as \
                `/extract` would, at most `concurrency` in flight, and one result per URL in \
                request order (a URL's own failure is its result, with the code `/extract` \
                would answer; a repeated URL points at its first result; pages beyond the \
                answer's byte budget are reported as `stored`). Entries are shared with \
                `/extract`. Costs one request of the rate limit per URL (429 for the whole \
                crawl when they are not there) and is metered as one `crawl` operation per \
                URL.",
            "requestBody": json_body("CrawlRequest", true, json!({
                "urls": ["https://example.com/article", "https://example.com/news"],
                "concurrency": 4,
            })),
            "responses": responses(
                vec![(200, json_reply("One result per requested URL.", schema("CrawlResponse"),
                    RATE_HEADERS))],
                &[ANY, TENANT_GUARD, TENANT_BODY, &[
                    (400, "no_urls"),
                    (400, "too_many_urls"),
                    (400, "invalid_concurrency"),
                    (400, "invalid_input"),
                ]],
            ),
        }),
    )
}

fn create_session() -> Value {
    let created = json_reply(
        "The session; `Location` is its address.",
        schema("SessionCreated"),
        &[
            "Location",
            RATE_HEADERS[0],
            RATE_HEADERS[1],
            RATE_HEADERS[2],
        ],
    );
    tenant_op(
        &permission(&SESSIONS),
        json!({
            "operationId": "post_session",
            "tags": ["tenant"],
            "summary": "Create a session",
            "description": "A session holds cookies and headers that `/extract` sends with \
                `session_id`. Every field is optional; an empty body makes an empty session \
                with the default lifetime. Counts against the tenant's `storage_bytes` and \
                its session limit (429 `quota_exceeded`).",
            "requestBody": json_body("CreateSessionRequest", false, json!({
                "ttl_seconds": 3600,
                "cookies": [{ "name": "sid", "value": "abc123", "domain": "example.com" }],
                "headers": { "accept-language": "en" },
            })),
            "responses": responses(
                vec![(201, created)],
                &[ANY, TENANT_GUARD, TENANT_BODY, &[
                    (400, "invalid_cookies"),
                    (400, "invalid_headers"),
                    (400, "invalid_ttl"),
                    (400, "invalid_input"),
                    (409, "conflict"),
                ]],
            ),
        }),
    )
}

fn get_session() -> Value {
    tenant_op(
        &permission(&SESSIONS),
        json!({
            "operationId": "get_session",
            "tags": ["tenant"],
            "summary": "Read a session",
            "description": "The caller's session; another tenant's id answers 404 like an \
                unknown one.",
            "responses": responses(
                vec![(200, json_reply("The session.", schema("Session"), RATE_HEADERS))],
                &[ANY, TENANT_GUARD, &[(400, "invalid_session_id"), (404, "not_found")]],
            ),
        }),
    )
}

fn delete_session() -> Value {
    tenant_op(
        &permission(&SESSIONS),
        json!({
            "operationId": "delete_session",
            "tags": ["tenant"],
            "summary": "End a session",
            "description": "Removes the session everywhere and releases its storage.",
            "responses": responses(
                vec![(204, empty_reply("Ended.", RATE_HEADERS))],
                &[ANY, TENANT_GUARD, &[
                    (400, "invalid_session_id"),
                    (404, "not_found"),
                    (409, "conflict"),
                ]],
            ),
        }),
    )
}

fn usage() -> Value {
    tenant_op(
        &permission(&USAGE),
        json!({
            "operationId": "get_usage",
            "tags": ["tenant"],
            "summary": "The caller's usage and quota headroom this month",
            "description": "Operations, bytes, compute time and cache hits of the current \
                month (UTC), including what this instance has not flushed yet; the headroom \
                under each quota; and the rate limit as this request left it.",
            "responses": responses(
                vec![(200, json_reply("The usage report.", schema("UsageReport"), RATE_HEADERS))],
                &[ANY, TENANT_GUARD],
            ),
        }),
    )
}
