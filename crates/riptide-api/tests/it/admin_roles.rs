//! The role matrix: for every admin route, each role that lacks the route's action gets
//! 403 `insufficient_role`, and each role that has it succeeds.

use reqwest::Method;
use riptide_api::admin::{AdminAction, AdminRole};
use serde_json::{Value, json};

use crate::admin_common::{Admin, tenant_body};
use crate::support::{TestServer, json_of};

/// One route and what it needs (`None`: role admin, for token management).
struct Case {
    method: Method,
    path: String,
    body: Option<Value>,
    action: Option<AdminAction>,
}

fn case(
    method: Method,
    path: impl Into<String>,
    body: Option<Value>,
    action: Option<AdminAction>,
) -> Case {
    Case {
        method,
        path: path.into(),
        body,
        action,
    }
}

fn allowed(role: AdminRole, action: Option<AdminAction>) -> bool {
    match action {
        Some(action) => role.allows(action),
        None => role == AdminRole::Admin,
    }
}

#[tokio::test]
async fn every_route_checks_its_role() {
    use AdminAction::*;
    let server = TestServer::start().await;
    let admin = Admin::bootstrap(&server);
    admin.create_tenant("acme").await;
    admin.create_tenant("doomed").await;
    let mut keys = Vec::new();
    for _ in 0..2 {
        let key = admin
            .post_json("/admin/tenants/acme/keys", &json!({}), 201)
            .await;
        keys.push(key["key_id"].as_str().expect("key id").to_owned());
    }
    let checkpoint = json_of(admin.post_empty("/admin/state/checkpoint").await, 201).await;
    let checkpoint = checkpoint["id"].as_str().expect("checkpoint id").to_owned();
    let disposable = admin
        .post_json(
            "/admin/tokens",
            &json!({"name": "disposable", "role": "viewer"}),
            201,
        )
        .await;
    let disposable = disposable["token_id"].as_str().expect("id").to_owned();

    // Role order: the admin comes last, so routes only it may call run once, after
    // every refusal.
    let mut callers = Vec::new();
    for role in [AdminRole::Operator, AdminRole::Billing, AdminRole::Viewer] {
        let token = admin
            .token_with_role(&format!("{}-bot", role.as_str()), role.as_str())
            .await;
        callers.push((role, token));
    }
    callers.push((AdminRole::Admin, admin.token.clone()));

    let cases = [
        case(Method::GET, "/admin/tenants", None, Some(ReadTenants)),
        case(
            Method::POST,
            "/admin/tenants",
            Some(tenant_body("fresh")),
            Some(WriteTenants),
        ),
        case(Method::GET, "/admin/tenants/acme", None, Some(ReadTenants)),
        case(
            Method::PUT,
            "/admin/tenants/acme",
            Some(json!({"name": "Acme Two"})),
            Some(WriteTenants),
        ),
        case(
            Method::DELETE,
            "/admin/tenants/doomed",
            None,
            Some(WriteTenants),
        ),
        case(
            Method::GET,
            "/admin/tenants/acme/usage",
            None,
            Some(ReadUsage),
        ),
        case(
            Method::GET,
            "/admin/tenants/acme/billing",
            None,
            Some(ReadBilling),
        ),
        case(
            Method::POST,
            "/admin/tenants/acme/suspend",
            Some(json!({"reason": "matrix"})),
            Some(WriteTenants),
        ),
        case(
            Method::POST,
            "/admin/tenants/acme/resume",
            None,
            Some(WriteTenants),
        ),
        case(
            Method::GET,
            "/admin/tenants/acme/keys",
            None,
            Some(ReadTenants),
        ),
        case(
            Method::POST,
            "/admin/tenants/acme/keys",
            Some(json!({"name": "k"})),
            Some(WriteTenants),
        ),
        case(
            Method::DELETE,
            format!("/admin/tenants/acme/keys/{}", keys[0]),
            None,
            Some(WriteTenants),
        ),
        case(
            Method::POST,
            format!("/admin/tenants/acme/keys/{}/rotate", keys[1]),
            None,
            Some(WriteTenants),
        ),
        case(Method::GET, "/admin/cache/stats", None, Some(ReadCache)),
        case(
            Method::GET,
            "/admin/cache/stats?tenant_id=acme",
            None,
            Some(ReadCache),
        ),
        case(
            Method::POST,
            "/admin/cache/invalidate",
            Some(json!({"tenant_id": "acme", "tag": "t"})),
            Some(WriteCache),
        ),
        case(
            Method::POST,
            "/admin/cache/clear",
            Some(json!({"tenant_id": "acme"})),
            Some(WriteCache),
        ),
        case(Method::GET, "/admin/state/current", None, Some(ReadState)),
        case(Method::POST, "/admin/state/reload", None, Some(WriteState)),
        case(
            Method::POST,
            "/admin/state/checkpoint",
            None,
            Some(WriteState),
        ),
        case(
            Method::GET,
            "/admin/state/checkpoints",
            None,
            Some(ReadState),
        ),
        case(
            Method::POST,
            "/admin/state/restore",
            Some(json!({"checkpoint_id": checkpoint, "dry_run": true})),
            Some(RestoreState),
        ),
        case(Method::GET, "/admin/audit", None, Some(ReadAudit)),
        case(Method::GET, "/admin/audit/verify", None, Some(ReadAudit)),
        case(Method::GET, "/admin/tokens", None, None),
        case(
            Method::POST,
            "/admin/tokens",
            Some(json!({"name": "new-one", "role": "viewer"})),
            None,
        ),
        case(
            Method::DELETE,
            format!("/admin/tokens/{disposable}"),
            None,
            None,
        ),
    ];

    for case in &cases {
        let mut refused = 0;
        let mut served = 0;
        for (role, token) in &callers {
            let response = Admin::with(&server, token.clone())
                .send(case.method.clone(), &case.path, case.body.as_ref())
                .await;
            let what = format!("{} {} as {}", case.method, case.path, role.as_str());
            if allowed(*role, case.action) {
                assert!(response.status().is_success(), "{what}: {response:?}");
                served += 1;
            } else {
                let body = json_of(response, 403).await;
                assert_eq!(body["error"]["code"], "insufficient_role", "{what}: {body}");
                refused += 1;
            }
        }
        assert!(
            served >= 1,
            "{} {}: someone may call it",
            case.method,
            case.path
        );
        if case.action != Some(ReadTenants) {
            assert!(
                refused >= 1,
                "{} {}: someone may not",
                case.method,
                case.path
            );
        }
    }
}
