//! Counts and times every request: `http_requests_total` and
//! `http_request_duration_seconds`, labelled by method, route template and status.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// Label of a request that matched no route (the 404 fallback).
const UNMATCHED: &str = "unmatched";

/// Records one request once its response is ready.
pub async fn record(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The method, or `other` for extension methods: clients choose those freely, and every
/// distinct label value is a new time series.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|m| *m == method)
        .map_or("other", |m| m.as_str())
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::middleware::from_fn;
    use axum::routing::get;
    use metrics_exporter_prometheus::PrometheusBuilder;
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn extension_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(
            method_label(&Method::from_bytes(b"BREW").expect("method")),
            "other"
        );
    }

    /// Routes layered the way `middleware::apply` layers them: after routing.
    fn app() -> Router {
        let admin = Router::new().route("/tenants/{id}", get(|| async { "tenant" }));
        Router::new()
            .route("/items/{id}", get(|| async { "item" }))
            .nest("/admin", admin)
            .fallback(|| async { StatusCode::NOT_FOUND })
            .layer(from_fn(record))
    }

    async fn call(app: &Router, method: Method, path: &str) -> StatusCode {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .expect("request");
        app.clone()
            .oneshot(request)
            .await
            .expect("infallible")
            .status()
    }

    // The current-thread runtime keeps every poll on this thread, so the thread-local
    // recorder sees what the middleware records.
    #[tokio::test]
    async fn series_are_labelled_by_route_template_never_by_raw_path() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let _local = metrics::set_default_local_recorder(&recorder);
        let app = app();
        assert_eq!(call(&app, Method::GET, "/items/42").await, StatusCode::OK);
        assert_eq!(call(&app, Method::GET, "/items/43").await, StatusCode::OK);
        assert_eq!(
            call(&app, Method::GET, "/admin/tenants/acme").await,
            StatusCode::OK
        );
        assert_eq!(
            call(&app, Method::GET, "/no/such/path").await,
            StatusCode::NOT_FOUND
        );
        let text = handle.render();
        for series in [
            r#"http_requests_total{method="GET",route="/items/{id}",status="200"} 2"#,
            r#"http_requests_total{method="GET",route="/admin/tenants/{id}",status="200"} 1"#,
            r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
            r#"http_request_duration_seconds_count{method="GET",route="/items/{id}",status="200"} 2"#,
        ] {
            assert!(text.contains(series), "{series} missing from:\n{text}");
        }
        for raw in ["/items/42", "acme", "/no/such/path"] {
            assert!(!text.contains(raw), "raw path {raw} in a label:\n{text}");
        }
    }
}
