//! The session calls: create, get, update, terminate, list, count, forget.

use std::sync::Arc;
use std::time::Duration;

use super::codec;
use super::memory::SessionKey;
use super::model::{
    Session, SessionInit, SessionSummary, SessionUpdate, new_session_id, normalize_headers,
    validate_cookies, validate_session_id, validate_ttl,
};
use super::tiering::Local;
use super::{
    Access, Ctx, MAX_CAS_ATTEMPTS, SessionError, SessionManager, SessionResult, index_key,
    ledger_key, millis, record_key, score, to_datetime,
};
use riptide_store::Durability;
use riptide_store::tenant_id::AsTenantId;

/// Largest page of [`SessionManager::list`].
pub const MAX_LIST_LIMIT: u64 = 1_000;

/// Most expired sessions one call removes while making room for a new one.
const PRUNE_ON_CREATE: u64 = 100;

/// What removing a session from the store did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Removed {
    /// A live (unexpired) session was removed.
    pub live: bool,
    /// The session is gone from the store and its index.
    pub gone: bool,
    /// Bytes released from `storage_bytes`.
    pub released: u64,
}

/// How to remove.
#[derive(Debug, Clone, Copy)]
pub(super) enum Removal {
    /// Whatever its state.
    Terminate,
    /// Only when expired at this time (else the index entry is corrected).
    IfExpired(u64),
}

impl SessionManager {
    /// Creates a session for `tenant`: validates the input, checks the tenant (when
    /// attached), the session count and the `storage_bytes` quota, and writes it to the
    /// store durably before returning it.
    pub async fn create(
        &self,
        tenant: &(impl AsTenantId + ?Sized),
        init: SessionInit,
    ) -> SessionResult<Session> {
        validate_cookies(&init.cookies)?;
        let headers = normalize_headers(init.headers)?;
        let ttl = init.ttl.unwrap_or(self.default_ttl);
        validate_ttl(ttl)?;
        let ctx = self.context(tenant, Access::Write).await?;
        let now = self.now_ms();
        let session = Session {
            id: new_session_id(),
            tenant_id: ctx.id.to_string(),
            cookies: init.cookies,
            headers,
            created_at: to_datetime(now),
            updated_at: to_datetime(now),
            expires_at: to_datetime(now.saturating_add(millis(ttl))),
            version: 1,
        };
        let record = record_key(&ctx.keys, &session.id);
        let bytes = codec::encode(&session, &record, ctx.seal.as_deref())?;
        self.register_tenant(&ctx, now).await?;
        // Reserve a place in the index first, so concurrent creates cannot overshoot
        // the limit (they may both be refused at the edge; never both admitted past it).
        let index = index_key(&ctx.keys);
        self.store
            .zset_add(
                &index,
                &[(session.id.clone(), score(session.expires_at_ms()))],
            )
            .await?;
        if let Err(e) = self
            .write_new(&ctx, &session, &record, &bytes, ttl, now)
            .await
        {
            if let Err(undo) = self
                .store
                .zset_remove(&index, std::slice::from_ref(&session.id))
                .await
            {
                tracing::error!(tenant.id = ctx.id.as_str(), error = %undo, "could not undo a session's index entry");
            }
            return Err(e);
        }
        let current = self
            .insert_local(SessionKey::of(&ctx, &session.id), Arc::new(session))
            .await;
        Ok((*current).clone())
    }

