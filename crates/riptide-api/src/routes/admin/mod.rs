//! The admin API: every route takes an admin token ([`crate::routes::admin::AdminCaller`]) and
//! checks the [`AdminAction`](riptide_persistence::tenant::AdminAction) it needs
//! (403 `insufficient_role` otherwise). JSON in and out; malformed input is 400.
//!
//! | route | action (roles allowed) |
//! |---|---|
//! | `GET /admin/tenants`, `GET /admin/tenants/{id}`, `GET .../keys`, `GET .../jwt-keys` | ReadTenants (all) |
//! | `POST /admin/tenants`, `PUT`/`DELETE /admin/tenants/{id}`, `POST .../suspend`, `.../resume`, `POST .../keys`, `DELETE .../keys/{key_id}`, `POST .../keys/{key_id}/rotate`, `POST .../jwt-keys`, `DELETE .../jwt-keys/{kid}` | WriteTenants (admin) |
//! | `GET .../usage` | ReadUsage (admin, billing, viewer) |
//! | `GET .../billing` | ReadBilling (admin, billing, viewer) |
//! | `GET /admin/cache/stats` | ReadCache (admin, operator, viewer) |
//! | `POST /admin/cache/invalidate`, `/admin/cache/clear`, `/admin/cache/warm` | WriteCache (admin, operator) |
//! | `GET /admin/cache/warm/{id}` | ReadCache (admin, operator, viewer) |
//! | `GET /admin/state/current`, `/admin/state/checkpoints` | ReadState (admin, operator, viewer) |
//! | `POST /admin/state/reload`, `/checkpoint` | WriteState (admin, operator) |
//! | `POST /admin/state/restore` | RestoreState (admin) |
//! | `GET /admin/audit`, `/admin/audit/verify` | ReadAudit (admin, operator, viewer) |
//! | `GET`/`POST /admin/tokens`, `DELETE /admin/tokens/{id}` | role admin |
//!
//! Tenant and key changes are audited by the tenant layer (the handlers use its
//! `*_by(actor, ...)` calls); cache, state and token operations by these handlers.

pub mod audit;
pub mod cache;
pub mod caller;
pub mod input;
pub mod jwt_keys;
pub mod keys;
pub mod state;
pub mod tenants;
pub mod tokens;
pub mod warm;

use axum::Router;
use axum::routing::{delete, get, post};

pub use self::caller::AdminCaller;
use crate::state::AppState;

/// The admin routes, to merge into the service's router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/admin/tenants",
            get(tenants::list_tenants).post(tenants::create_tenant),
        )
        .route(
            "/admin/tenants/{id}",
            get(tenants::get_tenant)
                .put(tenants::update_tenant)
                .delete(tenants::delete_tenant),
        )
        .route("/admin/tenants/{id}/usage", get(tenants::get_usage))
        .route("/admin/tenants/{id}/billing", get(tenants::get_billing))
        .route("/admin/tenants/{id}/suspend", post(tenants::suspend_tenant))
        .route("/admin/tenants/{id}/resume", post(tenants::resume_tenant))
        .route(
            "/admin/tenants/{id}/keys",
            get(keys::list_keys).post(keys::create_key),
        )
        .route(
            "/admin/tenants/{id}/keys/{key_id}",
            delete(keys::revoke_key),
        )
        .route(
            "/admin/tenants/{id}/keys/{key_id}/rotate",
            post(keys::rotate_key),
        )
        .route(
            "/admin/tenants/{id}/jwt-keys",
            get(jwt_keys::list_jwt_keys).post(jwt_keys::create_jwt_key),
        )
        .route(
            "/admin/tenants/{id}/jwt-keys/{kid}",
            delete(jwt_keys::revoke_jwt_key),
        )
        .route("/admin/cache/stats", get(cache::get_stats))
        .route("/admin/cache/invalidate", post(cache::invalidate))
        .route("/admin/cache/clear", post(cache::clear))
        .route("/admin/cache/warm", post(warm::start_warm))
        .route("/admin/cache/warm/{id}", get(warm::get_warm_job))
        .route("/admin/state/current", get(state::get_current))
        .route("/admin/state/reload", post(state::reload))
        .route("/admin/state/checkpoint", post(state::create_checkpoint))
        .route("/admin/state/checkpoints", get(state::list_checkpoints))
        .route("/admin/state/restore", post(state::restore))
        .route("/admin/audit", get(audit::query))
        .route("/admin/audit/verify", get(audit::verify))
        .route(
            "/admin/tokens",
            get(tokens::list_tokens).post(tokens::create_token),
        )
        .route("/admin/tokens/{id}", delete(tokens::delete_token))
}
