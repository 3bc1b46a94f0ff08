//! A local site for the tests: an axum server on 127.0.0.1:0 serving the fixtures and
//! the misbehaviours an extractor must survive (slow, oversize, redirect loops, errors,
//! `/deep/{n}` nested `<div>`s and `/tiny/{n}` empty elements).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use riptide_extract::{ExtractConfig, Extractor, Url, WorkerProgram};

/// Body cap the tests' extractor uses.
pub const BODY_LIMIT: u64 = 16 * 1024;
/// Total timeout the tests' extractor uses.
pub const TIMEOUT_MS: u64 = 400;
/// Redirects the tests' extractor follows.
pub const MAX_REDIRECTS: u32 = 3;

/// A running fixture site.
pub struct Site {
    /// Where it listens.
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Site {
    /// Starts the site on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1").await
    }

    /// Starts the site on a free port of `ip` (any loopback address works on Linux).
    pub async fn start_on(ip: &str) -> Self {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let app = routes(addr, hits.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, hits }
    }

    /// `path` on this site, by IP.
    pub fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{path}", self.addr)).unwrap()
    }

    /// Requests the site has answered.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// The tests' config: small limits, loopback IPv4 allowed.
pub fn test_config() -> ExtractConfig {
    ExtractConfig {
        timeout_ms: TIMEOUT_MS,
        connect_timeout_ms: TIMEOUT_MS,
        max_redirects: MAX_REDIRECTS,
        max_body_bytes: BODY_LIMIT,
        allow_addresses: vec!["127.0.0.1/32".into()],
        ..ExtractConfig::default()
    }
}

/// The caller (tenant) the tests extract as.
pub const CALLER: &str = "test";

/// This crate's worker binary, which the tests' extractors run pages in, with `args`
/// (which it ignores: they tag a test's workers so the test can find them in `/proc`).
pub fn worker(args: &[&str]) -> WorkerProgram {
    WorkerProgram::new(env!("CARGO_BIN_EXE_riptide-extract-worker"), args)
}

/// An extractor with `cfg` and two workers.
pub async fn extractor_with(cfg: ExtractConfig) -> Extractor {
    tagged_extractor(cfg, "").await
}

/// An extractor with `cfg` and two workers started with the argument `tag`.
pub async fn tagged_extractor(cfg: ExtractConfig, tag: &str) -> Extractor {
    let cfg = ExtractConfig { workers: 2, ..cfg };
    Extractor::start(&cfg, worker(&[tag])).await.unwrap()
}

