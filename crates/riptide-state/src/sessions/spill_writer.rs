//! The background spill writer (issue 9): sessions evicted from a full memory tier are
//! written to their spill files by one task per manager, so a request that fills the
//! tier never waits for a file write or an fsync.
//!
//! - **Jobs** run in order: write a victim's file, remove a stale spill file, or answer
//!   a barrier ([`SessionManager::flush_spills`]). A victim is marked
//!   [`SpillState::Writing`](super::memory::SpillState) until its file is in place;
//!   meanwhile a read of it goes to the store, as before.
//! - **Bounded** twice: the channel holds at most [`SPILL_QUEUE`] jobs, and the tiers hand
//!   out victims only while the bytes waiting to be written stay within
//!   [`writing_budget`] (a quarter of `state.session_memory_limit_bytes`, and at least
//!   one largest session).
//! - **Back-pressure never reaches the request.** An eviction past the budget, or a victim
//!   the channel cannot take, leaves memory without a spill file and is counted in
//!   `evicted_unspilled`: no session is lost (the store has every one; it is read from
//!   there when next needed). A slow disk makes the spill tier shed, not requests wait.
//! - **Owned**: started by the first spill, holding only a weak reference to its
//!   manager; it stops when the manager is dropped, and [`SessionManager::spill_all`]
//!   (shutdown) stops it once everything queued is written. A later spill starts it
//!   again.
//!
//! Writing one file: the temporary file is written and fsynced without the spill I/O
//! lock; under the lock the spill index is checked and the file renamed into place (or
//! dropped when the spill was overtaken); the directory fsync follows outside it.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard, Weak};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::codec::{self, MAX_ENCODED_LEN};
use super::memory::{SessionKey, Victim};
use super::{SessionError, SessionManager, SessionResult, record_key, spill};

/// Most jobs waiting for the writer.
pub(super) const SPILL_QUEUE: usize = 4_096;

/// Most bytes (as the memory tier counts them) of evicted sessions waiting to be
/// written: a quarter of the tier's limit, at least one largest session. Sessions held
/// decoded in memory are thus bounded by 1.25 times the limit (plus one session).
pub(super) fn writing_budget(memory_limit: u64) -> u64 {
    (memory_limit / 4).max(MAX_ENCODED_LEN as u64)
}

/// One piece of work for the writer.
pub(super) enum SpillJob {
    /// Write a victim's spill file.
    Write(Victim),
    /// Remove a session's spill file unless a newer spill of it is under way.
    Remove(SessionKey),
    /// Answer once every job queued before it is done.
    Barrier(oneshot::Sender<()>),
}

/// The running writer, if any.
#[derive(Default)]
pub(super) struct SpillQueue {
    running: Mutex<Option<Running>>,
}

struct Running {
    jobs: mpsc::Sender<SpillJob>,
    task: JoinHandle<()>,
}

impl SpillQueue {
    fn lock(&self) -> MutexGuard<'_, Option<Running>> {
        // Holds a sender and a handle: nothing a panic could leave half-updated.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How writing one victim ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SpillOutcome {
    /// Its file is in place.
    Written,
    /// It could not be written (the store still has the session).
    Failed,
    /// Not wanted any more (loaded, changed, dropped or spilled again meanwhile).
    Overtaken,
}

impl SessionManager {
    /// Hands `victims` to the writer without waiting. One it cannot take is abandoned:
    /// out of memory without a spill file, counted (see the module docs).
    pub(super) fn queue_spills(&self, victims: Vec<Victim>) {
        if victims.is_empty() {
            return;
        }
        let jobs = self.spill_jobs(true);
        for v in victims {
            let refused = match &jobs {
                Some(jobs) => match jobs.try_send(SpillJob::Write(v)) {
                    Ok(()) => None,
                    Err(e) => match e.into_inner() {
                        SpillJob::Write(v) => Some(v),
                        SpillJob::Remove(_) | SpillJob::Barrier(_) => None,
                    },
                },
                None => Some(v),
            };
            if let Some(v) = refused {
                tracing::debug!(
                    tenant.id = v.key.tenant.as_str(),
                    "spill queue full: a session leaves memory without a spill file"
                );
                self.lock_tiers().spill_abandoned(&v);
            }
        }
    }

    /// Queues the removal of a stale spill file of `key`; `false` when the writer
    /// cannot take it (the caller removes it itself).
    pub(super) fn queue_removal(&self, key: &SessionKey) -> bool {
        self.spill_jobs(true)
            .is_some_and(|jobs| jobs.try_send(SpillJob::Remove(key.clone())).is_ok())
    }

    /// Waits until every spill queued so far is written (or has failed). Spill files
    /// are written in the background; this is how a caller (a test, a checkpoint)
    /// knows they are on disk.
    pub async fn flush_spills(&self) {
        let Some(jobs) = self.spill_jobs(false) else {
            return;
        };
        let (done, written) = oneshot::channel();
        if jobs.send(SpillJob::Barrier(done)).await.is_ok() {
            // A writer that stops first drops the barrier, which also ends the wait.
            let _ = written.await;
        }
    }

    /// Stops the writer once everything queued is written.
    pub(super) async fn stop_spill_writer(&self) {
        let running = self.spills.lock().take();
        if let Some(Running { jobs, task }) = running {
            drop(jobs);
            if let Err(e) = task.await {
                tracing::error!(error = %e, "the session spill writer ended abnormally");
            }
        }
    }

