//! A tiny static site for the load test and the quickstart test: serves the files of a
//! directory (default `crates/riptide-api/tests/fixtures`) as `text/html`, so `riptide`
//! has a local page to extract without touching the internet.
//!
//! `cargo run --release -p riptide-api --example pages -- 127.0.0.1:8091 DIR`

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:8091".to_owned())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let root = PathBuf::from(
        args.next()
            .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures").to_owned()),
    );
    let app = Router::new()
        .route("/{*file}", get(serve_file))
        .with_state(Arc::new(root));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("pages listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}

async fn serve_file(State(root): State<Arc<PathBuf>>, UrlPath(file): UrlPath<String>) -> Response {
    // Only plain relative names: no `..`, no absolute paths.
    let relative = Path::new(&file);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return StatusCode::NOT_FOUND.into_response();
    }
    match tokio::fs::read(root.join(relative)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], bytes).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
