//! Usage metering: [`UsageMeter`] aggregates usage in memory on the request path and
//! flushes it to the store in idempotent batches.
//!
//! # Request path
//!
//! [`UsageMeter::record`] and [`UsageMeter::record_cache`] are synchronous: they add to
//! an in-memory aggregate per (tenant, calendar month of the record's timestamp) and
//! never touch the store. At most `tenant.usage_buffer_max` aggregates are held (open
//! ones plus batches waiting to be written); when full, usage for a (tenant, month)
//! that has no open aggregate is dropped, counted ([`UsageMeter::dropped`],
//! `usage_dropped_total`) and logged at most once per 10 s. Below the bound nothing is
//! lost, however long the store is unreachable.
//!
//! # Flushing
//!
//! [`UsageMeter::flush`] (run every `tenant.usage_flush_interval_ms` by
//! [`UsageMeter::spawn_flusher`], and once more on shutdown) seals each open aggregate
//! into a batch and adds it to the stored counters with
//! [`Counters::counters_add_once`](riptide_store::Counters::counters_add_once) under the
//! aggregate's id, unique across instances and fixed when the aggregate was opened
//! (`<instance>:<seq>`). A batch
//! whose write fails stays pending **with its id** and is written again by the next
//! flush; the store remembers applied ids for [`DEDUPE_WINDOW_MS`], so a write that was
//! applied but whose reply was lost is not counted twice. While a batch of a
//! (tenant, month) is pending, new usage of it accumulates in a fresh aggregate, which
//! is sealed only once the pending batch is settled: each (tenant, month) holds at most
//! two buffer slots, whatever the length of an outage.
//!
//! # Reads
//!
//! [`UsageMeter::usage`] (the request path reads it: the monthly `data_transfer_bytes`
//! check, `GET /usage`) never waits for a flush, however slow the store is for it. It
//! takes what this instance holds for the month (the pending batch and the open
//! aggregate, each with its id) under a short lock, then reads the stored counters
//! together with whether each of those ids is applied already, in one atomic store call
//! ([`Counters::counters_get_applied`](riptide_store::Counters::counters_get_applied)), and
//! adds only what the store does not hold yet. Usage is written under one id from the
//! moment it is recorded, so it is counted exactly once whether the flush writing it has
//! not started, is in flight, or has applied it without its reply arriving yet.
//!
//! # Key layout (all under the tenant's hash tag `{<id>}`)
//!
//! | record | key | kind |
//! |---|---|---|
//! | a month's usage | `<p>:tenant:{<id>}:usage:YYYY-MM` | counters: `operations`, `data_bytes`, `compute_ms`, `storage_bytes`, `cache_hits`, `cache_misses`, `op:<operation>` |
//! | batch ids applied | `<p>:tenant:{<id>}:usage_batches` | the store's dedupe record |
//! | months with usage | `<p>:tenant:{<id>}:usage_months` | sorted set: `YYYY-MM` scored `YYYYMM` |
//!
//! At most [`MAX_OPERATION_NAMES`] operation names are kept per tenant-month; further
//! names are counted under [`OTHER_OPERATION`]. Each instance enforces this against the
//! names it knows to be stored; instances adding new names at the same moment may each
//! add one, so the stored count can exceed the bound by the number of instances.

mod aggregate;
mod flush;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dashmap::DashMap;
use serde::Serialize;

use self::aggregate::{AggKey, OpenAgg, summary_from_counters};
use self::flush::Batch;
use super::error::TenantResult;
use super::metrics_lock::SharedTenantMetrics;
use super::model::ResourceUsageRecord;
use super::period::Period;
pub use super::usage_summary::{
    MAX_OPERATION_LEN, MAX_OPERATION_NAMES, OTHER_OPERATION, UsageSummary, is_valid_operation,
    validate_operation,
};
use crate::config::TenancyConfig;
use crate::expiring::ExpiringCache;
use riptide_store::SharedStore;
use riptide_store::clock::SharedClock;
use riptide_store::keys::{Scope, ScopeKeys, records};
use riptide_store::tenant_id::TenantId;

