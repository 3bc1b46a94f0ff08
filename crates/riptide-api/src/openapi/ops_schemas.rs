//! Schemas of the cache, warming, audit and admin token operations.

use riptide_persistence::tenant::AdminRole;
use serde_json::{Map, Value, json};

use super::common::{
    array, boolean, count, map, nullable, object, one_of_strings, schema, string, time,
};

/// The schemas, by name.
pub fn schemas() -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("CacheStats".into(), cache_stats());
    out.insert("StatsSnapshot".into(), stats_snapshot());
    out.insert("LatencySummary".into(), latency());
    out.insert("InvalidateRequest".into(), invalidate_request());
    out.insert("InvalidateResponse".into(), invalidate_response());
    out.insert("ClearRequest".into(), clear_request());
    out.insert("ClearResponse".into(), clear_response());
    out.insert("WarmRequest".into(), warm_request());
    out.insert("WarmStarted".into(), warm_started());
    out.insert("RunState".into(), run_state());
    out.insert("WarmFailure".into(), warm_failure());
    out.insert("WarmJob".into(), warm_job());
    out.insert("AuditList".into(), audit_list());
    out.insert("AuditRecord".into(), audit_record());
    out.insert("AuditVerify".into(), audit_verify());
    out.insert("AdminRole".into(), admin_role());
    out.insert("AdminToken".into(), admin_token(false));
    out.insert("CreatedAdminToken".into(), admin_token(true));
    out.insert("TokenList".into(), token_list());
    out.insert("CreateTokenRequest".into(), create_token());
    out
}

fn cache_stats() -> Value {
    let all = object(
        "Without `tenant_id`: everything on this instance.",
        &["overall", "tenants", "l1"],
        json!({
            "overall": schema("StatsSnapshot"),
            "tenants": map("Per scope: tenant ids, `_global` (entries without a tenant), \
                `_other` (tenants beyond `max_tracked_tenants`).", schema("StatsSnapshot")),
            "l1": object("This instance's in-process cache.", &["entries", "bytes"], json!({
                "entries": count("Entries held (approximate)."),
                "bytes": count("Weighted bytes held (approximate)."),
            })),
        }),
    );
    let one = object(
        "With `tenant_id`: one tenant.",
        &["tenant_id", "stats", "store"],
        json!({
            "tenant_id": string("The tenant."),
            "stats": nullable(json!({ "$ref": "#/components/schemas/StatsSnapshot",
                "description": "Its counters on this instance since start; `null` before \
                    its first cache operation here." })),
            "store": object("Its entries in the store, counted exactly.",
                &["used_bytes", "entries"], json!({
                    "used_bytes": count("Bytes of live entries."),
                    "entries": count("Live entries."),
                })),
        }),
    );
    json!({ "description": "Cache statistics.", "oneOf": [all, one] })
}

fn stats_snapshot() -> Value {
    object(
        "One scope's counters.",
        &[
            "hits",
            "misses",
            "hit_rate",
            "sets",
            "deletes",
            "evictions",
            "errors",
            "bytes_written",
            "used_bytes",
            "entries",
            "latency",
        ],
        json!({
            "hits": count("Gets that found an entry."),
            "misses": count("Gets that found nothing."),
            "hit_rate": { "type": "number", "minimum": 0, "maximum": 1,
                "description": "hits / (hits + misses); 0 without gets." },
            "sets": count("Entries written."),
            "deletes": count("Entries deleted by key."),
            "evictions": count("Entries evicted to keep a tenant within its budget."),
            "errors": count("Failed operations."),
            "bytes_written": count("Envelope bytes written."),
            "used_bytes": count("Bytes in use in the store, as last observed."),
            "entries": count("Entries in the store, as last observed."),
            "latency": map("Latency percentiles by operation.", schema("LatencySummary")),
        }),
    )
}

fn latency() -> Value {
    let us = |d: &str| json!({ "type": "number", "minimum": 0, "description": d });
    object(
        "Latency percentiles of one operation, in microseconds.",
        &["count", "p50_us", "p95_us", "p99_us"],
        json!({
            "count": count("Observations."),
            "p50_us": us("Median."),
            "p95_us": us("95th percentile."),
            "p99_us": us("99th percentile."),
        }),
    )
}

