//! Tenant metrics: what the tenant layer reports through the `metrics` facade, and an
//! in-memory copy of it for the admin API.
//!
//! Emitted series:
//!
//! | metric | kind | labels | meaning |
//! |---|---|---|---|
//! | `tenant_operations_total` | counter | `tenant_id`, `operation` | operations recorded by usage metering |
//! | `tenant_quota_usage` | gauge | `tenant_id`, `resource` | last observed use ÷ quota, clamped to 0..=1 |
//! | `tenant_quota_denied_total` | counter | `tenant_id`, `resource` | requests refused with `QuotaExceeded` |
//! | `tenant_billing_units` | gauge | `tenant_id`, `period` | **total cents** of the tenant's bill for the period, as last computed |
//! | `usage_dropped_total` | counter | — | usage records dropped because the usage buffer was full |
//! | `usage_flush_failures_total` | counter | — | usage batches whose write to the store failed (they are retried) |
//! | `usage_pending_aggregates` | gauge | — | (tenant, month) usage aggregates held in memory |
//!
//! `tenant_billing_units` is the bill's total in cents (not a count of meter blocks:
//! blocks of different meters have different units and do not add up). It is the one
//! series that says what a tenant pays, so it can be left out of the exposition
//! ([`TenantMetrics::set_billing_series`]); the in-memory copy keeps the figures either
//! way.
//!
//! Label cardinality is bounded: the first `max_tenants` tenants seen get their own
//! `tenant_id` label, later ones share `_other` (a deleted tenant's slot is freed with
//! [`TenantMetrics::forget_tenant`]); per tenant at most [`MAX_OPERATION_NAMES`]
//! operation names are labelled, the rest are `other`. Metric handles are resolved
//! once per label set and cached, so recording is a map lookup and an atomic add.
//!
//! Every method takes `&self` (state is atomics and small locks inside), so callers
//! holding the seed's `Arc<RwLock<TenantMetrics>>` only ever need the read lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use metrics::{Counter, Gauge};
use serde::Serialize;

use super::billing::Bill;
use super::period::Period;
use super::resource::Resource;
use super::usage_summary::{MAX_OPERATION_NAMES, OTHER_OPERATION, is_valid_operation};
use riptide_store::tenant_id::TenantId;

/// The label shared by tenants beyond the configured maximum.
pub const OTHER_TENANT: &str = "_other";

/// Default number of tenants with their own labels (the configuration's default of
/// `tenant.max_metric_tenants`).
pub const DEFAULT_MAX_METRIC_TENANTS: usize = 1_000;

/// Billing-period gauge handles cached per tenant: the current month, the previous one
/// and one more, which covers a month-end re-bill without re-registering.
const BILLING_PERIODS_CACHED: usize = 3;

/// Tenant-layer metrics with bounded labels, plus a snapshot for the admin API.
pub struct TenantMetrics {
    max_tenants: AtomicUsize,
    /// Tenants with their own label; `labelled` counts them (reserved before insert, so
    /// concurrent first sightings never exceed `max_tenants`).
    tenants: DashMap<TenantId, Arc<TenantEntry>>,
    labelled: AtomicUsize,
    other: Arc<TenantEntry>,
    usage_dropped: AtomicU64,
    usage_dropped_counter: OnceLock<Counter>,
    flush_failures: AtomicU64,
    flush_failures_counter: OnceLock<Counter>,
    pending_gauge: OnceLock<Gauge>,
    /// Whether `tenant_billing_units` is registered (see the module docs).
    billing_series: AtomicBool,
}

