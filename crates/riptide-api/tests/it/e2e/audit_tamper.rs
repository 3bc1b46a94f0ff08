//! The audit log against someone with raw access to the real binary's Redis: the chain
//! length and head hash are on `/metrics` and move with every admin change; deleting the
//! head makes the next admin change fail closed (503 `audit_unavailable`, nothing
//! changed) and `verify` (API and `riptide audit --verify`) say so; deleting the last
//! records and rewinding the head is reported against the length once seen.

use reqwest::Method;
use riptide_persistence::tenant::audit::high_water::{HEAD_GAUGE, LENGTH_GAUGE, hash48};
use riptide_test_support::redis_server;
use serde_json::{Value, json};

use super::process::{Backend, Launch, Riptide, expect_error};
use crate::admin_common::tenant_body;

const BIN: &str = env!("CARGO_BIN_EXE_riptide");

async fn verify(rt: &Riptide) -> Value {
    rt.admin_json(Method::GET, "/admin/audit/verify", None, 200)
        .await
}

fn redis(args: &[&str]) -> String {
    redis_server().command(args).expect("redis command")
}

fn has(report: &Value, needle: &str) -> bool {
    report["problems"].as_array().is_some_and(|ps| {
        ps.iter()
            .any(|p| p.as_str().is_some_and(|p| p.contains(needle)))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_with_the_audit_keys_in_redis_is_reported_and_fails_closed() {
    let backend = Backend::shared_redis();
    let Backend::Redis { prefix, .. } = &backend else {
        unreachable!("Redis")
    };
    let base = format!("{prefix}:{{audit}}");
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = Riptide::start(&Launch::new(dir.path(), &backend)).await;

    // The metric follows the chain.
    rt.create_tenant("acme", "basic", json!({})).await;
    let before = verify(&rt).await;
    assert_eq!(before["ok"], true, "{before}");
    let length = before["length"].as_u64().expect("length");
    let metrics = rt.metrics().await;
    assert_eq!(metrics.value(LENGTH_GAUGE, &[]), length as f64);
    let head_hash = before["head_hash"].as_str().expect("hash").to_owned();
    assert_eq!(metrics.value(HEAD_GAUGE, &[]), hash48(&head_hash) as f64);
    rt.admin_json(
        Method::POST,
        "/admin/tenants/acme/suspend",
        Some(&json!({"reason": "moves the metric"})),
        200,
    )
    .await;
    let moved = rt.metrics().await;
    assert_eq!(moved.value(LENGTH_GAUGE, &[]), (length + 1) as f64);
    assert_ne!(moved.value(HEAD_GAUGE, &[]), hash48(&head_hash) as f64);
    let length = length + 1;

    // Delete the head: the next admin change is refused, and nothing changes.
    let head = redis(&["GET", &format!("{base}:head")]);
    redis(&["DEL", &format!("{base}:head")]);
    let refused = rt
        .admin(Method::POST, "/admin/tenants", Some(&tenant_body("beta")))
        .await;
    expect_error(refused, 503, "audit_unavailable").await;
    let missing = rt.admin(Method::GET, "/admin/tenants/beta", None).await;
    expect_error(missing, 404, "not_found").await;
    let report = verify(&rt).await;
    assert_eq!(report["ok"], false, "{report}");
    assert!(
        has(
            &report,
            &format!("head key is missing while records 1 to {length} exist")
        ),
        "{report}"
    );
    // The CLI says the same and exits 1.
    let out = std::process::Command::new(BIN)
        .args(["audit", "--verify", "--url", &rt.url("/")])
        .env_clear()
        .env("RIPTIDE_ADMIN_TOKEN", rt.admin_token())
        .output()
        .expect("run riptide audit");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("head key is missing"), "{text}");

    // Put the head back one record short, deleting the last record: rolled back.
    assert!(head.starts_with(&format!("{length} ")), "{head}");
    let previous: Value =
        serde_json::from_str(&redis(&["GET", &format!("{base}:rec:{}", length - 1)]))
            .expect("record JSON");
    let rewound = format!(
        "{} {}",
        length - 1,
        previous["hash"].as_str().expect("hash")
    );
    redis(&["SET", &format!("{base}:head"), &rewound]);
    redis(&["DEL", &format!("{base}:rec:{length}")]);
    let report = verify(&rt).await;
    assert_eq!(report["ok"], false, "{report}");
    assert!(has(&report, "the head was rolled back"), "{report}");
    assert!(
        has(
            &report,
            &format!("records {length} to {length} were deleted")
        ),
        "{report}"
    );
    let refused = rt
        .admin(Method::POST, "/admin/tenants/acme/resume", Some(&json!({})))
        .await;
    expect_error(refused, 503, "audit_unavailable").await;
    let acme = rt
        .admin_json(Method::GET, "/admin/tenants/acme", None, 200)
        .await;
    assert_eq!(acme["status"], "suspended", "nothing changed: {acme}");
    rt.stop().await;
}
