//! Cache statistics: counters and latency percentiles per operation, overall and per
//! tenant, mirrored into the `metrics` facade.
//!
//! Emitted series (every scope but the overall one):
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `cache_operations_total` | counter | `tenant_id`, `operation`, `result` |
//! | `cache_access_duration_seconds` | histogram | `tenant_id`, `operation` |
//! | `cache_hit_rate` | gauge | `tenant_id` |
//! | `cache_memory_usage_bytes` | gauge | `tenant_id` |
//! | `cache_l1_admission_refused_total` | counter | `tenant_id` |
//!
//! `cache_l1_admission_refused_total` counts entries not put into L1 because their
//! tenant held its share of it (`l1_tenant_share_percent`); they were served from the
//! store instead.
//!
//! `tenant_id` is the tenant, `_global` for entries without a tenant, or `_other`.
//! Per-tenant state is bounded by `max_tracked_tenants`; tenants beyond it share the
//! `_other` bucket, which also bounds metric label cardinality. Metric handles are
//! resolved once per scope, so recording is a few atomic adds.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use metrics::{Counter, Gauge, Histogram};
use serde::Serialize;

use super::histogram::LatencyHistogram;

/// Cache operations that are timed and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Single get.
    Get,
    /// Single set.
    Set,
    /// Delete of one key.
    Delete,
    /// Batch get.
    GetBatch,
    /// Batch set.
    SetBatch,
    /// Invalidation by tag, namespace or whole scope.
    Invalidate,
    /// A loader run by `get_or_load` or warming.
    Load,
}

const OPS: [Op; 7] = [
    Op::Get,
    Op::Set,
    Op::Delete,
    Op::GetBatch,
    Op::SetBatch,
    Op::Invalidate,
    Op::Load,
];

impl Op {
    /// Metric label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Delete => "delete",
            Op::GetBatch => "get_batch",
            Op::SetBatch => "set_batch",
            Op::Invalidate => "invalidate",
            Op::Load => "load",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpResult {
    /// A get found the entry.
    Hit,
    /// A get found nothing.
    Miss,
    /// A write or invalidation succeeded.
    Ok,
    /// The operation failed.
    Error,
}

const RESULTS: usize = 4;

impl OpResult {
    fn as_str(&self) -> &'static str {
        match self {
            OpResult::Hit => "hit",
            OpResult::Miss => "miss",
            OpResult::Ok => "ok",
            OpResult::Error => "error",
        }
    }
}

/// Counters of one scope (a tenant, `_global`, `_other`) or of everything.
pub struct ScopeStats {
    label: Arc<str>,
    emit_metrics: bool,
    hits: AtomicU64,
    misses: AtomicU64,
    sets: AtomicU64,
    deletes: AtomicU64,
    evictions: AtomicU64,
    errors: AtomicU64,
    bytes_written: AtomicU64,
    used_bytes: AtomicU64,
    entries: AtomicU64,
    latency: [OnceLock<Box<LatencyHistogram>>; OPS.len()],
    latency_metrics: [OnceLock<Histogram>; OPS.len()],
    op_counters: [OnceLock<Counter>; OPS.len() * RESULTS],
    hit_rate_gauge: OnceLock<Gauge>,
    memory_gauge: OnceLock<Gauge>,
    l1_refused_counter: OnceLock<Counter>,
}

impl ScopeStats {
    fn new(label: Arc<str>, emit_metrics: bool) -> Self {
        Self {
            label,
            emit_metrics,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            sets: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            used_bytes: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            latency: Default::default(),
            latency_metrics: Default::default(),
            op_counters: Default::default(),
            hit_rate_gauge: OnceLock::new(),
            memory_gauge: OnceLock::new(),
            l1_refused_counter: OnceLock::new(),
        }
    }

    /// Counts an entry of this scope that L1 refused (the tenant held its share).
    pub(crate) fn record_l1_refused(&self) {
        if self.emit_metrics {
            self.l1_refused_counter
                .get_or_init(|| {
                    metrics::counter!("cache_l1_admission_refused_total",
                        "tenant_id" => self.label.to_string())
                })
                .increment(1);
        }
    }

