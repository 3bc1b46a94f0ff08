//! Taking a checkpoint: tenants collected a few at a time and streamed to the writer
//! thread, which renames the file into place only when it is complete (and, for the
//! scheduled job, only while its lease holds).

use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;

use super::audit_anchor::audit_anchor;
use super::collect::{self, Sealing, TenantTally, collect_tenant};
use super::error::task_err;
use super::files::{datetime, new_id};
use super::format::{self, Footer, Header, Line, Meta};
use super::redact::redact_secrets;
use super::write::{WriteError, WriteMsg, write_file_gated};
use super::zset_pages::{ZSET_PAGE, ZsetCursor};
use super::{
    CONCURRENCY, CheckpointError, CheckpointExtra, CheckpointInfo, CheckpointManager, LATEST,
    WRITE_QUEUE, record, restore,
};
use riptide_store::Durability;
use riptide_store::fence::LeaseToken;
use riptide_store::tenant_id::TenantId;

impl CheckpointManager {
    /// Takes a checkpoint (see the module docs for what it holds), writes it atomically,
    /// prunes old ones, and returns its listing. Records `checkpoint_duration_seconds`.
    /// On failure no file is left behind.
    pub async fn create(&self, extra: CheckpointExtra) -> Result<CheckpointInfo, CheckpointError> {
        self.create_with(extra, None).await
    }

    /// [`Self::create`] for the scheduled checkpoint job, under its singleton lease:
    /// once the file is complete and fsynced, and before it is renamed into place, its id
    /// is recorded with a fenced write (`<p>:lease:{checkpoint}:latest`, see
    /// [`riptide_store::fence::LeaseToken::set`]). When the store refuses it (the holding went
    /// stale, e.g. this instance was paused past its lease while writing) the temp file
    /// is removed, nothing is renamed and nothing pruned: a stale holder's checkpoint
    /// never appears, let alone as the newest one, nor pushes newer ones out. The record
    /// and the rename run on the writer's thread, so they happen (or not) together even
    /// when the job itself is dropped meanwhile.
    pub async fn create_fenced(
        &self,
        extra: CheckpointExtra,
        lease: &LeaseToken,
    ) -> Result<CheckpointInfo, CheckpointError> {
        self.create_with(extra, Some(lease)).await
    }

    async fn create_with(
        &self,
        extra: CheckpointExtra,
        lease: Option<&LeaseToken>,
    ) -> Result<CheckpointInfo, CheckpointError> {
        let started = Instant::now();
        let result = self.create_inner(extra, lease).await;
        record("create", started, &result);
        match &result {
            Ok(info) => {
                metrics::gauge!("checkpoint_size_bytes").set(info.size_bytes as f64);
                tracing::info!(
                    checkpoint.id = %info.id,
                    checkpoint.size_bytes = info.size_bytes,
                    checkpoint.tenants = info.tenants,
                    checkpoint.sessions = info.sessions,
                    duration_ms = started.elapsed().as_millis() as u64,
                    "checkpoint written"
                );
            }
            Err(e) => tracing::error!(error = %e, "checkpoint failed"),
        }
        result
    }

    async fn create_inner(
        &self,
        extra: CheckpointExtra,
        lease: Option<&LeaseToken>,
    ) -> Result<CheckpointInfo, CheckpointError> {
        let now_ms = self.clock.now_ms();
        let id = new_id(now_ms);
        if self.master.load().is_some() {
            // Deletions this instance missed shred before anything new is written.
            self.prune_keys().await?;
        }
        // The writer creates the directory (mode 0700) before its temp file.
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let writer = {
            let (dir, id) = (self.dir.clone(), id.clone());
            let gate = lease.map(|lease| (lease.clone(), tokio::runtime::Handle::current()));
            tokio::task::spawn_blocking(move || {
                write_file_gated(&dir, &id.clone(), Header::new(now_ms), rx, || match gate {
                    Some((lease, runtime)) => runtime.block_on(record_latest(&lease, &id)),
                    None => Ok(()),
                })
            })
        };
        let collected = self.collect(&id, now_ms, &extra, tx).await;
        // The sender is gone now: the writer either finished or removes its temp file.
        let written = writer.await.map_err(task_err)?;
        let (_, size, footer) = match (collected, written) {
            (Ok(_), Ok(done)) => done,
            (_, Err(WriteError::Io(action, source))) => {
                return Err(CheckpointError::Io {
                    action: action.to_owned(),
                    source,
                });
            }
            (Err(e), _) => return Err(e),
            (_, Err(WriteError::Refused(e))) => return Err(CheckpointError::Fenced(e)),
            (Ok(_), Err(WriteError::Aborted)) => return Err(CheckpointError::WriterStopped),
        };
        self.prune().await;
        Ok(CheckpointInfo {
            id,
            created_at: datetime(now_ms),
            size_bytes: size,
            tenants: footer.tenants,
            sessions: footer.sessions,
            valid: true,
            problem: None,
        })
    }