/// How long the store remembers an applied batch id, in ms. A batch retried later than
/// this after a write whose reply was lost could be counted twice (a warning is logged
/// when that can happen). One hour covers long outages while bounding the dedupe record
/// to one id per flush interval and hour for each active tenant.
pub const DEDUPE_WINDOW_MS: u64 = 60 * 60 * 1_000;

/// Months index entries handled per round trip when purging.
const MONTHS_PAGE: u64 = 500;

/// Prefix of per-operation fields in a month's counters record.
const OP_FIELD_PREFIX: &str = "op:";

/// Suffix (after the tenant's scope) of the months index.
const MONTHS_RECORD: &str = records::USAGE_MONTHS;

/// Suffix of the applied-batch-ids record.
const BATCHES_RECORD: &str = records::USAGE_BATCHES;

/// "Never logged yet" marker for the drop log's last time.
const NEVER: u64 = u64::MAX;

/// How long the operation names known for a (tenant, month) are trusted after its last
/// flush wrote them (every flush of that month writes them again), so a month no
/// longer written to leaves memory within the hour.
const KNOWN_NAMES_TTL: Duration = Duration::from_secs(3_600);

/// What happened to a recorded observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Added to an in-memory aggregate; it will be flushed.
    Buffered,
    /// The buffer was full: dropped, counted and logged.
    Dropped,
}

/// What one flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FlushReport {
    /// Batches added to the stored counters now.
    pub applied: usize,
    /// Batches the store had applied already (a retry after a lost reply): not counted again.
    pub already_applied: usize,
    /// Batches not written (failed, or skipped once the store was found unreachable);
    /// they stay pending and are retried by the next flush.
    pub failed: usize,
    /// Aggregates still held in memory afterwards (open and pending).
    pub pending: usize,
}

/// The usage meter of one instance: in-memory aggregates, batch flushing, stored reads.
pub struct UsageMeter {
    store: SharedStore,
    clock: SharedClock,
    metrics: SharedTenantMetrics,
    buffer_max: usize,
    flush_interval: Duration,
    /// Random per meter, so batch ids never collide across instances or restarts.
    instance: String,
    seq: AtomicU64,
    open: DashMap<AggKey, OpenAgg>,
    /// At most one per key; only flush, purge and reads touch it (never `record`).
    batches: Mutex<HashMap<AggKey, Batch>>,
    /// `open.len() + batches.len()`, reserved before an insert so the bound is exact.
    slots: AtomicUsize,
    dropped: AtomicU64,
    drops_unlogged: AtomicU64,
    last_drop_log_ms: AtomicU64,
    /// A flush failed and the failure was logged; cleared (and logged) on recovery.
    failing: AtomicBool,
    /// Held by a flush or a purge for its whole run (store round trips included), so
    /// they run one at a time. Reads never take it (see the module docs).
    flushing: tokio::sync::Mutex<()>,
    /// Per (tenant, month): the operation names known to be stored. Present means the
    /// month is registered in the months index too, so steady-state flushes are one round
    /// trip per batch. Bounded like the buffer; a miss costs one read.
    known: ExpiringCache<AggKey, Arc<BTreeSet<String>>>,
}

