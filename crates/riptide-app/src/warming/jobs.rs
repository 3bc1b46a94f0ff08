//! On-demand warm jobs (tier 2): a bounded table of jobs by id, each with its progress.
//!
//! At most [`MAX_RUNNING_JOBS`] run at once (more is refused). Finished jobs stay
//! readable for `warming.job_retention_seconds`, and at most `warming.max_jobs` of them
//! are kept: the oldest finished ones go first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::progress::{Failure, Progress, RunState, RunView};
use super::sources::Source;

/// Jobs running at once; one more is refused until one finishes.
pub const MAX_RUNNING_JOBS: usize = 4;

/// One on-demand job.
#[derive(Debug)]
pub struct Job {
    /// Its id (16 lower-case hex digits).
    pub id: String,
    /// What it warms: a source name, or `urls` for an explicit list.
    pub source: String,
    /// Its progress.
    pub progress: Progress,
    finished: Mutex<Option<Instant>>,
}

/// A job as `GET /admin/cache/warm/{id}` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobView {
    /// The id.
    pub id: String,
    /// What it warms.
    pub source: String,
    /// `running`, `done` or `failed` (`pending` only before it starts).
    pub state: RunState,
    /// Pairs handled.
    pub done: usize,
    /// Pairs to handle.
    pub total: usize,
    /// Pairs fetched and stored.
    pub warmed: usize,
    /// Pairs already fresh.
    pub fresh: usize,
    /// Pairs of suspended or deleted tenants.
    pub skipped: usize,
    /// Pairs that failed.
    pub failed: usize,
    /// The first failures.
    pub failures: Vec<Failure>,
    /// Why the job failed as a whole.
    pub error: Option<String>,
    /// When it started.
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it finished.
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Job {
    /// The job as reported.
    pub fn view(&self) -> JobView {
        let RunView {
            state,
            total,
            done,
            warmed,
            fresh,
            failed,
            skipped,
            failures,
            error,
            started_at,
            finished_at,
        } = self.progress.view();
        JobView {
            id: self.id.clone(),
            source: self.source.clone(),
            state,
            done,
            total,
            warmed,
            fresh,
            skipped,
            failed,
            failures,
            error,
            started_at,
            finished_at,
        }
    }

    /// Marks the job finished for retention (its progress is already final).
    pub fn mark_finished(&self) {
        *self.finished.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    fn finished_at(&self) -> Option<Instant> {
        *self.finished.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why a job was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{MAX_RUNNING_JOBS} warm jobs are running; try again when one has finished")]
pub struct TooManyJobs;

/// The job table.
#[derive(Debug, Default)]
pub struct Jobs {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    jobs: HashMap<String, Arc<Job>>,
    /// Ids in creation order.
    order: VecDeque<String>,
}

impl Jobs {
    /// Registers a new job of `source` listing at most `max_failures` failures, after
    /// dropping expired finished jobs and keeping at most `max_jobs` finished ones.
    pub fn create(
        &self,
        source: Option<Source>,
        max_failures: usize,
        max_jobs: usize,
        retention: Duration,
    ) -> Result<Arc<Job>, TooManyJobs> {
        let mut table = self.lock();
        table.prune(max_jobs, retention);
        if table.running() >= MAX_RUNNING_JOBS {
            return Err(TooManyJobs);
        }
        let id = loop {
            let id = format!("{:016x}", rand::random::<u64>());
            if !table.jobs.contains_key(&id) {
                break id;
            }
        };
        let job = Arc::new(Job {
            id: id.clone(),
            source: source.map_or("urls", |s| s.as_str()).to_owned(),
            progress: Progress::new(max_failures),
            finished: Mutex::new(None),
        });
        table.jobs.insert(id.clone(), job.clone());
        table.order.push_back(id);
        Ok(job)
    }

    /// The job `id`, unless unknown or expired.
    pub fn get(&self, id: &str, max_jobs: usize, retention: Duration) -> Option<Arc<Job>> {
        let mut table = self.lock();
        table.prune(max_jobs, retention);
        table.jobs.get(id).cloned()
    }

    /// Forgets a job that never started (its start was refused after it was created).
    pub fn remove(&self, id: &str) {
        let mut table = self.lock();
        table.jobs.remove(id);
        table.order.retain(|other| other != id);
    }

    /// Jobs running now.
    pub fn running(&self) -> usize {
        self.lock().running()
    }

    /// Jobs held: running and retained.
    pub fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    /// True when no job is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Table {
    fn running(&self) -> usize {
        self.jobs
            .values()
            .filter(|j| j.finished_at().is_none())
            .count()
    }

    fn prune(&mut self, max_jobs: usize, retention: Duration) {
        let expired = |job: &Job| {
            job.finished_at()
                .is_some_and(|at| at.elapsed() >= retention)
        };
        self.jobs.retain(|_, job| !expired(job));
        let mut finished = self
            .jobs
            .values()
            .filter(|j| j.finished_at().is_some())
            .count();
        let jobs = &mut self.jobs;
        self.order.retain(|id| {
            let Some(job) = jobs.get(id) else {
                return false;
            };
            if finished > max_jobs && job.finished_at().is_some() {
                finished -= 1;
                jobs.remove(id);
                return false;
            }
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3_600);

    fn finish(job: &Job) {
        job.progress.finish(None, chrono::Utc::now());
        job.mark_finished();
    }

    #[test]
    fn running_jobs_are_bounded_and_finished_ones_retained_up_to_max() {
        let jobs = Jobs::default();
        let started: Vec<Arc<Job>> = (0..MAX_RUNNING_JOBS)
            .map(|_| jobs.create(None, 10, 2, HOUR).expect("room"))
            .collect();
        assert_eq!(
            jobs.create(Some(Source::All), 10, 2, HOUR).unwrap_err(),
            TooManyJobs
        );
        for job in &started {
            finish(job);
        }
        // Four finished, two kept: the oldest go first.
        let next = jobs
            .create(Some(Source::Manual), 10, 2, HOUR)
            .expect("room");
        assert_eq!(next.source, "manual");
        assert!(jobs.get(&started[0].id, 2, HOUR).is_none());
        assert!(jobs.get(&started[1].id, 2, HOUR).is_none());
        assert!(jobs.get(&started[3].id, 2, HOUR).is_some());
        assert_eq!(jobs.len(), 3);
        assert_eq!(jobs.running(), 1);
    }

    #[test]
    fn finished_jobs_expire() {
        let jobs = Jobs::default();
        let job = jobs.create(None, 10, 10, HOUR).expect("room");
        assert_eq!(job.view().state, RunState::Pending);
        finish(&job);
        assert!(jobs.get(&job.id, 10, HOUR).is_some());
        assert!(jobs.get(&job.id, 10, Duration::ZERO).is_none());
        assert!(jobs.is_empty());
    }
}
