//! Counts and times every request: `http_requests_total` and
//! `http_request_duration_seconds`, labelled by method, route template and status.
//!
//! The metric handles of each (method, route, status) are registered once and kept in
//! [`HttpMetrics`], so a request costs no label formatting and no registry lookup.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram};

/// Label of a request that matched no route (the 404 fallback).
const UNMATCHED: &str = "unmatched";

/// The registered handles of one series.
struct Series {
    method: &'static str,
    status: u16,
    requests: Counter,
    duration: Histogram,
}

/// The handles of the series seen so far, by route template. The label set is bounded
/// (route templates, known methods, statuses), so this never grows past it.
#[derive(Default)]
pub struct HttpMetrics {
    routes: RwLock<HashMap<Arc<str>, Vec<Series>>>,
}

impl HttpMetrics {
    /// An empty set of handles, shared by the middleware of one router.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Counts one request and records its duration.
    fn observe(&self, method: &'static str, route: &str, status: u16, seconds: f64) {
        {
            let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(series) = find(routes.get(route), method, status) {
                series.requests.increment(1);
                series.duration.record(seconds);
                return;
            }
        }
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        let list = routes.entry(Arc::from(route)).or_default();
        if find(Some(&*list), method, status).is_none() {
            let labels = [
                ("method", method.to_owned()),
                ("route", route.to_owned()),
                ("status", status.to_string()),
            ];
            list.push(Series {
                method,
                status,
                requests: metrics::counter!("http_requests_total", &labels),
                duration: metrics::histogram!("http_request_duration_seconds", &labels),
            });
        }
        if let Some(series) = find(Some(&*list), method, status) {
            series.requests.increment(1);
            series.duration.record(seconds);
        }
    }
}

fn find<'a>(list: Option<&'a Vec<Series>>, method: &str, status: u16) -> Option<&'a Series> {
    list?
        .iter()
        .find(|s| s.status == status && s.method == method)
}

/// Records one request once its response is ready.
pub async fn record(
    State(metrics): State<Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    // A clone of the matched path is a reference count, not a copy.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    metrics.observe(
        method,
        route.as_ref().map_or(UNMATCHED, MatchedPath::as_str),
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
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
    use axum::middleware::from_fn_with_state;
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
            .layer(from_fn_with_state(HttpMetrics::new(), record))
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
