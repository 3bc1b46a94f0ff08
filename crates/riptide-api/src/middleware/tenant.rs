//! The tenant middleware: every tenant route runs behind it, in this order.
//!
//! 1. `Authorization: Bearer <api key or JWT>` is authenticated (missing, malformed,
//!    unknown or revoked: 401 with `WWW-Authenticate: Bearer`). First, though, a client
//!    address over its limit of failed authentications is refused (429
//!    `too_many_auth_failures`) without its credential being looked at; an unknown or
//!    revoked key, or a JWT that does not verify, counts as one failure of its address
//!    (see [`crate::auth_failures`]). A credential with a JWT's shape (three base64url
//!    segments) is a JWT: it is verified with the keys of the tenant `X-Tenant-ID`
//!    names (so that header is checked first), and its `tenant` claim must name that
//!    tenant (see `riptide_persistence::tenant::jwt_keys`).
//! 2. `X-Tenant-ID` must be there (400 `missing_tenant_header`), be a valid tenant id
//!    (400 `invalid_tenant_id`) and name the key's tenant (403 `tenant_mismatch`; for a
//!    JWT, another tenant's key or claim is a token that does not verify, 401).
//! 3. The tenant must be active (403 `tenant_suspended`).
//! 4. The tenant's plan and policy must grant the route (403 `access_denied`).
//! 5. The month's `data_transfer_bytes` must not be used up (429 `quota_exceeded`, with
//!    `Retry-After` until the next month), then the request takes one token from the
//!    tenant's `operations_per_minute` bucket (429 `rate_limited` with `Retry-After` and
//!    `RateLimit-Limit/Remaining/Reset`; admitted responses carry the `RateLimit-*`
//!    headers too, from the handler's own later decision when it took more tokens: a
//!    crawl takes one per URL).
//! 6. The handler runs with a [`TenantContext`].
//! 7. Usage is recorded for every request that reached the handler, whatever its
//!    answer: the operation count the handler reports ([`OperationCount`],
//!    else 1), the response body's bytes (from its exact size or `Content-Length`; a
//!    streamed body is never buffered for this), the time spent, and the cache hits and
//!    misses the handler reports ([`CacheUse`]), in one step. A failed record is
//!    logged and counted in `tenant_usage_record_failures_total`, never an error to
//!    the caller.
//!
//! With multi-tenancy off (`persistence.tenant.enabled: false`, `ENABLE_MULTI_TENANCY=false`,
//! fixed at start: a reload never switches it, and startup refuses it on a non-loopback
//! address unless `server.allow_unauthenticated` says so) steps 1 and 2 are skipped (the
//! headers are ignored) and the request runs as the built-in `default` tenant; steps 3
//! to 7 apply to it.

mod identity;
mod transfer;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use chrono::Utc;
use riptide_persistence::TenantId;
use riptide_persistence::store::GcraDecision;
use riptide_persistence::tenant::{ResourceUsageRecord, TenantError};

use self::identity::{DefaultTenant, Identified};
use self::transfer::TransferGuard;
use crate::auth_failures::client_ip;
use crate::error::ApiError;
use crate::state::AppState;
use crate::tenant_context::{CacheUse, OperationCount, TenantContext};

/// What a tenant route is, for the access check and the usage record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    /// The resource of `validate_access` (`extract`, `crawl`, `sessions`, `usage`).
    pub resource: &'static str,
    /// The action of `validate_access` (`""` for a resource with one action).
    pub action: &'static str,
    /// The operation name usage is recorded under.
    pub operation: &'static str,
}

/// The state of the tenant middleware, shared by every tenant route.
pub struct TenantGuard {
    state: AppState,
    default_tenant: DefaultTenant,
    transfer: TransferGuard,
}

impl TenantGuard {
    /// The middleware's state over the service's managers.
    pub fn new(state: AppState) -> Arc<Self> {
        Arc::new(Self {
            state,
            default_tenant: DefaultTenant::default(),
            transfer: TransferGuard::new(),
        })
    }

    /// `handler` behind the middleware for `route`. Applied as a route layer, so it
    /// runs after routing and before the handler reads the body: a request that is
    /// refused is refused without its body being read.
    pub fn wrap(
        self: &Arc<Self>,
        route: &'static RouteSpec,
        handler: MethodRouter<AppState>,
    ) -> MethodRouter<AppState> {
        handler.route_layer(from_fn_with_state(
            Guarded {
                guard: self.clone(),
                route,
            },
            guarded,
        ))
    }

    /// Whether requests must authenticate as a tenant: the tenant manager's live
    /// `persistence.tenant.enabled`, read on every request, so a reloaded configuration
    /// switches it.
    fn multi_tenancy(&self) -> bool {
        self.state.tenants.multi_tenancy_enabled()
    }
}

/// The state of one route's middleware: the shared guard and the route.
#[derive(Clone)]
struct Guarded {
    guard: Arc<TenantGuard>,
    route: &'static RouteSpec,
}

async fn guarded(State(guarded): State<Guarded>, request: Request, next: Next) -> Response {
    run(&guarded.guard, guarded.route, request, next).await
}

