//! `GET /usage`: the caller's usage this month, its headroom under each quota, and the
//! state of its rate limit.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use riptide_persistence::tenant::{BillingPlan, Period, Resource, UsageSummary, effective_quota};
use serde::Serialize;

use super::cache_error;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::tenant_context::TenantContext;

/// Answer of `GET /usage`.
#[derive(Debug, Serialize)]
pub struct UsageReport {
    /// The caller's tenant.
    pub tenant_id: String,
    /// Its plan.
    pub plan: BillingPlan,
    /// The month reported, `YYYY-MM` (UTC).
    pub period: String,
    /// Operations, bytes, compute time and cache hits of the month, including what this
    /// instance has not flushed to the store yet.
    pub usage: UsageSummary,
    /// Headroom per quota'd amount: `memory_bytes` (cache held now), `storage_bytes`
    /// (durable data held now), `data_transfer_bytes` (this month).
    pub quotas: BTreeMap<&'static str, Headroom>,
    /// The rate limit as this request left it; `null` when the tenant has none.
    pub rate_limit: Option<RateLimitState>,
}

/// One quota: its limit (`null`: unlimited), what is used and what is left.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Headroom {
    /// The limit in force (`null`: unlimited).
    pub limit: Option<u64>,
    /// In use.
    pub used: u64,
    /// `limit - used`, never below 0 (`null`: unlimited).
    pub remaining: Option<u64>,
}

impl Headroom {
    fn new(limit: Option<u64>, used: u64) -> Self {
        Self {
            limit,
            used,
            remaining: limit.map(|l| l.saturating_sub(used)),
        }
    }
}

/// The `operations_per_minute` bucket after this request.
#[derive(Debug, Serialize)]
pub struct RateLimitState {
    /// Requests per minute at the steady rate.
    pub limit: u64,
    /// Requests admitted at once from a full bucket.
    pub burst: u64,
    /// Requests that would be admitted right now.
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub reset_seconds: u64,
}

/// `GET /usage`.
pub async fn get_usage(
    State(state): State<AppState>,
    ctx: TenantContext,
) -> ApiResult<Json<UsageReport>> {
    let tenants = &state.tenants;
    let id = &ctx.tenant_id;
    let period = Period::of(&Utc::now())?.to_string();
    let usage = tenants.get_usage(id, &period).await?;
    let cached = state
        .cache
        .usage(&ctx.tenant_id)
        .await
        .map_err(cache_error)?;
    let stored = tenants.adjust_storage(id, 0).await?;

    let live = tenants.live_settings();
    let limit = |resource| effective_quota(&ctx.tenant, &live.plans, resource);
    let quotas = BTreeMap::from([
        (
            Resource::MemoryBytes.as_str(),
            Headroom::new(limit(Resource::MemoryBytes), cached.used_bytes),
        ),
        (
            Resource::StorageBytes.as_str(),
            Headroom::new(limit(Resource::StorageBytes), stored),
        ),
        (
            Resource::DataTransferBytes.as_str(),
            Headroom::new(limit(Resource::DataTransferBytes), usage.data_bytes),
        ),
    ]);
    let rate_limit = ctx.rate.map(|d| RateLimitState {
        limit: d.limit,
        burst: d.burst,
        remaining: d.remaining,
        reset_seconds: d.reset_after_ms.div_ceil(1_000),
    });
    Ok(Json(UsageReport {
        tenant_id: id.to_string(),
        plan: ctx.tenant.plan,
        period,
        usage,
        quotas,
        rate_limit,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_never_goes_negative() {
        assert_eq!(Headroom::new(Some(10), 4).remaining, Some(6));
        assert_eq!(Headroom::new(Some(10), 40).remaining, Some(0));
        assert_eq!(Headroom::new(None, 40).remaining, None);
    }
}
