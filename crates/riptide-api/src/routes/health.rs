//! Liveness and readiness probes.
//!
//! `/healthz` says the process answers HTTP; it touches nothing else, so a slow store
//! never gets a live process restarted. `/readyz` says it can do its work: the store
//! answers a ping, still holds the identity this instance started with, and (after a
//! reconnect) keeps records safe (see [`crate::store_sanity`]).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// `GET /healthz`: 200 `{"status":"ok"}` while the process serves HTTP.
pub async fn get_healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 `{"status":"ready","store":"<kind>"}` when the store answers a
/// ping; 503 `store_unavailable` when it does not, `store_identity_lost` when it was
/// wiped or replaced, `store_evicting_policy` when a Redis node came back with a policy
/// that can evict records.
pub async fn get_readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state
        .store()
        .ping()
        .await
        .map_err(ApiError::StoreUnavailable)?;
    state.store_sanity.readiness(&**state.store()).await?;
    Ok(Json(
        json!({ "status": "ready", "store": state.store().kind().as_str() }),
    ))
}
