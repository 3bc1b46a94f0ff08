//! Coordination between instances sharing a store: the instance registry, the
//! invalidation channel and lease-held singleton jobs.
//!
//! [`DistributedSync::start`] gives an instance an id (`<host>-<8 random chars>`),
//! subscribes it to the channel `<p>:sync` and starts its owned tasks:
//!
//! - the **heartbeat** (`registry.rs`): every `heartbeat_interval_ms` into
//!   `<p>:{sync}:instances`, so [`DistributedSync::instances`] lists who shares the store;
//! - the **receiver** (`channel.rs`): decodes other instances' [`SyncMessage`]s and
//!   dispatches them to the handlers registered with [`DistributedSync::on_event`]; after
//!   the store's subscription was interrupted it dispatches [`SyncEvent::Resynced`], so
//!   each handler drops what lost messages could have invalidated;
//! - the **publisher** (`channel.rs`): sends the cache's invalidations, queued by
//!   [`DistributedSync::publish_invalidation`] without blocking the cache;
//! - one loop per **singleton job** (`lease.rs`), started by
//!   [`DistributedSync::run_singleton`].
//!
//! On the embedded store the same API works within the process (every
//! `DistributedSync` over one store object). [`DistributedSync::shutdown`] stops the
//! tasks and waits for them; dropping the last handle stops them too, in the background.
//! Either way the instance leaves the registry, releases its leases and publishes what is
//! still queued.

mod channel;
pub mod config;
mod instance;
mod lease;
mod message;
mod metrics;
mod registry;
mod wiring;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::SyncConfig;
use riptide_cache::{Invalidation, InvalidationListener, PersistentCacheManager};
use riptide_store::clock::SharedClock;
use riptide_store::error::InvalidInput;
use riptide_store::{SharedStore, StoreError};

use self::metrics::SyncMetrics;
use self::registry::RegistryKeys;

pub use channel::OUTBOUND_QUEUE;
pub use instance::InstanceInfo;
pub use lease::{MAX_JOB_NAME_LEN, MAX_SINGLETON_JOBS};
pub use message::{
    KINDS, MAX_ID_LEN, MAX_MESSAGE_BYTES, SyncBody, SyncEvent, SyncMessage, WIRE_VERSION,
    tenant_change,
};
pub use registry::{MAX_LISTED_INSTANCES, PRUNE_AFTER_TTLS};
pub use riptide_store::fence::{FENCED_WRITES_REFUSED, FenceError, LeaseToken};

/// A sync failure.
#[derive(Debug, Error)]
pub enum SyncError {
    /// The `sync` configuration is out of range.
    #[error(transparent)]
    Config(#[from] InvalidInput),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A message that cannot be sent (a field out of range, too large).
    #[error("sync message refused: {0}")]
    Message(String),
    /// A singleton job that cannot be started.
    #[error("singleton job refused: {0}")]
    Job(String),
    /// The instance has been shut down.
    #[error("the sync layer is shut down")]
    ShutDown,
    /// A fenced write of a singleton job that did not happen (see [`FenceError`]).
    #[error(transparent)]
    Fenced(#[from] FenceError),
}

/// A handler of sync events; see [`DistributedSync::on_event`].
pub type SyncHandler = Arc<dyn Fn(&SyncEvent) + Send + Sync>;

/// Logs at most one warning per [`RateLimitedLog::PERIOD`], with the number suppressed.
pub(crate) struct RateLimitedLog {
    what: &'static str,
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimitedLog {
    const PERIOD: Duration = Duration::from_secs(10);

    fn new(what: &'static str) -> Self {
        Self {
            what,
            state: Mutex::new((None, 0)),
        }
    }

    /// Logs `message` unless another was logged within the period.
    pub(crate) fn warn(&self, message: &str) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < Self::PERIOD => state.1 += 1,
            _ => {
                let suppressed = std::mem::take(&mut state.1);
                state.0 = Some(now);
                drop(state);
                tracing::warn!(sync.area = self.what, suppressed, "{message}");
            }
        }
    }
}

/// What the tasks of one instance share.
pub(crate) struct Shared {
    store: SharedStore,
    clock: SharedClock,
    cfg: SyncConfig,
    id: String,
    channel: String,
    registry_keys: RegistryKeys,
    record_json: Vec<u8>,
    handlers: ArcSwap<Vec<SyncHandler>>,
    metrics: SyncMetrics,
    /// The lease holder each running singleton job last saw, by job name.
    jobs: Mutex<HashMap<String, lease::JobView>>,
    outbound: mpsc::Sender<SyncBody>,
    /// Invalidations were dropped from a full queue: publish `All` next.
    overflowed: AtomicBool,
    /// Store failures (heartbeat, lease, publish).
    store_log: RateLimitedLog,
    /// Refused incoming messages.
    message_log: RateLimitedLog,
}

impl Shared {
    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, lease::JobView>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the holder a lease step reported.
    pub(crate) fn observe_job(&self, name: &str, holder: Option<String>) {
        if let Some(view) = self.jobs().get_mut(name) {
            view.holder = holder;
        }
    }

