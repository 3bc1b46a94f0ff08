//! Schemas of the tenant administration: tenants, owners, policies, bills and API keys.

use riptide_persistence::tenant::billing::{BASE_FEE_ITEM, CURRENCY};
use riptide_persistence::tenant::{Permission, Resource, TenantIsolationLevel};
use serde_json::{Map, Value, json};

use super::common::{
    array, boolean, count, nullable, object, one_of_strings, schema, string, time,
};

/// The schemas, by name.
pub fn schemas() -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("Tenant".into(), tenant());
    out.insert("TenantOwner".into(), owner());
    out.insert("AccessPolicy".into(), policy());
    out.insert("Permission".into(), permission());
    out.insert("IsolationLevel".into(), isolation());
    out.insert("Quotas".into(), quotas());
    out.insert("TenantList".into(), tenant_list());
    out.insert("CreateTenantRequest".into(), create_tenant());
    out.insert("TenantUpdate".into(), update());
    out.insert("SuspendRequest".into(), suspend());
    out.insert("Bill".into(), bill());
    out.insert("BillLine".into(), bill_line());
    out.insert("ApiKey".into(), api_key());
    out.insert("KeyList".into(), key_list());
    out.insert("CreateKeyRequest".into(), create_key());
    out.insert("CreatedKey".into(), created_key());
    out
}

fn resource_names() -> Vec<&'static str> {
    Resource::ALL.iter().map(|r| r.as_str()).collect()
}

fn quotas() -> Value {
    json!({
        "type": "object",
        "description": "Limits by resource name (unknown names: 400 `invalid_input`).",
        "propertyNames": { "enum": resource_names() },
        "additionalProperties": { "type": "integer", "minimum": 0 },
    })
}

fn settings() -> Value {
    json!({
        "type": "object",
        "maxProperties": 64,
        "description": "Free-form settings (at most 64; values at most 1 KiB).",
        "additionalProperties": { "type": "string", "maxLength": 1024 },
    })
}

fn tenant() -> Value {
    object(
        "A tenant as the admin API shows it.",
        &[
            "tenant_id",
            "name",
            "status",
            "suspended_reason",
            "suspended_since",
            "plan",
            "owner",
            "quotas",
            "effective_quotas",
            "policy",
            "settings",
            "isolation_level",
            "encryption_enabled",
            "created_at",
            "updated_at",
            "version",
        ],
        json!({
            "tenant_id": string("The id."),
            "name": string("Display name."),
            "status": one_of_strings("Lifecycle state.", &["active", "suspended"]),
            "suspended_reason": nullable(string("Why it is suspended.")),
            "suspended_since": nullable(time("Since when it is suspended.")),
            "plan": schema("BillingPlan"),
            "owner": schema("TenantOwner"),
            "quotas": schema("Quotas"),
            "effective_quotas": {
                "type": "object",
                "description": "The limits in force per resource: the tenant's override, \
                    else the plan's; a resource without a limit is absent.",
                "propertyNames": { "enum": resource_names() },
                "additionalProperties": { "type": "integer", "minimum": 0 },
            },
            "policy": schema("AccessPolicy"),
            "settings": settings(),
            "isolation_level": schema("IsolationLevel"),
            "encryption_enabled": boolean("Values sealed under the tenant's own key."),
            "created_at": time("Creation time."),
            "updated_at": time("Last change."),
            "version": count("Bumped on every change."),
        }),
    )
}

fn owner() -> Value {
    json!({
        "type": "object",
        "description": "Who owns a tenant.",
        "required": ["id", "name", "email"],
        "properties": {
            "id": string("Owner id (free-form)."),
            "name": string("Owner name."),
            "email": string("Contact e-mail (one `@`, no spaces)."),
            "organization": nullable(string("Organization, if any.")),
        },
    })
}

fn policy() -> Value {
    let names = array("", schema("Permission"));
    let mut allow = names.clone();
    allow["description"] = json!("Granted on top of the plan.");
    allow["uniqueItems"] = json!(true);
    let mut deny = names;
    deny["description"] = json!("Taken away even when the plan grants it.");
    deny["uniqueItems"] = json!(true);
    json!({
        "type": "object",
        "description": "A tenant's adjustments to what its plan grants.",
        "properties": { "allow": allow, "deny": deny },
    })
}

fn permission() -> Value {
    let names: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    one_of_strings("A permission of the tenant routes.", &names)
}

fn isolation() -> Value {
    let names: Vec<&str> = TenantIsolationLevel::ALL
        .iter()
        .map(|l| l.as_str())
        .collect();
    one_of_strings(
        "`standard`: namespaced keys; `strong`: also every value sealed under the \
         tenant's own key. Never weaker than the service's configured minimum.",
        &names,
    )
}

fn tenant_list() -> Value {
    object(
        "A page of tenants.",
        &["tenants", "total", "next_offset"],
        json!({
            "tenants": array("The tenants of the page, in creation order.", schema("Tenant")),
            "total": count("Tenants in all."),
            "next_offset": nullable(count("Offset of the next page; `null` on the last.")),
        }),
    )
}

