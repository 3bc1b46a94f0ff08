//! The seed's constructors, as the seed calls them: each opens (or shares) the store a
//! URL names and builds one manager over it with its section and the other sections'
//! defaults. They sit above the layers because opening a store from a URL takes the
//! whole [`PersistenceConfig`]; the service itself builds everything in one place,
//! `Persistence::start`.
//!
//! `url` is `embedded`, a directory path, or a Redis URL (see
//! [`crate::store::StoreUrl`]).

use std::sync::Arc;

use crate::cache::{CacheResult, PersistentCacheManager};
use crate::clock::system_clock;
use crate::config::{
    CacheConfig, PersistenceConfig, PersistenceSchema, StateConfig, TenancyConfig,
};
use crate::state::{StateError, StateManager};
use crate::tenant::{SharedTenantMetrics, TenantManager, TenantResult};

impl PersistentCacheManager {
    /// A cache over the store `url` names (the seed's constructor).
    pub async fn new(url: &str, config: CacheConfig) -> CacheResult<Self> {
        let persistence = PersistenceConfig {
            cache: config,
            ..Default::default()
        };
        Self::open(url, &persistence).await
    }

    /// A cache over the store `url` names, with full settings.
    pub async fn open(url: &str, config: &PersistenceConfig) -> CacheResult<Self> {
        config.validate()?;
        let store = config.open_store(url).await?;
        Self::with_store(store, config.cache.clone())
    }
}

impl TenantManager {
    /// The tenant layer over the store `url` names (the seed's constructor). `metrics` is
    /// the seed's `Arc<tokio::sync::RwLock<TenantMetrics>>` or a std `RwLock` one. Must
    /// run inside a tokio runtime: the usage flusher starts.
    pub async fn new(
        url: &str,
        config: TenancyConfig,
        metrics: impl Into<SharedTenantMetrics>,
    ) -> TenantResult<Self> {
        let persistence = PersistenceConfig {
            tenant: config,
            ..Default::default()
        };
        persistence.validate()?;
        let store = persistence.open_store(url).await?;
        Self::with_store(store, persistence.tenant, metrics, system_clock()).await
    }
}

impl StateManager {
    /// The state manager over the store `url` names (the seed's constructor); reloaded
    /// configuration is checked with [`PersistenceSchema`].
    pub async fn new(url: &str, config: StateConfig) -> Result<Self, StateError> {
        let persistence = PersistenceConfig {
            state: config,
            ..Default::default()
        };
        persistence.validate()?;
        let store = persistence.open_store(url).await?;
        Self::with_store(
            store,
            persistence.state,
            system_clock(),
            Arc::new(PersistenceSchema),
        )
        .await
    }
}