    /// A job's loop ended.
    pub(crate) fn forget_job(&self, name: &str) {
        self.jobs().remove(name);
    }
}

/// Coordination of one instance with the others sharing its store. See the module docs.
pub struct DistributedSync {
    shared: Arc<Shared>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl std::fmt::Debug for DistributedSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistributedSync")
            .field("id", &self.shared.id)
            .field("channel", &self.shared.channel)
            .finish_non_exhaustive()
    }
}

impl DistributedSync {
    /// Joins the instances sharing `store`: subscribes to `<p>:sync`, writes the first
    /// heartbeat and starts the heartbeat, receiver and publisher tasks (on the current
    /// Tokio runtime). Fails when the configuration is out of range or the store does
    /// not answer.
    pub async fn start(
        store: SharedStore,
        clock: SharedClock,
        cfg: &SyncConfig,
    ) -> Result<Arc<Self>, SyncError> {
        cfg.validate()?;
        let id = registry::new_instance_id();
        let prefix = store.key_prefix().to_owned();
        let channel = format!("{prefix}:sync");
        // Subscribe before announcing ourselves: whoever sees us can reach us.
        let subscription = store.subscribe(&channel).await?;
        let record_json = Shared::encode_record(&id, clock.now_ms())?;
        let (outbound, queue) = mpsc::channel(OUTBOUND_QUEUE);
        let shared = Arc::new(Shared {
            store,
            clock,
            cfg: cfg.clone(),
            channel,
            registry_keys: RegistryKeys::new(&prefix),
            record_json,
            handlers: ArcSwap::from_pointee(Vec::new()),
            metrics: SyncMetrics::new(),
            jobs: Mutex::new(HashMap::new()),
            outbound,
            overflowed: AtomicBool::new(false),
            store_log: RateLimitedLog::new("store"),
            message_log: RateLimitedLog::new("message"),
            id,
        });
        shared.heartbeat(0).await?;

        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        tracker.spawn(registry::heartbeat_loop(shared.clone(), cancel.clone()));
        tracker.spawn(channel::receive_loop(
            shared.clone(),
            subscription,
            cancel.clone(),
        ));
        tracker.spawn(channel::publish_loop(shared.clone(), queue, cancel.clone()));
        tracing::info!(instance.id = %shared.id, channel = %shared.channel, "joined the instances sharing the store");
        Ok(Arc::new(Self {
            shared,
            tracker,
            cancel,
        }))
    }

    /// This instance's id.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The channel messages travel on (`<p>:sync`).
    pub fn channel(&self) -> &str {
        &self.shared.channel
    }

    /// Stops every task of this instance and waits for them: singleton jobs are dropped
    /// and their leases released, queued invalidations are published (for at most a
    /// second), and the instance leaves the registry. Idempotent.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Publishes `body` to the other instances (not to this one's handlers). Returns once
    /// the store accepted it.
    pub async fn publish(&self, body: SyncBody) -> Result<(), SyncError> {
        if self.cancel.is_cancelled() {
            return Err(SyncError::ShutDown);
        }
        self.shared.publish_body(&body).await
    }

    /// Queues a cache invalidation for the other instances; never blocks, so the cache
    /// can call it on its hot path. Failures are retried and counted; when the queue is
    /// full the other instances are told to clear their L1 instead.
    pub fn publish_invalidation(&self, inv: &Invalidation) {
        self.shared.enqueue_invalidation(inv);
    }

