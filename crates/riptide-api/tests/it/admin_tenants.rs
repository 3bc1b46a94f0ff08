//! The tenant lifecycle over the admin API: create, list, read, update, keys (create,
//! list, rotate, revoke), suspend and resume, usage and billing, delete; and bad input.

use riptide_persistence::tenant::{ResourceUsageRecord, TenantError};
use serde_json::json;

use crate::admin_common::{Admin, expect_error, tenant_body};
use crate::support::{TestServer, json_of};

#[tokio::test]
async fn a_tenant_lives_and_dies_over_http() {
    let server = TestServer::start().await;
    let admin = Admin::bootstrap(&server);
    let tenants = &server.state.tenants;

    // Create, with quotas; the plan's limits fill in the rest.
    let mut body = tenant_body("acme");
    body["quotas"] = json!({"operations_per_minute": 5});
    body["organization"] = json!("Acme Inc.");
    let created = admin.post_json("/admin/tenants", &body, 201).await;
    assert_eq!(created["tenant_id"], "acme");
    assert_eq!(created["status"], "active");
    assert_eq!(created["plan"], "basic");
    assert_eq!(created["owner"]["email"], "owner@acme.example");
    assert_eq!(created["effective_quotas"]["operations_per_minute"], 5);
    assert_eq!(
        created["effective_quotas"]["memory_bytes"], 104_857_600,
        "{created}"
    );
    expect_error(
        admin.post("/admin/tenants", &body).await,
        409,
        "already_exists",
    )
    .await;

    // A generated id.
    let mut anonymous = tenant_body("x");
    anonymous
        .as_object_mut()
        .expect("object")
        .remove("tenant_id");
    let generated = admin.post_json("/admin/tenants", &anonymous, 201).await;
    let generated_id = generated["tenant_id"].as_str().expect("id").to_owned();
    assert!(generated_id.starts_with("t-"), "{generated}");
    admin.create_tenant("beta").await;

    // List in pages.
    let page = admin.get_json("/admin/tenants?limit=2", 200).await;
    assert_eq!(page["total"], 3);
    assert_eq!(page["tenants"].as_array().expect("tenants").len(), 2);
    assert_eq!(page["next_offset"], 2);
    let rest = admin.get_json("/admin/tenants?offset=2&limit=2", 200).await;
    assert_eq!(rest["tenants"][0]["tenant_id"], "beta");
    assert!(rest["next_offset"].is_null());

    // Read and update.
    let got = admin.get_json("/admin/tenants/acme", 200).await;
    assert_eq!(got["name"], "Tenant acme");
    let updated = json_of(
        admin
            .put(
                "/admin/tenants/acme",
                &json!({"name": "Acme", "plan": "professional", "quotas": {}}),
            )
            .await,
        200,
    )
    .await;
    assert_eq!(updated["name"], "Acme");
    assert_eq!(updated["plan"], "professional");
    assert_eq!(updated["effective_quotas"]["operations_per_minute"], 10_000);
    assert!(updated["version"].as_u64() > got["version"].as_u64());

    // Keys: create (secret once), list (no secrets), authenticate, rotate, revoke.
    let key = admin
        .post_json("/admin/tenants/acme/keys", &json!({"name": "ci"}), 201)
        .await;
    let secret = key["secret"].as_str().expect("secret").to_owned();
    let key_id = key["key_id"].as_str().expect("key id").to_owned();
    let (authed, _) = tenants.authenticate(&secret).await.expect("key works");
    assert_eq!(authed.tenant_id.as_str(), "acme");
    let unnamed = json_of(admin.post_empty("/admin/tenants/acme/keys").await, 201).await;
    let unnamed_secret = unnamed["secret"].as_str().expect("secret").to_owned();
    let listed = admin.get_json("/admin/tenants/acme/keys", 200).await;
    assert_eq!(listed["keys"].as_array().expect("keys").len(), 2);
    assert_eq!(listed["keys"][0]["label"], "ci");
    assert!(!listed.to_string().contains(&secret), "no secret listed");

    let rotated = json_of(
        admin
            .post_empty(&format!("/admin/tenants/acme/keys/{key_id}/rotate"))
            .await,
        201,
    )
    .await;
    assert_eq!(rotated["replaces"], key_id.as_str());
    let new_secret = rotated["secret"].as_str().expect("secret").to_owned();
    tenants
        .authenticate(&new_secret)
        .await
        .expect("new key works");
    tenants
        .authenticate(&secret)
        .await
        .expect("old key works during the overlap");

    let unnamed_id = unnamed["key_id"].as_str().expect("id");
    let response = admin
        .delete(&format!("/admin/tenants/acme/keys/{unnamed_id}"))
        .await;
    assert_eq!(response.status(), 204);
    assert!(matches!(
        tenants.authenticate(&unnamed_secret).await,
        Err(TenantError::InvalidApiKey)
    ));
    let listed = admin.get_json("/admin/tenants/acme/keys", 200).await;
    let revoked = listed["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["key_id"] == unnamed_id)
        .expect("still listed");
    assert!(revoked["revoked_at"].is_string(), "{revoked}");

    // Suspend and resume.
    let suspended = admin
        .post_json(
            "/admin/tenants/acme/suspend",
            &json!({"reason": "unpaid invoice"}),
            200,
        )
        .await;
    assert_eq!(suspended["status"], "suspended");
    assert_eq!(suspended["suspended_reason"], "unpaid invoice");
    assert!(matches!(
        tenants.authenticate(&new_secret).await,
        Err(TenantError::Suspended(_))
    ));
    let resumed = json_of(admin.post_empty("/admin/tenants/acme/resume").await, 200).await;
    assert_eq!(resumed["status"], "active");
    assert!(resumed["suspended_reason"].is_null());
    tenants
        .authenticate(&new_secret)
        .await
        .expect("active again");

    // Usage and billing of this month and of a given one.
    let now = chrono::Utc::now();
    let usage = ResourceUsageRecord {
        operation_count: 3,
        data_bytes: 4_096,
        compute_time_ms: 7,
        storage_bytes: 0,
        timestamp: now,
    };
    tenants
        .record_usage("acme", "extract", usage)
        .await
        .expect("recorded");
    tenants.flush_usage().await.expect("flushed");
    let used = admin.get_json("/admin/tenants/acme/usage", 200).await;
    assert_eq!(used["period"], now.format("%Y-%m").to_string());
    assert_eq!(used["operations"], 3);
    assert_eq!(used["data_bytes"], 4_096);
    assert_eq!(used["by_operation"]["extract"], 3);
    let old = admin
        .get_json("/admin/tenants/acme/usage?period=2020-01", 200)
        .await;
    assert_eq!(old["operations"], 0);
    let bill = admin.get_json("/admin/tenants/acme/billing", 200).await;
    assert_eq!(bill["tenant_id"], "acme");
    assert_eq!(bill["plan"], "professional");
    assert_eq!(bill["currency"], "USD");
    assert!(bill["total_cents"].as_u64() >= Some(19_900), "{bill}");

    // Delete: gone, and its keys with it.
    let response = admin.delete("/admin/tenants/acme").await;
    assert_eq!(response.status(), 204);
    expect_error(admin.get("/admin/tenants/acme").await, 404, "not_found").await;
    expect_error(admin.delete("/admin/tenants/acme").await, 404, "not_found").await;
    assert!(tenants.authenticate(&new_secret).await.is_err());

    // Every change was audited by the tenant layer, with the admin as actor.
    let audit = admin.get_json("/admin/audit?tenant_id=acme", 200).await;
    let ops: Vec<&str> = audit["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            assert_eq!(r["actor"], "admin:bootstrap", "{r}");
            r["operation"].as_str().expect("op")
        })
        .collect();
    for op in [
        "tenant.create",
        "tenant.update",
        "key.create",
        "key.rotate",
        "key.revoke",
        "tenant.suspend",
        "tenant.resume",
        "tenant.delete",
    ] {
        assert!(ops.contains(&op), "{op} in {ops:?}");
    }
}