/// Steps 1 to 7 of the module documentation.
async fn run(guard: &TenantGuard, route: &RouteSpec, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let client = client_ip(request.extensions());
    let context = match admit(guard, route, request.headers(), client).await {
        Ok(context) => context,
        Err(e) => return e.into_response(),
    };
    let tenant_id = context.tenant_id.clone();
    let rate = context.rate;
    request.extensions_mut().insert(context);

    let mut response = next.run(request).await;

    let operations = response
        .extensions_mut()
        .remove::<OperationCount>()
        .map_or(1, |n| n.0);
    let cache = response
        .extensions_mut()
        .remove::<CacheUse>()
        .unwrap_or_default();
    let bytes = body_bytes(&response);
    record(guard, route, &tenant_id, operations, cache, bytes, started);
    // A handler that took more of the rate limit (a crawl) reports the later decision.
    let rate = response.extensions_mut().remove::<GcraDecision>().or(rate);
    if let Some(decision) = rate.filter(|d| d.limit != u64::MAX) {
        set_rate_headers(response.headers_mut(), &decision);
    }
    response
}

/// Steps 1 to 5: the context of an admitted request.
async fn admit(
    guard: &TenantGuard,
    route: &RouteSpec,
    headers: &HeaderMap,
    client: Option<IpAddr>,
) -> Result<TenantContext, ApiError> {
    let tenants = &guard.state.tenants;
    let Identified {
        tenant_id,
        key_id,
        tenant,
    } = if guard.multi_tenancy() {
        identity::authenticate(tenants, &guard.state.auth_failures, client, headers).await?
    } else {
        guard.default_tenant.get(tenants).await?
    };
    if !tenant.is_active() {
        return Err(TenantError::Suspended(tenant_id.to_string()).into());
    }
    // The record authentication read is the one every later step judges: it is read
    // once per request (at most `record_cache_ttl_ms` old), not once per step.
    tenants.validate_access_of(&tenant, route.resource, route.action)?;
    guard.transfer.check(tenants, &tenant_id, &tenant).await?;
    let decision = tenants
        .check_rate_of(&tenant_id, &tenant, 1)
        .await
        .map_err(rate_limited)?;
    let rate = (decision.limit != u64::MAX).then_some(decision);
    Ok(TenantContext {
        tenant_id,
        key_id,
        tenant,
        rate,
    })
}

/// A refusal of the rate limiter as 429 `rate_limited` with its headers; any other
/// error as itself.
pub(crate) fn rate_limited(e: TenantError) -> ApiError {
    match e {
        TenantError::QuotaExceeded {
            resource,
            limit,
            current,
            retry_after,
        } if resource == "operations_per_minute" => {
            let retry_after_secs = retry_after
                .map_or(1, |d| {
                    u64::try_from(d.as_millis().div_ceil(1_000)).unwrap_or(u64::MAX)
                })
                .max(1);
            // The bucket holds `current` requests' worth; each drains in 60 s / limit.
            let reset_secs = current
                .saturating_mul(60)
                .div_ceil(limit.max(1))
                .max(retry_after_secs);
            ApiError::RateLimited {
                limit,
                remaining: 0,
                reset_secs,
                retry_after_secs,
            }
        }
        other => other.into(),
    }
}

const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

fn set_rate_headers(headers: &mut HeaderMap, decision: &GcraDecision) {
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(decision.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(decision.remaining));
    headers.insert(
        RATELIMIT_RESET,
        HeaderValue::from(decision.reset_after_ms.div_ceil(1_000)),
    );
}

/// Step 7: meters the request (and the cache use the handler reported with it). Never
/// fails the request.
fn record(
    guard: &TenantGuard,
    route: &RouteSpec,
    tenant_id: &TenantId,
    operations: u64,
    cache: CacheUse,
    bytes: u64,
    started: Instant,
) {
    let usage = ResourceUsageRecord {
        operation_count: operations,
        data_bytes: bytes,
        compute_time_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        storage_bytes: 0,
        timestamp: Utc::now(),
    };
    let recorded = guard.state.tenants.record_request_usage(
        tenant_id,
        route.operation,
        &usage,
        cache.hits,
        cache.misses,
    );
    if let Err(e) = recorded {
        metrics::counter!("tenant_usage_record_failures_total").increment(1);
        tracing::warn!(
            tenant.id = %tenant_id,
            operation = route.operation,
            error = %e,
            "recording a request's usage failed"
        );
    }
}

/// The response body's size without reading it: the body's exact size, else its
/// `Content-Length`, else what it is known to hold at least.
fn body_bytes(response: &Response) -> u64 {
    let hint = response.body().size_hint();
    hint.exact()
        .or_else(|| {
            response
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(hint.lower())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn a_rate_refusal_carries_its_headers() {
        let err = rate_limited(TenantError::QuotaExceeded {
            resource: "operations_per_minute".into(),
            limit: 60,
            current: 6,
            retry_after: Some(Duration::from_millis(1_200)),
        });
        let ApiError::RateLimited {
            limit,
            remaining,
            reset_secs,
            retry_after_secs,
        } = err
        else {
            panic!("{err:?}");
        };
        assert_eq!((limit, remaining, retry_after_secs), (60, 0, 2));
        assert_eq!(reset_secs, 6);
    }

    #[test]
    fn other_quota_errors_stay_quota_errors() {
        let err = rate_limited(TenantError::QuotaExceeded {
            resource: "storage_bytes".into(),
            limit: 1,
            current: 2,
            retry_after: None,
        });
        assert_eq!(err.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(err.code(), "quota_exceeded");
    }

    #[test]
    fn body_size_comes_from_the_body_or_its_header() {
        let sized = Response::new(Body::from("12345"));
        assert_eq!(body_bytes(&sized), 5);
        let empty = Response::new(Body::empty());
        assert_eq!(body_bytes(&empty), 0);
    }
}
