//! The warming service's tasks, all tracked by its `TaskTracker` and stopped by its
//! `CancellationToken`:
//!
//! - the **persist loop**: the access counts to the store every
//!   `warming.persist_interval_ms` (read live);
//! - the **startup tier**: loads the persisted counts (retrying while the store is
//!   unreachable), then waits for a page loader and, with warming enabled, warms the
//!   manual list and the top `warming.startup_top_n` pairs;
//! - **on-demand jobs**, one task each;
//! - the **background tier**: a singleton job of the coordination layer named
//!   [`BACKGROUND_JOB`], so it runs on the lease holder only. It ticks every
//!   `min(interval_seconds, 60 s)` and warms when `warming.interval_seconds` (read live)
//!   have passed since the last background run on any instance, recorded in the store at
//!   `<p>:lease:{cache-warming}:last_background_run` with a fenced write (beside the
//!   lease, so a holder paused past its lease cannot record, and so does not run; a
//!   store written by an older version still has it at `<p>:{warming}:...`, read when the
//!   new key is absent). On a fresh store the first tick only records the time: the
//!   startup tier has just warmed. A run first refreshes the access counts
//!   from the store, so it warms what every instance counted. While warming is
//!   disabled, ticks do nothing.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use riptide_persistence::store::Durability;
use riptide_persistence::sync::LeaseToken;

use super::WarmingService;
use super::jobs::Job;
use super::metrics::{self, Tier};
use super::progress::Progress;
use super::runner::Target;
use super::sources::{CacheWarmingSource, Source, manual};

/// The background tier's singleton job (and lease) name.
pub const BACKGROUND_JOB: &str = "cache-warming";

/// The fenced key (beside the lease) of the time of the last background run.
const LAST_RUN: &str = "last_background_run";

/// Longest pause between two checks of the background schedule.
const MAX_TICK: Duration = Duration::from_secs(60);

/// Pause between attempts to load the persisted counts while the store fails.
const LOAD_RETRY: Duration = Duration::from_secs(1);

/// The cap of a background run (the analytics, every tenant's patterns and the manual
/// list together).
const MAX_BACKGROUND_URLS: usize = super::config::MAX_WARM_URLS;

/// Persists the access counts every `persist_interval_ms` until shutdown (the final
/// persist is [`WarmingService::shutdown`]'s).
pub(super) fn spawn_persist_loop(service: &Arc<WarmingService>) {
    let weak = Arc::downgrade(service);
    let cancel = service.cancel.clone();
    service.tasks.spawn(async move {
        loop {
            let Some(interval) = weak
                .upgrade()
                .map(|s| Duration::from_millis(s.config.load().persist_interval_ms))
            else {
                return;
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            let Some(service) = weak.upgrade() else {
                return;
            };
            let report = tokio::select! {
                () = cancel.cancelled() => return,
                report = service.runner.popularity.persist() => report,
            };
            service.note_persist(&report);
        }
    });
}

/// Loads the persisted counts, then runs the startup tier once a page loader is
/// installed, if warming is enabled then.
pub(super) fn spawn_startup(service: &Arc<WarmingService>) {
    let service = service.clone();
    let tasks = service.tasks.clone();
    tasks.spawn(async move {
        let cancel = service.cancel.clone();
        tokio::select! {
            () = cancel.cancelled() => return,
            () = load_counts(&service) => {}
        }
        let mut installed = service.loader_installed.subscribe();
        tokio::select! {
            () = cancel.cancelled() => return,
            found = installed.wait_for(|installed| *installed) => if found.is_err() { return },
        }
        if !service.runner.cache.settings().enable_warming {
            tracing::info!("cache warming is disabled: no startup warming");
            return;
        }
        let targets = startup_targets(&service);
        run_tier(&service, Tier::Startup, targets, &service.startup).await;
    });
}

async fn load_counts(service: &WarmingService) {
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match service.runner.popularity.load().await {
            Ok(tenants) => {
                tracing::info!(tenants, "access counts loaded for cache warming");
                break;
            }
            Err(e) => {
                // Once, then every minute of retrying, so an outage does not flood the log.
                if attempts == 1 || attempts.is_multiple_of(60) {
                    tracing::warn!(error = %e, attempts, "cannot load the access counts yet; retrying");
                }
                tokio::time::sleep(LOAD_RETRY).await;
            }
        }
    }
    service.loaded.send_replace(true);
    metrics::popularity(&service.runner.popularity.stats(), None);
}

