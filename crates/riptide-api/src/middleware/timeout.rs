//! Bounds the time to a response: past `server.request_timeout_ms` the handler is
//! dropped and the client gets 503 `timeout`, as JSON like every other error (the
//! tower-http timeout layer answers with an empty body).

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Runs the rest of the stack with a deadline of `limit`.
pub async fn limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_elapsed) => {
            let timeout_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
            ApiError::Timeout { timeout_ms }.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::middleware::from_fn_with_state;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        async fn slow() -> &'static str {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "late"
        }
        async fn fast() -> &'static str {
            "quick"
        }
        Router::new()
            .route("/slow", get(slow))
            .route("/fast", get(fast))
            .layer(from_fn_with_state(Duration::from_millis(100), limit))
    }

    async fn call(path: &str) -> (StatusCode, String) {
        let request = Request::builder()
            .uri(path)
            .body(Body::empty())
            .expect("request");
        let response = app().oneshot(request).await.expect("infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_handler_gets_503_timeout() {
        let (status, body) = call("/slow").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.contains("\"timeout\"") && body.contains("100 ms"),
            "{body}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_handler_is_untouched() {
        assert_eq!(call("/fast").await, (StatusCode::OK, "quick".to_owned()));
    }
}
