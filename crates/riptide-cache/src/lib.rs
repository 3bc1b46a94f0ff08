//! The cache layer: [`PersistentCacheManager`] over a [`riptide_store::Store`].
//!
//! One file per concept: the envelope and compression, the L1 in front of the store,
//! request coalescing, stats, the per-tenant budget, invalidation, warming, envelope
//! work off the async workers, and the legacy adapter of the seed's rollback plan.

mod batch;
mod budget;
mod compat;
mod compression;
pub mod config;
mod envelope;
mod get_or_load;
mod histogram;
mod invalidate;
mod invalidation;
mod json;
mod l1;
mod l1_share;
mod legacy;
mod live_settings;
mod manager;
mod offload;
mod popular_urls;
pub mod popularity;
mod sealing;
mod single_flight;
mod stats;
mod top_k;
mod warmer;
mod warming;

use std::sync::Arc;

use thiserror::Error;

use riptide_store::StoreError;
use riptide_store::error::InvalidInput;

pub use budget::{CacheBudget, FixedBudget};
pub use compat::scope_of;
pub use compression::Compression;
pub use envelope::{CacheMetadata, Codec, Entry, FORMAT_VERSION};
pub use get_or_load::{Lookup, LookupSource};
pub use invalidation::Invalidation;
pub use legacy::LegacyCacheAdapter;
pub use live_settings::LIVE_CACHE_KEYS;
pub use manager::{InvalidationListener, PersistentCacheManager};
pub use sealing::{CacheSealer, NONCE_LEN, SEAL_OVERHEAD, SealError, SealingKey, TAG_LEN};
pub use stats::{CacheStats, LatencySummary, StatsSnapshot};
pub use warmer::{CacheWarmer, WarmFailure, WarmLoader, WarmReport, WarmValue};

/// A cache failure.
#[derive(Debug, Error)]
pub enum CacheError {
    /// Bad input (tenant id, namespace, tag, configuration).
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The value is larger than `max_entry_size_bytes`.
    #[error("entry of {size} bytes exceeds max_entry_size_bytes ({max})")]
    EntryTooLarge {
        /// Serialized size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The entry alone is larger than the tenant's whole cache budget.
    #[error("entry of {size} bytes exceeds the cache budget of {budget} bytes")]
    OverBudget {
        /// Stored size.
        size: u64,
        /// The budget.
        budget: u64,
    },
    /// A TTL of zero.
    #[error("invalid ttl: {0}")]
    InvalidTtl(String),
    /// The value could not be serialized.
    #[error("cannot serialize the value: {0}")]
    Serialize(String),
    /// The cached value does not deserialize as the requested type.
    #[error("cached value does not deserialize as the requested type: {0}")]
    Deserialize(String),
    /// The key to seal (or open) an entry of an encrypted scope could not be had; for
    /// a write, nothing was written.
    #[error("cache sealing: {0}")]
    Sealing(String),
    /// The loader failed (for this caller, or for the caller it waited on): `source`
    /// is the loader's own error, the same value for every caller of the flight.
    #[error("loading {key:?} failed: {source}")]
    LoadFailed {
        /// The caller's key.
        key: String,
        /// The loader's error; [`CacheError::load_error`] gives it back typed.
        source: LoadError,
    },
    /// Waiting for another caller's load of the same key took too long.
    #[error("gave up after {waited_ms} ms waiting for another caller's load of {key:?}")]
    LoadTimeout {
        /// The caller's key.
        key: String,
        /// How long it waited.
        waited_ms: u64,
    },
    /// `warm_cache` with `enable_warming = false`.
    #[error("cache warming is disabled (cache.enable_warming = false)")]
    WarmingDisabled,
    /// `warm_cache` before `enable_warming`.
    #[error("no cache warmer: call enable_warming first")]
    NoWarmer,
    /// `warm_cache` with a warmer that has no loader.
    #[error("the cache warmer has no loader, so it cannot produce values to warm")]
    NoWarmLoader,
}

impl CacheError {
    /// The loader's own error of a [`CacheError::LoadFailed`], as the type `E` it was
    /// (for the caller that loaded and for every caller that waited on it alike).
    pub fn load_error<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            CacheError::LoadFailed { source, .. } => source.downcast_ref::<E>(),
            _ => None,
        }
    }

    /// True for errors caused by the caller's input rather than by the system.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            CacheError::Invalid(_)
                | CacheError::EntryTooLarge { .. }
                | CacheError::OverBudget { .. }
                | CacheError::InvalidTtl(_)
                | CacheError::Serialize(_)
        )
    }
}

/// Result with [`CacheError`].
pub type CacheResult<T> = Result<T, CacheError>;

/// A loader's error as `get_or_load` shares it between the callers of one flight.
pub type LoadError = Arc<dyn std::error::Error + Send + Sync>;
