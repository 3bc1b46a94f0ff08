//! The embedded store's two background tasks, owned by the store:
//!
//! - the **sweeper** deletes expired values every `sweep_interval_ms`, at most
//!   `sweep_batch` per transaction (so a writer never waits long behind it), and fixes
//!   the cache accounting of the entries it deletes; each round first prunes the rate
//!   limiter's in-memory state (full buckets, idle override records; see `rate.rs`);
//! - the **flusher** makes an empty durable commit every `flush_interval_ms` when a
//!   non-durable commit happened since the last durable one.
//!
//! Both hold only a `Weak` to the store's internals and stop when the store's
//! cancellation token fires (on drop) or the internals are gone. A failed round is
//! logged and tried again at the next tick.

use std::sync::{Arc, Weak};
use std::time::Duration;

use redb::ReadableDatabase;
use tokio::runtime::Handle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::tables::{CacheTables, EXPIRY, is_live};
use super::{Inner, RedbResultExt, backend};
use crate::config::EmbeddedConfig;
use crate::{Durability, StoreResult};

/// What one sweep transaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct SweepBatch {
    /// Expiry index rows handled; equal to the batch size when more may be due.
    pub scanned: usize,
    /// Values deleted.
    pub deleted: u64,
}

impl Inner {
    /// One sweep transaction of at most `sweep_batch` expired values.
    pub(super) fn sweep_once(&self) -> StoreResult<SweepBatch> {
        // A read first: an idle sweep must not commit, or the flusher would fsync for nothing.
        if !self.anything_due()? {
            return Ok(SweepBatch::default());
        }
        let limit = self.sweep_batch;
        self.transact(Durability::Cache, |tx, now| {
            let mut tables = CacheTables::open(tx)?;
            sweep_batch(&mut tables, now, limit)
        })
    }

    /// Sweeps until nothing expired is left; returns the values deleted.
    pub(super) fn sweep_all(&self) -> StoreResult<u64> {
        let mut deleted = 0;
        loop {
            let batch = self.sweep_once()?;
            deleted += batch.deleted;
            if batch.scanned < self.sweep_batch {
                return Ok(deleted);
            }
        }
    }

    fn anything_due(&self) -> StoreResult<bool> {
        let tx = self.db.begin_read().ctx("begin read transaction")?;
        let expiry = tx.open_table(EXPIRY).ctx("open table expiry")?;
        let now = self.clock.now_ms();
        let mut due = expiry
            .range(..(now.saturating_add(1), ""))
            .ctx("scan expiry index")?;
        Ok(due.next().is_some())
    }

    /// True when a non-durable commit is not yet covered by a durable one.
    fn needs_flush(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.lazy_commits.load(Ordering::Acquire) > self.durable_through.load(Ordering::Acquire)
    }
}

/// Deletes up to `limit` values due at `now` and the accounting of the cache entries
/// among them.
fn sweep_batch(tables: &mut CacheTables<'_>, now: u64, limit: usize) -> StoreResult<SweepBatch> {
    let due = tables.data.due(now, limit)?;
    let mut deleted = 0;
    for (expires_at, key) in &due {
        if tables.data.expire(*expires_at, key)? {
            deleted += 1;
        }
        let expired_entry = tables
            .meta(key)?
            .is_some_and(|meta| !is_live(meta.expires_at, now));
        if expired_entry && let Some(meta) = tables.remove_entry(key)? {
            let base = key
                .get(..meta.base_len)
                .ok_or_else(|| backend("corrupt cache entry base"))?;
            let mut usage = tables.usage(base)?;
            usage.sub(meta.size);
            tables.set_usage(base, usage)?;
        }
    }
    Ok(SweepBatch {
        scanned: due.len(),
        deleted,
    })
}

