//! [`TenantManager`]: tenant records and lifecycle, with the seed's API.
//!
//! Quotas live in `quota.rs`, access in `access.rs`; usage, billing, keys, audit and
//! encryption are their own types, composed here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use arc_swap::ArcSwapOption;
use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::api_keys::ApiKeys;
use super::audit::{AuditEntry, AuditLog};
use super::crypto::{MasterKey, TenantKeys};
use super::error::{TenantError, TenantResult};
use super::metrics::TenantMetrics;
use super::model::{BillingPlan, Tenant, TenantConfig, TenantOwner, TenantStatus};
use super::policy::AccessPolicy;
use super::quota::{BudgetHandle, TenantBudgets, effective_quota};
use super::registry::Registry;
use super::resource::Resource;
use super::secrets::load_pepper;
use super::usage::UsageMeter;
use super::validate::{self, DEFAULT_TENANT};
use crate::cache::PersistentCacheManager;
use crate::clock::{SharedClock, system_clock};
use crate::config::{self, PersistenceConfig};
use crate::store::{SharedStore, open_store};
use crate::tenant_id::TenantId;

/// Who is acting, for the audit log, when a call does not say.
const SYSTEM_ACTOR: &str = "system";

/// Changes to a tenant; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantUpdate {
    /// New display name.
    pub name: Option<String>,
    /// New plan.
    pub plan: Option<BillingPlan>,
    /// Replaces the quota overrides (an empty map returns to the plan's defaults).
    pub quotas: Option<std::collections::HashMap<String, u64>>,
    /// Replaces the settings.
    pub settings: Option<std::collections::HashMap<String, String>>,
    /// Replaces the access policy.
    pub policy: Option<AccessPolicy>,
    /// New owner.
    pub owner: Option<TenantOwner>,
}

/// A change other instances must hear of (the sync layer publishes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantEvent {
    /// The tenant's record changed (`change` names what: `update`, `suspend`, `resume`,
    /// `delete`).
    Changed {
        /// The tenant.
        tenant_id: String,
        /// What changed.
        change: &'static str,
    },
    /// One of the tenant's keys was revoked.
    KeyRevoked {
        /// The tenant.
        tenant_id: String,
        /// The key.
        key_id: String,
    },
}

/// Told of every [`TenantEvent`] made on this instance.
pub struct TenantChangeListener(pub Box<dyn Fn(&TenantEvent) + Send + Sync>);

/// One page of tenants.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TenantPage {
    /// The tenants of this page, in creation order.
    pub tenants: Vec<Tenant>,
    /// Tenants registered in all.
    pub total: u64,
    /// Offset of the next page, if any.
    pub next_offset: Option<u64>,
}

/// Tenant records, quotas, usage, keys, encryption and audit over one store.
pub struct TenantManager {
    pub(super) store: SharedStore,
    pub(super) clock: SharedClock,
    pub(super) config: Arc<config::TenantConfig>,
    pub(super) registry: Registry,
    pub(super) budgets: Arc<TenantBudgets>,
    pub(super) usage: Arc<UsageMeter>,
    pub(super) metrics: Arc<RwLock<TenantMetrics>>,
    api_keys: ApiKeys,
    audit: Arc<AuditLog>,
    keys: Arc<TenantKeys>,
    cache: ArcSwapOption<PersistentCacheManager>,
    listener: ArcSwapOption<TenantChangeListener>,
    cancel: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    pub(super) instance_id: String,
    batch_seq: AtomicU64,
}

impl TenantManager {
    /// Opens (or shares) the store `url` names and builds the tenant layer over it (the
    /// seed's constructor). Must run inside a tokio runtime: the usage flusher starts.
    pub async fn new(
        url: &str,
        config: config::TenantConfig,
        metrics: Arc<RwLock<TenantMetrics>>,
    ) -> TenantResult<Self> {
        let persistence = PersistenceConfig {
            tenant: config,
            ..Default::default()
        };
        persistence.validate()?;
        let store = open_store(url, &persistence).await?;
        Self::with_store(store, persistence.tenant, metrics, system_clock()).await
    }

