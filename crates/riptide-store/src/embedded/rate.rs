//! GCRA rate limiting on the embedded store, in memory.
//!
//! A quota check must cost at most about a microsecond, and a redb transaction costs
//! several, so the rate state never touches redb:
//!
//! - **State.** Each limited key's theoretical arrival time (`tat`, µs) lives in a
//!   `DashMap<String, u64>`. One step runs under the key's shard lock, so it is atomic per
//!   key. The embedded store belongs to one process (a second open of the file is
//!   refused) and the store object is shared within it, so this map is the whole truth.
//!   A `tat` at or before `now` means a full bucket, exactly like no entry, so the sweeper
//!   drops those (`prune`) and the map holds only keys limited within their tolerance.
//! - **Restarts.** The state is not persisted: a restart refills every bucket. That only
//!   ever admits more than the limit would have over the restart (at most one extra
//!   burst per key), never less, and nothing is lost that a caller relies on.
//! - **Overrides.** The override record is a counters record in redb. Reading it costs a
//!   read transaction, so the records `gcra` reads are cached here, whole. Every write
//!   of this store to a counters key (`counters_set`, `counters_add_once`, `delete`)
//!   drops it from the cache after its commit, from inside the blocking write task (so a
//!   caller that stops waiting cannot skip it). A cache miss reads redb while holding the
//!   key's shard lock, and the drop takes that lock, so a read that saw the old record
//!   is always dropped after it is cached: a changed quota applies to the next call.
//!   Records not used for [`OVERRIDE_IDLE_MS`] are dropped by the sweeper.
//!
//! `gcra` takes its time from the caller (`now_ms`); `prune` uses the store's clock,
//! which is the same injected clock in the service.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::tables::{COUNTERS, just_after};
use super::{EmbeddedStore, Inner, RedbResultExt};
use crate::gcra;
use crate::{GcraDecision, GcraLimit, RateLimit, StoreResult};

/// A cached override record not used for this long is dropped by the sweeper (ms).
pub(super) const OVERRIDE_IDLE_MS: u64 = 10 * 60 * 1_000;

/// The rate limiter's in-memory state (see the module docs).
#[derive(Debug, Default)]
pub(super) struct RateState {
    /// Limited key → `tat` in µs since the epoch.
    tats: DashMap<String, u64>,
    /// Counters key → its record, for the override fields `gcra` reads.
    records: DashMap<String, CachedRecord>,
}

/// A counters record as `gcra` last read it.
#[derive(Debug)]
struct CachedRecord {
    /// The fields, in name order.
    fields: Vec<(String, i64)>,
    /// When `gcra` last used it (the store's clock, ms).
    last_used_ms: AtomicU64,
}

impl CachedRecord {
    fn field(&self, name: &str) -> Option<i64> {
        self.fields
            .binary_search_by(|(field, _)| field.as_str().cmp(name))
            .ok()
            .map(|i| self.fields[i].1)
    }

    /// The two override fields, and notes the use.
    fn overrides(&self, rate: &str, burst: &str, now_ms: u64) -> (Option<i64>, Option<i64>) {
        self.last_used_ms.store(now_ms, Ordering::Relaxed);
        (self.field(rate), self.field(burst))
    }
}

impl RateState {
    /// One GCRA step on `key`, atomic per key; stores the new `tat` when admitted.
    fn step(
        &self,
        key: &str,
        now_ms: u64,
        limit: (u64, u64),
        period_ms: u64,
        cost: u64,
    ) -> GcraDecision {
        let (rate, burst) = limit;
        // The usual case, a key already limited: no allocation.
        if let Some(mut tat) = self.tats.get_mut(key) {
            let (decision, new_tat) = gcra::step(Some(*tat), now_ms, rate, burst, period_ms, cost);
            if let Some(new_tat) = new_tat {
                *tat = new_tat;
            }
            return decision;
        }
        match self.tats.entry(key.to_owned()) {
            Entry::Occupied(mut slot) => {
                let (decision, new_tat) =
                    gcra::step(Some(*slot.get()), now_ms, rate, burst, period_ms, cost);
                if let Some(new_tat) = new_tat {
                    *slot.get_mut() = new_tat;
                }
                decision
            }
            Entry::Vacant(slot) => {
                let (decision, new_tat) = gcra::step(None, now_ms, rate, burst, period_ms, cost);
                // A `tat` not after `now` is a full bucket: not worth an entry.
                if let Some(new_tat) = new_tat
                    && new_tat > now_ms.saturating_mul(1_000)
                {
                    slot.insert(new_tat);
                }
                decision
            }
        }
    }