    fn record(&self, op: Op, result: OpResult, elapsed: Duration, count: u64) {
        match result {
            OpResult::Hit => self.hits.fetch_add(count, Ordering::Relaxed),
            OpResult::Miss => self.misses.fetch_add(count, Ordering::Relaxed),
            OpResult::Error => self.errors.fetch_add(1, Ordering::Relaxed),
            OpResult::Ok => 0,
        };
        match (op, result) {
            (Op::Set | Op::SetBatch, OpResult::Ok) => {
                self.sets.fetch_add(count, Ordering::Relaxed);
            }
            (Op::Delete, OpResult::Ok) => {
                self.deletes.fetch_add(count, Ordering::Relaxed);
            }
            _ => {}
        }
        self.latency[op.index()]
            .get_or_init(Default::default)
            .record(elapsed);
        if self.emit_metrics {
            self.latency_metrics[op.index()]
                .get_or_init(|| {
                    metrics::histogram!("cache_access_duration_seconds",
                        "tenant_id" => self.label.to_string(),
                        "operation" => op.as_str())
                })
                .record(elapsed.as_secs_f64());
            let slot = op.index() * RESULTS + result as usize;
            self.op_counters[slot]
                .get_or_init(|| {
                    metrics::counter!("cache_operations_total",
                        "tenant_id" => self.label.to_string(),
                        "operation" => op.as_str(),
                        "result" => result.as_str())
                })
                .increment(count);
            if matches!(result, OpResult::Hit | OpResult::Miss) {
                self.hit_rate_gauge
                    .get_or_init(
                        || metrics::gauge!("cache_hit_rate", "tenant_id" => self.label.to_string()),
                    )
                    .set(self.hit_rate());
            }
        }
    }

    fn hit_rate(&self) -> f64 {
        let hits = self.hits.load(Ordering::Relaxed) as f64;
        let total = hits + self.misses.load(Ordering::Relaxed) as f64;
        if total == 0.0 { 0.0 } else { hits / total }
    }

    /// Notes the store's view of the scope after a write or removal.
    pub(crate) fn observe_usage(&self, used_bytes: u64, entries: u64) {
        self.used_bytes.store(used_bytes, Ordering::Relaxed);
        self.entries.store(entries, Ordering::Relaxed);
        if self.emit_metrics {
            self.memory_gauge
                .get_or_init(|| {
                    metrics::gauge!("cache_memory_usage_bytes", "tenant_id" => self.label.to_string())
                })
                .set(used_bytes as f64);
        }
    }

    fn snapshot(&self) -> StatsSnapshot {
        let mut latency = BTreeMap::new();
        for op in OPS {
            if let Some(s) = self.latency[op.index()]
                .get()
                .and_then(|h| LatencySummary::of(h))
            {
                latency.insert(op.as_str(), s);
            }
        }
        StatsSnapshot {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            hit_rate: self.hit_rate(),
            sets: self.sets.load(Ordering::Relaxed),
            deletes: self.deletes.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            used_bytes: self.used_bytes.load(Ordering::Relaxed),
            entries: self.entries.load(Ordering::Relaxed),
            latency,
        }
    }
}

/// Latency percentiles of one operation, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Observations.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 95th percentile.
    pub p95_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
}

impl LatencySummary {
    fn of(h: &LatencyHistogram) -> Option<Self> {
        let us = |q| h.quantile(q).map(|d| d.as_nanos() as f64 / 1_000.0);
        Some(Self {
            count: h.count(),
            p50_us: us(0.50)?,
            p95_us: us(0.95)?,
            p99_us: us(0.99)?,
        })
    }
}

/// A point-in-time copy of one scope's counters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsSnapshot {
    /// Gets that found an entry (batch gets count each key).
    pub hits: u64,
    /// Gets that found nothing.
    pub misses: u64,
    /// hits / (hits + misses), 0 when there were none.
    pub hit_rate: f64,
    /// Entries written.
    pub sets: u64,
    /// Entries deleted by key.
    pub deletes: u64,
    /// Entries evicted to keep a tenant within its budget.
    pub evictions: u64,
    /// Failed operations.
    pub errors: u64,
    /// Envelope bytes written.
    pub bytes_written: u64,
    /// Bytes in use in the store, as last observed (for the overall row: the sum of the
    /// tracked scopes).
    pub used_bytes: u64,
    /// Entries in the store, as last observed.
    pub entries: u64,
    /// Latency percentiles by operation name.
    pub latency: BTreeMap<&'static str, LatencySummary>,
}

/// Stats of the whole cache.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheStats {
    /// Every operation of every scope.
    pub overall: StatsSnapshot,
    /// Per scope: tenant ids, `_global` for entries without a tenant, `_other` for
    /// tenants beyond `max_tracked_tenants`.
    pub tenants: BTreeMap<String, StatsSnapshot>,
}

/// Where stats are kept.
pub(crate) struct StatsRegistry {
    overall: ScopeStats,
    scopes: DashMap<Arc<str>, Arc<ScopeStats>>,
    other: Arc<ScopeStats>,
    max_tracked: usize,
}

impl StatsRegistry {
    pub(crate) fn new(max_tracked: usize) -> Self {
        Self {
            overall: ScopeStats::new(Arc::from("_all"), false),
            scopes: DashMap::new(),
            other: Arc::new(ScopeStats::new(Arc::from("_other"), true)),
            max_tracked,
        }
    }