fn startup_targets(service: &WarmingService) -> Vec<Target> {
    let cfg = service.config.load();
    let source = CacheWarmingSource {
        analytics: CacheWarmingSource::collect(
            &service.runner.popularity,
            &cfg,
            Source::Analytics,
            None,
            cfg.startup_top_n,
            0,
        )
        .analytics,
        tenant_patterns: Vec::new(),
        manual: manual(&cfg),
    };
    let limit = cfg.startup_top_n + source.manual.len();
    source.into_targets(limit)
}

/// Runs `targets` as a run of `tier` into `progress`; on shutdown the run ends as
/// failed.
async fn run_tier(service: &WarmingService, tier: Tier, targets: Vec<Target>, progress: &Progress) {
    tokio::select! {
        () = service.cancel.cancelled() => {
            service.runner.finish(tier, progress, Some("stopped by shutdown".into()));
        }
        () = service.runner.run(tier, targets, progress) => {}
    }
}

/// Runs an on-demand job as a tracked task.
pub(super) fn spawn_job(service: &Arc<WarmingService>, job: Arc<Job>, targets: Vec<Target>) {
    let service = service.clone();
    let tasks = service.tasks.clone();
    metrics::jobs_running(service.jobs.running());
    tasks.spawn(async move {
        tracing::info!(warming.job = %job.id, warming.source = %job.source, total = targets.len(), "warm job started");
        run_tier(&service, Tier::OnDemand, targets, &job.progress).await;
        job.mark_finished();
        metrics::jobs_running(service.jobs.running());
    });
}

/// Registers the background tier with the coordination layer.
pub(super) fn register_background(service: &Arc<WarmingService>) -> anyhow::Result<()> {
    let interval = Duration::from_secs(service.config.load().interval_seconds);
    let weak: Weak<WarmingService> = Arc::downgrade(service);
    service
        .sync
        .run_singleton(BACKGROUND_JOB, interval.min(MAX_TICK), move |lease| {
            let weak = weak.clone();
            async move {
                if let Some(service) = weak.upgrade() {
                    background_tick(&service, &lease).await;
                }
            }
        })?;
    Ok(())
}

/// One tick on the lease holder: warms when the interval has passed since the last
/// background run on any instance.
async fn background_tick(service: &WarmingService, lease: &LeaseToken) {
    if service.cancel.is_cancelled() || !service.runner.cache.settings().enable_warming {
        return;
    }
    let store = service.runner.cache.store().clone();
    // Before the fenced key existed the time lived outside the lease's hash tag.
    let legacy = format!("{}:{{warming}}:last_background_run", store.key_prefix());
    let now = service.runner.clock.now_ms();
    let found = match store.get(&lease.key(LAST_RUN)).await {
        Ok(None) => store.get(&legacy).await,
        found => found,
    };
    let last = match found {
        Ok(found) => found.and_then(|raw| std::str::from_utf8(&raw).ok()?.parse::<u64>().ok()),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the last background warm run; trying at the next tick");
            return;
        }
    };
    let interval_ms = service.config.load().interval_seconds.saturating_mul(1_000);
    let due = last.is_some_and(|last| now.saturating_sub(last) >= interval_ms);
    if last.is_some() && !due {
        return;
    }
    // Recorded before the run, so a holder that dies mid-run is not followed by an
    // immediate rerun; on a fresh store this only starts the schedule. The write is
    // fenced: a stale holder (its lease taken over meanwhile) is refused and stops here.
    if let Err(e) = lease
        .set(
            LAST_RUN,
            now.to_string().as_bytes(),
            None,
            Durability::Durable,
        )
        .await
    {
        tracing::warn!(error = %e, "cannot record the background warm run; not warming");
        return;
    }
    if !due {
        return;
    }
    // What every instance has counted and persisted since this one last read it.
    if let Err(e) = service.runner.popularity.load().await {
        tracing::warn!(error = %e, "cannot refresh the access counts; warming with those held here");
    }
    let targets = {
        let cfg = service.config.load();
        CacheWarmingSource::collect(
            &service.runner.popularity,
            &cfg,
            Source::All,
            None,
            cfg.analytics_top_n,
            cfg.tenant_top_n,
        )
        .into_targets(MAX_BACKGROUND_URLS)
    };
    tracing::info!(
        fencing_token = lease.token,
        total = targets.len(),
        "background warm run"
    );
    let progress = Arc::new(Progress::new(service.config.load().max_job_failures));
    service.background.store(Some(progress.clone()));
    service.background_runs.fetch_add(1, Ordering::Relaxed);
    run_tier(service, Tier::Background, targets, &progress).await;
}
