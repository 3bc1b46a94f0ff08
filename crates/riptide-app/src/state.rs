//! What every handler can reach: the persistence layer's managers over the one store
//! (cache, tenants, state, coordination) and the metrics handle.
//!
//! [`AppState::build`] starts them with [`Persistence::start_with_store`] (which wires
//! the layers together: see there), with the service's configuration schema for hot
//! reload, then the service's own parts over them: admin tokens and cache warming.
//! Its shutdown stops warming, then the persistence layer in order.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use riptide_extract::{Extractor, WorkerProgram};
use riptide_persistence::clock::{SharedClock, system_clock};
use riptide_persistence::state::{ShutdownReport, StateManager};
use riptide_persistence::sync::DistributedSync;
use riptide_persistence::tenant::{TenantManager, TenantMetrics};
use riptide_persistence::{Persistence, PersistentCacheManager, SharedStore, StartOptions};

use crate::config::AppConfig;
use crate::config::schema::ServiceSchema;

/// Shared, cheaply cloned application state: one `Arc`, so the clone every `State`
/// extractor and layer makes per request is one atomic increment. Its fields are
/// [`AppStateInner`]'s, reached through `Deref` (`state.cache`).
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

/// What [`AppState`] shares: the managers and handles every handler can reach.
pub struct AppStateInner {
    /// The tenant-scoped cache over the store opened at startup.
    pub cache: Arc<PersistentCacheManager>,
    /// Tenant records, quotas, usage, keys, encryption and audit.
    pub tenants: Arc<TenantManager>,
    /// What the tenant layer reports, kept for the admin API.
    pub tenant_metrics: Arc<RwLock<TenantMetrics>>,
    /// Configuration generations, checkpoints, sessions and the persistence shutdown.
    pub state_manager: Arc<StateManager>,
    /// Coordination with the other instances sharing the store.
    pub sync: Arc<DistributedSync>,
    /// Renders the process's metrics for `GET /metrics`.
    pub metrics: PrometheusHandle,
    /// What `GET /metrics` requires (`metrics.token`); `None`: it is open.
    pub metrics_token: Option<crate::config::metrics::MetricsToken>,
    /// Fetches pages and extracts their content for `/extract` and `/crawl`
    /// (configured by the `extract` section).
    pub extractor: Arc<Extractor>,
    /// Admin tokens: what `riptide_api::routes::admin::AdminCaller` authenticates against.
    pub admin_tokens: Arc<crate::admin::AdminTokens>,
    /// What one `POST /crawl` may ask for and answer.
    pub crawl: crate::config::CrawlConfig,
    /// Cache warming: access counts (`record_access`), the three tiers, warm jobs.
    pub warming: Arc<crate::warming::WarmingService>,
    /// Failed authentications per client address, checked before any credential.
    pub auth_failures: Arc<crate::auth_failures::AuthFailures>,
    /// The store identity adopted at start and the node checks since, for `/readyz`.
    pub store_sanity: Arc<crate::store_sanity::StoreSanity>,
}

/// The extractor of `config.extract`, its workers running `config.extract_worker` or
/// this executable's `extract-worker` subcommand.
async fn start_extractor(config: &AppConfig) -> anyhow::Result<Extractor> {
    let worker = match &config.extract_worker {
        Some(program) => program.clone(),
        None => WorkerProgram::current_exe(&[crate::EXTRACT_WORKER_COMMAND])
            .context("finding this executable to run extraction workers")?,
    };
    Extractor::start(&config.extract, worker)
        .await
        .context("starting the extractor and its workers")
}

impl AppState {
    /// Builds every manager over `store` from `config`. A manager that fails to start
    /// stops the ones already started before the error is returned.
    pub async fn build(
        config: &AppConfig,
        store: SharedStore,
        metrics: PrometheusHandle,
    ) -> anyhow::Result<Self> {
        let clock: SharedClock = system_clock();
        // First: a store that may lose records is refused before anything writes to it.
        let store_sanity = Arc::new(
            crate::store_sanity::StoreSanity::start(
                &*store,
                &*clock,
                config.persistence.redis.allow_evicting_policy,
            )
            .await?,
        );
        let extractor = Arc::new(start_extractor(config).await?);
        let tenant_metrics = TenantMetrics::new();
        tenant_metrics.set_billing_series(config.metrics.tenant_billing);
        let tenant_metrics = Arc::new(RwLock::new(tenant_metrics));
        let options = StartOptions {
            clock: clock.clone(),
            tenant_metrics: tenant_metrics.clone().into(),
            schema: Arc::new(ServiceSchema::new(config.provenance.clone())),
        };
        let persistence =
            Persistence::start_with_store(store.clone(), &config.persistence, options)
                .await
                .context("starting the persistence layer")?;
        // From here on a failure stops the persistence layer before it is returned.
        let started = async {
            let admin_tokens =
                crate::admin::start(&config.admin.token, store, &persistence.tenants)
                    .await
                    .context("starting the admin tokens")?;
            let warming = crate::warming::WarmingService::start(
                &config.warming,
                persistence.cache.clone(),
                persistence.tenants.clone(),
                persistence.sync.clone(),
                &persistence.state,
                clock.clone(),
            )
            .context("starting cache warming")?;
            anyhow::Ok((admin_tokens, warming))
        };
        let (admin_tokens, warming) = match started.await {
            Ok(started) => started,
            Err(e) => {
                persistence.shutdown(Duration::from_secs(1)).await;
                return Err(e);
            }
        };
        let Persistence {
            cache,
            tenants,
            sync,
            state: state_manager,
            ..
        } = persistence;
        warming.set_loader(Arc::new(
            crate::warming::extract_loader::ExtractPageLoader::new(extractor.clone()),
        ));
        Ok(Self(Arc::new(AppStateInner {
            cache,
            tenants,
            tenant_metrics,
            state_manager,
            sync,
            metrics,
            metrics_token: crate::config::metrics::MetricsToken::new(&config.metrics.token),
            extractor,
            crawl: config.crawl.clone(),
            admin_tokens,
            warming,
            auth_failures: Arc::new(crate::auth_failures::AuthFailures::new(
                &config.server,
                clock,
            )),
            store_sanity,
        })))
    }

    /// The store under the cache.
    pub fn store(&self) -> &SharedStore {
        self.cache.store()
    }

    /// The persistence layer's graceful shutdown within `deadline`: warming stopped and
    /// its access counts persisted, sessions written out, usage flushed, the final
    /// checkpoint (when configured), coordination left.
    /// Call it after the HTTP server has drained, so no request is still using them.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        // Warming first: its tasks stop and its access counts are persisted while the
        // store and coordination are still up, within a quarter of the deadline so an
        // unreachable store leaves time for the steps that follow.
        let started = std::time::Instant::now();
        let warming = self.warming.shutdown(deadline / 4).await;
        let left = deadline.saturating_sub(started.elapsed());
        let mut report = self.state_manager.shutdown(left).await;
        match warming {
            Ok(()) => report.completed.insert(0, "warming"),
            Err(e) => report.failed.insert(0, ("warming", e)),
        }
        report
    }
}
