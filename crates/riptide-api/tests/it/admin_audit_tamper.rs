//! The audit log on the embedded store behind the real router, tampered with through the
//! store's raw bytes: a record forged under another key is reported by
//! `/admin/audit/verify`, and with the head deleted an admin change is refused with 503
//! `audit_unavailable` and does not happen.

use riptide_persistence::store::Durability;
use riptide_persistence::tenant::audit::{AuditKey, AuditRecord};
use serde_json::json;

use crate::admin_common::{Admin, expect_error, tenant_body};
use crate::support::TestServer;

#[tokio::test]
async fn forged_records_and_a_deleted_head_on_the_embedded_store() {
    let server = TestServer::start().await;
    let admin = Admin::bootstrap(&server);
    admin.create_tenant("acme").await;
    let store = server.state.tenants.store().clone();
    let base = format!("{}:{{audit}}", store.key_prefix());
    let ok = admin.get_json("/admin/audit/verify", 200).await;
    assert_eq!(ok["ok"], true, "{ok}");
    let length = ok["length"].as_u64().expect("length");

    // Rewrite the last record with a consistent link but under another key.
    let key = format!("{base}:rec:{length}");
    let bytes = store.get(&key).await.expect("get").expect("record");
    let mut record: AuditRecord = serde_json::from_slice(&bytes).expect("record");
    record.actor = "mallory".to_owned();
    record.hash = record.compute_hash(&AuditKey::from_bytes([9; 32]));
    let forged = serde_json::to_vec(&record).expect("json");
    store
        .set(&key, &forged, None, Durability::Durable)
        .await
        .expect("forge");
    store
        .set(
            &format!("{base}:head"),
            format!("{length} {}", record.hash).as_bytes(),
            None,
            Durability::Durable,
        )
        .await
        .expect("head");
    let report = admin.get_json("/admin/audit/verify", 200).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["first_bad"]["seq"], length, "{report}");
    assert!(
        report["first_bad"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("audit key")),
        "{report}"
    );

    // Delete the head: the admin change fails closed.
    store
        .delete(&[format!("{base}:head")])
        .await
        .expect("delete head");
    let refused = admin.post("/admin/tenants", &tenant_body("beta")).await;
    let body = expect_error(refused, 503, "audit_unavailable").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("head")),
        "{body}"
    );
    expect_error(admin.get("/admin/tenants/beta").await, 404, "not_found").await;
    let refused = admin
        .post("/admin/cache/clear", &json!({"tenant_id": "acme"}))
        .await;
    expect_error(refused, 503, "audit_unavailable").await;
    // Reading stays possible, and verify says what is wrong.
    let report = admin.get_json("/admin/audit/verify", 200).await;
    assert!(
        report["problems"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p
                .as_str()
                .is_some_and(|p| p.contains("head key is missing")))),
        "{report}"
    );
}
