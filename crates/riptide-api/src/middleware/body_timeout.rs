//! Bounds a request body's upload: it must arrive whole within
//! `server.body_read_timeout_ms` of the handler starting to read it, or the request is
//! answered 408 `body_timeout` (JSON, `Connection: close`) and counted in
//! `http_connections_timed_out_total{timeout="body"}`.
//!
//! The deadline is for the whole body, not for each chunk: a client that sends one
//! byte just before each per-chunk timeout would otherwise hold the request for as long
//! as the body is long (`tower_http::timeout::RequestBodyTimeoutLayer` is per chunk).
//! The body fails with an error when the deadline passes; whatever the handler makes of
//! that error (a 400 from its body extractor, usually), the answer is replaced by the
//! 408, so the client learns what happened whichever handler it called.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;

use crate::error::ApiError;
use crate::server::metrics::TIMED_OUT;

/// Runs the rest of the stack with the request body under a deadline of `limit`.
pub async fn limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        // No body (a GET, `Content-Length: 0`): nothing to wait for.
        return next.run(request).await;
    }
    let expired = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(Deadline {
            body,
            limit,
            sleep: None,
            expired: expired.clone(),
        })
    });
    let response = next.run(request).await;
    if !expired.load(Ordering::Acquire) {
        return response;
    }
    metrics::counter!(TIMED_OUT, "timeout" => "body").increment(1);
    let timeout_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    tracing::debug!(timeout_ms, "request body timed out");
    ApiError::BodyTimeout { timeout_ms }.into_response()
}

/// A request body that fails once `limit` has passed since it was first polled.
struct Deadline {
    body: Body,
    limit: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    expired: Arc<AtomicBool>,
}

/// The error the handler sees when the deadline passes.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        // What has arrived is taken even at the deadline.
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let limit = this.limit;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::middleware::from_fn_with_state;
    use axum::routing::post;
    use futures::StreamExt;
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        async fn read(body: Bytes) -> String {
            format!("{} bytes", body.len())
        }
        Router::new()
            .route("/upload", post(read))
            .layer(from_fn_with_state(Duration::from_secs(1), limit))
    }

    /// A body of `chunks` chunks, one every `every`.
    fn dripping(chunks: usize, every: Duration) -> Body {
        let stream = futures::stream::iter(0..chunks).then(move |_| async move {
            tokio::time::sleep(every).await;
            Ok::<_, std::io::Error>(Bytes::from_static(b"x"))
        });
        Body::from_stream(stream)
    }

    async fn upload(body: Body) -> (StatusCode, String, Option<String>) {
        let request = Request::post("/upload").body(body).expect("request");
        let response = app().oneshot(request).await.expect("infallible");
        let status = response.status();
        let connection = response
            .headers()
            .get("connection")
            .map(|v| v.to_str().expect("ASCII").to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        (
            status,
            String::from_utf8_lossy(&bytes).into_owned(),
            connection,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_in_time_is_read_whole() {
        let (status, body, _) = upload(dripping(4, Duration::from_millis(200))).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "4 bytes"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_dripping_body_is_cut_at_the_whole_body_deadline() {
        // Each chunk comes well within a second; the whole body would take 3 s.
        let (status, body, connection) = upload(dripping(10, Duration::from_millis(300))).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body}");
        assert!(body.contains("\"body_timeout\""), "{body}");
        assert_eq!(connection.as_deref(), Some("close"));
    }
}
