//! Schemas of the tenant routes' bodies: extraction, crawl, sessions and usage.

use riptide_persistence::state::sessions::{MAX_COOKIES, MAX_HEADERS, MAX_SESSION_TTL};
use riptide_persistence::tenant::{BillingPlan, Resource};
use serde_json::{Map, Value, json};

use super::common::{array, count, map, nullable, object, one_of_strings, schema, string, time};
use crate::config::CrawlConfig;
use crate::routes::tenant::extract::MAX_TTL_SECONDS;

/// The schemas, by name.
pub fn schemas() -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("ExtractRequest".into(), extract_request());
    out.insert("Extraction".into(), extraction());
    out.insert("Link".into(), link());
    out.insert("CrawlRequest".into(), crawl_request());
    out.insert("CrawlResponse".into(), crawl_response());
    out.insert("CrawlPage".into(), crawl_page());
    out.insert("CrawlStored".into(), crawl_stored());
    out.insert("CrawlDuplicate".into(), crawl_duplicate());
    out.insert("CrawlFailure".into(), crawl_failure());
    out.insert("CreateSessionRequest".into(), create_session());
    out.insert("SessionCookie".into(), cookie());
    out.insert("SessionCreated".into(), session_created());
    out.insert("Session".into(), session());
    out.insert("BillingPlan".into(), plan());
    out.insert("UsageSummary".into(), usage_summary());
    out.insert("UsageReport".into(), usage_report());
    out.insert("Headroom".into(), headroom());
    out.insert("RateLimitState".into(), rate_limit());
    out
}

fn extract_request() -> Value {
    object(
        "Body of `POST /extract`.",
        &["url"],
        json!({
            "url": { "type": "string", "format": "uri",
                "description": "An absolute http(s) URL without credentials; normalized \
                    before use (malformed: 400 `invalid_url`)." },
            "ttl_seconds": { "type": "integer", "minimum": 1, "maximum": MAX_TTL_SECONDS,
                "description": "Lifetime of the cached entry; default \
                    `persistence.cache.default_ttl_seconds` (out of range: 400 `invalid_ttl`)." },
            "force_refresh": { "type": "boolean", "default": false,
                "description": "Fetch even when cached, and replace the entry." },
            "session_id": { "type": "string", "pattern": "^[A-Za-z0-9_-]{22,64}$",
                "description": "A session of the caller's tenant whose cookies and headers \
                    are sent (unknown: 404)." },
        }),
    )
}

fn extraction() -> Value {
    object(
        "The readable content of one fetched page, and facts about the fetch.",
        &[
            "url",
            "final_url",
            "status",
            "content_type",
            "title",
            "byline",
            "excerpt",
            "text",
            "markdown",
            "links",
            "language",
            "published",
            "content_hash",
            "fetched_at",
            "bytes_fetched",
        ],
        json!({
            "url": string("The URL that was requested."),
            "final_url": string("The URL the content came from, after redirects."),
            "status": { "type": "integer", "minimum": 200, "maximum": 299,
                "description": "The HTTP status of the final response." },
            "content_type": string("The response's content type (`text/html` when sniffed)."),
            "title": nullable(string("The article title.")),
            "byline": nullable(string("The author line, when the page names one.")),
            "excerpt": nullable(string("The description meta or the first paragraph.")),
            "text": string("The readable text of the article."),
            "markdown": string("The article as Markdown."),
            "links": array("Absolute http(s) links of the article, deduplicated, in \
                document order.", schema("Link")),
            "language": nullable(string("ISO 639-1 code when one exists.")),
            "published": nullable(string("Publication time, RFC 3339 when it parses.")),
            "content_hash": string("blake3 of `text`, lower-case hex."),
            "fetched_at": time("When the page was fetched (UTC)."),
            "bytes_fetched": count("Body bytes received."),
        }),
    )
}

fn link() -> Value {
    object(
        "A hyperlink of the content.",
        &["href", "text"],
        json!({
            "href": string("Absolute http(s) URL, fragment removed."),
            "text": string("The link's visible text (may be empty)."),
        }),
    )
}

