//! Warming a scope: load what is missing or about to expire, in batches, concurrently
//! (the loader and the report are in `warmer.rs`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::envelope::{self};
use super::manager::{PersistentCacheManager, PutItem};
use super::stats::{Op, OpResult};
use super::warmer::{WarmFailure, WarmLoader, WarmReport};
use super::{CacheError, CacheResult};
use riptide_store::keys::{AsScope, Scope, ScopeKeys};

impl PersistentCacheManager {
    /// Warms `keys` in the global scope (the seed's call).
    pub async fn warm_cache(&self, keys: Vec<String>) -> CacheResult<WarmReport> {
        self.warm_cache_for(&Scope::Global, keys).await
    }

    /// Warms `keys` of a tenant: keys missing from the store, or expiring within
    /// `warming_refresh_before_expiry_seconds`, are loaded with at most
    /// `warming_concurrency` loads at once and written back one batch per round trip.
    /// An empty key list is a no-op; anything else needs warming enabled, a warmer and a
    /// loader.
    pub async fn warm_cache_for(
        &self,
        scope: &(impl AsScope + ?Sized),
        keys: Vec<String>,
    ) -> CacheResult<WarmReport> {
        let start = Instant::now();
        let scope = scope.as_scope()?;
        let mut seen = HashSet::new();
        let keys: Vec<String> = keys
            .into_iter()
            .filter(|k| seen.insert(k.clone()))
            .collect();
        let mut report = WarmReport {
            requested: keys.len(),
            ..Default::default()
        };
        if keys.is_empty() {
            return Ok(report);
        }
        if !self.warming_enabled() {
            return Err(CacheError::WarmingDisabled);
        }
        let warmer = self.warmer.load_full().ok_or(CacheError::NoWarmer)?;
        let loader = warmer.loader().ok_or(CacheError::NoWarmLoader)?;
        for chunk in keys.chunks(warmer.batch_size()) {
            let stale = self.stale_keys(&scope, chunk).await?;
            report.fresh += chunk.len() - stale.len();
            self.warm_batch(&scope, stale, loader.as_ref().as_ref(), &mut report)
                .await;
        }
        report.duration_ms = start.elapsed().as_millis() as u64;
        tracing::info!(
            tenant.id = scope.label(),
            warmed = report.warmed,
            fresh = report.fresh,
            failed = report.failed.len(),
            duration_ms = report.duration_ms,
            "cache warming finished"
        );
        Ok(report)
    }

    /// Keys of `chunk` that are missing or expire soon, read straight from the store so
    /// warming neither fills L1 nor counts as hits and misses.
    async fn stale_keys(&self, scope: &Scope, chunk: &[String]) -> CacheResult<Vec<String>> {
        let scope_keys = ScopeKeys::new(self.store.key_prefix(), scope);
        let store_keys: Vec<String> = chunk
            .iter()
            .map(|k| self.place(&scope_keys, scope, k).store_key)
            .collect();
        let found = self.store.get_many(&store_keys).await?;
        let refresh_before = self
            .config
            .warming_refresh_before_expiry_seconds
            .saturating_mul(1_000);
        let horizon = self.clock.now_ms().saturating_add(refresh_before);
        Ok(chunk
            .iter()
            .zip(found)
            .filter(|(_, bytes)| {
                let expires = bytes
                    .as_ref()
                    .and_then(|b| envelope::peek(b).ok())
                    .map(|(_, e)| e);
                match expires {
                    None => true,                    // missing or unreadable
                    Some(None) => false,             // cached without expiry
                    Some(Some(at)) => at <= horizon, // expiring soon
                }
            })
            .map(|(k, _)| k.clone())
            .collect())
    }

    async fn warm_batch(
        &self,
        scope: &Scope,
        keys: Vec<String>,
        loader: &dyn WarmLoader,
        report: &mut WarmReport,
    ) {
        if keys.is_empty() {
            return;
        }
        let tenant = scope.tenant();
        let timeout = Duration::from_millis(self.config.load_timeout_ms);
        let stats = self.scope_stats(scope);
        let loads = futures::stream::iter(keys)
            .map(|key| async move {
                let start = Instant::now();
                let result = match tokio::time::timeout(timeout, loader.load(tenant, &key)).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("load timed out after {} ms", timeout.as_millis())),
                };
                (key, result, start.elapsed())
            })
            .buffer_unordered(self.config.warming_concurrency)
            .collect::<Vec<_>>()
            .await;
        let mut items = Vec::new();
        for (key, result, elapsed) in loads {
            let outcome = if result.is_ok() {
                OpResult::Ok
            } else {
                OpResult::Error
            };
            self.stats.record(&stats, Op::Load, outcome, elapsed, 1);
            match result {
                Ok(v) => items.push(PutItem {
                    key,
                    payload: v.payload,
                    codec: v.codec,
                    ttl: v.ttl,
                    metadata: v.metadata,
                }),
                Err(error) => report.failed.push(WarmFailure { key, error }),
            }
        }
        let keys: Vec<String> = items.iter().map(|i| i.key.clone()).collect();
        match self.put(scope.clone(), items, Op::SetBatch).await {
            Ok(()) => report.warmed += keys.len(),
            Err(e) => {
                let error = e.to_string();
                report
                    .failed
                    .extend(keys.into_iter().map(|key| WarmFailure {
                        key,
                        error: error.clone(),
                    }));
            }
        }
    }
}