    /// Registers `handler` for every [`SyncEvent`]: messages from other instances and
    /// [`SyncEvent::Resynced`]. Handlers run on the receiver task in arrival order and
    /// must not block; a panic is caught and counted. A handler must not hold this
    /// `DistributedSync` strongly (capture a `Weak`): the handler list is owned by it,
    /// and the cycle would keep its tasks running after the last other handle is gone.
    pub fn on_event(&self, handler: SyncHandler) {
        self.shared.handlers.rcu(|handlers| {
            let mut next = Vec::with_capacity(handlers.len() + 1);
            next.extend(handlers.iter().cloned());
            next.push(handler.clone());
            next
        });
    }

    /// Keeps `cache` coherent with the other instances: their invalidations are applied
    /// to its L1, a [`SyncEvent::Resynced`] clears its L1, and its own local changes are
    /// published (it gets an [`InvalidationListener`] that calls
    /// [`Self::publish_invalidation`]; the listener holds this instance weakly, so it
    /// does not keep it alive).
    pub fn attach_cache(&self, cache: Arc<PersistentCacheManager>) {
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        cache.set_invalidation_listener(InvalidationListener(Box::new(move |inv| {
            if let Some(shared) = weak.upgrade() {
                shared.enqueue_invalidation(inv);
            }
        })));
        self.on_event(Arc::new(move |event| match event {
            SyncEvent::Message(SyncBody::Cache(inv)) => cache.apply_remote_invalidation(inv),
            SyncEvent::Resynced => cache.apply_remote_invalidation(&Invalidation::All),
            SyncEvent::Message(_) => {}
        }));
    }

    /// The instances sharing the store, most recently seen first (at most
    /// [`MAX_LISTED_INSTANCES`]); long-dead ones are pruned after
    /// [`PRUNE_AFTER_TTLS`] × `instance_ttl_ms`.
    pub async fn instances(&self) -> Result<Vec<InstanceInfo>, SyncError> {
        self.shared.list_instances().await
    }

    /// Runs `job` every `interval` on whichever instance holds the lease
    /// `<p>:lease:{<name>}`, renewed every `lease_ttl_ms / 3`: each call gets the
    /// holding's fencing token, and a job whose holding is lost is dropped at its next
    /// `.await` (so jobs must be cancel-safe there). A new holder continues the schedule
    /// from the last run on any instance. Every instance calls this for the same jobs; one runs
    /// them, and another takes over within one `lease_ttl_ms` after it dies. The task
    /// stops on shutdown (the job is dropped, the lease released).
    ///
    /// Refused for a name outside `^[a-z0-9_-]{1,64}$`, a zero interval, a name already
    /// running here, more than [`MAX_SINGLETON_JOBS`] jobs, or after shutdown.
    pub fn run_singleton<F, Fut>(
        self: &Arc<Self>,
        name: &str,
        interval: Duration,
        job: F,
    ) -> Result<JoinHandle<()>, SyncError>
    where
        F: Fn(LeaseToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        lease::validate_job_name(name)?;
        if interval.is_zero() {
            return Err(SyncError::Job("the interval must be positive".into()));
        }
        if self.cancel.is_cancelled() {
            return Err(SyncError::ShutDown);
        }
        {
            let mut jobs = self.shared.jobs();
            if jobs.contains_key(name) {
                return Err(SyncError::Job(format!("job {name} is already running")));
            }
            if jobs.len() >= MAX_SINGLETON_JOBS {
                return Err(SyncError::Job(format!(
                    "at most {MAX_SINGLETON_JOBS} singleton jobs"
                )));
            }
            jobs.insert(name.to_owned(), lease::JobView::default());
        }
        let singleton = lease::Singleton {
            shared: self.shared.clone(),
            name: name.to_owned(),
            interval,
            cancel: self.cancel.clone(),
        };
        Ok(self.tracker.spawn(singleton.run(job)))
    }

    /// The instance holding the lease of job `name`, as this instance last saw it
    /// (`None` when free, or when the job does not run here).
    pub fn leader(&self, name: &str) -> Option<String> {
        self.shared.jobs().get(name).and_then(|v| v.holder.clone())
    }

    /// True when this instance holds the lease of job `name`.
    pub fn is_leader(&self, name: &str) -> bool {
        self.leader(name).as_deref() == Some(self.id())
    }
}

impl Drop for DistributedSync {
    /// Stops the tasks in the background: they still leave the registry, release leases
    /// and flush queued invalidations if the runtime keeps running.
    fn drop(&mut self) {
        self.cancel.cancel();
        self.tracker.close();
    }
}
