//! The admin operations on tenants and their API keys: `/admin/tenants...`.

use riptide_persistence::tenant::AdminAction::{ReadBilling, ReadTenants, ReadUsage, WriteTenants};
use serde_json::{Value, json};

use super::common::{
    ADMIN_BODY, ADMIN_GUARD, ANY, AdminAccess, Failure, admin_op, empty_reply, json_body,
    json_reply, parameter, responses, schema,
};
use crate::routes::admin::tenants::{DEFAULT_PAGE, MAX_PAGE};

/// A tenant named in the path: malformed or unknown.
const TENANT: &[Failure] = &[(400, "invalid_tenant_id"), (404, "not_found")];

/// A concurrent change of the same records.
const CONFLICT: &[Failure] = &[(409, "conflict")];

/// A key named in the path: malformed (unknown keys are 404 like tenants).
const KEY: &[Failure] = &[(400, "invalid_key_id")];

/// Paths of the tenant administration.
pub fn paths() -> Value {
    json!({
        "/admin/tenants": { "get": list_tenants(), "post": create_tenant() },
        "/admin/tenants/{id}": {
            "parameters": [parameter("TenantId")],
            "get": get_tenant(),
            "put": update_tenant(),
            "delete": delete_tenant(),
        },
        "/admin/tenants/{id}/usage": {
            "parameters": [parameter("TenantId")],
            "get": get_usage(),
        },
        "/admin/tenants/{id}/billing": {
            "parameters": [parameter("TenantId")],
            "get": get_billing(),
        },
        "/admin/tenants/{id}/suspend": {
            "parameters": [parameter("TenantId")],
            "post": suspend_tenant(),
        },
        "/admin/tenants/{id}/resume": {
            "parameters": [parameter("TenantId")],
            "post": resume_tenant(),
        },
        "/admin/tenants/{id}/keys": {
            "parameters": [parameter("TenantId")],
            "get": list_keys(),
            "post": create_key(),
        },
        "/admin/tenants/{id}/keys/{key_id}": {
            "parameters": [parameter("TenantId"), parameter("KeyId")],
            "delete": revoke_key(),
        },
        "/admin/tenants/{id}/keys/{key_id}/rotate": {
            "parameters": [parameter("TenantId"), parameter("KeyId")],
            "post": rotate_key(),
        },
    })
}

fn tenant_reply(description: &str) -> Value {
    json_reply(description, schema("Tenant"), &[])
}

fn list_tenants() -> Value {
    admin_op(
        AdminAccess::Action(ReadTenants),
        json!({
            "operationId": "list_tenants",
            "tags": ["admin-tenants"],
            "summary": "List tenants",
            "description": "A page of tenants in creation order.",
            "parameters": [
                { "name": "offset", "in": "query", "required": false,
                  "description": "Tenants to skip.",
                  "schema": { "type": "integer", "minimum": 0, "default": 0 } },
                { "name": "limit", "in": "query", "required": false,
                  "description": "Page size (out of range: 400 `invalid_query`).",
                  "schema": { "type": "integer", "minimum": 1, "maximum": MAX_PAGE,
                      "default": DEFAULT_PAGE } },
            ],
            "responses": responses(
                vec![(200, json_reply("The page.", schema("TenantList"), &[]))],
                &[ANY, ADMIN_GUARD, &[(400, "invalid_query")]],
            ),
        }),
    )
}

fn create_tenant() -> Value {
    admin_op(
        AdminAccess::Action(WriteTenants),
        json!({
            "operationId": "create_tenant",
            "tags": ["admin-tenants"],
            "summary": "Create a tenant",
            "description": "Creates the tenant (its id generated when not given) and \
                audits it. It has no API key yet: create one with \
                `POST /admin/tenants/{id}/keys`.",
            "requestBody": json_body("CreateTenantRequest", true, json!({
                "tenant_id": "acme",
                "name": "Acme Corp",
                "owner_email": "ops@acme.example",
                "owner_name": "Acme Ops",
                "billing_plan": "professional",
            })),
            "responses": responses(
                vec![(201, tenant_reply("The new tenant."))],
                &[ANY, ADMIN_GUARD, ADMIN_BODY, CONFLICT, &[
                    (400, "invalid_plan"),
                    (400, "invalid_tenant_id"),
                    (400, "invalid_input"),
                    (409, "already_exists"),
                    (409, "multi_tenancy_disabled"),
                ]],
            ),
        }),
    )
}

