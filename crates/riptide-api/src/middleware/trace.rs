//! The tracing span of a request.

use axum::extract::Request;
use tracing::Span;

/// A span with the method, the path (not the query, which may carry secrets) and the
/// request id set by the request-id layer.
pub fn request_span(request: &Request) -> Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        http.method = %request.method(),
        http.path = request.uri().path(),
        request.id = request_id,
    )
}
