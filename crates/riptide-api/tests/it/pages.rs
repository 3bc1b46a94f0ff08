//! The pages the tenant tests fetch: a local axum server on `127.0.0.1:0` serving
//! `tests/fixtures/`, never the internet. It counts the requests of each path and keeps
//! each path's last request headers, so tests can see how often a page was fetched and
//! what was sent with it.
//!
//! | path | answer |
//! |---|---|
//! | `/pages/{file}` (`?delay_ms=N`) | the fixture file as `text/html`, after N ms |
//! | `/status/{code}` | that status with a small HTML body |
//! | `/data.json` | a JSON document (not HTML) |
//! | `/slow` | HTML after 10 s |
//! | `/big` | 64 KiB of HTML |

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Seen {
    hits: Mutex<HashMap<String, u64>>,
    headers: Mutex<HashMap<String, HeaderMap>>,
}

/// A running page server; stops when dropped.
pub struct Pages {
    addr: SocketAddr,
    seen: Arc<Seen>,
    task: JoinHandle<()>,
}

impl Pages {
    /// Starts a page server on a free loopback port.
    pub async fn start() -> Self {
        let seen = Arc::new(Seen::default());
        let app = Router::new()
            .route("/pages/{file}", get(page))
            .route("/status/{code}", get(status))
            .route("/data.json", get(data))
            .route("/slow", get(slow))
            .route("/big", get(big))
            .layer(from_fn_with_state(seen.clone(), count));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind pages");
        let addr = listener.local_addr().expect("pages addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("page server");
        });
        Self { addr, seen, task }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests received for `path` (without its query).
    pub fn hits(&self, path: &str) -> u64 {
        let hits = self.seen.hits.lock().expect("hits");
        hits.get(path).copied().unwrap_or(0)
    }

    /// Header `name` of the last request for `path`.
    pub fn last_header(&self, path: &str, name: &str) -> Option<String> {
        let headers = self.seen.headers.lock().expect("headers");
        headers
            .get(path)?
            .get(name)
            .map(|v| v.to_str().expect("ASCII header").to_owned())
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn count(State(seen): State<Arc<Seen>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    *seen
        .hits
        .lock()
        .expect("hits")
        .entry(path.clone())
        .or_default() += 1;
    seen.headers
        .lock()
        .expect("headers")
        .insert(path, request.headers().clone());
    next.run(request).await
}

fn html(body: impl Into<String>) -> Response {
    ([(CONTENT_TYPE, "text/html; charset=utf-8")], body.into()).into_response()
}

#[derive(Deserialize)]
struct Delay {
    delay_ms: Option<u64>,
}

async fn page(Path(file): Path<String>, Query(delay): Query<Delay>) -> Response {
    if let Some(ms) = delay.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if file.contains("..") || file.contains('/') {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(&file);
    match tokio::fs::read_to_string(&path).await {
        Ok(text) => html(text),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn status(Path(code): Path<u16>) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = html(format!("<html><body><p>status {code}</p></body></html>"));
    *response.status_mut() = status;
    response
}

async fn data() -> Response {
    ([(CONTENT_TYPE, "application/json")], r#"{"not":"html"}"#).into_response()
}

async fn slow() -> Response {
    tokio::time::sleep(Duration::from_secs(10)).await;
    html("<html><body><p>late</p></body></html>")
}

async fn big() -> Response {
    let paragraph = "<p>".to_owned() + &"tide ".repeat(200) + "</p>";
    html(format!(
        "<html><body><article>{}</article></body></html>",
        paragraph.repeat(64)
    ))
}
