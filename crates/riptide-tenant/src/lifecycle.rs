//! Tenant lifecycle through the tenant manager: create, read, update, suspend, resume,
//! delete and list tenants, each change written to the audit log and announced to
//! other instances.
//!
//! # Crash consistency
//!
//! A tenant exists exactly when its record (`meta`) does: reads, listings and both
//! authentications (API key, JWT) go through it. So:
//!
//! - **Creation** writes the record, its quota overrides, its data key and its registry
//!   entry in one [`Store::write_atomic`]: a kill at any moment leaves all or none.
//!   On a Redis Cluster the registry (one key for all tenants) is on another slot, so
//!   its entry is written first, on its own: a crash after it leaves an entry without
//!   a record, which lists nothing and reads as absent (listings skip it), and the id
//!   can be created again. It is never the other way round (a usable tenant that is
//!   not listed).
//! - **Deletion** first removes the record, quota overrides, data key and (not on a
//!   Cluster) registry entry in one atomic write that leaves a tombstone; from then on
//!   the tenant is gone for every reader and its keys authenticate nothing. The
//!   clean-up of the rest (API and JWT keys, cache, sessions, usage) follows and then
//!   removes the tombstone. A crash in between leaves the tombstone: the next
//!   deletion or creation of the same id finishes the clean-up first, so a re-created
//!   tenant never inherits an old key or old data.
//!
//! [`Store::write_atomic`]: riptide_store::Store::write_atomic

use super::error::{TenantError, TenantResult};
use super::manager::{TenantEvent, TenantManager, TenantPage, TenantUpdate, random_id};
use super::model::{BillingPlan, Tenant, TenantConfig, TenantOwner, TenantStatus};
use super::policy::AccessPolicy;
use super::validate::{self, DEFAULT_TENANT};
use riptide_store::tenant_id::{AsTenantId, TenantId};

/// Who is acting, for the audit log, when a call does not say.
const SYSTEM_ACTOR: &str = "system";

impl TenantManager {
    /// Creates a tenant (the seed's call). An empty `tenant_id` generates one; a given one
    /// is validated and must be unused. Returns the id.
    pub async fn create_tenant(
        &self,
        config: TenantConfig,
        owner: TenantOwner,
        plan: BillingPlan,
    ) -> TenantResult<String> {
        self.create_tenant_by(SYSTEM_ACTOR, config, owner, plan)
            .await
    }

    /// [`Self::create_tenant`] on behalf of `actor` (for the audit log).
    pub async fn create_tenant_by(
        &self,
        actor: &str,
        mut config: TenantConfig,
        owner: TenantOwner,
        plan: BillingPlan,
    ) -> TenantResult<String> {
        if !self.multi_tenancy_enabled() {
            return Err(TenantError::MultiTenancyDisabled);
        }
        let id = if config.tenant_id.is_empty() {
            TenantId::parse(&format!("t-{}", random_id(12)))?
        } else {
            validate::new_tenant_id(&config.tenant_id)?
        };
        config.tenant_id = id.to_string();
        let result = self.insert_tenant(config, owner, plan).await;
        self.audit_event(
            actor,
            Some(&id),
            "tenant.create",
            &format!("plan={plan}"),
            &result,
        )
        .await;
        result.map(|_| id.to_string())
    }

    async fn insert_tenant(
        &self,
        mut config: TenantConfig,
        owner: TenantOwner,
        plan: BillingPlan,
    ) -> TenantResult<Tenant> {
        validate::name(&config.name)?;
        validate::owner(&owner)?;
        validate::quotas(&config.quotas)?;
        validate::settings(&config.settings)?;
        let id = TenantId::parse(&config.tenant_id)?;
        config.isolation_level = config.isolation_level.max(self.config.isolation_level);
        let now = self.now();
        config.created_at = now;
        config.updated_at = now;
        let tenant = Tenant {
            config,
            owner,
            plan,
            status: TenantStatus::Active,
            policy: AccessPolicy::default(),
            version: 1,
        };
        self.write_new_tenant(&id, &tenant).await?;
        Ok(tenant)
    }

