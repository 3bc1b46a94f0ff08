//! The tenant routes, each behind the tenant middleware ([`crate::middleware::tenant`]):
//!
//! | route | permission | metered as |
//! |---|---|---|
//! | `POST /extract` | `extract` | `extract` |
//! | `POST /crawl` | `crawl` | `crawl` (one operation per URL) |
//! | `POST /sessions`, `GET`/`DELETE /sessions/{id}` | `sessions` | `sessions` |
//! | `GET /usage` | `usage:read` | `usage` |
//!
//! Request bodies are limited to [`body::MAX_BODY_BYTES`].

pub mod body;
pub mod cached;
pub mod crawl;
pub mod errors;
pub mod extract;
pub mod sessions;
pub mod usage;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use self::errors::cache_error;
use crate::middleware::tenant::{RouteSpec, TenantGuard};
use crate::state::AppState;

/// `POST /extract`.
pub static EXTRACT: RouteSpec = RouteSpec {
    resource: "extract",
    action: "",
    operation: "extract",
};

/// `POST /crawl`.
pub static CRAWL: RouteSpec = RouteSpec {
    resource: "crawl",
    action: "",
    operation: "crawl",
};

/// `/sessions` and `/sessions/{id}`.
pub static SESSIONS: RouteSpec = RouteSpec {
    resource: "sessions",
    action: "",
    operation: "sessions",
};

/// `GET /usage`.
pub static USAGE: RouteSpec = RouteSpec {
    resource: "usage",
    action: "read",
    operation: "usage",
};

/// The tenant routes over `state`, to merge into the service's router.
pub fn router(state: &AppState) -> Router<AppState> {
    let guard = TenantGuard::new(state.clone());
    Router::new()
        .route(
            "/extract",
            guard.wrap(&EXTRACT, post(extract::post_extract)),
        )
        .route("/crawl", guard.wrap(&CRAWL, post(crawl::post_crawl)))
        .route(
            "/sessions",
            guard.wrap(&SESSIONS, post(sessions::post_session)),
        )
        .route(
            "/sessions/{id}",
            guard.wrap(
                &SESSIONS,
                get(sessions::get_session).delete(sessions::delete_session),
            ),
        )
        .route("/usage", guard.wrap(&USAGE, get(usage::get_usage)))
        .layer(DefaultBodyLimit::max(body::MAX_BODY_BYTES))
}
