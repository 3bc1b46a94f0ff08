//! The seed's constructor of the tenant layer, as the seed calls it: it opens (or
//! shares) the store a URL names, with the store sections' defaults. The service builds
//! the layers together instead (`riptide_persistence::Persistence::start`).

use riptide_store::clock::system_clock;

use crate::config::TenancyConfig;
use crate::error::TenantResult;
use crate::manager::TenantManager;
use crate::metrics_lock::SharedTenantMetrics;

impl TenantManager {
    /// The tenant layer over the store `url` names (the seed's constructor). `url` is
    /// `embedded`, a directory path, or a Redis URL (see [`riptide_store::StoreUrl`]).
    /// `metrics` is the seed's `Arc<tokio::sync::RwLock<TenantMetrics>>` or a std
    /// `RwLock` one. Must run inside a tokio runtime: the usage flusher starts.
    pub async fn new(
        url: &str,
        config: TenancyConfig,
        metrics: impl Into<SharedTenantMetrics>,
    ) -> TenantResult<Self> {
        config.validate()?;
        let store = riptide_store::open_store_with_defaults(url).await?;
        Self::with_store(store, config, metrics, system_clock()).await
    }
}
