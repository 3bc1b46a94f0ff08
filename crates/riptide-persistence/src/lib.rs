//! RipTide's persistence layer: the facade over five layer crates, each depending only
//! on the ones below it (the compiler holds the layering):
//!
//! | layer | crate | re-exported as | job |
//! |---|---|---|---|
//! | store | `riptide-store` | [`store`], and its leaves [`error`], [`tenant_id`], [`keys`], [`clock`], [`private_fs`], [`fence`] | the embedded `redb` store or Redis / Cluster, behind capability traits; the keys and ids every layer shares |
//! | cache | `riptide-cache` | [`cache`] | the tenant-scoped, compressed, two-level cache |
//! | tenant | `riptide-tenant` | [`tenant`] | tenants, plans, quotas, metering, keys, encryption, audit |
//! | sync | `riptide-sync` | [`sync`] | coordination between instances sharing a store |
//! | state | `riptide-state` | [`state`], [`config`] | hot reload, checkpoints and restore, sessions, shutdown; the whole configuration |
//!
//! This crate adds [`Persistence`], the one place the layers are started together and
//! shut down in order. See `docs/ARCHITECTURE.md`.
//!
//! The seed's imports work from the crate root: `use riptide_persistence::{
//! PersistentCacheManager, TenantManager, StateManager, PersistenceConfig, CacheConfig,
//! TenantConfig, StateConfig}`. `TenantConfig` is the tenant's own settings; the
//! `tenant` section of the configuration is [`TenancyConfig`].

mod persistence;

// The layers, each its own crate, under the module paths they had when they shared
// this one: `riptide_persistence::cache::PersistentCacheManager` and the like.
pub use riptide_cache as cache;
pub use riptide_state as state;
pub use riptide_state::persistence_config as config;
pub use riptide_store as store;
pub use riptide_store::{clock, error, fence, keys, private_fs, tenant_id};
pub use riptide_sync as sync;
pub use riptide_tenant as tenant;

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