/// Starts the sweeper and the flusher on `runtime`.
pub(super) fn spawn(
    runtime: &Handle,
    inner: &Arc<Inner>,
    cfg: &EmbeddedConfig,
    shutdown: &CancellationToken,
) {
    let sweep_every = Duration::from_millis(cfg.sweep_interval_ms.max(1));
    let flush_every = Duration::from_millis(cfg.flush_interval_ms.max(1));
    runtime.spawn(run_sweeper(
        Arc::downgrade(inner),
        sweep_every,
        shutdown.clone(),
    ));
    runtime.spawn(run_flusher(
        Arc::downgrade(inner),
        flush_every,
        shutdown.clone(),
    ));
}

/// Waits for the next tick; false once the store shuts down.
async fn tick(ticks: &mut tokio::time::Interval, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => false,
        _ = ticks.tick() => true,
    }
}

fn ticks(period: Duration) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks
}

async fn run_sweeper(inner: Weak<Inner>, period: Duration, shutdown: CancellationToken) {
    let mut ticks = ticks(period);
    while tick(&mut ticks, &shutdown).await {
        // The rate limiter's full buckets and idle override records, in memory (cheap).
        match inner.upgrade() {
            Some(strong) => strong.prune_memory(),
            None => return,
        }
        // Batch after batch while full ones come back, yielding in between.
        loop {
            // Strong only for one batch, so dropping the store is never held up by a wait.
            let Some(strong) = inner.upgrade() else {
                return;
            };
            let limit = strong.sweep_batch;
            match tokio::task::spawn_blocking(move || strong.sweep_once()).await {
                Ok(Ok(batch)) if batch.scanned >= limit && !shutdown.is_cancelled() => {
                    tokio::task::yield_now().await;
                }
                Ok(Ok(_)) => break,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "embedded store: sweep failed; retrying next tick");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "embedded store: sweep task failed; retrying next tick");
                    break;
                }
            }
        }
    }
}

