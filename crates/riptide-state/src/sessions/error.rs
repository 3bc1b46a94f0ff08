//! [`SessionError`]: what a session operation can fail with.

use std::path::PathBuf;

use thiserror::Error;

use riptide_store::StoreError;
use riptide_store::error::InvalidInput;
use riptide_tenant::TenantError;

/// A session-layer failure.
///
/// Messages name fields, cookie and header *names* and limits, never cookie or header
/// values.
#[derive(Debug, Error)]
pub enum SessionError {
    /// Bad input: a tenant or session id, a cookie, a header, a TTL.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field (`cookies`, `headers`, `ttl`, `session_id`, ...).
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// No live session with this id for this tenant.
    #[error("session not found")]
    NotFound,
    /// The tenant's `storage_bytes` quota does not fit the write; nothing was written.
    #[error(transparent)]
    QuotaExceeded(TenantError),
    /// The tenant already holds `state.max_sessions_per_tenant` sessions.
    #[error("tenant {tenant:?} already holds the maximum of {limit} sessions")]
    TooManySessions {
        /// The tenant.
        tenant: String,
        /// The limit in force.
        limit: u64,
    },
    /// The tenant is unknown, suspended, or the tenant layer failed.
    #[error(transparent)]
    Tenant(TenantError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A spill file could not be read or written.
    #[error("spill file {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A session could not be sealed or opened with its tenant's data key.
    #[error("crypto: {0}")]
    Crypto(String),
    /// A stored session could not be decoded.
    #[error("corrupt session record {key}: {reason}")]
    Corrupt {
        /// The store key (or spill file path).
        key: String,
        /// Why.
        reason: String,
    },
    /// The session kept changing under a compare-and-swap; try again.
    #[error("session changed concurrently too many times; try again")]
    Conflict,
}

impl SessionError {
    /// Shorthand for [`SessionError::Invalid`].
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        SessionError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// True when trying again later may succeed (store outage, lost race).
    pub fn is_retryable(&self) -> bool {
        match self {
            SessionError::Store(e) => e.is_retryable(),
            SessionError::Tenant(TenantError::Store(e)) => e.is_retryable(),
            SessionError::Conflict => true,
            _ => false,
        }
    }
}

impl From<TenantError> for SessionError {
    fn from(e: TenantError) -> Self {
        match e {
            q @ TenantError::QuotaExceeded { .. } => SessionError::QuotaExceeded(q),
            TenantError::Store(s) => SessionError::Store(s),
            TenantError::Invalid(i) => i.into(),
            other => SessionError::Tenant(other),
        }
    }
}

impl From<InvalidInput> for SessionError {
    fn from(e: InvalidInput) -> Self {
        let field = match e {
            InvalidInput::TenantId(_) => "tenant_id",
            _ => "input",
        };
        SessionError::Invalid {
            field,
            reason: e.to_string(),
        }
    }
}

/// Result with [`SessionError`].
pub type SessionResult<T> = Result<T, SessionError>;
