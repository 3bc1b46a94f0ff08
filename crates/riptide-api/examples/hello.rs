//! The load test's reference: a plain axum hello-world with nothing in front of it.
//!
//! `scripts/loadtest.sh` runs it beside `riptide` on the same cores, so cached `/extract`
//! throughput is stated as a ratio against it (DESIGN.md: ≥ 50%).
//!
//! `cargo run --release -p riptide-api --example hello -- 127.0.0.1:8090`

use std::net::SocketAddr;

use axum::Router;
use axum::routing::{get, post};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".to_owned())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // POST too, so the load generator can send the same request shape to both servers.
    let app = Router::new()
        .route("/", get(hello).post(hello))
        .route("/extract", post(hello));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("hello listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}

async fn hello() -> &'static str {
    "Hello, World!"
}