impl std::fmt::Debug for TenantMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantMetrics")
            .field("max_tenants", &self.max_tenants.load(Ordering::Relaxed))
            .field("labelled", &self.labelled.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for TenantMetrics {
    fn default() -> Self {
        Self::with_max_tenants(DEFAULT_MAX_METRIC_TENANTS)
    }
}

impl TenantMetrics {
    /// Metrics with the default label bound ([`DEFAULT_MAX_METRIC_TENANTS`]); the tenant
    /// manager applies `tenant.max_metric_tenants` with [`Self::set_max_tenants`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Metrics labelling at most `max_tenants` tenants individually (at least 1).
    pub fn with_max_tenants(max_tenants: usize) -> Self {
        Self {
            max_tenants: AtomicUsize::new(max_tenants.max(1)),
            tenants: DashMap::new(),
            labelled: AtomicUsize::new(0),
            other: Arc::new(TenantEntry::new(Arc::from(OTHER_TENANT))),
            usage_dropped: AtomicU64::new(0),
            usage_dropped_counter: OnceLock::new(),
            flush_failures: AtomicU64::new(0),
            flush_failures_counter: OnceLock::new(),
            pending_gauge: OnceLock::new(),
            billing_series: AtomicBool::new(true),
        }
    }

    /// Whether bills are published as `tenant_billing_units` (on by default). Off, the
    /// series is never registered with the recorder, so no exposition shows it; the
    /// figures are still kept for [`Self::snapshot`]. Set it before bills are recorded:
    /// a period first recorded while off stays unpublished.
    pub fn set_billing_series(&self, publish: bool) {
        self.billing_series.store(publish, Ordering::Relaxed);
    }

    /// Changes the label bound (at least 1). Tenants already labelled keep their label;
    /// a lower bound only applies to tenants seen afterwards.
    pub fn set_max_tenants(&self, max_tenants: usize) {
        self.max_tenants
            .store(max_tenants.max(1), Ordering::Relaxed);
    }

    /// The label bound in force.
    pub fn max_tenants(&self) -> usize {
        self.max_tenants.load(Ordering::Relaxed)
    }

    /// The entry of `tenant`: its own, or `_other` when the bound is reached.
    fn entry(&self, tenant: &TenantId) -> Arc<TenantEntry> {
        if let Some(e) = self.tenants.get(tenant) {
            return e.clone();
        }
        match self.tenants.entry(tenant.clone()) {
            Entry::Occupied(e) => e.get().clone(),
            Entry::Vacant(v) => {
                let max = self.max_tenants();
                let reserved = self
                    .labelled
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < max).then_some(n + 1)
                    })
                    .is_ok();
                if reserved {
                    v.insert(Arc::new(TenantEntry::new(Arc::from(tenant.as_str()))))
                        .clone()
                } else {
                    self.other.clone()
                }
            }
        }
    }

    /// The label `tenant` is reported under: its id, or [`OTHER_TENANT`].
    pub fn label_of(&self, tenant: &TenantId) -> String {
        self.entry(tenant).label.to_string()
    }

    /// Counts `count` operations named `operation` (`tenant_operations_total`). An
    /// invalid name, or a name beyond the tenant's first [`MAX_OPERATION_NAMES`], is
    /// counted as `other`.
    pub fn record_operation(&self, tenant: &TenantId, operation: &str, count: u64) {
        if count == 0 {
            return;
        }
        let entry = self.entry(tenant);
        entry.operations.fetch_add(count, Ordering::Relaxed);
        entry.operation_slot(operation).add(count);
    }

    /// Notes the tenant's use of a quota'd resource: `tenant_quota_usage` is set to
    /// `used / limit`, clamped to 0..=1 (a limit of 0 reads as full once anything is
    /// used). For `_other` it is the ratio last reported by any unlabelled tenant.
    pub fn record_quota_usage(&self, tenant: &TenantId, resource: Resource, used: u64, limit: u64) {
        let ratio = match (used, limit) {
            (0, _) => 0.0,
            (_, 0) => 1.0,
            // Precision loss above 2^53 is irrelevant for a ratio.
            (u, l) => (u as f64 / l as f64).clamp(0.0, 1.0),
        };
        let entry = self.entry(tenant);
        let i = resource_index(resource);
        entry.quota_ratio[i].store(ratio.to_bits(), Ordering::Relaxed);
        entry.quota_gauges[i]
            .get_or_init(|| {
                metrics::gauge!("tenant_quota_usage",
                    "tenant_id" => entry.label.to_string(),
                    "resource" => resource.as_str())
            })
            .set(ratio);
    }

    /// Counts a request refused because it did not fit `resource`'s quota
    /// (`tenant_quota_denied_total`).
    pub fn record_quota_denied(&self, tenant: &TenantId, resource: Resource) {
        let entry = self.entry(tenant);
        let i = resource_index(resource);
        entry.denials[i].fetch_add(1, Ordering::Relaxed);
        entry.denial_counters[i]
            .get_or_init(|| {
                metrics::counter!("tenant_quota_denied_total",
                    "tenant_id" => entry.label.to_string(),
                    "resource" => resource.as_str())
            })
            .increment(1);
    }

    /// Publishes the total of a computed bill: `tenant_billing_units{tenant_id, period}`
    /// is set to `total_cents` (cents, see the module docs), unless the series is off
    /// ([`Self::set_billing_series`]).
    pub fn record_billing_units(&self, tenant: &TenantId, period: Period, total_cents: u64) {
        let entry = self.entry(tenant);
        let mut billing = lock(&entry.billing);
        let gauge = match billing.iter().position(|(p, _, _)| *p == period) {
            Some(i) => {
                billing[i].1 = total_cents;
                billing[i].2.clone()
            }
            None => {
                let gauge = self.billing_series.load(Ordering::Relaxed).then(|| {
                    metrics::gauge!("tenant_billing_units",
                        "tenant_id" => entry.label.to_string(),
                        "period" => period.to_string())
                });
                if billing.len() >= BILLING_PERIODS_CACHED {
                    // Forget the oldest period's handle; its series keeps its last value.
                    if let Some(oldest) = billing
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, (p, _, _))| *p)
                        .map(|(i, _)| i)
                    {
                        let _forgotten = billing.swap_remove(oldest);
                    }
                }
                billing.push((period, total_cents, gauge.clone()));
                gauge
            }
        };
        drop(billing);
        // u64 cents above 2^53 lose precision in a gauge; such bills are not real.
        if let Some(gauge) = gauge {
            gauge.set(total_cents as f64);
        }
    }

    /// Publishes a bill from [`compute_bill`](super::billing::compute_bill) with
    /// [`Self::record_billing_units`]. A bill whose tenant id or period does not parse
    /// (never one from `compute_bill`) is not published.
    pub fn record_bill(&self, bill: &Bill) {
        match (
            TenantId::parse(&bill.tenant_id),
            Period::parse(&bill.period),
        ) {
            (Ok(tenant), Ok(period)) => {
                self.record_billing_units(&tenant, period, bill.total_cents)
            }
            _ => tracing::debug!(
                tenant.id = %bill.tenant_id,
                billing.period = %bill.period,
                "bill with an invalid tenant id or period not published"
            ),
        }
    }

    /// Counts usage records dropped because the usage buffer was full
    /// (`usage_dropped_total`).
    pub fn record_usage_dropped(&self, count: u64) {
        self.usage_dropped.fetch_add(count, Ordering::Relaxed);
        self.usage_dropped_counter
            .get_or_init(|| metrics::counter!("usage_dropped_total"))
            .increment(count);
    }

    /// Counts usage batches whose write failed and will be retried
    /// (`usage_flush_failures_total`).
    pub fn record_usage_flush_failures(&self, count: u64) {
        self.flush_failures.fetch_add(count, Ordering::Relaxed);
        self.flush_failures_counter
            .get_or_init(|| metrics::counter!("usage_flush_failures_total"))
            .increment(count);
    }

    /// Sets `usage_pending_aggregates`.
    pub fn set_usage_pending(&self, pending: usize) {
        self.pending_gauge
            .get_or_init(|| metrics::gauge!("usage_pending_aggregates"))
            .set(pending as f64);
    }

    /// Frees a deleted tenant's label slot. Its series stay registered with their last
    /// values (the facade cannot unregister them); new tenants may take the slot.
    pub fn forget_tenant(&self, tenant: &TenantId) {
        if self.tenants.remove(tenant).is_some() {
            self.labelled.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The figures of one tenant: its own row, or `None` when it has no label (its
    /// figures are then part of `_other`) or has recorded nothing.
    pub fn tenant(&self, tenant: &TenantId) -> Option<TenantMetricsRow> {
        self.tenants.get(tenant).map(|e| e.snapshot())
    }

    /// Everything, for the admin API. `_other` appears when it recorded anything.
    pub fn snapshot(&self) -> TenantMetricsSnapshot {
        let mut tenants: BTreeMap<String, TenantMetricsRow> = self
            .tenants
            .iter()
            .map(|e| (e.key().as_str().to_owned(), e.value().snapshot()))
            .collect();
        let other = self.other.snapshot();
        if !other.is_empty() {
            tenants.insert(OTHER_TENANT.to_owned(), other);
        }
        TenantMetricsSnapshot {
            tenants,
            usage_dropped: self.usage_dropped.load(Ordering::Relaxed),
            usage_flush_failures: self.flush_failures.load(Ordering::Relaxed),
        }
    }
}

/// A point-in-time copy of the tenant metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantMetricsSnapshot {
    /// By label: tenant ids, and `_other` for tenants beyond the label bound.
    pub tenants: BTreeMap<String, TenantMetricsRow>,
    /// Usage records dropped because the usage buffer was full.
    pub usage_dropped: u64,
    /// Usage batch writes that failed (and were kept for a retry).
    pub usage_flush_failures: u64,
}

/// One label's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantMetricsRow {
    /// Operations recorded.
    pub operations: u64,
    /// Operations by name (at most [`MAX_OPERATION_NAMES`] names, then `other`).
    pub by_operation: BTreeMap<String, u64>,
    /// Last observed use ÷ quota per resource, 0..=1.
    pub quota_usage: BTreeMap<String, f64>,
    /// Quota denials per resource.
    pub quota_denials: BTreeMap<String, u64>,
    /// The latest billed period and its total in cents, if a bill was computed.
    pub billing: Option<BillingUnits>,
}

