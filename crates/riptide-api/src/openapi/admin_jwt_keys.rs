//! The admin operations on tenants' JWT verification keys:
//! `/admin/tenants/{id}/jwt-keys...`, with their schemas.

use riptide_persistence::tenant::AdminAction::{ReadTenants, WriteTenants};
use riptide_persistence::tenant::jwt_keys::JwtAlgorithm;
use serde_json::{Map, Value, json};

use super::common::{
    ADMIN_BODY, ADMIN_GUARD, ANY, AdminAccess, Failure, admin_op, array, empty_reply, json_body,
    json_reply, nullable, object, one_of_strings, parameter, responses, schema, string, time,
};

/// A tenant named in the path: malformed or unknown.
const TENANT: &[Failure] = &[(400, "invalid_tenant_id"), (404, "not_found")];

/// A concurrent change of the same records.
const CONFLICT: &[Failure] = &[(409, "conflict")];

const ALGORITHMS: &[JwtAlgorithm] = &[
    JwtAlgorithm::HS256,
    JwtAlgorithm::EdDSA,
    JwtAlgorithm::RS256,
];

fn algorithm_names() -> Vec<&'static str> {
    ALGORITHMS.iter().map(|a| a.as_str()).collect()
}

/// Paths of the JWT key administration.
pub fn paths() -> Value {
    json!({
        "/admin/tenants/{id}/jwt-keys": {
            "parameters": [parameter("TenantId")],
            "get": list_jwt_keys(),
            "post": create_jwt_key(),
        },
        "/admin/tenants/{id}/jwt-keys/{kid}": {
            "parameters": [parameter("TenantId"), parameter("Kid")],
            "delete": revoke_jwt_key(),
        },
    })
}

fn list_jwt_keys() -> Value {
    admin_op(
        AdminAccess::Action(ReadTenants),
        json!({
            "operationId": "list_jwt_keys",
            "tags": ["admin-tenants"],
            "summary": "List a tenant's JWT verification keys",
            "description": "Every key, oldest first, revoked ones included; public keys \
                as supplied, never an HS256 secret.",
            "responses": responses(
                vec![(200, json_reply("The keys.", schema("JwtKeyList"), &[]))],
                &[ANY, ADMIN_GUARD, TENANT],
            ),
        }),
    )
}

fn create_jwt_key() -> Value {
    admin_op(
        AdminAccess::Action(WriteTenants),
        json!({
            "operationId": "create_jwt_key",
            "tags": ["admin-tenants"],
            "summary": "Create a JWT verification key",
            "description": "`HS256`: the service generates the secret and returns it in \
                this answer only. `EdDSA` (Ed25519) and `RS256`: send the public key in \
                PEM. Tokens name the key in their `kid` header and are verified with its \
                algorithm only. Several keys may be active at once (rotation: create, \
                switch the issuer, revoke the old key). At most 100 keys per tenant.",
            "requestBody": json_body("CreateJwtKeyRequest", true, json!({ "algorithm": "HS256", "name": "issuer-2026" })),
            "responses": responses(
                vec![(201, json_reply("The new key (with its secret for HS256).", schema("CreatedJwtKey"), &[]))],
                &[ANY, ADMIN_GUARD, ADMIN_BODY, TENANT, CONFLICT, &[(400, "invalid_input"), (429, "quota_exceeded")]],
            ),
        }),
    )
}

fn revoke_jwt_key() -> Value {
    admin_op(
        AdminAccess::Action(WriteTenants),
        json!({
            "operationId": "revoke_jwt_key",
            "tags": ["admin-tenants"],
            "summary": "Revoke a JWT verification key",
            "description": "Tokens naming it stop verifying at once here, and on other \
                instances within `tenant.record_cache_ttl_ms`. An unknown key is 404.",
            "responses": responses(
                vec![(204, empty_reply("Revoked.", &[]))],
                &[ANY, ADMIN_GUARD, TENANT, &[(400, "invalid_key_id")], CONFLICT],
            ),
        }),
    )
}

/// The schemas, by name.
pub fn schemas() -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(
        "JwtAlgorithm".into(),
        one_of_strings(
            "The one algorithm tokens of the key are accepted with.",
            &algorithm_names(),
        ),
    );
    out.insert(
        "JwtKey".into(),
        object(
            "A JWT verification key as listed: never an HS256 secret.",
            &[
                "kid",
                "algorithm",
                "label",
                "public_key_pem",
                "created_at",
                "revoked_at",
            ],
            json!({
                "kid": string("The key id tokens name in their `kid` header."),
                "algorithm": schema("JwtAlgorithm"),
                "label": nullable(string("The name given at creation.")),
                "public_key_pem": nullable(string("EdDSA, RS256: the public key; HS256: null.")),
                "created_at": time("When it was created."),
                "revoked_at": nullable(time("Set by a revocation.")),
            }),
        ),
    );
    out.insert(
        "JwtKeyList".into(),
        object(
            "A tenant's JWT verification keys.",
            &["tenant_id", "keys"],
            json!({
                "tenant_id": string("The tenant."),
                "keys": array("Oldest first, revoked ones included.", schema("JwtKey")),
            }),
        ),
    );
    out.insert("CreateJwtKeyRequest".into(), object(
        "Body of `POST /admin/tenants/{id}/jwt-keys`.",
        &["algorithm"],
        json!({
            "algorithm": schema("JwtAlgorithm"),
            "public_key_pem": { "type": "string", "maxLength": 16384,
                "description": "EdDSA, RS256: the public key in PEM (required); HS256: absent." },
            "name": { "type": "string", "maxLength": 200, "description": "A label for listings." },
        }),
    ));
    out.insert(
        "CreatedJwtKey".into(),
        object(
            "A new JWT verification key; an HS256 `secret` is shown only here.",
            &["tenant_id", "kid", "algorithm", "created_at"],
            json!({
                "tenant_id": string("The tenant: the value of the tokens' `tenant` claim."),
                "kid": string("The id to put in the tokens' `kid` header."),
                "algorithm": schema("JwtAlgorithm"),
                "secret": string("HS256 only: the secret to sign with, used as is (its UTF-8 \
                    bytes are the HMAC key)."),
                "created_at": time("When it was created."),
            }),
        ),
    );
    out
}
