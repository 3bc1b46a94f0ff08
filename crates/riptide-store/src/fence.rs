//! Fenced writes of singleton jobs: a job writes through its [`LeaseToken`], and the
//! store refuses the write atomically unless the token is still the live holding's
//! (see [`crate::Coordination::set_fenced`]).
//!
//! This is what stops a holder that was paused (a stop signal, a long GC-like stall, a
//! frozen VM) past its lease: when it resumes, its job may still be in the middle of a
//! run and reach a write before its next renewal shows the lease lost. The write is then
//! refused, counted in `sync_fenced_writes_refused_total{job}`, logged, and returned to
//! the job as [`FenceError::Stale`], so the run stops there.
//!
//! Fenced keys live under the lease's hash tag (`<p>:lease:{<job>}:<name>`), so the
//! lease and the key are one slot on a Redis Cluster and one script can check the one
//! and write the other.
//!
//! A leaf under the state and sync layers: the sync layer's singleton jobs hand out
//! tokens, the state layer's scheduled checkpoint writes with one.

use std::sync::Arc;

use metrics::Counter;
use thiserror::Error;

use crate::{Durability, SharedStore, StoreError};

/// Name of the counter of refused fenced writes.
pub const FENCED_WRITES_REFUSED: &str = "sync_fenced_writes_refused_total";

/// A fenced write that did not happen.
#[derive(Debug, Error)]
pub enum FenceError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The write was refused because the token's holding of the job's lease is no
    /// longer the live one. Nothing was written.
    #[error("job {job}: fencing token {token} is stale; the write was refused")]
    Stale {
        /// The job.
        job: String,
        /// The stale token.
        token: u64,
    },
}

/// The holding a job runs under: its fencing token, and the fenced writes made with it.
#[derive(Clone)]
pub struct LeaseToken {
    /// The fencing token: it grows with every new holding of this job's lease, so a
    /// store write tagged with it can refuse a holder that has since been replaced.
    pub token: u64,
    fence: Arc<Fence>,
}

/// What every run of one job's loop shares.
pub struct Fence {
    store: SharedStore,
    job: String,
    lease_key: String,
}

impl Fence {
    /// The fence of `job`, whose lease is held under `lease_key` in `store`.
    pub fn new(store: SharedStore, job: String, lease_key: String) -> Self {
        Self {
            store,
            job,
            lease_key,
        }
    }
}

impl std::fmt::Debug for LeaseToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseToken")
            .field("job", &self.fence.job)
            .field("token", &self.token)
            .finish()
    }
}

impl LeaseToken {
    /// A token for `fence`'s job, as the sync layer's lease hands it out. Minting one
    /// grants nothing: the store refuses a write whose token is not the live holding's.
    pub fn new(fence: Arc<Fence>, token: u64) -> Self {
        Self { token, fence }
    }

    /// The job's name.
    pub fn job(&self) -> &str {
        &self.fence.job
    }

    /// The store key `<p>:lease:{<job>}:<name>`: under the lease's hash tag, so it can be
    /// written by [`Self::set`].
    pub fn key(&self, name: &str) -> String {
        fenced_key(&self.fence.lease_key, name)
    }

    /// Writes [`Self::key`]`(name)` only while this holding is the lease's live one, in
    /// one atomic step of the store. A stale holding writes nothing and gets
    /// [`FenceError::Stale`] (counted and logged here).
    pub async fn set(
        &self,
        name: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
        durability: Durability,
    ) -> Result<(), FenceError> {
        let written = self
            .fence
            .store
            .set_fenced(
                &self.fence.lease_key,
                self.token,
                &self.key(name),
                value,
                ttl_ms,
                durability,
            )
            .await?;
        if written {
            return Ok(());
        }
        fenced_writes_refused(&self.fence.job).increment(1);
        tracing::warn!(
            job = %self.fence.job, fencing_token = self.token, key = name,
            "a write under a stale singleton lease was refused"
        );
        Err(FenceError::Stale {
            job: self.fence.job.clone(),
            token: self.token,
        })
    }
}

/// `<lease key>:<name>`.
pub fn fenced_key(lease_key: &str, name: &str) -> String {
    format!("{lease_key}:{name}")
}

/// The `sync_fenced_writes_refused_total{job}` counter of one singleton job.
pub fn fenced_writes_refused(job: &str) -> Counter {
    metrics::counter!(FENCED_WRITES_REFUSED, "job" => job.to_owned())
}
