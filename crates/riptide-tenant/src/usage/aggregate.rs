//! In-memory aggregation: the per-(tenant, month) `Aggregate` that recording adds to,
//! the bounded buffer of open aggregates (`tenant.usage_buffer_max`), and the mapping
//! between aggregates and the stored counters.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use dashmap::mapref::entry::Entry;

use super::{
    MAX_OPERATION_NAMES, NEVER, OP_FIELD_PREFIX, OTHER_OPERATION, Recorded, UsageMeter,
    UsageSummary,
};
use crate::model::ResourceUsageRecord;
use crate::period::Period;
use riptide_store::tenant_id::TenantId;

/// At most one "buffer full" log line per this many ms.
const DROP_LOG_INTERVAL_MS: u64 = 10_000;

/// A (tenant, month) whose usage is aggregated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct AggKey {
    pub(super) tenant: TenantId,
    pub(super) period: Period,
}

/// An open aggregate and the batch id it will be written under: fixed when the
/// aggregate is created and kept through sealing and every retry, so a reader can ask
/// the store whether this very usage is in the stored counters yet.
#[derive(Debug)]
pub(super) struct OpenAgg {
    pub(super) id: String,
    pub(super) agg: Aggregate,
}

/// Usage summed in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Aggregate {
    operations: u64,
    data_bytes: u64,
    compute_ms: u64,
    storage_bytes: u64,
    cache_hits: u64,
    cache_misses: u64,
    /// At most `MAX_OPERATION_NAMES` names plus `other`; a short vector beats a map here.
    by_operation: Vec<(String, u64)>,
}

impl Aggregate {
    pub(super) fn add_record(&mut self, operation: &str, rec: &ResourceUsageRecord) {
        self.operations = self.operations.saturating_add(rec.operation_count);
        self.data_bytes = self.data_bytes.saturating_add(rec.data_bytes);
        self.compute_ms = self.compute_ms.saturating_add(rec.compute_time_ms);
        self.storage_bytes = self.storage_bytes.saturating_add(rec.storage_bytes);
        if rec.operation_count > 0 {
            self.add_operation(operation, rec.operation_count);
        }
    }

    pub(super) fn add_cache(&mut self, hits: u64, misses: u64) {
        self.cache_hits = self.cache_hits.saturating_add(hits);
        self.cache_misses = self.cache_misses.saturating_add(misses);
    }

    fn add_operation(&mut self, name: &str, n: u64) {
        if let Some((_, count)) = self.by_operation.iter_mut().find(|(k, _)| k == name) {
            *count = count.saturating_add(n);
            return;
        }
        let named = self
            .by_operation
            .iter()
            .filter(|(k, _)| k != OTHER_OPERATION)
            .count();
        if name != OTHER_OPERATION && named >= MAX_OPERATION_NAMES {
            self.add_operation(OTHER_OPERATION, n);
        } else {
            self.by_operation.push((name.to_owned(), n));
        }
    }

    /// Adds this aggregate into a summary (pending usage on top of stored usage).
    pub(super) fn add_to(&self, s: &mut UsageSummary) {
        s.operations = s.operations.saturating_add(self.operations);
        s.data_bytes = s.data_bytes.saturating_add(self.data_bytes);
        s.compute_ms = s.compute_ms.saturating_add(self.compute_ms);
        s.storage_bytes = s.storage_bytes.saturating_add(self.storage_bytes);
        s.cache_hits = s.cache_hits.saturating_add(self.cache_hits);
        s.cache_misses = s.cache_misses.saturating_add(self.cache_misses);
        for (name, n) in &self.by_operation {
            s.add_operation(name, *n);
        }
    }

