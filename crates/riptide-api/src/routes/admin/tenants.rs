//! `/admin/tenants`: list, create, read, update, delete, suspend and resume tenants, and
//! read their usage and bills. Changes go through the tenant layer's `*_by(actor, ...)`
//! calls, which audit them and tell the other instances.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rand::RngCore;
use riptide_persistence::tenant::{
    AccessPolicy, AdminAction, Bill, BillingPlan, Period, Resource, Tenant, TenantConfig,
    TenantIsolationLevel, TenantOwner, TenantPage, TenantStatus, TenantUpdate, UsageSummary,
    effective_quota,
};
use serde::{Deserialize, Serialize};

use super::AdminCaller;
use super::input::{Body, Params, tenant_id};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Tenants per page when `limit` is not given.
pub const DEFAULT_PAGE: u64 = 100;

/// Most tenants per page.
pub const MAX_PAGE: u64 = 1_000;

/// A tenant as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TenantView {
    /// The id.
    pub tenant_id: String,
    /// Display name.
    pub name: String,
    /// `active` or `suspended`.
    pub status: &'static str,
    /// Why it is suspended.
    pub suspended_reason: Option<String>,
    /// Since when it is suspended.
    pub suspended_since: Option<DateTime<Utc>>,
    /// The plan.
    pub plan: BillingPlan,
    /// The owner.
    pub owner: TenantOwner,
    /// The tenant's own quota overrides.
    pub quotas: HashMap<String, u64>,
    /// The limits in force per resource (override, else the plan's; absent: unlimited).
    pub effective_quotas: BTreeMap<&'static str, u64>,
    /// Adjustments to the plan's grants.
    pub policy: AccessPolicy,
    /// Free-form settings.
    pub settings: HashMap<String, String>,
    /// Isolation level.
    pub isolation_level: TenantIsolationLevel,
    /// Values sealed under the tenant's own key.
    pub encryption_enabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Bumped on every change.
    pub version: u64,
}

impl TenantView {
    /// The view of `tenant` under the plans in force.
    pub fn of(tenant: &Tenant, state: &AppState) -> Self {
        let live = state.tenants.live_settings();
        let plans = &live.plans;
        let effective_quotas = Resource::ALL
            .into_iter()
            .filter_map(|r| effective_quota(tenant, plans, r).map(|q| (r.as_str(), q)))
            .collect();
        let (suspended_reason, suspended_since) = match &tenant.status {
            TenantStatus::Active => (None, None),
            TenantStatus::Suspended { reason, since } => (Some(reason.clone()), Some(*since)),
        };
        Self {
            tenant_id: tenant.id().to_owned(),
            name: tenant.config.name.clone(),
            status: tenant.status.as_str(),
            suspended_reason,
            suspended_since,
            plan: tenant.plan,
            owner: tenant.owner.clone(),
            quotas: tenant.config.quotas.clone(),
            effective_quotas,
            policy: tenant.policy.clone(),
            settings: tenant.config.settings.clone(),
            isolation_level: tenant.config.isolation_level,
            encryption_enabled: tenant.encrypted(),
            created_at: tenant.config.created_at,
            updated_at: tenant.config.updated_at,
            version: tenant.version,
        }
    }
}

/// Query of `GET /admin/tenants`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Tenants to skip (creation order).
    pub offset: Option<u64>,
    /// Page size, 1 to [`MAX_PAGE`] (default [`DEFAULT_PAGE`]).
    pub limit: Option<u64>,
}

/// A page of tenants.
#[derive(Debug, Serialize)]
pub struct TenantList {
    /// The tenants of the page, in creation order.
    pub tenants: Vec<TenantView>,
    /// Tenants in all.
    pub total: u64,
    /// Offset of the next page, if any.
    pub next_offset: Option<u64>,
}

/// `GET /admin/tenants?offset&limit`.
pub async fn list_tenants(
    caller: AdminCaller,
    State(state): State<AppState>,
    Params(query): Params<ListQuery>,
) -> ApiResult<Json<TenantList>> {
    caller.require(AdminAction::ReadTenants)?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let page: TenantPage = state
        .tenants
        .list_tenants(query.offset.unwrap_or(0), limit)
        .await?;
    Ok(Json(TenantList {
        tenants: page
            .tenants
            .iter()
            .map(|t| TenantView::of(t, &state))
            .collect(),
        total: page.total,
        next_offset: page.next_offset,
    }))
}

/// Body of `POST /admin/tenants` (the seed's `CreateTenantRequest`, plus optional
/// fields).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// The id to give it; generated (`t-...`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Display name.
    pub name: String,
    /// Owner's e-mail.
    pub owner_email: String,
    /// Owner's name.
    pub owner_name: String,
    /// Owner's id; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// Owner's organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// `free`, `basic`, `professional` or `enterprise`.
    pub billing_plan: String,
    /// Quota overrides by resource name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<HashMap<String, u64>>,
    /// Free-form settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<HashMap<String, String>>,
    /// Seal the tenant's values under its own key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encryption_enabled: bool,
    /// `standard` or `strong` (never weaker than the service's minimum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation_level: Option<TenantIsolationLevel>,
}

fn parse_plan(raw: &str) -> ApiResult<BillingPlan> {
    raw.parse()
        .map_err(|reason: String| ApiError::bad_request("invalid_plan", reason))
}

