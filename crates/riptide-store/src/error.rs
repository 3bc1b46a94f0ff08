//! The input-validation error every layer reports. Each layer has its own error enum
//! (`StoreError`, `CacheError`, `TenantError`, `StateError`, `SyncError`) wrapping it.

use thiserror::Error;

/// Input refused before it reached a store key.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum InvalidInput {
    /// The tenant id does not match `^[a-z0-9][a-z0-9_-]{0,63}$`.
    #[error("invalid tenant id {0:?}: expected ^[a-z0-9][a-z0-9_-]{{0,63}}$")]
    TenantId(String),
    /// The namespace does not match `^[a-z0-9_.-]{{1,32}}$`.
    #[error("invalid namespace {0:?}: expected ^[a-z0-9_.-]{{1,32}}$")]
    Namespace(String),
    /// A tag is empty, too long or has whitespace or control characters.
    #[error("invalid tag {0:?}: expected 1 to 128 printable ASCII characters without spaces")]
    Tag(String),
    /// A store URL that names no known backend.
    #[error("invalid store url {0:?}: {1}")]
    StoreUrl(String, String),
    /// A configuration value out of range.
    #[error("invalid configuration {key}: {reason}")]
    Config {
        /// The offending key.
        key: &'static str,
        /// Why it was refused.
        reason: String,
    },
}

/// Refuses a configuration value of 0.
pub fn positive(key: &'static str, value: u64) -> Result<(), InvalidInput> {
    if value == 0 {
        Err(config_err(key, "must be greater than 0"))
    } else {
        Ok(())
    }
}

/// Refuses a configuration value: `key` out of range because of `reason`.
pub fn config_err(key: &'static str, reason: &str) -> InvalidInput {
    InvalidInput::Config {
        key,
        reason: reason.to_owned(),
    }
}
