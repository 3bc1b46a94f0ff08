//! The RipTide service: an axum HTTP server over the persistence layer.
//!
//! [`run`] is the whole service; the `riptide` binary only parses the command line,
//! loads the [`config::AppConfig`], binds the listener and calls it. Tests call it the
//! same way, on port 0.

pub mod config;
pub mod error;
pub mod logging;
pub mod middleware;
pub mod recorder;
pub mod routes;
pub mod shutdown;
pub mod state;

use std::future::{Future, IntoFuture};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::AppConfig;
use crate::state::AppState;

/// Runs the service on `listener` until `shutdown` completes, then stops accepting
/// connections and lets in-flight requests finish within `server.shutdown_timeout_ms`.
///
/// Opens the store named by `persistence.redis.url` first: a store that cannot be opened is an error
/// before anything is served. Returns an error when in-flight requests outlive the
/// shutdown deadline.
pub async fn run(
    config: AppConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = recorder::install().context("installing the metrics recorder")?;
    let store = riptide_persistence::open_store(&config.persistence.redis.url, &config.persistence)
        .await
        .context("opening the store")?;
    let listen = listener
        .local_addr()
        .context("reading the listen address")?;
    // Opening the store created the directory, so it can be made absolute now.
    let data_dir = config.data_dir().map(|dir| {
        std::fs::canonicalize(&dir)
            .unwrap_or(dir)
            .display()
            .to_string()
    });
    tracing::info!(
        listen = %listen,
        store.kind = store.kind().as_str(),
        data_dir = data_dir.as_deref().unwrap_or("-"),
        version = env!("CARGO_PKG_VERSION"),
        "riptide serving"
    );

    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    tasks.spawn(recorder::run_upkeep(metrics.clone(), cancel.clone()));

    let state = AppState::new(store, config.persistence.cache.clone(), metrics)
        .context("building the cache")?;
    let app = middleware::apply(routes::router(state), &config.server);
    let (draining_tx, draining_rx) = oneshot::channel();
    let graceful = async move {
        shutdown.await;
        tracing::info!("draining in-flight requests");
        // The receiver lives until `run` returns; nothing to do if it is gone.
        let _ = draining_tx.send(());
    };
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(graceful)
        .into_future();
    let deadline = config.server.shutdown_timeout();
    let result = tokio::select! {
        served = server => served.context("serving HTTP"),
        () = async {
            if draining_rx.await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(deadline).await;
        } => Err(anyhow::anyhow!(
            "in-flight requests did not finish within server.shutdown_timeout_ms = {} ms",
            deadline.as_millis()
        )),
    };

    cancel.cancel();
    tasks.close();
    tasks.wait().await;
    tracing::info!("riptide stopped");
    result
}