    /// Test hook: holds the lock every operation on final spill file names takes, as a
    /// slow disk would, until the guard is dropped.
    #[cfg(any(test, feature = "test-hooks"))]
    pub async fn hold_spill_io(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.spill.io.lock().await
    }

    /// The writer's queue; with `start`, starts a writer when none runs (a runtime is
    /// needed for that: outside one there is none, and spills are abandoned).
    fn spill_jobs(&self, start: bool) -> Option<mpsc::Sender<SpillJob>> {
        let mut running = self.spills.lock();
        if let Some(r) = running.as_ref().filter(|r| !r.task.is_finished()) {
            return Some(r.jobs.clone());
        }
        if !start {
            return None;
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (jobs, queue) = mpsc::channel(SPILL_QUEUE);
        let task = runtime.spawn(run_writer(self.me.clone(), queue));
        *running = Some(Running {
            jobs: jobs.clone(),
            task,
        });
        Some(jobs)
    }

    /// Writes the spill files of `victims` one after the other; returns (written,
    /// failed).
    pub(super) async fn write_victims(&self, victims: Vec<Victim>) -> (u64, u64) {
        let (mut written, mut failed) = (0, 0);
        for v in victims {
            match self.write_victim(v).await {
                SpillOutcome::Written => written += 1,
                SpillOutcome::Failed => failed += 1,
                SpillOutcome::Overtaken => {}
            }
        }
        (written, failed)
    }

    /// Writes one victim's spill file (see the module docs) and releases its bytes from
    /// the writing budget.
    async fn write_victim(&self, v: Victim) -> SpillOutcome {
        let outcome = self.write_victim_file(&v).await;
        self.lock_tiers().writing_done(v.bytes);
        outcome
    }

    async fn write_victim_file(&self, v: &Victim) -> SpillOutcome {
        if !self.lock_tiers().spill_wanted(&v.key, v.generation) {
            return SpillOutcome::Overtaken;
        }
        let path = self.spill.path(&v.key);
        let tmp = match self.encode_for_spill(v).await {
            Ok(bytes) => {
                let size = bytes.len() as u64;
                self.spill
                    .run(path.clone(), move |p| spill::write_temp(p, &bytes))
                    .await
                    .map(|tmp| (tmp, size))
            }
            Err(e) => Err(e),
        };
        let (tmp, size) = match tmp {
            Ok(written) => written,
            Err(e) => return self.spill_failed(v, &e),
        };
        {
            let _io = self.spill.io.lock().await;
            if !self.lock_tiers().spill_wanted(&v.key, v.generation) {
                self.discard_temp(tmp).await;
                return SpillOutcome::Overtaken;
            }
            let published = self
                .spill
                .run(path.clone(), move |p| spill::publish(&tmp, p))
                .await;
            if let Err(e) = published {
                return self.spill_failed(v, &e);
            }
            if !self
                .lock_tiers()
                .spill_finished(&v.key, v.generation, Some(size))
            {
                // Overtaken between the check and the rename: the file is not wanted.
                self.remove_file_logged(&path).await;
                return SpillOutcome::Overtaken;
            }
        }
        // Makes the rename durable (what a restart over this spill dir relies on); the
        // file is already served either way.
        let dir = path.parent().map(PathBuf::from).unwrap_or_default();
        if let Err(e) = self.spill.run(dir, spill::sync_dir).await {
            tracing::warn!(error = %e, "cannot fsync a spill directory");
        }
        self.counters.spilled();
        SpillOutcome::Written
    }

    /// Records a failed spill: the index entry goes (the store has the session).
    fn spill_failed(&self, v: &Victim, e: &SessionError) -> SpillOutcome {
        self.lock_tiers().spill_finished(&v.key, v.generation, None);
        self.counters.spill_failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            tenant.id = v.key.tenant.as_str(),
            spill.dir = %self.spill.root().display(),
            error = %e,
            "could not spill a session; it stays in the store only"
        );
        SpillOutcome::Failed
    }

    async fn discard_temp(&self, tmp: PathBuf) {
        let gone = self
            .spill
            .run(tmp, |t| {
                spill::discard(t);
                Ok(())
            })
            .await;
        if let Err(e) = gone {
            tracing::warn!(error = %e, "cannot remove a temporary spill file");
        }
    }

    /// The bytes of a spill file: the store record's format, sealed when the tenant
    /// has a data key.
    async fn encode_for_spill(&self, v: &Victim) -> SessionResult<Vec<u8>> {
        let store_key = record_key(&self.scope(&v.key.tenant), &v.key.id);
        let key = self.open_key(&v.key.tenant).await?;
        codec::encode(&v.session, &store_key, key.as_deref())
    }
}

/// The writer: runs jobs in order until every sender is gone (the manager dropped, or
/// [`SessionManager::stop_spill_writer`]) and the queue is empty.
async fn run_writer(manager: Weak<SessionManager>, mut jobs: mpsc::Receiver<SpillJob>) {
    while let Some(job) = jobs.recv().await {
        let Some(m) = manager.upgrade() else {
            return;
        };
        match job {
            SpillJob::Write(v) => {
                m.write_victim(v).await;
            }
            SpillJob::Remove(key) => m.delete_spill_file(&key).await,
            SpillJob::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }
}