fn create_tenant() -> Value {
    object(
        "Body of `POST /admin/tenants`.",
        &["name", "owner_email", "owner_name", "billing_plan"],
        json!({
            "tenant_id": { "type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$",
                "description": "The id to give it; generated (`t-...`) when absent." },
            "name": { "type": "string", "minLength": 1, "maxLength": 200,
                "description": "Display name." },
            "owner_email": string("Owner's e-mail."),
            "owner_name": string("Owner's name."),
            "owner_id": string("Owner's id; generated when absent."),
            "organization": string("Owner's organization."),
            "billing_plan": { "$ref": "#/components/schemas/BillingPlan",
                "description": "The plan (unknown: 400 `invalid_plan`)." },
            "quotas": schema("Quotas"),
            "settings": settings(),
            "encryption_enabled": { "type": "boolean", "default": false,
                "description": "Seal the tenant's values under its own key." },
            "isolation_level": schema("IsolationLevel"),
        }),
    )
}

fn update() -> Value {
    object(
        "Body of `PUT /admin/tenants/{id}`: the fields to change; absent ones stay.",
        &[],
        json!({
            "name": { "type": "string", "minLength": 1, "maxLength": 200,
                "description": "New display name." },
            "plan": schema("BillingPlan"),
            "quotas": { "$ref": "#/components/schemas/Quotas",
                "description": "Replaces the overrides (`{}` returns to the plan's)." },
            "settings": settings(),
            "policy": schema("AccessPolicy"),
            "owner": schema("TenantOwner"),
        }),
    )
}

fn suspend() -> Value {
    object(
        "Body of `POST /admin/tenants/{id}/suspend`.",
        &["reason"],
        json!({
            "reason": { "type": "string", "minLength": 1, "maxLength": 500,
                "description": "Why; kept on the tenant and in the audit log." },
        }),
    )
}

fn bill() -> Value {
    object(
        "A month's bill of one tenant; amounts in cents.",
        &[
            "tenant_id",
            "period",
            "plan",
            "currency",
            "lines",
            "total_cents",
            "frozen_at",
        ],
        json!({
            "tenant_id": string("The tenant billed."),
            "period": string("The month, `YYYY-MM`."),
            "plan": schema("BillingPlan"),
            "currency": { "const": CURRENCY, "description": "The currency of every amount." },
            "lines": array("The base fee line first, then one line per priced meter.",
                schema("BillLine")),
            "total_cents": count("Sum of the lines' amounts."),
            "frozen_at": nullable(time("When the closed month's bill was frozen \
                (`tenant.bill_freeze_delay_ms` after the month ended); it never changes \
                again. `null`: priced on each read (the open month, or one closed too \
                recently).")),
        }),
    )
}

fn bill_line() -> Value {
    object(
        "One line of a bill.",
        &[
            "item",
            "included",
            "used",
            "unit",
            "billable_blocks",
            "price_cents",
            "amount_cents",
        ],
        json!({
            "item": string(&format!("`{BASE_FEE_ITEM}` or a meter (`operations`, \
                `data_transfer_bytes`, `compute_ms`, `storage_bytes`).")),
            "included": count("Units covered by the base fee."),
            "used": count("Units metered in the period."),
            "unit": count("Units per priced block."),
            "billable_blocks": count("Started blocks beyond the included units."),
            "price_cents": count("Price of one block."),
            "amount_cents": count("`billable_blocks × price_cents`."),
        }),
    )
}

fn api_key() -> Value {
    object(
        "An API key as listed: never its secret.",
        &[
            "key_id",
            "label",
            "display_prefix",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
        ],
        json!({
            "key_id": string("The key's id."),
            "label": nullable(string("The name given at creation.")),
            "display_prefix": string("The recognisable start of the key."),
            "created_at": time("When it was created."),
            "last_used_at": nullable(time("When it last authenticated (at most once a minute).")),
            "expires_at": nullable(time("Set by a rotation: when it stops working.")),
            "revoked_at": nullable(time("Set by a revocation.")),
        }),
    )
}

fn key_list() -> Value {
    object(
        "A tenant's keys.",
        &["tenant_id", "keys"],
        json!({
            "tenant_id": string("The tenant."),
            "keys": array("Oldest first, revoked and expired ones included.", schema("ApiKey")),
        }),
    )
}

fn create_key() -> Value {
    object(
        "Body of `POST /admin/tenants/{id}/keys` (may be empty).",
        &[],
        json!({ "name": { "type": "string", "maxLength": 200,
            "description": "A label for listings." } }),
    )
}

fn created_key() -> Value {
    object(
        "A new key; `secret` is shown only here.",
        &[
            "tenant_id",
            "key_id",
            "secret",
            "display_prefix",
            "created_at",
        ],
        json!({
            "tenant_id": string("The tenant."),
            "key_id": string("The key's id."),
            "secret": string("The full key: send it as `Authorization: Bearer <secret>` \
                with `X-Tenant-ID`."),
            "display_prefix": string("The recognisable start of the key."),
            "created_at": time("When it was created."),
            "replaces": string("After a rotation: the id of the key it replaces."),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_names_are_the_resources() {
        let names = quotas()["propertyNames"]["enum"].clone();
        assert_eq!(names, json!(resource_names()));
        assert!(
            names
                .as_array()
                .is_some_and(|n| n.contains(&json!("memory_bytes")))
        );
    }
}
