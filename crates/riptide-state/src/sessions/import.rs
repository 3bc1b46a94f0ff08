//! Writing sessions back in bulk ([`SessionManager::import`]): one tenant's run of
//! sessions costs one round trip per structure (registry, index, ledger, records), not
//! several durable commits per session.

use serde::Serialize;

use super::memory::SessionKey;
use super::model::Session;
use super::{
    Access, SessionManager, SessionResult, codec, index_key, ledger_key, record_key, score,
};
use riptide_store::Durability;

/// Sessions written in one batch: a tenant's longer run is split, so one batch stays a
/// bounded store command (and a bounded redb transaction).
const IMPORT_BATCH: usize = 1_000;

/// What [`SessionManager::import`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Sessions written.
    pub imported: u64,
    /// Sessions skipped because they had expired.
    pub expired: u64,
    /// Bytes of the written session records, as the ledger records them.
    pub bytes: u64,
}

impl SessionManager {
    /// Writes sessions back (for a restore or a bulk load): each is validated, expired
    /// ones are skipped, and each is stored as given (same id and version, overwriting
    /// one with its id) with its remaining lifetime, indexed, sealed when its tenant has
    /// encryption, and dropped from local copies. The tenants must exist when the
    /// tenant layer is attached. `storage_bytes` is **not** charged (a restore brings the
    /// tenants' counters back itself; [`ImportReport::bytes`] says what to charge
    /// otherwise), but the ledger records each session's bytes so that terminating it
    /// later releases them.
    ///
    /// Consecutive sessions of one tenant are written together (up to 1,000 at a
    /// time): the index and ledger entries first, then the records in one durable batch. Every session is checked
    /// before anything of its run is written; a failure stops the import there (the
    /// runs before it are written).
    pub async fn import(&self, sessions: Vec<Session>) -> SessionResult<ImportReport> {
        let mut report = ImportReport::default();
        let now = self.now_ms();
        let mut run: Vec<Session> = Vec::new();
        for s in sessions {
            let other_tenant = run.last().is_some_and(|last| last.tenant_id != s.tenant_id);
            if other_tenant || run.len() >= IMPORT_BATCH {
                self.import_run(std::mem::take(&mut run), now, &mut report)
                    .await?;
            }
            run.push(s);
        }
        self.import_run(run, now, &mut report).await?;
        Ok(report)
    }

    /// Imports sessions of one tenant.
    async fn import_run(
        &self,
        run: Vec<Session>,
        now: u64,
        report: &mut ImportReport,
    ) -> SessionResult<()> {
        let Some(first) = run.first() else {
            return Ok(());
        };
        let ctx = self.context(&first.tenant_id, Access::Restore).await?;
        let (mut index, mut ledger, mut records) = (Vec::new(), Vec::new(), Vec::new());
        for s in &run {
            s.validate()?;
            if s.is_expired_at(now) {
                report.expired += 1;
                continue;
            }
            let record = record_key(&ctx.keys, &s.id);
            let bytes = codec::encode(s, &record, ctx.seal.as_deref())?;
            index.push((s.id.clone(), score(s.expires_at_ms())));
            ledger.push((s.id.clone(), score(bytes.len() as u64)));
            let ttl = (s.expires_at_ms() - now).max(1);
            records.push((record, bytes::Bytes::from(bytes), Some(ttl)));
        }
        if records.is_empty() {
            return Ok(());
        }
        self.register_tenant(&ctx, now).await?;
        self.store.zset_add(&index_key(&ctx.keys), &index).await?;
        if ctx.link.is_some() {
            self.store.zset_add(&ledger_key(&ctx.keys), &ledger).await?;
        }
        self.store.set_many(&records, Durability::Durable).await?;
        report.imported += records.len() as u64;
        report.bytes += records.iter().map(|(_, b, _)| b.len() as u64).sum::<u64>();
        for (id, _) in &index {
            self.drop_local(&SessionKey::of(&ctx, id)).await;
        }
        Ok(())
    }
}
