//! [`PageRuntime`]: the threads the service fetches and prepares pages on.
//!
//! Everything a page costs inside the service (reading and decompressing its body,
//! reading the worker's answer, serializing the extraction) runs on a runtime of its
//! own, not on the threads that answer requests: a page's work never holds a request
//! thread, and its threads run at the workers' lower priority (niceness, or
//! `SCHED_IDLE`, see [`crate::page_cpu`]), so one tenant's gzip bombs and link floods wait
//! for the CPU behind other tenants' cached answers rather than delaying them.

use std::future::Future;

use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::error::ExtractError;
use crate::page_cpu::{idle_policy, lower_priority, pin_to};

/// A multi-threaded tokio runtime for page work, shut down (its tasks dropped) when
/// this is dropped.
pub(crate) struct PageRuntime(Option<Runtime>);

impl PageRuntime {
    /// `threads` threads at niceness `nice`, under `SCHED_IDLE` when `idle`, on `cpus`
    /// (empty: any).
    pub(crate) fn start(
        threads: usize,
        nice: i32,
        idle: bool,
        cpus: &[usize],
    ) -> Result<Self, ExtractError> {
        let cpus = cpus.to_vec();
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("riptide-pages")
            .enable_all()
            .on_thread_start(move || {
                if let Err(e) = lower_priority(nice) {
                    tracing::warn!(error = %e, nice, "page thread: cannot lower its priority");
                }
                if idle && let Err(e) = idle_policy() {
                    tracing::warn!(error = %e, "page thread: cannot set SCHED_IDLE");
                }
                if let Err(e) = pin_to(&cpus) {
                    tracing::warn!(error = %e, ?cpus, "page thread: cannot run on its CPUs");
                }
            })
            .build()
            .map_err(|e| ExtractError::Config(format!("cannot start the page threads: {e}")))?;
        Ok(Self(Some(runtime)))
    }

    /// Runs `work` on the page threads. Dropping the returned future drops `work` too
    /// (at its next await), so nothing goes on after the caller has gone.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, ExtractError>> + Send + 'static,
    ) -> Result<T, ExtractError> {
        let Some(runtime) = &self.0 else {
            return Err(ExtractError::Unavailable(
                "the page threads are shut down".into(),
            ));
        };
        // The caller's span (request id, tenant) goes along for the log lines.
        let mut task = AbortOnDrop(runtime.spawn(work.instrument(tracing::Span::current())));
        match (&mut task.0).await {
            Ok(result) => result,
            Err(e) => Err(ExtractError::Unavailable(format!("page task: {e}"))),
        }
    }
}

impl Drop for PageRuntime {
    fn drop(&mut self) {
        // Never blocks, so it may run in async code.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Aborts the task when the waiting caller is dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The niceness and scheduling policy of the calling thread
    /// (`/proc/thread-self/stat`, fields 19 and 41).
    fn priority() -> (i32, u32) {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        (fields[16].parse().unwrap(), fields[38].parse().unwrap())
    }

    #[tokio::test]
    async fn page_work_runs_under_sched_idle_off_the_callers_threads() {
        let idle = PageRuntime::start(1, 0, true, &[]).unwrap();
        assert_eq!(idle.run(async { Ok(priority()) }).await.unwrap(), (0, 5));
        let niced = PageRuntime::start(1, 7, false, &[]).unwrap();
        assert_eq!(niced.run(async { Ok(priority()) }).await.unwrap(), (7, 0));
        assert_eq!(priority(), (0, 0), "the caller's thread is left alone");
    }

    #[tokio::test]
    async fn page_work_runs_on_the_chosen_cpus() {
        let cpus = || {
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("Cpus_allowed_list:"));
            line.unwrap()["Cpus_allowed_list:".len()..]
                .trim()
                .to_owned()
        };
        let pinned = PageRuntime::start(1, 0, false, &[0]).unwrap();
        assert_eq!(pinned.run(async move { Ok(cpus()) }).await.unwrap(), "0");
    }

    #[tokio::test]
    async fn a_dropped_caller_stops_its_page_work() {
        let pages = PageRuntime::start(1, 0, false, &[]).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let work = pages.run(async move {
            // Holds the sender until dropped: the receiver sees the drop.
            let _held = tx;
            std::future::pending::<Result<(), ExtractError>>().await
        });
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), work).await;
        assert!(waited.is_err(), "the work never ends by itself");
        let closed = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await;
        assert_eq!(closed, Ok(None), "the work was dropped with its caller");
    }
}