/// `POST /admin/tenants` → 201 with the tenant.
pub async fn create_tenant(
    caller: AdminCaller,
    State(state): State<AppState>,
    Body(req): Body<CreateTenantRequest>,
) -> ApiResult<(StatusCode, Json<TenantView>)> {
    caller.require(AdminAction::WriteTenants)?;
    let plan = parse_plan(&req.billing_plan)?;
    let id = match req.tenant_id.as_deref() {
        Some(raw) => tenant_id(raw)?.to_string(),
        None => String::new(),
    };
    let now = Utc::now();
    let config = TenantConfig {
        tenant_id: id,
        name: req.name,
        quotas: req.quotas.unwrap_or_default(),
        isolation_level: req.isolation_level.unwrap_or_default(),
        encryption_enabled: req.encryption_enabled,
        settings: req.settings.unwrap_or_default(),
        created_at: now,
        updated_at: now,
    };
    let owner = TenantOwner {
        id: req.owner_id.unwrap_or_else(|| {
            let mut bytes = [0u8; 8];
            rand::rng().fill_bytes(&mut bytes);
            format!("owner-{}", hex::encode(bytes))
        }),
        name: req.owner_name,
        email: req.owner_email,
        organization: req.organization,
    };
    let id = state
        .tenants
        .create_tenant_by(&caller.actor(), config, owner, plan)
        .await?;
    let tenant = state
        .tenants
        .get_tenant(&id)
        .await?
        .ok_or_else(|| ApiError::missing("tenant", id.clone()))?;
    Ok((StatusCode::CREATED, Json(TenantView::of(&tenant, &state))))
}

/// `GET /admin/tenants/{id}`.
pub async fn get_tenant(
    caller: AdminCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantView>> {
    caller.require(AdminAction::ReadTenants)?;
    let id = tenant_id(&id)?;
    let tenant = state
        .tenants
        .get_tenant(&id)
        .await?
        .ok_or_else(|| ApiError::missing("tenant", id.as_str()))?;
    Ok(Json(TenantView::of(&tenant, &state)))
}

/// `PUT /admin/tenants/{id}` with a [`TenantUpdate`] (`name`, `plan`, `quotas`,
/// `settings`, `policy`, `owner`; absent fields stay).
pub async fn update_tenant(
    caller: AdminCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(update): Body<TenantUpdate>,
) -> ApiResult<Json<TenantView>> {
    caller.require(AdminAction::WriteTenants)?;
    let id = tenant_id(&id)?;
    let tenant = state
        .tenants
        .update_tenant_by(&caller.actor(), &id, update)
        .await?;
    Ok(Json(TenantView::of(&tenant, &state)))
}

/// `DELETE /admin/tenants/{id}` → 204.
pub async fn delete_tenant(
    caller: AdminCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(AdminAction::WriteTenants)?;
    let id = tenant_id(&id)?;
    state.tenants.delete_tenant_by(&caller.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of the usage and billing routes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodQuery {
    /// The month, `YYYY-MM` (default: the current month, UTC).
    pub period: Option<String>,
}

impl PeriodQuery {
    fn resolve(&self) -> ApiResult<String> {
        let period = match &self.period {
            Some(raw) => Period::parse(raw),
            None => Period::of(&Utc::now()),
        };
        period
            .map(|p| p.to_string())
            .map_err(|e| ApiError::bad_request("invalid_period", e.to_string()))
    }
}

/// `GET /admin/tenants/{id}/usage?period=YYYY-MM`.
pub async fn get_usage(
    caller: AdminCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Params(query): Params<PeriodQuery>,
) -> ApiResult<Json<UsageSummary>> {
    caller.require(AdminAction::ReadUsage)?;
    let id = tenant_id(&id)?;
    let period = query.resolve()?;
    Ok(Json(state.tenants.get_usage(&id, &period).await?))
}

/// `GET /admin/tenants/{id}/billing?period=YYYY-MM`.
pub async fn get_billing(
    caller: AdminCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Params(query): Params<PeriodQuery>,
) -> ApiResult<Json<Bill>> {
    caller.require(AdminAction::ReadBilling)?;
    let id = tenant_id(&id)?;
    let period = query.resolve()?;
    Ok(Json(state.tenants.billing(&id, &period).await?))
}

/// Body of `POST /admin/tenants/{id}/suspend`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SuspendRequest {
    /// Why (1 to 500 characters); shown to the tenant's refused requests' logs and audit.
    pub reason: String,
}

/// `POST /admin/tenants/{id}/suspend {reason}`.
pub async fn suspend_tenant(
    caller: AdminCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(req): Body<SuspendRequest>,
) -> ApiResult<Json<TenantView>> {
    caller.require(AdminAction::WriteTenants)?;
    let id = tenant_id(&id)?;
    let tenant = state
        .tenants
        .suspend_tenant_by(&caller.actor(), &id, &req.reason)
        .await?;
    Ok(Json(TenantView::of(&tenant, &state)))
}

/// `POST /admin/tenants/{id}/resume`.
pub async fn resume_tenant(
    caller: AdminCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantView>> {
    caller.require(AdminAction::WriteTenants)?;
    let id = tenant_id(&id)?;
    let tenant = state.tenants.resume_tenant_by(&caller.actor(), &id).await?;
    Ok(Json(TenantView::of(&tenant, &state)))
}
