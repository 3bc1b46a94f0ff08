//! [`TenantContext`]: who a tenant request is for, as the tenant middleware established
//! it, handed to handlers as an extractor; and [`OperationCount`], what a handler tells
//! the middleware to meter, and [`CacheUse`], the cache hits and misses it meters with it.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use riptide_persistence::TenantId;
use riptide_persistence::store::GcraDecision;
use riptide_persistence::tenant::Tenant;

use crate::error::ApiError;

/// The tenant a request runs as, after authentication, the tenant header check, the
/// status and access checks and the rate limit.
///
/// The middleware (`riptide_api::middleware::tenant`) puts it in the request's extensions;
/// handlers take it as an argument. It is moved out of the request on extraction, so a
/// handler takes it once. Every tenant-scoped key (cache entries, sessions, usage) is
/// built from [`Self::tenant_id`], the validated id type, never from a raw header.
#[derive(Debug, Clone)]
pub struct TenantContext {
    /// The tenant's validated id.
    pub tenant_id: TenantId,
    /// The id of the API key, or the `kid` of the JWT verification key, that
    /// authenticated the request; `None` when multi-tenancy is off and the request runs as the built-in `default` tenant without a key.
    pub key_id: Option<String>,
    /// The tenant's record as the middleware checked it.
    pub tenant: Arc<Tenant>,
    /// The rate limiter's decision for this request (`None` when the tenant has no
    /// `operations_per_minute` quota).
    pub rate: Option<GcraDecision>,
}

impl<S: Send + Sync> FromRequestParts<S> for TenantContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.remove::<TenantContext>().ok_or_else(|| {
            // Only a route mounted without the tenant middleware (a routing bug) gets here.
            tracing::error!(
                path = parts.uri.path(),
                "a tenant handler ran without the tenant middleware"
            );
            ApiError::Internal
        })
    }
}

/// How many operations a response stands for (a crawl of N URLs is N), put in the
/// response's extensions by the handler; the middleware meters 1 when it is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationCount(pub u64);

/// The cache hits and misses a response stands for, put in the response's extensions by
/// the handler; the middleware records them with the request's usage, in one step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUse {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to load the value.
    pub misses: u64,
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    #[tokio::test]
    async fn a_missing_context_is_an_internal_error() {
        let (mut parts, ()) = Request::new(()).into_parts();
        let err = TenantContext::from_request_parts(&mut parts, &())
            .await
            .expect_err("no context");
        assert!(matches!(err, ApiError::Internal), "{err:?}");
    }
}
