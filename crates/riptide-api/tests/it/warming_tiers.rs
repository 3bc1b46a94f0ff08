//! The automatic warming tiers: after a restart over the same data dir, the startup tier
//! warms what was popular before (and `/extract` then answers `HIT` without a fetch),
//! while `/readyz` is ready at once; the background tier runs on the instance holding the
//! lease only (two services on one Redis) and warms what both instances counted.

use std::time::{Duration, Instant};

use riptide_api::config::AppConfig;
use riptide_persistence::TenantId;
use riptide_persistence::config::SyncConfig;
use riptide_persistence::tenant::BillingPlan;
use riptide_test_support::{redis_server, unique};
use serde_json::json;

use crate::pages::Pages;
use crate::support::{TestServer, allow_loopback, in_dir, json_of, tenant_with_key};
use crate::tenant_client::{start, x_cache};
use crate::warming_jobs::startup_finished;

#[tokio::test]
async fn a_restarted_service_warms_what_was_popular_before() {
    let pages = Pages::start().await;
    let root = tempfile::tempdir().expect("temp dir");
    let data = root.path().join("data");
    let config = || {
        let mut c = AppConfig::default();
        in_dir(&mut c, &data);
        allow_loopback(&mut c);
        c.warming.startup_top_n = 2;
        c
    };
    let scratch = || tempfile::tempdir().expect("temp dir");
    let (article, second, third) = (
        pages.url("/pages/article.html"),
        pages.url("/pages/second.html"),
        pages.url("/status/200"),
    );

    let first = TestServer::start_config(config(), scratch()).await;
    startup_finished(&first).await;
    let key = tenant_with_key(&first, "acme", BillingPlan::Professional, &[]).await;
    let acme = TenantId::parse("acme").expect("id");
    for (url, times) in [(&article, 5), (&second, 3), (&third, 1)] {
        for _ in 0..times {
            first.state.warming.record_access(&acme, url);
        }
    }
    // Shutdown persists the counts; nothing was fetched or cached.
    first.stop().await.expect("clean shutdown");
    assert_eq!(pages.hits("/pages/article.html"), 0);

    let second_run = TestServer::start_config(config(), scratch()).await;
    assert_eq!(second_run.get("/readyz").await.status(), 200);
    let startup = startup_finished(&second_run).await;
    assert_eq!(
        (startup.total, startup.warmed, startup.failed),
        (2, 2, 0),
        "{startup:?}"
    );

    let extract = |url: String| {
        second_run
            .client()
            .post(second_run.url("/extract"))
            .bearer_auth(&key)
            .header("x-tenant-id", "acme")
            .json(&json!({ "url": url }))
            .send()
    };
    for url in [&article, &second] {
        let response = extract(url.clone()).await.expect("extract");
        assert_eq!(x_cache(&response), "HIT", "{url}");
    }
    assert_eq!(pages.hits("/pages/article.html"), 1);
    assert_eq!(pages.hits("/pages/second.html"), 1);
    assert_eq!(pages.hits("/status/200"), 0, "only the top 2 are warmed");

    // Visible in the state report and in the metrics.
    // The bootstrap token is in the data dir the two runs share.
    let token = std::fs::read_to_string(data.join(riptide_api::admin::TOKEN_FILE))
        .expect("admin token")
        .trim()
        .to_owned();
    let current = second_run
        .client()
        .get(second_run.url("/admin/state/current"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("state");
    let current = json_of(current, 200).await;
    assert_eq!(current["warming"]["startup"]["state"], "done", "{current}");
    assert_eq!(current["warming"]["startup"]["warmed"], 2);
    assert_eq!(current["warming"]["popularity"]["loaded"], true);
    let metrics = second_run
        .get("/metrics")
        .await
        .text()
        .await
        .expect("metrics");
    let series = |name: &str, labels: &[&str]| {
        metrics.lines().any(|line| {
            line.starts_with(&format!("{name}{{")) && labels.iter().all(|l| line.contains(l))
        })
    };
    assert!(
        series(
            "cache_warming_urls_total",
            &["tier=\"startup\"", "result=\"warmed\""]
        ),
        "{metrics}"
    );
    assert!(
        series("cache_warming_progress", &["tier=\"startup\""]),
        "{metrics}"
    );
    assert!(
        series(
            "cache_warming_runs_total",
            &["tier=\"startup\"", "result=\"done\""]
        ),
        "{metrics}"
    );
    second_run.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn background_warming_runs_on_the_lease_holder_only() {
    let pages = Pages::start().await;
    let prefix = unique("rt-warm");
    // Both instances share the store, so they share the secrets too.
    let secret = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
    let adjust = |c: &mut AppConfig| {
        c.persistence.redis.url = redis_server().url();
        c.persistence.redis.key_prefix = prefix.clone();
        c.persistence.tenant.master_key = secret.into();
        c.persistence.tenant.api_key_pepper = secret.into();
        c.persistence.sync = SyncConfig {
            heartbeat_interval_ms: 50,
            instance_ttl_ms: 250,
            lease_ttl_ms: 300,
        };
        c.warming.interval_seconds = 1;
        c.warming.persist_interval_ms = 100;
    };
    let one = start(adjust).await;
    let two = start(adjust).await;
    tenant_with_key(&one, "acme", BillingPlan::Professional, &[]).await;
    let acme = TenantId::parse("acme").expect("id");
    // Each instance counts a different page; the store adds them up.
    one.state
        .warming
        .record_access(&acme, &pages.url("/pages/article.html"));
    two.state
        .warming
        .record_access(&acme, &pages.url("/pages/second.html"));

    let deadline = Instant::now() + Duration::from_secs(15);
    while pages.hits("/pages/article.html") == 0 || pages.hits("/pages/second.html") == 0 {
        assert!(
            Instant::now() < deadline,
            "the background tier did not warm both pages"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A page is hit when its fetch starts; the run is counted once its pages are
    // extracted and stored.
    let finished = |s: &riptide_api::warming::status::WarmingStatus| {
        s.background
            .last_run
            .as_ref()
            .is_some_and(|r| r.finished_at.is_some())
    };
    while !finished(&one.state.warming.status()) && !finished(&two.state.warming.status()) {
        assert!(
            Instant::now() < deadline,
            "the background run did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (a, b) = (one.state.warming.status(), two.state.warming.status());
    let (holder, other) = if a.background.lease_holder {
        (a, b)
    } else {
        (b, a)
    };
    assert!(
        holder.background.lease_holder,
        "one instance holds the lease"
    );
    assert!(!other.background.lease_holder);
    assert!(holder.background.runs >= 1, "{holder:?}");
    assert_eq!(other.background.runs, 0, "{other:?}");
    let last = holder.background.last_run.expect("a run");
    assert!(last.warmed + last.fresh >= 1, "{last:?}");
    // Warmed once, by one instance.
    assert_eq!(pages.hits("/pages/article.html"), 1);
    assert_eq!(pages.hits("/pages/second.html"), 1);
    one.stop().await.expect("clean shutdown");
    two.stop().await.expect("clean shutdown");
}
