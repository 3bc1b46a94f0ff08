//! The state layer: hot config reload, checkpoints, sessions with disk spillover, and
//! graceful shutdown, composed by `StateManager`.

pub mod config;
pub mod config_doc;
pub mod config_schema;
pub mod reload;
pub mod reload_guard;

pub use config_doc::{ConfigDocument, ConfigRejection};
pub use config_schema::{ConfigIssue, ConfigSchema, SchemaSet};
pub use reload::{ConfigGeneration, ConfigReloader, ReloadError, ReloadOutcome, ReloadStats};
pub mod checkpoint;
mod compat;
mod coordination;
pub mod manager;
pub mod peers;
pub mod persistence_config;
pub mod sessions;

pub use manager::{ShutdownReport, StateError, StateManager, StateReport};
pub use peers::{PeerError, Peers};
pub use riptide_sync::InstanceInfo;
