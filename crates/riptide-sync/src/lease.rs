//! Singleton jobs: a job runs on the one instance holding its lease.
//!
//! Each instance runs the same loop for a job named `<name>`:
//!
//! - **not holding**: try `lease(<p>:lease:{<name>}, <instance id>, lease_ttl_ms, Acquire)`
//!   every `lease_ttl_ms / 3`, and when another instance holds it, again right when that
//!   holding would expire, so a dead holder is replaced within one `lease_ttl_ms` of its
//!   last renewal;
//! - **holding**: renew at the same cadence and run the job every `interval`; the job
//!   gets the holding's fencing token ([`LeaseToken`]), and makes its store writes
//!   through it, so the store refuses them once the holding is stale (`fence.rs`). A renewal that shows the lease lost (another holder, a new token),
//!   or failed renewals until the holding's known expiry, end the holding: no run
//!   starts any more, and a run in progress may go on for one more `lease_ttl_ms` (its
//!   writes are refused, so it stops at its next one) before its future is dropped;
//! - **shutdown**: the job is dropped, the lease released and the gauge zeroed.
//!
//! A run that panics is counted (`sync_job_panics_total{job}`) and logged, and the
//! schedule goes on.
//!
//! The time of the last run is kept beside the lease (`<p>:lease:{<name>}:last_run`,
//! the injected clock's milliseconds, written fenced), so a new holder continues the
//! schedule instead of running the job again at once; a refused write of it ends the
//! holding here as a lost renewal does. Jobs must therefore be cancel-safe at their
//! `.await` points (write atomically, as checkpoints do).

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::metrics::{job_panicked, leader_gauge};
use super::{Shared, SyncError};
use riptide_store::fence::{Fence, FenceError, LeaseToken, fenced_key, fenced_writes_refused};
use riptide_store::{Durability, LeaseOp, LeaseState};

/// Most singleton jobs one instance runs at once.
pub const MAX_SINGLETON_JOBS: usize = 64;

/// Longest job name, in bytes.
pub const MAX_JOB_NAME_LEN: usize = 64;

/// The fenced key (beside the lease) of the time of the last run.
const LAST_RUN: &str = "last_run";

/// Shortest pause between lease attempts, so a lease about to expire is not polled hot.
const MIN_WAIT: Duration = Duration::from_millis(5);

/// How long releasing the lease may take on shutdown.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// What this instance last learned about a job's lease.
#[derive(Debug, Clone, Default)]
pub(crate) struct JobView {
    /// The holder then, if any.
    pub(crate) holder: Option<String>,
}

/// Validates a job name: `^[a-z0-9_-]{1,64}$`.
pub(crate) fn validate_job_name(name: &str) -> Result<(), SyncError> {
    if !name.is_empty()
        && name.len() <= MAX_JOB_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        Ok(())
    } else {
        Err(SyncError::Job(format!(
            "job name {:?}: expected ^[a-z0-9_-]{{1,{MAX_JOB_NAME_LEN}}}$",
            riptide_store::tenant_id::truncate_for_error(name)
        )))
    }
}

/// The lease renewal (and retry) cadence: a third of the lease, at least 10 ms.
pub(crate) fn renew_every(lease_ttl_ms: u64) -> Duration {
    Duration::from_millis((lease_ttl_ms / 3).max(10))
}

/// A holding as this instance knows it.
struct Held {
    token: u64,
    /// The holding surely lasts until then: request time + granted TTL.
    valid_until: Instant,
    /// When to renew next.
    renew_at: Instant,
}

/// Why holding ended.
enum Ended {
    /// The lease was lost; try again.
    Lost,
    /// Shutdown.
    Cancelled,
}

/// One job's loop on one instance.
pub(crate) struct Singleton {
    pub(crate) shared: Arc<Shared>,
    pub(crate) name: String,
    pub(crate) interval: Duration,
    pub(crate) cancel: CancellationToken,
}

impl Singleton {
    fn key(&self) -> String {
        format!("{}:lease:{{{}}}", self.shared.store.key_prefix(), self.name)
    }

    fn last_run_key(&self) -> String {
        fenced_key(&self.key(), LAST_RUN)
    }

    fn tick(&self) -> Duration {
        renew_every(self.shared.cfg.lease_ttl_ms)
    }