fn crawl_request() -> Value {
    let limits = CrawlConfig::default();
    object(
        "Body of `POST /crawl`. The limits shown are the defaults (`crawl.max_urls`, \
            `crawl.max_concurrency`, `crawl.default_concurrency`).",
        &["urls"],
        json!({
            "urls": { "type": "array", "minItems": 1, "maxItems": limits.max_urls,
                "items": { "type": "string", "format": "uri" },
                "description": "Absolute http(s) URLs (none: 400 `no_urls`; too many, or more \
                    than the tenant's rate-limit burst: 400 `too_many_urls`). Each costs one \
                    request of the rate limit. A URL given twice is fetched once." },
            "concurrency": { "type": "integer", "minimum": 1,
                "maximum": limits.max_concurrency, "default": limits.default_concurrency,
                "description": "Fetches in flight (out of range: 400 `invalid_concurrency`)." },
        }),
    )
}

fn crawl_response() -> Value {
    object(
        "The results of a crawl.",
        &["results"],
        json!({
            "results": array("One per requested URL, in request order.", json!({
                "oneOf": [schema("CrawlPage"), schema("CrawlStored"), schema("CrawlDuplicate"),
                    schema("CrawlFailure")],
            })),
        }),
    )
}

fn crawl_stored() -> Value {
    object(
        "A URL served into the cache but not into this answer: the answer's page data \
            reached `crawl.max_answer_bytes`. Read it with `/extract` (a `HIT`).",
        &["url", "cache", "status"],
        json!({
            "url": string("The URL as requested."),
            "cache": one_of_strings("Whether it came from the cache.", &["HIT", "MISS"]),
            "status": { "const": "stored", "description": "`stored`." },
        }),
    )
}

fn crawl_duplicate() -> Value {
    object(
        "A URL that is the same page as an earlier one of the request (after \
            normalization): its result is that one's.",
        &["url", "status", "same_as"],
        json!({
            "url": string("The URL as requested; one over 2 KiB is cut, ending in `…`."),
            "status": { "const": "duplicate", "description": "`duplicate`." },
            "same_as": { "type": "integer", "minimum": 0,
                "description": "The index of the earlier result." },
        }),
    )
}

fn crawl_page() -> Value {
    object(
        "A URL served.",
        &["url", "cache", "status", "data"],
        json!({
            "url": string("The URL as requested."),
            "cache": one_of_strings("Whether it came from the cache.", &["HIT", "MISS"]),
            "status": { "const": "ok", "description": "`ok`." },
            "data": schema("Extraction"),
        }),
    )
}

fn crawl_failure() -> Value {
    object(
        "A URL that failed.",
        &["url", "status", "error"],
        json!({
            "url": string("The URL as requested; one over 2 KiB is cut, ending in `…`."),
            "status": { "const": "error", "description": "`error`." },
            "error": object("What `/extract` would have answered for it.", &["code", "message"],
                json!({
                    "code": string("The error code (`invalid_url`, `upstream_timeout`...)."),
                    "message": string("For people."),
                })),
        }),
    )
}

fn create_session() -> Value {
    object(
        "Body of `POST /sessions`; every field is optional.",
        &[],
        json!({
            "ttl_seconds": { "type": "integer", "minimum": 1, "maximum": MAX_SESSION_TTL.as_secs(),
                "description": "Lifetime; default `persistence.state.session_ttl_seconds` \
                    (out of range: 400 `invalid_ttl`)." },
            "cookies": { "type": "array", "maxItems": MAX_COOKIES, "items": schema("SessionCookie"),
                "description": "Cookies sent with fetches (invalid: 400 `invalid_cookies`)." },
            "headers": { "type": "object", "maxProperties": MAX_HEADERS,
                "additionalProperties": { "type": "string" },
                "description": "Headers sent with fetches, by name (invalid: 400 \
                    `invalid_headers`)." },
        }),
    )
}

fn cookie() -> Value {
    json!({
        "type": "object",
        "description": "A cookie a session sends.",
        "required": ["name", "value"],
        "properties": {
            "name": string("Cookie name (HTTP token characters)."),
            "value": string("Cookie value."),
            "domain": string("Domain it is sent to (and its subdomains); absent: any."),
            "path": string("Path prefix it is sent for; absent: any."),
        },
    })
}