    /// Streams the meta line, every tenant and the end line to the writer.
    async fn collect(
        &self,
        id: &str,
        now_ms: u64,
        extra: &CheckpointExtra,
        tx: mpsc::Sender<WriteMsg>,
    ) -> Result<(), CheckpointError> {
        let store = &*self.store;
        // Sealed, each tenant's part of the warm list goes with its other lines.
        let sealed = self.master.load().is_some();
        let (shared_warm, mut tenant_warm) = split_warm_list(&extra.warm_list, sealed);
        let mut head = collect::Sink::new(tx.clone());
        head.push(&Line::Meta(Meta {
            id: id.into(),
            format: format::FORMAT_VERSION,
            created_at_ms: now_ms,
            key_prefix: store.key_prefix().into(),
            store_kind: store.kind().as_str().into(),
            config: extra
                .config
                .as_ref()
                .map(|c| std::borrow::Cow::Owned(redact_secrets(c))),
            warm_list: std::borrow::Cow::Owned(shared_warm),
            audit: audit_anchor(store).await,
        }))
        .await?;
        head.flush().await?;
        // Tenants are read a few at a time, fed from the registry a page at a time. The
        // futures own what they use (no borrowed store), so `create` can be spawned.
        let mut cursor = ZsetCursor::new(
            restore::registry_key(store.key_prefix()),
            i64::MIN,
            ZSET_PAGE,
        );
        let mut pending = std::collections::VecDeque::new();
        let mut running = FuturesUnordered::new();
        let mut exhausted = false;
        let mut total = TenantTally::default();
        let sealing = self.master.load_full().map(|master| Sealing {
            master: (*master).clone(),
            checkpoint: id.into(),
        });
        let mut sealed_with = Vec::new();
        loop {
            while running.len() < CONCURRENCY {
                if pending.is_empty() && !exhausted {
                    let page = cursor.next(store).await?;
                    exhausted = page.is_empty();
                    pending.extend(page);
                }
                let Some((raw, score)) = pending.pop_front() else {
                    break;
                };
                let Ok(tenant) = TenantId::parse(&raw) else {
                    tracing::warn!(tenant.id = %raw, "invalid tenant id in the registry; not in the checkpoint");
                    continue;
                };
                let warm = tenant_warm.remove(tenant.as_str()).unwrap_or_default();
                running.push(collect_tenant(
                    self.store.clone(),
                    tx.clone(),
                    tenant,
                    score,
                    now_ms,
                    sealing.clone(),
                    warm,
                ));
            }
            match running.next().await {
                Some(done) => {
                    let done = done?;
                    total = total.add(done.tally);
                    sealed_with.extend(done.key);
                }
                None => break,
            }
        }
        // The keys are kept before the checkpoint is complete, so no checkpoint is ever
        // renamed into place that its directory cannot open.
        self.remember_keys(sealed_with).await?;
        let lines = head.lines + total.lines + 1;
        let mut tail = collect::Sink::new(tx.clone());
        tail.push(&Line::End {
            tenants: total.tenants,
            sessions: total.sessions,
            lines,
        })
        .await?;
        tail.flush().await?;
        tx.send(WriteMsg::Finish(Footer {
            body_len: 0,
            tenants: total.tenants,
            sessions: total.sessions,
            lines,
        }))
        .await
        .map_err(|_| CheckpointError::WriterStopped)
    }
}

/// Warm list entries: `(tenant, url)`.
type WarmList = Vec<(Option<String>, String)>;

/// The warm list split into what the meta line carries and, when tenants are sealed,
/// each tenant's URLs (which go into its sealed part).
fn split_warm_list(
    warm: &[(Option<String>, String)],
    sealed: bool,
) -> (WarmList, std::collections::HashMap<String, Vec<String>>) {
    if !sealed {
        return (warm.to_vec(), Default::default());
    }
    let mut shared = Vec::new();
    let mut per_tenant: std::collections::HashMap<String, Vec<String>> = Default::default();
    for (tenant, url) in warm {
        match tenant {
            Some(t) => per_tenant.entry(t.clone()).or_default().push(url.clone()),
            None => shared.push((None, url.clone())),
        }
    }
    (shared, per_tenant)
}

/// Records `id` as the latest scheduled checkpoint, fenced by `lease`: the gate of its
/// file's rename (see [`CheckpointManager::create_fenced`]).
async fn record_latest(
    lease: &LeaseToken,
    id: &str,
) -> Result<(), riptide_store::fence::FenceError> {
    lease
        .set(LATEST, id.as_bytes(), None, Durability::Durable)
        .await
}
