//! The one error type of the HTTP edge, and its JSON form.
//!
//! Every error response has the body `{"error":{"code":"...","message":"..."}}`. The
//! `code` is stable and machine-readable; the `message` is for people and never carries
//! internal details: those are logged here, once, with the cause. A message is also
//! never longer than [`MAX_MESSAGE_BYTES`], so input quoted in it (a field name, a
//! value of the wrong type) cannot make an answer as large as the request.

use axum::Json;
use axum::http::header::{CONNECTION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use riptide_persistence::StoreError;
use riptide_persistence::tenant::TenantError;
use serde_json::json;

/// Longest `message` sent, in bytes; longer ones are cut at a character boundary and
/// end in `…`.
pub const MAX_MESSAGE_BYTES: usize = 300;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No route matches the path.
    #[error("no route for this path")]
    NotFound,
    /// The path exists but not for this method.
    #[error("method not allowed for this path")]
    MethodNotAllowed,
    /// The request did not finish within `server.request_timeout_ms`.
    #[error("the request did not finish within {timeout_ms} ms")]
    Timeout {
        /// The limit that was hit.
        timeout_ms: u64,
    },
    /// 408: the request body did not arrive whole within `server.body_read_timeout_ms`.
    /// The connection is closed after the answer (`Connection: close`): the rest of the
    /// body may still be on its way.
    #[error("the request body did not arrive within {timeout_ms} ms")]
    BodyTimeout {
        /// The limit that was hit.
        timeout_ms: u64,
    },
    /// 503: the server already holds `server.max_connections` connections. Written as
    /// canned bytes by [`crate::server`] without reading the request, with
    /// `Retry-After: 1` and `Connection: close`; never returned by a handler.
    #[error("the server is at its limit of {max} open connections; retry shortly")]
    TooManyConnections {
        /// The limit in force.
        max: usize,
    },
    /// 429: this client address made more failed authentications than
    /// `server.auth_failure_limit` per `server.auth_failure_window_ms`; refused before
    /// any credential is checked, with `Retry-After`.
    #[error("too many failed authentications from this address: retry after {retry_after_secs} s")]
    TooManyAuthFailures {
        /// Seconds until one more attempt is admitted.
        retry_after_secs: u64,
    },
    /// The store did not answer; the operation cannot degrade.
    #[error("the store is unavailable")]
    StoreUnavailable(#[source] StoreError),
    /// 503 from `/readyz`: the store no longer holds the identity this instance adopted
    /// at start, so it was wiped or replaced (see
    /// [`riptide_persistence::store::identity`]).
    #[error(
        "the store no longer holds the identity this instance started with ({found}): it was \
         wiped or replaced; restart the instances once it is the store to use"
    )]
    StoreIdentityLost {
        /// What the store holds instead: `missing` or `replaced`.
        found: &'static str,
    },
    /// 503 `audit_unavailable`: the audit log cannot take a record (its head was lost or
    /// rolled back), so an admin change is refused before anything changes.
    #[error("{0}")]
    AuditUnavailable(String),
    /// 503 from `/readyz`: after a reconnect, a Redis node's `maxmemory-policy` can evict
    /// keys without a TTL and `persistence.redis.allow_evicting_policy` is false.
    #[error("the store may evict keys without a TTL: {0}")]
    StoreEvictingPolicy(String),
    /// 431: the request head is over `server.max_header_bytes` or has more header fields
    /// than hyper reads. Written by [`crate::server`] in place of hyper's own empty
    /// answer, before any request exists (so without `X-Request-Id`); never returned by
    /// a handler.
    #[error("the request head is larger than {max_bytes} bytes or has too many header fields")]
    HeaderTooLarge {
        /// `server.max_header_bytes`.
        max_bytes: usize,
    },
    /// 414: the request target is longer than hyper reads (64 KiB). Written as
    /// [`ApiError::HeaderTooLarge`] is.
    #[error("the request target (URI) is too long")]
    UriTooLong,
    /// 400: the request head is not HTTP/1 (a malformed request line, a header name or
    /// value with bytes HTTP does not allow, conflicting body lengths). Written as
    /// [`ApiError::HeaderTooLarge`] is.
    #[error("the request head is malformed")]
    MalformedRequest,
    /// 415: a JSON route was sent a body with a `Content-Type` that is not JSON.
    #[error("{message}")]
    UnsupportedMediaType {
        /// What was sent and what is accepted.
        message: String,
    },
    /// A bug (a handler panicked). Details are in the log, not in the response.
    #[error("internal error")]
    Internal,
    /// 400: the request is malformed or a value is out of range.
    #[error("{message}")]
    BadRequest {
        /// Stable code, e.g. `invalid_json`, `missing_tenant_header`.
        code: &'static str,
        /// What was wrong, for people.
        message: String,
    },
    /// 401: no credentials, or credentials that identify nobody.
    #[error("{message}")]
    Unauthorized {
        /// What was wrong, for people (never the presented secret).
        message: String,
    },
    /// 403: the caller is known but may not do this.
    #[error("{message}")]
    Forbidden {
        /// Stable code, e.g. `tenant_mismatch`, `tenant_suspended`, `access_denied`.
        code: &'static str,
        /// Why, for people.
        message: String,
    },
    /// 404: a named thing (tenant, key, session, checkpoint, job) does not exist.
    #[error("{what} {id:?} not found")]
    Missing {
        /// What was looked for: `tenant`, `session`...
        what: &'static str,
        /// The id that was looked for.
        id: String,
    },
    /// 409: the request conflicts with the current state.
    #[error("{message}")]
    Conflict {
        /// Stable code, e.g. `already_exists`.
        code: &'static str,
        /// Why, for people.
        message: String,
    },
    /// 422: the request is well-formed but what it names cannot be used (a corrupt
    /// checkpoint).
    #[error("{message}")]
    Unprocessable {
        /// Stable code, e.g. `invalid_checkpoint`.
        code: &'static str,
        /// Why, for people.
        message: String,
    },
    /// 413: a body (request or fetched page) is larger than allowed.
    #[error("{message}")]
    TooLarge {
        /// Stable code, e.g. `body_too_large`.
        code: &'static str,
        /// Which limit, for people.
        message: String,
    },
    /// 429 from the rate limit, with `Retry-After` and `RateLimit-*` headers.
    #[error("rate limit exceeded: retry after {retry_after_secs} s")]
    RateLimited {
        /// Requests per minute allowed.
        limit: u64,
        /// Requests left in the current window (0 here).
        remaining: u64,
        /// Seconds until the window is full again.
        reset_secs: u64,
        /// Seconds until one request would be admitted.
        retry_after_secs: u64,
    },
    /// 429 from a quota other than the rate (transfer per month, memory, storage).
    #[error("quota exceeded for {resource}: limit {limit}, current {current}")]
    QuotaExceeded {
        /// The resource whose quota is used up.
        resource: String,
        /// Its limit.
        limit: u64,
        /// What is in use.
        current: u64,
        /// When a retry can succeed, if known.
        retry_after_secs: Option<u64>,
    },
    /// 429: the tenant already has as many pages waiting to be fetched or extracted as
    /// `extract.max_queued_per_tenant` allows; refused at once, with `Retry-After`.
    #[error("{message}")]
    Busy {
        /// What is full, for people.
        message: String,
        /// Seconds after which a retry may find room.
        retry_after_secs: u64,
    },
    /// A failure of the fetched site or the way to it (502, 504, 415...), or of this
    /// service's extraction workers (503 `extraction_unavailable`).
    #[error("{message}")]
    Upstream {
        /// The status answered.
        status: StatusCode,
        /// Stable code, e.g. `upstream_timeout`, `not_html`.
        code: &'static str,
        /// What happened, for people.
        message: String,
    },
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A 400 with `code` and `message`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A 403 with `code` and `message`.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Forbidden {
            code,
            message: message.into(),
        }
    }

    /// A 401 with `message`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::Unauthorized {
            message: message.into(),
        }
    }

    /// A 404 for the `what` named `id`.
    pub fn missing(what: &'static str, id: impl Into<String>) -> Self {
        ApiError::Missing {
            what,
            id: id.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound | ApiError::Missing { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Timeout { .. }
            | ApiError::StoreUnavailable(_)
            | ApiError::StoreIdentityLost { .. }
            | ApiError::StoreEvictingPolicy(_)
            | ApiError::AuditUnavailable(_)
            | ApiError::TooManyConnections { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::BadRequest { .. } | ApiError::MalformedRequest => StatusCode::BAD_REQUEST,
            ApiError::HeaderTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::UriTooLong => StatusCode::URI_TOO_LONG,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited { .. }
            | ApiError::QuotaExceeded { .. }
            | ApiError::TooManyAuthFailures { .. }
            | ApiError::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Upstream { status, .. } => *status,
        }
    }

    /// The stable code in the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound | ApiError::Missing { .. } => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Timeout { .. } => "timeout",
            ApiError::BodyTimeout { .. } => "body_timeout",
            ApiError::TooManyConnections { .. } => "too_many_connections",
            ApiError::TooManyAuthFailures { .. } => "too_many_auth_failures",
            ApiError::Busy { .. } => "queue_full",
            ApiError::StoreUnavailable(_) => "store_unavailable",
            ApiError::StoreIdentityLost { .. } => "store_identity_lost",
            ApiError::StoreEvictingPolicy(_) => "store_evicting_policy",
            ApiError::AuditUnavailable(_) => "audit_unavailable",
            ApiError::Internal => "internal",
            ApiError::HeaderTooLarge { .. } => "header_too_large",
            ApiError::UriTooLong => "uri_too_long",
            ApiError::MalformedRequest => "malformed_request",
            ApiError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::QuotaExceeded { .. } => "quota_exceeded",
            ApiError::BadRequest { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unprocessable { code, .. }
            | ApiError::TooLarge { code, .. }
            | ApiError::Upstream { code, .. } => code,
        }
    }

    /// The message a client is sent: the `Display` text, cut to [`MAX_MESSAGE_BYTES`].
    pub fn message(&self) -> String {
        clip(self.to_string(), MAX_MESSAGE_BYTES)
    }

    /// The JSON body: `{"error":{"code","message"}}`.
    pub fn body(&self) -> serde_json::Value {
        json!({ "error": { "code": self.code(), "message": self.message() } })
    }
}

