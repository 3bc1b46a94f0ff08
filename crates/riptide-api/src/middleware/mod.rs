//! The middleware stack, composed in one place.
//!
//! Outermost first: a request id is assigned (or the client's `X-Request-Id` kept), the
//! request gets a tracing span carrying it, the id is echoed on the response, the request
//! is counted and timed, a panic becomes a 500, a slow request a 503, and a slow request
//! body a 408.
//!
//! The stack is applied with `Router::layer`, so it runs after routing: the metrics see
//! the matched route template (`/healthz`), never the raw path, which keeps their label
//! set bounded.

pub mod body_timeout;
pub mod catch_panic;
pub mod request_id;
pub mod request_metrics;
pub mod tenant;
pub mod timeout;
pub mod trace;

use axum::Router;
use axum::middleware::from_fn_with_state;
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
