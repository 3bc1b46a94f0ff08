//! `POST /crawl {urls, concurrency?}`: many pages at once through the tenant's cache.
//!
//! Every URL is looked up and, on a miss, fetched and stored exactly as `/extract`
//! would (same keys, default TTL, one fetch per key however many requests want it),
//! with at most `concurrency` (default `crawl.default_concurrency`, at most
//! `crawl.max_concurrency`) in flight. One result per requested URL, in request order:
//!
//! | `status` | result |
//! |---|---|
//! | `ok` | `{"url", "cache":"HIT"\|"MISS", "status":"ok", "data":{..extraction..}}` |
//! | `stored` | `{"url", "cache", "status":"stored"}`: the answer's page data reached `crawl.max_answer_bytes`; the page is cached, read it with `/extract` |
//! | `duplicate` | `{"url", "status":"duplicate", "same_as": i}`: the same page as result `i` |
//! | `error` | `{"url", "status":"error", "error":{"code","message"}}` |
//!
//! Cost: one rate-limit token per URL (the middleware takes the first; the rest are
//! taken before anything is fetched, and a tenant without them gets 429 with
//! `Retry-After` for the whole crawl), metered as one operation per URL. Memory: the
//! pages in flight and the answer, never the URL count times the page size: results
//! are written to the answer in order as they come, duplicates once.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::response::Response;
use futures::{StreamExt, stream};
use riptide_extract::{Url, normalize_url};
use riptide_persistence::store::GcraDecision;
use serde::Deserialize;
use serde_json::json;

use super::body::JsonBody;
use super::cached::cached_page;
use super::errors::invalid_url;
use crate::config::CrawlConfig;
use crate::error::{ApiError, ApiResult};
use crate::extraction::cache_key::ExtractKey;
use crate::middleware::tenant::rate_limited;
use crate::state::AppState;
use crate::tenant_context::{CacheUse, OperationCount, TenantContext};

/// Body of `POST /crawl`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrawlRequest {
    /// 1 to `crawl.max_urls` absolute http(s) URLs.
    pub urls: Vec<String>,
    /// Fetches in flight, 1 to `crawl.max_concurrency`.
    #[serde(default)]
    pub concurrency: Option<usize>,
}

/// What one requested URL is.
enum Slot {
    /// Not a URL that can be fetched.
    Invalid(ApiError),
    /// The first request of distinct page `.0`.
    First(usize),
    /// The same page as the request at index `.0`.
    Duplicate(usize),
}

/// `POST /crawl`.
pub async fn post_crawl(
    State(state): State<AppState>,
    ctx: TenantContext,
    JsonBody(request): JsonBody<CrawlRequest>,
) -> ApiResult<Response> {
    let concurrency = check(&request, &state.crawl)?;
    let rate = charge(&state, &ctx, request.urls.len() as u64).await?;
    let (slots, distinct) = sort_urls(&request.urls);

    // By index: a closure over `&Url` items would not be general enough to be `Send`.
    let pages = stream::iter(0..distinct.len())
        .map(|i| {
            let (state, tenant, url) = (&state, &ctx.tenant_id, &distinct[i]);
            async move {
                let key = ExtractKey::new(tenant, url, None);
                cached_page(state, tenant, &key, url, &[], None).await
            }
        })
        .buffered(concurrency);
    let mut pages = std::pin::pin!(pages);

    let mut answer = Answer::new(state.crawl.max_answer_bytes);
    let mut cache = CacheUse::default();
    for (raw, slot) in request.urls.iter().zip(&slots) {
        match slot {
            Slot::Invalid(e) => answer.error(raw, e),
            Slot::Duplicate(first) => answer.duplicate(raw, *first),
            Slot::First(i) => match pages.next().await {
                Some(Ok((body, source))) => {
                    state
                        .warming
                        .record_access(&ctx.tenant_id, distinct[*i].as_str());
                    if source == "HIT" {
                        cache.hits += 1;
                    } else {
                        cache.misses += 1;
                    }
                    answer.page(raw, source, &body);
                }
                Some(Err(e)) => {
                    cache.misses += 1;
                    answer.error(raw, &e);
                }
                None => answer.error(raw, &ApiError::Internal),
            },
        }
    }

    let (chunks, len) = answer.finish();
    let body = Body::from_stream(stream::iter(chunks.into_iter().map(Ok::<_, Infallible>)));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // A stream has no size of its own: the length is known, and metering reads it here.
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    let extensions = response.extensions_mut();
    extensions.insert(OperationCount(request.urls.len() as u64));
    extensions.insert(cache);
    if let Some(rate) = rate {
        // The middleware's `RateLimit-*` headers then say what is left after the crawl.
        extensions.insert(rate);
    }
    Ok(response)
}

