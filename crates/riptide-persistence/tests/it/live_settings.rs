//! Live settings through the reload path: a reloaded file becomes a configuration
//! generation, and its plans (rate limits, grants, prices, cache budgets), billing
//! switch, cache TTL and compression apply at once, without a restart. Multi-tenancy is
//! not live: a reload that turns it off waits for the next restart. An invalid file
//! changes nothing.

use std::path::Path;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use riptide_persistence::cache::CacheError;
use riptide_persistence::clock::{Clock, ManualClock, SharedClock};
use riptide_persistence::config::PersistenceSchema;
use riptide_persistence::config::{PersistenceConfig, PlanConfig, StateConfig, default_plans};
use riptide_persistence::keys::{KeyHash, Namespace, Scope, ScopeKeys};
use riptide_persistence::state::{ConfigReloader, ReloadOutcome};
use riptide_persistence::store::GcraDecision;
use riptide_persistence::tenant::metrics::TenantMetrics;
use riptide_persistence::tenant::{BillingPlan, Period, TenantError, TenantManager};
use riptide_persistence::{CacheConfig, PersistentCacheManager, TenantId};
use serde_json::json;

use super::support::{Backend, TestStore, cache, on_every_backend, store_with_clock, tenant};
use super::tenant_lifecycle::{owner, tenant_config};

on_every_backend!(
    a_reloaded_rate_limit_is_enforced_at_once,
    reloaded_compression_and_ttl_apply_to_new_writes,
);

/// A configuration directory, its reloader, and the tenant layer it applies to.
pub struct Live {
    dir: tempfile::TempDir,
    pub reloader: Arc<ConfigReloader>,
    pub tenants: TenantManager,
    _store: TestStore,
    _secrets: tempfile::TempDir,
}

impl Live {
    pub async fn start(b: Backend, clock: SharedClock, doc: &serde_json::Value) -> Self {
        let dir = tempfile::tempdir().expect("config dir");
        write(dir.path(), doc);
        let state = StateConfig {
            config_watch_paths: vec![dir.path().display().to_string()],
            ..StateConfig::default()
        };
        let reloader =
            ConfigReloader::new(&state, Arc::new(PersistenceSchema)).expect("initial config");
        let start = PersistenceSchema::parse(&reloader.current().value).expect("valid");
        let store = store_with_clock(b, clock.clone()).await;
        let secrets = tempfile::tempdir().expect("secrets dir");
        let tenants = TenantManager::with_store(
            store.store.clone(),
            riptide_persistence::config::TenancyConfig {
                secrets_dir: secrets.path().to_path_buf(),
                ..start.tenant
            },
            Arc::new(RwLock::new(TenantMetrics::new())),
            clock,
        )
        .await
        .expect("tenant manager");
        Self {
            dir,
            reloader,
            tenants,
            _store: store,
            _secrets: secrets,
        }
    }

    /// Rewrites the file, reloads, and hands an applied generation to the tenant layer
    /// the way the service does (prepare, then apply).
    pub async fn reload(&self, doc: &serde_json::Value) -> ReloadOutcome {
        write(self.dir.path(), doc);
        let outcome = self.reloader.reload();
        if let ReloadOutcome::Applied { .. } = outcome {
            let next = PersistenceSchema::parse(&self.reloader.current().value).expect("valid");
            self.tenants
                .prepare_live_settings(&next.tenant)
                .await
                .expect("prepared");
            self.tenants
                .apply_live_settings(&next.tenant)
                .expect("applied");
        }
        outcome
    }
}

fn write(dir: &Path, doc: &serde_json::Value) {
    // JSON is YAML: the document is written as it is.
    let staged = dir.join("riptide.yml.tmp");
    std::fs::write(&staged, doc.to_string()).expect("write config");
    std::fs::rename(&staged, dir.join("riptide.yml")).expect("rename config");
}

