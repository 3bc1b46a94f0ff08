//! The admin operations on caches and state: `/admin/cache/...` (stats, invalidation,
//! clearing, warm jobs) and `/admin/state/...` (report, reload, checkpoints).

use riptide_persistence::tenant::AdminAction::{
    ReadCache, ReadState, RestoreState, WriteCache, WriteState,
};
use serde_json::{Value, json};

use super::common::{
    ADMIN_BODY, ADMIN_GUARD, ANY, AdminAccess, Failure, STORE, admin_op, json_body, json_reply,
    parameter, responses, schema,
};

/// A tenant named in a body or query: malformed or unknown.
const TENANT: &[Failure] = &[(400, "invalid_tenant_id"), (404, "not_found")];

/// Paths of the cache and state administration.
pub fn paths() -> Value {
    json!({
        "/admin/cache/stats": { "get": cache_stats() },
        "/admin/cache/invalidate": { "post": invalidate() },
        "/admin/cache/clear": { "post": clear() },
        "/admin/cache/warm": { "post": start_warm() },
        "/admin/cache/warm/{id}": {
            "parameters": [parameter("WarmJobId")],
            "get": get_warm_job(),
        },
        "/admin/state/current": { "get": current_state() },
        "/admin/state/reload": { "post": reload() },
        "/admin/state/checkpoint": { "post": create_checkpoint() },
        "/admin/state/checkpoints": { "get": list_checkpoints() },
        "/admin/state/restore": { "post": restore() },
    })
}

fn cache_stats() -> Value {
    admin_op(
        AdminAccess::Action(ReadCache),
        json!({
            "operationId": "get_cache_stats",
            "tags": ["admin-cache"],
            "summary": "Cache statistics",
            "description": "Without `tenant_id`: this instance's counters overall and per \
                scope, and its L1 usage. With `tenant_id`: that tenant's counters and its \
                entries in the store, counted exactly.",
            "parameters": [{
                "name": "tenant_id", "in": "query", "required": false,
                "description": "Only this tenant.",
                "schema": { "type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$" },
            }],
            "responses": responses(
                vec![(200, json_reply("The statistics.", schema("CacheStats"), &[]))],
                &[ANY, ADMIN_GUARD, TENANT, &[(400, "invalid_query"), (400, "invalid_input")]],
            ),
        }),
    )
}

fn invalidate() -> Value {
    admin_op(
        AdminAccess::Action(WriteCache),
        json!({
            "operationId": "invalidate_cache",
            "tags": ["admin-cache"],
            "summary": "Invalidate cache entries",
            "description": "Removes the entries one selector names from the store and from \
                every instance's L1. Audited as `cache.invalidate`.",
            "requestBody": json_body("InvalidateRequest", true, json!({
                "tenant_id": "acme",
                "url": "https://example.com/article",
            })),
            "responses": responses(
                vec![(200, json_reply("What was removed.", schema("InvalidateResponse"), &[]))],
                &[ANY, ADMIN_GUARD, ADMIN_BODY, TENANT, &[
                    (400, "invalid_selector"),
                    (400, "invalid_url"),
                    (400, "invalid_input"),
                ]],
            ),
        }),
    )
}

fn clear() -> Value {
    admin_op(
        AdminAccess::Action(WriteCache),
        json!({
            "operationId": "clear_cache",
            "tags": ["admin-cache"],
            "summary": "Clear a tenant's cache, or every cache",
            "description": "`{\"tenant_id\": ...}` clears one tenant's cache; \
                `{\"all\": true}` (alone) clears every tenant's and the global scope. \
                Audited as `cache.clear`.",
            "requestBody": json_body("ClearRequest", true, json!({ "tenant_id": "acme" })),
            "responses": responses(
                vec![(200, json_reply("What was removed.", schema("ClearResponse"), &[]))],
                &[ANY, ADMIN_GUARD, ADMIN_BODY, TENANT, &[
                    (400, "invalid_selector"),
                    (400, "invalid_input"),
                ]],
            ),
        }),
    )
}

fn start_warm() -> Value {
    let started = json_reply(
        "The job started; `Location` is where its progress is read.",
        schema("WarmStarted"),
        &["Location"],
    );
    admin_op(
        AdminAccess::Action(WriteCache),
        json!({
            "operationId": "start_warm",
            "tags": ["admin-cache"],
            "summary": "Start a cache warming job",
            "description": "`urls` with `tenant_id`: exactly those URLs into that tenant's \
                cache. Otherwise `source` (default `all`), limited to `tenant_id` when given; \
                `limit` caps the (tenant, URL) pairs (default and maximum \
                `warming.max_job_urls`). The body may be empty. Every request, accepted or \
                refused, is audited as `cache.warm`.",
            "requestBody": json_body("WarmRequest", false, json!({
                "tenant_id": "acme",
                "urls": ["https://example.com/article"],
            })),
            "responses": responses(
                vec![(202, started)],
                &[ANY, ADMIN_GUARD, ADMIN_BODY, TENANT, &[
                    (400, "invalid_warm_request"),
                    (409, "warming_disabled"),
                    (409, "no_page_loader"),
                    (409, "too_many_jobs"),
                ]],
            ),
        }),
    )
}

