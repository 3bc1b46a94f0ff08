//! Real traffic through a running service so that every metric it exposes has been
//! updated by the code path that owns it: cache operations of a tenant, a hot reload of
//! an edited file, a checkpoint, sessions spilling to disk and loading back, tenant rate
//! checks, usage and billing, an on-demand warm job, and HTTP requests. Scraped before
//! and after.
//!
//! The result is computed once per test binary and shared by the metrics and deploy
//! tests (the server is stopped before it is shared: only the scrapes are kept).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use riptide_api::config::{self, Overrides};
use riptide_persistence::state::sessions::{SessionCookie, SessionInit};
use riptide_persistence::tenant::{
    BillingPlan, ResourceUsageRecord, TenantConfig, TenantIsolationLevel, TenantOwner,
};
use tokio::sync::OnceCell;

use crate::metrics_scrape::{Exposition, scrape};
use crate::support::TestServer;

/// What the traffic left behind.
pub struct Exercise {
    /// The tenant the traffic ran as (unique in the test binary).
    pub tenant: String,
    /// The scrape before any traffic.
    pub before: Exposition,
    /// The scrape after all of it.
    pub after: Exposition,
    /// The raw text of `after`, for failure messages.
    pub after_text: String,
}

/// The shared run (see the module docs).
pub async fn exercised() -> &'static Exercise {
    static RUN: OnceCell<Exercise> = OnceCell::const_new();
    RUN.get_or_init(run).await
}

/// Sessions created against a 4 KiB memory tier: most of them spill.
const SESSIONS: usize = 12;

fn config_text(level: &str) -> String {
    format!(
        "log:\n  level: {level}\npersistence:\n  state:\n    enable_hot_reload: true\n    \
         reload_debounce_ms: 50\n    session_memory_limit_bytes: 4096\n"
    )
}

/// Replaces `file` the way editors and deploy tools do: write a temp file, rename it.
fn replace(file: &Path, text: &str) {
    let staged = file.with_extension("yml.tmp");
    std::fs::write(&staged, text).expect("write staged config");
    std::fs::rename(&staged, file).expect("rename over the config");
}

fn unique_tenant() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "metrics-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn run() -> Exercise {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).expect("mkdir");
    let file = conf.join("riptide.yml");
    std::fs::write(&file, config_text("info")).expect("write config");
    let data = dir.path().join("data");
    let env = |name: &str| (name == "RIPTIDE_DATA_DIR").then(|| data.clone().into_os_string());
    let cfg = config::load(Some(&file), &env, &Overrides::default()).expect("config loads");
    let server = TestServer::start_config(cfg, dir).await;
    let (before, _) = scrape(&server).await;

    let tenant = unique_tenant();
    create_tenant(&server, &tenant).await;
    cache_traffic(&server, &tenant).await;
    tenant_traffic(&server, &tenant).await;
    reload(&server, &file).await;
    server
        .state
        .state_manager
        .create_checkpoint()
        .await
        .expect("checkpoint");
    session_traffic(&server, &tenant).await;
    warming_traffic(&server, &tenant).await;
    http_traffic(&server, &tenant).await;

    let (after, after_text) = scrape(&server).await;
    server.stop().await.expect("clean shutdown");
    Exercise {
        tenant,
        before,
        after,
        after_text,
    }
}

