//! The service's lifecycle: [`Service::build`] opens the store and starts every manager
//! over it; [`Service::serve`] serves HTTP until the shutdown signal, lets in-flight
//! requests drain, then shuts the persistence layer down, all within
//! `server.shutdown_timeout_ms`.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::routing::get;
use riptide_persistence::state::{ConfigGeneration, ShutdownReport};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::AppConfig;
use crate::config::schema::ServiceSchema;
use crate::state::AppState;
use crate::{live_config, middleware, openapi, recorder, routes, server, store_sanity};

/// A built service, ready to serve.
pub struct Service {
    config: AppConfig,
    state: AppState,
    /// Subscribed at build time, so no generation applied before serving is missed.
    generations: watch::Receiver<Arc<ConfigGeneration>>,
}

impl Service {
    /// Opens the store named by `persistence.redis.url` and starts the managers over it.
    /// A store that cannot be opened, or a manager that cannot start (bad secrets, an
    /// invalid configuration directory), is an error before anything is served.
    pub async fn build(config: AppConfig) -> anyhow::Result<Self> {
        let metrics = recorder::install().context("installing the metrics recorder")?;
        let store = config
            .persistence
            .open_store(&config.persistence.redis.url)
            .await
            .context("opening the store")?;
        let state = AppState::build(&config, store, metrics).await?;
        let generations = state.state_manager.subscribe_config();
        Ok(Self {
            config,
            state,
            generations,
        })
    }

    /// The managers, as the handlers see them.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves on `listener` until `shutdown` completes. Then it stops accepting
    /// connections and lets in-flight requests finish, shuts the persistence layer down
    /// with what is left of `server.shutdown_timeout_ms` (at most
    /// `persistence.state.shutdown_timeout_ms`), logs the shutdown report and drops
    /// everything.
    ///
    /// Returns an error when in-flight requests outlive the deadline or a shutdown step
    /// fails (or runs out of time).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            config,
            state,
            generations,
        } = self;
        log_serving(&config, &state, &listener);

        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(recorder::run_upkeep(state.metrics.clone(), cancel.clone()));
        tasks.spawn(store_sanity::follow_reconnects(
            state.store_sanity.clone(),
            state.store().clone(),
            cancel.clone(),
        ));
        let schema = ServiceSchema::new(config.provenance.clone());
        tasks.spawn(live_config::follow(
            generations,
            live_config::components(&config, &state),
            schema,
            cancel.clone(),
        ));

        let described = axum::Router::new().route("/openapi.json", get(openapi::get_openapi));
        let app = middleware::apply(routes::router(state.clone(), described), &config.server);
        let deadline = config.server.shutdown_timeout();
        let signalled = Arc::new(OnceLock::new());
        let (draining_tx, draining_rx) = oneshot::channel();
        let graceful = {
            let signalled = signalled.clone();
            async move {
                shutdown.await;
                let _ = signalled.set(Instant::now());
                tracing::info!("draining in-flight requests");
                // The receiver lives until `serve` returns; nothing to do if it is gone.
                let _ = draining_tx.send(());
            }
        };
        let drained = tokio::select! {
            () = server::serve(listener, app, &config.server, graceful) => Ok(()),
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

        // The HTTP server is gone (and with it the router's copies of the state): the
        // persistence layer gets what is left of the deadline.
        let elapsed = signalled
            .get()
            .map_or(Duration::ZERO, |at: &Instant| at.elapsed());
        let state_limit = Duration::from_millis(config.persistence.state.shutdown_timeout_ms);
        let budget = deadline.saturating_sub(elapsed).min(state_limit);
        let report = state.shutdown(budget).await;
        log_report(&report, budget);
        drop(state);

        cancel.cancel();
        tasks.close();
        tasks.wait().await;
        tracing::info!("riptide stopped");
        drained?;
        if report.failed.is_empty() {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "shutdown steps failed: {}",
                failed_steps(&report).join("; ")
            ))
        }
    }
}

fn log_serving(config: &AppConfig, state: &AppState, listener: &TcpListener) {
    let listen = listener
        .local_addr()
        .map_or_else(|e| format!("unknown ({e})"), |addr| addr.to_string());
    // Opening the store created the directory, so it can be made absolute now.
    let data_dir = config.data_dir().map(|dir| {
        std::fs::canonicalize(&dir)
            .unwrap_or(dir)
            .display()
            .to_string()
    });
    let persistence = &config.persistence;
    tracing::info!(
        listen = %listen,
        store.kind = state.store().kind().as_str(),
        data_dir = data_dir.as_deref().unwrap_or("-"),
        instance.id = state.sync.id(),
        multi_tenancy = persistence.tenant.enabled,
        hot_reload = persistence.state.enable_hot_reload,
        config.watch_paths = ?persistence.state.config_watch_paths,
        version = env!("CARGO_PKG_VERSION"),
        "riptide serving"
    );
}

fn failed_steps(report: &ShutdownReport) -> Vec<String> {
    report
        .failed
        .iter()
        .map(|(step, why)| format!("{step}: {why}"))
        .collect()
}

fn log_report(report: &ShutdownReport, budget: Duration) {
    let checkpoint = report.checkpoint.as_deref().unwrap_or("-");
    let budget_ms = budget.as_millis() as u64;
    if report.failed.is_empty() {
        tracing::info!(
            shutdown.completed = ?report.completed,
            shutdown.checkpoint = checkpoint,
            duration_ms = report.duration_ms,
            budget_ms,
            "shutdown report: every step completed"
        );
    } else {
        tracing::error!(
            shutdown.completed = ?report.completed,
            shutdown.failed = ?failed_steps(report),
            shutdown.checkpoint = checkpoint,
            duration_ms = report.duration_ms,
            budget_ms,
            "shutdown report: some steps failed"
        );
    }
}
