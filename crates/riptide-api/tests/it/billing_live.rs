//! Reloaded plans over HTTP (issue 10, item 8): the monthly `data_transfer_bytes` quota
//! and the admin tenant view follow a plan changed by `POST /admin/state/reload`, not
//! the plans the service started with.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use riptide_api::config::AppConfig;
use riptide_persistence::config::{PlanConfig, default_plans};
use riptide_persistence::tenant::BillingPlan;
use serde_json::json;

use crate::support::{TestServer, json_of, tenant_with_key};

/// Plenty for an admin token (at least 32 printable characters).
const ADMIN_TOKEN: &str = "billing-live-test-admin-token-0123456789";

/// A whole configuration whose `free` plan allows `transfer` response bytes a month
/// (and requests enough not to be rate limited here).
fn document(transfer: u64) -> String {
    json!({
        "log": {"level": "info"},
        "persistence": {"tenant": {"plans": plans(transfer)}},
    })
    .to_string()
}

/// The default plans, `free` allowing `transfer` bytes a month.
fn plans(transfer: u64) -> BTreeMap<BillingPlan, PlanConfig> {
    let mut plans = default_plans();
    let free = plans.get_mut(&BillingPlan::Free).expect("free plan");
    free.quotas.insert("data_transfer_bytes".into(), transfer);
    free.quotas.insert("operations_per_minute".into(), 6_000);
    free.burst = 1_000;
    plans
}

fn write(file: &Path, text: &str) {
    let staged = file.with_extension("yml.tmp");
    std::fs::write(&staged, text).expect("write staged config");
    std::fs::rename(&staged, file).expect("rename over the config");
}

struct Fixture {
    server: TestServer,
    file: std::path::PathBuf,
    key: String,
    _conf: tempfile::TempDir,
}

impl Fixture {
    async fn start(transfer: u64) -> Self {
        let conf = tempfile::tempdir().expect("config dir");
        let file = conf.path().join("riptide.yml");
        write(&file, &document(transfer));
        let dir = conf.path().display().to_string();
        let server = TestServer::start_with(|c: &mut AppConfig| {
            let state = &mut c.persistence.state;
            state.enable_hot_reload = false;
            state.config_watch_paths = vec![dir];
            c.admin.token = ADMIN_TOKEN.to_owned();
            // What the file says, as the service would have read it at startup.
            c.persistence.tenant.plans = plans(transfer);
        })
        .await;
        let key = tenant_with_key(&server, "acme", BillingPlan::Free, &[]).await;
        Self {
            server,
            file,
            key,
            _conf: conf,
        }
    }

    /// `GET /usage` as the tenant.
    async fn call(&self) -> reqwest::Response {
        self.server
            .client()
            .get(self.server.url("/usage"))
            .bearer_auth(&self.key)
            .header("x-tenant-id", "acme")
            .send()
            .await
            .expect("GET /usage reaches the server")
    }

    /// The admin view's `effective_quotas.data_transfer_bytes`.
    async fn admin_transfer_quota(&self) -> serde_json::Value {
        let response = self
            .server
            .client()
            .get(self.server.url("/admin/tenants/acme"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("GET reaches the server");
        json_of(response, 200).await["effective_quotas"]["data_transfer_bytes"].clone()
    }

    /// Rewrites the file and applies it with `POST /admin/state/reload`.
    async fn reload(&self, transfer: u64) {
        write(&self.file, &document(transfer));
        let response = self
            .server
            .client()
            .post(self.server.url("/admin/state/reload"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("POST reaches the server");
        let outcome = json_of(response, 200).await;
        assert_eq!(outcome["result"], "applied", "{outcome}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_quota_and_admin_view_follow_a_reloaded_plan() {
    // Started with a one-byte monthly transfer quota on `free`.
    let f = Fixture::start(1).await;
    assert_eq!(f.admin_transfer_quota().await, 1);
    assert_eq!(f.call().await.status(), 200, "nothing transferred yet");
    // Refused once the bytes of that answer are seen (the figure is read every second).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = f.call().await;
        if response.status() == 429 {
            let body = json_of(response, 429).await;
            assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
            break;
        }
        assert_eq!(response.status(), 200, "{response:?}");
        assert!(Instant::now() < deadline, "the 1-byte quota never refused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Raised by a reload: the next request is admitted, and the admin view says so.
    f.reload(1 << 40).await;
    assert_eq!(f.admin_transfer_quota().await, 1u64 << 40);
    for _ in 0..3 {
        assert_eq!(f.call().await.status(), 200);
    }

    // Lowered again: refused at once, without a restart.
    f.reload(1).await;
    assert_eq!(f.admin_transfer_quota().await, 1);
    let body = json_of(f.call().await, 429).await;
    assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");

    f.server.stop().await.expect("clean shutdown");
}