    /// The override fields of counters record `key`, from the cache or else from redb.
    fn overrides(
        &self,
        inner: &Inner,
        key: &str,
        rate: &str,
        burst: &str,
    ) -> StoreResult<(Option<i64>, Option<i64>)> {
        let now_ms = inner.clock.now_ms();
        if let Some(record) = self.records.get(key) {
            return Ok(record.overrides(rate, burst, now_ms));
        }
        match self.records.entry(key.to_owned()) {
            Entry::Occupied(record) => Ok(record.get().overrides(rate, burst, now_ms)),
            Entry::Vacant(slot) => {
                // Read while holding the shard lock: see the module docs.
                let record = CachedRecord {
                    fields: read_record(inner, key)?,
                    last_used_ms: AtomicU64::new(now_ms),
                };
                let found = record.overrides(rate, burst, now_ms);
                slot.insert(record);
                Ok(found)
            }
        }
    }

    /// Drops the cached copy of counters record `key` (after a write to it committed).
    pub(super) fn forget_record(&self, key: &str) {
        if !self.records.is_empty() {
            self.records.remove(key);
        }
    }

    /// Drops the `tat`s not after `now_ms` (full buckets) and the override records not
    /// used for [`OVERRIDE_IDLE_MS`]. Returns how many entries it dropped.
    pub(super) fn prune(&self, now_ms: u64) -> usize {
        let before = self.tats.len() + self.records.len();
        let now_us = now_ms.saturating_mul(1_000);
        self.tats.retain(|_, tat| *tat > now_us);
        self.records.retain(|_, record| {
            now_ms.saturating_sub(record.last_used_ms.load(Ordering::Relaxed)) < OVERRIDE_IDLE_MS
        });
        before.saturating_sub(self.tats.len() + self.records.len())
    }

    /// `(limited keys, cached records)` held now.
    #[cfg(test)]
    pub(super) fn sizes(&self) -> (usize, usize) {
        (self.tats.len(), self.records.len())
    }
}

/// Reads counters record `key` from redb.
fn read_record(inner: &Inner, key: &str) -> StoreResult<Vec<(String, i64)>> {
    let table = inner.read_table(COUNTERS, "counters")?;
    let next = just_after(key);
    let mut fields = Vec::new();
    for item in table
        .range((key, "")..(next.as_str(), ""))
        .ctx("scan counters")?
    {
        let (row, value) = item.ctx("scan counters")?;
        fields.push((row.value().1.to_owned(), value.value()));
    }
    Ok(fields)
}

#[async_trait]
impl RateLimit for EmbeddedStore {
    /// See the module docs.
    async fn gcra(
        &self,
        key: &str,
        limit: &GcraLimit,
        now_ms: u64,
        cost: u64,
    ) -> StoreResult<GcraDecision> {
        let inner = &self.inner;
        let (rate, burst) = match &limit.overrides {
            Some((record, rate_field, burst_field)) => {
                let (rate, burst) = inner
                    .rate
                    .overrides(inner, record, rate_field, burst_field)?;
                gcra::effective(limit, rate, burst)
            }
            None => (limit.rate, limit.burst),
        };
        Ok(inner
            .rate
            .step(key, now_ms, (rate, burst), limit.period_ms, cost))
    }
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;
    use std::sync::Arc;

    use super::super::tests::{T0, fixture};
    use super::OVERRIDE_IDLE_MS;
    use crate::GcraLimit;

    fn limit(rate: u64, burst: u64, overrides: Option<&str>) -> GcraLimit {
        GcraLimit {
            rate,
            period_ms: 60_000,
            burst,
            overrides: overrides.map(|k| (k.to_owned(), "rate".to_owned(), "burst".to_owned())),
        }
    }

