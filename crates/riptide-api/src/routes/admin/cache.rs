//! `/admin/cache`: stats, invalidation and clearing. (Warming is in its own module.)
//!
//! Invalidations and clears remove entries from the store and this instance's L1, and
//! the cache tells the other instances through the sync layer, so their L1 copies go
//! too. Each one is written to the audit log (`cache.invalidate`, `cache.clear`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use riptide_extract::normalize_url;
use riptide_persistence::cache::StatsSnapshot;
use riptide_persistence::tenant::AdminAction;
use riptide_persistence::{Scope, TenantId};
use serde::{Deserialize, Serialize};

use super::AdminCaller;
use super::input::{Body, Params, tenant_id};
use crate::admin::audit;
use crate::error::{ApiError, ApiResult};
use crate::extraction::cache_key::ExtractKey;
use crate::routes::tenant::cache_error;
use crate::routes::tenant::errors::invalid_url;
use crate::state::AppState;

/// Tenants read per page while clearing every cache.
const CLEAR_PAGE: u64 = 1_000;

/// Query of `GET /admin/cache/stats`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// Only this tenant's figures.
    pub tenant_id: Option<String>,
}

/// The in-process (L1) cache.
#[derive(Debug, Serialize)]
pub struct L1Usage {
    /// Entries held (approximate).
    pub entries: u64,
    /// Weighted bytes held (approximate).
    pub bytes: u64,
}

/// A scope's entries in the store, counted exactly.
#[derive(Debug, Serialize)]
pub struct StoreUsage {
    /// Bytes of live entries.
    pub used_bytes: u64,
    /// Live entries.
    pub entries: u64,
}

/// `GET /admin/cache/stats` answers.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum StatsResponse {
    /// Without `tenant_id`: everything.
    All {
        /// Every operation of every scope (`latency`: p50/p95/p99 per operation, µs).
        overall: StatsSnapshot,
        /// Per scope: tenant ids, `_global`, `_other` (beyond `max_tracked_tenants`).
        tenants: BTreeMap<String, StatsSnapshot>,
        /// This instance's L1.
        l1: L1Usage,
    },
    /// With `tenant_id`: one tenant.
    Tenant {
        /// The tenant.
        tenant_id: String,
        /// Its counters on this instance since start (`null` before its first cache
        /// operation here).
        stats: Option<StatsSnapshot>,
        /// Its entries in the store.
        store: StoreUsage,
    },
}

/// An existing tenant's validated id: 400 when malformed, 404 when unknown.
async fn existing_tenant(state: &AppState, raw: &str) -> ApiResult<TenantId> {
    let id = tenant_id(raw)?;
    if state.tenants.get_tenant(&id).await?.is_none() {
        return Err(ApiError::missing("tenant", id.as_str()));
    }
    Ok(id)
}

/// `GET /admin/cache/stats?tenant_id=`.
pub async fn get_stats(
    caller: AdminCaller,
    State(state): State<AppState>,
    Params(query): Params<StatsQuery>,
) -> ApiResult<Json<StatsResponse>> {
    caller.require(AdminAction::ReadCache)?;
    let mut stats = state.cache.stats();
    let Some(raw) = query.tenant_id else {
        let (entries, bytes) = state.cache.l1_usage();
        return Ok(Json(StatsResponse::All {
            overall: stats.overall,
            tenants: stats.tenants,
            l1: L1Usage { entries, bytes },
        }));
    };
    let id = existing_tenant(&state, &raw).await?;
    let usage = state.cache.usage(&id).await.map_err(cache_error)?;
    Ok(Json(StatsResponse::Tenant {
        stats: stats.tenants.remove(id.as_str()),
        tenant_id: id.to_string(),
        store: StoreUsage {
            used_bytes: usage.used_bytes,
            entries: usage.entries,
        },
    }))
}

/// Body of `POST /admin/cache/invalidate`: `tenant_id` (absent: the global scope) and
/// exactly one selector.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InvalidateRequest {
    /// Whose cache; absent for entries stored without a tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// A URL as `/extract` caches it (normalized; needs `tenant_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A cache key as given to the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Every entry carrying this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Every entry of this namespace (`extract` holds `/extract` and `/crawl` results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// What an invalidation removed.
#[derive(Debug, Serialize)]
pub struct InvalidateResponse {
    /// Whose cache (`null`: the global scope).
    pub tenant_id: Option<String>,
    /// `url`, `key`, `tag` or `namespace`.
    pub selector: &'static str,
    /// The selector's value (a URL in normalized form).
    pub value: String,
    /// Live entries removed.
    pub removed: u64,
}

