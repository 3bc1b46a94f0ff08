//! [`TenantManager`]: tenant records and lifecycle, with the seed's API.
//!
//! Lifecycle operations (create, update, suspend, resume, delete, list) live in
//! `lifecycle.rs`, quotas in `quota.rs`, access in `access.rs`; usage, billing, keys,
//! audit and encryption are their own types, composed here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, ArcSwapOption};
use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::api_keys::ApiKeys;
use super::audit::{AuditEntry, AuditKey, AuditLog, HIGH_WATER_FILE};
use super::budgets::{BudgetHandle, BudgetSource, RateArgs, TenantBudgets, rate_args_cache};
use super::crypto::MasterKey;
use super::data_keys::TenantKeys;
use super::error::{TenantError, TenantResult};
use super::jwt_keys::JwtKeys;
use super::live_settings::LiveTenantSettings;
use super::metrics_lock::SharedTenantMetrics;
use super::model::{BillingPlan, Tenant, TenantOwner};
use super::policy::AccessPolicy;
use super::registry::Registry;
use super::secrets::load_pepper;
use super::usage::UsageMeter;
use riptide_cache::PersistentCacheManager;
use riptide_store::SharedStore;
use riptide_store::clock::SharedClock;
use riptide_store::tenant_id::{AsTenantId, TenantId};

/// Changes to a tenant; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantUpdate {
    /// New display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<BillingPlan>,
    /// Replaces the quota overrides (an empty map returns to the plan's defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quotas: Option<std::collections::HashMap<String, u64>>,
    /// Replaces the settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<std::collections::HashMap<String, String>>,
    /// Replaces the access policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<AccessPolicy>,
    /// New owner.
    #[serde(skip_serializing_if = "Option::is_none")]
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
    /// One of the tenant's keys (an API key or a JWT verification key) was revoked.
    KeyRevoked {
        /// The tenant.
        tenant_id: String,
        /// The key.
        key_id: String,
    },
}

/// Told of every [`TenantEvent`] made on this instance.
pub struct TenantChangeListener(pub Box<dyn Fn(&TenantEvent) + Send + Sync>);

/// Told when a tenant is gone, here or on another instance (`Some`), or when
/// deletions may have been missed (`None`: messages from other instances were lost),
/// so what is kept outside the store (checkpoint keys, spill files) follows.
pub struct TenantDeletionHook(pub Box<DeletionFn>);

/// What a [`TenantDeletionHook`] runs.
pub type DeletionFn = dyn Fn(Option<&TenantId>) + Send + Sync;

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
    /// As built: the keys read once (see `live` for the others).
    pub(super) config: Arc<super::config::TenancyConfig>,
    /// Plans, billing and default plan as last applied (see
    /// `live_settings.rs`); shared with the cache budgets.
    pub(super) live: Arc<ArcSwap<LiveTenantSettings>>,
    /// The last closed month whose prices this instance knows to be sealed (`YYYYMM`).
    pub(super) sealed_month: Arc<std::sync::atomic::AtomicI64>,
    pub(super) registry: Registry,
    pub(super) budgets: Arc<TenantBudgets>,
    pub(super) usage: Arc<UsageMeter>,
    pub(super) metrics: SharedTenantMetrics,
    pub(super) api_keys: ApiKeys,
    pub(super) jwt_keys: JwtKeys,
    audit: Arc<AuditLog>,
    pub(super) keys: Arc<TenantKeys>,
    pub(super) cache: ArcSwapOption<PersistentCacheManager>,
    listener: ArcSwapOption<TenantChangeListener>,
    deletion_hook: ArcSwapOption<TenantDeletionHook>,
    cancel: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    pub(super) instance_id: String,
    batch_seq: AtomicU64,
    /// The rate limiter's arguments per tenant (see `quota.rs`).
    pub(super) rate_args: quick_cache::sync::Cache<TenantId, Arc<RateArgs>>,
}

