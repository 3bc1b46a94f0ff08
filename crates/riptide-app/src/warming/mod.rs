//! Cache warming in three tiers (ADR-004), over the access counts of every tenant.
//!
//! [`WarmingService`] owns:
//! - the **access counter** ([`Popularity`]): `/extract` calls
//!   [`WarmingService::record_access`] for every request; counts are persisted every
//!   `warming.persist_interval_ms` and at shutdown, and loaded at start;
//! - **tier 1, startup** ([`scheduler`]): once the counts are loaded and a page loader is
//!   installed, the manual list and the top `warming.startup_top_n` pairs are warmed in
//!   the background (readiness does not wait);
//! - **tier 2, on demand** ([`jobs`]): `POST /admin/cache/warm` starts a job
//!   ([`WarmingService::prepare_job`], then [`PreparedJob::launch`]; see [`request`]);
//! - **tier 3, background** ([`scheduler`]): every `warming.interval_seconds`, on the
//!   instance holding the `cache-warming` lease, the analytics, tenant patterns and
//!   manual list ([`sources`]).
//!
//! Tiers 1 and 3 warm only while `persistence.cache.enable_warming` is on (tier 1 looks
//! when it would start, tier 3 at every run); tier 2 is refused while it is off.
//! Warming a (tenant, URL) pair stores exactly what `/extract` would, where it would
//! look: the [`PageLoader`] gives the cache key and the value, and the persistence
//! layer's cache warmer decides what is missing or near expiry ([`runner`]). Every task
//! is tracked and stops on [`WarmingService::shutdown`], which persists the counts one
//! last time.

pub mod config;
pub mod extract_loader;
pub mod jobs;
pub mod loader;
pub mod metrics;
pub mod progress;
pub mod request;
pub mod runner;
pub mod scheduler;
pub mod sources;
pub mod status;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use chrono::{DateTime, Utc};
use riptide_persistence::cache::CacheWarmer;
use riptide_persistence::cache::popularity::Popularity;
use riptide_persistence::clock::SharedClock;
use riptide_persistence::state::StateManager;
use riptide_persistence::sync::DistributedSync;
use riptide_persistence::tenant::TenantManager;
use riptide_persistence::{PersistentCacheManager, TenantId};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::WarmingConfig;
pub use jobs::{Job, JobView};
pub use loader::{PageLoader, SharedPageLoader};
pub use progress::{Failure, RunState, RunView};
pub use request::{PreparedJob, WarmRequest, WarmingError};
pub use sources::{CacheWarmingSource, Source};
pub use status::{BackgroundStatus, JobsStatus, PopularityStatus, WarmingStatus};

use self::jobs::Jobs;
use self::loader::{KeyedLoader, UrlRegistry};
use self::progress::Progress;
use self::runner::{BATCH, Runner};