impl TenantMetricsRow {
    fn is_empty(&self) -> bool {
        self.operations == 0
            && self.quota_usage.is_empty()
            && self.quota_denials.is_empty()
            && self.billing.is_none()
    }
}

/// A bill's total as published in `tenant_billing_units`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BillingUnits {
    /// The month billed.
    pub period: Period,
    /// Its total in cents.
    pub total_cents: u64,
}

/// One operation name's count and cached counter handle.
struct OpSlot {
    count: AtomicU64,
    counter: Counter,
}

impl OpSlot {
    fn add(&self, n: u64) {
        self.count.fetch_add(n, Ordering::Relaxed);
        self.counter.increment(n);
    }
}

/// The state of one label.
struct TenantEntry {
    label: Arc<str>,
    operations: AtomicU64,
    /// At most `MAX_OPERATION_NAMES` names plus `other`; a short list searched linearly
    /// is faster than hashing for this size, and the read lock keeps the hot path shared.
    ops: RwLock<Vec<(Box<str>, Arc<OpSlot>)>>,
    quota_ratio: [AtomicU64; Resource::ALL.len()],
    quota_gauges: [OnceLock<Gauge>; Resource::ALL.len()],
    denials: [AtomicU64; Resource::ALL.len()],
    denial_counters: [OnceLock<Counter>; Resource::ALL.len()],
    /// (period, total cents, gauge unless the series is off), at most
    /// `BILLING_PERIODS_CACHED`.
    billing: Mutex<Vec<(Period, u64, Option<Gauge>)>>,
}