impl TenantManager {
    /// The tenant layer over an existing store, with an injected clock.
    pub async fn with_store(
        store: SharedStore,
        config: super::config::TenancyConfig,
        metrics: impl Into<SharedTenantMetrics>,
        clock: SharedClock,
    ) -> TenantResult<Self> {
        config.validate()?;
        let metrics = metrics.into();
        let config = Arc::new(config);
        let (master, _created) = MasterKey::from_config(&config)?;
        let pepper = load_pepper(&config.api_key_pepper, &config.secrets_dir)?;
        let live = Arc::new(ArcSwap::from_pointee(LiveTenantSettings::of(&config)));
        let usage = UsageMeter::new(store.clone(), clock.clone(), &config, metrics.clone());
        let budgets = TenantBudgets::new(live.clone());
        let audit_key = AuditKey::from_master(&master);
        let jwt_keys = JwtKeys::new(store.clone(), clock.clone(), master.clone(), &config);
        let keys = TenantKeys::new(store.clone(), master);
        let on_load: super::registry::OnLoad = {
            let (budgets, keys) = (budgets.clone(), keys.clone());
            Box::new(move |id, tenant| {
                budgets.set(id, Some(BudgetSource::of(tenant)));
                keys.set_enabled(id, tenant.encrypted());
            })
        };
        let cancel = CancellationToken::new();
        let flusher = usage.spawn_flusher(
            std::time::Duration::from_millis(config.usage_flush_interval_ms),
            cancel.clone(),
        );
        let sealed_month = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let closer = super::month_close::spawn_month_closer(
            store.clone(),
            clock.clone(),
            live.clone(),
            sealed_month.clone(),
            cancel.clone(),
        );
        let audit = Arc::new(
            AuditLog::new(store.clone(), clock.clone(), audit_key)
                .with_high_water_file(config.secrets_dir.join(HIGH_WATER_FILE)),
        );
        let pruner = spawn_audit_pruner(
            audit.clone(),
            store.clone(),
            clock.clone(),
            config.audit_retention_days,
            cancel.clone(),
        );
        let manager = Self {
            registry: Registry::new(store.clone(), config.record_cache_ttl_ms, on_load),
            budgets,
            api_keys: ApiKeys::new(store.clone(), clock.clone(), pepper, &config),
            jwt_keys,
            audit,
            keys,
            cache: ArcSwapOption::empty(),
            listener: ArcSwapOption::empty(),
            deletion_hook: ArcSwapOption::empty(),
            tasks: Mutex::new(vec![flusher, pruner, closer]),
            instance_id: random_id(8),
            batch_seq: AtomicU64::new(0),
            rate_args: rate_args_cache(),
            usage,
            metrics,
            cancel,
            store,
            clock,
            live,
            sealed_month,
            config,
        };
        if !manager.multi_tenancy_enabled() {
            manager
                .ensure_default_tenant(manager.config.default_plan)
                .await?;
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

    /// Sets the hook told of deletions (replacing any earlier one).
    pub fn set_deletion_hook(&self, hook: TenantDeletionHook) {
        self.deletion_hook.store(Some(Arc::new(hook)));
    }

    pub(super) fn tell_deleted(&self, tenant: Option<&TenantId>) {
        if let Some(hook) = self.deletion_hook.load().as_ref() {
            (hook.0)(tenant);
        }
    }

    /// Drops what this instance holds about a tenant another instance changed: its
    /// cached record, cached key lookups and (when deleted) its data key, and tells the
    /// deletion hook.
    pub fn forget_tenant(&self, tenant_id: &(impl AsTenantId + ?Sized), deleted: bool) {
        let Ok(id) = tenant_id.as_tenant_id() else {
            return;
        };
        self.registry.forget(&id);
        self.api_keys.forget_cached();
        self.jwt_keys.forget_cached();
        if deleted {
            self.keys.forget(&id);
            self.budgets.set(&id, None);
            self.tell_deleted(Some(&id));
        }
    }

    /// Drops every cached record, key lookup and data key (after messages from other
    /// instances may have been lost: a deletion among them must not leave a data key
    /// here), and tells the deletion hook.
    pub fn forget_everything(&self) {
        self.registry.forget_all();
        self.api_keys.forget_cached();
        self.jwt_keys.forget_cached();
        self.keys.forget_all();
        self.tell_deleted(None);
    }

    /// The configuration the manager was built with. The live keys (plans, billing,
    /// default plan) may have changed since: [`Self::live_settings`] has the values in
    /// force.
    pub fn config(&self) -> &super::config::TenancyConfig {
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
    pub(super) async fn require(
        &self,
        tenant_id: &(impl AsTenantId + ?Sized),
    ) -> TenantResult<(TenantId, Arc<Tenant>)> {
        let id = tenant_id.as_tenant_id()?;
        let tenant = self
            .registry
            .get(&id)
            .await?
            .ok_or_else(|| TenantError::tenant_not_found(id.as_str()))?;
        Ok((id.into_owned(), tenant))
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

/// Prunes audit records past their retention once an hour (and at start).
/// Prunes the audit log and the tombstones (which live as long as the audit records of
/// the decisions they keep; see `tombstones.rs`) once an hour.
fn spawn_audit_pruner(
    audit: Arc<AuditLog>,
    store: SharedStore,
    clock: SharedClock,
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
                    if let Err(e) = super::tombstones::prune(&*store, clock.now_ms(), retention_days).await {
                        tracing::warn!(error = %e, "pruning tombstones failed; retrying in an hour");
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
