//! The admin API on Redis, with two instances sharing it: one bootstrap between them,
//! tokens and tenant changes valid on both, invalidations and reloads reaching both.

use std::path::Path;
use std::time::{Duration, Instant};

use riptide_api::admin::TOKEN_FILE;
use riptide_api::config::AppConfig;
use riptide_persistence::tenant::TenantError;
use riptide_test_support::{redis_server, unique};
use serde_json::json;

use crate::admin_common::{Admin, expect_error};
use crate::support::{TestServer, in_dir, json_of};

/// Base64 of 32 bytes: instances sharing a Redis must share their secrets.
const SHARED_SECRET: &str = "c2hhcmVkLXNlY3JldC1vZi10aGUtMi1pbnN0YW5jZXM=";

/// Bound of what must reach the other instance within a second (the record and token
/// caches' TTL), with room for a loaded machine.
const SHORT: Duration = Duration::from_millis(2_500);

fn config(dir: &Path, conf: &Path, prefix: &str) -> AppConfig {
    let mut config = AppConfig::default();
    in_dir(&mut config, dir);
    let persistence = &mut config.persistence;
    persistence.redis.url = redis_server().url();
    persistence.redis.key_prefix = prefix.to_owned();
    persistence.tenant.api_key_pepper = SHARED_SECRET.to_owned();
    persistence.tenant.master_key = SHARED_SECRET.to_owned();
    persistence.state.config_watch_paths = vec![conf.display().to_string()];
    config.validate().expect("valid config");
    config
}

/// Waits up to `within` for `check`.
async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what}: not seen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_redis_share_the_admin_api() {
    let prefix = unique("adm").replace('-', "_");
    let dirs = [
        tempfile::tempdir().expect("temp"),
        tempfile::tempdir().expect("temp"),
    ];
    let conf = tempfile::tempdir().expect("temp");
    let file = conf.path().join("riptide.yml");
    std::fs::write(&file, "log:\n  level: info\n").expect("write config");

    // Both start at once: exactly one creates the first token.
    let (a, b) = tokio::join!(
        TestServer::start_config(
            config(dirs[0].path(), conf.path(), &prefix),
            tempfile::tempdir().expect("temp"),
        ),
        TestServer::start_config(
            config(dirs[1].path(), conf.path(), &prefix),
            tempfile::tempdir().expect("temp"),
        ),
    );
    let files: Vec<_> = dirs
        .iter()
        .map(|d| d.path().join(TOKEN_FILE))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(files.len(), 1, "one bootstrap: {files:?}");
    assert_eq!(a.state.admin_tokens.count().await.expect("count"), 1);
    let token = std::fs::read_to_string(&files[0])
        .expect("read")
        .trim()
        .to_owned();
    let on_a = Admin::with(&a, token.clone());
    let on_b = Admin::with(&b, token);
    json_of(on_b.get("/admin/tokens").await, 200).await;

    // A token made on A works on B; deleted on A, it stops on B within a second.
    let viewer = on_a.token_with_role("viewer", "viewer").await;
    let viewer_on_b = Admin::with(&b, viewer);
    json_of(viewer_on_b.get("/admin/state/current").await, 200).await;
    let listed = on_a.get_json("/admin/tokens", 200).await;
    let id = listed["tokens"][1]["token_id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        on_a.delete(&format!("/admin/tokens/{id}")).await.status(),
        204
    );
    // The admin token cache lives at most a second.
    eventually("the deleted token is refused on B", SHORT, || async {
        viewer_on_b.get("/admin/state/current").await.status() == 401
    })
    .await;

    // A tenant made and suspended on A is refused on B.
    on_a.create_tenant("acme").await;
    let key = on_a
        .post_json("/admin/tenants/acme/keys", &json!({}), 201)
        .await;
    let secret = key["secret"].as_str().expect("secret").to_owned();
    b.state
        .tenants
        .authenticate(&secret)
        .await
        .expect("works on B");
    on_a.post_json("/admin/tenants/acme/suspend", &json!({"reason": "r"}), 200)
        .await;
    eventually("B sees the suspension", SHORT, || async {
        matches!(
            b.state.tenants.authenticate(&secret).await,
            Err(TenantError::Suspended(_))
        )
    })
    .await;
    on_b.post_empty("/admin/tenants/acme/resume").await;
    let got = on_a.get_json("/admin/tenants/acme", 200).await;
    assert_eq!(got["status"], "active");

    // An invalidation on A reaches B's in-process copy.
    let ttl = Some(Duration::from_secs(600));
    a.state
        .cache
        .set("shared", &json!(1), Some("acme"), ttl, None)
        .await
        .expect("write");
    let read = b
        .state
        .cache
        .get::<serde_json::Value>("shared", Some("acme"))
        .await;
    assert_eq!(read.expect("read"), Some(json!(1)), "B holds it in L1 now");
    let removed = on_a
        .post_json(
            "/admin/cache/invalidate",
            &json!({"tenant_id": "acme", "key": "shared"}),
            200,
        )
        .await;
    assert_eq!(removed["removed"], 1);
    // Well within l1_max_staleness_ms (5 s): the sync message did it, not expiry.
    eventually("B drops its copy", SHORT, || async {
        b.state
            .cache
            .get::<serde_json::Value>("shared", Some("acme"))
            .await
            .expect("read")
            .is_none()
    })
    .await;

    // A reload requested on A happens on B too.
    std::fs::write(&file, "log:\n  level: debug\n").expect("edit config");
    let applied = json_of(on_a.post_empty("/admin/state/reload").await, 200).await;
    assert_eq!(applied["result"], "applied", "{applied}");
    eventually("B reloads", Duration::from_secs(10), || async {
        b.state
            .state_manager
            .current_state()
            .await
            .config
            .generation
            == 2
    })
    .await;
    let current = on_b.get_json("/admin/state/current", 200).await;
    assert_eq!(current["instance"]["store"], "redis");
    assert_eq!(
        current["instances"].as_array().map(Vec::len),
        Some(2),
        "{current}"
    );

    // Audit records of both instances are in one chain.
    let audit = on_b.get_json("/admin/audit?action=cache", 200).await;
    assert_eq!(audit["count"], 1);
    let verified = on_b.get_json("/admin/audit/verify", 200).await;
    assert_eq!(verified["ok"], true, "{verified}");
    expect_error(on_b.get("/admin/tenants/nobody").await, 404, "not_found").await;

    a.stop().await.expect("A stops");
    b.stop().await.expect("B stops");
}
