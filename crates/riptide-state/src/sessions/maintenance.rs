//! Background and whole-tier work: spilling everything at shutdown, sweeping expired
//! sessions, exporting and importing sessions for checkpoints, dropping local copies.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::memory::SessionKey;
use super::model::{Session, validate_session_id};
use super::spill::{self, EXTENSION};
use super::{Access, SessionManager, SessionResult, index_key, ledger_key, record_key, score};
use riptide_store::keys::{Scope, ScopeKeys};
use riptide_store::tenant_id::{AsTenantId, TenantId};

/// Tenants one sweep visits.
const SWEEP_TENANTS: u64 = 256;
/// Expired sessions one sweep removes from the store.
const SWEEP_SESSIONS: u64 = 1_000;
/// Expired local copies one sweep drops.
const SWEEP_LOCAL: usize = 10_000;
/// Tenant directories of the spill dir one sweep visits.
const SWEEP_SPILL_DIRS: usize = 16;
/// Files of one tenant directory one sweep looks at.
const SWEEP_SPILL_FILES: usize = 1_000;
/// Directory entries read at most per listing.
const MAX_SCAN: usize = 100_000;
/// Sessions read per store round trip by an export.
const EXPORT_PAGE: u64 = 500;

/// What [`SessionManager::spill_all`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SpillAllReport {
    /// Sessions written to spill files.
    pub spilled: u64,
    /// Sessions whose file could not be written (they are in the store).
    pub failed: u64,
}

/// What one [`SessionManager::sweep_expired`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Tenants whose index was examined.
    pub tenants_scanned: u64,
    /// Expired sessions removed from the store.
    pub expired_removed: u64,
    /// Bytes released from tenants' `storage_bytes`.
    pub bytes_released: u64,
    /// Expired sessions dropped from memory and the spill index.
    pub local_dropped: u64,
    /// Spill files removed (expired, stale, or left by an earlier process and unusable).
    pub spill_files_removed: u64,
    /// True when the sweep stopped at a bound with work left.
    pub more: bool,
}

impl SessionManager {
    /// Writes every session in memory to its spill file (for a graceful shutdown), so
    /// a restart over the same spill dir serves them without reading the store. Never
    /// deletes anything from the store; a file that cannot be written is counted (the
    /// store still has the session). Spills queued before are written first, and the
    /// background writer stops (a later eviction starts it again).
    pub async fn spill_all(&self) -> SpillAllReport {
        self.stop_spill_writer().await;
        let victims = self.lock_tiers().drain_memory();
        let (spilled, failed) = self.write_victims(victims).await;
        SpillAllReport { spilled, failed }
    }

    /// Drops every local copy (memory and this process's spill files), e.g. after the
    /// sync layer may have missed change notices, or after a checkpoint restore. The
    /// store is not touched.
    pub async fn clear_local(&self) {
        let spilled = self.lock_tiers().clear();
        let _io = self.spill.io.lock().await;
        for key in spilled {
            self.remove_file_logged(&self.spill.path(&key)).await;
        }
    }

    /// Removes every session of `tenant`, which was deleted: from the store (records,
    /// index, ledger, its entry among tenants with sessions), from memory, and from
    /// disk (its spill files, and its spill directory with files earlier processes
    /// left). Sealed sessions are unreadable once the tenant's data key is gone; a
    /// standard tenant's cookies must not outlive it either. Idempotent; run by every
    /// instance that hears of the deletion.
    pub async fn purge_tenant(&self, tenant: &TenantId) -> SessionResult<u64> {
        let spilled = self.lock_tiers().bury_tenant(tenant);
        {
            let _io = self.spill.io.lock().await;
            for key in &spilled {
                self.remove_file_logged(&self.spill.path(key)).await;
            }
            let dir = self.spill.root().join(tenant.as_str());
            if let Err(e) = self.spill.run(dir, spill::remove_dir).await {
                tracing::warn!(tenant.id = %tenant, error = %e, "cannot remove a deleted tenant's spill directory");
            }
        }
        let scope = ScopeKeys::new(self.store.key_prefix(), &Scope::Tenant(tenant.clone()));
        let index = index_key(&scope);
        let mut removed = 0;
        loop {
            let page = self.store.zset_range(&index, 0, EXPORT_PAGE).await?;
            if page.is_empty() {
                break;
            }
            let ids: Vec<String> = page.into_iter().map(|(id, _)| id).collect();
            let records: Vec<String> = ids.iter().map(|id| record_key(&scope, id)).collect();
            removed += self.store.delete(&records).await?;
            self.store.zset_remove(&index, &ids).await?;
        }
        self.store.delete(&[index, ledger_key(&scope)]).await?;
        self.store
            .zset_remove(&self.registry_key(), &[tenant.to_string()])
            .await?;
        Ok(removed)
    }