    /// The tenant layer over an existing store, with an injected clock.
    pub async fn with_store(
        store: SharedStore,
        config: config::TenantConfig,
        metrics: Arc<RwLock<TenantMetrics>>,
        clock: SharedClock,
    ) -> TenantResult<Self> {
        config.validate()?;
        let config = Arc::new(config);
        let (master, _created) = MasterKey::from_config(&config)?;
        let pepper = load_pepper(&config)?;
        let default_memory = config
            .plans
            .get(&config.default_plan)
            .and_then(|p| p.quotas.get(Resource::MemoryBytes.as_str()).copied());
        let usage = UsageMeter::new(store.clone(), clock.clone(), &config, metrics.clone());
        let budgets = TenantBudgets::new(default_memory);
        let keys = TenantKeys::new(store.clone(), master);
        let on_load: super::registry::OnLoad = {
            let (budgets, keys, config) = (budgets.clone(), keys.clone(), config.clone());
            Box::new(move |id, tenant| {
                budgets.set(
                    id,
                    effective_quota(tenant, &config.plans, Resource::MemoryBytes),
                );
                keys.set_enabled(id, tenant.encrypted());
            })
        };
        let cancel = CancellationToken::new();
        let flusher = usage.spawn_flusher(
            std::time::Duration::from_millis(config.usage_flush_interval_ms),
            cancel.clone(),
        );
        let audit = Arc::new(AuditLog::new(store.clone(), clock.clone()));
        let pruner = spawn_audit_pruner(audit.clone(), config.audit_retention_days, cancel.clone());
        let manager = Self {
            registry: Registry::new(store.clone(), config.record_cache_ttl_ms, on_load),
            budgets,
            api_keys: ApiKeys::new(store.clone(), clock.clone(), pepper, &config),
            audit,
            keys,
            cache: ArcSwapOption::empty(),
            listener: ArcSwapOption::empty(),
            tasks: Mutex::new(vec![flusher, pruner]),
            instance_id: random_id(8),
            batch_seq: AtomicU64::new(0),
            usage,
            metrics,
            cancel,
            store,
            clock,
            config,
        };
        if !manager.config.enabled {
            manager.ensure_default_tenant().await?;
        }
        Ok(manager)
    }

    /// Plugs the tenant layer into a cache over the same store: tenants' `memory_bytes`
    /// quotas become its budgets, encrypted tenants' values are sealed, and deleting a
    /// tenant also drops the cache's in-process copies.
    pub fn attach_cache(&self, cache: Arc<PersistentCacheManager>) {
        cache.set_budget(Box::new(BudgetHandle(self.budgets.clone())));
        cache.set_sealer(Box::new(self.keys.clone()));
        self.cache.store(Some(cache));
    }

    /// Installs the listener told of every tenant change made here.
    pub fn set_change_listener(&self, listener: TenantChangeListener) {
        self.listener.store(Some(Arc::new(listener)));
    }

    pub(super) fn announce(&self, event: TenantEvent) {
        if let Some(l) = self.listener.load().as_ref() {
            (l.0)(&event);
        }
    }

    /// Drops what this instance holds about a tenant another instance changed: its
    /// cached record, cached key lookups and (when deleted) its data key.
    pub fn forget_tenant(&self, tenant_id: &str, deleted: bool) {
        let Ok(id) = TenantId::parse(tenant_id) else {
            return;
        };
        self.registry.forget(&id);
        self.api_keys.forget_cached();
        if deleted {
            self.keys.forget(&id);
            self.budgets.set(&id, None);
        }
    }

    /// Drops every cached record and key lookup (after messages from other instances
    /// may have been lost).
    pub fn forget_everything(&self) {
        self.registry.forget_all();
        self.api_keys.forget_cached();
    }

    /// The configuration in force.
    pub fn config(&self) -> &config::TenantConfig {
        &self.config
    }

    /// API keys of tenants.
    pub fn api_keys(&self) -> &ApiKeys {
        &self.api_keys
    }