    /// Writes a new tenant in one atomic write (see the module docs); `AlreadyExists`
    /// when the id is taken.
    async fn write_new_tenant(&self, id: &TenantId, tenant: &Tenant) -> TenantResult<()> {
        if !self.registry.entry_is_atomic() {
            // Cluster: the registry entry first (see the module docs). An id in use is
            // refused before, so its entry keeps its creation time.
            if self.registry.stored(id).await? {
                return Err(TenantError::AlreadyExists(id.to_string()));
            }
            self.registry
                .register(id, tenant.config.created_at.timestamp_millis())
                .await?;
        }
        let mut ops = self.registry.creation_ops(tenant)?;
        let prepared = if tenant.encrypted() {
            let (op, prepared) = self.keys.creation_op(id)?;
            ops.push(op);
            Some(prepared)
        } else {
            None
        };
        let mut finished_deletion = false;
        while !self.store.write_atomic(&ops).await? {
            if self.registry.stored(id).await? {
                return Err(TenantError::AlreadyExists(id.to_string()));
            }
            if finished_deletion || !self.registry.deletion_pending(id).await? {
                return Err(TenantError::Conflict(id.to_string()));
            }
            // A deletion of this id was cut short: finish it, so the new tenant
            // inherits none of the old one's keys or data.
            tracing::warn!(tenant.id = %id, "finishing an interrupted deletion before re-creating the tenant");
            self.clean_up_deleted(id).await?;
            finished_deletion = true;
        }
        self.registry.created(id, tenant);
        if let Some(prepared) = prepared {
            self.keys.created(id, prepared);
        }
        Ok(())
    }

