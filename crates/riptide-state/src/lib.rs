//! The state layer: hot config reload, checkpoints, sessions with disk spillover, and
//! graceful shutdown, composed by [`StateManager`].
//!
//! | module | job |
//! |---|---|
//! | [`manager`] | `StateManager`: reload, checkpoints, sessions, `current_state`, `shutdown` |
//! | [`reload`], [`reload_guard`], [`config_doc`], [`config_schema`] | watching, merging, guarding and validating configuration documents |
//! | [`persistence_config`] | `PersistenceConfig` (one section per layer, each defined by its layer) and its reload schema |
//! | [`checkpoint`] | versioned, sealed, checksummed checkpoints; create, list, verify, restore |
//! | [`sessions`] | sessions with a memory tier that spills to disk |
//! | [`peers`], `coordination.rs` | the other instances: the `Peers` trait, implemented by the sync layer's `DistributedSync` and installed by [`StateManager::attach_sync`] |
//! | [`config`] | this layer's own `state` section |
//!
//! The seed's constructor `StateManager::new(url, config)` is in `compat.rs`.

pub mod checkpoint;
mod compat;
pub mod config;
pub mod config_doc;
pub mod config_schema;
mod coordination;
pub mod manager;
pub mod peers;
pub mod persistence_config;
pub mod reload;
pub mod reload_guard;
pub mod sessions;

pub use config_doc::{ConfigDocument, ConfigRejection};
pub use config_schema::{ConfigIssue, ConfigSchema, SchemaSet};
pub use manager::{ShutdownReport, StateError, StateManager, StateReport};
pub use peers::{PeerError, Peers};
pub use reload::{ConfigGeneration, ConfigReloader, ReloadError, ReloadOutcome, ReloadStats};
pub use riptide_sync::InstanceInfo;
