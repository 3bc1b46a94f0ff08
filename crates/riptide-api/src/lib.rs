//! The RipTide service: an axum HTTP server over the persistence layer.
//!
//! [`run`] is the whole service; the `riptide` binary only parses the command line,
//! loads the [`config::AppConfig`], binds the listener and calls it. Tests call it the
//! same way, on port 0, or in its two steps ([`service::Service::build`], then
//! [`service::Service::serve`]) when they need to reach the managers in between.

pub mod cli;
pub mod live_config;
pub mod middleware;
pub mod openapi;
pub mod routes;
pub mod service;

// What the API runs on (configuration, state, warming, the server...), under the
// module paths it had when it lived in this crate.
pub use riptide_app::{
    EXTRACT_WORKER_COMMAND, admin, auth_failures, config, error, extraction, invalid, log_every,
    logging, recorder, server, shutdown, state, store_sanity, tenant_context, warming,
};

use std::future::Future;

use tokio::net::TcpListener;

use crate::config::AppConfig;
use crate::service::Service;

/// Runs the service on `listener` until `shutdown` completes; see [`Service::serve`].
///
/// Opens the store named by `persistence.redis.url` and starts the cache, tenant and
/// state managers and coordination over it first: any of them failing is an error
/// before anything is served. After the signal, in-flight requests drain, then the
/// persistence layer shuts down (sessions written out, usage flushed, final checkpoint
/// when configured, coordination left), both within `server.shutdown_timeout_ms`.
/// Returns an error when that deadline is missed or a shutdown step fails.
pub async fn run(
    config: AppConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    Service::build(config)
        .await?
        .serve(listener, shutdown)
        .await
}
