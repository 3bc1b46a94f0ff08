//! What every handler can reach: the cache (and through it the store) and the metrics
//! handle.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use riptide_persistence::{CacheConfig, CacheError, PersistentCacheManager, SharedStore};

/// Shared, cheaply cloned application state.
#[derive(Clone)]
pub struct AppState {
    /// The tenant-scoped cache over the store opened at startup.
    pub cache: Arc<PersistentCacheManager>,
    /// Renders the process's metrics for `GET /metrics`.
    pub metrics: PrometheusHandle,
}

impl AppState {
    /// State over an open store and an installed recorder.
    pub fn new(
        store: SharedStore,
        cache: CacheConfig,
        metrics: PrometheusHandle,
    ) -> Result<Self, CacheError> {
        let cache = Arc::new(PersistentCacheManager::with_store(store, cache)?);
        Ok(Self { cache, metrics })
    }

    /// The store under the cache.
    pub fn store(&self) -> &SharedStore {
        self.cache.store()
    }
}
