//! `/admin/state`: the state report, configuration reload on every instance, and
//! checkpoints (take, list, restore). Reloads, checkpoints and restores are written to
//! the audit log (`state.reload`, `state.checkpoint`, `state.restore`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use riptide_persistence::state::checkpoint::{CheckpointError, CheckpointInfo, RestoreReport};
use riptide_persistence::state::{ReloadOutcome, StateError, StateReport};
use riptide_persistence::tenant::AdminAction;
use serde::{Deserialize, Serialize};

use super::AdminCaller;
use super::input::Body;
use crate::admin::audit;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The instance that answered.
#[derive(Debug, Serialize)]
pub struct InstanceSummary {
    /// Its id in the instance registry.
    pub id: String,
    /// The store it runs on: `embedded`, `redis` or `redis-cluster`.
    pub store: &'static str,
    /// Its version.
    pub version: &'static str,
}

/// `GET /admin/state/current`.
#[derive(Debug, Serialize)]
pub struct CurrentState {
    /// The instance that answered.
    pub instance: InstanceSummary,
    /// Cache warming on this instance: the startup tier's progress, the background
    /// tier, warm jobs and the access counter.
    pub warming: crate::warming::WarmingStatus,
    /// The state manager's report: configuration generation, reloads, checkpoints,
    /// sessions, the instances sharing the store and the checkpoint lease holder.
    #[serde(flatten)]
    pub report: StateReport,
}

/// A state-layer failure as an answer: an unknown checkpoint is 404, a malformed id 400,
/// an unusable checkpoint file 422, an unreachable store 503.
fn state_error(e: StateError) -> ApiError {
    match e {
        StateError::Checkpoint(c) => checkpoint_error(c),
        StateError::Store(store) => store.into(),
        StateError::Invalid(invalid) => ApiError::bad_request("invalid_input", invalid.to_string()),
        StateError::Reload(reload) => {
            tracing::error!(error = %reload, "state layer failure");
            ApiError::Internal
        }
    }
}

fn checkpoint_error(e: CheckpointError) -> ApiError {
    match e {
        CheckpointError::InvalidId(_) => {
            ApiError::bad_request("invalid_checkpoint_id", e.to_string())
        }
        CheckpointError::UnknownId { id, .. } => ApiError::missing("checkpoint", id),
        CheckpointError::NotACheckpoint { .. }
        | CheckpointError::Truncated { .. }
        | CheckpointError::ChecksumMismatch { .. }
        | CheckpointError::Corrupt { .. }
        | CheckpointError::UnsupportedVersion { .. }
        | CheckpointError::BeforeTombstoneHorizon { .. } => ApiError::Unprocessable {
            code: e.code(),
            message: e.to_string(),
        },
        CheckpointError::Store(store) => store.into(),
        other => {
            tracing::error!(error = %other, "checkpoint failure");
            ApiError::Internal
        }
    }
}

/// `GET /admin/state/current`.
pub async fn get_current(
    caller: AdminCaller,
    State(state): State<AppState>,
) -> ApiResult<Json<CurrentState>> {
    caller.require(AdminAction::ReadState)?;
    let report = state.state_manager.current_state().await;
    Ok(Json(CurrentState {
        instance: InstanceSummary {
            id: state.sync.id().to_owned(),
            store: state.store().kind().as_str(),
            version: env!("CARGO_PKG_VERSION"),
        },
        warming: state.warming.status(),
        report,
    }))
}

/// `POST /admin/state/reload`: reloads the configuration here and asks every other
/// instance to reload. Answers this instance's outcome (`result`: `applied`,
/// `unchanged` or `rejected` with the file, key and reason); a refused document keeps the
/// running configuration.
pub async fn reload(
    caller: AdminCaller,
    State(state): State<AppState>,
) -> ApiResult<Json<ReloadOutcome>> {
    caller.require(AdminAction::WriteState)?;
    let outcome = state
        .state_manager
        .request_reload_everywhere(&caller.actor())
        .await;
    let (result, metadata): (Result<(), String>, _) = match &outcome {
        ReloadOutcome::Applied { generation, .. } => {
            (Ok(()), vec![("generation", generation.to_string())])
        }
        ReloadOutcome::Unchanged => (Ok(()), vec![("generation", "unchanged".to_owned())]),
        ReloadOutcome::Rejected { key, reason, .. } => {
            (Err(format!("refused: {key}: {reason}")), Vec::new())
        }
    };
    audit::record(
        state.tenants.audit(),
        &caller.actor(),
        None,
        "state.reload",
        outcome.as_str(),
        &audit::outcome_of(&result),
        &metadata,
    )
    .await;
    Ok(Json(outcome))
}

