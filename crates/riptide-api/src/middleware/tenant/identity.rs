//! Who a request is: the API key's tenant, checked against `X-Tenant-ID`, or the tenant
//! `X-Tenant-ID` names when a JWT of that tenant verifies (multi-tenancy on); or the
//! built-in `default` tenant (multi-tenancy off).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use riptide_persistence::TenantId;
use riptide_persistence::tenant::jwt_keys::looks_like_jwt;
use riptide_persistence::tenant::validate::DEFAULT_TENANT;
use riptide_persistence::tenant::{Tenant, TenantError, TenantManager};
use riptide_persistence::tenant_id::is_valid_tenant_id;

use crate::auth_failures::{AuthFailures, Credential};
use crate::error::ApiError;

/// The header naming the tenant a request is for.
pub const TENANT_HEADER: &str = "x-tenant-id";

/// A request's tenant, before its status and access are checked.
pub(super) struct Identified {
    pub(super) tenant_id: TenantId,
    pub(super) key_id: Option<String>,
    pub(super) tenant: Arc<Tenant>,
}

/// Steps 1 and 2: the credential authenticates, and `X-Tenant-ID` names its tenant.
///
/// The bearer credential is a JWT when it has a JWT's shape (three base64url segments;
/// API keys have no dot), else an API key. A `client` over its limit of failed
/// authentications is refused before its credential is looked at; a credential that
/// identifies nobody is one failure of `client`.
///
/// A credential whose tenant is suspended still authenticates the caller: the tenant
/// header is checked first, then the suspension is reported (403 `tenant_suspended`).
pub(super) async fn authenticate(
    tenants: &TenantManager,
    failures: &AuthFailures,
    client: Option<IpAddr>,
    headers: &HeaderMap,
) -> Result<Identified, ApiError> {
    let presented = bearer(headers);
    let is_jwt = matches!(&presented, Ok(p) if looks_like_jwt(p));
    let credential = if is_jwt {
        Credential::Jwt
    } else {
        Credential::ApiKey
    };
    failures.admit(client, credential)?;
    let presented = presented?;
    if is_jwt {
        return authenticate_jwt(tenants, failures, client, headers, presented).await;
    }
    let (key, tenant) = match tenants.authenticate(presented).await {
        Ok(found) => found,
        Err(TenantError::InvalidApiKey) => {
            failures.failed(client, Credential::ApiKey);
            return Err(TenantError::InvalidApiKey.into());
        }
        Err(TenantError::Suspended(id)) => {
            tenant_header_matches(headers, &id)?;
            return Err(TenantError::Suspended(id).into());
        }
        Err(e) => return Err(e.into()),
    };
    tenant_header_matches(headers, key.tenant_id.as_str())?;
    Ok(Identified {
        tenant_id: key.tenant_id,
        key_id: Some(key.key_id),
        tenant,
    })
}

/// A JWT is verified for the tenant `X-Tenant-ID` names, with that tenant's keys only:
/// another tenant's key, or a `tenant` claim naming another tenant, does not verify.
async fn authenticate_jwt(
    tenants: &TenantManager,
    failures: &AuthFailures,
    client: Option<IpAddr>,
    headers: &HeaderMap,
    token: &str,
) -> Result<Identified, ApiError> {
    let claimed = tenant_header(headers)?;
    match tenants.authenticate_jwt(claimed, token).await {
        Ok((verified, tenant)) => Ok(Identified {
            tenant_id: verified.tenant_id,
            key_id: Some(verified.kid),
            tenant,
        }),
        Err(e @ TenantError::InvalidToken(_)) => {
            failures.failed(client, Credential::Jwt);
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// The credential of `Authorization: Bearer <credential>` (the scheme is
/// case-insensitive).
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized("missing Authorization header: expected `Bearer <api key or JWT>`")
    })?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not ASCII"))?;
    let (scheme, key) = value.split_once(' ').unwrap_or((value, ""));
    let key = key.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || key.is_empty() {
        return Err(ApiError::unauthorized(
            "expected `Authorization: Bearer <api key or JWT>`",
        ));
    }
    Ok(key)
}

