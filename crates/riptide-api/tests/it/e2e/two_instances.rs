//! Two `riptide` binaries on one Redis, sharing their secrets through the environment
//! (`RIPTIDE_ADMIN_TOKEN`, `RIPTIDE_API_KEY_PEPPER`, `RIPTIDE_MASTER_KEY`): a tenant made
//! on A works on B, an invalidation on A empties B's in-process copy, usage metered on
//! both adds up, a suspension and a key revocation on A are enforced by B within a
//! couple of seconds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::process::{Backend, Launch, Riptide, eventually, expect_error, json_body, x_cache};
use crate::pages::Pages;

/// Base64 of 32 bytes: the API key pepper and the master key of both instances.
const SHARED_SECRET: &str = "ZTJlLXNoYXJlZC1zZWNyZXQtb2YtMi1pbnN0YW5jZXM=";

/// The admin token both instances accept.
const ADMIN_TOKEN: &str = "e2e-admin-token-shared-by-the-two-instances";

/// Bound for a change on A to be enforced on B: the record caches live 1 s (and pub/sub
/// is faster), with room for a loaded machine.
const PROPAGATION: Duration = Duration::from_millis(2_500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_redis_agree() {
    let pages = Pages::start().await;
    let backend = Backend::shared_redis();
    let dirs = [
        tempfile::tempdir().expect("temp dir"),
        tempfile::tempdir().expect("temp dir"),
    ];
    let launch = |dir: &std::path::Path| {
        Launch::new(dir, &backend)
            // Only an invalidation message can empty B's copy before this.
            .set("persistence.cache.l1_max_staleness_ms", json!(600_000))
            .env("RIPTIDE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RIPTIDE_API_KEY_PEPPER", SHARED_SECRET)
            .env("RIPTIDE_MASTER_KEY", SHARED_SECRET)
    };
    let (launch_a, launch_b) = (launch(dirs[0].path()), launch(dirs[1].path()));
    let (a, b) = tokio::join!(Riptide::start(&launch_a), Riptide::start(&launch_b));
    for dir in &dirs {
        let file = dir.path().join("data").join(riptide_api::admin::TOKEN_FILE);
        assert!(!file.exists(), "a configured token: no bootstrap");
    }

    // Made on A, served by B; the entry B stored, A reads from Redis.
    let acme = a.create_tenant("acme", "professional", json!({})).await;
    let page = pages.url("/pages/article.html");
    let on_b = b.extract(&acme, &page).await;
    assert_eq!(on_b.status(), 200);
    assert_eq!(x_cache(&on_b), "MISS");
    let body = on_b.bytes().await.expect("body");
    let on_a = a.extract(&acme, &page).await;
    assert_eq!(x_cache(&on_a), "HIT", "A reads B's entry from Redis");
    assert_eq!(on_a.bytes().await.expect("body"), body);
    assert_eq!(x_cache(&b.extract(&acme, &page).await), "HIT");
    assert_eq!(pages.hits("/pages/article.html"), 1);

    // An invalidation on A reaches B's in-process copy.
    let invalidated = a
        .admin_json(
            Method::POST,
            "/admin/cache/invalidate",
            Some(&json!({"tenant_id": "acme", "url": page})),
            200,
        )
        .await;
    assert_eq!(invalidated["removed"], 1, "{invalidated}");
    let polls = AtomicU64::new(0);
    let took = eventually("B's next extract misses", PROPAGATION, || async {
        polls.fetch_add(1, Ordering::Relaxed);
        x_cache(&b.extract(&acme, &page).await) == "MISS"
    })
    .await;
    println!("invalidation on A seen by B's L1 after {took:?}");
    assert_eq!(pages.hits("/pages/article.html"), 2);

    // Usage metered on both instances adds up in the store: each instance reads what
    // the other flushed (every 100 ms) plus its own.
    let extracts = 3 + polls.load(Ordering::Relaxed);
    for (name, instance) in [("A", &a), ("B", &b)] {
        eventually(
            &format!("{name} sees both instances' usage"),
            PROPAGATION,
            || async {
                let usage = instance.admin_usage("acme").await;
                usage["operations"] == extracts && usage["by_operation"]["extract"] == extracts
            },
        )
        .await;
    }

    // A suspension on A is enforced by B.
    let suspend = json!({"reason": "e2e"});
    a.admin_json(
        Method::POST,
        "/admin/tenants/acme/suspend",
        Some(&suspend),
        200,
    )
    .await;
    let took = eventually("B refuses the suspended tenant", PROPAGATION, || async {
        b.get_as(&acme, "/usage").await.status() == 403
    })
    .await;
    println!("suspension on A enforced by B after {took:?}");
    expect_error(b.get_as(&acme, "/usage").await, 403, "tenant_suspended").await;
    // Resumed on B, A serves it again.
    b.admin_json(Method::POST, "/admin/tenants/acme/resume", None, 200)
        .await;
    eventually("A serves the resumed tenant", PROPAGATION, || async {
        a.get_as(&acme, "/usage").await.status() == 200
    })
    .await;

    // A key made on A works on B; revoked on A, B refuses it.
    let second = a.create_key("acme").await;
    json_body(b.get_as(&second, "/usage").await, 200).await;
    let revoke = format!("/admin/tenants/acme/keys/{}", second.key_id);
    assert_eq!(a.admin(Method::DELETE, &revoke, None).await.status(), 204);
    let took = eventually("B refuses the revoked key", PROPAGATION, || async {
        b.get_as(&second, "/usage").await.status() == 401
    })
    .await;
    println!("revocation on A enforced by B after {took:?}");
    expect_error(b.get_as(&second, "/usage").await, 401, "unauthorized").await;
    json_body(b.get_as(&acme, "/usage").await, 200).await;

    let (a, b) = tokio::join!(a.stop(), b.stop());
    drop((a, b));
}
