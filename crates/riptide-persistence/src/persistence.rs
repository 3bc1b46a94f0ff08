//! [`Persistence`]: the one place the layers are put together. It builds them in the
//! order they depend on each other and wires each into the next:
//!
//! 1. the cache over the store;
//! 2. the tenant layer, which plugs its budgets and encryption into the cache;
//! 3. coordination, which keeps the cache's L1, tenant records and sessions coherent
//!    with the other instances (within the process on the embedded store);
//! 4. the state manager, attached to the tenants (deletions shred checkpoint keys and
//!    sessions) and to coordination (reloads everywhere, the checkpoint singleton).
//!
//! A step that fails stops the ones already started, in reverse order, before the
//! error is returned; [`Persistence::shutdown`] is the one ordered shutdown afterwards.
//! The service starts the layers here, as do the integration tests that run them all
//! together; tests and benches of one layer build just that layer.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::config::{PersistenceConfig, PersistenceSchema};
use riptide_cache::{CacheError, PersistentCacheManager};
use riptide_state::{ConfigSchema, ShutdownReport, StateError, StateManager};
use riptide_store::clock::{SharedClock, system_clock};
use riptide_store::{SharedStore, StoreError};
use riptide_sync::{DistributedSync, SyncError};
use riptide_tenant::{SharedTenantMetrics, TenantError, TenantManager};

/// Every layer over one store, running together.
#[derive(Clone)]
pub struct Persistence {
    /// The store under every layer.
    pub store: SharedStore,
    /// The cache manager.
    pub cache: Arc<PersistentCacheManager>,
    /// The tenant manager.
    pub tenants: Arc<TenantManager>,
    /// Coordination with the other instances sharing the store.
    pub sync: Arc<DistributedSync>,
    /// Hot reload, checkpoints, sessions and shutdown.
    pub state: Arc<StateManager>,
}

/// What the embedding process supplies besides the configuration.
pub struct StartOptions {
    /// The clock of every layer.
    pub clock: SharedClock,
    /// The tenant metrics the caller reads (the seed's `Arc<RwLock<TenantMetrics>>`).
    pub tenant_metrics: SharedTenantMetrics,
    /// The schema reloaded configuration documents are checked against.
    pub schema: Arc<dyn ConfigSchema>,
}

impl Default for StartOptions {
    fn default() -> Self {
        Self {
            clock: system_clock(),
            tenant_metrics: SharedTenantMetrics::default(),
            schema: Arc::new(PersistenceSchema),
        }
    }
}

/// A layer that did not start; the ones started before it were stopped.
#[derive(Debug, Error)]
pub enum StartError {
    /// The configuration is out of range.
    #[error("invalid configuration: {0}")]
    Config(#[from] riptide_store::error::InvalidInput),
    /// The store could not be opened.
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
    /// The cache did not build.
    #[error("building the cache: {0}")]
    Cache(#[from] CacheError),
    /// The tenant manager did not start.
    #[error("starting the tenant manager: {0}")]
    Tenants(#[from] TenantError),
    /// Coordination did not start or could not be wired.
    #[error("joining the instances sharing the store: {0}")]
    Sync(#[from] SyncError),
    /// The state manager did not start or could not be wired.
    #[error("starting the state manager: {0}")]
    State(#[from] StateError),
}

/// How long a failed start gives the layers already started to stop.
const ABORT_DEADLINE: Duration = Duration::from_secs(1);

impl Persistence {
    /// Opens (or shares) the store `url` names and starts every layer over it.
    pub async fn start(
        url: &str,
        config: &PersistenceConfig,
        options: StartOptions,
    ) -> Result<Self, StartError> {
        config.validate()?;
        let store = config.open_store(url).await?;
        Self::start_with_store(store, config, options).await
    }

    /// Starts every layer over an open store.
    pub async fn start_with_store(
        store: SharedStore,
        config: &PersistenceConfig,
        options: StartOptions,
    ) -> Result<Self, StartError> {
        let StartOptions {
            clock,
            tenant_metrics,
            schema,
        } = options;
        let cache = Arc::new(PersistentCacheManager::with_store_and_clock(
            store.clone(),
            config.cache.clone(),
            clock.clone(),
        )?);
        let tenants = Arc::new(
            TenantManager::with_store(
                store.clone(),
                config.tenant.clone(),
                tenant_metrics,
                clock.clone(),
            )
            .await?,
        );
        tenants.attach_cache(cache.clone());
        let sync = match DistributedSync::start(store.clone(), clock.clone(), &config.sync).await {
            Ok(sync) => sync,
            Err(e) => {
                tenants.shutdown().await;
                return Err(e.into());
            }
        };
        sync.attach_cache(cache.clone());
        sync.attach_tenants(tenants.clone());
        let state = match StateManager::with_store(
            store.clone(),
            config.state.clone(),
            clock,
            schema,
        )
        .await
        {
            Ok(state) => Arc::new(state),
            Err(e) => {
                sync.shutdown().await;
                tenants.shutdown().await;
                return Err(e.into());
            }
        };
        let started = Self {
            store,
            cache,
            tenants,
            sync,
            state,
        };
        if let Err(e) = started.wire_state() {
            // The state manager stops what it was attached to; stop the rest too (each
            // shutdown is idempotent).
            started.state.shutdown(ABORT_DEADLINE).await;
            started.sync.shutdown().await;
            started.tenants.shutdown().await;
            return Err(e);
        }
        Ok(started)
    }

    fn wire_state(&self) -> Result<(), StartError> {
        self.state.attach_tenants(self.tenants.clone())?;
        self.state.attach_sync(&self.sync)?;
        Ok(())
    }

    /// Graceful shutdown within `deadline`, in reverse order of the start: background
    /// jobs stopped, sessions written out of memory, usage flushed, the final checkpoint
    /// when `checkpoint_on_shutdown`, coordination left. The report says what finished.
    /// Call it after the last request that uses the layers.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.state.shutdown(deadline).await
    }
}
