//! `/admin/cache/warm`: on-demand cache warming (tier 2 of ADR-004).
//!
//! `POST /admin/cache/warm {tenant_id?, urls?, source?, limit?}` starts a warm job and
//! answers 202 `{job_id, state, total}` with `Location: /admin/cache/warm/<job_id>`:
//!
//! - `urls` with `tenant_id`: exactly those URLs, into that tenant's cache;
//! - otherwise `source` (`analytics`, `tenant`, `manual` or `all`, the default), limited
//!   to `tenant_id` when given; `limit` caps the pairs (default and maximum
//!   `warming.max_job_urls`) and sizes the analytics (and, with `tenant_id`, the
//!   tenant's own) top list.
//!
//! `GET /admin/cache/warm/{id}` reports the job: `{id, source, state (running, done,
//! failed), done, total, warmed, fresh, skipped, failed, failures: [{tenant_id, url,
//! error}], error, started_at, finished_at}`; an unknown (or no longer retained) id is
//! 404. Starting needs `WriteCache` (admin, operator), reading `ReadCache`. Every start
//! request, accepted or refused, is written to the audit log as `cache.warm`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use riptide_persistence::tenant::AdminAction;
use serde::{Deserialize, Serialize};

use super::AdminCaller;
use super::input::{OptionalBody, tenant_id};
use crate::admin::audit;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::warming::{JobView, RunState, Source, WarmRequest, WarmingError};

/// Body of `POST /admin/cache/warm` (every field optional; an empty body warms every
/// source).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WarmBody {
    /// Only this tenant's cache; required with `urls`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Exactly these URLs (not with `source`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// `analytics`, `tenant`, `manual` or `all`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// At most this many (tenant, URL) pairs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// `POST /admin/cache/warm` answers.
#[derive(Debug, Serialize)]
pub struct WarmStarted {
    /// The job's id.
    pub job_id: String,
    /// `running` (or already `done` for an empty job).
    pub state: RunState,
    /// Pairs it warms.
    pub total: usize,
}

/// `POST /admin/cache/warm` → 202 with the job id.
pub async fn start_warm(
    caller: AdminCaller,
    State(state): State<AppState>,
    OptionalBody(body): OptionalBody<WarmBody>,
) -> ApiResult<(StatusCode, HeaderMap, Json<WarmStarted>)> {
    caller.require(AdminAction::WriteCache)?;
    if let Some(raw) = &body.tenant_id {
        tenant_id(raw)?;
    }
    let tenant = body.tenant_id.clone();
    let mut metadata = vec![(
        "source",
        match (&body.urls, body.source) {
            (Some(urls), _) => format!("urls ({})", urls.len()),
            (None, source) => source.unwrap_or(Source::All).as_str().to_owned(),
        },
    )];
    if let Some(limit) = body.limit {
        metadata.push(("limit", limit.to_string()));
    }
    let request = WarmRequest {
        tenant_id: body.tenant_id,
        urls: body.urls,
        source: body.source,
        limit: body.limit,
    };
    let result = state.warming.prepare_job(request).await.map(|prepared| {
        let total = prepared.total();
        (prepared.launch(), total)
    });
    if let Ok((_, total)) = &result {
        metadata.push(("total", total.to_string()));
    }
    let job_id = result
        .as_ref()
        .map(|(job, _)| job.id.clone())
        .unwrap_or_default();
    audit::record(
        state.tenants.audit(),
        &caller.actor(),
        tenant.as_deref(),
        "cache.warm",
        &job_id,
        &audit::outcome_of(&result),
        &metadata,
    )
    .await;
    let (job, total) = result.map_err(warming_error)?;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/admin/cache/warm/{}", job.id)) {
        headers.insert(LOCATION, location);
    }
    Ok((
        StatusCode::ACCEPTED,
        headers,
        Json(WarmStarted {
            job_id: job.id.clone(),
            state: job.progress.state(),
            total,
        }),
    ))
}

/// `GET /admin/cache/warm/{id}`: the job's progress.
pub async fn get_warm_job(
    caller: AdminCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    caller.require(AdminAction::ReadCache)?;
    let well_formed = id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !well_formed {
        return Err(ApiError::bad_request(
            "invalid_job_id",
            "a warm job id is 16 lower-case hex digits",
        ));
    }
    state
        .warming
        .job(&id)
        .map(|job| Json(job.view()))
        .ok_or_else(|| ApiError::missing("warm job", id))
}

/// A refused warm request as an answer.
fn warming_error(e: WarmingError) -> ApiError {
    match e {
        WarmingError::Disabled => ApiError::Conflict {
            code: "warming_disabled",
            message: e.to_string(),
        },
        WarmingError::NoLoader => ApiError::Conflict {
            code: "no_page_loader",
            message: e.to_string(),
        },
        WarmingError::TooManyJobs(_) => ApiError::Conflict {
            code: "too_many_jobs",
            message: e.to_string(),
        },
        WarmingError::Invalid(message) => ApiError::bad_request("invalid_warm_request", message),
        WarmingError::UnknownTenant(id) => ApiError::missing("tenant", id),
        WarmingError::Tenant(e) => e.into(),
    }
}
