//! Errors of the tenant layer.

use std::time::Duration;

use thiserror::Error;

use riptide_store::StoreError;
use riptide_store::error::InvalidInput;

/// A tenant-layer failure.
#[derive(Debug, Error)]
pub enum TenantError {
    /// Bad input: a tenant id, plan, resource, quota, period or field value.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// A field value that is out of range, named.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such tenant (or key, or record).
    #[error("{what} {id:?} not found")]
    NotFound {
        /// What was looked for (`tenant`, `api key`, ...).
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// A tenant with this id exists already.
    #[error("tenant {0:?} already exists")]
    AlreadyExists(String),
    /// The amount asked for does not fit the tenant's quota.
    #[error("quota exceeded for {resource}: limit {limit}, current {current}")]
    QuotaExceeded {
        /// The resource (`operations_per_minute`, `storage_bytes`, ...).
        resource: String,
        /// The quota in force.
        limit: u64,
        /// Use so far (for rates: requests admitted in the current burst window).
        current: u64,
        /// When the request would fit, if that is known.
        retry_after: Option<Duration>,
    },
    /// The tenant is suspended.
    #[error("tenant {0:?} is suspended")]
    Suspended(String),
    /// Multi-tenancy is off (`tenant.enabled = false`): only `default` exists.
    #[error("multi-tenancy is disabled: only the default tenant exists")]
    MultiTenancyDisabled,
    /// Billing is off (`tenant.enable_billing = false`).
    #[error("billing is disabled")]
    BillingDisabled,
    /// The tenant may not do this.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// A presented API key is malformed, unknown, revoked or expired.
    #[error("invalid api key")]
    InvalidApiKey,
    /// A presented JWT is malformed, unsigned or badly signed, names an unknown or
    /// revoked key, another tenant, or is outside its validity window. The reason is
    /// one of a few fixed phrases, safe to send (never the token or a key).
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    /// The audit log cannot take a record (its head was lost or rolled back), so the
    /// operation to be audited is refused: auditing fails closed. Says what is wrong.
    #[error("the audit log is unavailable: {0}")]
    AuditUnavailable(String),
    /// The record changed concurrently too many times; try again.
    #[error("concurrent update of {0:?}; try again")]
    Conflict(String),
    /// Key material or a sealed value could not be used.
    #[error("crypto: {0}")]
    Crypto(String),
    /// A stored record could not be decoded.
    #[error("corrupt record {key}: {reason}")]
    Corrupt {
        /// The store key.
        key: String,
        /// Why.
        reason: String,
    },
}

impl TenantError {
    /// Shorthand for [`TenantError::NotFound`] of a tenant.
    pub fn tenant_not_found(id: &str) -> Self {
        TenantError::NotFound {
            what: "tenant",
            id: id.to_owned(),
        }
    }
}

/// Result with [`TenantError`].
pub type TenantResult<T> = Result<T, TenantError>;
