//! What cache warming works with: the loader, the values it produces, the warmer's
//! settings and the report (the warming itself is in `warming.rs`).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;

use super::CacheResult;
use super::envelope::{CacheMetadata, Codec};
use super::json::encode_json;
use riptide_store::tenant_id::TenantId;

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

    /// The loader, if one was set.
    pub(super) fn loader(&self) -> Option<Arc<Box<dyn WarmLoader>>> {
        self.loader.load_full()
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