    /// The tenant, or `None` when there is none with this id. Reads go through a cache of
    /// at most `record_cache_ttl_ms`.
    pub async fn get_tenant(
        &self,
        tenant_id: &(impl AsTenantId + ?Sized),
    ) -> TenantResult<Option<Tenant>> {
        match self.require(tenant_id).await {
            Ok((_, t)) => Ok(Some((*t).clone())),
            Err(TenantError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Applies `update` (validated first; nothing is written on bad input).
    pub async fn update_tenant(
        &self,
        tenant_id: &(impl AsTenantId + ?Sized),
        update: TenantUpdate,
    ) -> TenantResult<Tenant> {
        self.update_tenant_by(SYSTEM_ACTOR, tenant_id, update).await
    }

    /// [`Self::update_tenant`] on behalf of `actor`.
    pub async fn update_tenant_by(
        &self,
        actor: &str,
        tenant_id: &(impl AsTenantId + ?Sized),
        update: TenantUpdate,
    ) -> TenantResult<Tenant> {
        let id = tenant_id.as_tenant_id()?;
        if let Some(n) = &update.name {
            validate::name(n)?;
        }
        if let Some(q) = &update.quotas {
            validate::quotas(q)?;
        }
        if let Some(s) = &update.settings {
            validate::settings(s)?;
        }
        if let Some(o) = &update.owner {
            validate::owner(o)?;
        }
        if let Some(p) = &update.policy {
            p.validate()?;
        }
        if let Some(new_plan) = update.plan {
            let (_, current) = self.require(id.as_str()).await?;
            if current.plan != new_plan {
                self.seal_plan_before_change(&id, current.plan).await?;
            }
        }
        let now = self.now();
        let result = self
            .registry
            .update(&id, |t| {
                if let Some(n) = &update.name {
                    t.config.name = n.clone();
                }
                if let Some(p) = update.plan {
                    t.plan = p;
                }
                if let Some(q) = &update.quotas {
                    t.config.quotas = q.clone();
                }
                if let Some(s) = &update.settings {
                    t.config.settings = s.clone();
                }
                if let Some(p) = &update.policy {
                    t.policy = p.clone();
                }
                if let Some(o) = &update.owner {
                    t.owner = o.clone();
                }
                t.config.updated_at = now;
                Ok(())
            })
            .await;
        if let (Ok(t), Some(_)) = (&result, &update.quotas) {
            self.registry.write_quota_overrides(t).await?;
        }
        let what = describe_update(&update);
        self.audit_event(actor, Some(&id), "tenant.update", &what, &result)
            .await;
        if result.is_ok() {
            self.announce(TenantEvent::Changed {
                tenant_id: id.to_string(),
                change: "update",
            });
        }
        result
    }

    /// Suspends a tenant: its requests are refused until resumed.
    pub async fn suspend_tenant(
        &self,
        tenant_id: &(impl AsTenantId + ?Sized),
        reason: &str,
    ) -> TenantResult<Tenant> {
        self.suspend_tenant_by(SYSTEM_ACTOR, tenant_id, reason)
            .await
    }

    /// [`Self::suspend_tenant`] on behalf of `actor`.
    pub async fn suspend_tenant_by(
        &self,
        actor: &str,
        tenant_id: &(impl AsTenantId + ?Sized),
        reason: &str,
    ) -> TenantResult<Tenant> {
        validate::reason(reason)?;
        let id = tenant_id.as_tenant_id()?;
        let now = self.now();
        let result = self
            .registry
            .update(&id, |t| {
                t.status = TenantStatus::Suspended {
                    reason: reason.to_owned(),
                    since: now,
                };
                t.config.updated_at = now;
                Ok(())
            })
            .await;
        self.audit_event(actor, Some(&id), "tenant.suspend", reason, &result)
            .await;
        if result.is_ok() {
            self.announce(TenantEvent::Changed {
                tenant_id: id.to_string(),
                change: "suspend",
            });
        }
        result
    }

    /// Resumes a suspended tenant.
    pub async fn resume_tenant(
        &self,
        tenant_id: &(impl AsTenantId + ?Sized),
    ) -> TenantResult<Tenant> {
        self.resume_tenant_by(SYSTEM_ACTOR, tenant_id).await
    }

    /// [`Self::resume_tenant`] on behalf of `actor`.
    pub async fn resume_tenant_by(
        &self,
        actor: &str,
        tenant_id: &(impl AsTenantId + ?Sized),
    ) -> TenantResult<Tenant> {
        let id = tenant_id.as_tenant_id()?;
        let now = self.now();
        let result = self
            .registry
            .update(&id, |t| {
                t.status = TenantStatus::Active;
                t.config.updated_at = now;
                Ok(())
            })
            .await;
        self.audit_event(actor, Some(&id), "tenant.resume", "", &result)
            .await;
        if result.is_ok() {
            self.announce(TenantEvent::Changed {
                tenant_id: id.to_string(),
                change: "resume",
            });
        }
        result
    }

    /// Deletes a tenant: its cache entries, keys, data key (so leftovers can never be
    /// read), quota and rate state, and — when `purge_billing_history_on_delete` — its
    /// usage history. Touches only the tenant's own keys.
    pub async fn delete_tenant(&self, tenant_id: &(impl AsTenantId + ?Sized)) -> TenantResult<()> {
        self.delete_tenant_by(SYSTEM_ACTOR, tenant_id).await
    }

    /// [`Self::delete_tenant`] on behalf of `actor`.
    pub async fn delete_tenant_by(
        &self,
        actor: &str,
        tenant_id: &(impl AsTenantId + ?Sized),
    ) -> TenantResult<()> {
        let parsed = tenant_id.as_tenant_id();
        let result = match &parsed {
            Ok(id) => self.remove_tenant(id).await,
            Err(e) => Err(e.clone().into()),
        };
        let id = parsed.as_deref().ok();
        self.audit_event(actor, id, "tenant.delete", "", &result)
            .await;
        if let (Ok(()), Some(id)) = (&result, id) {
            self.announce(TenantEvent::Changed {
                tenant_id: id.to_string(),
                change: "delete",
            });
        }
        result
    }

    async fn remove_tenant(&self, tenant_id: &TenantId) -> TenantResult<()> {
        if tenant_id.as_str() == DEFAULT_TENANT && !self.multi_tenancy_enabled() {
            return Err(TenantError::InvalidField {
                field: "tenant_id",
                reason: "the default tenant cannot be deleted while multi-tenancy is off".into(),
            });
        }
        let (id, _) = match self.require(tenant_id).await {
            Ok(found) => found,
            Err(TenantError::NotFound { .. }) => {
                // A retried deletion that was cut short after its atomic write: finish it.
                if self.registry.deletion_pending(tenant_id).await? {
                    return self.clean_up_deleted(tenant_id).await;
                }
                return Err(TenantError::tenant_not_found(tenant_id.as_str()));
            }
            Err(e) => return Err(e),
        };
        // The restore tombstone first (another hash slot than the tenant's keys, so not
        // in the atomic write): from here on no restore brings the tenant back.
        super::tombstones::tenant_deleted(&*self.store, &id, self.clock.now_ms()).await?;
        // One atomic write: from here on the tenant is gone for every reader.
        let mut ops = self
            .registry
            .deletion_ops(&id, self.now().timestamp_millis());
        ops.push(self.keys.deletion_op(&id));
        // Shreds the tenant in every checkpoint (see `state::checkpoint::seal`).
        let scope = riptide_store::keys::Scope::Tenant(id.clone());
        let keys = riptide_store::keys::ScopeKeys::new(self.store.key_prefix(), &scope);
        ops.push(riptide_store::WriteOp::delete(
            keys.record(riptide_store::keys::records::CHECKPOINT_KEY),
        ));
        self.store.write_atomic(&ops).await?;
        self.keys.forget(&id);
        self.tell_deleted(Some(&id));
        self.registry.forget(&id);
        self.budgets.set(&id, None);
        if !self.registry.entry_is_atomic() {
            // Cluster: an entry without a record lists nothing (see the module docs).
            self.registry.unregister(&id).await?;
        }
        self.clean_up_deleted(&id).await
    }

    /// The clean-up after a deletion's atomic write (or of one cut short, found by its
    /// tombstone): everything that is unusable without the record but must not outlive
    /// it. Idempotent; removes the tombstone last, so a crash anywhere is retried.
    async fn clean_up_deleted(&self, id: &TenantId) -> TenantResult<()> {
        self.api_keys.delete_all(id).await?;
        self.jwt_keys.delete_all(id).await?;
        match self.cache.load_full() {
            Some(cache) => {
                cache
                    .clear(&id)
                    .await
                    .map_err(|e| TenantError::InvalidField {
                        field: "cache",
                        reason: e.to_string(),
                    })?;
            }
            None => {
                self.store.cache_clear(&self.registry.keys(id)).await?;
            }
        }
        if self.config.purge_billing_history_on_delete {
            let months = self.usage.months(id).await?;
            self.purge_bills(id, &months).await?;
            self.usage.purge(id).await?;
        }
        self.keys.delete(id).await?;
        self.registry.remove(id).await?;
        self.registry.clean_up_done(id).await
    }

    /// A page of tenants in creation order, read from the store's registry.
    pub async fn list_tenants(&self, offset: u64, limit: u64) -> TenantResult<TenantPage> {
        let limit = limit.clamp(1, 1_000);
        let ids = self.registry.ids(offset, limit).await?;
        let total = self.registry.count().await?;
        let loads = ids.iter().map(|id| self.registry.get(id));
        let mut tenants = Vec::with_capacity(ids.len());
        for found in futures::future::join_all(loads).await {
            // A tenant deleted between the two reads is simply not listed.
            if let Some(t) = found? {
                tenants.push((*t).clone());
            }
        }
        let next = offset + ids.len() as u64;
        Ok(TenantPage {
            tenants,
            total,
            next_offset: (next < total && ids.len() as u64 == limit).then_some(next),
        })
    }

    /// Creates the built-in `default` tenant on `plan` unless it exists.
    pub(super) async fn ensure_default_tenant(&self, plan: BillingPlan) -> TenantResult<()> {
        let id = TenantId::parse(DEFAULT_TENANT)?;
        if self.registry.get(&id).await?.is_some() {
            return Ok(());
        }
        let now = self.now();
        let config = TenantConfig {
            tenant_id: DEFAULT_TENANT.to_owned(),
            name: "Default tenant".to_owned(),
            quotas: Default::default(),
            isolation_level: self.config.isolation_level,
            encryption_enabled: false,
            settings: Default::default(),
            created_at: now,
            updated_at: now,
        };
        let owner = TenantOwner {
            id: SYSTEM_ACTOR.into(),
            name: "RipTide".into(),
            email: "operator@riptide.invalid".into(),
            organization: None,
        };
        match self.insert_tenant(config, owner, plan).await {
            Ok(_) | Err(TenantError::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn describe_update(u: &TenantUpdate) -> String {
    let mut parts = Vec::new();
    if u.name.is_some() {
        parts.push("name".to_owned());
    }
    if let Some(p) = u.plan {
        parts.push(format!("plan={p}"));
    }
    if let Some(q) = &u.quotas {
        let mut q: Vec<_> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
        q.sort();
        parts.push(format!("quotas[{}]", q.join(",")));
    }
    if u.settings.is_some() {
        parts.push("settings".to_owned());
    }
    if u.policy.is_some() {
        parts.push("policy".to_owned());
    }
    if u.owner.is_some() {
        parts.push("owner".to_owned());
    }
    parts.join(" ")
}