/// The cache warming of one instance. See the module docs.
pub struct WarmingService {
    config: Arc<ArcSwap<WarmingConfig>>,
    runner: Runner,
    jobs: Jobs,
    startup: Progress,
    background: ArcSwapOption<Progress>,
    background_runs: std::sync::atomic::AtomicU64,
    loaded: watch::Sender<bool>,
    loader_installed: watch::Sender<bool>,
    last_persist: Mutex<Option<(DateTime<Utc>, usize)>>,
    sync: Arc<DistributedSync>,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl WarmingService {
    /// Builds the service over the managers and starts its tasks: loading and
    /// persisting the access counts, the startup tier (which waits for the counts and
    /// [`Self::set_loader`]) and the background tier; both warm only while
    /// `persistence.cache.enable_warming` is on (a live key). The state manager's
    /// checkpoints get the top `startup_top_n` pairs as their warm list.
    pub fn start(
        config: &WarmingConfig,
        cache: Arc<PersistentCacheManager>,
        tenants: Arc<TenantManager>,
        sync: Arc<DistributedSync>,
        state: &StateManager,
        clock: SharedClock,
    ) -> anyhow::Result<Arc<Self>> {
        metrics::describe();
        // Encrypted tenants' popular URLs are sealed in the store with their data key.
        let popularity = Arc::new(
            Popularity::new(cache.store().clone(), clock.clone(), config.popularity())?
                .with_sealing(tenants.data_keys().clone()),
        );
        let registry = Arc::new(UrlRegistry::default());
        let pages = Arc::new(ArcSwapOption::empty());
        cache.enable_warming(Arc::new(
            CacheWarmer::new(BATCH).with_loader(KeyedLoader::new(registry.clone(), pages.clone())),
        ));
        let startup = Progress::new(config.max_job_failures);
        let config = Arc::new(ArcSwap::from_pointee(config.clone()));
        {
            let (popularity, config) = (popularity.clone(), config.clone());
            state.set_warm_list_source(Box::new(move || {
                popularity
                    .top(config.load().startup_top_n)
                    .into_iter()
                    .map(|p| (Some(p.tenant_id.to_string()), p.url))
                    .collect()
            }));
        }
        let service = Arc::new(Self {
            config,
            runner: Runner {
                cache,
                tenants,
                popularity,
                registry,
                pages,
                clock,
            },
            jobs: Jobs::default(),
            startup,
            background: ArcSwapOption::empty(),
            background_runs: std::sync::atomic::AtomicU64::new(0),
            loaded: watch::Sender::new(false),
            loader_installed: watch::Sender::new(false),
            last_persist: Mutex::new(None),
            sync,
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        scheduler::spawn_persist_loop(&service);
        scheduler::spawn_startup(&service);
        scheduler::register_background(&service)?;
        Ok(service)
    }

    /// Counts one access of `url` (normalized) by `tenant`. Cheap: no store call, one
    /// short per-tenant lock.
    pub fn record_access(&self, tenant: &TenantId, url: &str) {
        self.runner.popularity.record_access(tenant, url);
    }

    /// The access counter.
    pub fn popularity(&self) -> &Arc<Popularity> {
        &self.runner.popularity
    }

    /// Installs (or replaces) what fetches and extracts pages for warming. The first
    /// installation lets the startup tier begin.
    pub fn set_loader(&self, loader: SharedPageLoader) {
        self.runner.pages.store(Some(Arc::new(loader)));
        self.loader_installed.send_replace(true);
    }

    /// Applies a reloaded `warming:` section. Live: every key but `top_k_per_tenant` and
    /// `max_tracked_tenants` (the counter's bounds), which take effect at the next start.
    pub fn apply(&self, next: &WarmingConfig) {
        let current = self.config.load();
        if **current == *next {
            return;
        }
        let popularity = self.runner.popularity.config();
        if next.popularity() != popularity {
            tracing::warn!(
                warming.top_k_per_tenant = next.top_k_per_tenant,
                warming.max_tracked_tenants = next.max_tracked_tenants,
                "warming.top_k_per_tenant and warming.max_tracked_tenants take effect at the next start"
            );
        }
        self.config.store(Arc::new(next.clone()));
        tracing::info!(
            warming.interval_seconds = next.interval_seconds,
            warming.manual_tenants = next.manual.len(),
            "warming settings applied"
        );
    }

    /// The settings in force.
    pub fn config(&self) -> Arc<WarmingConfig> {
        self.config.load_full()
    }

    /// The job `id`, unless unknown or no longer retained.
    pub fn job(&self, id: &str) -> Option<Arc<Job>> {
        let cfg = self.config.load();
        self.jobs.get(id, cfg.max_jobs, retention(&cfg))
    }

    /// Stops every warming task (running jobs end as failed), then persists the access
    /// counts one last time, all within `deadline`. Errors say what did not finish.
    pub async fn shutdown(&self, deadline: Duration) -> Result<(), String> {
        let started = Instant::now();
        self.cancel.cancel();
        self.tasks.close();
        if tokio::time::timeout(deadline, self.tasks.wait())
            .await
            .is_err()
        {
            return Err(format!(
                "warming tasks did not stop within {} ms",
                deadline.as_millis()
            ));
        }
        let left = deadline.saturating_sub(started.elapsed());
        let report = tokio::time::timeout(left, self.runner.popularity.persist())
            .await
            .map_err(|_| "persisting the access counts ran out of time".to_owned())?;
        self.note_persist(&report);
        match report.failed.first() {
            None => Ok(()),
            Some((tenant, error)) => Err(format!(
                "the access counts of {} tenants could not be persisted (first: {tenant}: {error})",
                report.failed.len()
            )),
        }
    }

    fn note_persist(&self, report: &riptide_persistence::cache::popularity::PersistReport) {
        metrics::popularity(&self.runner.popularity.stats(), Some(report));
        *self
            .last_persist
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            Some((self.runner.now(), report.failed.len()));
        if !report.failed.is_empty() {
            tracing::warn!(
                failed = report.failed.len(),
                first = ?report.failed.first(),
                "some access counts could not be persisted; they are retried at the next persist"
            );
        }
    }
}

fn retention(cfg: &WarmingConfig) -> Duration {
    Duration::from_secs(cfg.job_retention_seconds)
}
