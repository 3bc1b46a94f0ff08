//! RipTide's persistence layer, in five layers, each using only the ones below it:
//!
//! | layer | module | job |
//! |---|---|---|
//! | store | [`store`] | the embedded `redb` store or Redis / Cluster, behind one trait |
//! | cache | [`cache`] | the tenant-scoped, compressed, two-level cache |
//! | tenant | [`tenant`] | tenants, plans, quotas, metering, keys, encryption, audit |
//! | state | [`state`] | hot reload, checkpoints and restore, sessions, shutdown |
//! | sync | [`sync`] | coordination between instances sharing a store |
//!
//! Under them, leaf modules every layer may use: [`error`] (input validation),
//! [`tenant_id`], [`keys`] (every store key), [`clock`], [`private_fs`]. Above them,
//! [`config`] (the whole configuration, one section per layer), [`Persistence`] (the
//! one place the layers are started together and shut down in order) and the seed's
//! constructors (`compat.rs`). See `docs/ARCHITECTURE.md`.
//!
//! The seed's imports work from the crate root: `use riptide_persistence::{
//! PersistentCacheManager, TenantManager, StateManager, PersistenceConfig, CacheConfig,
//! TenantConfig, StateConfig}`. `TenantConfig` is the tenant's own settings; the
//! `tenant` section of the configuration is [`TenancyConfig`].

pub mod cache;
pub mod clock;
mod compat;
pub mod config;
pub mod error;
pub mod fence;
pub mod keys;
mod persistence;
pub mod private_fs;
pub mod state;
pub mod store;
pub mod sync;
pub mod tenant;
pub mod tenant_id;

pub use cache::{
    CacheError, CacheMetadata, CacheStats, CacheWarmer, LegacyCacheAdapter, PersistentCacheManager,
};
pub use config::{
    CacheConfig, CompressionAlgorithm, EmbeddedConfig, PersistenceConfig, RedisConfig, StateConfig,
    SyncConfig, TenancyConfig,
};
pub use error::InvalidInput;
pub use keys::{AsScope, Scope};
pub use persistence::{Persistence, StartError, StartOptions};
pub use state::{StateError, StateManager};
pub use store::{SharedStore, Store, StoreError, StoreKind, open_store};
pub use sync::DistributedSync;
pub use tenant::{
    BillingPlan, ResourceUsageRecord, SharedTenantMetrics, Tenant, TenantConfig, TenantError,
    TenantIsolationLevel, TenantManager, TenantMetrics, TenantOwner, TenantStatus,
};
pub use tenant_id::{AsTenantId, TenantId};
