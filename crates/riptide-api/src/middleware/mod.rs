//! The middleware stack, composed in one place.
//!
//! Outermost first: a request id is assigned (or the client's `X-Request-Id` kept), the
//! request gets a tracing span carrying it, the id is echoed on the response, an error
//! answer that is not the JSON error body becomes one ([`json_errors`]), the request
//! is counted and timed, a panic becomes a 500, a slow request a 503, and a slow request
//! body a 408.
//!
//! The stack is applied with `Router::layer`, so it runs after routing: the metrics see
//! the matched route template (`/healthz`), never the raw path, which keeps their label
//! set bounded.

pub mod body_timeout;
pub mod catch_panic;
pub mod json_errors;
pub mod request_id;
pub mod request_metrics;
pub mod tenant;
pub mod timeout;
pub mod trace;

use axum::Router;
use axum::middleware::{from_fn_with_state, map_response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::config::ServerConfig;

/// Wraps every route of `router` (and its fallbacks) in the stack.
pub fn apply(router: Router, server: &ServerConfig) -> Router {
    router.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(
                request_id::SequentialRequestId::new(),
            ))
            .layer(TraceLayer::new_for_http().make_span_with(trace::request_span))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(map_response(json_errors::ensure_json))
            .layer(from_fn_with_state(
                request_metrics::HttpMetrics::new(),
                request_metrics::record,
            ))
            .layer(CatchPanicLayer::custom(catch_panic::internal_error))
            .layer(from_fn_with_state(server.request_timeout(), timeout::limit))
            .layer(from_fn_with_state(
                server.body_read_timeout(),
                body_timeout::limit,
            )),
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::Path;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn answer(router: Router, uri: &str) -> (StatusCode, bool, serde_json::Value) {
        let request = Request::builder()
            .uri(uri)
            .body(Body::empty())
            .expect("request");
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status();
        let has_id = response.headers().contains_key("x-request-id");
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
        (status, has_id, body)
    }

    #[tokio::test]
    async fn a_panic_under_the_whole_stack_is_a_500_without_its_text() {
        async fn boom() -> &'static str {
            panic!("db password is hunter2")
        }
        let router = apply(
            Router::new().route("/boom", get(boom)),
            &ServerConfig::default(),
        );
        let (status, has_id, body) = answer(router, "/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(has_id);
        assert_eq!(body["error"]["code"], "internal");
        assert!(!body.to_string().contains("hunter2"), "{body}");
    }

    #[tokio::test]
    async fn an_extractor_rejection_is_json_and_quotes_nothing() {
        async fn by_number(Path(n): Path<u32>) -> String {
            n.to_string()
        }
        let router = apply(
            Router::new().route("/n/{n}", get(by_number)),
            &ServerConfig::default(),
        );
        let (status, has_id, body) = answer(router, "/n/secret-input").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(has_id);
        assert_eq!(body["error"]["code"], "invalid_request");
        assert!(!body.to_string().contains("secret"), "{body}");
    }
}