async fn create_tenant(server: &TestServer, tenant: &str) {
    let config = TenantConfig {
        tenant_id: tenant.to_owned(),
        name: "Metrics Ltd".into(),
        quotas: HashMap::new(),
        isolation_level: TenantIsolationLevel::Standard,
        encryption_enabled: false,
        settings: HashMap::new(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    let owner = TenantOwner {
        id: "owner-1".into(),
        name: "Ada".into(),
        email: "ada@example.com".into(),
        organization: None,
    };
    server
        .state
        .tenants
        .create_tenant(config, owner, BillingPlan::Basic)
        .await
        .expect("tenant created");
}

/// Two sets, three hits, two misses, one delete, in the tenant's scope.
async fn cache_traffic(server: &TestServer, tenant: &str) {
    let cache = &server.state.cache;
    let ttl = Some(Duration::from_secs(60));
    for key in ["page:a", "page:b"] {
        cache
            .set(key, &format!("body of {key}"), Some(tenant), ttl, None)
            .await
            .expect("set");
    }
    for key in ["page:a", "page:b", "page:a", "page:x", "page:y"] {
        let _: Option<String> = cache.get(key, Some(tenant)).await.expect("get");
    }
    assert!(cache.delete("page:b", tenant).await.expect("delete"));
}

/// A rate check, a memory quota check, usage and a bill.
async fn tenant_traffic(server: &TestServer, tenant: &str) {
    let tenants = &server.state.tenants;
    tenants.check_rate(tenant, 1).await.expect("within rate");
    tenants
        .check_quota(tenant, "memory_bytes", 1)
        .await
        .expect("within memory quota");
    let usage = ResourceUsageRecord {
        operation_count: 3,
        data_bytes: 2_048,
        compute_time_ms: 12,
        storage_bytes: 0,
        timestamp: Utc::now(),
    };
    tenants
        .record_usage(tenant, "extract", usage)
        .await
        .expect("usage recorded");
    let period = Utc::now().format("%Y-%m").to_string();
    tenants.billing(tenant, &period).await.expect("bill");
}

/// Edits the watched file and waits until the reload is both visible as a new generation
/// and counted (one is published a moment before the other).
async fn reload(server: &TestServer, file: &Path) {
    let state = &server.state.state_manager;
    let before = state.current_state().await;
    replace(file, &config_text("debug"));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = state.current_state().await;
        // Both, as the generation and the counter are published one after the other.
        if now.reloads.applied > before.reloads.applied
            && now.config.generation > before.config.generation
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edit was not applied in 15 s: {:?}",
            now.reloads
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Sessions that overflow the memory tier, then a read of the oldest (spilled) one.
async fn session_traffic(server: &TestServer, tenant: &str) {
    let sessions = server.state.state_manager.sessions();
    let mut ids = Vec::new();
    for i in 0..SESSIONS {
        let init = SessionInit {
            cookies: vec![SessionCookie {
                name: "sid".into(),
                value: format!("{i}-{}", "c".repeat(500)),
                domain: None,
                path: None,
            }],
            headers: BTreeMap::new(),
            ttl: None,
        };
        ids.push(sessions.create(tenant, init).await.expect("session").id);
    }
    let figures = sessions.figures();
    assert!(figures.spills_total > 0, "{figures:?}");
    let oldest = sessions
        .get(tenant, &ids[0])
        .await
        .expect("get")
        .expect("the oldest session is still there");
    assert_eq!(oldest.id, ids[0]);
    let figures = sessions.figures();
    assert!(figures.loads_total > 0, "{figures:?}");
}

/// An on-demand warm job of one URL nothing answers (loopback port 9, which the
/// extraction guard refuses unless allowed): it finishes with the pair handled.
async fn warming_traffic(server: &TestServer, tenant: &str) {
    let pairs = [(
        Some(tenant.to_owned()),
        "http://127.0.0.1:9/page".to_owned(),
    )];
    let job = server
        .state
        .warming
        .warm_pairs(&pairs)
        .expect("warm job starts");
    let deadline = Instant::now() + Duration::from_secs(15);
    let view = loop {
        let view = job.view();
        if view.finished_at.is_some() {
            break view;
        }
        assert!(
            Instant::now() < deadline,
            "warm job not finished in 15 s: {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!((view.total, view.done), (1, 1), "{view:?}");
}

/// A matched route, a route with a path parameter (refused: no admin token), a path
/// that matches none, and a method a route does not allow.
async fn http_traffic(server: &TestServer, tenant: &str) {
    let admin = server.get(&format!("/admin/tenants/{tenant}")).await;
    assert_eq!(admin.status().as_u16(), 401);
    for _ in 0..3 {
        assert_eq!(server.get("/healthz").await.status().as_u16(), 200);
    }
    assert_eq!(server.get("/no/such/path/42").await.status().as_u16(), 404);
    let refused = server
        .client()
        .post(server.url("/healthz"))
        .send()
        .await
        .expect("POST reaches the server");
    assert_eq!(refused.status().as_u16(), 405);
}
