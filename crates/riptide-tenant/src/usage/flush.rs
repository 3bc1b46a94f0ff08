//! Flushing: sealing open aggregates into batches (each keeps the id its aggregate got
//! when it was opened), writing them to the store at most once each, keeping failed ones
//! pending for a retry, and the periodic flusher. Flushes and purges run one at a time;
//! reads never wait for them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::aggregate::{AggKey, Aggregate};
use super::{
    BATCHES_RECORD, DEDUPE_WINDOW_MS, FlushReport, MONTHS_RECORD, OP_FIELD_PREFIX, UsageMeter, lock,
};
use crate::error::{TenantError, TenantResult};
use riptide_store::StoreError;
use riptide_store::keys::{Scope, ScopeKeys, records};

/// Batch writes in flight at once during a flush: enough to hide round-trip latency for
/// many tenants without flooding the store.
const FLUSH_CONCURRENCY: usize = 16;

/// A sealed aggregate waiting to be written (or being written).
#[derive(Debug)]
pub(super) struct Batch {
    /// Its id: kept across retries so the store applies it once.
    pub(super) id: String,
    pub(super) agg: Aggregate,
    /// When it was first sealed (clock ms), to warn about retries beyond the dedupe window.
    sealed_ms: u64,
    /// Whether "retried beyond the dedupe window" was logged for it already.
    stale_warned: bool,
}

/// Test hooks of one flush (see [`UsageMeter::flush_losing_replies`] and
/// [`UsageMeter::flush_holding`]).
#[derive(Default)]
struct Hooks<'a> {
    lose_replies: bool,
    before_writes: Option<BoxFuture<'a, ()>>,
    before_settling: Option<BoxFuture<'a, ()>>,
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

impl UsageMeter {
    /// Writes every open aggregate and every pending batch to the store.
    ///
    /// Fails with the first store error when any batch could not be written; those
    /// batches stay pending with their ids (see the [module docs](super)) and the next
    /// flush retries them. Once the store is found unreachable, the remaining batches of
    /// this flush are not attempted.
    pub async fn flush(&self) -> TenantResult<FlushReport> {
        self.flush_with(Hooks::default()).await
    }

    /// Test hook: a flush whose writes are performed but whose replies are "lost": every
    /// written batch is treated as failed and stays pending with its id, as after a
    /// connection drop between the store applying the write and the reply arriving.
    #[cfg(any(test, feature = "test-hooks"))]
    pub async fn flush_losing_replies(&self) -> TenantResult<FlushReport> {
        self.flush_with(Hooks {
            lose_replies: true,
            ..Hooks::default()
        })
        .await
    }

    /// Test hook: a flush held in flight. It waits for `before_writes` once it has sealed
    /// its batches (they are pending, not yet in the store), then for `before_settling`
    /// once every batch is written (they are in the store and still pending here, as
    /// while a slow store's replies are on their way).
    #[cfg(any(test, feature = "test-hooks"))]
    pub async fn flush_holding(
        &self,
        before_writes: impl Future<Output = ()> + Send,
        before_settling: impl Future<Output = ()> + Send,
    ) -> TenantResult<FlushReport> {
        self.flush_with(Hooks {
            lose_replies: false,
            before_writes: Some(Box::pin(before_writes)),
            before_settling: Some(Box::pin(before_settling)),
        })
        .await
    }

    async fn flush_with(&self, hooks: Hooks<'_>) -> TenantResult<FlushReport> {
        let lose_replies = hooks.lose_replies;
        // One flush (or purge) at a time; reads never wait for it (see `usage_of`).
        let _flushing = self.flushing.lock().await;
        let work = self.seal();
        if let Some(hold) = hooks.before_writes {
            hold.await;
        }
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
        if let Some(hold) = hooks.before_settling {
            hold.await;
        }

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
        self.metrics.with(|m| {
            m.set_usage_pending(report.pending);
            if report.failed > 0 {
                m.record_usage_flush_failures(report.failed as u64);
            }
        });
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
            // The aggregate moves from `open` to `batches` with its id: its buffer slot
            // moves with it.
            if let Some((key, open)) = self.open.remove(&key) {
                batches.insert(
                    key,
                    Batch {
                        id: open.id,
                        agg: open.agg,
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
        let usage_key = keys.record(&records::usage(key.period));
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