/// The number of URLs and the concurrency are in range; returns the concurrency.
fn check(request: &CrawlRequest, cfg: &CrawlConfig) -> ApiResult<usize> {
    if request.urls.is_empty() {
        return Err(ApiError::bad_request(
            "no_urls",
            "urls must list at least one URL",
        ));
    }
    if request.urls.len() > cfg.max_urls {
        return Err(ApiError::bad_request(
            "too_many_urls",
            format!(
                "urls lists {} URLs; at most {} are accepted",
                request.urls.len(),
                cfg.max_urls
            ),
        ));
    }
    let concurrency = request.concurrency.unwrap_or(cfg.default_concurrency);
    if !(1..=cfg.max_concurrency).contains(&concurrency) {
        return Err(ApiError::bad_request(
            "invalid_concurrency",
            format!("concurrency must be between 1 and {}", cfg.max_concurrency),
        ));
    }
    Ok(concurrency)
}

/// Takes the tokens of the URLs after the first (which the middleware took) from the
/// tenant's rate limit, all or none; the limiter's decision when it took any.
async fn charge(
    state: &AppState,
    ctx: &TenantContext,
    urls: u64,
) -> ApiResult<Option<GcraDecision>> {
    let extra = urls.saturating_sub(1);
    if extra == 0 {
        return Ok(None);
    }
    if let Some(rate) = &ctx.rate
        && urls > rate.burst
    {
        // More tokens than the bucket ever holds: no wait would help.
        return Err(ApiError::bad_request(
            "too_many_urls",
            format!(
                "a crawl of {urls} URLs costs {urls} requests; this tenant's rate limit \
                 admits at most {} at once",
                rate.burst
            ),
        ));
    }
    state
        .tenants
        .check_rate_of(&ctx.tenant_id, &ctx.tenant, extra)
        .await
        .map(Some)
        .map_err(rate_limited)
}

/// Each requested URL as a [`Slot`], and the distinct normalized URLs in order of first
/// request.
fn sort_urls(urls: &[String]) -> (Vec<Slot>, Vec<Url>) {
    let mut distinct: Vec<Url> = Vec::new();
    let mut first_request: HashMap<String, usize> = HashMap::new();
    let slots = urls
        .iter()
        .enumerate()
        .map(|(n, raw)| match normalize_url(raw) {
            Err(e) => Slot::Invalid(invalid_url(&e)),
            Ok(url) => match first_request.get(url.as_str()) {
                Some(&first) => Slot::Duplicate(first),
                None => {
                    first_request.insert(url.as_str().to_owned(), n);
                    distinct.push(url);
                    Slot::First(distinct.len() - 1)
                }
            },
        })
        .collect();
    (slots, distinct)
}

/// The answer, written as results come: `{"results":[...]}`, page data included up to
/// a byte budget. Pages are not copied: the answer is a list of chunks, each page's body
/// (the cached bytes) one of them, with the JSON around them in small chunks between.
struct Answer {
    chunks: Vec<Bytes>,
    /// JSON written since the last chunk.
    pending: Vec<u8>,
    data_left: usize,
    results: usize,
}

/// Longest requested URL quoted back in an `error` or `duplicate` result; a longer one
/// (it can only have failed, or be the duplicate of one that did) is cut, ending in `…`:
/// a megabyte of URL in must not be a megabyte of answer out. Results are in request
/// order, so a cut URL is still found by its position.
const MAX_ECHOED_URL_BYTES: usize = 2048;

fn echoed(url: &str) -> String {
    crate::error::clip(url.to_owned(), MAX_ECHOED_URL_BYTES)
}

impl Answer {
    fn new(max_data_bytes: usize) -> Self {
        Self {
            chunks: Vec::new(),
            pending: b"{\"results\":[".to_vec(),
            data_left: max_data_bytes,
            results: 0,
        }
    }

    fn next(&mut self) -> &mut Vec<u8> {
        if self.results > 0 {
            self.pending.push(b',');
        }
        self.results += 1;
        &mut self.pending
    }

