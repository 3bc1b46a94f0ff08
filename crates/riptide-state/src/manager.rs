//! [`StateManager`]: hot reload, checkpoints, sessions and graceful shutdown, with the
//! seed's constructor.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::checkpoint::{
    CheckpointError, CheckpointExtra, CheckpointInfo, CheckpointManager, RestoreReport,
};
use super::config_schema::ConfigSchema;
use super::peers::Peers;
use super::reload::{ConfigGeneration, ConfigReloader, ReloadError, ReloadOutcome, ReloadStats};
use super::sessions::{SessionFigures, SessionManager};
use crate::config::StateConfig;
use riptide_store::clock::SharedClock;
use riptide_store::error::InvalidInput;
use riptide_store::fence::LeaseToken;
use riptide_store::{SharedStore, StoreError};
use riptide_sync::InstanceInfo;
use riptide_tenant::{TenantDeletionHook, TenantManager};

/// Name of the singleton job that takes scheduled checkpoints.
pub const CHECKPOINT_JOB: &str = "checkpoint";
/// How often expired sessions are swept.
const SESSION_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// A state-layer failure.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Bad configuration.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration could not be loaded.
    #[error(transparent)]
    Reload(#[from] ReloadError),
    /// A checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// Where the warm list of a checkpoint comes from (the service's access analytics).
pub type WarmListSource = Box<dyn Fn() -> Vec<(Option<String>, String)> + Send + Sync>;

/// What `current_state()` reports.
#[derive(Debug, Clone, Serialize)]
pub struct StateReport {
    /// This instance, when coordination is attached.
    pub instance_id: Option<String>,
    /// The running configuration generation.
    pub config: ConfigSummary,
    /// Whether files are watched.
    pub hot_reload: bool,
    /// Reload counts and the last outcome.
    pub reloads: ReloadStats,
    /// Checkpoints on disk, newest first.
    pub checkpoints: Vec<CheckpointInfo>,
    /// Sessions in memory and spilled.
    pub sessions: SessionFigures,
    /// Instances sharing the store (empty without coordination).
    pub instances: Vec<InstanceInfo>,
    /// Holder of the scheduled-checkpoint lease, when known.
    pub checkpoint_leader: Option<String>,
}

/// The running configuration, without its body.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigSummary {
    /// Generation number (1 at start).
    pub generation: u64,
    /// Files it was read from.
    pub sources: Vec<std::path::PathBuf>,
    /// blake3 of its canonical JSON.
    pub hash: String,
    /// When it was loaded.
    pub loaded_at: DateTime<Utc>,
}

