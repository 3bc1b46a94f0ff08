//! Admin tokens over HTTP: the bootstrap token file, reuse on restart, 401s, the
//! configured token, and creating, listing and deleting tokens.

use std::ffi::OsString;

use riptide_api::admin::TOKEN_FILE;
use riptide_api::config::AppConfig;
use serde_json::json;

use crate::admin_common::{Admin, expect_error};
use crate::support::{TestServer, in_dir, json_of};

/// Starts a server whose data (store, secrets) lives in `dir`, which outlives it.
async fn start_in(dir: &std::path::Path) -> TestServer {
    let mut config = AppConfig::default();
    in_dir(&mut config, dir);
    TestServer::start_config(config, tempfile::tempdir().expect("temp dir")).await
}

#[tokio::test]
async fn the_bootstrap_token_file_is_private_works_and_is_reused_on_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(TOKEN_FILE);
    let server = start_in(dir.path()).await;
    let first = std::fs::read_to_string(&path).expect("token file written");
    assert!(first.ends_with('\n'));
    let first = first.trim().to_owned();
    assert!(first.starts_with("rta_") && first.len() == 81, "{first}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let admin = Admin::with(&server, first.clone());
    let listed = admin.get_json("/admin/tokens", 200).await;
    let tokens = listed["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 1, "{listed}");
    assert_eq!(tokens[0]["name"], "bootstrap");
    assert_eq!(tokens[0]["role"], "admin");
    assert_eq!(tokens[0]["source"], "store");
    assert!(
        !listed.to_string().contains(&first[16..]),
        "no secret listed"
    );
    server.stop().await.expect("clean stop");

    let again = start_in(dir.path()).await;
    let second = std::fs::read_to_string(&path).expect("token file kept");
    assert_eq!(second.trim(), first, "the file is not rewritten");
    let admin = Admin::with(&again, first);
    let listed = admin.get_json("/admin/tokens", 200).await;
    assert_eq!(listed["tokens"].as_array().expect("tokens").len(), 1);
    assert_eq!(again.state.admin_tokens.count().await.expect("count"), 1);
    again.stop().await.expect("clean stop");
}

#[tokio::test]
async fn missing_malformed_and_unknown_tokens_are_401() {
    let server = TestServer::start().await;
    let response = server.get("/admin/tenants").await;
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body = expect_error(response, 401, "unauthorized").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Bearer")),
        "{body}"
    );
    let real = crate::support::admin_token(&server);
    // Same id, another secret; a made-up token; garbage; another scheme.
    let mut forged = real[..real.len() - 4].to_owned();
    forged.push_str("0000");
    for token in [
        forged,
        format!("rta_abcdefghijkl_{}", "ab".repeat(32)),
        "nope".to_owned(),
    ] {
        let response = Admin::with(&server, token).get("/admin/tenants").await;
        expect_error(response, 401, "unauthorized").await;
    }
    let basic = server
        .client()
        .get(server.url("/admin/tenants"))
        .header("authorization", format!("Basic {real}"))
        .send()
        .await
        .expect("sent");
    expect_error(basic, 401, "unauthorized").await;
    // A tenant API key is not an admin token.
    let admin = Admin::bootstrap(&server);
    admin.create_tenant("keyholder").await;
    let key = admin
        .post_json("/admin/tenants/keyholder/keys", &json!({}), 201)
        .await;
    let response = Admin::with(&server, key["secret"].as_str().expect("secret"))
        .get("/admin/tenants")
        .await;
    expect_error(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn tokens_are_created_listed_and_deleted_by_admins_only() {
    let server = TestServer::start().await;
    let admin = Admin::bootstrap(&server);
    let created = admin
        .post_json(
            "/admin/tokens",
            &json!({"name": "ops", "role": "operator"}),
            201,
        )
        .await;
    let id = created["token_id"].as_str().expect("id").to_owned();
    assert_eq!(created["created_by"], "admin:bootstrap");
    let ops_token = created["token"].as_str().expect("token").to_owned();
    let ops = Admin::with(&server, ops_token.clone());
    ops.get_json("/admin/cache/stats", 200).await;
    // Operators manage no tokens.
    expect_error(ops.get("/admin/tokens").await, 403, "insufficient_role").await;
    let response = ops
        .post("/admin/tokens", &json!({"name": "x", "role": "admin"}))
        .await;
    expect_error(response, 403, "insufficient_role").await;

    let listed = admin.get_json("/admin/tokens", 200).await;
    let names: Vec<&str> = listed["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["bootstrap", "ops"]);
    assert!(!listed.to_string().contains(&ops_token[17..]), "no secret");

    // Bad input.
    let dup = admin
        .post("/admin/tokens", &json!({"name": "ops", "role": "viewer"}))
        .await;
    expect_error(dup, 409, "already_exists").await;
    let role = admin
        .post("/admin/tokens", &json!({"name": "r", "role": "root"}))
        .await;
    expect_error(role, 400, "invalid_role").await;
    for body in [
        json!({"name": "has space", "role": "viewer"}),
        json!({"name": "env", "role": "viewer"}),
    ] {
        let response = admin.post("/admin/tokens", &body).await;
        expect_error(response, 400, "invalid_input").await;
    }
    let unknown_field = admin
        .post(
            "/admin/tokens",
            &json!({"name": "u", "role": "viewer", "ttl": 5}),
        )
        .await;
    expect_error(unknown_field, 400, "invalid_json").await;
    expect_error(
        admin.delete("/admin/tokens/BAD").await,
        400,
        "invalid_input",
    )
    .await;
    expect_error(
        admin.delete("/admin/tokens/abcdefghijkl").await,
        404,
        "not_found",
    )
    .await;

    // Deleting takes effect at once on this instance; the name is free again.
    let response = admin.delete(&format!("/admin/tokens/{id}")).await;
    assert_eq!(response.status(), 204);
    expect_error(ops.get("/admin/cache/stats").await, 401, "unauthorized").await;
    admin.token_with_role("ops", "viewer").await;

    let audit = admin.get_json("/admin/audit?action=token", 200).await;
    let ops: Vec<(&str, &str)> = audit["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                r["operation"].as_str().expect("op"),
                r["outcome"].as_str().expect("outcome"),
            )
        })
        .collect();
    assert_eq!(ops.first(), Some(&("token.bootstrap", "ok")), "{audit}");
    assert!(ops.contains(&("token.create", "ok")), "{audit}");
    assert!(ops.contains(&("token.delete", "ok")), "{audit}");
    assert!(
        ops.iter()
            .any(|(op, outcome)| *op == "token.create" && outcome.starts_with("error")),
        "the refused duplicate is audited too: {audit}"
    );
}

#[tokio::test]
async fn a_configured_token_is_accepted_and_replaces_the_bootstrap() {
    let dir = tempfile::tempdir().expect("temp dir");
    let token = "configured-admin-token-0123456789abcdef".to_owned();
    let mut config = AppConfig::default();
    in_dir(&mut config, dir.path());
    config.admin.token = token.clone();
    config.validate().expect("valid");
    let server = TestServer::start_config(config, tempfile::tempdir().expect("temp")).await;
    assert!(!dir.path().join(TOKEN_FILE).exists(), "no bootstrap file");
    assert_eq!(server.state.admin_tokens.count().await.expect("count"), 0);

    let admin = Admin::with(&server, token);
    let listed = admin.get_json("/admin/tokens", 200).await;
    assert_eq!(listed["tokens"][0]["token_id"], "env");
    assert_eq!(listed["tokens"][0]["source"], "config");
    assert_eq!(listed["tokens"][0]["role"], "admin");
    expect_error(
        admin.delete("/admin/tokens/env").await,
        409,
        "configured_token",
    )
    .await;
    // It acts as `admin:env`.
    admin.create_tenant("by-env").await;
    let audit = admin
        .get_json("/admin/audit?tenant_id=by-env&action=tenant.create", 200)
        .await;
    assert_eq!(audit["records"][0]["actor"], "admin:env", "{audit}");
}

#[test]
fn the_configured_token_comes_from_the_environment_and_is_checked() {
    let long = "x".repeat(40);
    let env = |name: &str| (name == "RIPTIDE_ADMIN_TOKEN").then(|| OsString::from(&long));
    let config = riptide_api::config::load(None, &env, &Default::default()).expect("loads");
    assert_eq!(config.admin.token, long);
    assert!(!format!("{config:?}").contains(&long), "Debug redacts it");

    let short =
        |name: &str| (name == "RIPTIDE_ADMIN_TOKEN").then(|| OsString::from("too-short-secret"));
    let err = riptide_api::config::load(None, &short, &Default::default())
        .expect_err("short token refused")
        .to_string();
    assert!(err.contains("admin.token"), "{err}");
    assert!(err.contains("RIPTIDE_ADMIN_TOKEN"), "{err}");
    assert!(!err.contains("too-short-secret"), "{err}");
}

#[tokio::test]
async fn a_deleted_token_stops_working_on_every_instance_within_a_second() {
    // Two services over one embedded store directory cannot run at once; the cache
    // TTL is checked through the token store directly instead: a second `AdminTokens`
    // over the same store (as another instance would have) sees the deletion after
    // its cached outcome expires.
    let server = TestServer::start().await;
    let admin = Admin::bootstrap(&server);
    let viewer = admin.token_with_role("watcher", "viewer").await;
    let other = riptide_api::admin::AdminTokens::new(
        server.state.store().clone(),
        &riptide_persistence::tenant::secrets::load_pepper(
            &server.state.tenants.config().api_key_pepper,
            &server.state.tenants.config().secrets_dir,
        )
        .expect("pepper"),
        None,
        1_000,
    );
    let who = other.authenticate(&viewer).await.expect("store up");
    assert_eq!(who.map(|w| w.name), Some("watcher".to_owned()));
    let id = json_of(admin.get("/admin/tokens").await, 200).await["tokens"][1]["token_id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        admin.delete(&format!("/admin/tokens/{id}")).await.status(),
        204
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1_500);
    loop {
        if other
            .authenticate(&viewer)
            .await
            .expect("store up")
            .is_none()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still accepted after the cache TTL"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
