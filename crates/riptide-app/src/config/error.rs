//! What building the configuration takes from the command line ([`Overrides`]) and how
//! it fails ([`ConfigError`]): shared by loading and by provenance, below both.

use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

/// Values given on the command line: the last layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
}

/// Why the configuration could not be built. Every variant names its source and key.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid YAML for [`AppConfig`](super::AppConfig) (syntax, unknown key, wrong type).
    #[error("config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the key and line.
        source: serde_yaml_ng::Error,
    },
    /// An environment variable could not be parsed.
    #[error("environment variable {var}={value:?} (sets {key}): {reason}")]
    Env {
        /// The variable.
        var: &'static str,
        /// The key it sets.
        key: &'static str,
        /// Its value (lossily decoded).
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A variable holding a secret could not be read; its value is not shown.
    #[error("environment variable {var} (sets {key}): {reason}")]
    SecretEnv {
        /// The variable.
        var: &'static str,
        /// The key it sets.
        key: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A value of the merged configuration is out of range.
    #[error("invalid {key} (from {origin}): {reason}")]
    Invalid {
        /// Dotted key.
        key: String,
        /// Where the value came from: the file, a variable, a flag or the defaults.
        origin: String,
        /// Why it was refused.
        reason: String,
    },
}
