//! The state manager's configuration section: `state` (hot reload, checkpoints,
//! sessions, shutdown).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use riptide_store::error::{InvalidInput, config_err, positive};

/// The seed's `StateConfig`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// Watch `config_watch_paths` and apply valid changes without a restart.
    pub enable_hot_reload: bool,
    /// Directories whose `*.yml` / `*.yaml` files make up the configuration (merged in
    /// file-name order). Directories, not files: editors replace files by rename.
    pub config_watch_paths: Vec<String>,
    /// Changes within this many milliseconds are applied as one reload.
    pub reload_debounce_ms: u64,
    /// Take a checkpoint this often, in seconds (0: only on demand). With several
    /// instances on one store, only the lease holder takes scheduled checkpoints.
    pub checkpoint_interval_seconds: u64,
    /// Where checkpoint files are written.
    pub checkpoint_dir: PathBuf,
    /// Checkpoints kept; older ones are deleted after each new one.
    pub checkpoint_retention: usize,
    /// Take a final checkpoint during graceful shutdown.
    pub checkpoint_on_shutdown: bool,
    /// Lifetime of a session without activity, in seconds.
    pub session_ttl_seconds: u64,
    /// Bytes of sessions kept in memory; beyond it the least recently used spill to disk.
    pub session_memory_limit_bytes: u64,
    /// Where spilled sessions are written.
    pub spill_dir: PathBuf,
    /// Most sessions one tenant may hold.
    pub max_sessions_per_tenant: u64,
    /// Longest a graceful shutdown may take, in milliseconds.
    pub shutdown_timeout_ms: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            enable_hot_reload: false,
            config_watch_paths: vec!["./config".to_owned()],
            reload_debounce_ms: 250,
            checkpoint_interval_seconds: 0,
            checkpoint_dir: PathBuf::from("./data/checkpoints"),
            checkpoint_retention: 10,
            checkpoint_on_shutdown: true,
            session_ttl_seconds: 3_600,
            session_memory_limit_bytes: 64 * 1024 * 1024,
            spill_dir: PathBuf::from("./data/sessions"),
            max_sessions_per_tenant: 10_000,
            shutdown_timeout_ms: 30_000,
        }
    }
}

impl StateConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if self.enable_hot_reload && self.config_watch_paths.is_empty() {
            return Err(config_err(
                "state.config_watch_paths",
                "hot reload needs at least one directory",
            ));
        }
        positive("state.reload_debounce_ms", self.reload_debounce_ms)?;
        positive(
            "state.checkpoint_retention",
            self.checkpoint_retention as u64,
        )?;
        positive("state.session_ttl_seconds", self.session_ttl_seconds)?;
        positive(
            "state.session_memory_limit_bytes",
            self.session_memory_limit_bytes,
        )?;
        positive(
            "state.max_sessions_per_tenant",
            self.max_sessions_per_tenant,
        )?;
        positive("state.shutdown_timeout_ms", self.shutdown_timeout_ms)
    }
}
