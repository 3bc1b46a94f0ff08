//! Billing that does not rewrite history (issue 10, item 8), on every backend: a closed
//! month keeps the plan and prices in force when it ended, whatever is reloaded or
//! changed afterwards, and its frozen bill is the same on every instance; storage is
//! not a billing meter; concurrent storage charges never overshoot the quota.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{TimeZone, Utc};
use riptide_persistence::clock::{Clock, ManualClock};
use riptide_persistence::config::{MeterPrice, PersistenceConfig, default_plans};
use riptide_persistence::tenant::metrics::TenantMetrics;
use riptide_persistence::tenant::{
    BillingPlan, ResourceUsageRecord, TenantError, TenantManager, TenantUpdate,
};
use serde_json::json;

use super::live_settings::{Live, applied_live};
use super::support::{Backend, on_every_backend, tenant};
use super::tenant_lifecycle::{manager, owner, tenant_config};

on_every_backend!(
    a_closed_month_keeps_the_prices_and_plan_it_ended_with,
    concurrent_storage_charges_never_overshoot_the_quota,
);

const MINUTE_MS: u64 = 60_000;
/// `tenant.bill_freeze_delay_ms` of these tests.
const FREEZE_DELAY_MS: u64 = 10 * MINUTE_MS;

fn ms(y: i32, m: u32, d: u32, h: u32) -> u64 {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .expect("valid time")
        .timestamp_millis() as u64
}

/// A configuration whose `basic` plan has base fee `base_cents` and costs `per_1k` cents
/// per started 1000 operations beyond 100.
fn doc(base_cents: u64, per_1k: u64) -> serde_json::Value {
    let mut plans = default_plans();
    let basic = plans.get_mut(&BillingPlan::Basic).expect("basic plan");
    basic.price.base_fee_cents = base_cents;
    basic.price.meters.insert(
        "operations".into(),
        MeterPrice {
            included: 100,
            unit: 1_000,
            price_cents: per_1k,
        },
    );
    json!({"persistence": {"tenant": {
        "bill_freeze_delay_ms": FREEZE_DELAY_MS,
        "plans": plans,
    }}})
}

fn ops(n: u64, at_ms: u64) -> ResourceUsageRecord {
    ResourceUsageRecord {
        operation_count: n,
        data_bytes: 0,
        compute_time_ms: 0,
        storage_bytes: 0,
        timestamp: chrono::DateTime::from_timestamp_millis(at_ms as i64).expect("time"),
    }
}

