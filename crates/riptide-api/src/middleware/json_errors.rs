//! The last word on error answers: any 4xx or 5xx that is not already the JSON error
//! body becomes one.
//!
//! The service's own errors are [`crate::error::ApiError`]s and already JSON. What this catches is
//! an answer made by a library on our behalf: an axum extractor's rejection (a path
//! segment that is not valid UTF-8 once percent-decoded), a body limit's 413. Their
//! plain-text message may quote the input, so it is logged (under the request's span,
//! with its id) and never sent; the status stays, with a stable code per status.

use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::json;

/// Rewrites a non-JSON error answer as the JSON error body of its status.
pub async fn ensure_json(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let original = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    tracing::warn!(
        status = status.as_u16(),
        original = %String::from_utf8_lossy(&original),
        "a non-JSON error answer was replaced by the JSON error body"
    );
    let (code, message) = for_status(status);
    let body = json!({ "error": { "code": code, "message": message } });
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    parts.headers.remove(CONTENT_LENGTH);
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(bytes))
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The stable code and a message that quotes nothing, for `status`.
fn for_status(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::BAD_REQUEST => ("invalid_request", "the request is malformed"),
        StatusCode::NOT_FOUND => ("not_found", "no route for this path"),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "method not allowed for this path")
        }
        StatusCode::PAYLOAD_TOO_LARGE => ("body_too_large", "the request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "the request body has an unsupported media type",
        ),
        s if s.is_server_error() => ("internal", "internal error"),
        _ => ("request_refused", "the request was refused"),
    }
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;

    use super::*;
    use crate::error::ApiError;

    async fn rewritten(response: Response) -> (StatusCode, serde_json::Value) {
        let response = ensure_json(response).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("JSON"))
    }

    #[tokio::test]
    async fn plain_text_errors_become_json_without_their_text() {
        let cases = [
            (StatusCode::BAD_REQUEST, "invalid_request"),
            (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            (StatusCode::UNPROCESSABLE_ENTITY, "request_refused"),
            (StatusCode::BAD_GATEWAY, "internal"),
        ];
        for (status, code) in cases {
            let plain = (status, "Cannot parse `\u{1F4A3}secret` to a `String`").into_response();
            let (got, body) = rewritten(plain).await;
            assert_eq!(got, status);
            assert_eq!(body["error"]["code"], code, "{status}");
            assert!(!body.to_string().contains("secret"), "{body}");
        }
    }

    #[tokio::test]
    async fn json_errors_and_successes_pass_untouched() {
        let api = ApiError::bad_request("invalid_url", "bad").into_response();
        let (_, body) = rewritten(api).await;
        assert_eq!(body["error"]["code"], "invalid_url");
        let ok = ensure_json((StatusCode::OK, "plain").into_response()).await;
        let bytes = axum::body::to_bytes(ok.into_body(), 64)
            .await
            .expect("body");
        assert_eq!(&bytes[..], b"plain");
    }
}
