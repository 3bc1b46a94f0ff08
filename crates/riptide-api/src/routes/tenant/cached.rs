//! A page through the tenant's cache: stored, or fetched once and stored.

use std::time::Duration;

use axum::body::Bytes;
use riptide_extract::Url;
use riptide_persistence::TenantId;

use super::errors::cache_error;
use crate::error::ApiResult;
use crate::extraction::cache_key::ExtractKey;
use crate::extraction::fetch::fetch_body;
use crate::state::AppState;

/// The page at `url` through the tenant's cache under `key`: the stored body (`HIT`),
/// or fetched with `headers`, stored with `ttl` and answered (`MISS`). Concurrent
/// requests of one key on this instance cause one fetch; the others wait for it.
pub async fn cached_page(
    state: &AppState,
    tenant: &TenantId,
    key: &ExtractKey<'_>,
    url: &Url,
    headers: &[(String, String)],
    ttl: Option<Duration>,
) -> ApiResult<(Bytes, &'static str)> {
    let extractor = &state.extractor;
    let found = state
        .cache
        .get_or_load_bytes(key.as_str(), key.tenant(), ttl, None, move || {
            fetch_body(extractor, tenant, url, headers)
        })
        .await;
    match found {
        Ok(lookup) => Ok((lookup.value, lookup.source.as_header())),
        // A failed fetch answers with its own status and code (see `cache_error`).
        Err(e) => Err(cache_error(e)),
    }
}
