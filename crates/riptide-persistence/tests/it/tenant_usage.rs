//! Usage metering, flushing and billing (issue 3, items 4 and 10), on every backend.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use riptide_persistence::clock::{ManualClock, SharedClock, system_clock};
use riptide_persistence::config::{RedisConfig, TenancyConfig, default_plans};
use riptide_persistence::keys::{Scope, ScopeKeys};
use riptide_persistence::store::redis::RedisStore;
use riptide_persistence::tenant::usage::MAX_OPERATION_NAMES;
use riptide_persistence::tenant::{
    BillingPlan, Period, Recorded, ResourceUsageRecord, TenantError, TenantMetrics, UsageMeter,
    compute_bill,
};
use riptide_persistence::{SharedStore, TenantId};
use tokio_util::sync::CancellationToken;

use crate::support::{Backend, on_every_backend, store, tenant};

fn tid() -> TenantId {
    TenantId::parse(&tenant()).expect("unique ids are valid")
}

fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, s)
        .single()
        .expect("valid time")
}

fn nov() -> DateTime<Utc> {
    at(2026, 11, 15, 12, 0, 0)
}

fn rec(ops: u64, data: u64, ms: u64, storage: u64, ts: DateTime<Utc>) -> ResourceUsageRecord {
    ResourceUsageRecord {
        operation_count: ops,
        data_bytes: data,
        compute_time_ms: ms,
        storage_bytes: storage,
        timestamp: ts,
    }
}

fn meter_with(store: SharedStore, clock: SharedClock, cfg: &TenancyConfig) -> Arc<UsageMeter> {
    UsageMeter::new(
        store,
        clock,
        cfg,
        Arc::new(RwLock::new(TenantMetrics::new())),
    )
}

fn meter(store: SharedStore) -> Arc<UsageMeter> {
    meter_with(store, system_clock(), &TenancyConfig::default())
}

/// The stored counters of a tenant-month, read around the meter.
async fn stored(store: &SharedStore, t: &TenantId, period: &str) -> Vec<(String, i64)> {
    let keys = ScopeKeys::new(store.key_prefix(), &Scope::Tenant(t.clone()));
    store
        .counters_get(&keys.record(&format!("usage:{period}")))
        .await
        .expect("read stored usage")
}

fn field(counters: &[(String, i64)], name: &str) -> i64 {
    counters
        .iter()
        .find(|(f, _)| f == name)
        .map_or(0, |(_, v)| *v)
}

on_every_backend!(
    recorded_usage_is_visible_before_and_after_flush,
    months_follow_record_timestamps,
    concurrent_recorders_sum_exactly,
    lost_replies_are_not_counted_twice,
    buffer_is_bounded_and_drops_are_counted,
    flusher_flushes_on_its_own_and_on_cancel,
    operation_names_are_capped_across_flushes_and_instances,
    billing_of_a_recorded_month_matches_hand_computation,
    purge_deletes_every_month_of_one_tenant_only,
);

async fn recorded_usage_is_visible_before_and_after_flush(backend: Backend) {
    let ts = store(backend).await;
    let clock = ManualClock::new(nov().timestamp_millis() as u64);
    let m = meter_with(ts.store.clone(), clock, &TenancyConfig::default());
    let t = tid();
    for _ in 0..3 {
        let r = m
            .record(&t, "api_request", &rec(1, 100, 5, 7, nov()))
            .expect("record");
        assert_eq!(r, Recorded::Buffered);
    }
    m.record(&t, "extract", &rec(2, 1_000, 50, 0, nov()))
        .expect("record");
    m.record_cache(&t, 4, 1).expect("cache counts");

    let check = |u: &riptide_persistence::tenant::UsageSummary| {
        assert_eq!(u.period, "2026-11");
        assert_eq!(
            (u.operations, u.data_bytes, u.compute_ms, u.storage_bytes),
            (5, 1_300, 65, 21)
        );
        assert_eq!((u.cache_hits, u.cache_misses), (4, 1));
        assert_eq!(u.by_operation.get("api_request"), Some(&3));
        assert_eq!(u.by_operation.get("extract"), Some(&2));
        assert_eq!(u.by_operation.len(), 2);
    };
    check(&m.usage(&t, "2026-11").await.expect("usage before flush"));
    assert_eq!(m.pending(), 1);
    assert!(
        stored(&ts.store, &t, "2026-11").await.is_empty(),
        "nothing written before a flush"
    );

    let report = m.flush().await.expect("flush");
    assert_eq!(
        (
            report.applied,
            report.already_applied,
            report.failed,
            report.pending
        ),
        (1, 0, 0, 0)
    );
    check(&m.usage(&t, "2026-11").await.expect("usage after flush"));
    let raw = stored(&ts.store, &t, "2026-11").await;
    assert_eq!(field(&raw, "operations"), 5);
    assert_eq!(field(&raw, "op:api_request"), 3);

    // A second meter (another instance) reads the same stored usage.
    let other = meter(ts.store.clone());
    check(
        &other
            .usage(&t, "2026-11")
            .await
            .expect("usage from another instance"),
    );
    // Nothing new: an empty flush writes nothing.
    let again = m.flush().await.expect("empty flush");
    assert_eq!((again.applied, again.pending), (0, 0));
    check(&m.usage(&t, "2026-11").await.expect("usage unchanged"));
    assert_eq!(
        m.months(&t).await.expect("months"),
        [Period::parse("2026-11").expect("p")]
    );
}