    /// The stats of the scope labelled `label`, or `_other` when too many are tracked.
    pub(crate) fn scope(&self, label: &str) -> Arc<ScopeStats> {
        if let Some(s) = self.scopes.get(label) {
            return s.clone();
        }
        if self.scopes.len() >= self.max_tracked {
            return self.other.clone();
        }
        let label: Arc<str> = Arc::from(label);
        self.scopes
            .entry(label.clone())
            .or_insert_with(|| Arc::new(ScopeStats::new(label, true)))
            .clone()
    }

    /// Records one operation (`count` entries) on `scope` and overall.
    pub(crate) fn record(
        &self,
        scope: &ScopeStats,
        op: Op,
        result: OpResult,
        elapsed: Duration,
        count: u64,
    ) {
        scope.record(op, result, elapsed, count);
        self.overall.record(op, result, elapsed, count);
    }

    /// Counts bytes written and evictions after a put.
    pub(crate) fn record_put(&self, scope: &ScopeStats, bytes: u64, evicted: u64) {
        for s in [scope, &self.overall] {
            s.bytes_written.fetch_add(bytes, Ordering::Relaxed);
            s.evictions.fetch_add(evicted, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        let mut tenants = BTreeMap::new();
        for item in self.scopes.iter() {
            tenants.insert(item.key().to_string(), item.value().snapshot());
        }
        let other = self.other.snapshot();
        if other.hits + other.misses + other.sets + other.errors > 0 {
            tenants.insert("_other".to_owned(), other);
        }
        let mut overall = self.overall.snapshot();
        overall.used_bytes = tenants.values().map(|t| t.used_bytes).sum();
        overall.entries = tenants.values().map(|t| t.entries).sum();
        CacheStats { overall, tenants }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_scope_and_overall() {
        let reg = StatsRegistry::new(2);
        let a = reg.scope("a");
        reg.record(&a, Op::Get, OpResult::Hit, Duration::from_micros(1), 1);
        reg.record(&a, Op::Get, OpResult::Miss, Duration::from_micros(3), 1);
        reg.record(&a, Op::SetBatch, OpResult::Ok, Duration::from_micros(9), 5);
        let snap = reg.snapshot();
        let t = &snap.tenants["a"];
        assert_eq!((t.hits, t.misses, t.sets), (1, 1, 5));
        assert_eq!(t.hit_rate, 0.5);
        assert_eq!(snap.overall.sets, 5);
        assert_eq!(t.latency["get"].count, 2);
    }

    #[test]
    fn tenants_beyond_the_limit_share_other() {
        let reg = StatsRegistry::new(2);
        reg.scope("a");
        reg.scope("b");
        let c = reg.scope("c");
        reg.record(&c, Op::Get, OpResult::Miss, Duration::from_micros(1), 1);
        let snap = reg.snapshot();
        assert!(!snap.tenants.contains_key("c"));
        assert_eq!(snap.tenants["_other"].misses, 1);
    }

    /// A recorder that keeps the name and sorted labels of every registered series.
    #[derive(Default)]
    struct Registered(std::sync::Mutex<Vec<String>>);

    impl Registered {
        fn note(&self, kind: &str, key: &metrics::Key) {
            let mut labels: Vec<_> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            let series = format!("{kind} {}{{{}}}", key.name(), labels.join(","));
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(series);
        }
    }

    impl metrics::Recorder for Registered {
        fn describe_counter(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_gauge(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_histogram(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> Counter {
            self.note("counter", key);
            Counter::noop()
        }
        fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> Gauge {
            self.note("gauge", key);
            Gauge::noop()
        }
        fn register_histogram(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> Histogram {
            self.note("histogram", key);
            Histogram::noop()
        }
    }

    #[test]
    fn series_carry_the_tenant_label_and_the_overall_row_emits_none() {
        let rec = Registered::default();
        metrics::with_local_recorder(&rec, || {
            let reg = StatsRegistry::new(1);
            let a = reg.scope("a");
            reg.record(&a, Op::Get, OpResult::Hit, Duration::from_micros(2), 1);
            a.observe_usage(10, 1);
            a.record_l1_refused();
            let beyond = reg.scope("b");
            reg.record(&beyond, Op::Set, OpResult::Ok, Duration::from_micros(5), 1);
        });
        let mut series = rec
            .0
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        series.sort();
        assert_eq!(
            series,
            [
                "counter cache_l1_admission_refused_total{tenant_id=a}",
                "counter cache_operations_total{operation=get,result=hit,tenant_id=a}",
                "counter cache_operations_total{operation=set,result=ok,tenant_id=_other}",
                "gauge cache_hit_rate{tenant_id=a}",
                "gauge cache_memory_usage_bytes{tenant_id=a}",
                "histogram cache_access_duration_seconds{operation=get,tenant_id=a}",
                "histogram cache_access_duration_seconds{operation=set,tenant_id=_other}",
            ]
        );
    }
}
