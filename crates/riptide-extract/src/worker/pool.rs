//! [`WorkerPool`]: a fixed number of extraction worker processes, each extracting one
//! page at a time under a deadline.
//!
//! A page that overruns its deadline gets its worker killed at once (SIGKILL, then
//! reaped): no work on it continues after the answer. A worker that dies or breaks the
//! protocol (out of memory, CPU backstop, a crash) is one refused page; either way the
//! next page starts a fresh worker. A caller that goes away mid-page drops its worker,
//! which kills it too. Workers are also replaced after [`PAGES_PER_WORKER`] pages, so
//! what one page left behind in a worker's heap does not build up.
//!
//! `extract_workers_replaced_total{reason}` counts replacements (`deadline`, `crashed`,
//! `abandoned`, `recycled`); each killed or crashed worker is also logged.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Semaphore;

use super::process::{Failed, Worker, WorkerProgram};
use super::protocol::{Init, Job, Reply};
use crate::content::Content;
use crate::error::ExtractError;
use crate::limits::PageLimits;

/// Pages a worker extracts before it is replaced.
pub(crate) const PAGES_PER_WORKER: u32 = 1_000;

/// Room in a reply frame for the JSON around the content, on top of `max_answer_bytes`.
const REPLY_SLACK: usize = 64 * 1024;

/// How the pool runs its workers.
#[derive(Debug, Clone)]
pub(crate) struct PoolSettings {
    pub program: WorkerProgram,
    pub size: usize,
    pub init: Init,
    pub budget: Duration,
}

/// The extraction workers of one [`crate::Extractor`].
pub(crate) struct WorkerPool {
    settings: PoolSettings,
    slots: Semaphore,
    idle: Mutex<Vec<Worker>>,
}

impl WorkerPool {
    /// Starts every worker, so a program that cannot serve as a worker is an error now
    /// rather than at the first page.
    pub(crate) async fn start(settings: PoolSettings) -> Result<Self, ExtractError> {
        let mut idle = Vec::with_capacity(settings.size);
        for _ in 0..settings.size {
            idle.push(Worker::start(&settings.program, &settings.init).await?);
        }
        Ok(Self {
            slots: Semaphore::new(settings.size),
            idle: Mutex::new(idle),
            settings,
        })
    }

    /// Extracts `page` (fetched from `base`, declared `charset`) within `limits` and the
    /// pool's time budget.
    pub(crate) async fn extract(
        &self,
        base: &str,
        charset: Option<&str>,
        limits: &PageLimits,
        page: Bytes,
    ) -> Result<Content, ExtractError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| ExtractError::Unavailable("the worker pool is closed".into()))?;
        let popped = self.idle().pop();
        let mut worker = match popped {
            Some(worker) => worker,
            None => Worker::start(&self.settings.program, &self.settings.init).await?,
        };
        let job = Job {
            base: base.to_owned(),
            charset: charset.map(str::to_owned),
            limits: *limits,
            budget_ms: u64::try_from(self.settings.budget.as_millis()).unwrap_or(u64::MAX),
        };
        let max_reply = limits.max_answer_bytes.saturating_add(REPLY_SLACK);
        // If the caller goes away mid-page, this future is dropped with the worker in
        // it: the worker is killed (kill on drop), and the guard counts it.
        let abandoned = Abandoned(Some(base));
        let outcome = worker
            .run(&job, &page, self.settings.budget, max_reply)
            .await;
        abandoned.defuse();
        match outcome {
            Ok(reply) => {
                worker.pages += 1;
                if worker.pages >= PAGES_PER_WORKER {
                    replaced("recycled");
                    worker.kill().await;
                } else {
                    self.idle().push(worker);
                }
                from_reply(reply)
            }
            Err(Failed::Deadline) => {
                replaced("deadline");
                worker.kill().await;
                tracing::warn!(
                    url = base,
                    budget_ms = job.budget_ms,
                    "extraction overran its time budget; its worker was killed"
                );
                Err(ExtractError::TooComplex(format!(
                    "extracting it took longer than {} ms",
                    job.budget_ms
                )))
            }
            Err(Failed::Broken(e)) => {
                replaced("crashed");
                let status = worker.kill().await;
                let status = status.map_or_else(|| "unknown".to_owned(), |s| s.to_string());
                tracing::warn!(url = base, error = %e, worker.status = %status,
                    "extraction worker failed on a page (out of memory or crashed)");
                Err(ExtractError::TooComplex(format!(
                    "its extraction ran out of resources ({status})"
                )))
            }
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Worker>> {
        // A panic while pushing or popping leaves a valid Vec.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counts and logs a page whose caller went away while its worker ran it, unless
/// defused once the page is done.
struct Abandoned<'a>(Option<&'a str>);

impl Abandoned<'_> {
    fn defuse(mut self) {
        self.0 = None;
    }
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if let Some(url) = self.0 {
            replaced("abandoned");
            tracing::info!(
                url,
                "extraction abandoned by its caller; its worker was killed"
            );
        }
    }
}

fn replaced(reason: &'static str) {
    metrics::counter!("extract_workers_replaced_total", "reason" => reason).increment(1);
}

fn from_reply(reply: Reply) -> Result<Content, ExtractError> {
    match reply {
        Reply::Done(content) => {
            if content.dropped_links > 0 {
                metrics::counter!("extract_links_dropped_total")
                    .increment(content.dropped_links as u64);
            }
            Ok(content)
        }
        Reply::TooComplex(why) => Err(ExtractError::TooComplex(why)),
        Reply::Failed(why) => Err(ExtractError::Decode(why)),
    }
}
