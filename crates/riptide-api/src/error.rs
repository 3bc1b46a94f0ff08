//! The one error type of the HTTP edge, and its JSON form.
//!
//! Every error response has the body `{"error":{"code":"...","message":"..."}}`. The
//! `code` is stable and machine-readable; the `message` is for people and never carries
//! internal details: those are logged here, once, with the cause.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use riptide_persistence::StoreError;
use serde_json::json;

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
    /// The store did not answer; the operation cannot degrade.
    #[error("the store is unavailable")]
    StoreUnavailable(#[source] StoreError),
    /// A bug (a handler panicked). Details are in the log, not in the response.
    #[error("internal error")]
    Internal,
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Timeout { .. } | ApiError::StoreUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code in the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Timeout { .. } => "timeout",
            ApiError::StoreUnavailable(_) => "store_unavailable",
            ApiError::Internal => "internal",
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
            ApiError::NotFound | ApiError::MethodNotAllowed | ApiError::Internal => {}
        }
        let body = json!({ "error": { "code": self.code(), "message": self.to_string() } });
        (self.status(), Json(body)).into_response()
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

    #[tokio::test]
    async fn store_details_stay_out_of_the_response() {
        let err =
            ApiError::StoreUnavailable(StoreError::Unavailable("10.0.0.7:6379 refused".into()));
        let (_, body) = body_of(err).await;
        assert!(!body.to_string().contains("10.0.0.7"), "{body}");
    }
}
