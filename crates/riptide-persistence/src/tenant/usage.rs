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
//! into a batch with a unique id (`<instance>:<seq>`) and adds it to the stored counters
//! with [`Store::counters_add_once`](crate::store::Store::counters_add_once). A batch
//! whose write fails stays pending **with its id** and is written again by the next
//! flush; the store remembers applied ids for [`DEDUPE_WINDOW_MS`], so a write that was
//! applied but whose reply was lost is not counted twice. While a batch of a
//! (tenant, month) is pending, new usage of it accumulates in a fresh aggregate, which
//! is sealed only once the pending batch is settled: each (tenant, month) holds at most
//! two buffer slots, whatever the length of an outage.
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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::billing::Period;
use super::error::{TenantError, TenantResult};
use super::metrics::TenantMetrics;
use super::model::ResourceUsageRecord;
use crate::clock::SharedClock;
use crate::config::TenantConfig;
use crate::keys::{Scope, ScopeKeys};
use crate::store::{SharedStore, StoreError};
use crate::tenant_id::{TenantId, truncate_for_error};

/// Most distinct operation names kept per tenant-month; the rest count as [`OTHER_OPERATION`].
pub const MAX_OPERATION_NAMES: usize = 32;

/// The operation name that collects names beyond [`MAX_OPERATION_NAMES`].
pub const OTHER_OPERATION: &str = "other";

/// Longest operation name, in bytes.
pub const MAX_OPERATION_LEN: usize = 64;

/// How long the store remembers an applied batch id, in ms. A batch retried later than
/// this after a write whose reply was lost could be counted twice (a warning is logged
/// when that can happen). One hour covers long outages while bounding the dedupe record
/// to one id per flush interval and hour for each active tenant.
pub const DEDUPE_WINDOW_MS: u64 = 60 * 60 * 1_000;

/// Batch writes in flight at once during a flush: enough to hide round-trip latency for
/// many tenants without flooding the store.
const FLUSH_CONCURRENCY: usize = 16;

/// At most one "buffer full" log line per this many ms.
const DROP_LOG_INTERVAL_MS: u64 = 10_000;

/// Months index entries handled per round trip when purging.
const MONTHS_PAGE: u64 = 500;

/// Prefix of per-operation fields in a month's counters record.
const OP_FIELD_PREFIX: &str = "op:";

/// Suffix (after the tenant's scope) of the months index.
const MONTHS_RECORD: &str = "usage_months";

/// Suffix of the applied-batch-ids record.
const BATCHES_RECORD: &str = "usage_batches";

/// "Never logged yet" marker for the drop log's last time.
const NEVER: u64 = u64::MAX;

/// True when `name` matches `^[a-z0-9_.:-]{1,64}$`.
pub fn is_valid_operation(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_OPERATION_LEN
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b':' | b'-')
        })
}

/// Refuses an operation name that does not match `^[a-z0-9_.:-]{1,64}$`.
pub fn validate_operation(name: &str) -> TenantResult<()> {
    if is_valid_operation(name) {
        Ok(())
    } else {
        Err(TenantError::InvalidField {
            field: "operation",
            reason: format!(
                "{:?} does not match ^[a-z0-9_.:-]{{1,{MAX_OPERATION_LEN}}}$",
                truncate_for_error(name)
            ),
        })
    }
}

/// One tenant's usage in one calendar month.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageSummary {
    /// The month, `YYYY-MM`.
    pub period: String,
    /// Operations.
    pub operations: u64,
    /// Bytes transferred.
    pub data_bytes: u64,
    /// Compute time, ms.
    pub compute_ms: u64,
    /// Durable bytes added.
    pub storage_bytes: u64,
    /// Cache hits.
    pub cache_hits: u64,
    /// Cache misses.
    pub cache_misses: u64,
    /// Operations by name (at most [`MAX_OPERATION_NAMES`] names, then `other`).
    pub by_operation: BTreeMap<String, u64>,
}

impl UsageSummary {
    fn empty(period: Period) -> Self {
        Self {
            period: period.to_string(),
            ..Self::default()
        }
    }

    /// Adds an operation count by name, folding names beyond the bound into `other`.
    fn add_operation(&mut self, name: &str, n: u64) {
        let known = self.by_operation.contains_key(name) || name == OTHER_OPERATION;
        let named =
            self.by_operation.len() - usize::from(self.by_operation.contains_key(OTHER_OPERATION));
        let name = if known || named < MAX_OPERATION_NAMES {
            name
        } else {
            OTHER_OPERATION
        };
        let slot = self.by_operation.entry(name.to_owned()).or_default();
        *slot = slot.saturating_add(n);
    }
}

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

