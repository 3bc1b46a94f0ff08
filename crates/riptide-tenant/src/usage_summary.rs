//! What a tenant's month of usage adds up to ([`UsageSummary`]) and the operation names
//! it counts by: shared by metering, billing and the metrics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{TenantError, TenantResult};
use super::period::Period;
use riptide_store::tenant_id::truncate_for_error;

/// Most distinct operation names kept per tenant-month; the rest count as [`OTHER_OPERATION`].
pub const MAX_OPERATION_NAMES: usize = 32;

/// The operation name that collects names beyond [`MAX_OPERATION_NAMES`].
pub const OTHER_OPERATION: &str = "other";

/// Longest operation name, in bytes.
pub const MAX_OPERATION_LEN: usize = 64;

/// True when `name` matches `^[a-z0-9_.:-]{1,64}$`.
pub fn is_valid_operation(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_OPERATION_LEN
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b':' | b'-')
        })
}

/// Refuses an operation name that does not match `^[a-z0-9_.:-]{1,64}$`.
pub fn validate_operation(name: &str) -> TenantResult<()> {
    if is_valid_operation(name) {
        Ok(())
    } else {
        Err(TenantError::InvalidField {
            field: "operation",
            reason: format!(
                "{:?} does not match ^[a-z0-9_.:-]{{1,{MAX_OPERATION_LEN}}}$",
                truncate_for_error(name)
            ),
        })
    }
}

/// One tenant's usage in one calendar month.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageSummary {
    /// The month, `YYYY-MM`.
    pub period: String,
    /// Operations.
    pub operations: u64,
    /// Bytes transferred.
    pub data_bytes: u64,
    /// Compute time, ms.
    pub compute_ms: u64,
    /// Durable bytes added.
    pub storage_bytes: u64,
    /// Cache hits.
    pub cache_hits: u64,
    /// Cache misses.
    pub cache_misses: u64,
    /// Operations by name (at most [`MAX_OPERATION_NAMES`] names, then `other`).
    pub by_operation: BTreeMap<String, u64>,
}

impl UsageSummary {
    pub(crate) fn empty(period: Period) -> Self {
        Self {
            period: period.to_string(),
            ..Self::default()
        }
    }

    /// Adds an operation count by name, folding names beyond the bound into `other`.
    pub(crate) fn add_operation(&mut self, name: &str, n: u64) {
        let known = self.by_operation.contains_key(name) || name == OTHER_OPERATION;
        let named =
            self.by_operation.len() - usize::from(self.by_operation.contains_key(OTHER_OPERATION));
        let name = if known || named < MAX_OPERATION_NAMES {
            name
        } else {
            OTHER_OPERATION
        };
        let slot = self.by_operation.entry(name.to_owned()).or_default();
        *slot = slot.saturating_add(n);
    }
}
