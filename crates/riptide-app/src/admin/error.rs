//! [`AdminTokenError`]: how admin token operations fail, and the HTTP answer for each.

use riptide_persistence::store::StoreError;

use crate::error::ApiError;

/// An admin token failure.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    /// Bad input.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Another token has this name.
    #[error("an admin token named {0:?} exists")]
    NameTaken(String),
    /// The most tokens that may exist ([`super::tokens::MAX_TOKENS`]) exist.
    #[error("at most {max} admin tokens may exist; delete unused ones first")]
    TooMany {
        /// The limit.
        max: u64,
    },
    /// No token with this id.
    #[error("admin token {0:?} not found")]
    NotFound(String),
    /// The configured token is not managed through the API.
    #[error(
        "the configured admin token cannot be deleted here: unset admin.token (RIPTIDE_ADMIN_TOKEN) and restart"
    )]
    Configured,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record does not decode.
    #[error("admin token record {key} is corrupt: {reason}")]
    Corrupt {
        /// The store key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl From<AdminTokenError> for ApiError {
    fn from(e: AdminTokenError) -> Self {
        match e {
            AdminTokenError::Invalid { .. } => {
                ApiError::bad_request("invalid_input", e.to_string())
            }
            AdminTokenError::NameTaken(_) => ApiError::Conflict {
                code: "already_exists",
                message: e.to_string(),
            },
            AdminTokenError::TooMany { .. } => ApiError::Conflict {
                code: "too_many_tokens",
                message: e.to_string(),
            },
            AdminTokenError::Configured => ApiError::Conflict {
                code: "configured_token",
                message: e.to_string(),
            },
            AdminTokenError::NotFound(id) => ApiError::missing("admin token", id),
            AdminTokenError::Store(store) => ApiError::from(store),
            AdminTokenError::Corrupt { .. } => {
                tracing::error!(error = %e, "admin token store failure");
                ApiError::Internal
            }
        }
    }
}

/// Result with [`AdminTokenError`].
pub type TokenResult<T> = Result<T, AdminTokenError>;