/// A (tenant, month) whose usage is aggregated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AggKey {
    tenant: TenantId,
    period: Period,
}

/// Usage summed in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Aggregate {
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
    fn add_record(&mut self, operation: &str, rec: &ResourceUsageRecord) {
        self.operations = self.operations.saturating_add(rec.operation_count);
        self.data_bytes = self.data_bytes.saturating_add(rec.data_bytes);
        self.compute_ms = self.compute_ms.saturating_add(rec.compute_time_ms);
        self.storage_bytes = self.storage_bytes.saturating_add(rec.storage_bytes);
        if rec.operation_count > 0 {
            self.add_operation(operation, rec.operation_count);
        }
    }

    fn add_cache(&mut self, hits: u64, misses: u64) {
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
    fn add_to(&self, s: &mut UsageSummary) {
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
    fn increments(&self, stored: &BTreeSet<String>) -> (Vec<(String, i64)>, Vec<String>) {
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
fn summary_from_counters(period: Period, counters: &[(String, i64)]) -> UsageSummary {
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

/// A sealed aggregate waiting to be written (or being written).
#[derive(Debug)]
struct Batch {
    /// Its id: kept across retries so the store applies it once.
    id: String,
    agg: Aggregate,
    /// When it was first sealed (clock ms), to warn about retries beyond the dedupe window.
    sealed_ms: u64,
    /// Whether "retried beyond the dedupe window" was logged for it already.
    stale_warned: bool,
}

/// How one batch write ended.
enum Outcome {
    Written {
        applied: bool,
    },
    Failed(TenantError),
    /// Not attempted: the store was found unreachable earlier in this flush.
    Skipped,
}

/// The usage meter of one instance: in-memory aggregates, batch flushing, stored reads.
pub struct UsageMeter {
    store: SharedStore,
    clock: SharedClock,
    metrics: Arc<RwLock<TenantMetrics>>,
    buffer_max: usize,
    flush_interval: Duration,
    /// Random per meter, so batch ids never collide across instances or restarts.
    instance: String,
    seq: AtomicU64,
    open: DashMap<AggKey, Aggregate>,
    /// At most one per key; only flush, purge and reads touch it (never `record`).
    batches: Mutex<HashMap<AggKey, Batch>>,
    /// `open.len() + batches.len()`, reserved before an insert so the bound is exact.
    slots: AtomicUsize,
    dropped: AtomicU64,
    drops_unlogged: AtomicU64,
    last_drop_log_ms: AtomicU64,
    /// A flush failed and the failure was logged; cleared (and logged) on recovery.
    failing: AtomicBool,
    /// Flushes and purges take it exclusively, reads shared: a read never sees a batch
    /// both in the store and still pending in memory.
    gate: tokio::sync::RwLock<()>,
    /// Per (tenant, month): the operation names known to be stored. Present means the
    /// month is registered in the months index too, so steady-state flushes are one round
    /// trip per batch. Bounded like the buffer; a miss costs one read.
    known: moka::sync::Cache<AggKey, Arc<BTreeSet<String>>>,
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
        cfg: &TenantConfig,
        metrics: Arc<RwLock<TenantMetrics>>,
    ) -> Arc<Self> {
        let buffer_max = cfg.usage_buffer_max.max(1);
        read(&metrics).set_max_tenants(cfg.max_metric_tenants);
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
            gate: tokio::sync::RwLock::new(()),
            known: moka::sync::Cache::builder()
                .max_capacity(buffer_max as u64)
                .time_to_idle(Duration::from_secs(3_600))
                .build(),
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
        validate_operation(operation)?;
        let period = Period::of(&rec.timestamp)?;
        let outcome = self.add(tenant, period, |agg| agg.add_record(operation, rec));
        read(&self.metrics).record_operation(tenant, operation, rec.operation_count);
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

    fn add(
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
                apply(e.get_mut());
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
                    v.insert(agg);
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

    fn note_drop(&self, tenant: &TenantId, period: Period) {
        let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        read(&self.metrics).record_usage_dropped(1);
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

    /// (tenant, month) aggregates held in memory: open ones plus batches not yet written.
    pub fn pending(&self) -> usize {
        self.slots.load(Ordering::Acquire)
    }

    /// Observations dropped because the buffer was full, since this meter started.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes every open aggregate and every pending batch to the store.
    ///
    /// Fails with the first store error when any batch could not be written; those
    /// batches stay pending with their ids (see the module docs) and the next flush
    /// retries them. Once the store is found unreachable, the remaining batches of this
    /// flush are not attempted.
    pub async fn flush(&self) -> TenantResult<FlushReport> {
        self.flush_with(false).await
    }

    /// Test hook: a flush whose writes are performed but whose replies are "lost": every
    /// written batch is treated as failed and stays pending with its id, as after a
    /// connection drop between the store applying the write and the reply arriving.
    #[doc(hidden)]
    pub async fn flush_losing_replies(&self) -> TenantResult<FlushReport> {
        self.flush_with(true).await
    }

    async fn flush_with(&self, lose_replies: bool) -> TenantResult<FlushReport> {
        let _exclusive = self.gate.write().await;
        let work = self.seal();
        let store_down = AtomicBool::new(false);
        let outcomes: Vec<(AggKey, String, Outcome)> = futures::stream::iter(work)
            .map(|(key, id, agg)| {
                let store_down = &store_down;
                async move {
                    if store_down.load(Ordering::Acquire) {
                        return (key, id, Outcome::Skipped);
                    }
                    let outcome = match self.write_batch(&key, &id, &agg).await {
                        Ok(_) if lose_replies => Outcome::Failed(TenantError::Store(
                            StoreError::Unavailable("reply lost (test hook)".to_owned()),
                        )),
                        Ok(applied) => Outcome::Written { applied },
                        Err(e) => {
                            if matches!(&e, TenantError::Store(s) if s.is_retryable()) {
                                store_down.store(true, Ordering::Release);
                            }
                            Outcome::Failed(e)
                        }
                    };
                    (key, id, outcome)
                }
            })
            .buffer_unordered(FLUSH_CONCURRENCY)
            .collect()
            .await;

        let mut report = FlushReport::default();
        let mut first_error = None;
        {
            let mut batches = lock(&self.batches);
            for (key, id, outcome) in outcomes {
                match outcome {
                    Outcome::Written { applied } => {
                        if applied {
                            report.applied += 1;
                        } else {
                            report.already_applied += 1;
                        }
                        if batches.get(&key).is_some_and(|b| b.id == id) {
                            batches.remove(&key);
                            self.slots.fetch_sub(1, Ordering::AcqRel);
                        }
                    }
                    Outcome::Failed(e) => {
                        report.failed += 1;
                        first_error.get_or_insert(e);
                    }
                    Outcome::Skipped => report.failed += 1,
                }
            }
        }
        report.pending = self.pending();
        {
            let m = read(&self.metrics);
            m.set_usage_pending(report.pending);
            if report.failed > 0 {
                m.record_usage_flush_failures(report.failed as u64);
            }
        }
        match first_error {
            Some(e) => {
                // Once per outage, not once per tick.
                if !self.failing.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        error = %e,
                        usage.failed_batches = report.failed,
                        usage.pending = report.pending,
                        "usage flush failed; pending usage is kept and retried every flush"
                    );
                }
                Err(e)
            }
            None => {
                if self.failing.swap(false, Ordering::AcqRel) {
                    tracing::info!(
                        usage.applied = report.applied,
                        usage.already_applied = report.already_applied,
                        "usage flush recovered; pending usage written"
                    );
                }
                Ok(report)
            }
        }
    }

    /// Seals open aggregates of keys without a pending batch into new batches, and
    /// returns every batch to write (new and retried).
    fn seal(&self) -> Vec<(AggKey, String, Aggregate)> {
        let now = self.clock.now_ms();
        let mut batches = lock(&self.batches);
        let keys: Vec<AggKey> = self
            .open
            .iter()
            .map(|e| e.key().clone())
            .filter(|k| !batches.contains_key(k))
            .collect();
        for key in keys {
            // The aggregate moves from `open` to `batches`: its buffer slot moves with it.
            if let Some((key, agg)) = self.open.remove(&key) {
                let id = format!(
                    "{}:{}",
                    self.instance,
                    self.seq.fetch_add(1, Ordering::Relaxed)
                );
                batches.insert(
                    key,
                    Batch {
                        id,
                        agg,
                        sealed_ms: now,
                        stale_warned: false,
                    },
                );
            }
        }
        let mut work = Vec::with_capacity(batches.len());
        for (key, batch) in batches.iter_mut() {
            let age = now.saturating_sub(batch.sealed_ms);
            if age >= DEDUPE_WINDOW_MS && !batch.stale_warned {
                batch.stale_warned = true;
                tracing::warn!(
                    tenant.id = %key.tenant,
                    usage.period = %key.period,
                    usage.batch_id = %batch.id,
                    usage.age_ms = age,
                    "retrying a usage batch older than the dedupe window: if an earlier write of it \
                     was applied without a reply, it will be counted twice"
                );
            }
            work.push((key.clone(), batch.id.clone(), batch.agg.clone()));
        }
        work
    }

    /// Writes one batch; `Ok(false)` when the store had applied it already.
    async fn write_batch(&self, key: &AggKey, id: &str, agg: &Aggregate) -> TenantResult<bool> {
        let keys = ScopeKeys::new(self.store.key_prefix(), &Scope::Tenant(key.tenant.clone()));
        let usage_key = keys.record(&format!("usage:{}", key.period));
        let known = match self.known.get(key) {
            Some(known) => known,
            None => {
                // First batch of this month seen here: list the month (before its
                // counters exist, so a purge never misses a month), learn its names.
                let month = (key.period.to_string(), key.period.as_number());
                self.store
                    .zset_add(&keys.record(MONTHS_RECORD), &[month])
                    .await?;
                let stored = self.store.counters_get(&usage_key).await?;
                Arc::new(
                    stored
                        .into_iter()
                        .filter_map(|(f, _)| f.strip_prefix(OP_FIELD_PREFIX).map(str::to_owned))
                        .collect(),
                )
            }
        };
        let (increments, added) = agg.increments(&known);
        let applied = if increments.is_empty() {
            // Nothing but zeros: nothing to add, nothing to remember.
            true
        } else {
            self.store
                .counters_add_once(
                    &usage_key,
                    &keys.record(BATCHES_RECORD),
                    id,
                    &increments,
                    DEDUPE_WINDOW_MS,
                )
                .await?
        };
        // Applied now or before: either way its names are stored.
        let known = if added.is_empty() {
            known
        } else {
            let mut names = (*known).clone();
            names.extend(added);
            Arc::new(names)
        };
        self.known.insert(key.clone(), known);
        Ok(applied)
    }

    /// `tenant`'s usage in `period` (`YYYY-MM`): the stored counters plus what this
    /// instance still holds in memory, so a read right after [`Self::record`] sees it.
    ///
    /// A batch whose write failed without a reply may in fact have been applied; until
    /// the next flush settles it, it is counted both as stored and as pending.
    pub async fn usage(&self, tenant: &TenantId, period: &str) -> TenantResult<UsageSummary> {
        self.usage_of(tenant, Period::parse(period)?).await
    }

    /// As [`Self::usage`], with a parsed period.
    pub async fn usage_of(&self, tenant: &TenantId, period: Period) -> TenantResult<UsageSummary> {
        let _shared = self.gate.read().await;
        let keys = ScopeKeys::new(self.store.key_prefix(), &Scope::Tenant(tenant.clone()));
        let stored = self
            .store
            .counters_get(&keys.record(&format!("usage:{period}")))
            .await?;
        let mut summary = summary_from_counters(period, &stored);
        let key = AggKey {
            tenant: tenant.clone(),
            period,
        };
        if let Some(batch) = lock(&self.batches).get(&key) {
            batch.agg.add_to(&mut summary);
        }
        if let Some(agg) = self.open.get(&key) {
            agg.add_to(&mut summary);
        }
        Ok(summary)
    }

    /// The months in which `tenant` has usage, stored or pending here, oldest first.
    pub async fn months(&self, tenant: &TenantId) -> TenantResult<Vec<Period>> {
        let _shared = self.gate.read().await;
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
        let _exclusive = self.gate.write().await;
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
        read(&self.metrics).set_usage_pending(self.pending());

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
                .map(|m| keys.record(&format!("usage:{m}")))
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

    /// Flushes every `interval` until `cancel` fires, then flushes once more (shutdown).
    /// Failures are logged by [`Self::flush`] once per outage and retried each tick.
    pub fn spawn_flusher(
        self: &Arc<Self>,
        interval: Duration,
        cancel: CancellationToken,
    ) -> JoinHandle<()> {
        let meter = Arc::clone(self);
        let interval = interval.max(Duration::from_millis(1));
        tokio::spawn(async move {
            let mut ticker =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            // After a slow flush, wait a full interval rather than flushing in a burst.
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => break,
                    _ = ticker.tick() => {
                        if let Err(e) = meter.flush().await {
                            // Already logged once per outage and counted by `flush`.
                            tracing::debug!(error = %e, "usage flush tick failed");
                        }
                    }
                }
            }
            match meter.flush().await {
                Ok(report) => {
                    tracing::debug!(usage.applied = report.applied, "usage flushed on shutdown")
                }
                Err(e) => tracing::error!(
                    error = %e,
                    usage.pending = meter.pending(),
                    "usage flush on shutdown failed: pending usage of this instance is lost"
                ),
            }
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves consistent data (every update is
    // a single insert/remove), so recover it rather than propagate the panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read(m: &RwLock<TenantMetrics>) -> RwLockReadGuard<'_, TenantMetrics> {
    m.read().unwrap_or_else(PoisonError::into_inner)
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
