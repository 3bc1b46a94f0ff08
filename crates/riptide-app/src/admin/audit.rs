//! Audit records of admin operations the persistence layer does not audit itself (cache,
//! state and token operations): who, what, on which tenant, with what, and how it ended.
//!
//! Tenant and key operations are audited by the tenant layer (the handlers call its
//! `*_by(actor, ...)` variants), so they are not recorded twice.

use riptide_persistence::tenant::audit::{AuditEntry, AuditLog, OUTCOME_OK};

/// Longest `resource` of a record, in characters (the audit log's limit).
const MAX_RESOURCE_CHARS: usize = 200;

/// Longest `outcome` of a record, in characters (within the audit log's limit).
const MAX_OUTCOME_CHARS: usize = 1_000;

/// How an audited operation ended, as the record's outcome: `ok` or `error: <why>`.
pub fn outcome_of<T, E: std::fmt::Display>(result: &Result<T, E>) -> String {
    match result {
        Ok(_) => OUTCOME_OK.to_owned(),
        Err(e) => format!("error: {e}"),
    }
}

/// Appends one record to `log`: `actor` did `operation` (`cache.invalidate`,
/// `state.restore`, `token.create`...) on `tenant` (if any) with `resource` (the
/// selector, checkpoint id, token id...), ending with `outcome`; `metadata` adds detail.
///
/// Long fields are shortened rather than refused. A failed append is logged at error
/// and does not fail the operation, which has already happened: the log line keeps the
/// record's content.
pub async fn record(
    log: &AuditLog,
    actor: &str,
    tenant: Option<&str>,
    operation: &str,
    resource: &str,
    outcome: &str,
    metadata: &[(&str, String)],
) {
    let resource: String = resource.chars().take(MAX_RESOURCE_CHARS).collect();
    let outcome: String = outcome.chars().take(MAX_OUTCOME_CHARS).collect();
    let mut entry = AuditEntry::new(actor, tenant, operation, &resource, &outcome);
    for (key, value) in metadata {
        let value: String = value.chars().take(MAX_RESOURCE_CHARS).collect();
        entry = entry.with_metadata(*key, value);
    }
    if let Err(e) = log.append(entry).await {
        tracing::error!(
            audit.actor = actor,
            audit.operation = operation,
            audit.resource = %resource,
            audit.outcome = %outcome,
            error = %e,
            "could not append an admin operation to the audit log"
        );
    }
}
