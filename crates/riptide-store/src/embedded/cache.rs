//! Per-scope cache accounting on the embedded store's tables: puts with budget
//! eviction, removal by key, tag, namespace or whole scope, and usage.
//!
//! Every function here runs inside one write transaction, so each operation is atomic;
//! redb runs one write transaction at a time, so two operations on one scope never
//! interleave.

use std::collections::HashSet;

use redb::{Database, ReadableDatabase};

use super::tables::{CACHE_ORDER, CACHE_USAGE, CacheTables, Usage, is_live};
use super::{RedbResultExt, backend, check_ttl, expires_at};
use crate::clock::SharedClock;
use crate::{CachePut, PutOutcome, ScopeUsage, StoreError, StoreResult};

/// One scope's cache inside a write transaction: [`ScopeTxn::begin`] drops the scope's
/// expired entries, the methods keep the usage in memory, [`ScopeTxn::finish`] stores it.
pub(super) struct ScopeTxn<'a, 't> {
    tables: &'a mut CacheTables<'t>,
    base: &'a str,
    usage: Usage,
}

impl<'a, 't> ScopeTxn<'a, 't> {
    /// Loads the scope's usage and deletes its entries that have expired at `now`.
    pub(super) fn begin(
        tables: &'a mut CacheTables<'t>,
        base: &'a str,
        now: u64,
    ) -> StoreResult<Self> {
        let usage = tables.usage(base)?;
        let mut scope = Self {
            tables,
            base,
            usage,
        };
        let expired = scope
            .tables
            .ordered(base, Some(now.saturating_add(1)), |_, _| true)?;
        for key in &expired {
            scope.remove(key)?;
        }
        Ok(scope)
    }

