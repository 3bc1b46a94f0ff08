//! The admin operations on who did what and who may: `/admin/audit` (query and verify
//! the hash-chained audit log) and `/admin/tokens` (admin tokens, role `admin` only).

use riptide_persistence::tenant::AdminAction::ReadAudit;
use riptide_persistence::tenant::audit::MAX_QUERY_LIMIT;
use serde_json::{Value, json};

use super::common::{
    ADMIN_BODY, ADMIN_GUARD, ANY, AdminAccess, admin_op, empty_reply, json_body, json_reply,
    parameter, responses, schema,
};
use crate::routes::admin::audit::DEFAULT_LIMIT;

/// Paths of the audit log and the admin tokens.
pub fn paths() -> Value {
    json!({
        "/admin/audit": { "get": query_audit() },
        "/admin/audit/verify": { "get": verify_audit() },
        "/admin/tokens": { "get": list_tokens(), "post": create_token() },
        "/admin/tokens/{id}": {
            "parameters": [parameter("TokenId")],
            "delete": delete_token(),
        },
    })
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({
        "name": name, "in": "query", "required": false,
        "description": description, "schema": schema,
    })
}

fn query_audit() -> Value {
    let time = json!({ "type": "string", "format": "date-time" });
    admin_op(
        AdminAccess::Action(ReadAudit),
        json!({
            "operationId": "query_audit",
            "tags": ["admin-audit"],
            "summary": "Query the audit log",
            "description": "Records of admin operations (tenants, keys, cache, state, \
                tokens), oldest first, with their hash-chain fields. Malformed parameters, \
                or `since` after `until`: 400 `invalid_query`.",
            "parameters": [
                query("tenant_id", "Only records of this tenant.",
                    json!({ "type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$" })),
                query("action", "Only this operation (`cache.clear`), or a family of them \
                    (`cache` matches `cache.invalidate` and `cache.clear`).",
                    json!({ "type": "string", "minLength": 1, "maxLength": 200 })),
                query("since", "From this time (RFC 3339), inclusive; default: the oldest \
                    retained record.", time.clone()),
                query("until", "Up to this time (RFC 3339), inclusive; default: now.", time),
                query("limit", "Most records; the oldest matching ones come first.",
                    json!({ "type": "integer", "minimum": 1, "maximum": MAX_QUERY_LIMIT,
                        "default": DEFAULT_LIMIT })),
            ],
            "responses": responses(
                vec![(200, json_reply("The records.", schema("AuditList"), &[]))],
                &[ANY, ADMIN_GUARD, &[(400, "invalid_query"), (400, "invalid_tenant_id")]],
            ),
        }),
    )
}

fn verify_audit() -> Value {
    admin_op(
        AdminAccess::Action(ReadAudit),
        json!({
            "operationId": "verify_audit",
            "tags": ["admin-audit"],
            "summary": "Verify the audit log's hash chain",
            "description": "Walks the retained chain and reports the first record that was \
                edited or forged (its HMAC under the audit key does not match), removed, \
                re-linked or cannot be read; then checks the chain's end against its head and \
                the longest chain this instance has seen: a deleted head, a rolled-back head \
                or deleted last records are listed in `problems`.",
            "responses": responses(
                vec![(200, json_reply("The verdict.", schema("AuditVerify"), &[]))],
                &[ANY, ADMIN_GUARD],
            ),
        }),
    )
}

fn list_tokens() -> Value {
    admin_op(
        AdminAccess::AdminOnly,
        json!({
            "operationId": "list_admin_tokens",
            "tags": ["admin-tokens"],
            "summary": "List admin tokens",
            "description": "The configured token first (if any), then stored ones, oldest \
                first; never a secret.",
            "responses": responses(
                vec![(200, json_reply("The tokens.", schema("TokenList"), &[]))],
                &[ANY, ADMIN_GUARD],
            ),
        }),
    )
}

fn create_token() -> Value {
    admin_op(
        AdminAccess::AdminOnly,
        json!({
            "operationId": "create_admin_token",
            "tags": ["admin-tokens"],
            "summary": "Create an admin token",
            "description": "The token is in this answer only. Audited as `token.create`.",
            "requestBody": json_body("CreateTokenRequest", true,
                json!({ "name": "grafana", "role": "viewer" })),
            "responses": responses(
                vec![(201, json_reply("The new token.", schema("CreatedAdminToken"), &[]))],
                &[ANY, ADMIN_GUARD, ADMIN_BODY, &[
                    (400, "invalid_role"),
                    (400, "invalid_input"),
                    (409, "already_exists"),
                    (409, "too_many_tokens"),
                ]],
            ),
        }),
    )
}

fn delete_token() -> Value {
    admin_op(
        AdminAccess::AdminOnly,
        json!({
            "operationId": "delete_admin_token",
            "tags": ["admin-tokens"],
            "summary": "Delete an admin token",
            "description": "The token stops working at once here, and on other instances \
                within `tenant.record_cache_ttl_ms`. The configured token (`env`) cannot be \
                deleted here (409 `configured_token`). Audited as `token.delete`.",
            "responses": responses(
                vec![(204, empty_reply("Deleted.", &[]))],
                &[ANY, ADMIN_GUARD, &[
                    (400, "invalid_input"),
                    (404, "not_found"),
                    (409, "configured_token"),
                ]],
            ),
        }),
    )
}
