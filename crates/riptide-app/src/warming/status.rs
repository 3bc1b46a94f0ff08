//! What `/admin/state/current` shows of warming: the startup tier's progress, the
//! background tier, warm jobs and the access counter ([`WarmingStatus`]).

use std::sync::PoisonError;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::WarmingService;
use super::progress::RunView;
use super::scheduler;

/// The warming state reported by `/admin/state/current`.
#[derive(Debug, Clone, Serialize)]
pub struct WarmingStatus {
    /// `persistence.cache.enable_warming`.
    pub enabled: bool,
    /// Whether a page loader is installed.
    pub page_loader: bool,
    /// Tier 1.
    pub startup: RunView,
    /// Tier 3.
    pub background: BackgroundStatus,
    /// Tier 2: jobs running, and held (running and retained).
    pub jobs: JobsStatus,
    /// The access counter.
    pub popularity: PopularityStatus,
}

/// Tier 3 as reported.
#[derive(Debug, Clone, Serialize)]
pub struct BackgroundStatus {
    /// `warming.interval_seconds` in force.
    pub interval_seconds: u64,
    /// Whether this instance holds the `cache-warming` lease.
    pub lease_holder: bool,
    /// Runs on this instance since it started.
    pub runs: u64,
    /// This instance's latest run.
    pub last_run: Option<RunView>,
}

/// Tier 2 as reported.
#[derive(Debug, Clone, Serialize)]
pub struct JobsStatus {
    /// Running.
    pub running: usize,
    /// Running and retained.
    pub held: usize,
}

/// The access counter as reported.
#[derive(Debug, Clone, Serialize)]
pub struct PopularityStatus {
    /// Whether the persisted counts were loaded.
    pub loaded: bool,
    /// Tenants counted.
    pub tenants: usize,
    /// URLs counted over every tenant.
    pub urls: usize,
    /// Accesses that could not be counted.
    pub refused: u64,
    /// When the counts were last persisted.
    pub last_persist_at: Option<DateTime<Utc>>,
    /// Tenants whose counts the last persist could not write.
    pub last_persist_failures: usize,
}

impl WarmingService {
    /// What the tiers and the counter are doing.
    pub fn status(&self) -> WarmingStatus {
        let stats = self.runner.popularity.stats();
        let last_persist = *self
            .last_persist
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        WarmingStatus {
            enabled: self.runner.cache.settings().enable_warming,
            page_loader: self.runner.pages.load().is_some(),
            startup: self.startup.view(),
            background: BackgroundStatus {
                interval_seconds: self.config.load().interval_seconds,
                lease_holder: self.sync.is_leader(scheduler::BACKGROUND_JOB),
                runs: self
                    .background_runs
                    .load(std::sync::atomic::Ordering::Relaxed),
                last_run: self.background.load().as_ref().map(|p| p.view()),
            },
            jobs: JobsStatus {
                running: self.jobs.running(),
                held: self.jobs.len(),
            },
            popularity: PopularityStatus {
                loaded: *self.loaded.borrow(),
                tenants: stats.tenants,
                urls: stats.urls,
                refused: stats.refused,
                last_persist_at: last_persist.map(|(at, _)| at),
                last_persist_failures: last_persist.map_or(0, |(_, failed)| failed),
            },
        }
    }
}
