//! How fetch and cache failures of the tenant routes are answered.
//!
//! | extraction error (`ExtractError::kind`) | status |
//! |---|---|
//! | `invalid_url`, `blocked_address` | 400 |
//! | `dns_failure`, `upstream_unreachable`, `upstream_status`, `too_many_redirects`, `decode_failed` | 502 |
//! | `upstream_timeout` | 504 |
//! | `not_html` | 415 |
//! | `page_too_large` | 413 |
//! | `page_too_complex` | 422 |
//! | `queue_full` | 429, `Retry-After: 1` |
//! | `extraction_unavailable` | 503 |
//!
//! The error code in the body is the kind itself. The message is the error's own, but
//! for `decode_failed` and `extraction_unavailable`, whose text comes from a parser or
//! from starting a worker process: those say what failed in a fixed sentence, and the
//! detail is logged. A URL refused before fetching is never quoted back
//! ([`invalid_url`]): it may be a megabyte long. A fetch that failed for the caller
//! whose load another caller was waiting on reaches that waiter as the same typed
//! error (`CacheError::load_error`), so both answer with the same status and code.

use axum::http::StatusCode;
use riptide_extract::{ExtractError, UrlError};
use riptide_persistence::CacheError;

use crate::error::ApiError;

/// 400 `invalid_url` for a URL `normalize_url` refused. The URL itself is not quoted;
/// a refused scheme is, cut short.
pub fn invalid_url(e: &UrlError) -> ApiError {
    let message = match e {
        UrlError::Parse(why) => format!("not a valid URL: {why}"),
        UrlError::Scheme(scheme) => format!(
            "unsupported scheme {:?}: only http and https",
            crate::error::clip(scheme.clone(), 32)
        ),
        UrlError::Credentials => e.to_string(),
    };
    ApiError::bad_request("invalid_url", message)
}

/// The answer to an extraction failure.
pub fn extract_error(e: &ExtractError) -> ApiError {
    from_kind(e.kind(), client_message(e))
}

/// What the client is told: the error's own message, except that a refused address is
/// not named (it would tell the caller how internal names resolve).
fn client_message(e: &ExtractError) -> String {
    match e {
        ExtractError::Blocked { host, .. } => {
            format!("refusing to fetch {host}: it resolves to a non-public address")
        }
        other => other.to_string(),
    }
}

/// The answer for an extraction failure of `kind`.
fn from_kind(kind: &str, message: String) -> ApiError {
    let upstream = |status, code| ApiError::Upstream {
        status,
        code,
        message: message.clone(),
    };
    match kind {
        "invalid_url" => ApiError::bad_request("invalid_url", message),
        "blocked_address" => ApiError::bad_request("blocked_address", message),
        "dns_failure" => upstream(StatusCode::BAD_GATEWAY, "dns_failure"),
        "upstream_unreachable" => upstream(StatusCode::BAD_GATEWAY, "upstream_unreachable"),
        "upstream_status" => upstream(StatusCode::BAD_GATEWAY, "upstream_status"),
        "too_many_redirects" => upstream(StatusCode::BAD_GATEWAY, "too_many_redirects"),
        "decode_failed" => {
            tracing::warn!(error = %message, "a page could not be decoded");
            ApiError::Upstream {
                status: StatusCode::BAD_GATEWAY,
                code: "decode_failed",
                message: "could not decode or extract the page".into(),
            }
        }
        "upstream_timeout" => upstream(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
        "not_html" => upstream(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_html"),
        "page_too_large" => ApiError::TooLarge {
            code: "page_too_large",
            message,
        },
        "page_too_complex" => ApiError::Unprocessable {
            code: "page_too_complex",
            message,
        },
        // A slot frees when a page of the tenant's finishes: typically well within a
        // second.
        "queue_full" => ApiError::Busy {
            message,
            retry_after_secs: 1,
        },
        "extraction_unavailable" => {
            tracing::error!(error = %message, "extraction workers unavailable");
            ApiError::Upstream {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "extraction_unavailable",
                message: "extraction is unavailable; retry shortly".into(),
            }
        }
        other => {
            tracing::error!(kind = other, error = %message, "extraction failed unexpectedly");
            ApiError::Internal
        }
    }
}

/// The answer to a cache failure of a tenant route.
pub fn cache_error(e: CacheError) -> ApiError {
    // A failed fetch, whether this request fetched or waited on the one that did.
    if let Some(fetch) = e.load_error::<ExtractError>() {
        return extract_error(fetch);
    }
    match e {
        CacheError::Invalid(invalid) => ApiError::bad_request("invalid_input", invalid.to_string()),
        CacheError::Store(store) => store.into(),
        CacheError::LoadTimeout { waited_ms, .. } => ApiError::Upstream {
            status: StatusCode::GATEWAY_TIMEOUT,
            code: "upstream_timeout",
            message: format!(
                "another request's fetch of this URL did not finish within {waited_ms} ms"
            ),
        },
        other => {
            tracing::error!(error = %other, "cache failure");
            ApiError::Internal
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn answer(e: &ExtractError) -> (u16, &'static str) {
        let api = extract_error(e);
        (api.status().as_u16(), api.code())
    }

    #[test]
    fn each_kind_has_its_status() {
        let cases = [
            (ExtractError::InvalidUrl("x".into()), 400),
            (
                ExtractError::Blocked {
                    host: "h".into(),
                    address: "10.0.0.1".into(),
                },
                400,
            ),
            (ExtractError::Dns { host: "h".into() }, 502),
            (ExtractError::Unreachable("refused".into()), 502),
            (ExtractError::Timeout { after_ms: 5 }, 504),
            (ExtractError::TooManyRedirects { limit: 5 }, 502),
            (ExtractError::UpstreamStatus { status: 404 }, 502),
            (
                ExtractError::NotHtml {
                    content_type: "application/json".into(),
                },
                415,
            ),
            (ExtractError::TooLarge { limit: 1024 }, 413),
            (ExtractError::Decode("bad".into()), 502),
            (ExtractError::TooComplex("deep".into()), 422),
            (ExtractError::QueueFull { stage: "fetch" }, 429),
            (ExtractError::Unavailable("gone".into()), 503),
        ];
        for (e, status) in cases {
            assert_eq!(answer(&e), (status, e.kind()), "{e:?}");
        }
    }

    #[test]
    fn a_refused_address_is_not_echoed() {
        let e = ExtractError::Blocked {
            host: "intranet".into(),
            address: "10.1.2.3".into(),
        };
        let message = extract_error(&e).to_string();
        assert!(
            message.contains("intranet") && !message.contains("10.1.2.3"),
            "{message}"
        );
    }

    #[test]
    fn a_waiter_gets_the_leaders_answer() {
        let leader: riptide_persistence::cache::LoadError =
            Arc::new(ExtractError::Timeout { after_ms: 250 });
        let shared = CacheError::LoadFailed {
            key: "k".into(),
            source: leader,
        };
        let api = cache_error(shared);
        assert_eq!(
            (api.status().as_u16(), api.code()),
            (504, "upstream_timeout")
        );
        assert!(api.to_string().contains("250 ms"), "{api}");
    }
}