    /// One bounded sweep: drops expired local copies, removes up to 1,000 expired
    /// sessions of up to 256 tenants from the store (index, ledger, record) releasing
    /// their `storage_bytes`, and looks at part of the spill dir for files that are
    /// expired or were left by an earlier process and can no longer be used. Call it
    /// periodically ([`SessionManager::run_sweeper`]); `more` says whether work was
    /// left.
    pub async fn sweep_expired(&self) -> SessionResult<SweepReport> {
        let now = self.now_ms();
        let mut report = SweepReport::default();
        let dropped = self.lock_tiers().drop_expired(now, SWEEP_LOCAL);
        report.local_dropped = dropped.len() as u64;
        report.more |= dropped.len() >= SWEEP_LOCAL;
        for (key, had_spill) in dropped {
            if had_spill {
                self.delete_spill_file(&key).await;
                report.spill_files_removed += 1;
            }
        }
        self.sweep_store(now, &mut report).await?;
        self.sweep_spill_dir(now, &mut report).await;
        Ok(report)
    }

    async fn sweep_store(&self, now: u64, report: &mut SweepReport) -> SessionResult<()> {
        let registry = self.registry_key();
        let offset = self.lock_sweep().tenant_offset;
        let tenants = self
            .store
            .zset_range(&registry, offset, SWEEP_TENANTS)
            .await?;
        let mut budget = SWEEP_SESSIONS;
        // Tenants visited that stay in the registry: the next sweep starts after them.
        let mut kept = 0u64;
        let mut finished = true;
        for (tenant, _) in &tenants {
            if budget == 0 {
                finished = false;
                break;
            }
            let Ok(id) = TenantId::parse(tenant) else {
                self.store
                    .zset_remove(&registry, std::slice::from_ref(tenant))
                    .await?;
                continue;
            };
            report.tenants_scanned += 1;
            let ctx = self.context(id.as_str(), Access::Internal).await?;
            let (removed, released) = self.prune_tenant(&ctx, now, budget).await?;
            budget = budget.saturating_sub(removed);
            report.expired_removed += removed;
            report.bytes_released += released;
            let index = index_key(&ctx.keys);
            if self.store.zset_len(&index).await? == 0 {
                // Drop the tenant from the registry, then look again: a create that
                // raced this puts it back.
                self.store
                    .zset_remove(&registry, std::slice::from_ref(tenant))
                    .await?;
                if self.store.zset_len(&index).await? > 0 {
                    self.register_tenant(&ctx, now).await?;
                    kept += 1;
                }
            } else {
                kept += 1;
            }
        }
        let wrapped = finished && (tenants.len() as u64) < SWEEP_TENANTS;
        self.lock_sweep().tenant_offset = if wrapped { 0 } else { offset + kept };
        self.counters
            .expired_removed
            .fetch_add(report.expired_removed, Ordering::Relaxed);
        report.more |= budget == 0 || !finished;
        Ok(())
    }

    /// Visits a few tenant directories of the spill dir: removes files that are
    /// expired, unreadable, or (when not this process's own) no longer match the
    /// store's index. When a whole pass finds no files of an earlier process, misses
    /// stop looking for them.
    async fn sweep_spill_dir(&self, now: u64, report: &mut SweepReport) {
        let root = self.spill.root().to_owned();
        let after = self.lock_sweep().spill_dir_after.clone();
        let dirs = self
            .spill
            .run(root.clone(), move |p| {
                spill::list_after(p, after.as_deref(), SWEEP_SPILL_DIRS, MAX_SCAN)
            })
            .await
            .unwrap_or_default();
        for dir in &dirs {
            let Ok(tenant) = TenantId::parse(dir) else {
                continue;
            };
            let files = self
                .spill
                .run(root.join(dir), |p| {
                    spill::list_after(p, None, SWEEP_SPILL_FILES, MAX_SCAN)
                })
                .await
                .unwrap_or_default();
            report.more |= files.len() >= SWEEP_SPILL_FILES;
            for name in files {
                report.spill_files_removed += self.sweep_spill_file(&tenant, &name, now).await;
            }
            spill::remove_dir_if_empty(&root.join(dir));
        }
        let mut cursor = self.lock_sweep();
        if dirs.len() < SWEEP_SPILL_DIRS {
            // A pass is complete.
            if cursor.foreign_seen == 0 {
                self.foreign_spill.store(false, Ordering::Relaxed);
            }
            cursor.foreign_seen = 0;
            cursor.spill_dir_after = None;
        } else {
            cursor.spill_dir_after = dirs.last().cloned();
        }
    }