/// The one selector of `req`, or 400 `invalid_selector`.
fn selector(req: &InvalidateRequest) -> ApiResult<(&'static str, &str)> {
    let given: Vec<(&'static str, &str)> = [
        ("url", &req.url),
        ("key", &req.key),
        ("tag", &req.tag),
        ("namespace", &req.namespace),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
    .collect();
    match given.as_slice() {
        [one] => Ok(*one),
        _ => Err(ApiError::bad_request(
            "invalid_selector",
            "give exactly one of url, key, tag or namespace",
        )),
    }
}

/// `POST /admin/cache/invalidate {tenant_id?, url | key | tag | namespace}`.
pub async fn invalidate(
    caller: AdminCaller,
    State(state): State<AppState>,
    Body(req): Body<InvalidateRequest>,
) -> ApiResult<Json<InvalidateResponse>> {
    caller.require(AdminAction::WriteCache)?;
    let (name, raw) = selector(&req)?;
    let tenant = match &req.tenant_id {
        Some(raw) => Some(existing_tenant(&state, raw).await?),
        None => None,
    };
    let scope = tenant.clone().map_or(Scope::Global, Scope::Tenant);
    let (value, result) = match name {
        "url" => {
            let Some(tenant) = &tenant else {
                return Err(ApiError::bad_request(
                    "invalid_selector",
                    "invalidating a url needs tenant_id: /extract caches per tenant",
                ));
            };
            let url = normalize_url(raw).map_err(|e| invalid_url(&e))?;
            let key = ExtractKey::new(tenant, &url, None);
            let removed = state.cache.delete(key.as_str(), key.tenant()).await;
            (url.to_string(), removed.map(u64::from))
        }
        "key" => (
            raw.to_owned(),
            state.cache.delete(raw, &scope).await.map(u64::from),
        ),
        "tag" => (
            raw.to_owned(),
            state.cache.invalidate_tag(raw, &scope).await,
        ),
        _ => (
            raw.to_owned(),
            state.cache.invalidate_namespace(raw, &scope).await,
        ),
    };
    let result = result.map_err(cache_error);
    let removed = match &result {
        Ok(n) => vec![("removed", n.to_string())],
        Err(_) => Vec::new(),
    };
    audit::record(
        state.tenants.audit(),
        &caller.actor(),
        tenant.as_ref().map(TenantId::as_str),
        "cache.invalidate",
        &format!("{name}={value}"),
        &audit::outcome_of(&result),
        &removed,
    )
    .await;
    Ok(Json(InvalidateResponse {
        tenant_id: tenant.map(|t| t.to_string()),
        selector: name,
        value,
        removed: result?,
    }))
}

/// Body of `POST /admin/cache/clear`: `{"tenant_id": "..."}` or `{"all": true}`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClearRequest {
    /// Clear this tenant's whole cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Clear every tenant's cache and the global scope (must be `true`, and alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
}

/// What a clear removed.
#[derive(Debug, Serialize)]
pub struct ClearResponse {
    /// The tenant cleared (`null` with `all`).
    pub tenant_id: Option<String>,
    /// Whether every cache was cleared.
    pub all: bool,
    /// Scopes cleared (tenants, plus the global scope with `all`).
    pub scopes: u64,
    /// Live entries removed.
    pub removed: u64,
}

/// `POST /admin/cache/clear {tenant_id} | {all: true}`.
pub async fn clear(
    caller: AdminCaller,
    State(state): State<AppState>,
    Body(req): Body<ClearRequest>,
) -> ApiResult<Json<ClearResponse>> {
    caller.require(AdminAction::WriteCache)?;
    let tenant = match (&req.tenant_id, req.all) {
        (Some(raw), None | Some(false)) => Some(existing_tenant(&state, raw).await?),
        (None, Some(true)) => None,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_selector",
                "give tenant_id to clear one tenant's cache, or \"all\": true (alone) to clear every cache",
            ));
        }
    };
    let (resource, result) = match &tenant {
        Some(id) => (
            id.to_string(),
            state
                .cache
                .clear(&id)
                .await
                .map(|removed| (1, removed))
                .map_err(cache_error),
        ),
        None => ("all".to_owned(), clear_all(&state).await),
    };
    let metadata = match &result {
        Ok((scopes, removed)) => vec![
            ("scopes", scopes.to_string()),
            ("removed", removed.to_string()),
        ],
        Err(_) => Vec::new(),
    };
    audit::record(
        state.tenants.audit(),
        &caller.actor(),
        tenant.as_ref().map(TenantId::as_str),
        "cache.clear",
        &resource,
        &audit::outcome_of(&result),
        &metadata,
    )
    .await;
    let (scopes, removed) = result?;
    Ok(Json(ClearResponse {
        tenant_id: tenant.map(|t| t.to_string()),
        all: req.all == Some(true),
        scopes,
        removed,
    }))
}

/// Clears every registered tenant's cache, then the global scope: (scopes, entries).
async fn clear_all(state: &AppState) -> ApiResult<(u64, u64)> {
    let mut scopes = 0;
    let mut removed = 0;
    let mut offset = 0;
    loop {
        let page = state.tenants.list_tenants(offset, CLEAR_PAGE).await?;
        for tenant in &page.tenants {
            removed += state.cache.clear(tenant.id()).await.map_err(cache_error)?;
            scopes += 1;
        }
        match page.next_offset {
            Some(next) => offset = next,
            None => break,
        }
    }
    removed += state
        .cache
        .clear(&Scope::Global)
        .await
        .map_err(cache_error)?;
    Ok((scopes + 1, removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(url: Option<&str>, key: Option<&str>, tag: Option<&str>) -> InvalidateRequest {
        InvalidateRequest {
            tenant_id: None,
            url: url.map(str::to_owned),
            key: key.map(str::to_owned),
            tag: tag.map(str::to_owned),
            namespace: None,
        }
    }

    #[test]
    fn exactly_one_selector() {
        assert_eq!(
            selector(&req(None, Some("k"), None)).ok(),
            Some(("key", "k"))
        );
        for bad in [req(None, None, None), req(Some("u"), Some("k"), None)] {
            assert_eq!(selector(&bad).unwrap_err().code(), "invalid_selector");
        }
    }
}