async fn months_follow_record_timestamps(backend: Backend) {
    let ts = store(backend).await;
    let m = meter(ts.store.clone());
    let t = tid();
    m.record(
        &t,
        "api_request",
        &rec(1, 10, 0, 0, at(2026, 11, 30, 23, 59, 59)),
    )
    .expect("nov");
    m.record(
        &t,
        "api_request",
        &rec(2, 20, 0, 0, at(2026, 12, 1, 0, 0, 0)),
    )
    .expect("dec");
    m.record(
        &t,
        "api_request",
        &rec(4, 40, 0, 0, at(2026, 12, 31, 23, 59, 59)),
    )
    .expect("dec");
    for phase in ["before flush", "after flush"] {
        let n = m.usage(&t, "2026-11").await.expect("nov usage");
        let d = m.usage(&t, "2026-12").await.expect("dec usage");
        let o = m.usage(&t, "2026-10").await.expect("oct usage");
        assert_eq!((n.operations, n.data_bytes), (1, 10), "{phase}");
        assert_eq!((d.operations, d.data_bytes), (6, 60), "{phase}");
        assert_eq!((o.operations, o.period.as_str()), (0, "2026-10"), "{phase}");
        if phase == "before flush" {
            assert_eq!(m.pending(), 2);
            assert_eq!(m.flush().await.expect("flush").applied, 2);
        }
    }
    let months: Vec<String> = m
        .months(&t)
        .await
        .expect("months")
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(months, ["2026-11", "2026-12"]);
}

