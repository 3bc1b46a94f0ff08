//! [`CheckpointError`]: every way creating, listing or restoring a checkpoint fails.

use thiserror::Error;

use super::format::{self, Problem};
use riptide_store::StoreError;

/// A checkpoint failure. The refusals (`InvalidId` to `Corrupt`) happen before the
/// store is touched.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// A scheduled checkpoint whose singleton lease had passed to another holding by the
    /// time it was written (or whose fenced record failed): its file was removed.
    #[error("checkpoint not kept: {0}")]
    Fenced(riptide_store::fence::FenceError),
    /// The id has characters other than `[0-9A-Za-z_-]` (before an optional `.ckpt`).
    #[error(
        "invalid checkpoint id {0:?}: expected 1 to 128 characters of [0-9A-Za-z_-], optionally followed by .ckpt"
    )]
    InvalidId(String),
    /// No such checkpoint file.
    #[error("no checkpoint {id:?} in {dir}")]
    UnknownId {
        /// The id.
        id: String,
        /// The checkpoint directory.
        dir: String,
    },
    /// The file does not start with the checkpoint magic.
    #[error("checkpoint {id} is not a checkpoint file (no RTCK header)")]
    NotACheckpoint {
        /// The id.
        id: String,
    },
    /// The file is shorter than its structure says (cut off, or never finished).
    #[error("checkpoint {id} is truncated: {reason}")]
    Truncated {
        /// The id.
        id: String,
        /// What is missing.
        reason: String,
    },
    /// The content does not match its checksum.
    #[error("checkpoint {id} is corrupt: checksum mismatch (the file was altered or damaged)")]
    ChecksumMismatch {
        /// The id.
        id: String,
    },
    /// Written by another version of the format.
    #[error(
        "checkpoint {id} has format version {found} (flags {flags:#06x}); this build reads version {supported}"
    )]
    UnsupportedVersion {
        /// The id.
        id: String,
        /// Its version.
        found: u16,
        /// Its flags.
        flags: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// The checksum matches but the body does not fit the format.
    #[error("checkpoint {id} is corrupt: {reason}")]
    Corrupt {
        /// The id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// Taken before the oldest tombstone still kept: restoring it could bring back
    /// tenants or keys whose tombstones were pruned.
    #[error(
        "checkpoint {id} was taken before {horizon}, the oldest deletion or revocation still remembered (tenant.audit_retention_days); restoring it could undo older ones"
    )]
    BeforeTombstoneHorizon {
        /// The id.
        id: String,
        /// Tombstones before this time are pruned.
        horizon: chrono::DateTime<chrono::Utc>,
    },
    /// A checkpoint file could not be read.
    #[error("cannot read checkpoint {id}: {reason}")]
    Read {
        /// The id.
        id: String,
        /// The I/O error.
        reason: String,
    },
    /// A file operation failed while writing or pruning.
    #[error("checkpoint: cannot {action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The store failed.
    #[error("checkpoint: {0}")]
    Store(#[from] StoreError),
    /// A line could not be encoded.
    #[error("checkpoint: cannot encode: {0}")]
    Encode(String),
    /// A tenant's checkpoint key, or the checkpoint directory's keys file, cannot be
    /// read, made or written.
    #[error("checkpoint keys: {0}")]
    Keys(String),
    /// The writer thread stopped before the end (its own error is reported instead when
    /// known).
    #[error("checkpoint: the file writer stopped")]
    WriterStopped,
    /// A background task panicked or was cancelled.
    #[error("checkpoint task failed: {0}")]
    Task(String),
}

impl CheckpointError {
    /// Stable code for API errors: `invalid_id`, `not_found`, `invalid_checkpoint`,
    /// `unsupported_version`, `store` or `io`.
    pub fn code(&self) -> &'static str {
        match self {
            CheckpointError::InvalidId(_) => "invalid_id",
            CheckpointError::UnknownId { .. } => "not_found",
            CheckpointError::NotACheckpoint { .. }
            | CheckpointError::Truncated { .. }
            | CheckpointError::ChecksumMismatch { .. }
            | CheckpointError::Corrupt { .. } => "invalid_checkpoint",
            CheckpointError::UnsupportedVersion { .. } => "unsupported_version",
            CheckpointError::BeforeTombstoneHorizon { .. } => "checkpoint_too_old",
            CheckpointError::Store(_) => "store",
            CheckpointError::Fenced(_) => "fenced",
            CheckpointError::Read { .. }
            | CheckpointError::Io { .. }
            | CheckpointError::Encode(_)
            | CheckpointError::Keys(_)
            | CheckpointError::WriterStopped
            | CheckpointError::Task(_) => "io",
        }
    }

    pub(super) fn from_problem(id: &str, problem: Problem) -> Self {
        let id = id.to_owned();
        match problem {
            Problem::NotACheckpoint => CheckpointError::NotACheckpoint { id },
            Problem::Truncated(reason) => CheckpointError::Truncated { id, reason },
            Problem::UnsupportedVersion { found, flags } => CheckpointError::UnsupportedVersion {
                id,
                found,
                flags,
                supported: format::FORMAT_VERSION,
            },
            Problem::ChecksumMismatch => CheckpointError::ChecksumMismatch { id },
            Problem::Io(reason) => CheckpointError::Read { id, reason },
        }
    }
}

pub(super) fn io_err(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> CheckpointError {
    let action = action.into();
    move |source| CheckpointError::Io { action, source }
}

pub(super) fn task_err(e: tokio::task::JoinError) -> CheckpointError {
    CheckpointError::Task(e.to_string())
}
