//! `POST /crawl {urls, concurrency?}`: many pages at once through the tenant's cache.
//!
//! One batch cache lookup for every URL, fetches of the misses with at most
//! `concurrency` (1 to 16, default 4) in flight, one batch store of the pages fetched,
//! and one result per URL in request order:
//! `{"results":[{"url", "cache":"HIT"|"MISS", "status":"ok", "data":{..extraction..}}
//! | {"url", "status":"error", "error":{"code","message"}}]}`. A URL given twice is
//! fetched once. Entries are shared with `/extract` (same keys, default TTL), and each
//! page served counts as an access for cache warming. The request is metered as one
//! operation per URL.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use futures::{StreamExt, stream};
use riptide_extract::{Url, normalize_url};
use serde::Deserialize;
use serde_json::json;

use super::body::JsonBody;
use super::cache_key::ExtractKey;
use super::errors::{cache_error, extract_error};
use super::fetch::fetch_body;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::tenant_context::{OperationCount, TenantContext};

/// Most URLs of one crawl.
pub const MAX_URLS: usize = 100;
/// Most fetches in flight for one crawl.
pub const MAX_CONCURRENCY: usize = 16;
/// Fetches in flight when the request does not say.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// Body of `POST /crawl`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrawlRequest {
    /// 1 to [`MAX_URLS`] absolute http(s) URLs.
    pub urls: Vec<String>,
    /// Fetches in flight, 1 to [`MAX_CONCURRENCY`].
    #[serde(default)]
    pub concurrency: Option<usize>,
}