async fn concurrent_recorders_sum_exactly(backend: Backend) {
    const TASKS: u64 = 8;
    const RECORDS: u64 = 1_000;
    let ts = store(backend).await;
    let m = meter(ts.store.clone());
    let t = tid();
    // Flushes race with the recorders the whole time.
    let cancel = CancellationToken::new();
    let flusher = m.spawn_flusher(Duration::from_millis(5), cancel.clone());
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let (m, t) = (m.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let op = format!("task-{i}");
            for n in 0..RECORDS {
                m.record(&t, &op, &rec(1, 3, 2, 1, nov())).expect("record");
                m.record_cache(&t, 1, 0).expect("cache");
                if n % 100 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("recorder task");
    }
    cancel.cancel();
    flusher.await.expect("flusher task");
    assert_eq!(m.pending(), 0, "the flush on cancel wrote everything");

    let total = TASKS * RECORDS;
    let raw = stored(&ts.store, &t, "2026-11").await;
    assert_eq!(field(&raw, "operations") as u64, total);
    assert_eq!(field(&raw, "data_bytes") as u64, 3 * total);
    assert_eq!(field(&raw, "compute_ms") as u64, 2 * total);
    assert_eq!(field(&raw, "storage_bytes") as u64, total);
    let u = meter(ts.store.clone())
        .usage(&t, "2026-11")
        .await
        .expect("usage");
    assert_eq!(u.operations, total);
    for i in 0..TASKS {
        assert_eq!(
            u.by_operation.get(&format!("task-{i}")),
            Some(&RECORDS),
            "task-{i}"
        );
    }
    // Cache counts land in the clock's month, whatever it is.
    let now = Period::of(&Utc::now()).expect("now").to_string();
    assert_eq!(
        m.usage(&t, &now).await.expect("this month").cache_hits,
        total
    );
}

async fn lost_replies_are_not_counted_twice(backend: Backend) {
    let ts = store(backend).await;
    let m = meter(ts.store.clone());
    let t = tid();
    m.record(&t, "api_request", &rec(3, 30, 3, 0, nov()))
        .expect("record");
    // The write is applied, but the reply is "lost": the batch stays pending with its id.
    let lost = m.flush_losing_replies().await;
    assert!(matches!(lost, Err(TenantError::Store(_))), "{lost:?}");
    assert_eq!(m.pending(), 1);
    assert_eq!(
        field(&stored(&ts.store, &t, "2026-11").await, "operations"),
        3
    );
    // New usage of the same month meanwhile goes to a fresh aggregate.
    m.record(&t, "api_request", &rec(1, 10, 1, 0, nov()))
        .expect("record during retry");
    assert_eq!(m.pending(), 2);

    // The retry sends the same batch id: the store skips it.
    let retry = m.flush().await.expect("retry");
    assert_eq!((retry.applied, retry.already_applied), (0, 1));
    assert_eq!(
        field(&stored(&ts.store, &t, "2026-11").await, "operations"),
        3
    );
    // The fresh aggregate was sealed only after the retry settled; the next flush writes it.
    assert_eq!(retry.pending, 1);
    let next = m.flush().await.expect("next flush");
    assert_eq!((next.applied, next.pending), (1, 0));
    let u = m.usage(&t, "2026-11").await.expect("usage");
    assert_eq!((u.operations, u.data_bytes, u.compute_ms), (4, 40, 4));
    assert_eq!(u.by_operation.get("api_request"), Some(&4));
}

async fn buffer_is_bounded_and_drops_are_counted(backend: Backend) {
    let ts = store(backend).await;
    let metrics = Arc::new(RwLock::new(TenantMetrics::new()));
    let cfg = TenancyConfig {
        usage_buffer_max: 3,
        ..TenancyConfig::default()
    };
    let m = UsageMeter::new(ts.store.clone(), system_clock(), &cfg, metrics.clone());
    let tenants: Vec<TenantId> = (0..5).map(|_| tid()).collect();
    let outcomes: Vec<Recorded> = tenants
        .iter()
        .map(|t| {
            m.record(t, "api_request", &rec(1, 1, 1, 1, nov()))
                .expect("record")
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            Recorded::Buffered,
            Recorded::Buffered,
            Recorded::Buffered,
            Recorded::Dropped,
            Recorded::Dropped
        ]
    );
    assert_eq!((m.pending(), m.dropped()), (3, 2));
    // A (tenant, month) already buffered still accumulates when the buffer is full.
    assert_eq!(
        m.record(&tenants[0], "api_request", &rec(1, 1, 1, 1, nov()))
            .expect("record"),
        Recorded::Buffered
    );
    // A new month of a buffered tenant is a new aggregate: dropped.
    let dec = at(2026, 12, 2, 0, 0, 0);
    assert_eq!(
        m.record(&tenants[0], "api_request", &rec(1, 1, 1, 1, dec))
            .expect("record"),
        Recorded::Dropped
    );
    assert_eq!(metrics.read().expect("metrics").snapshot().usage_dropped, 3);

    let report = m.flush().await.expect("flush");
    assert_eq!((report.applied, report.pending), (3, 0));
    assert_eq!(
        m.usage(&tenants[0], "2026-11")
            .await
            .expect("usage")
            .operations,
        2
    );
    assert_eq!(
        m.usage(&tenants[3], "2026-11")
            .await
            .expect("usage")
            .operations,
        0
    );
    // Room again.
    assert_eq!(
        m.record(&tenants[3], "api_request", &rec(1, 1, 1, 1, nov()))
            .expect("record"),
        Recorded::Buffered
    );

    // During an outage a (tenant, month) holds at most two slots: the pending batch and
    // one open aggregate, however many flushes fail.
    let small = TenancyConfig {
        usage_buffer_max: 2,
        ..TenancyConfig::default()
    };
    let m2 = meter_with(ts.store.clone(), system_clock(), &small);
    let (a, b) = (tid(), tid());
    m2.record(&a, "x", &rec(1, 0, 0, 0, nov())).expect("record");
    assert!(m2.flush_losing_replies().await.is_err());
    m2.record(&a, "x", &rec(1, 0, 0, 0, nov())).expect("record");
    for _ in 0..3 {
        assert!(m2.flush_losing_replies().await.is_err());
        assert_eq!(m2.pending(), 2);
        m2.record(&a, "x", &rec(1, 0, 0, 0, nov())).expect("record");
    }
    assert_eq!(
        m2.record(&b, "x", &rec(1, 0, 0, 0, nov())).expect("record"),
        Recorded::Dropped
    );
    m2.flush().await.expect("settle the pending batch");
    m2.flush().await.expect("write the open aggregate");
    assert_eq!(m2.usage(&a, "2026-11").await.expect("usage").operations, 5);
}

async fn flusher_flushes_on_its_own_and_on_cancel(backend: Backend) {
    let ts = store(backend).await;
    let interval = Duration::from_millis(50);
    let cfg = TenancyConfig {
        usage_flush_interval_ms: 50,
        ..TenancyConfig::default()
    };
    let m = meter_with(ts.store.clone(), system_clock(), &cfg);
    assert_eq!(m.flush_interval(), interval);
    let t = tid();
    let cancel = CancellationToken::new();
    let flusher = m.spawn_flusher(m.flush_interval(), cancel.clone());
    m.record(&t, "api_request", &rec(2, 0, 0, 0, nov()))
        .expect("record");
    let started = Instant::now();
    // Two intervals is the expectation; the deadline is generous for a loaded machine.
    // The flusher settles its bookkeeping just after the write lands: wait for both.
    while field(&stored(&ts.store, &t, "2026-11").await, "operations") != 2 || m.pending() != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the flusher did not flush"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cancel.cancel();
    flusher.await.expect("flusher");

    // A flusher whose interval never comes still flushes once when cancelled (shutdown).
    let cancel = CancellationToken::new();
    let flusher = m.spawn_flusher(Duration::from_secs(3_600), cancel.clone());
    m.record(&t, "api_request", &rec(5, 0, 0, 0, nov()))
        .expect("record");
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), flusher)
        .await
        .expect("flusher stops promptly")
        .expect("flusher");
    assert_eq!(m.pending(), 0);
    assert_eq!(
        field(&stored(&ts.store, &t, "2026-11").await, "operations"),
        7
    );
}