/// What a graceful shutdown did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShutdownReport {
    /// Steps finished, in order.
    pub completed: Vec<&'static str>,
    /// Steps that failed or ran out of time, with why.
    pub failed: Vec<(&'static str, String)>,
    /// The final checkpoint, when one was taken.
    pub checkpoint: Option<String>,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// Configuration reload, checkpoints, sessions and shutdown over one store.
pub struct StateManager {
    store: SharedStore,
    config: StateConfig,
    reloader: Arc<ConfigReloader>,
    checkpoints: CheckpointJob,
    sessions: Arc<SessionManager>,
    tenants: ArcSwapOption<TenantManager>,
    /// The other instances, once the sync layer attached them.
    peers: ArcSwapOption<Arc<dyn Peers>>,
    peers_attached: Arc<AtomicBool>,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

/// Takes checkpoints with the running config and the warm list; cloned into the
/// scheduled jobs.
#[derive(Clone)]
struct CheckpointJob {
    manager: Arc<CheckpointManager>,
    reloader: Arc<ConfigReloader>,
    warm_list: Arc<ArcSwapOption<WarmListSource>>,
}

impl CheckpointJob {
    fn extra(&self) -> CheckpointExtra {
        let source = self.warm_list.load_full();
        let warm_list = match source.as_deref() {
            Some(f) => f(),
            None => Vec::new(),
        };
        CheckpointExtra {
            config: Some((*self.reloader.current().value).clone()),
            warm_list,
        }
    }

    fn take(
        &self,
    ) -> impl std::future::Future<Output = Result<CheckpointInfo, CheckpointError>> + Send + 'static
    {
        let (manager, extra) = (self.manager.clone(), self.extra());
        async move { manager.create(extra).await }
    }

    /// A scheduled checkpoint under the job's lease (see
    /// [`CheckpointManager::create_fenced`]).
    async fn take_fenced(&self, lease: LeaseToken) -> Result<CheckpointInfo, CheckpointError> {
        let (manager, extra) = (self.manager.clone(), self.extra());
        manager.create_fenced(extra, &lease).await
    }
}

impl StateManager {
    /// A state manager over an existing store, with its clock and config schema.
    pub async fn with_store(
        store: SharedStore,
        config: StateConfig,
        clock: SharedClock,
        schema: Arc<dyn ConfigSchema>,
    ) -> Result<Self, StateError> {
        config.validate()?;
        let reloader = ConfigReloader::new(&config, schema)?;
        let checkpoints = CheckpointJob {
            manager: Arc::new(CheckpointManager::new(
                store.clone(),
                clock.clone(),
                &config,
            )),
            reloader: reloader.clone(),
            warm_list: Arc::new(ArcSwapOption::empty()),
        };
        let sessions = SessionManager::new(store.clone(), clock, &config);
        let manager = Self {
            store,
            reloader,
            checkpoints,
            sessions,
            tenants: ArcSwapOption::empty(),
            peers: ArcSwapOption::empty(),
            peers_attached: Arc::new(AtomicBool::new(false)),
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            config,
        };
        if manager.config.enable_hot_reload {
            let watcher = manager.reloader.spawn_watcher(manager.cancel.clone())?;
            manager.tasks.spawn(async move {
                if let Err(e) = watcher.await {
                    tracing::error!(error = %e, "config watcher ended abnormally");
                }
            });
        }
        manager.spawn_session_sweeper();
        if manager.config.checkpoint_interval_seconds > 0 {
            manager.spawn_local_checkpoints();
        }
        Ok(manager)
    }

    /// Gives sessions their tenants (quota accounting, sealing) and lets shutdown flush
    /// the tenants' usage.
    pub fn attach_tenants(&self, tenants: Arc<TenantManager>) -> Result<(), StateError> {
        self.sessions.attach_tenants(tenants.clone()).map_err(|e| {
            StateError::Invalid(InvalidInput::Config {
                key: "state",
                reason: e.to_string(),
            })
        })?;
        self.checkpoints
            .manager
            .seal_with(tenants.data_keys().master().clone());
        tenants.set_deletion_hook(self.deletion_hook());
        self.tenants.store(Some(tenants));
        // Deletions made while this instance was down shred here too.
        let checkpoints = self.checkpoints.manager.clone();
        self.tasks.spawn(async move {
            if let Err(e) = checkpoints.prune_keys().await {
                tracing::warn!(error = %e, "cannot drop deleted tenants' checkpoint keys");
            }
        });
        Ok(())
    }

    /// What follows a tenant's deletion outside the store: its checkpoint keys leave
    /// the keys file (its parts of every checkpoint here are shredded) and its sessions
    /// leave the store, memory and the spill dir. After lost messages (`None`), the keys
    /// file is checked against the tombstones.
    fn deletion_hook(&self) -> TenantDeletionHook {
        let checkpoints = self.checkpoints.manager.clone();
        let sessions = self.sessions.clone();
        let tasks = self.tasks.clone();
        TenantDeletionHook(Box::new(move |tenant| {
            let (checkpoints, sessions) = (checkpoints.clone(), sessions.clone());
            let tenant = tenant.cloned();
            tasks.spawn(async move {
                let Some(tenant) = tenant else {
                    if let Err(e) = checkpoints.prune_keys().await {
                        tracing::warn!(error = %e, "cannot drop deleted tenants' checkpoint keys");
                    }
                    return;
                };
                if let Err(e) = checkpoints.forget_tenant_keys(tenant.as_str()).await {
                    tracing::error!(tenant.id = %tenant, error = %e, "cannot drop a deleted tenant's checkpoint keys; the next checkpoint retries");
                }
                match sessions.purge_tenant(&tenant).await {
                    Ok(n) => tracing::debug!(tenant.id = %tenant, sessions = n, "deleted tenant's sessions removed"),
                    Err(e) => tracing::warn!(tenant.id = %tenant, error = %e, "cannot remove a deleted tenant's sessions"),
                }
            });
        }))
    }

    /// Installs the other instances (see [`StateManager::attach_sync`]): reloads are
    /// asked of them too, the report lists them, and this instance's own checkpoint
    /// loop stands down for the singleton job the sync layer runs on the lease holder.
    pub fn set_peers(&self, peers: Arc<dyn Peers>) {
        self.peers_attached.store(true, Ordering::Relaxed);
        self.peers.store(Some(Arc::new(peers)));
    }

    /// How often checkpoints are scheduled; `None` when they are not.
    pub fn checkpoint_interval(&self) -> Option<Duration> {
        let seconds = self.config.checkpoint_interval_seconds;
        (seconds > 0).then(|| Duration::from_secs(seconds))
    }

    /// A scheduled checkpoint under the checkpoint job's singleton lease (see
    /// [`CheckpointManager::create_fenced`]).
    pub async fn take_scheduled_checkpoint(
        &self,
        lease: LeaseToken,
    ) -> Result<CheckpointInfo, StateError> {
        Ok(self.checkpoints.take_fenced(lease).await?)
    }

    /// Supplies the warm list stored in checkpoints.
    pub fn set_warm_list_source(&self, source: WarmListSource) {
        self.checkpoints.warm_list.store(Some(Arc::new(source)));
    }

    /// Reloads the configuration now (the seed's `reload_config()`); with coordination
    /// attached, [`Self::request_reload_everywhere`] reaches the other instances too.
    pub fn reload_config(&self) -> ReloadOutcome {
        self.reloader.reload()
    }

    /// Reloads here and asks every other instance to reload.
    pub async fn request_reload_everywhere(&self, requested_by: &str) -> ReloadOutcome {
        let outcome = self.reloader.reload();
        if let Some(peers) = self.peers.load_full()
            && let Err(e) = peers.request_reload(requested_by).await
        {
            tracing::warn!(error = %e, "could not ask the other instances to reload");
        }
        outcome
    }

    /// The running configuration.
    pub fn config_generation(&self) -> Arc<ConfigGeneration> {
        self.reloader.current()
    }

    /// Each new configuration generation, as it is applied.
    pub fn subscribe_config(&self) -> watch::Receiver<Arc<ConfigGeneration>> {
        self.reloader.subscribe()
    }

    /// Sessions of tenants.
    pub fn sessions(&self) -> &Arc<SessionManager> {
        &self.sessions
    }

    /// Takes a checkpoint now.
    pub async fn create_checkpoint(&self) -> Result<CheckpointInfo, StateError> {
        Ok(self.checkpoints.take().await?)
    }

    /// Checkpoints on disk with their size, time and validity.
    pub async fn list_checkpoints(&self) -> Result<Vec<CheckpointInfo>, StateError> {
        Ok(self.checkpoints.manager.list().await?)
    }

    /// Restores checkpoint `id` (checked before anything is touched); a dry run reports
    /// what would change and changes nothing.
    pub async fn restore_checkpoint(
        &self,
        id: &str,
        dry_run: bool,
    ) -> Result<RestoreReport, StateError> {
        let report = self.checkpoints.manager.restore(id, dry_run).await?;
        if !dry_run {
            // Whatever this instance cached predates the restore.
            self.sessions.clear_local().await;
        }
        Ok(report)
    }

    /// The state report: config generation and last reload, checkpoints, sessions,
    /// instances.
    pub async fn current_state(&self) -> StateReport {
        let generation = self.reloader.current();
        let checkpoints = self.checkpoints.manager.list().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "listing checkpoints failed");
            Vec::new()
        });
        let peers = self.peers.load_full();
        let instances = match &peers {
            Some(p) => p.instances().await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "listing the instances failed");
                Vec::new()
            }),
            None => Vec::new(),
        };
        StateReport {
            instance_id: peers.as_ref().map(|p| p.instance_id()),
            config: ConfigSummary {
                generation: generation.generation,
                sources: generation.sources.clone(),
                hash: generation.hash.clone(),
                loaded_at: generation.loaded_at,
            },
            hot_reload: self.reloader.hot_reload_enabled(),
            reloads: self.reloader.stats(),
            checkpoints,
            sessions: self.sessions.figures(),
            instances,
            checkpoint_leader: peers.as_ref().and_then(|p| p.leader(CHECKPOINT_JOB)),
        }
    }

    /// Graceful shutdown within `deadline`: stops background jobs, writes sessions out
    /// of memory (never deletes one), flushes tenants' usage, takes the final checkpoint
    /// when `checkpoint_on_shutdown`, and leaves coordination. Each step is bounded by
    /// what is left of the deadline; the report says what finished.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        let start = Instant::now();
        let mut report = ShutdownReport::default();
        let left = |start: Instant| deadline.saturating_sub(start.elapsed());
        self.cancel.cancel();
        self.tasks.close();
        step(&mut report, "stop background jobs", left(start), async {
            self.tasks.wait().await;
            Ok(())
        })
        .await;
        step(&mut report, "write sessions to disk", left(start), async {
            let spilled = self.sessions.spill_all().await;
            tracing::info!(?spilled, "sessions written out of memory");
            Ok(())
        })
        .await;
        if let Some(tenants) = self.tenants.load_full() {
            step(&mut report, "flush usage", left(start), async {
                tenants.shutdown().await;
                Ok(())
            })
            .await;
        }
        if self.config.checkpoint_on_shutdown {
            let mut id = None;
            step(&mut report, "final checkpoint", left(start), async {
                let info = self.checkpoints.take().await.map_err(|e| e.to_string())?;
                id = Some(info.id);
                Ok(())
            })
            .await;
            report.checkpoint = id;
        }
        if let Some(peers) = self.peers.load_full() {
            step(&mut report, "leave coordination", left(start), async {
                peers.leave().await;
                Ok(())
            })
            .await;
        }
        report.duration_ms = start.elapsed().as_millis() as u64;
        tracing::info!(
            completed = report.completed.len(),
            failed = report.failed.len(),
            duration_ms = report.duration_ms,
            store = self.store.kind().as_str(),
            "state manager shut down"
        );
        report
    }

    fn spawn_session_sweeper(&self) {
        let sweeper = self
            .sessions
            .clone()
            .run_sweeper(SESSION_SWEEP_INTERVAL, self.cancel.clone());
        self.tasks.spawn(sweeper);
    }

    /// Scheduled checkpoints while this instance is alone: once coordination is
    /// attached, the lease holder takes them instead and this loop stands down.
    fn spawn_local_checkpoints(&self) {
        let interval = Duration::from_secs(self.config.checkpoint_interval_seconds);
        let (job, cancel, attached) = (
            self.checkpoints.clone(),
            self.cancel.clone(),
            self.peers_attached.clone(),
        );
        self.tasks.spawn(async move {
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    _ = tick.tick() => {
                        if attached.load(Ordering::Relaxed) {
                            return;
                        }
                        if let Err(e) = job.take().await {
                            tracing::error!(error = %e, "scheduled checkpoint failed");
                        }
                    }
                }
            }
        });
    }
}

impl Drop for StateManager {
    /// A manager dropped without `shutdown` still stops its watcher and sweepers.
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn step<F>(report: &mut ShutdownReport, name: &'static str, budget: Duration, work: F)
where
    F: std::future::Future<Output = Result<(), String>>,
{
    match tokio::time::timeout(budget, work).await {
        Ok(Ok(())) => report.completed.push(name),
        Ok(Err(e)) => report.failed.push((name, e)),
        Err(_) => report.failed.push((name, "out of time".to_owned())),
    }
}
