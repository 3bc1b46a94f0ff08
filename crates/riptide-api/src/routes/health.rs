//! Liveness and readiness probes.
//!
//! `/healthz` says the process answers HTTP; it touches nothing else, so a slow store
//! never gets a live process restarted. `/readyz` says it can do its work: the store
//! answers a ping.

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
/// ping, 503 `store_unavailable` otherwise.
pub async fn get_readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state
        .store()
        .ping()
        .await
        .map_err(ApiError::StoreUnavailable)?;
    Ok(Json(
        json!({ "status": "ready", "store": state.store().kind().as_str() }),
    ))
}