async fn operation_names_are_capped_across_flushes_and_instances(backend: Backend) {
    let ts = store(backend).await;
    let m = meter(ts.store.clone());
    let t = tid();
    for i in 0..20 {
        m.record(&t, &format!("first-{i}"), &rec(1, 0, 0, 0, nov()))
            .expect("record");
    }
    m.flush().await.expect("flush");
    for i in 0..20 {
        m.record(&t, &format!("second-{i}"), &rec(1, 0, 0, 0, nov()))
            .expect("record");
    }
    m.flush().await.expect("flush");
    // Another instance, knowing nothing yet, learns the stored names before writing.
    let m2 = meter(ts.store.clone());
    m2.record(&t, "third", &rec(1, 0, 0, 0, nov()))
        .expect("record");
    m2.flush().await.expect("flush");

    let raw = stored(&ts.store, &t, "2026-11").await;
    let op_fields: Vec<&String> = raw
        .iter()
        .map(|(f, _)| f)
        .filter(|f| f.starts_with("op:"))
        .collect();
    assert_eq!(op_fields.len(), MAX_OPERATION_NAMES + 1, "{op_fields:?}");
    assert_eq!(field(&raw, "op:other"), 9);
    let u = m.usage(&t, "2026-11").await.expect("usage");
    assert_eq!(u.operations, 41);
    assert_eq!(u.by_operation.values().sum::<u64>(), 41);
    assert!(u.by_operation.contains_key("first-19") && u.by_operation.contains_key("second-11"));
    assert!(!u.by_operation.contains_key("second-12") && !u.by_operation.contains_key("third"));
}