    /// Looks at one spill file; returns 1 when it was removed.
    async fn sweep_spill_file(&self, tenant: &TenantId, name: &str, now: u64) -> u64 {
        let path = self.spill.root().join(tenant.as_str()).join(name);
        let id = name.strip_suffix(&format!(".{EXTENSION}")).unwrap_or("");
        if name.starts_with('.') || validate_session_id(id).is_err() {
            // A temporary file of a crashed write, or not ours at all: temporaries go,
            // anything else is left alone.
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _io = self.spill.io.lock().await;
                return u64::from(self.remove_file_logged(&path).await);
            }
            return 0;
        }
        let key = SessionKey {
            tenant: tenant.clone(),
            id: id.to_owned(),
        };
        let _io = self.spill.io.lock().await;
        if self.lock_tiers().has_spill(&key) {
            // Ours: expiry is handled through the spill index.
            return 0;
        }
        let Some(header) = self.spill_header(path.clone()).await else {
            return u64::from(self.remove_file_logged(&path).await);
        };
        if header.expires_at_ms <= now {
            return u64::from(self.remove_file_logged(&path).await);
        }
        let indexed = self
            .store
            .zset_score(&index_key(&self.scope(tenant)), id)
            .await;
        match indexed {
            Ok(Some(s)) if s == score(header.expires_at_ms) => {
                self.lock_sweep().foreign_seen += 1;
                0
            }
            Ok(_) => u64::from(self.remove_file_logged(&path).await),
            Err(e) => {
                tracing::debug!(error = %e, "store unavailable while sweeping spill files");
                self.lock_sweep().foreign_seen += 1;
                0
            }
        }
    }

    /// Sweeps every `interval` until `cancel` fires (spawn it on the owner's task
    /// tracker). Failures are logged and retried at the next tick; a sweep that left
    /// work runs again at once.
    pub async fn run_sweeper(self: Arc<Self>, interval: Duration, cancel: CancellationToken) {
        let interval = interval.max(Duration::from_millis(10));
        loop {
            let more = match self.sweep_expired().await {
                Ok(r) => {
                    if r.expired_removed > 0 || r.spill_files_removed > 0 {
                        tracing::debug!(
                            sessions.expired = r.expired_removed,
                            bytes.released = r.bytes_released,
                            spill.files_removed = r.spill_files_removed,
                            "session sweep"
                        );
                    }
                    r.more
                }
                Err(e) => {
                    tracing::warn!(error = %e, "session sweep failed; retrying at the next tick");
                    false
                }
            };
            let pause = if more {
                Duration::from_millis(10)
            } else {
                interval
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Every live session of `tenant`, read from the store (for checkpoints). Bounded
    /// by the tenant's index, itself bounded by `max_sessions_per_tenant`.
    pub async fn export_tenant(
        &self,
        tenant: &(impl AsTenantId + ?Sized),
    ) -> SessionResult<Vec<Session>> {
        let ctx = self.context(tenant, Access::Read).await?;
        let now = self.now_ms();
        let index = index_key(&ctx.keys);
        let mut out = Vec::new();
        let mut offset = 0;
        // Expired entries not yet swept may sit in the index too: allow for them.
        let bound = self
            .max_sessions
            .saturating_mul(2)
            .saturating_add(EXPORT_PAGE);
        while offset < bound {
            let page = self.store.zset_range(&index, offset, EXPORT_PAGE).await?;
            offset += page.len() as u64;
            let ids: Vec<String> = page
                .iter()
                .map(|(id, _)| id.clone())
                .filter(|id| validate_session_id(id).is_ok())
                .collect();
            out.extend(self.read_many(&ctx, &ids, now).await?);
            if (page.len() as u64) < EXPORT_PAGE {
                break;
            }
        }
        Ok(out)
    }

    fn lock_sweep(&self) -> std::sync::MutexGuard<'_, super::SweepCursor> {
        self.sweep.lock().unwrap_or_else(|e| e.into_inner())
    }
}