fn session_created() -> Value {
    object(
        "A new session.",
        &["session_id", "expires_at"],
        json!({
            "session_id": string("Its id, for `/extract` and `/sessions/{id}`."),
            "expires_at": time("When it expires."),
        }),
    )
}

fn session() -> Value {
    object(
        "A session as its tenant sees it.",
        &[
            "session_id",
            "cookies",
            "headers",
            "created_at",
            "updated_at",
            "expires_at",
        ],
        json!({
            "session_id": string("The id."),
            "cookies": array("Cookies, in the order given.", schema("SessionCookie")),
            "headers": map("Headers by lower-case name.", json!({ "type": "string" })),
            "created_at": time("When it was created."),
            "updated_at": time("When it was last changed."),
            "expires_at": time("When it expires."),
        }),
    )
}

fn plan() -> Value {
    let names: Vec<&str> = BillingPlan::ALL.iter().map(|p| p.as_str()).collect();
    one_of_strings("A billing plan.", &names)
}

fn usage_summary() -> Value {
    object(
        "One tenant's usage in one calendar month (UTC).",
        &[
            "period",
            "operations",
            "data_bytes",
            "compute_ms",
            "storage_bytes",
            "cache_hits",
            "cache_misses",
            "by_operation",
        ],
        json!({
            "period": { "type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$",
                "description": "The month, `YYYY-MM`." },
            "operations": count("Operations."),
            "data_bytes": count("Bytes transferred (response bodies)."),
            "compute_ms": count("Compute time, ms."),
            "storage_bytes": count("Durable bytes added."),
            "cache_hits": count("Cache hits."),
            "cache_misses": count("Cache misses."),
            "by_operation": map("Operations by name (`extract`, `crawl`, `sessions`, \
                `usage`...; beyond a bound, `other`).", json!({ "type": "integer", "minimum": 0 })),
        }),
    )
}

fn usage_report() -> Value {
    let quota = |r: Resource| (r.as_str().to_owned(), schema("Headroom"));
    let quotas: Map<String, Value> = [
        Resource::MemoryBytes,
        Resource::StorageBytes,
        Resource::DataTransferBytes,
    ]
    .into_iter()
    .map(quota)
    .collect();
    let names: Vec<&String> = quotas.keys().collect();
    object(
        "Answer of `GET /usage`.",
        &[
            "tenant_id",
            "plan",
            "period",
            "usage",
            "quotas",
            "rate_limit",
        ],
        json!({
            "tenant_id": string("The caller's tenant."),
            "plan": schema("BillingPlan"),
            "period": string("The month reported, `YYYY-MM` (UTC)."),
            "usage": schema("UsageSummary"),
            "quotas": {
                "type": "object",
                "description": "Headroom per quota: `memory_bytes` (cache held now), \
                    `storage_bytes` (durable data held now), `data_transfer_bytes` (this month).",
                "required": names,
                "properties": quotas,
                "additionalProperties": false,
            },
            "rate_limit": nullable(json!({ "$ref": "#/components/schemas/RateLimitState",
                "description": "The rate limit after this request; `null` without an \
                    `operations_per_minute` quota." })),
        }),
    )
}

fn headroom() -> Value {
    object(
        "One quota.",
        &["limit", "used", "remaining"],
        json!({
            "limit": nullable(count("The limit in force; `null`: unlimited.")),
            "used": count("In use."),
            "remaining": nullable(count("`limit - used`, never below 0; `null`: unlimited.")),
        }),
    )
}

fn rate_limit() -> Value {
    object(
        "The `operations_per_minute` bucket.",
        &["limit", "burst", "remaining", "reset_seconds"],
        json!({
            "limit": count("Requests per minute at the steady rate."),
            "burst": count("Requests admitted at once from a full bucket."),
            "remaining": count("Requests that would be admitted right now."),
            "reset_seconds": count("Seconds until the bucket is full again."),
        }),
    )
}
