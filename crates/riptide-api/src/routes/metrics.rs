//! `GET /metrics`: the process's metrics in the Prometheus text format.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use crate::state::AppState;

/// The Prometheus text exposition format, version 0.0.4.
const CONTENT_TYPE_PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`: renders every metric recorded in this process.
pub async fn get_metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, CONTENT_TYPE_PROMETHEUS)],
        state.metrics.render(),
    )
}
