//! Multi-tenancy off means no authentication, so it is a start-time decision: on a
//! non-loopback address a start with it off is refused (exit 2, naming the key and the
//! variable that set it) unless `server.allow_unauthenticated` says it is meant, and a
//! reloaded file that turns it off changes nothing until a restart.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use super::process::{Backend, Launch, Riptide, eventually, expect_error, json_body};
use super::reload_file::rewrite_config;

const BIN: &str = env!("CARGO_BIN_EXE_riptide");

fn anywhere() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

#[test]
fn off_on_a_public_address_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .env_clear()
        .env("ENABLE_MULTI_TENANCY", "false")
        .env("RIPTIDE_DATA_DIR", dir.path().join("data"))
        .args(["serve", "--listen", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .output()
        .expect("run riptide");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for named in [
        "persistence.tenant.enabled",
        "ENABLE_MULTI_TENANCY",
        "server.allow_unauthenticated",
        "0.0.0.0:0",
    ] {
        assert!(stderr.contains(named), "{named} not named:\n{stderr}");
    }
    assert!(
        !dir.path().join("data").exists(),
        "refused before opening anything"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_on_a_public_address_serves_when_allowed_explicitly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let launch = Launch::new(dir.path(), &Backend::Embedded)
        .listen(anywhere())
        .env("ENABLE_MULTI_TENANCY", "false")
        .env("RIPTIDE_ALLOW_UNAUTHENTICATED", "true");
    let rt = Riptide::start(&launch).await;
    let usage = json_body(rt.get("/usage").await, 200).await;
    assert_eq!(usage["tenant_id"], "default");
    rt.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_cannot_switch_it_off() {
    let dir = tempfile::tempdir().expect("temp dir");
    let launch = Launch::new(dir.path(), &Backend::Embedded)
        .set("persistence.state.enable_hot_reload", json!(true))
        .set("persistence.state.reload_debounce_ms", json!(50));
    let rt = Riptide::start(&launch).await;
    expect_error(rt.get("/usage").await, 401, "unauthorized").await;

    rewrite_config(dir.path(), |doc| {
        doc["persistence"]["tenant"]["enabled"] = false.into();
    });
    eventually(
        "the change reported as waiting",
        Duration::from_secs(15),
        || async {
            rt.log().lines().any(|line| {
                line.contains("take effect at the next restart")
                    && line.contains("persistence.tenant.enabled")
            })
        },
    )
    .await;
    expect_error(rt.get("/usage").await, 401, "unauthorized").await;
    let state = rt
        .admin_json(reqwest::Method::GET, "/admin/state/current", None, 200)
        .await;
    assert!(
        state.to_string().contains("persistence.tenant.enabled"),
        "listed as pending a restart: {state}"
    );
    rt.stop().await;
}
