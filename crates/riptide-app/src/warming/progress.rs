//! The progress of one warm run (a tier's run or an on-demand job), shared between the
//! task doing it and whoever reports it (`/admin/cache/warm/{id}`,
//! `/admin/state/current`, the metrics).

use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Not started: the startup tier waits for the access counts and a page loader, or
    /// never starts because warming was disabled.
    Pending,
    /// Warming.
    Running,
    /// Finished; some URLs may have failed (see the failures).
    Done,
    /// Stopped as a whole: warming disabled, no page loader, or shutdown.
    Failed,
}

impl RunState {
    /// Stable lower-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Done => "done",
            RunState::Failed => "failed",
        }
    }
}

/// One URL that could not be warmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The tenant whose cache it was for.
    pub tenant_id: String,
    /// The URL.
    pub url: String,
    /// Why.
    pub error: String,
}

/// A run as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunView {
    /// Where it is.
    pub state: RunState,
    /// Distinct (tenant, URL) pairs to warm.
    pub total: usize,
    /// Pairs handled so far: `warmed + fresh + failed + skipped`.
    pub done: usize,
    /// Pairs fetched, extracted and stored.
    pub warmed: usize,
    /// Pairs already cached and not near expiry.
    pub fresh: usize,
    /// Pairs whose load or store failed.
    pub failed: usize,
    /// Pairs of suspended or deleted tenants, not warmed.
    pub skipped: usize,
    /// The first failures (at most `warming.max_job_failures`).
    pub failures: Vec<Failure>,
    /// Why the whole run failed, when it did.
    pub error: Option<String>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// The shared progress of one run.
#[derive(Debug)]
pub struct Progress {
    view: Mutex<RunView>,
    max_failures: usize,
}

impl Progress {
    /// A pending run that lists at most `max_failures` failures.
    pub fn new(max_failures: usize) -> Self {
        Self {
            view: Mutex::new(RunView {
                state: RunState::Pending,
                total: 0,
                done: 0,
                warmed: 0,
                fresh: 0,
                failed: 0,
                skipped: 0,
                failures: Vec::new(),
                error: None,
                started_at: None,
                finished_at: None,
            }),
            max_failures,
        }
    }

    /// The run as it is now.
    pub fn view(&self) -> RunView {
        self.lock().clone()
    }

    /// The run's state now.
    pub fn state(&self) -> RunState {
        self.lock().state
    }

    /// Fraction handled, 0 to 1 (1 for an empty or finished run).
    pub fn fraction(&self) -> f64 {
        let view = self.lock();
        if view.total == 0 || matches!(view.state, RunState::Done | RunState::Failed) {
            if view.state == RunState::Pending {
                0.0
            } else {
                1.0
            }
        } else {
            view.done as f64 / view.total as f64
        }
    }

    /// Starts the run over `total` pairs at `now`.
    pub fn start(&self, total: usize, now: DateTime<Utc>) {
        let mut view = self.lock();
        view.state = RunState::Running;
        view.total = total;
        view.started_at = Some(now);
    }

    /// Counts pairs warmed and fresh.
    pub fn add_done(&self, warmed: usize, fresh: usize) {
        let mut view = self.lock();
        view.warmed += warmed;
        view.fresh += fresh;
        view.done += warmed + fresh;
    }

    /// Counts skipped pairs.
    pub fn add_skipped(&self, skipped: usize) {
        let mut view = self.lock();
        view.skipped += skipped;
        view.done += skipped;
    }

    /// Counts failed pairs, listing the first ones.
    pub fn add_failures(&self, failures: impl IntoIterator<Item = Failure>) {
        let mut view = self.lock();
        for failure in failures {
            view.failed += 1;
            view.done += 1;
            if view.failures.len() < self.max_failures {
                view.failures.push(failure);
            }
        }
    }

    /// Ends the run: `Done`, or `Failed` with `error`.
    pub fn finish(&self, error: Option<String>, now: DateTime<Utc>) {
        let mut view = self.lock();
        view.state = if error.is_some() {
            RunState::Failed
        } else {
            RunState::Done
        };
        view.error = error;
        view.started_at.get_or_insert(now);
        view.finished_at = Some(now);
    }

    fn lock(&self) -> MutexGuard<'_, RunView> {
        self.view.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(n: usize) -> Failure {
        Failure {
            tenant_id: "t".into(),
            url: format!("https://example.com/{n}"),
            error: "boom".into(),
        }
    }

    #[test]
    fn counts_add_up_and_failures_are_bounded() {
        let progress = Progress::new(2);
        assert_eq!(progress.fraction(), 0.0);
        progress.start(10, Utc::now());
        progress.add_done(3, 2);
        progress.add_skipped(1);
        progress.add_failures((0..3).map(failure));
        assert_eq!(progress.fraction(), 0.9);
        progress.finish(None, Utc::now());
        let view = progress.view();
        assert_eq!(view.state, RunState::Done);
        assert_eq!(
            (
                view.done,
                view.warmed,
                view.fresh,
                view.skipped,
                view.failed
            ),
            (9, 3, 2, 1, 3)
        );
        assert_eq!(view.failures, [failure(0), failure(1)]);
        assert_eq!(progress.fraction(), 1.0);
        assert!(view.finished_at.is_some());
    }
}
