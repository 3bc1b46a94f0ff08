//! Moving sessions between the tiers: into memory (evicting the least recently used,
//! whose spill files the background writer of `spill_writer.rs` writes), back from spill
//! files, and out of both.
//!
//! The spill tier is a cache of the store, so its failures never fail a call: a spill
//! file that cannot be written is counted and logged and the session simply leaves
//! memory (the store has it); one that cannot be read or opened is removed, logged, and
//! the store is read instead.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::codec::{HEADER_LEN, Header};
use super::memory::{Lookup, SessionKey};
use super::model::Session;
use super::spill;
use super::{Ctx, SessionManager, SessionResult, index_key, record_key};

/// What the local tiers had.
pub(super) enum Local {
    /// A live session.
    Found(Session),
    /// An expired one (now dropped).
    Expired,
    /// Nothing usable: read the store.
    Miss,
}

impl SessionManager {
    /// Looks `key` up in memory, then in the spill files.
    pub(super) async fn local_get(
        &self,
        ctx: &Ctx,
        key: &SessionKey,
        now_ms: u64,
    ) -> SessionResult<Local> {
        let found = self.lock_tiers().lookup(key);
        match found {
            Lookup::Memory(s) if s.is_expired_at(now_ms) => {
                self.drop_local(key).await;
                Ok(Local::Expired)
            }
            Lookup::Memory(s) => Ok(Local::Found((*s).clone())),
            Lookup::Spilled(generation) => Ok(self.load_spilled(key, generation, now_ms).await),
            Lookup::Absent if self.foreign_spill.load(Ordering::Relaxed) => {
                self.adopt_foreign(ctx, key, now_ms).await
            }
            Lookup::Absent => Ok(Local::Miss),
        }
    }

    /// Loads a session this process spilled, deleting its file.
    async fn load_spilled(&self, key: &SessionKey, generation: u64, now_ms: u64) -> Local {
        let path = self.spill.path(key);
        let bytes = {
            let _io = self.spill.io.lock().await;
            let Some(entry) = self.lock_tiers().take_spilled(key, generation) else {
                return Local::Miss;
            };
            if entry.expires_at_ms <= now_ms {
                self.remove_file_logged(&path).await;
                return Local::Expired;
            }
            let read = self
                .spill
                .run(path.clone(), |p| {
                    let bytes = spill::read(p)?;
                    spill::remove(p)?;
                    Ok(bytes)
                })
                .await;
            match read {
                Ok(Some(b)) => b,
                Ok(None) => {
                    tracing::warn!(
                        tenant.id = key.tenant.as_str(),
                        "a spill file vanished; reading the store"
                    );
                    return Local::Miss;
                }
                Err(e) => {
                    tracing::warn!(tenant.id = key.tenant.as_str(), error = %e, "cannot read a spill file; reading the store");
                    self.remove_file_logged(&path).await;
                    return Local::Miss;
                }
            }
        };
        self.adopt_bytes(key, &bytes, now_ms).await
    }

    /// Decodes spill file bytes and puts the session into memory.
    async fn adopt_bytes(&self, key: &SessionKey, bytes: &[u8], now_ms: u64) -> Local {
        let store_key = record_key(&self.scope(&key.tenant), &key.id);
        match self.decode(&key.tenant, &key.id, &store_key, bytes).await {
            Ok(s) if s.is_expired_at(now_ms) => Local::Expired,
            Ok(s) => {
                self.counters.loaded();
                let current = self.insert_local(key.clone(), Arc::new(s)).await;
                Local::Found((*current).clone())
            }
            Err(e) => {
                tracing::warn!(tenant.id = key.tenant.as_str(), error = %e, "cannot open a spill file; reading the store");
                Local::Miss
            }
        }
    }

    /// Uses a spill file left by an earlier process when its header matches the store's
    /// index entry (same expiry: the same version as far as the index knows); removes it
    /// otherwise.
    async fn adopt_foreign(
        &self,
        ctx: &Ctx,
        key: &SessionKey,
        now_ms: u64,
    ) -> SessionResult<Local> {
        let path = self.spill.path(key);
        let bytes = {
            let _io = self.spill.io.lock().await;
            if self.lock_tiers().has_spill(key) {
                return Ok(Local::Miss);
            }
            let Ok(Some(bytes)) = self.spill.run(path.clone(), spill::read).await else {
                return Ok(Local::Miss);
            };
            let header = match Header::parse(&bytes, "spill file") {
                Ok(h) => h,
                Err(_) => {
                    self.remove_file_logged(&path).await;
                    return Ok(Local::Miss);
                }
            };
            if header.expires_at_ms <= now_ms {
                self.remove_file_logged(&path).await;
                return Ok(Local::Expired);
            }
            let indexed = self
                .store
                .zset_score(&index_key(&ctx.keys), &key.id)
                .await?;
            self.remove_file_logged(&path).await;
            if indexed != Some(super::score(header.expires_at_ms)) {
                return Ok(Local::Miss);
            }
            bytes
        };
        Ok(self.adopt_bytes(key, &bytes, now_ms).await)
    }

    /// Puts `session` into memory (unless memory holds a newer version), and hands the
    /// removal of a stale spill file of it and the spills of what that pushed out to
    /// the background writer (`spill_writer.rs`): a request never writes or fsyncs a
    /// spill file. Returns what memory now holds.
    pub(super) async fn insert_local(
        &self,
        key: SessionKey,
        session: Arc<Session>,
    ) -> Arc<Session> {
        let inserted = self.lock_tiers().insert(key.clone(), session);
        if inserted.stale_spill && !self.queue_removal(&key) {
            self.delete_spill_file(&key).await;
        }
        self.queue_spills(inserted.victims);
        inserted.current
    }

    /// Drops `key` from memory and the spill files.
    pub(super) async fn drop_local(&self, key: &SessionKey) {
        if self.lock_tiers().remove(key) {
            self.delete_spill_file(key).await;
        }
    }

    /// Drops `key` and keeps it from coming back (it was terminated).
    pub(super) async fn bury_local(&self, key: &SessionKey) {
        if self.lock_tiers().bury(key) {
            self.delete_spill_file(key).await;
        }
    }

    /// Deletes the spill file of `key` unless a newer spill of it is under way.
    pub(super) async fn delete_spill_file(&self, key: &SessionKey) {
        let _io = self.spill.io.lock().await;
        if !self.lock_tiers().has_spill(key) {
            self.remove_file_logged(&self.spill.path(key)).await;
        }
    }

    /// Removes a file, logging a failure. Callers hold the I/O lock.
    pub(super) async fn remove_file_logged(&self, path: &std::path::Path) -> bool {
        match self.spill.run(path.to_owned(), spill::remove).await {
            Ok(existed) => existed,
            Err(e) => {
                tracing::warn!(error = %e, "cannot remove a spill file");
                false
            }
        }
    }

    /// Reads the header of a spill file (for sweeping files of earlier processes).
    pub(super) async fn spill_header(&self, path: std::path::PathBuf) -> Option<Header> {
        let head = self
            .spill
            .run(path, |p| spill::read_head(p, HEADER_LEN))
            .await
            .ok()??;
        Header::parse(&head, "spill file").ok()
    }
}