    /// Tenants' data keys (sessions are sealed with them too).
    pub fn data_keys(&self) -> &Arc<TenantKeys> {
        &self.keys
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The store.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    pub(super) fn next_batch(&self) -> u64 {
        self.batch_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// A valid, existing tenant.
    pub(super) async fn require(&self, tenant_id: &str) -> TenantResult<(TenantId, Arc<Tenant>)> {
        let id = TenantId::parse(tenant_id)?;
        let tenant = self
            .registry
            .get(&id)
            .await?
            .ok_or_else(|| TenantError::tenant_not_found(tenant_id))?;
        Ok((id, tenant))
    }

    // ---- lifecycle ----

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
        if !self.config.enabled {
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
        self.registry.insert(&tenant).await?;
        // Everything after the record is undone if a later step fails: a tenant is either
        // whole or absent.
        if let Err(e) = self.finish_insert(&id, &tenant).await {
            if let Err(undo) = self.purge_records(&id).await {
                tracing::error!(tenant.id = %id, error = %undo, "undoing a failed tenant creation failed");
            }
            return Err(e);
        }
        Ok(tenant)
    }

    async fn finish_insert(&self, id: &TenantId, tenant: &Tenant) -> TenantResult<()> {
        self.registry.write_quota_overrides(tenant).await?;
        if tenant.encrypted() {
            self.keys.create(id).await?;
        }
        self.registry
            .register(id, tenant.config.created_at.timestamp_millis())
            .await
    }

    /// The tenant, or `None` when there is none with this id. Reads go through a cache of
    /// at most `record_cache_ttl_ms`.
    pub async fn get_tenant(&self, tenant_id: &str) -> TenantResult<Option<Tenant>> {
        match self.require(tenant_id).await {
            Ok((_, t)) => Ok(Some((*t).clone())),
            Err(TenantError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Applies `update` (validated first; nothing is written on bad input).
    pub async fn update_tenant(
        &self,
        tenant_id: &str,
        update: TenantUpdate,
    ) -> TenantResult<Tenant> {
        self.update_tenant_by(SYSTEM_ACTOR, tenant_id, update).await
    }

    /// [`Self::update_tenant`] on behalf of `actor`.
    pub async fn update_tenant_by(
        &self,
        actor: &str,
        tenant_id: &str,
        update: TenantUpdate,
    ) -> TenantResult<Tenant> {
        let id = TenantId::parse(tenant_id)?;
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
    pub async fn suspend_tenant(&self, tenant_id: &str, reason: &str) -> TenantResult<Tenant> {
        self.suspend_tenant_by(SYSTEM_ACTOR, tenant_id, reason)
            .await
    }

    /// [`Self::suspend_tenant`] on behalf of `actor`.
    pub async fn suspend_tenant_by(
        &self,
        actor: &str,
        tenant_id: &str,
        reason: &str,
    ) -> TenantResult<Tenant> {
        validate::reason(reason)?;
        let id = TenantId::parse(tenant_id)?;
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
    pub async fn resume_tenant(&self, tenant_id: &str) -> TenantResult<Tenant> {
        self.resume_tenant_by(SYSTEM_ACTOR, tenant_id).await
    }

    /// [`Self::resume_tenant`] on behalf of `actor`.
    pub async fn resume_tenant_by(&self, actor: &str, tenant_id: &str) -> TenantResult<Tenant> {
        let id = TenantId::parse(tenant_id)?;
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
    pub async fn delete_tenant(&self, tenant_id: &str) -> TenantResult<()> {
        self.delete_tenant_by(SYSTEM_ACTOR, tenant_id).await
    }

    /// [`Self::delete_tenant`] on behalf of `actor`.
    pub async fn delete_tenant_by(&self, actor: &str, tenant_id: &str) -> TenantResult<()> {
        let result = self.remove_tenant(tenant_id).await;
        let id = TenantId::parse(tenant_id).ok();
        self.audit_event(actor, id.as_ref(), "tenant.delete", "", &result)
            .await;
        if result.is_ok() {
            self.announce(TenantEvent::Changed {
                tenant_id: tenant_id.to_owned(),
                change: "delete",
            });
        }
        result
    }

    async fn remove_tenant(&self, tenant_id: &str) -> TenantResult<()> {
        if tenant_id == DEFAULT_TENANT && !self.config.enabled {
            return Err(TenantError::InvalidField {
                field: "tenant_id",
                reason: "the default tenant cannot be deleted while multi-tenancy is off".into(),
            });
        }
        let (id, _) = self.require(tenant_id).await?;
        // First out of the registry, so it is never listed half-deleted.
        self.registry.unregister(&id).await?;
        self.api_keys.delete_all(&id).await?;
        match self.cache.load_full() {
            Some(cache) => {
                cache
                    .clear(Some(id.as_str()))
                    .await
                    .map_err(|e| TenantError::InvalidField {
                        field: "cache",
                        reason: e.to_string(),
                    })?;
            }
            None => {
                self.store.cache_clear(&self.registry.keys(&id)).await?;
            }
        }
        if self.config.purge_billing_history_on_delete {
            self.usage.purge(&id).await?;
        }
        self.purge_records(&id).await
    }

    /// Deletes the record, quota and rate state and data key of a tenant.
    async fn purge_records(&self, id: &TenantId) -> TenantResult<()> {
        self.keys.delete(id).await?;
        self.registry.unregister(id).await?;
        self.registry.remove(id).await?;
        self.budgets.set(id, None);
        Ok(())
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

    async fn ensure_default_tenant(&self) -> TenantResult<()> {
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
        match self
            .insert_tenant(config, owner, self.config.default_plan)
            .await
        {
            Ok(_) | Err(TenantError::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    // ---- shutdown ----

    /// Stops the background tasks; the usage flusher flushes once more first. Idempotent.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a tenant background task ended abnormally");
            }
        }
    }

    // ---- helpers ----

    pub(super) fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.clock.now_ms() as i64).unwrap_or_else(Utc::now)
    }

    pub(super) async fn audit_event<T>(
        &self,
        actor: &str,
        tenant: Option<&TenantId>,
        operation: &str,
        detail: &str,
        result: &TenantResult<T>,
    ) {
        let outcome = match result {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("error: {e}"),
        };
        // The audit log bounds its fields; a long suspension reason is shortened, not lost.
        let detail: String = detail.chars().take(200).collect();
        let outcome: String = outcome.chars().take(1000).collect();
        let entry = AuditEntry::new(
            actor,
            tenant.map(|t| t.as_str()),
            operation,
            &detail,
            &outcome,
        );
        if let Err(e) = self.audit.append(entry).await {
            tracing::error!(operation, error = %e, "audit append failed");
        }
    }
}

impl Drop for TenantManager {
    fn drop(&mut self) {
        // The flusher flushes once more when cancelled.
        self.cancel.cancel();
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

/// Prunes audit records past their retention once an hour (and at start).
fn spawn_audit_pruner(
    audit: Arc<AuditLog>,
    retention_days: u32,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3_600));
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = tick.tick() => {
                    if let Err(e) = audit.prune(retention_days).await {
                        tracing::warn!(error = %e, "pruning the audit log failed; retrying in an hour");
                    }
                }
            }
        }
    })
}

/// Lower-case base32-ish random id (a–z, 2–7).
pub(super) fn random_id(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
