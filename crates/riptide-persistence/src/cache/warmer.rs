//! Cache warming: load what is missing or about to expire, in batches, concurrently.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;

use super::envelope::{self, CacheMetadata, Codec};
use super::manager::{PersistentCacheManager, PutItem, encode_json};
use super::stats::{Op, OpResult};
use super::{CacheError, CacheResult};
use crate::keys::{AsScope, Scope, ScopeKeys};
use crate::tenant_id::TenantId;

/// A value produced for warming.
#[derive(Debug, Clone)]
pub struct WarmValue {
    /// The payload.
    pub payload: Bytes,
    /// How the payload is serialized.
    pub codec: Codec,
    /// TTL; `None` uses `default_ttl_seconds`.
    pub ttl: Option<Duration>,
    /// Metadata (tags...) to store with it.
    pub metadata: Option<CacheMetadata>,
}

impl WarmValue {
    /// Raw bytes (e.g. an extraction result body).
    pub fn bytes(payload: Bytes) -> Self {
        Self {
            payload,
            codec: Codec::Raw,
            ttl: None,
            metadata: None,
        }
    }

    /// A value stored as JSON, readable with `get::<T>`.
    pub fn json<T: Serialize>(value: &T) -> CacheResult<Self> {
        Ok(Self {
            payload: encode_json(value)?,
            codec: Codec::Json,
            ttl: None,
            metadata: None,
        })
    }
}

/// Produces the value of a key for warming (for the API: fetch and extract a URL).
#[async_trait]
pub trait WarmLoader: Send + Sync + 'static {
    /// Loads `key` for `tenant` (`None`: the global scope).
    async fn load(&self, tenant: Option<&TenantId>, key: &str) -> Result<WarmValue, String>;
}

/// Configures warming: a batch size and the loader that produces values.
pub struct CacheWarmer {
    batch_size: usize,
    loader: ArcSwapOption<Box<dyn WarmLoader>>,
}

impl CacheWarmer {
    /// A warmer that checks and loads `batch_size` keys per store round trip (at least 1).
    /// Without a loader it can only report an error: give it one with [`Self::with_loader`]
    /// or [`Self::set_loader`].
    pub fn new(batch_size: usize) -> Self {
        Self {
            batch_size: batch_size.max(1),
            loader: ArcSwapOption::empty(),
        }
    }

    /// Builder form of [`Self::set_loader`].
    pub fn with_loader(self, loader: impl WarmLoader) -> Self {
        self.set_loader(loader);
        self
    }

    /// Sets (or replaces) the loader.
    pub fn set_loader(&self, loader: impl WarmLoader) {
        self.loader.store(Some(Arc::new(Box::new(loader))));
    }

    /// Keys per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }
}

/// One key that could not be warmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WarmFailure {
    /// The key.
    pub key: String,
    /// Why.
    pub error: String,
}

/// What a warming run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WarmReport {
    /// Distinct keys asked for.
    pub requested: usize,
    /// Keys loaded and stored.
    pub warmed: usize,
    /// Keys already cached and not close to expiry.
    pub fresh: usize,
    /// Keys whose load or store failed.
    pub failed: Vec<WarmFailure>,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

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
        let loader = warmer.loader.load_full().ok_or(CacheError::NoWarmLoader)?;
        for chunk in keys.chunks(warmer.batch_size) {
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
