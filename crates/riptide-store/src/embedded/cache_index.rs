//! The embedded store's cache index: each `cache_*` call is one write transaction over the
//! scope's entries, index, sizes and tags (the accounting itself is in `cache.rs`).

use async_trait::async_trait;

use super::EmbeddedStore;
use super::cache;
use super::tables::CacheTables;
use crate::keys::ScopeKeys;
use crate::{
    CacheIndex, CachePut, Durability, PutOutcome, RemoveOutcome, ScopeUsage, StoreError,
    StoreResult,
};

#[async_trait]
impl CacheIndex for EmbeddedStore {
    async fn cache_put(
        &self,
        scope: &ScopeKeys,
        puts: &[CachePut],
        budget_bytes: Option<u64>,
    ) -> StoreResult<PutOutcome> {
        let puts = cache::prepare_puts(scope.base(), puts)?;
        let needed = cache::batch_size(&puts);
        if let Some(budget) = budget_bytes
            && needed > budget
        {
            return Err(StoreError::OverBudget { needed, budget });
        }
        let base = scope.base().to_owned();
        self.write(Durability::Cache, move |tx, now| {
            let mut tables = CacheTables::open(tx)?;
            cache::put(&mut tables, &base, &puts, budget_bytes, now)
        })
        .await
    }

    async fn cache_remove(&self, scope: &ScopeKeys, keys: &[String]) -> StoreResult<RemoveOutcome> {
        let keys = keys.to_vec();
        self.cache_remove_with(scope, move |_, _| Ok(keys)).await
    }

    async fn cache_remove_tag(&self, scope: &ScopeKeys, tag: &str) -> StoreResult<RemoveOutcome> {
        let tag = tag.to_owned();
        self.cache_remove_with(scope, move |tables, base| tables.tagged(base, &tag))
            .await
    }

    async fn cache_remove_namespace(
        &self,
        scope: &ScopeKeys,
        namespace: &str,
    ) -> StoreResult<RemoveOutcome> {
        let prefix = format!("{}:c:{namespace}:", scope.base());
        self.cache_remove_with(scope, move |tables, _| tables.with_prefix(&prefix))
            .await
    }

    async fn cache_clear(&self, scope: &ScopeKeys) -> StoreResult<RemoveOutcome> {
        let base = scope.base().to_owned();
        self.write(Durability::Cache, move |tx, now| {
            let mut tables = CacheTables::open(tx)?;
            let (removed, usage) = cache::ScopeTxn::begin(&mut tables, &base, now)?.clear()?;
            Ok(RemoveOutcome {
                removed,
                used_bytes: usage.bytes,
                entries: usage.entries,
            })
        })
        .await
    }

    async fn cache_usage(&self, scope: &ScopeKeys) -> StoreResult<ScopeUsage> {
        // Read-only when nothing in the scope has expired, the usual case.
        if let Some(usage) = cache::usage_if_clean(&self.inner.db, scope.base(), &self.inner.clock)?
        {
            return Ok(usage);
        }
        let base = scope.base().to_owned();
        self.write(Durability::Cache, move |tx, now| {
            let mut tables = CacheTables::open(tx)?;
            let scope = cache::ScopeTxn::begin(&mut tables, &base, now)?;
            let usage = scope.finish()?;
            Ok(ScopeUsage {
                used_bytes: usage.bytes,
                entries: usage.entries,
            })
        })
        .await
    }
}

impl EmbeddedStore {
    /// Removes the scope's entries that `select` lists, with accounting, in one
    /// transaction (after dropping the scope's expired entries).
    async fn cache_remove_with<F>(&self, scope: &ScopeKeys, select: F) -> StoreResult<RemoveOutcome>
    where
        F: FnOnce(&CacheTables<'_>, &str) -> StoreResult<Vec<String>> + Send + 'static,
    {
        let base = scope.base().to_owned();
        self.write(Durability::Cache, move |tx, now| {
            let mut tables = CacheTables::open(tx)?;
            let mut scope = cache::ScopeTxn::begin(&mut tables, &base, now)?;
            let keys = select(scope.tables(), &base)?;
            let mut removed = 0;
            for key in &keys {
                if scope.remove(key)? {
                    removed += 1;
                }
            }
            let usage = scope.finish()?;
            Ok(RemoveOutcome {
                removed,
                used_bytes: usage.bytes,
                entries: usage.entries,
            })
        })
        .await
    }
}
