//! Admin credentials: store-backed admin tokens with roles ([`tokens`]), the
//! first-start bootstrap token ([`bootstrap`]), the audit records of admin
//! operations ([`audit`]) and how token operations fail ([`error`]).
//!
//! The routes themselves are in `riptide_api::routes::admin`, with the extractor that
//! authenticates these tokens on every admin route
//! (`riptide_api::routes::admin::AdminCaller`).

pub mod audit;
pub mod bootstrap;
pub mod error;
pub mod tokens;

use std::sync::Arc;

use anyhow::Context;
use riptide_persistence::SharedStore;
use riptide_persistence::tenant::TenantManager;
use riptide_persistence::tenant::secrets::load_pepper;

pub use bootstrap::{Bootstrap, TOKEN_FILE};
pub use riptide_persistence::tenant::{AdminAction, AdminRole};
pub use tokens::{
    AdminIdentity, AdminTokenError, AdminTokenInfo, AdminTokens, CONFIGURED_TOKEN_ID,
    CreatedAdminToken, MIN_CONFIGURED_TOKEN_LEN, validate_configured_token,
};

/// The admin tokens of `store`, hashed under the API key pepper the tenant layer uses,
/// with the configured token of `admin.token` (if any); then the first-start bootstrap
/// (see [`bootstrap::bootstrap`]), audited in the tenant layer's audit log.
pub async fn start(
    configured_token: &str,
    store: SharedStore,
    tenants: &TenantManager,
) -> anyhow::Result<Arc<AdminTokens>> {
    let pepper = load_pepper(
        &tenants.config().api_key_pepper,
        &tenants.config().secrets_dir,
    )
    .context("loading the api key pepper")?;
    let configured = Some(configured_token).filter(|t| !t.is_empty());
    let cache_ttl_ms = tenants.config().record_cache_ttl_ms;
    let tokens = Arc::new(AdminTokens::new(store, &pepper, configured, cache_ttl_ms));
    bootstrap::bootstrap(&tokens, tenants.audit(), &tenants.config().secrets_dir).await?;
    Ok(tokens)
}