/// `X-Tenant-ID`: present and a valid tenant id.
fn tenant_header(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers.get(TENANT_HEADER).ok_or_else(|| {
        ApiError::bad_request(
            "missing_tenant_header",
            "the X-Tenant-ID header is required",
        )
    })?;
    value
        .to_str()
        .ok()
        .filter(|v| is_valid_tenant_id(v))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_tenant_id",
                "X-Tenant-ID must match ^[a-z0-9][a-z0-9_-]{0,63}$",
            )
        })
}

/// `X-Tenant-ID` is present, a valid tenant id, and `expected`.
fn tenant_header_matches(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    if tenant_header(headers)? != expected {
        return Err(ApiError::forbidden(
            "tenant_mismatch",
            "X-Tenant-ID does not name the tenant of this API key",
        ));
    }
    Ok(())
}

/// The built-in `default` tenant's record, re-read at most once per
/// `tenant.record_cache_ttl_ms` so a suspension or a changed quota applies within it.
#[derive(Default)]
pub(super) struct DefaultTenant {
    snapshot: ArcSwapOption<Snapshot>,
}

struct Snapshot {
    read_at: Instant,
    id: TenantId,
    tenant: Arc<Tenant>,
}

impl DefaultTenant {
    pub(super) async fn get(&self, tenants: &TenantManager) -> Result<Identified, ApiError> {
        let ttl = Duration::from_millis(tenants.config().record_cache_ttl_ms);
        let current = self.snapshot.load_full();
        let snapshot = match current {
            Some(s) if s.read_at.elapsed() < ttl => s,
            _ => {
                let fresh = self.read(tenants).await?;
                self.snapshot.store(Some(fresh.clone()));
                fresh
            }
        };
        Ok(Identified {
            tenant_id: snapshot.id.clone(),
            key_id: None,
            tenant: snapshot.tenant.clone(),
        })
    }

    async fn read(&self, tenants: &TenantManager) -> Result<Arc<Snapshot>, ApiError> {
        let id = TenantId::parse(DEFAULT_TENANT).map_err(|e| {
            tracing::error!(error = %e, "the built-in tenant id is invalid");
            ApiError::Internal
        })?;
        let Some(tenant) = tenants.get_tenant(DEFAULT_TENANT).await? else {
            // The tenant manager creates it when it starts with multi-tenancy off.
            tracing::error!(
                "multi-tenancy is off but the `default` tenant does not exist; \
                 it is created when the service starts with persistence.tenant.enabled = false"
            );
            return Err(ApiError::Internal);
        };
        Ok(Arc::new(Snapshot {
            read_at: Instant::now(),
            id,
            tenant: Arc::new(tenant),
        }))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn bearer_keys_are_read_and_other_schemes_refused() {
        let ok = headers(&[("authorization", "Bearer rt_abc")]);
        assert_eq!(bearer(&ok).expect("bearer"), "rt_abc");
        let lower = headers(&[("authorization", "bearer  rt_abc ")]);
        assert_eq!(bearer(&lower).expect("bearer"), "rt_abc");
        for bad in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "rt_abc"] {
            let map = headers(&[("authorization", bad)]);
            let err = bearer(&map).expect_err(bad);
            assert_eq!(err.code(), "unauthorized", "{bad}");
        }
        assert_eq!(
            bearer(&HeaderMap::new()).unwrap_err().code(),
            "unauthorized"
        );
    }

    #[test]
    fn the_tenant_header_is_required_valid_and_matching() {
        let code = |map: &HeaderMap| tenant_header_matches(map, "acme").map_err(|e| e.code());
        assert_eq!(code(&HeaderMap::new()), Err("missing_tenant_header"));
        assert_eq!(
            code(&headers(&[("x-tenant-id", "Not Valid")])),
            Err("invalid_tenant_id")
        );
        assert_eq!(
            code(&headers(&[("x-tenant-id", "other")])),
            Err("tenant_mismatch")
        );
        assert_eq!(code(&headers(&[("x-tenant-id", "acme")])), Ok(()));
    }
}
