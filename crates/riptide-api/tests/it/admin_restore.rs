//! `POST /admin/state/restore` never undoes a security decision (issue 10, item 1), over
//! HTTP on the embedded store and on Redis: a key revoked, a tenant suspended and a
//! tenant deleted after a checkpoint stay so after restoring it; the dry run lists
//! exactly those; the operator role may not restore; the audit log holds the diff.

use std::collections::BTreeSet;

use riptide_api::config::AppConfig;
use riptide_test_support::{redis_server, unique};
use serde_json::{Value, json};

use crate::admin_common::{Admin, expect_error};
use crate::support::{TestServer, in_dir, json_of};

/// Base64 of 32 bytes (the Redis instance needs configured secrets).
const SECRET: &str = "cmVzdG9yZS1rZWVwcy1zZWN1cml0eS1kZWNpc2lvbnM=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_keeps_security_decisions_on_embedded() {
    let server = TestServer::start().await;
    restore_keeps_security_decisions(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_keeps_security_decisions_on_redis() {
    let dir = tempfile::tempdir().expect("temp");
    let mut config = AppConfig::default();
    in_dir(&mut config, dir.path());
    let persistence = &mut config.persistence;
    persistence.redis.url = redis_server().url();
    persistence.redis.key_prefix = unique("rst").replace('-', "_");
    persistence.tenant.api_key_pepper = SECRET.to_owned();
    persistence.tenant.master_key = SECRET.to_owned();
    config.validate().expect("valid config");
    let server = TestServer::start_config(config, dir).await;
    restore_keeps_security_decisions(&server).await;
}

/// `GET /usage` as `tenant` with `key`: its status.
async fn usage_status(server: &TestServer, tenant: &str, key: &str) -> u16 {
    server
        .client()
        .get(server.url("/usage"))
        .bearer_auth(key)
        .header("x-tenant-id", tenant)
        .send()
        .await
        .expect("GET /usage")
        .status()
        .as_u16()
}

async fn new_key(admin: &Admin<'_>, tenant: &str) -> (String, String) {
    let created = admin
        .post_json(&format!("/admin/tenants/{tenant}/keys"), &json!({}), 201)
        .await;
    (
        created["key_id"].as_str().expect("key_id").to_owned(),
        created["secret"].as_str().expect("secret").to_owned(),
    )
}

type Listed = BTreeSet<(String, String, Option<String>, String)>;

fn listed(report: &Value) -> Listed {
    report["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| {
            (
                o["tenant"].as_str().expect("tenant").to_owned(),
                o["kind"].as_str().expect("kind").to_owned(),
                o["id"].as_str().map(str::to_owned),
                o["outcome"].as_str().expect("outcome").to_owned(),
            )
        })
        .collect()
}