fn invalidate_request() -> Value {
    let mut request = object(
        "Body of `POST /admin/cache/invalidate`: `tenant_id` (absent: the global scope) \
         and exactly one selector (else 400 `invalid_selector`).",
        &[],
        json!({
            "tenant_id": string("Whose cache; absent for entries stored without a tenant."),
            "url": string("A URL as `/extract` caches it (normalized; needs `tenant_id`)."),
            "key": string("A cache key as given to the cache."),
            "tag": string("Every entry carrying this tag."),
            "namespace": string("Every entry of this namespace (`extract` holds `/extract` \
                and `/crawl` results)."),
        }),
    );
    request["oneOf"] = json!([
        { "required": ["url"] },
        { "required": ["key"] },
        { "required": ["tag"] },
        { "required": ["namespace"] },
    ]);
    request
}

fn invalidate_response() -> Value {
    object(
        "What an invalidation removed.",
        &["tenant_id", "selector", "value", "removed"],
        json!({
            "tenant_id": nullable(string("Whose cache; `null`: the global scope.")),
            "selector": one_of_strings("The selector used.", &["url", "key", "tag", "namespace"]),
            "value": string("Its value (a URL in normalized form)."),
            "removed": count("Live entries removed."),
        }),
    )
}

fn clear_request() -> Value {
    object(
        "Body of `POST /admin/cache/clear`: `{\"tenant_id\": ...}` or `{\"all\": true}` \
         (else 400 `invalid_selector`).",
        &[],
        json!({
            "tenant_id": string("Clear this tenant's whole cache."),
            "all": boolean("Clear every tenant's cache and the global scope (`true`, alone)."),
        }),
    )
}

fn clear_response() -> Value {
    object(
        "What a clear removed.",
        &["tenant_id", "all", "scopes", "removed"],
        json!({
            "tenant_id": nullable(string("The tenant cleared; `null` with `all`.")),
            "all": boolean("Whether every cache was cleared."),
            "scopes": count("Scopes cleared."),
            "removed": count("Live entries removed."),
        }),
    )
}

fn warm_request() -> Value {
    object(
        "Body of `POST /admin/cache/warm`; every field is optional.",
        &[],
        json!({
            "tenant_id": string("Only this tenant's cache; required with `urls`."),
            "urls": { "type": "array", "minItems": 1, "items": { "type": "string", "format": "uri" },
                "description": "Exactly these URLs (not with `source`)." },
            "source": one_of_strings("Where the URLs come from (default `all`).",
                &["analytics", "tenant", "manual", "all"]),
            "limit": { "type": "integer", "minimum": 1,
                "description": "At most this many (tenant, URL) pairs (at most \
                    `warming.max_job_urls`)." },
        }),
    )
}

fn warm_started() -> Value {
    object(
        "A started warm job.",
        &["job_id", "state", "total"],
        json!({
            "job_id": { "type": "string", "pattern": "^[0-9a-f]{16}$", "description": "Its id." },
            "state": schema("RunState"),
            "total": count("Pairs it warms."),
        }),
    )
}

fn run_state() -> Value {
    one_of_strings(
        "Where a warming run is.",
        &["pending", "running", "done", "failed"],
    )
}

fn warm_failure() -> Value {
    object(
        "One URL that could not be warmed.",
        &["tenant_id", "url", "error"],
        json!({
            "tenant_id": string("The tenant whose cache it was for."),
            "url": string("The URL."),
            "error": string("Why."),
        }),
    )
}

fn warm_job() -> Value {
    object(
        "A warm job's progress.",
        &[
            "id",
            "source",
            "state",
            "done",
            "total",
            "warmed",
            "fresh",
            "skipped",
            "failed",
            "failures",
            "error",
            "started_at",
            "finished_at",
        ],
        json!({
            "id": string("The id."),
            "source": one_of_strings("What it warms: a source, or `urls` for a list.",
                &["analytics", "tenant", "manual", "all", "urls"]),
            "state": schema("RunState"),
            "done": count("Pairs handled."),
            "total": count("Pairs to handle."),
            "warmed": count("Pairs fetched and stored."),
            "fresh": count("Pairs already cached and fresh."),
            "skipped": count("Pairs of suspended or deleted tenants."),
            "failed": count("Pairs that failed."),
            "failures": array("The first failures.", schema("WarmFailure")),
            "error": nullable(string("Why the job failed as a whole.")),
            "started_at": nullable(time("When it started.")),
            "finished_at": nullable(time("When it finished.")),
        }),
    )
}

fn audit_list() -> Value {
    object(
        "Audit records, oldest first.",
        &["count", "records"],
        json!({
            "count": count("How many."),
            "records": array("The records.", schema("AuditRecord")),
        }),
    )
}

