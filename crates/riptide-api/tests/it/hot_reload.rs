//! Live settings through the running service: editing the watched configuration file
//! changes a plan's rate limit for the next request (in process and over HTTP), an
//! invalid file keeps the running quota, and `POST /admin/state/reload` applies a new
//! file on every instance sharing the store.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use riptide_api::config::AppConfig;
use riptide_persistence::config::default_plans;
use riptide_persistence::tenant::{BillingPlan, TenantError, TenantManager};
use riptide_test_support::{redis_server, unique};
use serde_json::json;

use crate::support::{TestServer, json_of, tenant_with_key};
use crate::tenant_client::header_u64;

/// Plenty for an admin token (at least 32 printable characters).
const ADMIN_TOKEN: &str = "hot-reload-test-admin-token-0123456789";

/// A whole configuration document whose `free` plan allows `opm` operations per minute
/// with `burst` at once (all four plans must be listed; JSON is YAML).
fn document(opm: u64, burst: u64) -> String {
    let mut plans = default_plans();
    let free = plans.get_mut(&BillingPlan::Free).expect("free plan");
    free.quotas.insert("operations_per_minute".into(), opm);
    free.burst = burst;
    json!({
        "log": {"level": "info"},
        "persistence": {
            "state": {"reload_debounce_ms": 50},
            "tenant": {"plans": plans},
        },
    })
    .to_string()
}

/// Replaces `file` the way editors and deploy tools do: write a temp file, rename it.
fn replace(file: &Path, text: &str) {
    let staged = file.with_extension("yml.tmp");
    std::fs::write(&staged, text).expect("write staged config");
    std::fs::rename(&staged, file).expect("rename over the config");
}

/// A configuration directory holding `riptide.yml` with `text`.
fn config_dir(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("config dir");
    let file = dir.path().join("riptide.yml");
    std::fs::write(&file, text).expect("write config");
    (dir, file)
}