/// "No ratio reported yet": NaN bits, distinguishable from any clamped ratio.
const NO_RATIO: u64 = 0x7ff8_0000_0000_0001;

impl TenantEntry {
    fn new(label: Arc<str>) -> Self {
        Self {
            label,
            operations: AtomicU64::new(0),
            ops: RwLock::new(Vec::new()),
            quota_ratio: std::array::from_fn(|_| AtomicU64::new(NO_RATIO)),
            quota_gauges: Default::default(),
            denials: Default::default(),
            denial_counters: Default::default(),
            billing: Mutex::new(Vec::new()),
        }
    }

    /// The slot of `operation`, creating it (or falling back to `other`) on first use.
    fn operation_slot(&self, operation: &str) -> Arc<OpSlot> {
        let name = if is_valid_operation(operation) {
            operation
        } else {
            OTHER_OPERATION
        };
        if let Some(slot) = find(
            &self.ops.read().unwrap_or_else(PoisonError::into_inner),
            name,
        ) {
            return slot;
        }
        let mut ops = self.ops.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = find(&ops, name) {
            return slot;
        }
        let named = ops.iter().filter(|(n, _)| &**n != OTHER_OPERATION).count();
        let name = if named >= MAX_OPERATION_NAMES && name != OTHER_OPERATION {
            if let Some(slot) = find(&ops, OTHER_OPERATION) {
                return slot;
            }
            OTHER_OPERATION
        } else {
            name
        };
        let slot = Arc::new(OpSlot {
            count: AtomicU64::new(0),
            counter: metrics::counter!("tenant_operations_total",
                "tenant_id" => self.label.to_string(),
                "operation" => name.to_owned()),
        });
        ops.push((Box::from(name), slot.clone()));
        slot
    }