fn audit_record() -> Value {
    object(
        "One record of the hash-chained audit log.",
        &[
            "v",
            "seq",
            "at",
            "actor",
            "tenant_id",
            "operation",
            "resource",
            "outcome",
            "metadata",
            "prev_hash",
            "hash",
        ],
        json!({
            "v": count("Record format: 2 is authenticated with HMAC-SHA256 under the audit \
                key; 1 (plain SHA-256) is from before that key existed."),
            "seq": count("Position in the chain, from 1, without gaps."),
            "at": time("When it was appended."),
            "actor": string("Who acted (`admin:<token name>`, `system`...)."),
            "tenant_id": nullable(string("The tenant concerned.")),
            "operation": string("What was done (`tenant.create`, `cache.clear`...)."),
            "resource": string("What it was done to."),
            "outcome": string("The result."),
            "metadata": map("Extra detail.", json!({ "type": "string" })),
            "prev_hash": string("The previous record's hash."),
            "hash": string("Hex HMAC-SHA256 under the audit key (SHA-256 for version 1) of \
                `prev_hash` and this record."),
        }),
    )
}

fn audit_verify() -> Value {
    let tip = |description: &str| {
        nullable(object(
            description,
            &["length", "head_hash"],
            json!({
                "length": count("The newest sequence number."),
                "head_hash": string("That record's hash."),
            }),
        ))
    };
    object(
        "The verdict on the audit log's chain.",
        &[
            "ok",
            "checked",
            "first_bad",
            "problems",
            "length",
            "head_hash",
            "head",
            "high_water",
            "unkeyed",
        ],
        json!({
            "ok": boolean("The whole retained chain is intact and as long as ever seen."),
            "checked": count("Records checked and found good."),
            "first_bad": nullable(object("The first bad record.", &["seq", "reason"], json!({
                "seq": count("Its sequence number."),
                "reason": string("What is wrong with it."),
            }))),
            "problems": array("What is wrong with the chain as a whole: head missing or \
                rolled back, records deleted from its end, another record where one was seen.",
                string("One problem.")),
            "length": count("The last good record's sequence number."),
            "head_hash": string("The last good record's hash."),
            "head": tip("The head key as stored."),
            "high_water": tip("The longest chain this instance had seen before."),
            "unkeyed": count("Good records from before the audit key (version 1)."),
        }),
    )
}

fn admin_role() -> Value {
    let roles: Vec<&str> = [
        AdminRole::Admin,
        AdminRole::Operator,
        AdminRole::Billing,
        AdminRole::Viewer,
    ]
    .iter()
    .map(AdminRole::as_str)
    .collect();
    one_of_strings(
        "`admin`: everything; `operator`: caches and state, read tenants and audit; \
         `billing`: tenants, usage and bills; `viewer`: read everything but admin tokens.",
        &roles,
    )
}

fn admin_token(created: bool) -> Value {
    let mut required = vec![
        "token_id",
        "name",
        "role",
        "created_at",
        "created_by",
        "source",
    ];
    let mut properties = json!({
        "token_id": string("The id (`env` for the configured token)."),
        "name": string("The unique name."),
        "role": schema("AdminRole"),
        "created_at": nullable(time("When it was created (`null` for the configured token).")),
        "created_by": nullable(string("Who created it (`admin:<name>`, `system` for the \
            first-start token).")),
        "source": one_of_strings("Stored, or the configured `admin.token`.", &["store", "config"]),
    });
    let description = if created {
        required.push("token");
        properties["token"] = string("The token, for `Authorization: Bearer <token>`; shown once.");
        "A new admin token, with its secret."
    } else {
        "An admin token as listed: never its secret."
    };
    object(description, &required, properties)
}

fn token_list() -> Value {
    object(
        "Every admin token.",
        &["tokens"],
        json!({ "tokens": array("Configured first, then stored, oldest first.", schema("AdminToken")) }),
    )
}

fn create_token() -> Value {
    object(
        "Body of `POST /admin/tokens`.",
        &["name", "role"],
        json!({
            "name": { "type": "string", "pattern": "^[A-Za-z0-9_.@-]{1,64}$",
                "description": "A unique name; audit records name the actor `admin:<name>`." },
            "role": { "$ref": "#/components/schemas/AdminRole",
                "description": "Its role (unknown: 400 `invalid_role`)." },
        }),
    )
}