    #[tokio::test]
    async fn full_buckets_are_pruned_and_limited_ones_kept() {
        let f = fixture();
        let s = &f.store;
        // 60 per minute: one per second; burst 2, so a tolerance of 2 s.
        let l = limit(60, 2, None);
        assert!(s.gcra("a", &l, T0, 1).await.unwrap().allowed);
        assert!(s.gcra("b", &l, T0, 2).await.unwrap().allowed);
        assert!(
            !s.gcra("c", &l, T0, 3).await.unwrap().allowed,
            "cost above burst"
        );
        assert!(s.gcra("d", &l, T0, 0).await.unwrap().allowed, "cost 0");
        assert_eq!(
            s.inner.rate.sizes(),
            (2, 0),
            "refusals and no-ops keep no state"
        );

        f.clock.advance_ms(1_000);
        s.sweep_now().unwrap();
        assert_eq!(
            s.inner.rate.sizes(),
            (1, 0),
            "a's bucket is full again: dropped"
        );
        f.clock.advance_ms(1_000);
        s.sweep_now().unwrap();
        assert_eq!(s.inner.rate.sizes(), (0, 0));
        // A pruned key behaves as a full bucket.
        for _ in 0..2 {
            assert!(s.gcra("b", &l, T0 + 2_000, 1).await.unwrap().allowed);
        }
        assert!(!s.gcra("b", &l, T0 + 2_000, 1).await.unwrap().allowed);
    }

    #[tokio::test]
    async fn the_background_sweeper_prunes_too() {
        let cfg = crate::config::EmbeddedConfig {
            sweep_interval_ms: 10,
            ..super::super::tests::quiet_config()
        };
        let f = super::super::tests::fixture_with(&cfg);
        assert!(
            f.store
                .gcra("a", &limit(60, 1, None), T0, 1)
                .await
                .unwrap()
                .allowed
        );
        f.clock.advance_ms(1_000);
        for _ in 0..500 {
            if f.store.inner.rate.sizes().0 == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the sweeper never pruned the full bucket");
    }

    #[tokio::test]
    async fn override_cache_follows_every_counters_write() {
        let f = fixture();
        let s = &f.store;
        let l = limit(60, 1, Some("o"));
        let decision = s.gcra("k", &l, T0, 1).await.unwrap();
        assert_eq!((decision.limit, decision.burst), (60, 1));
        assert_eq!(s.inner.rate.sizes().1, 1, "the (empty) record is cached");

        s.counters_set(
            "o",
            &[("burst".into(), Some(3)), ("rate".into(), Some(120))],
        )
        .await
        .unwrap();
        let decision = s.gcra("k", &l, T0, 1).await.unwrap();
        assert_eq!(
            (decision.allowed, decision.limit, decision.burst),
            (true, 120, 3)
        );

        s.counters_add_once("o", "dd", "b1", &[("burst".into(), 2)], 60_000)
            .await
            .unwrap();
        assert_eq!(s.gcra("k", &l, T0, 0).await.unwrap().burst, 5);

        s.delete(&["o".to_owned()]).await.unwrap();
        assert_eq!(s.gcra("k", &l, T0, 0).await.unwrap().burst, 1);

        // A write to another record leaves this one cached.
        s.counters_set("p", &[("burst".into(), Some(9))])
            .await
            .unwrap();
        assert_eq!(s.inner.rate.sizes().1, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_racing_a_write_never_leaves_a_stale_record() {
        let f = fixture();
        let store = Arc::clone(&f.store);
        let l = limit(60, 1, Some("o"));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (store, l, stop) = (Arc::clone(&store), l.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    store.gcra("r", &l, T0, 0).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        };
        for burst in 1..=200 {
            store
                .counters_set("o", &[("burst".into(), Some(burst))])
                .await
                .unwrap();
            let seen = store.gcra("k", &l, T0, 0).await.unwrap().burst;
            assert_eq!(
                seen,
                burst.unsigned_abs(),
                "stale override after write {burst}"
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.await.unwrap();
    }

    #[tokio::test]
    async fn idle_override_records_are_dropped() {
        let f = fixture();
        let s = &f.store;
        s.gcra("k", &limit(60, 1, Some("o")), T0, 1).await.unwrap();
        f.clock.advance_ms(OVERRIDE_IDLE_MS - 1);
        s.sweep_now().unwrap();
        assert_eq!(s.inner.rate.sizes().1, 1);
        f.clock.advance_ms(1);
        s.sweep_now().unwrap();
        assert_eq!(s.inner.rate.sizes(), (0, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_steps_with_overrides_stay_exact() {
        let f = fixture();
        let store = Arc::clone(&f.store);
        store
            .counters_set("o", &[("burst".into(), Some(25))])
            .await
            .unwrap();
        let l = limit(1, 1, Some("o"));
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let (store, l) = (Arc::clone(&store), l.clone());
            tasks.push(tokio::spawn(async move {
                store.gcra("k", &l, T0, 1).await.unwrap().allowed
            }));
        }
        let mut admitted = 0;
        for task in tasks {
            admitted += u32::from(task.await.unwrap());
        }
        assert_eq!(admitted, 25);
    }
}