async fn a_closed_month_keeps_the_prices_and_plan_it_ended_with(b: Backend) {
    let clock = ManualClock::new(ms(2026, 11, 15, 12));
    let live = Live::start(b, clock.clone(), &doc(1_000, 7)).await;
    let tenants = &live.tenants;
    let t = tenants
        .create_tenant(tenant_config(&tenant()), owner(), BillingPlan::Basic)
        .await
        .expect("create");
    // 2_100 operations in November: 2_000 over the 100 included → 2 blocks.
    tenants
        .record_usage(&t, "api_request", ops(2_100, clock.now_ms()))
        .await
        .expect("record");
    tenants.flush_usage().await.expect("flush");
    let open = tenants.billing(&t, "2026-11").await.expect("bill");
    assert_eq!((open.total_cents, open.frozen_at), (1_000 + 2 * 7, None));

    // November ends; straight away (no bill read yet) the prices change in a reload.
    clock.advance_ms(ms(2026, 12, 1, 0) + 1_000 - clock.now_ms());
    applied_live(&live.reload(&doc(5_000, 100)).await);
    let closed = tenants.billing(&t, "2026-11").await.expect("bill");
    assert_eq!(closed.total_cents, 1_014, "{closed:?}");
    assert_eq!(closed.frozen_at, None, "frozen only after the delay");
    // The open month uses the new prices.
    tenants
        .record_usage(&t, "api_request", ops(1_100, clock.now_ms()))
        .await
        .expect("record");
    let december = tenants.billing(&t, "2026-12").await.expect("bill");
    assert_eq!(december.total_cents, 5_000 + 100);

    // Late November usage from another instance still counts until the freeze.
    tenants
        .record_usage(&t, "api_request", ops(1_000, ms(2026, 11, 30, 23)))
        .await
        .expect("late record");
    tenants.flush_usage().await.expect("flush");
    assert_eq!(
        tenants
            .billing(&t, "2026-11")
            .await
            .expect("bill")
            .total_cents,
        1_000 + 3 * 7
    );

    // Past the delay the bill is frozen, stamped, and never moves again: not for usage
    // recorded later, a new price, a plan change, or another instance with other prices.
    clock.advance_ms(FREEZE_DELAY_MS);
    let frozen = tenants.billing(&t, "2026-11").await.expect("bill");
    assert_eq!(frozen.total_cents, 1_021);
    assert_eq!(frozen.plan, BillingPlan::Basic);
    assert!(frozen.frozen_at.is_some(), "{frozen:?}");
    tenants
        .record_usage(&t, "api_request", ops(50_000, ms(2026, 11, 30, 23)))
        .await
        .expect("later record");
    tenants.flush_usage().await.expect("flush");
    applied_live(&live.reload(&doc(9_000, 900)).await);
    tenants
        .update_tenant(
            &t,
            TenantUpdate {
                plan: Some(BillingPlan::Professional),
                ..TenantUpdate::default()
            },
        )
        .await
        .expect("plan change");
    assert_eq!(tenants.billing(&t, "2026-11").await.expect("bill"), frozen);
    let december = tenants.billing(&t, "2026-12").await.expect("bill");
    assert_eq!(december.plan, BillingPlan::Professional);

    let secrets = tempfile::tempdir().expect("secrets");
    let mut other_config = PersistenceConfig::default().tenant;
    other_config.secrets_dir = secrets.path().to_owned();
    let other = TenantManager::with_store(
        tenants.store().clone(),
        other_config,
        Arc::new(RwLock::new(TenantMetrics::new())),
        clock.clone(),
    )
    .await
    .expect("second instance");
    assert_eq!(other.billing(&t, "2026-11").await.expect("bill"), frozen);
    other.shutdown().await;
    tenants.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_change_after_the_month_ended_does_not_reach_it() {
    let clock = ManualClock::new(ms(2026, 11, 15, 12));
    let live = Live::start(Backend::Embedded, clock.clone(), &doc(1_000, 7)).await;
    let tenants = &live.tenants;
    let t = tenants
        .create_tenant(tenant_config(&tenant()), owner(), BillingPlan::Basic)
        .await
        .expect("create");
    clock.advance_ms(ms(2026, 12, 1, 0) + 1_000 - clock.now_ms());
    // Changed before any read of November's bill and before it is frozen.
    tenants
        .update_tenant(
            &t,
            TenantUpdate {
                plan: Some(BillingPlan::Enterprise),
                ..TenantUpdate::default()
            },
        )
        .await
        .expect("plan change");
    clock.advance_ms(FREEZE_DELAY_MS);
    let november = tenants.billing(&t, "2026-11").await.expect("bill");
    assert_eq!(november.plan, BillingPlan::Basic);
    assert_eq!(november.total_cents, 1_000);
    let december = tenants.billing(&t, "2026-12").await.expect("bill");
    assert_eq!(december.plan, BillingPlan::Enterprise);
    tenants.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_is_not_a_billing_meter() {
    let mut doc = doc(1_000, 7);
    doc["persistence"]["tenant"]["plans"]["basic"]["price"]["meters"]["storage_bytes"] =
        json!({"included": 0, "unit": 1, "price_cents": 1});
    let config: PersistenceConfig =
        serde_json::from_value(doc["persistence"].clone()).expect("parses");
    let err = config.validate().expect_err("a storage price is refused");
    assert!(err.to_string().contains("storage_bytes"), "{err}");
}

async fn concurrent_storage_charges_never_overshoot_the_quota(b: Backend) {
    let (m, _store, _dir) = manager(b, ManualClock::new(ms(2026, 11, 15, 12))).await;
    let mut cfg = tenant_config("");
    cfg.quotas = HashMap::from([("storage_bytes".into(), 1_000)]);
    let id = m
        .create_tenant(cfg, owner(), BillingPlan::Basic)
        .await
        .expect("create");
    let m = Arc::new(m);
    for round in 0..5 {
        let writers: Vec<_> = (0..24)
            .map(|_| {
                let (m, id) = (m.clone(), id.clone());
                tokio::spawn(async move { m.adjust_storage(&id, 100).await })
            })
            .collect();
        let mut admitted = 0u64;
        for w in writers {
            match w.await.expect("writer task") {
                Ok(_) => admitted += 1,
                Err(TenantError::QuotaExceeded { limit: 1_000, .. }) => {}
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        let held = m.adjust_storage(&id, 0).await.expect("read");
        assert!(
            admitted <= 10,
            "round {round}: {admitted} charges of 100 admitted"
        );
        assert_eq!(held, admitted * 100, "round {round}");
        m.adjust_storage(&id, -(held as i64))
            .await
            .expect("release");
    }
    m.shutdown().await;
}