/// The outcome for one distinct URL of the crawl.
enum Outcome {
    Page { body: Bytes, cache: &'static str },
    Failed(ApiError),
}

/// `POST /crawl`.
pub async fn post_crawl(
    State(state): State<AppState>,
    ctx: TenantContext,
    JsonBody(request): JsonBody<CrawlRequest>,
) -> ApiResult<Response> {
    let concurrency = check(&request)?;

    // Each requested URL points at one distinct normalized URL, or at its own error.
    let mut distinct: Vec<(Url, String)> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let mut slots: Vec<Result<usize, ApiError>> = Vec::with_capacity(request.urls.len());
    for raw in &request.urls {
        let slot = normalize_url(raw)
            .map_err(|e| ApiError::bad_request("invalid_url", e.to_string()))
            .map(|url| {
                let key = ExtractKey::new(&ctx.tenant_id, &url, None)
                    .as_str()
                    .to_owned();
                *by_key.entry(key.clone()).or_insert_with(|| {
                    distinct.push((url, key));
                    distinct.len() - 1
                })
            });
        slots.push(slot);
    }

    let scope = ctx.cache_scope();
    let keys: Vec<&str> = distinct.iter().map(|(_, key)| key.as_str()).collect();
    let cached = state
        .cache
        .get_batch_bytes(&keys, scope)
        .await
        .map_err(cache_error)?;

    let misses: Vec<usize> = (0..distinct.len())
        .filter(|&i| cached[i].is_none())
        .collect();
    let fetched: Vec<(usize, Result<Bytes, ApiError>)> = stream::iter(misses)
        .map(|i| {
            let (url, extractor, tenant) = (&distinct[i].0, &state.extractor, &ctx.tenant_id);
            async move {
                let page = fetch_body(extractor, tenant, url, &[])
                    .await
                    .map_err(|e| extract_error(&e));
                (i, page)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;

    let mut outcomes: Vec<Option<Outcome>> = cached
        .into_iter()
        .map(|hit| hit.map(|body| Outcome::Page { body, cache: "HIT" }))
        .collect();
    let mut to_store: Vec<(&str, Bytes)> = Vec::with_capacity(fetched.len());
    for (i, page) in fetched {
        outcomes[i] = Some(match page {
            Ok(body) => {
                to_store.push((keys[i], body.clone()));
                Outcome::Page {
                    body,
                    cache: "MISS",
                }
            }
            Err(e) => Outcome::Failed(e),
        });
    }
    if let Err(e) = state
        .cache
        .set_batch_bytes(&to_store, scope, None, None)
        .await
    {
        // The caller still gets the pages; the failure is counted in the cache's stats.
        tracing::warn!(tenant.id = %ctx.tenant_id, pages = to_store.len(), error = %e,
            "storing crawled pages failed");
    }

    let (mut hits, mut misses) = (0u64, 0u64);
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"{\"results\":[");
    for (n, (raw, slot)) in request.urls.iter().zip(&slots).enumerate() {
        if n > 0 {
            out.push(b',');
        }
        let i = match slot {
            Ok(i) => *i,
            Err(e) => {
                write_error(&mut out, raw, e);
                continue;
            }
        };
        match outcomes[i].as_ref() {
            Some(Outcome::Page { body, cache }) => {
                state
                    .warming
                    .record_access(&ctx.tenant_id, distinct[i].0.as_str());
                if *cache == "HIT" {
                    hits += 1;
                } else {
                    misses += 1;
                }
                write_page(&mut out, raw, cache, body);
            }
            Some(Outcome::Failed(e)) => {
                misses += 1;
                write_error(&mut out, raw, e);
            }
            None => write_error(&mut out, raw, &ApiError::Internal),
        }
    }
    out.extend_from_slice(b"]}");

    if let Err(e) = state.tenants.record_cache_use(&ctx.tenant_id, hits, misses) {
        tracing::warn!(tenant.id = %ctx.tenant_id, error = %e, "recording cache use failed");
    }
    let mut response = Response::new(Body::from(out));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
        .extensions_mut()
        .insert(OperationCount(request.urls.len() as u64));
    Ok(response)
}

/// The number of URLs and the concurrency are in range; returns the concurrency.
fn check(request: &CrawlRequest) -> ApiResult<usize> {
    if request.urls.is_empty() {
        return Err(ApiError::bad_request(
            "no_urls",
            "urls must list at least one URL",
        ));
    }
    if request.urls.len() > MAX_URLS {
        return Err(ApiError::bad_request(
            "too_many_urls",
            format!(
                "urls lists {} URLs; at most {MAX_URLS} are accepted",
                request.urls.len()
            ),
        ));
    }
    let concurrency = request.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
        return Err(ApiError::bad_request(
            "invalid_concurrency",
            format!("concurrency must be between 1 and {MAX_CONCURRENCY}"),
        ));
    }
    Ok(concurrency)
}

/// `{"url":..,"cache":..,"status":"ok","data":<body>}`; the body is the cached JSON,
/// written as it is.
fn write_page(out: &mut Vec<u8>, url: &str, cache: &str, body: &[u8]) {
    out.extend_from_slice(b"{\"url\":");
    write_string(out, url);
    out.extend_from_slice(b",\"cache\":\"");
    out.extend_from_slice(cache.as_bytes());
    out.extend_from_slice(b"\",\"status\":\"ok\",\"data\":");
    out.extend_from_slice(body);
    out.push(b'}');
}

/// `{"url":..,"status":"error","error":{"code":..,"message":..}}`.
fn write_error(out: &mut Vec<u8>, url: &str, e: &ApiError) {
    let item = json!({
        "url": url,
        "status": "error",
        "error": { "code": e.code(), "message": e.to_string() },
    });
    // Writing a `Value` to a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, &item);
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    // Writing a `str` to a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(n: usize, concurrency: Option<usize>) -> CrawlRequest {
        CrawlRequest {
            urls: vec!["http://example.com/".to_owned(); n],
            concurrency,
        }
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(check(&request(0, None)).unwrap_err().code(), "no_urls");
        assert_eq!(
            check(&request(101, None)).unwrap_err().code(),
            "too_many_urls"
        );
        assert_eq!(check(&request(100, None)).expect("ok"), DEFAULT_CONCURRENCY);
        assert_eq!(
            check(&request(1, Some(0))).unwrap_err().code(),
            "invalid_concurrency"
        );
        assert_eq!(
            check(&request(1, Some(17))).unwrap_err().code(),
            "invalid_concurrency"
        );
        assert_eq!(check(&request(1, Some(16))).expect("ok"), 16);
    }

    #[test]
    fn results_are_valid_json() {
        let mut out = Vec::new();
        out.extend_from_slice(b"[");
        write_page(&mut out, "http://a/\"q\"", "HIT", br#"{"title":"t"}"#);
        out.push(b',');
        write_error(
            &mut out,
            "nope",
            &ApiError::bad_request("invalid_url", "bad"),
        );
        out.extend_from_slice(b"]");
        let parsed: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(parsed[0]["url"], "http://a/\"q\"");
        assert_eq!(parsed[0]["data"]["title"], "t");
        assert_eq!(parsed[1]["error"]["code"], "invalid_url");
    }
}