/// A document whose `free` plan is the default one changed by `change`.
fn with_free_plan(change: impl FnOnce(&mut PlanConfig)) -> serde_json::Value {
    let mut plans = default_plans();
    change(plans.get_mut(&BillingPlan::Free).expect("free plan"));
    json!({"persistence": {"tenant": {"plans": plans}}})
}

fn rate(opm: u64, burst: u64) -> serde_json::Value {
    with_free_plan(|p| {
        p.quotas.insert("operations_per_minute".into(), opm);
        p.burst = burst;
    })
}

fn denied(result: Result<GcraDecision, TenantError>) -> (u64, u64) {
    match result {
        Err(TenantError::QuotaExceeded {
            limit, retry_after, ..
        }) => (limit, retry_after.expect("retry after").as_millis() as u64),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

pub fn applied_live(outcome: &ReloadOutcome) {
    match outcome {
        ReloadOutcome::Applied {
            restart_required, ..
        } => assert!(restart_required.is_empty(), "{restart_required:?}"),
        other => panic!("expected an applied reload, got {other:?}"),
    }
}

async fn a_reloaded_rate_limit_is_enforced_at_once(b: Backend) {
    let clock = ManualClock::new(1_800_000_000_000);
    let live = Live::start(b, clock.clone(), &rate(60, 6)).await;
    let t = live
        .tenants
        .create_tenant(tenant_config(&tenant()), owner(), BillingPlan::Free)
        .await
        .expect("create");

    // 60 per minute, burst 6: six at once, then refused.
    for _ in 0..6 {
        live.tenants.check_rate(&t, 1).await.expect("within burst");
    }
    let (limit, _) = denied(live.tenants.check_rate(&t, 1).await);
    assert_eq!(limit, 60);

    // A higher plan rate: the very next request is admitted under it.
    applied_live(&live.reload(&rate(6_000, 1_000)).await);
    let decision = live.tenants.check_rate(&t, 1).await.expect("admitted");
    assert_eq!((decision.limit, decision.burst), (6_000, 1_000));
    assert_eq!(
        live.tenants.live_settings().plans[&BillingPlan::Free].quotas["operations_per_minute"],
        6_000
    );

    // A lower one: refused at once (the bucket holds ~6 s of the old rate, the new
    // tolerance is 2 s), and admitted again once the bucket has drained to fit.
    applied_live(&live.reload(&rate(60, 2)).await);
    let (limit, retry_ms) = denied(live.tenants.check_rate(&t, 1).await);
    assert_eq!(limit, 60);
    assert!((4_000..=6_000).contains(&retry_ms), "{retry_ms}");
    clock.advance_ms(retry_ms);
    let decision = live.tenants.check_rate(&t, 1).await.expect("drained");
    assert_eq!((decision.limit, decision.burst), (60, 2));
    denied(live.tenants.check_rate(&t, 1).await);

    // An invalid file (burst 0) is refused whole; the running plans stay.
    let outcome = live.reload(&rate(10_000, 0)).await;
    match &outcome {
        ReloadOutcome::Rejected { key, reason, .. } => {
            assert_eq!(key, "persistence.tenant.plans", "{reason}");
            assert!(reason.contains("burst"), "{reason}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    let (limit, _) = denied(live.tenants.check_rate(&t, 1).await);
    assert_eq!(limit, 60);
    assert_eq!(live.reloader.current().generation, 3);

    // The manager refuses an invalid section itself too.
    let mut bad = PersistenceConfig::default().tenant;
    bad.plans
        .get_mut(&BillingPlan::Free)
        .expect("free")
        .quotas
        .insert("operations_per_minute".into(), 0);
    assert!(live.tenants.apply_live_settings(&bad).is_err());
    assert_eq!(
        live.tenants.live_settings().plans[&BillingPlan::Free].burst,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_prices_budgets_and_switches_follow_the_live_settings() {
    let clock = ManualClock::new(1_800_000_000_000);
    let live = Live::start(Backend::Embedded, clock.clone(), &json!({})).await;
    let cache = Arc::new(
        PersistentCacheManager::with_store(live.tenants.store().clone(), CacheConfig::default())
            .expect("cache"),
    );
    live.tenants.attach_cache(cache.clone());
    let t = live
        .tenants
        .create_tenant(tenant_config(&tenant()), owner(), BillingPlan::Free)
        .await
        .expect("create");
    let period = Period::of_unix_ms(clock.now_ms())
        .expect("period")
        .to_string();
    // Random bytes: compression cannot shrink them under the budget below.
    let noise: Vec<u8> = (0..5_000).map(|_| rand::random::<u8>()).collect();

    // The default free plan: no cache:write, no base fee, a 10 MiB cache budget.
    assert!(matches!(
        live.tenants.validate_access(&t, "cache", "write").await,
        Err(TenantError::AccessDenied(_))
    ));
    let bill = live.tenants.billing(&t, &period).await.expect("bill");
    assert_eq!(bill.lines[0].amount_cents, 0);
    cache
        .set_bytes("k", Bytes::from(noise.clone()), &t, None, None)
        .await
        .expect("fits 10 MiB");

    let changed = with_free_plan(|p| {
        p.grants.push("cache:write".into());
        p.price.base_fee_cents = 123;
        p.quotas.insert("memory_bytes".into(), 2_000);
    });
    applied_live(&live.reload(&changed).await);
    live.tenants
        .validate_access(&t, "cache", "write")
        .await
        .expect("granted now");
    let bill = live.tenants.billing(&t, &period).await.expect("bill");
    assert_eq!(bill.lines[0].amount_cents, 123);
    let err = cache
        .set_bytes("k2", Bytes::from(noise), &t, None, None)
        .await
        .expect_err("over the new 2000-byte budget");
    assert!(
        matches!(err, CacheError::OverBudget { budget: 2_000, .. }),
        "{err}"
    );

    // Billing off applies; multi-tenancy off in the same file waits for a restart: it
    // is reported as such, tenants can still be created and no `default` appears.
    let mut doc = changed.clone();
    doc["persistence"]["tenant"]["enable_billing"] = json!(false);
    doc["persistence"]["tenant"]["enabled"] = json!(false);
    match live.reload(&doc).await {
        ReloadOutcome::Applied {
            restart_required, ..
        } => assert_eq!(restart_required, ["persistence.tenant.enabled"]),
        other => panic!("expected an applied reload, got {other:?}"),
    }
    assert!(matches!(
        live.tenants.billing(&t, &period).await,
        Err(TenantError::BillingDisabled)
    ));
    assert!(live.tenants.multi_tenancy_enabled());
    assert_eq!(
        live.reloader.current().pending_restart,
        ["persistence.tenant.enabled"]
    );
    live.tenants
        .create_tenant(tenant_config(&tenant()), owner(), BillingPlan::Free)
        .await
        .expect("multi-tenancy is still on");
    assert!(
        live.tenants
            .get_tenant("default")
            .await
            .expect("read")
            .is_none()
    );
}

fn stored_key(cache: &PersistentCacheManager, tenant: &str, key: &str) -> String {
    let scope = Scope::Tenant(TenantId::parse(tenant).expect("tenant id"));
    ScopeKeys::new(cache.store().key_prefix(), &scope)
        .entry(&Namespace::of_key(key), &KeyHash::of(key))
}

/// The envelope's compression byte and the entry's TTL in ms, as stored.
async fn stored(cache: &PersistentCacheManager, tenant: &str, key: &str) -> (u8, Option<u64>) {
    let raw = cache
        .store()
        .get(&stored_key(cache, tenant, key))
        .await
        .expect("read")
        .expect("stored");
    let entry = cache
        .get_entry(key, tenant)
        .await
        .expect("read")
        .expect("cached");
    (raw[3], entry.expires_ms.map(|e| e - entry.created_ms))
}

async fn reloaded_compression_and_ttl_apply_to_new_writes(b: Backend) {
    let (cache, _store) = cache(b, CacheConfig::default()).await;
    let t = tenant();
    let page: String = (0..1_000)
        .map(|i| format!("<p>Paragraph {i} about rivers and tides.</p>\n"))
        .collect();
    let put = |key: &'static str| {
        let (cache, t, page) = (&cache, &t, page.clone());
        async move {
            cache
                .set_bytes(key, Bytes::from(page), t, None, None)
                .await
                .expect("set");
        }
    };
    put("a").await;
    assert_eq!(
        stored(&cache, &t, "a").await,
        (1, Some(3_600_000)),
        "lz4, 1 h"
    );

    // The path a reload takes: the file's `cache` section, validated, applied.
    let doc = json!({"persistence": {"cache": {
        "compression_algorithm": "zstd", "zstd_level": 9, "default_ttl_seconds": 60,
        "l1_capacity_bytes": 1_024,
    }}});
    let next = PersistenceSchema::parse(&doc).expect("valid").cache;
    let changed = cache.apply_live_settings(&next).expect("applied");
    assert_eq!(
        changed,
        ["default_ttl_seconds", "compression_algorithm", "zstd_level"]
    );
    assert_eq!(
        cache.settings().l1_capacity_bytes,
        CacheConfig::default().l1_capacity_bytes
    );
    put("b").await;
    assert_eq!(
        stored(&cache, &t, "b").await,
        (2, Some(60_000)),
        "zstd, 60 s"
    );
    // What was written before keeps its own codec and expiry, and reads alike.
    assert_eq!(stored(&cache, &t, "a").await, (1, Some(3_600_000)));
    let a = cache.get_bytes("a", &t).await.expect("get").expect("hit");
    assert_eq!(a.as_ref(), page.as_bytes());

    let off = CacheConfig {
        enable_compression: false,
        default_ttl_seconds: 0,
        ..next.clone()
    };
    cache.apply_live_settings(&off).expect("applied");
    put("c").await;
    assert_eq!(stored(&cache, &t, "c").await, (0, None), "plain, no expiry");

    let high_threshold = CacheConfig {
        compression_threshold_bytes: page.len() + 1,
        ..next.clone()
    };
    cache.apply_live_settings(&high_threshold).expect("applied");
    put("d").await;
    assert_eq!(
        stored(&cache, &t, "d").await.0,
        0,
        "below the new threshold"
    );

    // Invalid: refused, nothing changes.
    let bad = CacheConfig {
        zstd_level: 99,
        default_ttl_seconds: 5,
        ..next.clone()
    };
    assert!(cache.apply_live_settings(&bad).is_err());
    assert_eq!(cache.settings().default_ttl_seconds, 60);

    // Warming off: refused before any loader is asked.
    let no_warming = CacheConfig {
        enable_warming: false,
        ..next
    };
    cache.apply_live_settings(&no_warming).expect("applied");
    assert!(!cache.warming_enabled());
    assert!(matches!(
        cache.warm_cache_for(&t, vec!["x".into()]).await,
        Err(CacheError::WarmingDisabled)
    ));
}

#[test]
fn the_reload_reports_no_restart_for_live_keys_only() {
    let dir = tempfile::tempdir().expect("dir");
    write(dir.path(), &json!({}));
    let state = StateConfig {
        config_watch_paths: vec![dir.path().display().to_string()],
        ..StateConfig::default()
    };
    let reloader = ConfigReloader::new(&state, Arc::new(PersistenceSchema)).expect("loads");
    write(
        dir.path(),
        &json!({"persistence": {
            "cache": {"default_ttl_seconds": 5, "l1_capacity_bytes": 0},
            "tenant": {"enabled": false, "record_cache_ttl_ms": 10},
        }}),
    );
    match reloader.reload() {
        ReloadOutcome::Applied {
            restart_required, ..
        } => assert_eq!(
            restart_required,
            [
                "persistence.cache.l1_capacity_bytes",
                "persistence.tenant.enabled",
                "persistence.tenant.record_cache_ttl_ms"
            ]
        ),
        other => panic!("expected an applied reload, got {other:?}"),
    }
}