    /// The tables, to look entries up.
    pub(super) fn tables(&self) -> &CacheTables<'t> {
        self.tables
    }

    /// Deletes entry `key` of this scope, payload and accounting. Keys outside the
    /// scope's cache are ignored. Returns true when it was an entry.
    pub(super) fn remove(&mut self, key: &str) -> StoreResult<bool> {
        if !in_scope(self.base, key) {
            return Ok(false);
        }
        let was_entry = self.forget(key)?;
        self.tables.data.remove(key)?;
        Ok(was_entry)
    }

    /// Drops entry `key` from the accounting but leaves its payload (about to be rewritten).
    fn forget(&mut self, key: &str) -> StoreResult<bool> {
        match self.tables.remove_entry(key)? {
            Some(meta) => {
                self.usage.sub(meta.size);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Stores the usage and returns it.
    pub(super) fn finish(self) -> StoreResult<Usage> {
        self.tables.set_usage(self.base, self.usage)?;
        Ok(self.usage)
    }

    /// Forgets every trace of the scope's cache, including counters that drifted.
    pub(super) fn clear(mut self) -> StoreResult<(u64, Usage)> {
        let keys = self.tables.ordered(self.base, None, |_, _| true)?;
        let mut removed = 0;
        for key in &keys {
            if self.remove(key)? {
                removed += 1;
            }
        }
        if self.usage != Usage::default() {
            tracing::warn!(
                scope = self.base,
                used_bytes = self.usage.bytes,
                entries = self.usage.entries,
                "embedded store: cache usage drifted; reset by clear"
            );
        }
        self.tables.purge_tags(self.base)?;
        self.usage = Usage::default();
        Ok((removed, self.finish()?))
    }
}

/// True when `key` is a cache entry key of the scope `base` (`<base>:c:...`).
fn in_scope(base: &str, key: &str) -> bool {
    key.strip_prefix(base)
        .is_some_and(|rest| rest.starts_with(":c:"))
}

/// Checks a batch before any transaction: TTLs, and keys of the form
/// `<base>:c:<namespace>:<hash>` so namespace removal finds them. Keeps the last put of
/// a key given twice and each tag once.
pub(super) fn prepare_puts(base: &str, puts: &[CachePut]) -> StoreResult<Vec<CachePut>> {
    let mut seen = HashSet::with_capacity(puts.len());
    let mut out = Vec::with_capacity(puts.len());
    for put in puts.iter().rev() {
        check_ttl(put.ttl_ms)?;
        // A `:` in the namespace would let namespace removal match a longer namespace.
        let in_namespace = !put.namespace.is_empty()
            && !put.namespace.contains(':')
            && put
                .key
                .strip_prefix(base)
                .and_then(|rest| rest.strip_prefix(":c:"))
                .and_then(|rest| rest.strip_prefix(put.namespace.as_str()))
                .and_then(|rest| rest.strip_prefix(':'))
                .is_some_and(|hash| !hash.is_empty());
        if !in_namespace {
            return Err(backend(&format!(
                "cache key {:?} is not an entry of namespace {:?} in scope {base:?}",
                put.key, put.namespace
            )));
        }
        if seen.insert(put.key.as_str()) {
            let mut put = put.clone();
            put.tags.sort_unstable();
            put.tags.dedup();
            out.push(put);
        }
    }
    out.reverse();
    Ok(out)
}

/// Bytes a prepared batch needs.
pub(super) fn batch_size(puts: &[CachePut]) -> u64 {
    puts.iter().map(|p| p.value.len() as u64).sum()
}

/// `cache_put`: see [`crate::Store::cache_put`]. An `Err` aborts the transaction.
pub(super) fn put(
    tables: &mut CacheTables<'_>,
    base: &str,
    puts: &[CachePut],
    budget: Option<u64>,
    now: u64,
) -> StoreResult<PutOutcome> {
    let needed = batch_size(puts);
    if let Some(budget) = budget
        && needed > budget
    {
        return Err(StoreError::OverBudget { needed, budget });
    }
    let mut scope = ScopeTxn::begin(tables, base, now)?;
    // Overwritten entries stop counting, and are not eviction candidates.
    for put in puts {
        scope.forget(&put.key)?;
    }
    let mut evicted = Vec::new();
    if let Some(budget) = budget
        && scope.usage.bytes.saturating_add(needed) > budget
    {
        let mut used = scope.usage.bytes;
        evicted = scope.tables.ordered(base, None, |_, size| {
            let more = used.saturating_add(needed) > budget;
            if more {
                used = used.saturating_sub(size);
            }
            more
        })?;
        for key in &evicted {
            scope.remove(key)?;
        }
        if scope.usage.entries == 0 && scope.usage.bytes != 0 {
            tracing::warn!(
                scope = base,
                used_bytes = scope.usage.bytes,
                "embedded store: cache usage drifted; reset with no entries left"
            );
            scope.usage = Usage::default();
        }
    }
    for put in puts {
        let expires_at = expires_at(now, put.ttl_ms);
        let size = put.value.len() as u64;
        scope.tables.data.put(&put.key, &put.value, expires_at)?;
        scope
            .tables
            .insert_entry(base, &put.key, size, expires_at, &put.tags)?;
        scope.usage.add(size);
    }
    let usage = scope.finish()?;
    Ok(PutOutcome {
        evicted,
        used_bytes: usage.bytes,
        entries: usage.entries,
    })
}

/// `delete`: removes plain values and cache entries alike, keeping the accounting of
/// whichever scope an entry belongs to. Returns how many live values existed.
pub(super) fn delete(tables: &mut CacheTables<'_>, keys: &[String], now: u64) -> StoreResult<u64> {
    let mut existed = 0;
    for key in keys {
        if let Some(expires_at) = tables.data.remove(key)?
            && is_live(expires_at, now)
        {
            existed += 1;
        }
        if let Some(meta) = tables.remove_entry(key)? {
            let base = key
                .get(..meta.base_len)
                .ok_or_else(|| backend("corrupt cache entry base"))?;
            let mut usage = tables.usage(base)?;
            usage.sub(meta.size);
            tables.set_usage(base, usage)?;
        }
    }
    Ok(existed)
}

/// The scope's usage from a read transaction, or `None` when some of its entries have
/// expired and must first be dropped by a write.
pub(super) fn usage_if_clean(
    db: &Database,
    base: &str,
    clock: &SharedClock,
) -> StoreResult<Option<ScopeUsage>> {
    let tx = db.begin_read().ctx("begin read transaction")?;
    let order = tx.open_table(CACHE_ORDER).ctx("open table cache_order")?;
    let now = clock.now_ms();
    let mut expired = order
        .range((base, 0u64, "")..(base, now.saturating_add(1), ""))
        .ctx("scan cache index")?;
    if expired.next().is_some() {
        return Ok(None);
    }
    let usage = tx.open_table(CACHE_USAGE).ctx("open table cache_usage")?;
    let (used_bytes, entries) = match usage.get(base).ctx("read cache usage")? {
        Some(row) => row.value(),
        None => (0, 0),
    };
    Ok(Some(ScopeUsage {
        used_bytes,
        entries,
    }))
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;
    use std::sync::Arc;

    use bytes::Bytes;

    use super::super::tests::{cput, entry_key, fixture, tenant};
    use crate::embedded::EmbeddedStore;
    use crate::keys::ScopeKeys;
    use crate::{Durability, RemoveOutcome, ScopeUsage, StoreError};

    /// Usage recomputed from what `get` returns for `keys`.
    async fn live_usage(store: &EmbeddedStore, keys: &[String]) -> ScopeUsage {
        let values = store.get_many(keys).await.unwrap();
        let live: Vec<&Bytes> = values.iter().flatten().collect();
        ScopeUsage {
            used_bytes: live.iter().map(|v| v.len() as u64).sum(),
            entries: live.len() as u64,
        }
    }

    fn keys(scope: &ScopeKeys, ns: &str, names: &[&str]) -> Vec<String> {
        names.iter().map(|n| entry_key(scope, ns, n)).collect()
    }

    #[tokio::test]
    async fn put_accounts_sizes_and_overwrites() {
        let f = fixture();
        let s = tenant("acme");
        let puts = [
            cput(&s, "ns", "a", 100, None, &[]),
            cput(&s, "ns", "b", 200, Some(5_000), &[]),
        ];
        let out = f.store.cache_put(&s, &puts, None).await.unwrap();
        assert_eq!(
            (out.used_bytes, out.entries, out.evicted.len()),
            (300, 2, 0)
        );

        let out = f
            .store
            .cache_put(&s, &[cput(&s, "ns", "a", 50, None, &[])], None)
            .await
            .unwrap();
        assert_eq!((out.used_bytes, out.entries), (250, 2));
        let all = keys(&s, "ns", &["a", "b"]);
        assert_eq!(
            live_usage(&f.store, &all).await,
            f.store.cache_usage(&s).await.unwrap()
        );
        assert_eq!(
            f.store.get(&all[0]).await.unwrap().map(|v| v.len()),
            Some(50)
        );

        // A key given twice in one batch counts once, with its last value.
        let twice = [
            cput(&s, "ns", "c", 10, None, &[]),
            cput(&s, "ns", "c", 30, None, &[]),
        ];
        let out = f.store.cache_put(&s, &twice, None).await.unwrap();
        assert_eq!((out.used_bytes, out.entries), (280, 3));
    }

    #[tokio::test]
    async fn keys_outside_the_scope_or_namespace_are_refused() {
        let f = fixture();
        let (a, b) = (tenant("acme"), tenant("other"));
        let foreign = cput(&b, "ns", "x", 1, None, &[]);
        assert!(matches!(
            f.store.cache_put(&a, &[foreign], None).await,
            Err(StoreError::Backend(_))
        ));
        let mut colon = cput(&a, "ns", "x", 1, None, &[]);
        colon.key = format!("{}:c:ns:sub:x", a.base());
        colon.namespace = "ns:sub".into();
        assert!(matches!(
            f.store.cache_put(&a, &[colon], None).await,
            Err(StoreError::Backend(_))
        ));
        let mut wrong_ns = cput(&a, "ns", "x", 1, None, &[]);
        wrong_ns.namespace = "other".into();
        assert!(matches!(
            f.store.cache_put(&a, &[wrong_ns], None).await,
            Err(StoreError::Backend(_))
        ));
        assert_eq!(
            f.store.cache_usage(&a).await.unwrap(),
            ScopeUsage::default()
        );
    }

    #[tokio::test]
    async fn expired_entries_stop_counting_and_are_not_returned() {
        let f = fixture();
        let s = tenant("acme");
        let puts = [
            cput(&s, "ns", "a", 100, Some(100), &["t"]),
            cput(&s, "ns", "b", 50, None, &["t"]),
        ];
        f.store.cache_put(&s, &puts, None).await.unwrap();
        f.clock.advance_ms(100);
        assert_eq!(f.store.get(&puts[0].key).await.unwrap(), None);
        let usage = f.store.cache_usage(&s).await.unwrap();
        assert_eq!(
            usage,
            ScopeUsage {
                used_bytes: 50,
                entries: 1
            }
        );
        // The expired entry is gone, not just hidden: its tag no longer finds it.
        assert_eq!(f.store.cache_remove_tag(&s, "t").await.unwrap().removed, 1);
    }

    #[tokio::test]
    async fn remove_by_key_counts_only_this_scopes_entries() {
        let f = fixture();
        let (a, b) = (tenant("acme"), tenant("other"));
        f.store
            .cache_put(&a, &[cput(&a, "ns", "x", 10, None, &[])], None)
            .await
            .unwrap();
        f.store
            .cache_put(&b, &[cput(&b, "ns", "x", 20, None, &[])], None)
            .await
            .unwrap();
        let targets = vec![
            entry_key(&a, "ns", "x"),
            entry_key(&b, "ns", "x"),
            entry_key(&a, "ns", "none"),
        ];
        let out = f.store.cache_remove(&a, &targets).await.unwrap();
        assert_eq!(
            out,
            RemoveOutcome {
                removed: 1,
                used_bytes: 0,
                entries: 0
            }
        );
        assert!(
            f.store.get(&targets[1]).await.unwrap().is_some(),
            "other scope untouched"
        );
        assert_eq!(f.store.cache_usage(&b).await.unwrap().used_bytes, 20);
    }

    #[tokio::test]
    async fn remove_by_tag_follows_overwrites() {
        let f = fixture();
        let s = tenant("acme");
        let puts = [
            cput(&s, "ns", "a", 10, None, &["x", "y", "y"]),
            cput(&s, "ns", "b", 20, None, &["y"]),
            cput(&s, "ns", "c", 40, None, &[]),
        ];
        f.store.cache_put(&s, &puts, None).await.unwrap();
        // Re-tag `b`: its old tag no longer finds it.
        f.store
            .cache_put(&s, &[cput(&s, "ns", "b", 20, None, &["z"])], None)
            .await
            .unwrap();
        let out = f.store.cache_remove_tag(&s, "y").await.unwrap();
        assert_eq!(
            out,
            RemoveOutcome {
                removed: 1,
                used_bytes: 60,
                entries: 2
            }
        );
        assert_eq!(f.store.cache_remove_tag(&s, "x").await.unwrap().removed, 0);
        assert_eq!(f.store.cache_remove_tag(&s, "z").await.unwrap().removed, 1);
        assert_eq!(
            f.store.get(&puts[2].key).await.unwrap().map(|v| v.len()),
            Some(40)
        );
        // A tag that is a prefix of another does not match it.
        f.store
            .cache_put(&s, &[cput(&s, "ns", "d", 1, None, &["ab"])], None)
            .await
            .unwrap();
        assert_eq!(f.store.cache_remove_tag(&s, "a").await.unwrap().removed, 0);
    }

    #[tokio::test]
    async fn remove_by_namespace_matches_the_whole_name() {
        let f = fixture();
        let s = tenant("acme");
        let puts = [
            cput(&s, "n1", "a", 1, None, &[]),
            cput(&s, "n1", "b", 2, Some(1_000), &[]),
            cput(&s, "n10", "c", 4, None, &[]),
            cput(&s, "n2", "d", 8, None, &[]),
        ];
        f.store.cache_put(&s, &puts, None).await.unwrap();
        let other = tenant("other");
        f.store
            .cache_put(&other, &[cput(&other, "n1", "a", 16, None, &[])], None)
            .await
            .unwrap();
        let out = f.store.cache_remove_namespace(&s, "n1").await.unwrap();
        assert_eq!(
            out,
            RemoveOutcome {
                removed: 2,
                used_bytes: 12,
                entries: 2
            }
        );
        assert_eq!(f.store.cache_usage(&other).await.unwrap().used_bytes, 16);
        assert_eq!(
            f.store
                .cache_remove_namespace(&s, "n1")
                .await
                .unwrap()
                .removed,
            0
        );
    }

    #[tokio::test]
    async fn clear_leaves_other_scopes_and_plain_records() {
        let f = fixture();
        let (a, b) = (tenant("acme"), tenant("other"));
        let record = a.record("meta");
        f.store
            .set(&record, b"tenant record", None, Durability::Durable)
            .await
            .unwrap();
        let puts = [
            cput(&a, "ns", "x", 10, None, &["t"]),
            cput(&a, "m", "y", 20, Some(50), &[]),
        ];
        f.store.cache_put(&a, &puts, None).await.unwrap();
        f.store
            .cache_put(&b, &[cput(&b, "ns", "x", 30, None, &["t"])], None)
            .await
            .unwrap();

        let out = f.store.cache_clear(&a).await.unwrap();
        assert_eq!(
            out,
            RemoveOutcome {
                removed: 2,
                used_bytes: 0,
                entries: 0
            }
        );
        assert_eq!(
            f.store.get_many(&keys(&a, "ns", &["x"])).await.unwrap(),
            vec![None]
        );
        assert_eq!(
            f.store.get(&record).await.unwrap().as_deref(),
            Some(&b"tenant record"[..])
        );
        assert_eq!(
            f.store.cache_usage(&b).await.unwrap(),
            ScopeUsage {
                used_bytes: 30,
                entries: 1
            }
        );
        assert_eq!(f.store.cache_remove_tag(&b, "t").await.unwrap().removed, 1);
        // The cleared scope works as new.
        let out = f
            .store
            .cache_put(&a, &[cput(&a, "ns", "z", 5, None, &[])], None)
            .await
            .unwrap();
        assert_eq!((out.used_bytes, out.entries), (5, 1));
    }

    #[tokio::test]
    async fn budget_evicts_soonest_expiring_first_then_no_ttl_by_key() {
        let f = fixture();
        let s = tenant("acme");
        let puts = [
            cput(&s, "ns", "late", 200, Some(9_000), &["t"]),
            cput(&s, "ns", "forever2", 200, None, &[]),
            cput(&s, "ns", "soon", 200, Some(1_000), &[]),
            cput(&s, "ns", "forever1", 200, None, &[]),
            cput(&s, "ns", "tie-b", 100, Some(5_000), &[]),
            cput(&s, "ns", "tie-a", 100, Some(5_000), &[]),
        ];
        let out = f.store.cache_put(&s, &puts, Some(1_000)).await.unwrap();
        assert_eq!(
            (out.used_bytes, out.entries, out.evicted.len()),
            (1_000, 6, 0)
        );

        // Needs 450 more: soon (200), then the 5_000 tie in key order (100 + 100), then late.
        let out = f
            .store
            .cache_put(&s, &[cput(&s, "ns", "new", 450, None, &[])], Some(1_000))
            .await
            .unwrap();
        let tie = {
            let mut t = keys(&s, "ns", &["tie-a", "tie-b"]);
            t.sort();
            t
        };
        let expected = vec![
            entry_key(&s, "ns", "soon"),
            tie[0].clone(),
            tie[1].clone(),
            entry_key(&s, "ns", "late"),
        ];
        assert_eq!(out.evicted, expected);
        assert_eq!((out.used_bytes, out.entries), (850, 3));
        assert_eq!(
            f.store.cache_remove_tag(&s, "t").await.unwrap().removed,
            0,
            "evicted tags go too"
        );

        // Only entries without TTL are left: evicted in key order, never the batch's own.
        let out = f
            .store
            .cache_put(&s, &[cput(&s, "ns", "new", 900, None, &[])], Some(1_000))
            .await
            .unwrap();
        let mut forever = keys(&s, "ns", &["forever1", "forever2"]);
        forever.sort();
        assert_eq!(out.evicted, forever);
        assert_eq!((out.used_bytes, out.entries), (900, 1));
        let all = keys(
            &s,
            "ns",
            &[
                "late", "forever1", "forever2", "soon", "tie-a", "tie-b", "new",
            ],
        );
        assert_eq!(
            live_usage(&f.store, &all).await,
            ScopeUsage {
                used_bytes: 900,
                entries: 1
            }
        );
    }

    #[tokio::test]
    async fn over_budget_batch_changes_nothing() {
        let f = fixture();
        let s = tenant("acme");
        f.store
            .cache_put(&s, &[cput(&s, "ns", "old", 300, Some(10), &["t"])], None)
            .await
            .unwrap();
        f.store
            .cache_put(&s, &[cput(&s, "ns", "keep", 100, None, &[])], None)
            .await
            .unwrap();
        f.clock.advance_ms(10); // `old` has expired, but a refused batch must not even drop it

        let batch = [
            cput(&s, "ns", "x", 600, None, &[]),
            cput(&s, "ns", "y", 500, None, &[]),
        ];
        let err = f
            .store
            .cache_put(&s, &batch, Some(1_000))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::OverBudget {
                    needed: 1_100,
                    budget: 1_000
                }
            ),
            "{err}"
        );
        assert_eq!(f.store.get(&batch[0].key).await.unwrap(), None);
        assert!(
            f.store
                .get(&entry_key(&s, "ns", "keep"))
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(
            f.store.cache_usage(&s).await.unwrap(),
            ScopeUsage {
                used_bytes: 100,
                entries: 1
            }
        );
    }

    #[tokio::test]
    async fn overwritten_entries_are_not_evicted_and_do_not_count_twice() {
        let f = fixture();
        let s = tenant("acme");
        f.store
            .cache_put(&s, &[cput(&s, "ns", "a", 500, None, &[])], Some(1_000))
            .await
            .unwrap();
        let batch = [
            cput(&s, "ns", "a", 600, None, &[]),
            cput(&s, "ns", "b", 300, None, &[]),
        ];
        let out = f.store.cache_put(&s, &batch, Some(1_000)).await.unwrap();
        assert_eq!(
            (out.evicted.len(), out.used_bytes, out.entries),
            (0, 900, 2)
        );
    }

    #[tokio::test]
    async fn delete_keeps_cache_accounting() {
        let f = fixture();
        let s = tenant("acme");
        let puts = [
            cput(&s, "ns", "a", 10, None, &[]),
            cput(&s, "ns", "b", 20, None, &[]),
        ];
        f.store.cache_put(&s, &puts, None).await.unwrap();
        assert_eq!(f.store.delete(&[puts[0].key.clone()]).await.unwrap(), 1);
        assert_eq!(
            f.store.cache_usage(&s).await.unwrap(),
            ScopeUsage {
                used_bytes: 20,
                entries: 1
            }
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_puts_keep_usage_exact() {
        let f = fixture();
        let store = Arc::clone(&f.store);
        let (s, free) = (tenant("acme"), tenant("free"));
        let names: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        let mut tasks = Vec::new();
        for t in 0..16u64 {
            let (store, s, free, names) = (store.clone(), s.clone(), free.clone(), names.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..25u64 {
                    // Overlapping keys, so writers overwrite each other's entries.
                    let name = &names[((t * 7 + i * 3) % 40) as usize];
                    let len = (50 + (t * 31 + i * 17) % 400) as usize;
                    let ttl = (i % 3 == 0).then_some(60_000);
                    let put = cput(&s, "ns", name, len, ttl, &["t"]);
                    let out = store.cache_put(&s, &[put], Some(5_000)).await.unwrap();
                    assert!(out.used_bytes <= 5_000);
                    store
                        .cache_put(&free, &[cput(&free, "ns", name, len, ttl, &[])], None)
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        for scope in [&s, &free] {
            let expected = live_usage(&store, &keys(scope, "ns", &refs)).await;
            assert_eq!(store.cache_usage(scope).await.unwrap(), expected);
        }
        assert_eq!(store.cache_usage(&free).await.unwrap().entries, 40);
        let usage = store.cache_usage(&s).await.unwrap();
        assert_eq!(
            store.cache_remove_tag(&s, "t").await.unwrap().removed,
            usage.entries
        );
    }
}