    /// The steps of a create after the index entry: capacity, charge, ledger, record.
    async fn write_new(
        &self,
        ctx: &Ctx,
        session: &Session,
        record: &str,
        bytes: &[u8],
        ttl: Duration,
        now: u64,
    ) -> SessionResult<()> {
        let index = index_key(&ctx.keys);
        if self.store.zset_len(&index).await? > self.max_sessions {
            self.prune_tenant(ctx, now, PRUNE_ON_CREATE).await?;
            if self.store.zset_len(&index).await? > self.max_sessions {
                return Err(SessionError::TooManySessions {
                    tenant: ctx.id.to_string(),
                    limit: self.max_sessions,
                });
            }
        }
        let size = bytes.len() as u64;
        self.charge(ctx, size as i64).await?;
        let written = async {
            if ctx.link.is_some() {
                self.store
                    .zset_add(&ledger_key(&ctx.keys), &[(session.id.clone(), score(size))])
                    .await?;
            }
            let fresh = self
                .store
                .set_if_absent(record, bytes, Some(millis(ttl)), Durability::Durable)
                .await?;
            if fresh {
                Ok(())
            } else {
                // 128 random bits collided: never in practice; refuse rather than overwrite.
                Err(SessionError::Conflict)
            }
        }
        .await;
        if written.is_err() {
            if ctx.link.is_some()
                && let Err(e) = self
                    .store
                    .zset_remove(&ledger_key(&ctx.keys), std::slice::from_ref(&session.id))
                    .await
            {
                tracing::error!(tenant.id = ctx.id.as_str(), error = %e, "could not undo a session's ledger entry");
            }
            self.release(ctx, size).await;
        }
        written
    }

    /// The session `id` of `tenant`, or `None` when there is none (or it expired, or it
    /// belongs to another tenant: ids are looked up under the caller's tenant only).
    /// Served from memory, else from its spill file (loaded back into memory), else
    /// from the store.
    pub async fn get(
        &self,
        tenant: &(impl AsTenantId + ?Sized),
        id: &str,
    ) -> SessionResult<Option<Session>> {
        validate_session_id(id)?;
        let ctx = self.context(tenant, Access::Read).await?;
        let key = SessionKey::of(&ctx, id);
        let now = self.now_ms();
        match self.local_get(&ctx, &key, now).await? {
            Local::Found(s) => return Ok(Some(s)),
            Local::Expired => return Ok(None),
            Local::Miss => {}
        }
        let record = record_key(&ctx.keys, id);
        let Some(bytes) = self.store.get(&record).await? else {
            return Ok(None);
        };
        let session = self.decode(&ctx.id, id, &record, &bytes).await?;
        if session.is_expired_at(now) {
            return Ok(None);
        }
        let current = self.insert_local(key, Arc::new(session)).await;
        Ok(Some((*current).clone()))
    }