/// Watches (or just reads, without hot reload) `dir` as the configuration directory.
fn watching(config: &mut AppConfig, dir: &Path, hot_reload: bool) {
    let state = &mut config.persistence.state;
    state.enable_hot_reload = hot_reload;
    state.reload_debounce_ms = 50;
    state.config_watch_paths = vec![dir.display().to_string()];
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not seen within 15 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The free plan's rate and burst as the tenant layer applies them now.
fn free_rate(tenants: &TenantManager) -> (u64, u64) {
    let live = tenants.live_settings();
    let free = live.plan(BillingPlan::Free).expect("free plan");
    (free.quotas["operations_per_minute"], free.burst)
}

/// The limit a refused `check_rate` reports.
fn refused_limit(result: Result<impl std::fmt::Debug, TenantError>) -> u64 {
    match result {
        Err(TenantError::QuotaExceeded { limit, .. }) => limit,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// One tenant calling `GET /usage` (a tenant route behind the rate limit).
struct UsageCaller<'a> {
    server: &'a TestServer,
    tenant: &'static str,
    key: String,
}

impl UsageCaller<'_> {
    async fn call(&self) -> reqwest::Response {
        self.server
            .client()
            .get(self.server.url("/usage"))
            .bearer_auth(&self.key)
            .header("x-tenant-id", self.tenant)
            .send()
            .await
            .expect("GET /usage reaches the server")
    }

    /// Calls until refused (at most `max` calls): how many were admitted, and the
    /// `RateLimit-Limit` of the refusal.
    async fn admitted_until_refused(&self, max: usize) -> (usize, u64) {
        for admitted in 0..max {
            let response = self.call().await;
            if response.status() == 429 {
                let limit = header_u64(&response, "ratelimit-limit");
                let body = json_of(response, 429).await;
                assert_eq!(body["error"]["code"], "rate_limited", "{body}");
                return (admitted, limit);
            }
            assert_eq!(response.status(), 200, "{response:?}");
        }
        panic!("{max} calls were all admitted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_plan_quota_is_enforced_without_a_restart() {
    let (conf, file) = config_dir(&document(60, 6));
    let server = TestServer::start_with(|c| watching(c, conf.path(), true)).await;
    let tenants = server.state.tenants.clone();
    let caller = UsageCaller {
        server: &server,
        tenant: "acme",
        key: tenant_with_key(&server, "acme", BillingPlan::Free, &[]).await,
    };

    // The free plan as started: 60 per minute, 6 at once (a slow machine may refill one
    // or two in between).
    let (admitted, limit) = caller.admitted_until_refused(20).await;
    assert!((6..=8).contains(&admitted), "{admitted} admitted");
    assert_eq!(limit, 60);
    assert_eq!(refused_limit(tenants.check_rate("acme", 1).await), 60);

    // Raised in the file: the next requests are admitted under the new plan.
    replace(&file, &document(6_000, 1_000));
    eventually("the raised plan applies", || {
        free_rate(&tenants) == (6_000, 1_000)
    })
    .await;
    for _ in 0..20 {
        let response = caller.call().await;
        assert_eq!(response.status(), 200, "{response:?}");
        assert_eq!(header_u64(&response, "ratelimit-limit"), 6_000);
    }
    let decision = tenants.check_rate("acme", 1).await.expect("admitted");
    assert_eq!((decision.limit, decision.burst), (6_000, 1_000));

    // Lowered: one at a time, 60 per minute, from the next request.
    replace(&file, &document(60, 1));
    eventually("the lowered plan applies", || {
        free_rate(&tenants) == (60, 1)
    })
    .await;
    let (admitted, limit) = caller.admitted_until_refused(3).await;
    assert!(admitted <= 1, "{admitted} admitted");
    assert_eq!(limit, 60);

    // An invalid file (burst 0) is refused whole: the running quota stays.
    let state = server.state.state_manager.clone();
    let before = state.current_state().await;
    replace(&file, &document(6_000, 0));
    let mut report = state.current_state().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while report.reloads.errors == before.reloads.errors {
        assert!(
            Instant::now() < deadline,
            "the invalid file was not refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        report = state.current_state().await;
    }
    assert_eq!(report.config.generation, before.config.generation);
    let last = serde_json::to_string(&report.reloads.last).expect("serialize");
    assert!(last.contains("persistence.tenant.plans"), "{last}");
    assert_eq!(free_rate(&tenants), (60, 1));
    let (admitted, limit) = caller.admitted_until_refused(3).await;
    assert!(admitted <= 1, "{admitted} admitted");
    assert_eq!(limit, 60);
    let metrics = server.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("config_reload_total{") && l.contains("result=\"error\"")),
        "{metrics}"
    );

    server.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_reload_applies_the_new_file_on_every_instance() {
    let (conf, file) = config_dir(&document(60, 6));
    let secrets = tempfile::tempdir().expect("shared secrets dir");
    let (url, prefix) = (redis_server().url(), unique("hot-reload"));
    // Two instances on one Redis, each reading the same file, neither watching it.
    let instance = |c: &mut AppConfig| {
        watching(c, conf.path(), false);
        c.persistence.redis.url = url.clone();
        c.persistence.redis.key_prefix = prefix.clone();
        c.persistence.tenant.secrets_dir = secrets.path().to_owned();
        c.admin.token = ADMIN_TOKEN.to_owned();
    };
    let a = TestServer::start_with(|c| instance(c)).await;
    let b = TestServer::start_with(|c| instance(c)).await;
    let (on_a, on_b) = (a.state.tenants.clone(), b.state.tenants.clone());
    tenant_with_key(&a, "acme", BillingPlan::Free, &[]).await;
    for _ in 0..6 {
        on_b.check_rate("acme", 1).await.expect("within the burst");
    }
    assert_eq!(refused_limit(on_b.check_rate("acme", 1).await), 60);

    // The edit alone changes nothing: no instance watches the file.
    replace(&file, &document(6_000, 1_000));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(free_rate(&on_b), (60, 6));

    let response = a
        .client()
        .post(a.url("/admin/state/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("POST reaches the server");
    let outcome = json_of(response, 200).await;
    assert_eq!(outcome["result"], "applied", "{outcome}");
    eventually("instance A applies the reloaded file", || {
        free_rate(&on_a) == (6_000, 1_000)
    })
    .await;
    eventually("instance B applies the reloaded file", || {
        free_rate(&on_b) == (6_000, 1_000)
    })
    .await;
    let decision = on_b.check_rate("acme", 1).await.expect("admitted on B");
    assert_eq!((decision.limit, decision.burst), (6_000, 1_000));
    assert_eq!(b.state.state_manager.config_generation().generation, 2);

    b.stop().await.expect("clean shutdown of B");
    a.stop().await.expect("clean shutdown of A");
}
