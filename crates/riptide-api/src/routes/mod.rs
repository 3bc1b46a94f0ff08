//! The router: every route of the service, and the answers for paths and methods that
//! have none.

pub mod admin;
pub mod content_type;
pub mod health;
pub mod metrics;
pub mod tenant;

use axum::Router;
use axum::routing::get;

use crate::error::ApiError;
use crate::state::AppState;

/// All routes over `state`, without middleware (see [`crate::middleware::apply`]), plus
/// `extra` routes that need no state (`/openapi.json`, which describes these routes and
/// so sits above them).
pub fn router(state: AppState, extra: Router) -> Router {
    Router::new()
        .route("/healthz", get(health::get_healthz))
        .route("/readyz", get(health::get_readyz))
        .route("/metrics", get(metrics::get_metrics))
        .merge(tenant::router(&state))
        .merge(admin::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .merge(extra)
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