    /// The counter increments of this aggregate, given the operation names already
    /// stored for its month (names that would exceed the bound go to `other`); and the
    /// names this adds to the stored ones.
    pub(super) fn increments(
        &self,
        stored: &BTreeSet<String>,
    ) -> (Vec<(String, i64)>, Vec<String>) {
        let mut out = Vec::with_capacity(6 + self.by_operation.len());
        for (field, v) in [
            ("operations", self.operations),
            ("data_bytes", self.data_bytes),
            ("compute_ms", self.compute_ms),
            ("storage_bytes", self.storage_bytes),
            ("cache_hits", self.cache_hits),
            ("cache_misses", self.cache_misses),
        ] {
            if v > 0 {
                out.push((field.to_owned(), to_i64(v)));
            }
        }
        let mut named = stored.iter().filter(|n| *n != OTHER_OPERATION).count();
        let mut added = Vec::new();
        let mut other = 0u64;
        for (name, n) in &self.by_operation {
            if name == OTHER_OPERATION {
                other = other.saturating_add(*n);
            } else if stored.contains(name) {
                out.push((format!("{OP_FIELD_PREFIX}{name}"), to_i64(*n)));
            } else if named < MAX_OPERATION_NAMES {
                named += 1;
                added.push(name.clone());
                out.push((format!("{OP_FIELD_PREFIX}{name}"), to_i64(*n)));
            } else {
                other = other.saturating_add(*n);
            }
        }
        if other > 0 {
            if !stored.contains(OTHER_OPERATION) {
                added.push(OTHER_OPERATION.to_owned());
            }
            out.push((format!("{OP_FIELD_PREFIX}{OTHER_OPERATION}"), to_i64(other)));
        }
        (out, added)
    }
}

/// Counters are `i64` in the store; usage beyond `i64::MAX` in one batch saturates.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A month's stored counters as a summary; negative values (never written by this
/// module) read as 0, unknown fields are ignored.
pub(super) fn summary_from_counters(period: Period, counters: &[(String, i64)]) -> UsageSummary {
    let mut s = UsageSummary::empty(period);
    for (field, v) in counters {
        let v = u64::try_from(*v).unwrap_or(0);
        match field.as_str() {
            "operations" => s.operations = v,
            "data_bytes" => s.data_bytes = v,
            "compute_ms" => s.compute_ms = v,
            "storage_bytes" => s.storage_bytes = v,
            "cache_hits" => s.cache_hits = v,
            "cache_misses" => s.cache_misses = v,
            other => {
                if let Some(name) = other.strip_prefix(OP_FIELD_PREFIX) {
                    s.add_operation(name, v);
                }
            }
        }
    }
    s
}