/// An extractor with [`test_config`].
pub async fn extractor() -> Extractor {
    extractor_with(test_config()).await
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn with_type(content_type: &'static str, body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn redirect(location: String) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// Filler HTML `len` bytes long.
fn filler(len: usize) -> Vec<u8> {
    let mut body = b"<html><body><p>".to_vec();
    body.resize(len, b'x');
    body
}

type Hits = Arc<AtomicUsize>;

fn routes(addr: SocketAddr, hits: Hits) -> Router {
    let port = addr.port();
    Router::new()
        .route(
            "/article",
            get(|| async { with_type("text/html; charset=utf-8", fixture("article.html")) }),
        )
        .route(
            "/blog/2024/links.html",
            get(|| async { with_type("text/html", fixture("links.html")) }),
        )
        .route(
            "/latin1",
            get(|| async { with_type("text/html", fixture("latin1-meta.html")) }),
        )
        .route(
            "/header-charset",
            get(|| async {
                with_type(
                    "text/html; charset=ISO-8859-1",
                    fixture("header-charset.html"),
                )
            }),
        )
        .route(
            "/xhtml",
            get(|| async { with_type("application/xhtml+xml", fixture("links.html")) }),
        )
        .route(
            "/data.json",
            get(|| async { with_type("application/json", fixture("data.json")) }),
        )
        .route(
            "/doc.pdf",
            get(|| async { with_type("application/pdf", fixture("doc.pdf")) }),
        )
        .route(
            "/untyped-html",
            get(|| async { Response::new(Body::from(fixture("links.html"))) }),
        )
        .route(
            "/untyped-pdf",
            get(|| async { Response::new(Body::from(fixture("doc.pdf"))) }),
        )
        .route(
            "/big-with-length",
            get(|| async { with_type("text/html", filler(4 * BODY_LIMIT as usize)) }),
        )
        .route("/big-streamed", get(big_streamed))
        .route(
            "/exactly-limit",
            get(|| async { with_type("text/html", filler(BODY_LIMIT as usize)) }),
        )
        .route("/slow", get(slow))
        .route("/slow-body", get(slow_body))
        .route(
            "/redirect/{n}",
            get(|Path(n): Path<u32>| async move {
                let next = if n == 0 {
                    "/article".to_owned()
                } else {
                    format!("/redirect/{}", n - 1)
                };
                redirect(next)
            }),
        )
        .route(
            "/to-private",
            get(|| async { redirect("http://10.0.0.1/admin".into()) }),
        )
        .route(
            "/to-metadata",
            get(|| async { redirect("http://169.254.169.254/latest/meta-data/".into()) }),
        )
        .route(
            "/to-localhost",
            get(move || async move { redirect(format!("http://localhost:{port}/echo-headers")) }),
        )
        .route(
            "/to-echo",
            get(|| async { redirect("/echo-headers".into()) }),
        )
        .route(
            "/to-file",
            get(|| async { redirect("file:///etc/passwd".into()) }),
        )
        .route("/no-location", get(|| async { StatusCode::FOUND }))
        .route(
            "/status/{code}",
            get(|Path(code): Path<u16>| async move {
                let status = StatusCode::from_u16(code).unwrap();
                (
                    status,
                    [(header::CONTENT_TYPE, "text/html")],
                    "<html><body><p>error page</p></body></html>",
                )
            }),
        )
        .route("/echo-headers", get(echo_headers))
        .route(
            "/deep/{n}",
            get(|Path(n): Path<usize>| async move {
                let page = format!(
                    "<html><body>{}<p>deep</p>{}</body></html>",
                    "<div>".repeat(n),
                    "</div>".repeat(n)
                );
                with_type("text/html", page.into_bytes())
            }),
        )
        .route(
            "/tiny/{n}",
            get(|Path(n): Path<usize>| async move {
                let page = format!("<html><body>{}</body></html>", "<b></b>".repeat(n));
                with_type("text/html", page.into_bytes())
            }),
        )
        .layer(axum::middleware::from_fn_with_state(hits, count))
}

async fn count(
    State(hits): State<Hits>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    hits.fetch_add(1, Ordering::SeqCst);
    next.run(req).await
}

async fn big_streamed() -> Response {
    let chunk = Bytes::from(vec![b'y'; 4096]);
    let chunks =
        (0..(BODY_LIMIT as usize / 4096 * 4)).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
    let body = Body::from_stream(futures::stream::iter(chunks));
    ([(header::CONTENT_TYPE, "text/html")], body).into_response()
}

async fn slow() -> Response {
    tokio::time::sleep(Duration::from_secs(10)).await;
    with_type("text/html", fixture("article.html"))
}

async fn slow_body() -> Response {
    let first = futures::stream::once(async {
        Ok::<_, std::io::Error>(Bytes::from_static(b"<html><body>"))
    });
    let rest = futures::stream::once(async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok::<_, std::io::Error>(Bytes::from_static(b"</body></html>"))
    });
    let body = Body::from_stream(futures::StreamExt::chain(first, rest));
    ([(header::CONTENT_TYPE, "text/html")], body).into_response()
}

/// A page listing the request headers the site received, one `<li>name: value</li>`
/// each.
async fn echo_headers(headers: HeaderMap) -> Response {
    let items: String = headers
        .iter()
        .map(|(name, value)| format!("<li>{name}: {}</li>", value.to_str().unwrap_or("?")))
        .collect();
    with_type(
        "text/html",
        format!("<html><body><ul>{items}</ul></body></html>").into_bytes(),
    )
}