    /// `{"url":..,"cache":..,"status":"ok","data":<body>}` while the budget lasts (the
    /// body is the cached JSON, as it is), else `"status":"stored"`.
    fn page(&mut self, url: &str, cache: &str, body: &Bytes) {
        let fits = body.len() <= self.data_left;
        if fits {
            self.data_left -= body.len();
        }
        let out = self.next();
        out.extend_from_slice(b"{\"url\":");
        write_string(out, url);
        out.extend_from_slice(b",\"cache\":\"");
        out.extend_from_slice(cache.as_bytes());
        if fits {
            out.extend_from_slice(b"\",\"status\":\"ok\",\"data\":");
            let json = Bytes::from(std::mem::take(&mut self.pending));
            self.chunks.push(json);
            self.chunks.push(body.clone());
            self.pending.push(b'}');
        } else {
            out.extend_from_slice(b"\",\"status\":\"stored\"}");
        }
    }

    /// `{"url":..,"status":"duplicate","same_as":first}`.
    fn duplicate(&mut self, url: &str, first: usize) {
        let item = json!({ "url": echoed(url), "status": "duplicate", "same_as": first });
        // Writing a `Value` to a `Vec` cannot fail.
        let _ = serde_json::to_writer(self.next(), &item);
    }

    /// `{"url":..,"status":"error","error":{"code":..,"message":..}}`.
    fn error(&mut self, url: &str, e: &ApiError) {
        let item = json!({
            "url": echoed(url),
            "status": "error",
            "error": { "code": e.code(), "message": e.message() },
        });
        // Writing a `Value` to a `Vec` cannot fail.
        let _ = serde_json::to_writer(self.next(), &item);
    }

    /// The chunks of the whole answer and their total length.
    fn finish(mut self) -> (Vec<Bytes>, u64) {
        self.pending.extend_from_slice(b"]}");
        self.chunks.push(Bytes::from(self.pending));
        let len = self.chunks.iter().map(|c| c.len() as u64).sum();
        (self.chunks, len)
    }
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
        let cfg = CrawlConfig::default();
        let code = |r| check(&r, &cfg).unwrap_err().code();
        assert_eq!(code(request(0, None)), "no_urls");
        assert_eq!(code(request(101, None)), "too_many_urls");
        assert_eq!(check(&request(100, None), &cfg).expect("ok"), 4);
        assert_eq!(code(request(1, Some(0))), "invalid_concurrency");
        assert_eq!(code(request(1, Some(17))), "invalid_concurrency");
        assert_eq!(check(&request(1, Some(16)), &cfg).expect("ok"), 16);
    }

    #[test]
    fn duplicates_point_at_their_first_request() {
        let urls = [
            "http://a.example/x",
            "not a url",
            "HTTP://A.EXAMPLE/x#frag",
            "http://b.example/",
            "http://a.example/x",
        ]
        .map(String::from);
        let (slots, distinct) = sort_urls(&urls);
        assert_eq!(distinct.len(), 2);
        let shape: Vec<String> = slots
            .iter()
            .map(|s| match s {
                Slot::Invalid(_) => "invalid".into(),
                Slot::First(i) => format!("first {i}"),
                Slot::Duplicate(n) => format!("same as {n}"),
            })
            .collect();
        assert_eq!(
            shape,
            ["first 0", "invalid", "same as 0", "first 1", "same as 0"]
        );
    }

    #[test]
    fn the_answer_is_valid_json_and_bounded() {
        let mut answer = Answer::new(20);
        let short = Bytes::from_static(br#"{"title":"t"}"#);
        let long = Bytes::from_static(br#"{"title":"too long for what is left"}"#);
        answer.page("http://a/\"q\"", "HIT", &short);
        answer.page("http://b/", "MISS", &long);
        answer.duplicate("http://a/", 0);
        answer.error("nope", &ApiError::bad_request("invalid_url", "bad"));
        let (chunks, len) = answer.finish();
        let whole: Vec<u8> = chunks.concat();
        assert_eq!(whole.len() as u64, len);
        let parsed: serde_json::Value = serde_json::from_slice(&whole).expect("JSON");
        let results = &parsed["results"];
        assert_eq!(results[0]["url"], "http://a/\"q\"");
        assert_eq!(results[0]["data"]["title"], "t");
        assert_eq!(results[1]["status"], "stored");
        assert!(results[1].get("data").is_none());
        assert_eq!(results[2]["same_as"], 0);
        assert_eq!(results[3]["error"]["code"], "invalid_url");
    }
}