fn get_tenant() -> Value {
    admin_op(
        AdminAccess::Action(ReadTenants),
        json!({
            "operationId": "get_tenant",
            "tags": ["admin-tenants"],
            "summary": "Read a tenant",
            "description": "The tenant with its plan, quotas (own and in force), policy and \
                status.",
            "responses": responses(
                vec![(200, tenant_reply("The tenant."))],
                &[ANY, ADMIN_GUARD, TENANT],
            ),
        }),
    )
}

fn update_tenant() -> Value {
    admin_op(
        AdminAccess::Action(WriteTenants),
        json!({
            "operationId": "update_tenant",
            "tags": ["admin-tenants"],
            "summary": "Change a tenant",
            "description": "Changes the fields given; absent fields stay. Other instances \
                hear of the change; a new quota applies without a restart.",
            "requestBody": json_body("TenantUpdate", true, json!({
                "plan": "enterprise",
                "quotas": { "operations_per_minute": 600 },
            })),
            "responses": responses(
                vec![(200, tenant_reply("The tenant as changed."))],
                &[ANY, ADMIN_GUARD, ADMIN_BODY, TENANT, CONFLICT, &[(400, "invalid_input")]],
            ),
        }),
    )
}

fn delete_tenant() -> Value {
    admin_op(
        AdminAccess::Action(WriteTenants),
        json!({
            "operationId": "delete_tenant",
            "tags": ["admin-tenants"],
            "summary": "Delete a tenant",
            "description": "Deletes the tenant, its keys and its data key (so its sealed \
                data becomes unreadable). The built-in `default` tenant cannot be deleted \
                while multi-tenancy is off (400 `invalid_input`).",
            "responses": responses(
                vec![(204, empty_reply("Deleted.", &[]))],
                &[ANY, ADMIN_GUARD, TENANT, CONFLICT, &[(400, "invalid_input")]],
            ),
        }),
    )
}

fn period_parameter() -> Value {
    json!({
        "name": "period", "in": "query", "required": false,
        "description": "The month, `YYYY-MM`; default: the current month (UTC). Malformed: \
            400 `invalid_period`.",
        "schema": { "type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$" },
    })
}

fn get_usage() -> Value {
    admin_op(
        AdminAccess::Action(ReadUsage),
        json!({
            "operationId": "get_tenant_usage",
            "tags": ["admin-tenants"],
            "summary": "A tenant's usage in a month",
            "description": "Operations, bytes, compute time, storage and cache hits of the \
                month, with this instance's unflushed usage.",
            "parameters": [period_parameter()],
            "responses": responses(
                vec![(200, json_reply("The month's usage.", schema("UsageSummary"), &[]))],
                &[ANY, ADMIN_GUARD, TENANT, &[(400, "invalid_period"), (400, "invalid_query")]],
            ),
        }),
    )
}

fn get_billing() -> Value {
    admin_op(
        AdminAccess::Action(ReadBilling),
        json!({
            "operationId": "get_tenant_billing",
            "tags": ["admin-tenants"],
            "summary": "A tenant's bill for a month",
            "description": "The month's usage priced with the plan's price table: the base \
                fee line, then one line per priced meter. The open month uses the plans in \
                force now; a closed month the plan and prices in force when it ended, and \
                once frozen (`frozen_at`) its bill is returned as stored. Storage is not \
                billed. 409 `billing_disabled` when billing is off.",
            "parameters": [period_parameter()],
            "responses": responses(
                vec![(200, json_reply("The bill.", schema("Bill"), &[]))],
                &[ANY, ADMIN_GUARD, TENANT, &[
                    (400, "invalid_period"),
                    (400, "invalid_query"),
                    (400, "invalid_input"),
                    (409, "billing_disabled"),
                ]],
            ),
        }),
    )
}