#[tokio::test]
async fn bad_input_is_400_and_unknown_things_404() {
    let server = TestServer::start().await;
    let admin = Admin::bootstrap(&server);
    admin.create_tenant("acme").await;

    let raw = |body: &'static str| {
        server
            .client()
            .post(server.url("/admin/tenants"))
            .bearer_auth(&admin.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    expect_error(raw("{not json").await.expect("sent"), 400, "invalid_json").await;
    expect_error(raw("").await.expect("sent"), 400, "invalid_json").await;
    expect_error(raw("[]").await.expect("sent"), 400, "invalid_json").await;
    let text = server
        .client()
        .post(server.url("/admin/tenants"))
        .bearer_auth(&admin.token)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("sent");
    expect_error(text, 415, "unsupported_media_type").await;

    let mut unknown = tenant_body("u1");
    unknown["colour"] = json!("blue");
    let body = expect_error(
        admin.post("/admin/tenants", &unknown).await,
        400,
        "invalid_json",
    )
    .await;
    assert!(body.to_string().contains("colour"), "{body}");
    let mut missing = tenant_body("u2");
    missing
        .as_object_mut()
        .expect("object")
        .remove("owner_email");
    expect_error(
        admin.post("/admin/tenants", &missing).await,
        400,
        "invalid_json",
    )
    .await;

    let mut plan = tenant_body("u3");
    plan["billing_plan"] = json!("platinum");
    expect_error(
        admin.post("/admin/tenants", &plan).await,
        400,
        "invalid_plan",
    )
    .await;
    let mut id = tenant_body("u4");
    id["tenant_id"] = json!("Not Valid");
    expect_error(
        admin.post("/admin/tenants", &id).await,
        400,
        "invalid_tenant_id",
    )
    .await;
    for (field, value) in [
        ("tenant_id", json!("admin")),
        ("owner_email", json!("nobody")),
        ("name", json!("")),
        ("quotas", json!({"bananas": 3})),
    ] {
        let mut body = tenant_body("u5");
        body[field] = value;
        expect_error(
            admin.post("/admin/tenants", &body).await,
            400,
            "invalid_input",
        )
        .await;
    }

    // Ids in paths.
    expect_error(
        admin.get("/admin/tenants/UPPER").await,
        400,
        "invalid_tenant_id",
    )
    .await;
    expect_error(admin.get("/admin/tenants/nobody").await, 404, "not_found").await;
    expect_error(
        admin
            .put("/admin/tenants/nobody", &json!({"name": "x"}))
            .await,
        404,
        "not_found",
    )
    .await;
    expect_error(
        admin.post_empty("/admin/tenants/nobody/resume").await,
        404,
        "not_found",
    )
    .await;
    expect_error(
        admin.get("/admin/tenants/nobody/keys").await,
        404,
        "not_found",
    )
    .await;
    expect_error(
        admin.delete("/admin/tenants/acme/keys/bad").await,
        400,
        "invalid_key_id",
    )
    .await;
    expect_error(
        admin.delete("/admin/tenants/acme/keys/abcdefghijkl").await,
        404,
        "not_found",
    )
    .await;
    expect_error(
        admin
            .post_empty("/admin/tenants/acme/keys/abcdefghijkl/rotate")
            .await,
        404,
        "not_found",
    )
    .await;
    let expiring = admin
        .post(
            "/admin/tenants/acme/keys",
            &json!({"expires_in_seconds": 60}),
        )
        .await;
    expect_error(expiring, 400, "invalid_json").await;

    // Updates, suspensions, periods, pages.
    expect_error(
        admin
            .put("/admin/tenants/acme", &json!({"plan": "gold"}))
            .await,
        400,
        "invalid_json",
    )
    .await;
    expect_error(
        admin
            .put(
                "/admin/tenants/acme",
                &json!({"quotas": {"memory_bytes": 0}}),
            )
            .await,
        400,
        "invalid_input",
    )
    .await;
    expect_error(
        admin
            .post("/admin/tenants/acme/suspend", &json!({"reason": " "}))
            .await,
        400,
        "invalid_input",
    )
    .await;
    expect_error(
        admin.post_empty("/admin/tenants/acme/suspend").await,
        400,
        "invalid_json",
    )
    .await;
    for period in ["2025-13", "2025-1", "last-month", "1969-12"] {
        let path = format!("/admin/tenants/acme/usage?period={period}");
        expect_error(admin.get(&path).await, 400, "invalid_period").await;
        let path = format!("/admin/tenants/acme/billing?period={period}");
        expect_error(admin.get(&path).await, 400, "invalid_period").await;
    }
    expect_error(
        admin.get("/admin/tenants/acme/usage?month=2025-01").await,
        400,
        "invalid_query",
    )
    .await;
    for query in ["limit=0", "limit=1001", "offset=-1", "limit=many"] {
        let path = format!("/admin/tenants?{query}");
        expect_error(admin.get(&path).await, 400, "invalid_query").await;
    }
    // Nothing half-made was left behind.
    let page = admin.get_json("/admin/tenants", 200).await;
    assert_eq!(page["total"], 1, "{page}");
}
