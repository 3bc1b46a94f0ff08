//! `/admin/audit`: filters by tenant, action family, time and count; the chain verifies;
//! bad queries are 400.

use serde_json::{Value, json};

use crate::admin_common::{Admin, expect_error};
use crate::support::TestServer;

fn operations(list: &Value) -> Vec<&str> {
    list["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["operation"].as_str().expect("operation"))
        .collect()
}

#[tokio::test]
async fn the_audit_log_is_queried_and_verified() {
    let server = TestServer::start().await;
    let admin = Admin::bootstrap(&server);
    let before = chrono::Utc::now();
    admin.create_tenant("acme").await;
    admin.create_tenant("beta").await;
    admin
        .post_json(
            "/admin/tenants/acme/suspend",
            &json!({"reason": "audit test"}),
            200,
        )
        .await;
    admin
        .post_json("/admin/cache/clear", &json!({"tenant_id": "beta"}), 200)
        .await;

    let all = admin.get_json("/admin/audit", 200).await;
    assert_eq!(
        operations(&all),
        [
            "token.bootstrap",
            "tenant.create",
            "tenant.create",
            "tenant.suspend",
            "cache.clear"
        ]
    );
    assert_eq!(all["count"], 5);
    let first = &all["records"][0];
    assert_eq!(first["seq"], 1);
    assert!(first["hash"].as_str().is_some_and(|h| h.len() == 64));

    let acme = admin.get_json("/admin/audit?tenant_id=acme", 200).await;
    assert_eq!(operations(&acme), ["tenant.create", "tenant.suspend"]);
    let tenant_ops = admin.get_json("/admin/audit?action=tenant", 200).await;
    assert_eq!(tenant_ops["count"], 3);
    let exact = admin
        .get_json("/admin/audit?action=tenant.suspend&tenant_id=acme", 200)
        .await;
    assert_eq!(exact["records"][0]["metadata"], json!({}));
    assert_eq!(exact["records"][0]["resource"], "audit test");
    let limited = admin.get_json("/admin/audit?limit=2", 200).await;
    assert_eq!(operations(&limited), ["token.bootstrap", "tenant.create"]);
    let limited = admin
        .get_json("/admin/audit?action=tenant&limit=1", 200)
        .await;
    assert_eq!(operations(&limited), ["tenant.create"]);
    let since = before.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let recent = admin
        .get_json(&format!("/admin/audit?since={since}"), 200)
        .await;
    assert_eq!(recent["count"], 4, "{recent}");
    let old = admin
        .get_json("/admin/audit?until=2000-01-01T00:00:00Z", 200)
        .await;
    assert_eq!(old["count"], 0);

    let verified = admin.get_json("/admin/audit/verify", 200).await;
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["checked"], 5);
    assert!(verified["first_bad"].is_null());

    for query in [
        "since=yesterday",
        "until=2025-13-01T00:00:00Z",
        "since=2025-02-01T00:00:00Z&until=2025-01-01T00:00:00Z",
        "limit=0",
        "limit=10001",
        "action=",
        "actor=admin",
    ] {
        let response = admin.get(&format!("/admin/audit?{query}")).await;
        expect_error(response, 400, "invalid_query").await;
    }
    expect_error(
        admin.get("/admin/audit?tenant_id=NOPE").await,
        400,
        "invalid_tenant_id",
    )
    .await;
}