impl std::fmt::Debug for UsageMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageMeter")
            .field("instance", &self.instance)
            .field("buffer_max", &self.buffer_max)
            .field("pending", &self.pending())
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl UsageMeter {
    /// A meter over `store`, months taken from record timestamps (cache counts: from
    /// `clock`), bounded by `cfg.usage_buffer_max`. Applies `cfg.max_metric_tenants` to
    /// `metrics`.
    pub fn new(
        store: SharedStore,
        clock: SharedClock,
        cfg: &TenancyConfig,
        metrics: impl Into<SharedTenantMetrics>,
    ) -> Arc<Self> {
        let buffer_max = cfg.usage_buffer_max.max(1);
        let metrics: SharedTenantMetrics = metrics.into();
        metrics.with(|m| m.set_max_tenants(cfg.max_metric_tenants));
        Arc::new(Self {
            store,
            clock,
            metrics,
            buffer_max,
            flush_interval: Duration::from_millis(cfg.usage_flush_interval_ms.max(1)),
            instance: format!("{:016x}", rand::random::<u64>()),
            seq: AtomicU64::new(0),
            open: DashMap::new(),
            batches: Mutex::new(HashMap::new()),
            slots: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            drops_unlogged: AtomicU64::new(0),
            last_drop_log_ms: AtomicU64::new(NEVER),
            failing: AtomicBool::new(false),
            flushing: tokio::sync::Mutex::new(()),
            known: ExpiringCache::new(buffer_max as u64, KNOWN_NAMES_TTL),
        })
    }

    /// The configured flush interval (`tenant.usage_flush_interval_ms`).
    pub fn flush_interval(&self) -> Duration {
        self.flush_interval
    }

    /// Records one observation of `operation` for `tenant`, in the month of
    /// `rec.timestamp`. No I/O. Also counts `tenant_operations_total`.
    ///
    /// Refuses an operation name that does not match `^[a-z0-9_.:-]{1,64}$` and a
    /// timestamp outside the years 1970 to 9999.
    pub fn record(
        &self,
        tenant: &TenantId,
        operation: &str,
        rec: &ResourceUsageRecord,
    ) -> TenantResult<Recorded> {
        self.record_with_cache(tenant, operation, rec, 0, 0)
    }

    /// [`Self::record`] and [`Self::record_cache`] of one request in one step (one
    /// aggregate update): the observation and `cache_hits`/`cache_misses`, all in the
    /// month of `rec.timestamp`.
    pub fn record_with_cache(
        &self,
        tenant: &TenantId,
        operation: &str,
        rec: &ResourceUsageRecord,
        cache_hits: u64,
        cache_misses: u64,
    ) -> TenantResult<Recorded> {
        validate_operation(operation)?;
        let period = Period::of(&rec.timestamp)?;
        let outcome = self.add(tenant, period, |agg| {
            agg.add_record(operation, rec);
            agg.add_cache(cache_hits, cache_misses);
        });
        self.metrics
            .with(|m| m.record_operation(tenant, operation, rec.operation_count));
        Ok(outcome)
    }

    /// Records cache hits and misses of `tenant` in the current month (by the clock).
    /// Nothing to record (both 0) is `Buffered` without using a buffer slot.
    pub fn record_cache(
        &self,
        tenant: &TenantId,
        hits: u64,
        misses: u64,
    ) -> TenantResult<Recorded> {
        if hits == 0 && misses == 0 {
            return Ok(Recorded::Buffered);
        }
        let period = Period::of_unix_ms(self.clock.now_ms())?;
        Ok(self.add(tenant, period, |agg| agg.add_cache(hits, misses)))
    }

    /// (tenant, month) aggregates held in memory: open ones plus batches not yet written.
    pub fn pending(&self) -> usize {
        self.slots.load(Ordering::Acquire)
    }

    /// Observations dropped because the buffer was full, since this meter started.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// `tenant`'s usage in `period` (`YYYY-MM`): the stored counters plus what this
    /// instance still holds in memory and the store does not, so a read right after
    /// [`Self::record`] sees it. One store round trip; never waits for a flush (see the
    /// module docs).
    pub async fn usage(&self, tenant: &TenantId, period: &str) -> TenantResult<UsageSummary> {
        self.usage_of(tenant, Period::parse(period)?).await
    }

    /// As [`Self::usage`], with a parsed period.
    pub async fn usage_of(&self, tenant: &TenantId, period: Period) -> TenantResult<UsageSummary> {
        let key = AggKey {
            tenant: tenant.clone(),
            period,
        };
        // Under the batches lock, which sealing holds while it moves an open aggregate
        // into a batch: each piece of usage is seen once, as pending or as open.
        let held: Vec<(String, aggregate::Aggregate)> = {
            let batches = lock(&self.batches);
            let pending = batches.get(&key).map(|b| (b.id.clone(), b.agg.clone()));
            let open = self.open.get(&key).map(|o| (o.id.clone(), o.agg.clone()));
            pending.into_iter().chain(open).collect()
        };
        let ids: Vec<String> = held.iter().map(|(id, _)| id.clone()).collect();
        let keys = ScopeKeys::new(self.store.key_prefix(), &Scope::Tenant(tenant.clone()));
        let stored = self
            .store
            .counters_get_applied(
                &keys.record(&records::usage(period)),
                &keys.record(BATCHES_RECORD),
                &ids,
            )
            .await?;
        let mut summary = summary_from_counters(period, &stored.counters);
        for ((_, agg), applied) in held.iter().zip(stored.applied) {
            if !applied {
                agg.add_to(&mut summary);
            }
        }
        Ok(summary)
    }

    /// The months in which `tenant` has usage, stored or pending here, oldest first.
    /// Never waits for a flush: a month a flush is adding shows up from memory or from
    /// the store, and the union holds it once.
    pub async fn months(&self, tenant: &TenantId) -> TenantResult<Vec<Period>> {
        let keys = ScopeKeys::new(self.store.key_prefix(), &Scope::Tenant(tenant.clone()));
        let months_key = keys.record(MONTHS_RECORD);
        let mut months = BTreeSet::new();
        let mut offset = 0;
        loop {
            let page = self
                .store
                .zset_range(&months_key, offset, MONTHS_PAGE)
                .await?;
            let n = page.len() as u64;
            // A member that is not a period was not written here; skip it rather than fail.
            months.extend(page.iter().filter_map(|(m, _)| Period::parse(m).ok()));
            if n < MONTHS_PAGE {
                break;
            }
            offset += n;
        }
        months.extend(
            lock(&self.batches)
                .keys()
                .filter(|k| k.tenant == *tenant)
                .map(|k| k.period),
        );
        months.extend(
            self.open
                .iter()
                .filter(|e| e.key().tenant == *tenant)
                .map(|e| e.key().period),
        );
        Ok(months.into_iter().collect())
    }

    /// Deletes all of `tenant`'s usage: every month's counters, the months index and
    /// the applied-batch-ids record, and drops its pending aggregates. Returns how many
    /// stored months were deleted. Used when `tenant.purge_billing_history_on_delete`.
    ///
    /// Usage recorded for the tenant after this call starts afresh. A failed purge can be
    /// repeated: the months index is emptied only after the months it lists.
    pub async fn purge(&self, tenant: &TenantId) -> TenantResult<u64> {
        let _flushing = self.flushing.lock().await;
        let mut dropped = 0;
        lock(&self.batches).retain(|k, _| {
            let keep = k.tenant != *tenant;
            dropped += usize::from(!keep);
            keep
        });
        self.open.retain(|k, _| {
            let keep = k.tenant != *tenant;
            dropped += usize::from(!keep);
            keep
        });
        self.slots.fetch_sub(dropped, Ordering::AcqRel);
        self.metrics.with(|m| m.set_usage_pending(self.pending()));

        let keys = ScopeKeys::new(self.store.key_prefix(), &Scope::Tenant(tenant.clone()));
        let months_key = keys.record(MONTHS_RECORD);
        let mut deleted = 0u64;
        loop {
            let page = self.store.zset_range(&months_key, 0, MONTHS_PAGE).await?;
            if page.is_empty() {
                break;
            }
            let members: Vec<String> = page.into_iter().map(|(m, _)| m).collect();
            let usage_keys: Vec<String> = members
                .iter()
                .map(|m| keys.record(&records::usage(m)))
                .collect();
            deleted += self.store.delete(&usage_keys).await?;
            for m in &members {
                if let Ok(period) = Period::parse(m) {
                    self.known.invalidate(&AggKey {
                        tenant: tenant.clone(),
                        period,
                    });
                }
            }
            self.store.zset_remove(&months_key, &members).await?;
        }
        self.store
            .delete(&[months_key, keys.record(BATCHES_RECORD)])
            .await?;
        Ok(deleted)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves consistent data (every update is
    // a single insert/remove), so recover it rather than propagate the panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TenantError;

    #[test]
    fn operation_names_are_validated() {
        for ok in [
            "api_request",
            "a",
            "cache:read",
            "v1.extract-x",
            &"a".repeat(64),
        ] {
            assert!(validate_operation(ok).is_ok(), "{ok}");
        }
        for bad in ["", "API", "a b", "a/b", "é", "a\n", &"a".repeat(65)] {
            assert!(
                matches!(
                    validate_operation(bad),
                    Err(TenantError::InvalidField {
                        field: "operation",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }
}