    /// Runs the loop until cancelled; `job` runs while this instance holds the lease.
    pub(crate) async fn run<F, Fut>(self, job: F)
    where
        F: Fn(LeaseToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let gauge = leader_gauge(&self.name);
        gauge.set(0.0);
        // Registered at 0, so the series exists before the first refusal.
        fenced_writes_refused(&self.name).increment(0);
        let key = self.key();
        let fence = Arc::new(Fence::new(
            self.shared.store.clone(),
            self.name.clone(),
            key.clone(),
        ));
        loop {
            let sent = Instant::now();
            let wait = match self.lease_op(&key, LeaseOp::Acquire).await {
                Ok(state) if state.held => {
                    let held = self.held(&state, sent);
                    gauge.set(1.0);
                    tracing::info!(
                        job = %self.name, instance.id = %self.shared.id, token = state.token,
                        "took the singleton lease"
                    );
                    let ended = self.hold(&key, &fence, &job, held).await;
                    gauge.set(0.0);
                    match ended {
                        Ended::Cancelled => break,
                        Ended::Lost => {
                            tracing::warn!(
                                job = %self.name, instance.id = %self.shared.id,
                                "lost the singleton lease; the job was stopped"
                            );
                            self.tick()
                        }
                    }
                }
                // Another holder: try again when its holding would expire.
                Ok(state) => self
                    .tick()
                    .min(Duration::from_millis(state.ttl_ms.saturating_add(1)))
                    .max(MIN_WAIT),
                Err(e) => {
                    self.shared
                        .store_log
                        .warn(&format!("lease for job {}: {e}", self.name));
                    self.tick()
                }
            };
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        self.release(&key).await;
        gauge.set(0.0);
        self.shared.forget_job(&self.name);
    }

    /// One lease step, recording the holder it reports.
    async fn lease_op(&self, key: &str, op: LeaseOp) -> Result<LeaseState, SyncError> {
        let state = self
            .shared
            .store
            .lease(key, &self.shared.id, self.shared.cfg.lease_ttl_ms, op)
            .await?;
        self.shared.observe_job(&self.name, state.holder.clone());
        Ok(state)
    }

    fn held(&self, state: &LeaseState, sent: Instant) -> Held {
        let granted = state.ttl_ms.min(self.shared.cfg.lease_ttl_ms);
        Held {
            token: state.token,
            valid_until: sent + Duration::from_millis(granted),
            renew_at: sent + self.tick(),
        }
    }

    /// While holding: renew, and run the job on schedule. Returns when the lease is lost
    /// or on shutdown.
    async fn hold<F, Fut>(&self, key: &str, fence: &Arc<Fence>, job: &F, mut held: Held) -> Ended
    where
        F: Fn(LeaseToken) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut next_run = self.first_run().await;
        // Set when a renewal during a run showed the lease lost: the run's deadline.
        let mut lost_by: Option<Instant> = None;
        loop {
            if Instant::now() >= next_run {
                // A panicking run (in the call or in the future) is reported and the
                // schedule goes on: the task, its lease and its gauge must not die with it.
                let token = LeaseToken::new(fence.clone(), held.token);
                let panicked = match catch_unwind(AssertUnwindSafe(|| job(token.clone()))) {
                    Ok(run) => {
                        let run = AssertUnwindSafe(run).catch_unwind();
                        tokio::pin!(run);
                        loop {
                            tokio::select! {
                                biased;
                                () = self.cancel.cancelled() => return Ended::Cancelled,
                                outcome = &mut run => break outcome.is_err(),
                                () = tokio::time::sleep_until(held.renew_at), if lost_by.is_none() => {
                                    if !self.renew(key, &mut held).await {
                                        lost_by = Some(self.lost_mid_run());
                                    }
                                }
                                () = tokio::time::sleep_until(lost_by.unwrap_or(next_run)), if lost_by.is_some() => {
                                    return Ended::Lost;
                                }
                            }
                        }
                    }
                    Err(_) => true,
                };
                if panicked {
                    job_panicked(&self.name);
                    tracing::error!(job = %self.name, "a singleton job run panicked");
                }
                if lost_by.is_some() || !self.record_run(&token).await {
                    return Ended::Lost;
                }
                next_run = Instant::now() + self.interval;
                continue;
            }
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Ended::Cancelled,
                () = tokio::time::sleep_until(next_run.min(held.renew_at)) => {}
            }
            if Instant::now() >= held.renew_at && !self.renew(key, &mut held).await {
                return Ended::Lost;
            }
        }
    }

    /// The lease was seen lost while a run is in progress: the run may go on for one more
    /// `lease_ttl_ms`, then it is dropped. Every write it makes is fenced, so the next
    /// one is refused and the run stops by itself, learning that it was replaced (and
    /// cleaning up: a checkpoint's file is removed), instead of being dropped at whatever
    /// `.await` it had reached when this instance resumed from a pause. Returns the
    /// deadline.
    fn lost_mid_run(&self) -> Instant {
        leader_gauge(&self.name).set(0.0);
        tracing::warn!(
            job = %self.name, instance.id = %self.shared.id,
            "lost the singleton lease during a run; its writes are refused from now on"
        );
        Instant::now() + Duration::from_millis(self.shared.cfg.lease_ttl_ms)
    }

    /// Renews the holding. False when it is lost: another holder, a new token, or no
    /// successful renewal before the holding's known expiry.
    async fn renew(&self, key: &str, held: &mut Held) -> bool {
        let sent = Instant::now();
        match self.lease_op(key, LeaseOp::Acquire).await {
            Ok(state) if state.held && state.token == held.token => {
                *held = self.held(&state, sent);
                true
            }
            // Another holder, or ours expired and was taken again under a new token:
            // either way the running job's token is stale.
            Ok(_) => false,
            Err(e) => {
                self.shared
                    .store_log
                    .warn(&format!("renewing the lease of job {}: {e}", self.name));
                held.renew_at = Instant::now() + self.tick() / 2;
                Instant::now() < held.valid_until
            }
        }
    }

    /// When the first run under a new holding is due: `interval` after the last run on
    /// any instance, or now.
    async fn first_run(&self) -> Instant {
        let now = Instant::now();
        let last = match self.shared.store.get(&self.last_run_key()).await {
            Ok(Some(raw)) => std::str::from_utf8(&raw)
                .ok()
                .and_then(|s| s.parse::<u64>().ok()),
            Ok(None) => None,
            Err(e) => {
                self.shared
                    .store_log
                    .warn(&format!("reading the last run of job {}: {e}", self.name));
                None
            }
        };
        let Some(last) = last else { return now };
        let since = Duration::from_millis(self.shared.clock.now_ms().saturating_sub(last));
        now + self.interval.saturating_sub(since)
    }

    /// Records the time of a finished run (a hint for the next holder's schedule),
    /// fenced. False when the store refused it: the holding is stale.
    async fn record_run(&self, lease: &LeaseToken) -> bool {
        let now = self.shared.clock.now_ms();
        let interval_ms = u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX);
        let ttl = interval_ms
            .saturating_mul(2)
            .saturating_add(self.shared.cfg.lease_ttl_ms);
        match lease
            .set(
                LAST_RUN,
                now.to_string().as_bytes(),
                Some(ttl),
                Durability::Cache,
            )
            .await
        {
            Ok(()) => true,
            Err(FenceError::Stale { .. }) => false,
            Err(e) => {
                self.shared
                    .store_log
                    .warn(&format!("recording the last run of job {}: {e}", self.name));
                true
            }
        }
    }

    /// Gives the lease up on shutdown (a no-op when another instance holds it).
    async fn release(&self, key: &str) {
        match tokio::time::timeout(RELEASE_TIMEOUT, self.lease_op(key, LeaseOp::Release)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(
                job = %self.name, error = %e,
                "could not release the singleton lease; it expires by itself"
            ),
            Err(_) => tracing::warn!(
                job = %self.name,
                "releasing the singleton lease timed out; it expires by itself"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_checked() {
        for ok in ["checkpoint", "cache-warming", "a_1", &"j".repeat(64)] {
            assert!(validate_job_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Checkpoint", "a b", "a:b", "{x}", &"j".repeat(65)] {
            assert!(validate_job_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn renewal_is_a_third_of_the_lease() {
        assert_eq!(renew_every(300), Duration::from_millis(100));
        assert_eq!(renew_every(5_000), Duration::from_millis(1_666));
        assert_eq!(renew_every(12), Duration::from_millis(10));
    }
}