fn get_warm_job() -> Value {
    admin_op(
        AdminAccess::Action(ReadCache),
        json!({
            "operationId": "get_warm_job",
            "tags": ["admin-cache"],
            "summary": "A warm job's progress",
            "description": "Done and total pairs, what was warmed, fresh, skipped and \
                failed, and the first failures. A job is retained a while after it ends; an \
                unknown or forgotten id is 404.",
            "responses": responses(
                vec![(200, json_reply("The job.", schema("WarmJob"), &[]))],
                &[ANY, ADMIN_GUARD, &[(400, "invalid_job_id"), (404, "not_found")]],
            ),
        }),
    )
}

fn current_state() -> Value {
    admin_op(
        AdminAccess::Action(ReadState),
        json!({
            "operationId": "get_current_state",
            "tags": ["admin-state"],
            "summary": "The state of this instance",
            "description": "The running configuration generation, reloads, checkpoints, \
                sessions, the instances sharing the store, the checkpoint lease holder, and \
                cache warming (startup progress, background tier, jobs, access counter).",
            "responses": responses(
                vec![(200, json_reply("The state report.", schema("CurrentState"), &[]))],
                &[ANY, ADMIN_GUARD],
            ),
        }),
    )
}

fn reload() -> Value {
    admin_op(
        AdminAccess::Action(WriteState),
        json!({
            "operationId": "reload_config",
            "tags": ["admin-state"],
            "summary": "Reload the configuration on every instance",
            "description": "Reloads here and asks every other instance to reload. Answers \
                this instance's outcome: `applied`, `unchanged`, or `rejected` with the file, \
                key and reason (a refused document keeps the running configuration). Takes \
                no body. Audited as `state.reload`.",
            "responses": responses(
                vec![(200, json_reply("This instance's outcome.", schema("ReloadOutcome"), &[]))],
                &[ANY, ADMIN_GUARD],
            ),
        }),
    )
}

fn create_checkpoint() -> Value {
    admin_op(
        AdminAccess::Action(WriteState),
        json!({
            "operationId": "create_checkpoint",
            "tags": ["admin-state"],
            "summary": "Take a checkpoint",
            "description": "Writes a versioned, checksummed, compressed checkpoint of tenants, \
                keys, usage and sessions. Takes no body. Audited as `state.checkpoint`.",
            "responses": responses(
                vec![(201, json_reply("The checkpoint.", schema("Checkpoint"), &[]))],
                &[ANY, ADMIN_GUARD, STORE],
            ),
        }),
    )
}

fn list_checkpoints() -> Value {
    admin_op(
        AdminAccess::Action(ReadState),
        json!({
            "operationId": "list_checkpoints",
            "tags": ["admin-state"],
            "summary": "List checkpoints",
            "description": "The checkpoints on disk, newest first, each verified.",
            "responses": responses(
                vec![(200, json_reply("The checkpoints.", schema("CheckpointList"), &[]))],
                &[ANY, ADMIN_GUARD, STORE],
            ),
        }),
    )
}

fn restore() -> Value {
    admin_op(
        AdminAccess::Action(RestoreState),
        json!({
            "operationId": "restore_checkpoint",
            "tags": ["admin-state"],
            "summary": "Restore a checkpoint",
            "description": "Writes the checkpoint's records back (or, with `dry_run`, only \
                reports what would change), then warms its saved warm list as a job. Never \
                undoes a decision made since the checkpoint: tenants deleted and API keys \
                revoked since are refused, tenant records changed since (a suspension) and \
                existing key records and data keys are kept; `objects` lists each object \
                not left as it is. A corrupt or unsupported checkpoint, or one older than \
                the remembered deletions (`checkpoint_too_old`), is 422. Audited as \
                `state.restore` with the counts and the first objects.",
            "requestBody": json_body("RestoreRequest", true, json!({
                "checkpoint_id": "20250131T120000000Z-1a2b3c4d",
                "dry_run": true,
            })),
            "responses": responses(
                vec![(200, json_reply("What the restore did.", schema("RestoreReport"), &[]))],
                &[ANY, ADMIN_GUARD, ADMIN_BODY, &[
                    (400, "invalid_checkpoint_id"),
                    (400, "invalid_input"),
                    (404, "not_found"),
                    (422, "invalid_checkpoint"),
                    (422, "unsupported_version"),
                    (422, "checkpoint_too_old"),
                ]],
            ),
        }),
    )
}