/// `POST /admin/state/checkpoint` → 201 with the checkpoint.
pub async fn create_checkpoint(
    caller: AdminCaller,
    State(state): State<AppState>,
) -> ApiResult<(StatusCode, Json<CheckpointInfo>)> {
    caller.require(AdminAction::WriteState)?;
    let result = state.state_manager.create_checkpoint().await;
    let resource = result.as_ref().map(|c| c.id.clone()).unwrap_or_default();
    audit::record(
        state.tenants.audit(),
        &caller.actor(),
        None,
        "state.checkpoint",
        &resource,
        &audit::outcome_of(&result),
        &[],
    )
    .await;
    Ok((StatusCode::CREATED, Json(result.map_err(state_error)?)))
}

/// The checkpoints on disk.
#[derive(Debug, Serialize)]
pub struct CheckpointList {
    /// Newest first, each verified (`valid`, `problem`).
    pub checkpoints: Vec<CheckpointInfo>,
}

/// `GET /admin/state/checkpoints`.
pub async fn list_checkpoints(
    caller: AdminCaller,
    State(state): State<AppState>,
) -> ApiResult<Json<CheckpointList>> {
    caller.require(AdminAction::ReadState)?;
    let checkpoints = state
        .state_manager
        .list_checkpoints()
        .await
        .map_err(state_error)?;
    Ok(Json(CheckpointList { checkpoints }))
}

/// Body of `POST /admin/state/restore`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The checkpoint's id, as listed.
    pub checkpoint_id: String,
    /// Report what would change, change nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// Objects of a restore named in its audit record (all are counted there).
pub const AUDITED_OBJECTS: usize = 20;

/// The restore's diff for its audit record, bounded: counts per outcome, then the
/// first [`AUDITED_OBJECTS`] objects (kept and refused ones first), one entry each.
fn restore_diff(report: &RestoreReport) -> Vec<(&'static str, String)> {
    let sum = |f: fn(&riptide_persistence::state::checkpoint::KindCounts) -> u64| {
        report.kinds.values().map(f).sum::<u64>().to_string()
    };
    let mut out = vec![
        ("created", sum(|c| c.create)),
        ("overwritten", sum(|c| c.overwrite)),
        ("kept_newer", sum(|c| c.kept_newer)),
        ("refused", sum(|c| c.refused)),
        ("objects_total", report.objects_total.to_string()),
        (
            "shredded_tenants",
            report.shredded_tenants.len().to_string(),
        ),
    ];
    const NAMES: [&str; AUDITED_OBJECTS] = [
        "object.01",
        "object.02",
        "object.03",
        "object.04",
        "object.05",
        "object.06",
        "object.07",
        "object.08",
        "object.09",
        "object.10",
        "object.11",
        "object.12",
        "object.13",
        "object.14",
        "object.15",
        "object.16",
        "object.17",
        "object.18",
        "object.19",
        "object.20",
    ];
    out.extend(
        NAMES
            .iter()
            .zip(&report.objects)
            .map(|(name, o)| (*name, o.summary())),
    );
    out
}

/// `POST /admin/state/restore {checkpoint_id, dry_run?}`: role admin only.
pub async fn restore(
    caller: AdminCaller,
    State(state): State<AppState>,
    Body(req): Body<RestoreRequest>,
) -> ApiResult<Json<RestoreReport>> {
    caller.require(AdminAction::RestoreState)?;
    let result = state
        .state_manager
        .restore_checkpoint(&req.checkpoint_id, req.dry_run)
        .await;
    if result.is_ok() && !req.dry_run {
        // Tenant records and key lookups this instance cached predate the restore
        // (other instances' caches expire within `tenant.record_cache_ttl_ms`).
        state.tenants.forget_everything();
    }
    let mut metadata = vec![("dry_run", req.dry_run.to_string())];
    if let Ok(report) = &result {
        metadata.push(("changes", report.changes().to_string()));
        metadata.extend(restore_diff(report));
        // The checkpoint's warm list (its top accessed pairs) is warmed as a job.
        if !req.dry_run && !report.warm_list.is_empty() {
            match state.warming.warm_pairs(&report.warm_list) {
                Ok(job) => metadata.push(("warm_job", job.id.clone())),
                Err(e) => tracing::info!(error = %e, "the restored warm list is not warmed"),
            }
        }
    }
    audit::record(
        state.tenants.audit(),
        &caller.actor(),
        None,
        "state.restore",
        &req.checkpoint_id,
        &audit::outcome_of(&result),
        &metadata,
    )
    .await;
    Ok(Json(result.map_err(state_error)?))
}
