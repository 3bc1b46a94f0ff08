//! `/admin/audit`: query the audit log and verify its hash chain.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use riptide_persistence::tenant::AdminAction;
use riptide_persistence::tenant::audit::{AuditRecord, ChainTip, MAX_QUERY_LIMIT};
use serde::{Deserialize, Serialize};

use super::AdminCaller;
use super::input::{Params, tenant_id};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Records returned when `limit` is not given.
pub const DEFAULT_LIMIT: u64 = 100;

/// Query of `GET /admin/audit`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only records of this tenant.
    pub tenant_id: Option<String>,
    /// Only this operation (`cache.clear`), or a family of them (`cache` matches
    /// `cache.invalidate` and `cache.clear`).
    pub action: Option<String>,
    /// From this time (RFC 3339), inclusive; default: the oldest retained record.
    pub since: Option<String>,
    /// Up to this time (RFC 3339), inclusive; default: now.
    pub until: Option<String>,
    /// Most records, 1 to 10,000 (default 100); the oldest matching ones come first.
    pub limit: Option<u64>,
}

/// Audit records, oldest first.
#[derive(Debug, Serialize)]
pub struct AuditList {
    /// How many.
    pub count: usize,
    /// The records, with their hash-chain fields.
    pub records: Vec<AuditRecord>,
}

fn time(field: &'static str, raw: Option<&str>) -> ApiResult<Option<DateTime<Utc>>> {
    raw.map(|raw| {
        DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("{field} is not an RFC 3339 time (2025-01-31T12:00:00Z): {e}"),
                )
            })
    })
    .transpose()
}

/// Whether `operation` is `action` or one of its family (`action.`...).
fn matches_action(operation: &str, action: &str) -> bool {
    operation == action
        || operation
            .strip_prefix(action)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// `GET /admin/audit?tenant_id&action&since&until&limit`.
pub async fn query(
    caller: AdminCaller,
    State(state): State<AppState>,
    Params(query): Params<AuditQuery>,
) -> ApiResult<Json<AuditList>> {
    caller.require(AdminAction::ReadAudit)?;
    let tenant = query.tenant_id.as_deref().map(tenant_id).transpose()?;
    let since = time("since", query.since.as_deref())?.unwrap_or(DateTime::UNIX_EPOCH);
    let until = time("until", query.until.as_deref())?.unwrap_or_else(Utc::now);
    if since > until {
        return Err(ApiError::bad_request(
            "invalid_query",
            "since is after until",
        ));
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_QUERY_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_QUERY_LIMIT}"),
        ));
    }
    if let Some(action) = &query.action
        && (action.is_empty() || action.len() > 200)
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "action is 1 to 200 characters",
        ));
    }
    // With an action filter the log is read to its query limit and filtered here: the
    // log is indexed by time and tenant only.
    let fetch = if query.action.is_some() {
        MAX_QUERY_LIMIT
    } else {
        limit
    };
    let mut records = state
        .tenants
        .audit()
        .query(tenant.as_ref(), since, until, fetch)
        .await?;
    if let Some(action) = &query.action {
        records.retain(|r| matches_action(&r.operation, action));
        records.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    Ok(Json(AuditList {
        count: records.len(),
        records,
    }))
}

/// The first bad record of the chain.
#[derive(Debug, Serialize)]
pub struct BadRecord {
    /// Its sequence number.
    pub seq: u64,
    /// What is wrong: edited, missing, re-linked or unreadable.
    pub reason: String,
}

/// `GET /admin/audit/verify`.
#[derive(Debug, Serialize)]
pub struct VerifyResponse {
    /// The whole retained chain is intact and as long as ever seen.
    pub ok: bool,
    /// Records checked and found good.
    pub checked: u64,
    /// The first bad record, if any.
    pub first_bad: Option<BadRecord>,
    /// What is wrong with the chain as a whole (head missing or rolled back, records
    /// deleted from its end, another record where one was seen).
    pub problems: Vec<String>,
    /// The last good record's sequence number.
    pub length: u64,
    /// The last good record's hash.
    pub head_hash: String,
    /// The head key as stored.
    pub head: Option<ChainTip>,
    /// The longest chain this instance had seen before this walk.
    pub high_water: Option<ChainTip>,
    /// Good records from before the audit key (version 1, unkeyed).
    pub unkeyed: u64,
}

/// `GET /admin/audit/verify`: walks the retained hash chain and checks its end.
pub async fn verify(
    caller: AdminCaller,
    State(state): State<AppState>,
) -> ApiResult<Json<VerifyResponse>> {
    caller.require(AdminAction::ReadAudit)?;
    let report = state.tenants.audit().verify().await?;
    Ok(Json(VerifyResponse {
        ok: report.is_ok(),
        checked: report.checked,
        first_bad: report
            .first_bad
            .map(|(seq, reason)| BadRecord { seq, reason }),
        problems: report.problems,
        length: report.end.length,
        head_hash: report.end.head_hash,
        head: report.head,
        high_water: report.high_water,
        unkeyed: report.unkeyed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_match_exactly_or_by_family() {
        assert!(matches_action("cache.clear", "cache.clear"));
        assert!(matches_action("cache.clear", "cache"));
        assert!(!matches_action("cachex.clear", "cache"));
        assert!(!matches_action("cache", "cache.clear"));
    }

    #[test]
    fn times_are_rfc3339() {
        assert!(time("since", Some("2025-01-31T12:00:00Z")).is_ok());
        assert!(time("since", None).expect("absent").is_none());
        let err = time("until", Some("yesterday")).unwrap_err();
        assert_eq!(err.code(), "invalid_query");
    }
}