async fn billing_of_a_recorded_month_matches_hand_computation(backend: Backend) {
    const GIB: u64 = 1 << 30;
    let ts = store(backend).await;
    let m = meter(ts.store.clone());
    let t = tid();
    // 150_001 operations and 12 GiB + 1 byte in November, half of it flushed.
    m.record(&t, "api_request", &rec(100_000, 6 * GIB, 1_000, 0, nov()))
        .expect("record");
    m.flush().await.expect("flush");
    m.record(
        &t,
        "crawl",
        &rec(50_001, 6 * GIB + 1, 10, 0, at(2026, 11, 2, 0, 0, 0)),
    )
    .expect("record");
    // December usage does not leak into November's bill.
    m.record(
        &t,
        "api_request",
        &rec(999_999, 999 * GIB, 0, 0, at(2026, 12, 1, 0, 0, 0)),
    )
    .expect("record");

    let usage = m.usage(&t, "2026-11").await.expect("usage");
    let plans = default_plans();
    let bill = compute_bill(&t, BillingPlan::Basic, &plans[&BillingPlan::Basic], &usage);
    // Basic: 29.00 base; 100_000 operations included, then 10 cents per started 1_000
    // (50_001 over → 51 blocks = 510); 10 GiB included, then 50 cents per started GiB
    // (2 GiB + 1 byte over → 3 blocks = 150).
    assert_eq!(bill.period, "2026-11");
    assert_eq!(bill.tenant_id, t.as_str());
    assert_eq!(bill.currency, "USD");
    let amounts: Vec<(&str, u64, u64)> = bill
        .lines
        .iter()
        .map(|l| (l.item.as_str(), l.billable_blocks, l.amount_cents))
        .collect();
    assert_eq!(
        amounts,
        [
            ("base_fee", 1, 2_900),
            ("operations", 51, 510),
            ("data_transfer_bytes", 3, 150)
        ]
    );
    assert_eq!(bill.total_cents, 3_560);
    // The same after everything is flushed.
    m.flush().await.expect("flush");
    let again = compute_bill(
        &t,
        BillingPlan::Basic,
        &plans[&BillingPlan::Basic],
        &m.usage(&t, "2026-11").await.expect("usage"),
    );
    assert_eq!(again, bill);
}

async fn purge_deletes_every_month_of_one_tenant_only(backend: Backend) {
    let ts = store(backend).await;
    let m = meter(ts.store.clone());
    let (t, bystander) = (tid(), tid());
    for ts_ in [at(2026, 10, 3, 0, 0, 0), nov(), at(2026, 12, 3, 0, 0, 0)] {
        m.record(&t, "api_request", &rec(1, 1, 1, 1, ts_))
            .expect("record");
    }
    m.record(&bystander, "api_request", &rec(9, 0, 0, 0, nov()))
        .expect("record");
    m.flush().await.expect("flush");
    m.record(&t, "api_request", &rec(1, 1, 1, 1, nov()))
        .expect("pending record");
    assert_eq!(m.pending(), 1);

    let deleted = m.purge(&t).await.expect("purge");
    assert_eq!(deleted, 3);
    assert_eq!(m.pending(), 0);
    for p in ["2026-10", "2026-11", "2026-12"] {
        assert_eq!(m.usage(&t, p).await.expect("usage").operations, 0, "{p}");
        assert!(stored(&ts.store, &t, p).await.is_empty(), "{p}");
    }
    assert!(m.months(&t).await.expect("months").is_empty());
    assert_eq!(
        m.usage(&bystander, "2026-11")
            .await
            .expect("bystander")
            .operations,
        9
    );
    // Purging again is harmless, and usage recorded afterwards starts afresh.
    assert_eq!(m.purge(&t).await.expect("purge again"), 0);
    m.record(&t, "api_request", &rec(2, 0, 0, 0, nov()))
        .expect("record");
    m.flush().await.expect("flush");
    assert_eq!(m.usage(&t, "2026-11").await.expect("usage").operations, 2);
}