/// `text` cut to at most `max` bytes (the cut marked with `…`), at a character boundary.
pub fn clip(mut text: String, max: usize) -> String {
    const MARK: &str = "…";
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(MARK);
    text
}

impl From<TenantError> for ApiError {
    fn from(e: TenantError) -> Self {
        match e {
            TenantError::Invalid(_) | TenantError::InvalidField { .. } => {
                ApiError::bad_request("invalid_input", e.to_string())
            }
            TenantError::Store(store) => ApiError::from(store),
            TenantError::NotFound { what, id } => ApiError::Missing { what, id },
            TenantError::AlreadyExists(_) => ApiError::Conflict {
                code: "already_exists",
                message: e.to_string(),
            },
            TenantError::Conflict(_) => ApiError::Conflict {
                code: "conflict",
                message: e.to_string(),
            },
            TenantError::QuotaExceeded {
                resource,
                limit,
                current,
                retry_after,
            } => ApiError::QuotaExceeded {
                resource,
                limit,
                current,
                retry_after_secs: retry_after.map(|d| d.as_millis().div_ceil(1000) as u64),
            },
            TenantError::Suspended(_) => ApiError::forbidden("tenant_suspended", e.to_string()),
            TenantError::AccessDenied(_) => ApiError::forbidden("access_denied", e.to_string()),
            TenantError::MultiTenancyDisabled => ApiError::Conflict {
                code: "multi_tenancy_disabled",
                message: e.to_string(),
            },
            TenantError::BillingDisabled => ApiError::Conflict {
                code: "billing_disabled",
                message: e.to_string(),
            },
            TenantError::AuditUnavailable(_) => ApiError::AuditUnavailable(e.to_string()),
            TenantError::InvalidApiKey => ApiError::unauthorized("invalid API key"),
            TenantError::InvalidToken(_) => ApiError::unauthorized(e.to_string()),
            TenantError::Crypto(_) | TenantError::Corrupt { .. } => {
                tracing::error!(error = %e, "tenant layer failure");
                ApiError::Internal
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => ApiError::StoreUnavailable(e),
            StoreError::OverBudget { .. } => ApiError::TooLarge {
                code: "over_budget",
                message: e.to_string(),
            },
            StoreError::Backend(_) | StoreError::Config(_) => {
                tracing::error!(error = %e, "store failure");
                ApiError::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::StoreUnavailable(cause) => {
                tracing::warn!(error = %cause, "store unavailable");
            }
            ApiError::Timeout { timeout_ms } => tracing::warn!(timeout_ms, "request timed out"),
            _ => {}
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::RateLimited {
                limit,
                remaining,
                reset_secs,
                retry_after_secs,
            } => {
                headers.insert(RETRY_AFTER, HeaderValue::from(*retry_after_secs));
                headers.insert("ratelimit-limit", HeaderValue::from(*limit));
                headers.insert("ratelimit-remaining", HeaderValue::from(*remaining));
                headers.insert("ratelimit-reset", HeaderValue::from(*reset_secs));
            }
            ApiError::QuotaExceeded {
                retry_after_secs: Some(secs),
                ..
            } => {
                headers.insert(RETRY_AFTER, HeaderValue::from(*secs));
            }
            ApiError::Unauthorized { .. } => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyAuthFailures { retry_after_secs }
            | ApiError::Busy {
                retry_after_secs, ..
            } => {
                headers.insert(RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::TooManyConnections { .. } => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            ApiError::BodyTimeout { .. } => {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(err: ApiError) -> (StatusCode, serde_json::Value) {
        let response = err.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("JSON body"))
    }

    #[tokio::test]
    async fn every_error_is_a_json_body_with_code_and_message() {
        let cases = [
            (ApiError::NotFound, 404, "not_found"),
            (ApiError::MethodNotAllowed, 405, "method_not_allowed"),
            (ApiError::Timeout { timeout_ms: 5 }, 503, "timeout"),
            (
                ApiError::StoreUnavailable(StoreError::Unavailable("refused".into())),
                503,
                "store_unavailable",
            ),
            (ApiError::Internal, 500, "internal"),
            (ApiError::BodyTimeout { timeout_ms: 5 }, 408, "body_timeout"),
            (
                ApiError::TooManyConnections { max: 5 },
                503,
                "too_many_connections",
            ),
            (
                ApiError::TooManyAuthFailures {
                    retry_after_secs: 3,
                },
                429,
                "too_many_auth_failures",
            ),
            (
                ApiError::Busy {
                    message: "full".into(),
                    retry_after_secs: 1,
                },
                429,
                "queue_full",
            ),
            (
                ApiError::HeaderTooLarge { max_bytes: 8192 },
                431,
                "header_too_large",
            ),
            (ApiError::UriTooLong, 414, "uri_too_long"),
            (ApiError::MalformedRequest, 400, "malformed_request"),
            (
                ApiError::UnsupportedMediaType {
                    message: "text/plain".into(),
                },
                415,
                "unsupported_media_type",
            ),
        ];
        for (err, status, code) in cases {
            let (got_status, body) = body_of(err).await;
            assert_eq!(got_status.as_u16(), status, "{code}");
            assert_eq!(body["error"]["code"], code);
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{body}"
            );
        }
    }

    #[test]
    fn refusals_carry_their_headers() {
        let throttled = ApiError::TooManyAuthFailures {
            retry_after_secs: 3,
        }
        .into_response();
        assert_eq!(throttled.headers()[RETRY_AFTER], "3");
        let body = ApiError::BodyTimeout { timeout_ms: 5 }.into_response();
        assert_eq!(body.headers()[CONNECTION], "close");
        let full = ApiError::TooManyConnections { max: 1 }.into_response();
        assert_eq!(full.headers()[RETRY_AFTER], "1");
        assert_eq!(full.headers()[CONNECTION], "close");
    }

    #[tokio::test]
    async fn long_messages_are_cut() {
        let err = ApiError::bad_request("invalid_request", "é".repeat(1024 * 1024));
        let (_, body) = body_of(err).await;
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.len() <= MAX_MESSAGE_BYTES, "{}", message.len());
        assert!(message.ends_with('…'), "{message}");
        assert_eq!(clip("short".into(), 10), "short");
        assert_eq!(clip("abcdef".into(), 5), "ab…");
    }

    #[tokio::test]
    async fn store_details_stay_out_of_the_response() {
        let err =
            ApiError::StoreUnavailable(StoreError::Unavailable("10.0.0.7:6379 refused".into()));
        let (_, body) = body_of(err).await;
        assert!(!body.to_string().contains("10.0.0.7"), "{body}");
    }
}