fn suspend_tenant() -> Value {
    admin_op(
        AdminAccess::Action(WriteTenants),
        json!({
            "operationId": "suspend_tenant",
            "tags": ["admin-tenants"],
            "summary": "Suspend a tenant",
            "description": "Its requests are refused with 403 `tenant_suspended` on every \
                instance until it is resumed.",
            "requestBody": json_body("SuspendRequest", true,
                json!({ "reason": "invoice overdue" })),
            "responses": responses(
                vec![(200, tenant_reply("The tenant, suspended."))],
                &[ANY, ADMIN_GUARD, ADMIN_BODY, TENANT, CONFLICT, &[(400, "invalid_input")]],
            ),
        }),
    )
}

fn resume_tenant() -> Value {
    admin_op(
        AdminAccess::Action(WriteTenants),
        json!({
            "operationId": "resume_tenant",
            "tags": ["admin-tenants"],
            "summary": "Resume a suspended tenant",
            "description": "Its requests are served again. Takes no body.",
            "responses": responses(
                vec![(200, tenant_reply("The tenant, active."))],
                &[ANY, ADMIN_GUARD, TENANT, CONFLICT],
            ),
        }),
    )
}

fn list_keys() -> Value {
    admin_op(
        AdminAccess::Action(ReadTenants),
        json!({
            "operationId": "list_keys",
            "tags": ["admin-tenants"],
            "summary": "List a tenant's API keys",
            "description": "Every key, oldest first, revoked and expired ones included; \
                never a secret.",
            "responses": responses(
                vec![(200, json_reply("The keys.", schema("KeyList"), &[]))],
                &[ANY, ADMIN_GUARD, TENANT],
            ),
        }),
    )
}

fn create_key() -> Value {
    admin_op(
        AdminAccess::Action(WriteTenants),
        json!({
            "operationId": "create_key",
            "tags": ["admin-tenants"],
            "summary": "Create an API key",
            "description": "The secret is in this answer only. The body may be empty.",
            "requestBody": json_body("CreateKeyRequest", false, json!({ "name": "ci" })),
            "responses": responses(
                vec![(201, json_reply("The new key with its secret.", schema("CreatedKey"), &[]))],
                &[ANY, ADMIN_GUARD, ADMIN_BODY, TENANT, CONFLICT, &[(400, "invalid_input")]],
            ),
        }),
    )
}

fn revoke_key() -> Value {
    admin_op(
        AdminAccess::Action(WriteTenants),
        json!({
            "operationId": "revoke_key",
            "tags": ["admin-tenants"],
            "summary": "Revoke an API key",
            "description": "The key stops working at once here, and on other instances \
                within `tenant.record_cache_ttl_ms`. An unknown key is 404.",
            "responses": responses(
                vec![(204, empty_reply("Revoked.", &[]))],
                &[ANY, ADMIN_GUARD, TENANT, KEY, CONFLICT],
            ),
        }),
    )
}

fn rotate_key() -> Value {
    admin_op(
        AdminAccess::Action(WriteTenants),
        json!({
            "operationId": "rotate_key",
            "tags": ["admin-tenants"],
            "summary": "Rotate an API key",
            "description": "A new key replaces the old one, which keeps working for \
                `tenant.api_key_rotation_overlap_seconds`. The new secret is in this answer \
                only. Takes no body.",
            "responses": responses(
                vec![(201, json_reply("The new key with its secret.", schema("CreatedKey"), &[]))],
                &[ANY, ADMIN_GUARD, TENANT, KEY, CONFLICT],
            ),
        }),
    )
}
