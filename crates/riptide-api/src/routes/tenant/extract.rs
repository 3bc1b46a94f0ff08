//! `POST /extract {url, ttl_seconds?, force_refresh?, session_id?}`: a page's readable
//! content through the tenant's cache.
//!
//! Cache-aside with single-flight: concurrent requests of one key on this instance cause
//! one fetch, and a hit serves the stored body as it is (the serialized extraction,
//! never parsed again). `X-Cache: HIT` or `MISS` says which; `force_refresh` fetches
//! anyway and overwrites the entry (`MISS`). `ttl_seconds` (1 s to 30 days, default
//! `persistence.cache.default_ttl_seconds`) applies to the entry written. With
//! `session_id`, the session's cookies and headers go with the fetch and the result is
//! cached under that session only (see [`crate::extraction::cache_key`]). Each page served without
//! a session counts as an access for cache warming.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use riptide_extract::normalize_url;
use serde::Deserialize;

use super::body::JsonBody;
use super::cached::cached_page;
use super::errors::{extract_error, invalid_url};
use super::sessions;
use crate::error::{ApiError, ApiResult};
use crate::extraction::cache_key::ExtractKey;
use crate::extraction::fetch::{fetch_body, session_headers};
use crate::state::AppState;
use crate::tenant_context::{CacheUse, TenantContext};

/// Longest `ttl_seconds` accepted: 30 days.
pub const MAX_TTL_SECONDS: u64 = 30 * 24 * 3600;

/// Body of `POST /extract`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractRequest {
    /// An absolute http(s) URL without credentials.
    pub url: String,
    /// Lifetime of the cached entry, 1 to [`MAX_TTL_SECONDS`].
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// Fetch even when cached, and replace the entry.
    #[serde(default)]
    pub force_refresh: bool,
    /// A session of the caller's tenant whose cookies and headers are sent.
    #[serde(default)]
    pub session_id: Option<String>,
}

/// The `X-Cache` header.
pub const X_CACHE: &str = "x-cache";

/// `POST /extract`: 200 with the extraction as JSON and `X-Cache`.
pub async fn post_extract(
    State(state): State<AppState>,
    ctx: TenantContext,
    JsonBody(request): JsonBody<ExtractRequest>,
) -> ApiResult<Response> {
    let url = normalize_url(&request.url).map_err(|e| invalid_url(&e))?;
    let ttl = request.ttl_seconds.map(entry_ttl).transpose()?;
    let (key, headers) = match &request.session_id {
        Some(id) => {
            let session = sessions::find(&state, &ctx, id).await?;
            let key = ExtractKey::through_session(&ctx.tenant_id, &url, &session);
            (key, session_headers(&session, &url))
        }
        None => (ExtractKey::new(&ctx.tenant_id, &url, None), Vec::new()),
    };

    let (body, cache) = if request.force_refresh {
        let body = fetch_body(&state.extractor, &ctx.tenant_id, &url, &headers)
            .await
            .map_err(|e| extract_error(&e))?;
        let stored = state
            .cache
            .set_bytes(key.as_str(), body.clone(), key.tenant(), ttl, None)
            .await;
        if let Err(e) = stored {
            // The caller still gets the page; the failure is counted in the cache's stats.
            tracing::warn!(tenant.id = %ctx.tenant_id, error = %e, "storing a refreshed extraction failed");
        }
        (body, "MISS")
    } else {
        cached_page(&state, &ctx.tenant_id, &key, &url, &headers, ttl).await?
    };
    if request.session_id.is_none() {
        // Pages seen through a session cannot be warmed without it.
        state.warming.record_access(&ctx.tenant_id, url.as_str());
    }
    let hit = cache == "HIT";
    let mut response = json_response(body, cache);
    // Recorded by the tenant middleware with the request's usage, in one step.
    response.extensions_mut().insert(CacheUse {
        hits: u64::from(hit),
        misses: u64::from(!hit),
    });
    Ok(response)
}

/// A 200 JSON response of `body` with `X-Cache: cache`.
fn json_response(body: Bytes, cache: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(X_CACHE, HeaderValue::from_static(cache));
    response
}

/// `ttl_seconds` of an entry: 1 s to 30 days.
fn entry_ttl(secs: u64) -> ApiResult<Duration> {
    if secs == 0 || secs > MAX_TTL_SECONDS {
        return Err(ApiError::bad_request(
            "invalid_ttl",
            format!("ttl_seconds must be between 1 and {MAX_TTL_SECONDS}"),
        ));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_bounds() {
        assert_eq!(entry_ttl(0).unwrap_err().code(), "invalid_ttl");
        assert_eq!(entry_ttl(1).expect("1 s"), Duration::from_secs(1));
        assert!(entry_ttl(MAX_TTL_SECONDS).is_ok());
        assert!(entry_ttl(MAX_TTL_SECONDS + 1).is_err());
    }
}