async fn run_flusher(inner: Weak<Inner>, period: Duration, shutdown: CancellationToken) {
    let mut ticks = ticks(period);
    while tick(&mut ticks, &shutdown).await {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if !strong.needs_flush() {
            continue;
        }
        match tokio::task::spawn_blocking(move || strong.flush()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "embedded store: flush failed; retrying next tick");
            }
            Err(e) => {
                tracing::warn!(error = %e, "embedded store: flush task failed; retrying next tick");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;
    use std::sync::Arc;
    use std::time::Duration;

    use redb::{Key, ReadableDatabase, ReadableTableMetadata, TableDefinition, Value};

    use super::super::tables::{CACHE_META, CACHE_ORDER, CACHE_TAGS, CACHE_USAGE, EXPIRY, KV};
    use super::super::tests::{cput, fixture, fixture_with, quiet_config, tenant};
    use crate::Durability;
    use crate::config::EmbeddedConfig;
    use crate::embedded::EmbeddedStore;

    fn rows<K: Key + 'static, V: Value + 'static>(
        store: &EmbeddedStore,
        table: TableDefinition<K, V>,
    ) -> u64 {
        let tx = store.inner.db.begin_read().unwrap();
        tx.open_table(table).unwrap().len().unwrap()
    }

    /// The stored usage row, as the sweeper left it (no read-side cleanup).
    fn raw_usage(store: &EmbeddedStore, base: &str) -> Option<(u64, u64)> {
        let tx = store.inner.db.begin_read().unwrap();
        let table = tx.open_table(CACHE_USAGE).unwrap();
        table.get(base).unwrap().map(|row| row.value())
    }

    /// Polls `check` for up to 5 s of real time.
    async fn eventually(mut check: impl FnMut() -> bool) -> bool {
        for _ in 0..500 {
            if check() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn sweep_now_deletes_expired_values_and_fixes_accounting() {
        let f = fixture();
        let s = tenant("acme");
        let puts = [
            cput(&s, "ns", "a", 10, Some(100), &["t"]),
            cput(&s, "ns", "b", 20, Some(200), &["t"]),
            cput(&s, "ns", "c", 40, None, &[]),
        ];
        f.store.cache_put(&s, &puts, None).await.unwrap();
        f.store
            .set("r", b"record", Some(100), Durability::Durable)
            .await
            .unwrap();
        f.store
            .set("p", b"plain", None, Durability::Durable)
            .await
            .unwrap();

        f.clock.advance_ms(150);
        assert_eq!(f.store.sweep_now().unwrap(), 2);
        assert_eq!(raw_usage(&f.store, s.base()), Some((60, 2)));
        assert_eq!(
            (rows(&f.store, CACHE_META), rows(&f.store, CACHE_ORDER)),
            (2, 2)
        );
        assert_eq!(rows(&f.store, CACHE_TAGS), 1);
        assert_eq!(f.store.get("r").await.unwrap(), None);
        assert!(f.store.get("p").await.unwrap().is_some());

        f.clock.advance_ms(100);
        assert_eq!(f.store.sweep_now().unwrap(), 1);
        assert_eq!(raw_usage(&f.store, s.base()), Some((40, 1)));
        assert_eq!((rows(&f.store, CACHE_TAGS), rows(&f.store, EXPIRY)), (0, 0));
        assert_eq!(rows(&f.store, KV), 2, "c and p are left");
        assert_eq!(f.store.sweep_now().unwrap(), 0);
    }

    #[tokio::test]
    async fn sweep_runs_in_batches() {
        let cfg = EmbeddedConfig {
            sweep_batch: 3,
            ..quiet_config()
        };
        let f = fixture_with(&cfg);
        let batch: Vec<_> = (0..10)
            .map(|i| (format!("k{i}"), bytes::Bytes::from_static(b"v"), Some(1)))
            .collect();
        f.store.set_many(&batch, Durability::Cache).await.unwrap();
        f.clock.advance_ms(1);
        let first = f.store.inner.sweep_once().unwrap();
        assert_eq!((first.scanned, first.deleted), (3, 3));
        assert_eq!(f.store.sweep_now().unwrap(), 7);
        assert_eq!((rows(&f.store, KV), rows(&f.store, EXPIRY)), (0, 0));
    }

    #[tokio::test]
    async fn idle_sweeps_do_not_commit() {
        let f = fixture();
        f.store
            .set("k", b"v", Some(1_000), Durability::Durable)
            .await
            .unwrap();
        assert_eq!(f.store.sweep_now().unwrap(), 0);
        assert!(
            !f.store.inner.needs_flush(),
            "nothing due: no commit, nothing to flush"
        );
    }

    #[tokio::test]
    async fn background_tasks_sweep_and_flush() {
        let cfg = EmbeddedConfig {
            sweep_interval_ms: 10,
            flush_interval_ms: 10,
            ..quiet_config()
        };
        let f = fixture_with(&cfg);
        let s = tenant("acme");
        f.store
            .cache_put(&s, &[cput(&s, "ns", "a", 10, Some(5), &["t"])], None)
            .await
            .unwrap();
        f.clock.advance_ms(5);
        let store = Arc::clone(&f.store);
        assert!(
            eventually(|| rows(&store, KV) == 0 && raw_usage(&store, s.base()).is_none()).await
        );
        assert_eq!(rows(&store, CACHE_TAGS), 0);
        assert!(
            eventually(|| !store.inner.needs_flush()).await,
            "the flusher made it durable"
        );
    }

    #[tokio::test]
    async fn dropping_the_store_stops_its_tasks() {
        let cfg = EmbeddedConfig {
            sweep_interval_ms: 1,
            flush_interval_ms: 1,
            ..quiet_config()
        };
        let f = fixture_with(&cfg);
        f.store
            .set("k", b"v", None, Durability::Cache)
            .await
            .unwrap();
        let (weak, token) = (Arc::downgrade(&f.store.inner), f.store.shutdown.clone());
        drop(f.store);
        assert!(token.is_cancelled());
        assert!(eventually(|| weak.upgrade().is_none()).await);
        let store = EmbeddedStore::open(f.dir.path(), &cfg, f.clock.clone()).unwrap();
        assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    }
}