async fn restore_keeps_security_decisions(server: &TestServer) {
    let admin = Admin::bootstrap(server);
    for id in ["keep", "susp"] {
        admin.create_tenant(id).await;
    }
    admin
        .post_json(
            "/admin/tenants",
            &json!({
                "tenant_id": "gone",
                "name": "Tenant gone",
                "owner_email": "owner@gone.example",
                "owner_name": "Owner",
                "billing_plan": "basic",
                "encryption_enabled": true,
            }),
            201,
        )
        .await;
    let (_, kept) = new_key(&admin, "keep").await;
    let (revoked_id, revoked) = new_key(&admin, "keep").await;
    let (_, suspended) = new_key(&admin, "susp").await;
    let (_, gone) = new_key(&admin, "gone").await;
    for (tenant, key) in [
        ("keep", &kept),
        ("keep", &revoked),
        ("susp", &suspended),
        ("gone", &gone),
    ] {
        assert_eq!(usage_status(server, tenant, key).await, 200, "{tenant}");
    }
    let store = server.state.store();
    let dek = format!("{}:tenant:{{gone}}:dek", store.key_prefix());
    assert!(
        store.get(&dek).await.expect("read").is_some(),
        "gone has a data key"
    );

    let taken = json_of(admin.post_empty("/admin/state/checkpoint").await, 201).await;
    let id = taken["id"].as_str().expect("id").to_owned();

    // The decisions made after the checkpoint.
    let revoke = admin
        .delete(&format!("/admin/tenants/keep/keys/{revoked_id}"))
        .await;
    assert_eq!(revoke.status(), 204);
    admin
        .post_json(
            "/admin/tenants/susp/suspend",
            &json!({"reason": "unpaid"}),
            200,
        )
        .await;
    assert_eq!(admin.delete("/admin/tenants/gone").await.status(), 204);
    assert!(store.get(&dek).await.expect("read").is_none());

    // An operator may not restore, not even a dry run.
    let operator = Admin::with(server, admin.token_with_role("ops", "operator").await);
    for dry_run in [true, false] {
        expect_error(
            operator
                .post(
                    "/admin/state/restore",
                    &json!({"checkpoint_id": id, "dry_run": dry_run}),
                )
                .await,
            403,
            "insufficient_role",
        )
        .await;
    }

    // The dry run lists exactly the decisions it keeps, and would change nothing.
    let dry = admin
        .post_json(
            "/admin/state/restore",
            &json!({"checkpoint_id": id, "dry_run": true}),
            200,
        )
        .await;
    let refused = |t: &str, kind: &str, id: Option<&str>| {
        (
            t.to_owned(),
            kind.to_owned(),
            id.map(str::to_owned),
            "refused".to_owned(),
        )
    };
    let expected: Listed = [
        refused("keep", "api_key", Some(&revoked_id)),
        refused("keep", "api_key_lookup", Some(&revoked_id)),
        (
            "susp".to_owned(),
            "tenant".to_owned(),
            None,
            "kept_newer".to_owned(),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(listed(&dry), expected, "{dry}");
    assert_eq!(dry["objects_total"], 3, "{dry}");
    // The deleted tenant is not even refused: its checkpoint key is gone, so nothing of
    // it can be opened (issue 10, item 2).
    assert_eq!(dry["shredded_tenants"], json!(["gone"]), "{dry}");
    assert_eq!(dry["tenants"], 3, "{dry}");
    let text = dry.to_string();
    for secret in [&kept, &revoked, &suspended, &gone] {
        assert!(!text.contains(secret.as_str()), "no secret in the report");
    }

    let applied = admin
        .post_json("/admin/state/restore", &json!({"checkpoint_id": id}), 200)
        .await;
    assert_eq!(listed(&applied), expected, "{applied}");

    // Every decision holds.
    assert_eq!(
        usage_status(server, "keep", &revoked).await,
        401,
        "revoked key"
    );
    assert_eq!(usage_status(server, "keep", &kept).await, 200);
    assert_eq!(
        usage_status(server, "susp", &suspended).await,
        403,
        "suspended"
    );
    assert_eq!(
        usage_status(server, "gone", &gone).await,
        401,
        "deleted tenant's key"
    );
    let susp = admin.get_json("/admin/tenants/susp", 200).await;
    assert_eq!(susp["status"], "suspended", "{susp}");
    expect_error(admin.get("/admin/tenants/gone").await, 404, "not_found").await;
    assert!(
        store.get(&dek).await.expect("read").is_none(),
        "the data key is not back"
    );

    // Audited with the diff: counts and the objects.
    let audit = admin.get_json("/admin/audit?action=state", 200).await;
    let record = audit["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["operation"] == "state.restore" && r["metadata"]["dry_run"] == "false")
        .expect("the restore is audited")
        .clone();
    let meta = &record["metadata"];
    assert_eq!(record["resource"], id.as_str());
    assert_eq!(
        (
            &meta["created"],
            &meta["overwritten"],
            &meta["kept_newer"],
            &meta["refused"]
        ),
        (&json!("0"), &json!("0"), &json!("1"), &json!("2")),
        "{record}"
    );
    assert_eq!(meta["objects_total"], "3");
    assert_eq!(meta["shredded_tenants"], "1");
    let audited: BTreeSet<&str> = meta
        .as_object()
        .expect("metadata")
        .iter()
        .filter(|(k, _)| k.starts_with("object."))
        .map(|(_, v)| v.as_str().expect("text"))
        .collect();
    let revoked_line = format!("refused api_key keep/{revoked_id}");
    assert!(audited.contains(revoked_line.as_str()), "{audited:?}");
    assert!(audited.contains("kept_newer tenant susp"), "{audited:?}");
    assert_eq!(audited.len(), 3);
}