    fn snapshot(&self) -> TenantMetricsRow {
        let by_operation = self
            .ops
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(n, s)| (n.to_string(), s.count.load(Ordering::Relaxed)))
            .collect();
        let mut quota_usage = BTreeMap::new();
        let mut quota_denials = BTreeMap::new();
        for (i, r) in Resource::ALL.iter().enumerate() {
            let bits = self.quota_ratio[i].load(Ordering::Relaxed);
            if bits != NO_RATIO {
                quota_usage.insert(r.as_str().to_owned(), f64::from_bits(bits));
            }
            let denied = self.denials[i].load(Ordering::Relaxed);
            if denied > 0 {
                quota_denials.insert(r.as_str().to_owned(), denied);
            }
        }
        let billing = lock(&self.billing).iter().max_by_key(|(p, _, _)| *p).map(
            |(period, total_cents, _)| BillingUnits {
                period: *period,
                total_cents: *total_cents,
            },
        );
        TenantMetricsRow {
            operations: self.operations.load(Ordering::Relaxed),
            by_operation,
            quota_usage,
            quota_denials,
            billing,
        }
    }
}

fn find(ops: &[(Box<str>, Arc<OpSlot>)], name: &str) -> Option<Arc<OpSlot>> {
    ops.iter()
        .find(|(n, _)| &**n == name)
        .map(|(_, s)| s.clone())
}

fn resource_index(resource: Resource) -> usize {
    // `ALL` lists every variant, so the fallback is never taken; it avoids a panic path.
    Resource::ALL
        .iter()
        .position(|r| *r == resource)
        .unwrap_or(0)
}