impl UsageMeter {
    pub(super) fn add(
        &self,
        tenant: &TenantId,
        period: Period,
        apply: impl FnOnce(&mut Aggregate),
    ) -> Recorded {
        let key = AggKey {
            tenant: tenant.clone(),
            period,
        };
        let buffered = match self.open.entry(key) {
            Entry::Occupied(mut e) => {
                apply(&mut e.get_mut().agg);
                true
            }
            Entry::Vacant(v) => {
                let max = self.buffer_max;
                let reserved = self
                    .slots
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < max).then_some(n + 1)
                    })
                    .is_ok();
                if reserved {
                    let mut agg = Aggregate::default();
                    apply(&mut agg);
                    v.insert(OpenAgg {
                        id: self.next_batch_id(),
                        agg,
                    });
                }
                reserved
            }
        };
        // The map's shard lock is released here, before any logging.
        if buffered {
            Recorded::Buffered
        } else {
            self.note_drop(tenant, period);
            Recorded::Dropped
        }
    }

    /// A batch id unique across instances and restarts: `<instance>:<seq>`.
    fn next_batch_id(&self) -> String {
        format!(
            "{}:{}",
            self.instance,
            self.seq.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn note_drop(&self, tenant: &TenantId, period: Period) {
        let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        self.metrics.with(|m| m.record_usage_dropped(1));
        self.drops_unlogged.fetch_add(1, Ordering::Relaxed);
        let now = self.clock.now_ms();
        let last = self.last_drop_log_ms.load(Ordering::Relaxed);
        let due = last == NEVER || now.saturating_sub(last) >= DROP_LOG_INTERVAL_MS;
        // One thread wins the right to log; the others just count.
        if due
            && self
                .last_drop_log_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let since_last_log = self.drops_unlogged.swap(0, Ordering::Relaxed);
            tracing::warn!(
                tenant.id = %tenant,
                usage.period = %period,
                usage.dropped = since_last_log,
                usage.dropped_total = total,
                usage.buffer_max = self.buffer_max,
                "usage buffer full: usage of new (tenant, month) pairs is dropped until a flush succeeds"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn rec(ops: u64) -> ResourceUsageRecord {
        ResourceUsageRecord {
            operation_count: ops,
            data_bytes: 10,
            compute_time_ms: 2,
            storage_bytes: 1,
            timestamp: Utc::now(),
        }
    }

    #[test]
    fn aggregate_sums_and_bounds_operation_names() {
        let mut agg = Aggregate::default();
        for i in 0..40 {
            agg.add_record(&format!("op{i}"), &rec(2));
        }
        agg.add_record("op0", &rec(1));
        agg.add_cache(3, 4);
        assert_eq!(agg.operations, 81);
        assert_eq!(agg.data_bytes, 410);
        assert_eq!((agg.cache_hits, agg.cache_misses), (3, 4));
        assert_eq!(agg.by_operation.len(), MAX_OPERATION_NAMES + 1);
        let other = agg
            .by_operation
            .iter()
            .find(|(n, _)| n == OTHER_OPERATION)
            .map(|(_, c)| *c);
        assert_eq!(other, Some(16));
        let total: u64 = agg.by_operation.iter().map(|(_, c)| c).sum();
        assert_eq!(total, agg.operations);
    }

    #[test]
    fn increments_respect_names_already_stored() {
        let stored: BTreeSet<String> = (0..31).map(|i| format!("s{i}")).collect();
        let mut agg = Aggregate::default();
        agg.add_record("s3", &rec(1));
        agg.add_record("new1", &rec(2));
        agg.add_record("new2", &rec(4));
        let (inc, added) = agg.increments(&stored);
        assert_eq!(added, ["new1", "other"]);
        let get = |f: &str| inc.iter().find(|(k, _)| k == f).map(|(_, v)| *v);
        assert_eq!(get("op:s3"), Some(1));
        assert_eq!(get("op:new1"), Some(2));
        assert_eq!(get("op:new2"), None);
        assert_eq!(get("op:other"), Some(4));
        assert_eq!(get("operations"), Some(7));
        assert_eq!(get("cache_hits"), None, "zero fields are not sent");
    }

    #[test]
    fn huge_values_saturate_into_i64() {
        let mut agg = Aggregate::default();
        agg.add_record(
            "x",
            &ResourceUsageRecord {
                operation_count: u64::MAX,
                ..rec(0)
            },
        );
        agg.add_record("x", &rec(5));
        assert_eq!(agg.operations, u64::MAX);
        let (inc, _) = agg.increments(&BTreeSet::new());
        assert!(inc.iter().any(|(k, v)| k == "operations" && *v == i64::MAX));
    }

    #[test]
    fn stored_counters_read_back_as_a_summary() {
        let period = Period::parse("2026-11").expect("period");
        let counters = vec![
            ("operations".to_owned(), 5),
            ("cache_hits".to_owned(), -3),
            ("op:api_request".to_owned(), 5),
            ("unrelated".to_owned(), 9),
        ];
        let s = summary_from_counters(period, &counters);
        assert_eq!(s.period, "2026-11");
        assert_eq!((s.operations, s.cache_hits), (5, 0));
        assert_eq!(s.by_operation.get("api_request"), Some(&5));
        assert_eq!(s.by_operation.len(), 1);
    }
}
