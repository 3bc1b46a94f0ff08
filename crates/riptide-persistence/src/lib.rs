//! RipTide's persistence layer: the store (embedded `redb` or Redis), and the
//! tenant-scoped cache manager over it.
//!
//! Data flows down, never up: cache → store. See `docs/ARCHITECTURE.md`.

pub mod cache;
pub mod clock;
pub mod config;
pub mod error;
pub mod keys;
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
    CacheConfig, CompressionAlgorithm, EmbeddedConfig, PersistenceConfig, RedisConfig,
};
pub use error::InvalidInput;
pub use keys::{AsScope, Scope};
pub use store::{SharedStore, Store, StoreError, StoreKind, open_store};
pub use tenant_id::{AsTenantId, TenantId};