/// Locks a mutex, recovering the data after a panic elsewhere: metric state stays
/// meaningful even if one recording thread panicked.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use metrics::{CounterFn, GaugeFn, Key, KeyName, Metadata, Recorder, SharedString, Unit};

    use super::*;

    /// A recorder that keeps each series' value by its rendered key.
    #[derive(Default)]
    struct Capture {
        series: StdMutex<BTreeMap<String, Arc<Value>>>,
    }

    #[derive(Default)]
    struct Value(AtomicU64);

    impl CounterFn for Value {
        fn increment(&self, value: u64) {
            self.0.fetch_add(value, Ordering::Relaxed);
        }
        fn absolute(&self, value: u64) {
            self.0.store(value, Ordering::Relaxed);
        }
    }

    impl GaugeFn for Value {
        fn increment(&self, _: f64) {}
        fn decrement(&self, _: f64) {}
        fn set(&self, value: f64) {
            self.0.store(value.to_bits(), Ordering::Relaxed);
        }
    }

    impl Capture {
        fn value(&self, key: &Key) -> Arc<Value> {
            let mut labels: Vec<_> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            lock(&self.series).entry(name).or_default().clone()
        }
        fn get(&self, name: &str) -> Option<u64> {
            lock(&self.series)
                .get(name)
                .map(|v| v.0.load(Ordering::Relaxed))
        }
        fn names(&self) -> Vec<String> {
            lock(&self.series).keys().cloned().collect()
        }
    }

    impl Recorder for Capture {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.value(key))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(self.value(key))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> metrics::Histogram {
            metrics::Histogram::noop()
        }
    }

    fn t(id: &str) -> TenantId {
        TenantId::parse(id).expect("valid id")
    }

    #[test]
    fn operations_are_counted_and_emitted_per_label() {
        let rec = Capture::default();
        metrics::with_local_recorder(&rec, || {
            let m = TenantMetrics::with_max_tenants(2);
            m.record_operation(&t("a"), "api_request", 3);
            m.record_operation(&t("a"), "api_request", 2);
            m.record_operation(&t("b"), "extract", 1);
            // A third tenant shares `_other`.
            m.record_operation(&t("c"), "extract", 7);
            m.record_operation(&t("d"), "extract", 1);
            assert_eq!(
                rec.get("tenant_operations_total{operation=api_request,tenant_id=a}"),
                Some(5)
            );
            assert_eq!(
                rec.get("tenant_operations_total{operation=extract,tenant_id=_other}"),
                Some(8)
            );
            assert!(
                rec.names()
                    .iter()
                    .all(|n| !n.contains("tenant_id=c") && !n.contains("tenant_id=d"))
            );
            let snap = m.snapshot();
            assert_eq!(
                snap.tenants.keys().collect::<Vec<_>>(),
                ["_other", "a", "b"]
            );
            assert_eq!(snap.tenants["a"].by_operation["api_request"], 5);
            assert_eq!(snap.tenants["_other"].operations, 8);
            assert_eq!(m.label_of(&t("c")), "_other");
        });
    }

    #[test]
    fn forgetting_a_tenant_frees_its_label_slot() {
        let m = TenantMetrics::with_max_tenants(1);
        m.record_operation(&t("a"), "x", 1);
        assert_eq!(m.label_of(&t("b")), OTHER_TENANT);
        m.forget_tenant(&t("a"));
        assert_eq!(m.label_of(&t("b")), "b");
        assert!(m.tenant(&t("a")).is_none());
    }

    #[test]
    fn operation_names_per_tenant_are_bounded() {
        let rec = Capture::default();
        metrics::with_local_recorder(&rec, || {
            let m = TenantMetrics::new();
            for i in 0..(MAX_OPERATION_NAMES + 10) {
                m.record_operation(&t("a"), &format!("op{i}"), 1);
            }
            m.record_operation(&t("a"), "Not Valid!", 1);
            let row = m.tenant(&t("a")).expect("labelled");
            assert_eq!(row.by_operation.len(), MAX_OPERATION_NAMES + 1);
            assert_eq!(row.by_operation[OTHER_OPERATION], 11);
            assert_eq!(row.operations, (MAX_OPERATION_NAMES + 11) as u64);
            let series = rec
                .names()
                .iter()
                .filter(|n| n.starts_with("tenant_operations_total"))
                .count();
            assert_eq!(series, MAX_OPERATION_NAMES + 1);
        });
    }

    #[test]
    fn quota_usage_is_a_clamped_ratio_and_denials_count() {
        let rec = Capture::default();
        metrics::with_local_recorder(&rec, || {
            let m = TenantMetrics::new();
            m.record_quota_usage(&t("a"), Resource::MemoryBytes, 45, 50);
            m.record_quota_usage(&t("a"), Resource::StorageBytes, 80, 50);
            m.record_quota_denied(&t("a"), Resource::StorageBytes);
            m.record_quota_denied(&t("a"), Resource::StorageBytes);
            let g = rec
                .get("tenant_quota_usage{resource=memory_bytes,tenant_id=a}")
                .map(f64::from_bits);
            assert_eq!(g, Some(0.9));
            let row = m.tenant(&t("a")).expect("row");
            assert_eq!(row.quota_usage["storage_bytes"], 1.0);
            assert_eq!(row.quota_denials["storage_bytes"], 2);
            assert!(!row.quota_usage.contains_key("operations_per_minute"));
            assert_eq!(
                rec.get("tenant_quota_denied_total{resource=storage_bytes,tenant_id=a}"),
                Some(2)
            );
        });
    }

    #[test]
    fn billing_units_are_the_bill_total_in_cents() {
        let rec = Capture::default();
        metrics::with_local_recorder(&rec, || {
            let m = TenantMetrics::new();
            let nov = Period::parse("2026-11").expect("period");
            let dec = Period::parse("2026-12").expect("period");
            m.record_billing_units(&t("a"), nov, 3_560);
            m.record_billing_units(&t("a"), dec, 2_900);
            m.record_billing_units(&t("a"), nov, 3_600);
            let nov_g = rec
                .get("tenant_billing_units{period=2026-11,tenant_id=a}")
                .map(f64::from_bits);
            assert_eq!(nov_g, Some(3_600.0));
            let row = m.tenant(&t("a")).expect("row");
            assert_eq!(
                row.billing,
                Some(BillingUnits {
                    period: dec,
                    total_cents: 2_900
                })
            );
            for month in 1..=6 {
                m.record_billing_units(&t("a"), Period::new(2027, month).expect("p"), 1);
            }
            assert!(
                lock(&m.tenant_entry_for_test(&t("a")).billing).len() <= BILLING_PERIODS_CACHED
            );
            let plan = crate::config::PlanConfig {
                price: crate::config::PriceTable {
                    base_fee_cents: 123,
                    ..Default::default()
                },
                ..Default::default()
            };
            let usage = crate::usage::UsageSummary {
                period: "2026-11".to_owned(),
                ..Default::default()
            };
            let bill =
                crate::billing::compute_bill(&t("b"), crate::BillingPlan::Free, &plan, &usage);
            m.record_bill(&bill);
            let row = m.tenant(&t("b")).expect("row");
            assert_eq!(
                row.billing,
                Some(BillingUnits {
                    period: nov,
                    total_cents: 123
                })
            );
            let b_g = rec
                .get("tenant_billing_units{period=2026-11,tenant_id=b}")
                .map(f64::from_bits);
            assert_eq!(b_g, Some(123.0));
        });
    }

    #[test]
    fn billing_series_off_registers_nothing_but_keeps_the_figures() {
        let rec = Capture::default();
        metrics::with_local_recorder(&rec, || {
            let m = TenantMetrics::new();
            m.set_billing_series(false);
            let nov = Period::parse("2026-11").expect("period");
            m.record_billing_units(&t("a"), nov, 3_560);
            m.record_billing_units(&t("a"), nov, 3_600);
            m.record_operation(&t("a"), "extract", 1);
            let names = rec.names();
            assert!(
                !names.iter().any(|n| n.starts_with("tenant_billing_units")),
                "{names:?}"
            );
            assert!(
                names
                    .iter()
                    .any(|n| n.starts_with("tenant_operations_total"))
            );
            let row = m.tenant(&t("a")).expect("row");
            assert_eq!(
                row.billing,
                Some(BillingUnits {
                    period: nov,
                    total_cents: 3_600
                })
            );
        });
    }

    #[test]
    fn usage_buffer_figures() {
        let rec = Capture::default();
        metrics::with_local_recorder(&rec, || {
            let m = TenantMetrics::new();
            m.record_usage_dropped(2);
            m.record_usage_flush_failures(1);
            m.set_usage_pending(4);
            let snap = m.snapshot();
            assert_eq!((snap.usage_dropped, snap.usage_flush_failures), (2, 1));
            assert_eq!(rec.get("usage_dropped_total{}"), Some(2));
            assert_eq!(
                rec.get("usage_pending_aggregates{}").map(f64::from_bits),
                Some(4.0)
            );
        });
    }

    impl TenantMetrics {
        fn tenant_entry_for_test(&self, tenant: &TenantId) -> Arc<TenantEntry> {
            self.entry(tenant)
        }
    }
}