/// A private Redis is killed between `record` and `flush`: the flush fails and keeps the
/// batch; after a restart the retry writes it, and the totals are exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_survives_a_redis_outage() {
    let server = riptide_test_support::start_redis_server();
    let cfg = RedisConfig {
        key_prefix: riptide_test_support::unique("p"),
        pool_size: 1,
        connection_timeout_ms: 500,
        command_timeout_ms: 500,
        ..Default::default()
    };
    let store: SharedStore = Arc::new(
        RedisStore::connect_standalone(&server.url(), &cfg)
            .await
            .expect("connect"),
    );
    let m = meter(store.clone());
    let t = tid();
    m.record(&t, "api_request", &rec(2, 20, 2, 0, nov()))
        .expect("record");
    m.flush()
        .await
        .expect("a first flush while the server is up");
    m.record(&t, "api_request", &rec(3, 30, 3, 0, nov()))
        .expect("record");

    server.kill();
    let failed = m.flush().await;
    assert!(matches!(failed, Err(TenantError::Store(_))), "{failed:?}");
    assert_eq!(m.pending(), 1, "the failed batch is kept");
    // Usage keeps accumulating while the store is down.
    m.record(&t, "api_request", &rec(4, 40, 4, 0, nov()))
        .expect("record during the outage");
    assert!(m.flush().await.is_err());
    assert_eq!(m.pending(), 2);
    assert!(
        m.usage(&t, "2026-11").await.is_err(),
        "reads need the store"
    );

    // The server comes back empty (no persistence): what was written before is gone,
    // and exactly what was pending is written, once.
    server.restart();
    let started = Instant::now();
    let report = loop {
        match m.flush().await {
            Ok(report) => break report,
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(15),
                    "no recovery: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(report.failed, 0);
    while m.pending() > 0 {
        m.flush().await.expect("flush after recovery");
    }
    let u = m.usage(&t, "2026-11").await.expect("usage after recovery");
    assert_eq!((u.operations, u.data_bytes, u.compute_ms), (7, 70, 7));
    assert_eq!(u.by_operation.get("api_request"), Some(&7));
    // Flushing again adds nothing.
    m.flush().await.expect("idle flush");
    assert_eq!(m.usage(&t, "2026-11").await.expect("usage").operations, 7);
}

/// Bad input is a typed error, never a panic, and buffers nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_operations_periods_and_timestamps_are_refused() {
    let ts = store(Backend::Embedded).await;
    let m = meter(ts.store.clone());
    let t = tid();
    let long = "a".repeat(65);
    for bad in ["", "API", "api request", "a/b", "ünï", "x\n", &long] {
        match m.record(&t, bad, &rec(1, 0, 0, 0, nov())) {
            Err(TenantError::InvalidField {
                field: "operation", ..
            }) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let far = chrono::NaiveDate::from_ymd_opt(10_000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("chrono represents year 10000")
        .and_utc();
    match m.record(&t, "api_request", &rec(1, 0, 0, 0, far)) {
        Err(TenantError::InvalidField {
            field: "timestamp", ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(m.pending(), 0);
    let huge = "9".repeat(10_000);
    for bad in [
        "",
        "2026",
        "2026-13",
        "2026-00",
        "2026-1",
        "11-2026",
        "2026-11-01",
        "abcd-ef",
        &huge,
    ] {
        match m.usage(&t, bad).await {
            Err(TenantError::InvalidField {
                field: "period",
                reason,
            }) => assert!(reason.len() < 200),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

/// Cache hits and misses land in the clock's month.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_counts_follow_the_injected_clock() {
    let ts = store(Backend::Embedded).await;
    let clock = ManualClock::new(at(2026, 11, 30, 23, 59, 59).timestamp_millis() as u64);
    let m = meter_with(ts.store.clone(), clock.clone(), &TenancyConfig::default());
    let t = tid();
    m.record_cache(&t, 3, 1).expect("nov");
    clock.advance_ms(1_000);
    m.record_cache(&t, 5, 0).expect("dec");
    assert_eq!(
        m.record_cache(&t, 0, 0).expect("nothing"),
        Recorded::Buffered
    );
    assert_eq!(m.pending(), 2);
    m.flush().await.expect("flush");
    let n = m.usage(&t, "2026-11").await.expect("nov");
    let d = m.usage(&t, "2026-12").await.expect("dec");
    assert_eq!(
        (n.cache_hits, n.cache_misses, d.cache_hits, d.cache_misses),
        (3, 1, 5, 0)
    );
    assert_eq!(n.operations, 0);
}

/// Recording feeds `tenant_operations_total`'s snapshot, with bounded tenant labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_feeds_the_tenant_metrics() {
    let ts = store(Backend::Embedded).await;
    let metrics = Arc::new(RwLock::new(TenantMetrics::new()));
    let cfg = TenancyConfig {
        max_metric_tenants: 2,
        ..TenancyConfig::default()
    };
    let m = UsageMeter::new(ts.store.clone(), system_clock(), &cfg, metrics.clone());
    let ids: Vec<TenantId> = (0..4).map(|_| tid()).collect();
    for (i, t) in ids.iter().enumerate() {
        m.record(t, "api_request", &rec(i as u64 + 1, 0, 0, 0, nov()))
            .expect("record");
    }
    let snap = metrics.read().expect("metrics").snapshot();
    assert_eq!(snap.tenants.len(), 3, "{:?}", snap.tenants.keys());
    assert_eq!(snap.tenants[ids[0].as_str()].by_operation["api_request"], 1);
    assert_eq!(snap.tenants[ids[1].as_str()].operations, 2);
    assert_eq!(snap.tenants["_other"].operations, 3 + 4);
}