    /// Changes session `id` of `tenant`: a compare-and-swap on the store record, retried
    /// a few times when another writer got there first ([`SessionError::Conflict`]
    /// after that). Bumps the version and restarts the lifetime (`ttl`, else the
    /// session's current one). A growing session is charged to `storage_bytes` first.
    pub async fn update(
        &self,
        tenant: &(impl AsTenantId + ?Sized),
        id: &str,
        update: SessionUpdate,
    ) -> SessionResult<Session> {
        validate_session_id(id)?;
        if let Some(c) = &update.cookies {
            validate_cookies(c)?;
        }
        let headers = update.headers.map(normalize_headers).transpose()?;
        if let Some(ttl) = update.ttl {
            validate_ttl(ttl)?;
        }
        let ctx = self.context(tenant, Access::Write).await?;
        let record = record_key(&ctx.keys, id);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let now = self.now_ms();
            let Some(old_bytes) = self.store.get(&record).await? else {
                return Err(SessionError::NotFound);
            };
            let old = self.decode(&ctx.id, id, &record, &old_bytes).await?;
            if old.is_expired_at(now) {
                return Err(SessionError::NotFound);
            }
            let lifetime = update.ttl.unwrap_or_else(|| old.lifetime());
            let mut new = old;
            if let Some(c) = &update.cookies {
                new.cookies = c.clone();
            }
            if let Some(h) = &headers {
                new.headers = h.clone();
            }
            new.version += 1;
            new.updated_at = to_datetime(now);
            new.expires_at = to_datetime(now.saturating_add(millis(lifetime)));
            let new_bytes = codec::encode(&new, &record, ctx.seal.as_deref())?;
            let delta = new_bytes.len() as i64 - old_bytes.len() as i64;
            if delta > 0 {
                self.charge(&ctx, delta).await?;
            }
            let swapped = self
                .store
                .compare_and_swap(
                    &record,
                    Some(&old_bytes),
                    Some(&new_bytes),
                    Durability::Durable,
                )
                .await;
            match swapped {
                Ok(true) => {
                    self.after_update(&ctx, &new, new_bytes.len() as u64, delta, now)
                        .await?;
                    let current = self
                        .insert_local(SessionKey::of(&ctx, id), Arc::new(new))
                        .await;
                    self.announce(ctx.id.as_str(), id);
                    return Ok((*current).clone());
                }
                Ok(false) => {
                    if delta > 0 {
                        self.release(&ctx, delta.unsigned_abs()).await;
                    }
                }
                Err(e) => {
                    if delta > 0 {
                        self.release(&ctx, delta.unsigned_abs()).await;
                    }
                    return Err(e.into());
                }
            }
        }
        Err(SessionError::Conflict)
    }

    /// Bookkeeping after a successful update: release of shrunk bytes, ledger, index.
    async fn after_update(
        &self,
        ctx: &Ctx,
        new: &Session,
        size: u64,
        delta: i64,
        now: u64,
    ) -> SessionResult<()> {
        if delta < 0 {
            self.release(ctx, delta.unsigned_abs()).await;
        }
        if ctx.link.is_some() {
            self.store
                .zset_add(&ledger_key(&ctx.keys), &[(new.id.clone(), score(size))])
                .await?;
        }
        self.store
            .zset_add(
                &index_key(&ctx.keys),
                &[(new.id.clone(), score(new.expires_at_ms()))],
            )
            .await?;
        self.register_tenant(ctx, now).await
    }

    /// Ends session `id` of `tenant`: removes it from the store, its index and every
    /// local copy, and releases its bytes. Returns whether a live session was ended
    /// (`false` for an unknown, expired or other tenant's id).
    pub async fn terminate(
        &self,
        tenant: &(impl AsTenantId + ?Sized),
        id: &str,
    ) -> SessionResult<bool> {
        validate_session_id(id)?;
        let ctx = self.context(tenant, Access::Read).await?;
        let removed = self.remove_stored(&ctx, id, Removal::Terminate).await?;
        self.announce(ctx.id.as_str(), id);
        Ok(removed.live)
    }

    /// Removes a session from the store (compare-and-swap to nothing, so a concurrent
    /// update is not lost silently: an expired-only removal backs off), then its index
    /// entry, its ledger entry (whoever removes the ledger entry releases the bytes, so
    /// they are released once), and the local copies.
    pub(super) async fn remove_stored(
        &self,
        ctx: &Ctx,
        id: &str,
        how: Removal,
    ) -> SessionResult<Removed> {
        let record = record_key(&ctx.keys, id);
        let mut out = Removed::default();
        let mut attempts = 0;
        loop {
            attempts += 1;
            if attempts > MAX_CAS_ATTEMPTS {
                return Err(SessionError::Conflict);
            }
            let Some(bytes) = self.store.get(&record).await? else {
                break;
            };
            // A record that cannot be parsed is removed like an expired one.
            let expires = codec::Header::parse(&bytes, &record)
                .map(|h| h.expires_at_ms)
                .unwrap_or(0);
            match how {
                Removal::IfExpired(now) if expires > now => {
                    // The index was behind the record (an update between the record and
                    // its index write): correct it and keep the session.
                    self.store
                        .zset_add(&index_key(&ctx.keys), &[(id.to_owned(), score(expires))])
                        .await?;
                    return Ok(out);
                }
                Removal::IfExpired(_) => {}
                Removal::Terminate => out.live = expires > self.now_ms(),
            }
            if self
                .store
                .compare_and_swap(&record, Some(&bytes), None, Durability::Durable)
                .await?
            {
                break;
            }
            out.live = false;
        }
        let ids = [id.to_owned()];
        self.store.zset_remove(&index_key(&ctx.keys), &ids).await?;
        if ctx.link.is_some() {
            let ledger = ledger_key(&ctx.keys);
            let charged = self.store.zset_score(&ledger, id).await?;
            if self.store.zset_remove(&ledger, &ids).await? == 1 {
                let bytes = charged.map_or(0, |b| u64::try_from(b).unwrap_or(0));
                self.release(ctx, bytes).await;
                out.released = bytes;
            }
        }
        out.gone = true;
        self.bury_local(&SessionKey::of(ctx, id)).await;
        Ok(out)
    }

    /// Removes up to `limit` of the tenant's expired sessions from the store; returns
    /// how many and the bytes released.
    pub(super) async fn prune_tenant(
        &self,
        ctx: &Ctx,
        now: u64,
        limit: u64,
    ) -> SessionResult<(u64, u64)> {
        let expired = self
            .store
            .zset_range_by_score(&index_key(&ctx.keys), i64::MIN, score(now), limit)
            .await?;
        let (mut removed, mut released) = (0, 0);
        for (id, _) in expired {
            if validate_session_id(&id).is_err() {
                // Not ours; never turned into a key.
                self.store.zset_remove(&index_key(&ctx.keys), &[id]).await?;
                continue;
            }
            let r = self
                .remove_stored(ctx, &id, Removal::IfExpired(now))
                .await?;
            if r.gone {
                removed += 1;
                released += r.released;
            }
        }
        Ok((removed, released))
    }

    /// A page of `tenant`'s live sessions in expiry order (soonest first), without
    /// cookie or header values. `limit` is capped at [`MAX_LIST_LIMIT`].
    pub async fn list(
        &self,
        tenant: &(impl AsTenantId + ?Sized),
        offset: u64,
        limit: u64,
    ) -> SessionResult<Vec<SessionSummary>> {
        let ctx = self.context(tenant, Access::Read).await?;
        let limit = limit.clamp(1, MAX_LIST_LIMIT);
        let offset = offset.min(self.max_sessions);
        let now = self.now_ms();
        let page: Vec<String> = self
            .store
            .zset_range_by_score(
                &index_key(&ctx.keys),
                score(now).saturating_add(1),
                i64::MAX,
                offset.saturating_add(limit),
            )
            .await?
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .map(|(id, _)| id)
            .filter(|id| validate_session_id(id).is_ok())
            .collect();
        let sessions = self.read_many(&ctx, &page, now).await?;
        Ok(sessions.iter().map(Session::summary).collect())
    }

    /// Reads sessions `ids` of one tenant from the store in one round trip, skipping
    /// missing and expired ones (and logging undecodable ones).
    pub(super) async fn read_many(
        &self,
        ctx: &Ctx,
        ids: &[String],
        now: u64,
    ) -> SessionResult<Vec<Session>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| record_key(&ctx.keys, id)).collect();
        let values = self.store.get_many(&keys).await?;
        let mut out = Vec::with_capacity(ids.len());
        for ((id, key), value) in ids.iter().zip(&keys).zip(values) {
            let Some(bytes) = value else { continue };
            match self.decode(&ctx.id, id, key, &bytes).await {
                Ok(s) if !s.is_expired_at(now) => out.push(s),
                Ok(_) => {}
                Err(SessionError::Store(e)) => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(tenant.id = ctx.id.as_str(), error = %e, "skipping an unreadable session record");
                }
            }
        }
        Ok(out)
    }

    /// How many sessions `tenant` holds (expired ones are pruned first, up to a
    /// bound, so the figure may include a few not yet removed).
    pub async fn count(&self, tenant: &(impl AsTenantId + ?Sized)) -> SessionResult<u64> {
        let ctx = self.context(tenant, Access::Read).await?;
        self.prune_tenant(&ctx, self.now_ms(), PRUNE_ON_CREATE)
            .await?;
        Ok(self.store.zset_len(&index_key(&ctx.keys)).await?)
    }

    /// Drops this instance's copies of session `id` (memory and spill file), e.g.
    /// because another instance changed it; the next `get` reads the store. The
    /// store is not touched.
    pub async fn forget(&self, tenant: &(impl AsTenantId + ?Sized), id: &str) -> SessionResult<()> {
        validate_session_id(id)?;
        let tenant = tenant.as_tenant_id()?.into_owned();
        self.drop_local(&SessionKey {
            tenant,
            id: id.to_owned(),
        })
        .await;
        Ok(())
    }

    /// Adds the tenant to the registry of tenants with sessions (for sweeping).
    pub(super) async fn register_tenant(&self, ctx: &Ctx, now: u64) -> SessionResult<()> {
        self.store
            .zset_add(&self.registry_key(), &[(ctx.id.to_string(), score(now))])
            .await?;
        Ok(())
    }
}
