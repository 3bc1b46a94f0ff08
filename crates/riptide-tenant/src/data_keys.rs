//! [`TenantKeys`]: the tenants' data keys, stored wrapped under the master key at
//! `<p>:tenant:{<id>}:dek`, held unwrapped in a bounded in-memory cache, and the cache's
//! [`CacheSealer`]. Deleting a tenant's key makes its leftover sealed entries
//! unreadable: they read as misses. Re-exported from [`super::crypto`], which holds the
//! keys and the sealing themselves.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::crypto::{DATA_KEY_RECORD, DataKey, MasterKey};
use super::error::{TenantError, TenantResult};
use crate::expiring::ExpiringCache;
use riptide_cache::{CacheError, CacheResult, CacheSealer, SealingKey};
use riptide_store::keys::{Scope, ScopeKeys};
use riptide_store::tenant_id::TenantId;
use riptide_store::{Durability, SharedStore, WriteOp};

/// Sizing of [`TenantKeys`]' in-memory state.
#[derive(Debug, Clone)]
pub struct TenantKeysOptions {
    /// Most tenants whose key and encryption setting are held in memory; beyond it the
    /// least useful are dropped and re-read from the store when next needed.
    pub max_tenants: u64,
    /// How long an unwrapped key (and a pushed setting) is kept in memory. Bounds how
    /// long an instance that missed a deletion notice can still open a deleted tenant's
    /// entries.
    pub key_ttl: Duration,
    /// How long "this tenant has no data key" is remembered. Bounds how late an
    /// instance that was not told notices another instance's [`TenantKeys::create`].
    pub absent_ttl: Duration,
}

impl Default for TenantKeysOptions {
    fn default() -> Self {
        Self {
            max_tenants: 10_000,
            key_ttl: Duration::from_secs(600),
            absent_ttl: Duration::from_secs(1),
        }
    }
}

/// What the store holds for a tenant, as far as this instance knows.
#[derive(Clone)]
enum KeyState {
    /// Not looked up.
    Unknown,
    /// No data key, as of then.
    Absent(Instant),
    /// The unwrapped key.
    Present(Arc<DataKey>),
}

/// One tenant's in-memory state.
#[derive(Clone)]
struct Slot {
    key: KeyState,
    /// The tenant's encryption setting as pushed by [`TenantKeys::set_enabled`];
    /// `None` when not told (then the presence of a data key decides).
    enabled: Option<bool>,
}

/// A data key made by [`TenantKeys::creation_op`], not yet known to be stored.
pub struct PreparedKey {
    key: Arc<DataKey>,
    /// The delete/forget epoch when it was made (see [`TenantKeys::install`]).
    epoch: u64,
}

/// The tenants' data keys: stored wrapped, cached unwrapped, and the cache's
/// [`CacheSealer`].
///
/// # Contract with the tenant manager
///
/// - **Create** the key when a tenant gets encryption ([`encryption_required`]:
///   `encryption_enabled`, or isolation level `Strong`): [`TenantKeys::create`] at
///   tenant creation and when an update turns encryption on. It is idempotent and
///   race-free across instances (the first writer's key wins). It also marks the
///   tenant enabled on this instance.
/// - **Tell** each instance the setting whenever it loads, refreshes or hears of a
///   change to a tenant record: [`TenantKeys::set_enabled`]. When an instance was not
///   told (after a restart, or after the setting was dropped from memory), a stored
///   data key means "seal": keys exist only for tenants that had encryption.
/// - **Turning encryption off** is `set_enabled(t, false)` on every instance; the key
///   stays, so entries sealed earlier stay readable.
/// - **Delete** the key with the tenant: [`TenantKeys::delete`]. Its leftover sealed
///   entries read as misses from then on. Other instances drop their copy when told
///   ([`TenantKeys::forget`]) or after [`TenantKeysOptions::key_ttl`] at the latest;
///   L1 holds decrypted entries, so the tenant's cache must be invalidated too (the
///   tenant deletion clears it).
/// - A write for a tenant marked enabled that has no data key **fails**
///   ([`CacheError::Sealing`]) rather than storing plaintext.
/// - Install it on the cache before serving: `cache.set_sealer(Box::new(keys.clone()))`.
///
/// [`encryption_required`]: super::crypto::encryption_required
pub struct TenantKeys {
    store: SharedStore,
    master: MasterKey,
    slots: ExpiringCache<TenantId, Slot>,
    absent_ttl: Duration,
    /// Bumped by every delete and forget: a load that overlapped one does not keep what
    /// it read.
    epoch: AtomicU64,
}

impl TenantKeys {
    /// Keys stored in `store`, wrapped by `master`, with default sizing.
    pub fn new(store: SharedStore, master: MasterKey) -> Arc<Self> {
        Self::with_options(store, master, TenantKeysOptions::default())
    }

    /// Keys stored in `store`, wrapped by `master`.
    pub fn with_options(
        store: SharedStore,
        master: MasterKey,
        options: TenantKeysOptions,
    ) -> Arc<Self> {
        let slots = ExpiringCache::new(
            options.max_tenants,
            options.key_ttl.max(Duration::from_millis(1)),
        );
        Arc::new(Self {
            store,
            master,
            slots,
            absent_ttl: options.absent_ttl,
            epoch: AtomicU64::new(0),
        })
    }

    /// The master key in use.
    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// The store key of `tenant`'s wrapped data key.
    pub fn record_key(&self, tenant: &TenantId) -> String {
        ScopeKeys::new(self.store.key_prefix(), &Scope::Tenant(tenant.clone()))
            .record(DATA_KEY_RECORD)
    }

    /// Makes sure `tenant` has a data key (a random one, wrapped, stored durably only if
    /// none exists, so concurrent creators on several instances agree on one) and marks
    /// the tenant enabled on this instance.
    pub async fn create(&self, tenant: &TenantId) -> TenantResult<()> {
        let record = self.record_key(tenant);
        let fresh = DataKey::generate();
        let wrapped = self.master.wrap(&fresh, tenant.as_str())?;
        let epoch = self.epoch.load(Ordering::SeqCst);
        let key = if self
            .store
            .set_if_absent(&record, &wrapped, None, Durability::Durable)
            .await?
        {
            tracing::debug!(tenant.id = tenant.as_str(), "created the tenant's data key");
            Arc::new(fresh)
        } else {
            // Created before (by us or another instance): use the stored one.
            match self.load(tenant).await? {
                Some(k) => k,
                None => return Err(TenantError::Conflict(record)),
            }
        };
        self.install(tenant, KeyState::Present(key), Some(true), epoch);
        Ok(())
    }

    /// A fresh data key for `tenant` and the op that stores it wrapped, for the atomic
    /// write that creates the tenant (so a tenant never exists without its key, nor a
    /// key without its tenant). Once written, [`Self::created`] makes it this
    /// instance's.
    pub fn creation_op(&self, tenant: &TenantId) -> TenantResult<(WriteOp, PreparedKey)> {
        let fresh = DataKey::generate();
        let wrapped = self.master.wrap(&fresh, tenant.as_str())?;
        let prepared = PreparedKey {
            key: Arc::new(fresh),
            epoch: self.epoch.load(Ordering::SeqCst),
        };
        Ok((WriteOp::put(self.record_key(tenant), wrapped), prepared))
    }

    /// Installs a key whose [`Self::creation_op`] was written, and marks the tenant
    /// enabled on this instance.
    pub fn created(&self, tenant: &TenantId, prepared: PreparedKey) {
        self.install(
            tenant,
            KeyState::Present(prepared.key),
            Some(true),
            prepared.epoch,
        );
    }

    /// The op that deletes `tenant`'s wrapped data key, for the atomic write that
    /// deletes the tenant; call [`Self::forget`] once it is written.
    pub fn deletion_op(&self, tenant: &TenantId) -> WriteOp {
        WriteOp::delete(self.record_key(tenant))
    }

    /// `tenant`'s data key: from memory, else read from the store and unwrapped. `None`
    /// when the store has none (never created, or deleted).
    pub async fn key_for(&self, tenant: &TenantId) -> TenantResult<Option<Arc<DataKey>>> {
        if let Some(slot) = self.slots.get(tenant) {
            match slot.key {
                KeyState::Present(k) => return Ok(Some(k)),
                KeyState::Absent(at) if at.elapsed() < self.absent_ttl => return Ok(None),
                _ => {}
            }
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let loaded = self.load(tenant).await?;
        let state = match &loaded {
            Some(k) => KeyState::Present(k.clone()),
            None => KeyState::Absent(Instant::now()),
        };
        self.install(tenant, state, None, epoch);
        Ok(loaded)
    }

    /// The key new values of `tenant` are sealed with: `None` when the tenant has
    /// encryption off (as told by [`TenantKeys::set_enabled`], or, when not told, when
    /// it has no data key). An enabled tenant without a data key is an error, so
    /// nothing is written in the clear.
    pub async fn key_for_sealing(&self, tenant: &TenantId) -> TenantResult<Option<Arc<DataKey>>> {
        match self.slots.get(tenant).and_then(|s| s.enabled) {
            Some(false) => Ok(None),
            Some(true) => match self.key_for(tenant).await? {
                Some(k) => Ok(Some(k)),
                None => Err(TenantError::Crypto(format!(
                    "tenant {:?} has encryption enabled but no data key (TenantKeys::create was not called, \
                     or the tenant was deleted)",
                    tenant.as_str()
                ))),
            },
            None => self.key_for(tenant).await,
        }
    }

    /// Records `tenant`'s encryption setting (from its record; see
    /// [`encryption_required`]) on this instance. Turning it on forgets a remembered
    /// "no data key", so a key another instance just created is read at once.
    ///
    /// [`encryption_required`]: super::crypto::encryption_required
    pub fn set_enabled(&self, tenant: &TenantId, enabled: bool) {
        self.slots.upsert_with(tenant.clone(), |old| {
            let key = match old.map(|s| s.key) {
                Some(KeyState::Absent(_)) if enabled => KeyState::Unknown,
                Some(key) => key,
                None => KeyState::Unknown,
            };
            Slot {
                key,
                enabled: Some(enabled),
            }
        });
    }

    /// Deletes `tenant`'s wrapped data key from the store and from memory. Returns
    /// whether there was one. Its sealed entries can no longer be opened.
    pub async fn delete(&self, tenant: &TenantId) -> TenantResult<bool> {
        self.forget(tenant);
        let removed = self.store.delete(&[self.record_key(tenant)]).await?;
        // A load that read the key before it was deleted must not keep it.
        self.forget(tenant);
        Ok(removed > 0)
    }

    /// Drops what this instance holds about `tenant` (its key and setting), e.g. when
    /// another instance deleted the tenant. The next use reads the store again.
    pub fn forget(&self, tenant: &TenantId) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.slots.invalidate(tenant);
    }

    /// Drops every key held here (deletions may have been missed). The next use of
    /// each reads the store again.
    pub fn forget_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.slots.invalidate_all();
    }

    /// Tenants held in memory (approximate).
    pub fn cached_tenants(&self) -> u64 {
        self.slots.entry_count()
    }

    /// Reads and unwraps `tenant`'s data key from the store.
    async fn load(&self, tenant: &TenantId) -> TenantResult<Option<Arc<DataKey>>> {
        match self.store.get(&self.record_key(tenant)).await? {
            Some(wrapped) => Ok(Some(Arc::new(
                self.master.unwrap(&wrapped, tenant.as_str())?,
            ))),
            None => Ok(None),
        }
    }

    /// Stores what a load found, keeping a pushed setting (`enabled: None`) or setting it.
    /// A key in memory is never replaced by "absent" (only a delete or forget removes
    /// it, so a load that raced a `create` cannot hide the new key). When a delete or
    /// forget ran since `epoch` was read, what was loaded may be stale, so it is dropped.
    fn install(&self, tenant: &TenantId, key: KeyState, enabled: Option<bool>, epoch: u64) {
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return;
        }
        self.slots.upsert_with(tenant.clone(), |old| {
            let enabled = enabled.or_else(|| old.as_ref().and_then(|s| s.enabled));
            let key = match (key, old) {
                (
                    KeyState::Absent(_),
                    Some(Slot {
                        key: present @ KeyState::Present(_),
                        ..
                    }),
                ) => present,
                (key, _) => key,
            };
            Slot { key, enabled }
        });
        if self.epoch.load(Ordering::SeqCst) != epoch {
            self.slots.invalidate(tenant);
        }
    }
}

impl fmt::Debug for TenantKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantKeys")
            .field("master", &self.master)
            .field("cached_tenants", &self.slots.entry_count())
            .finish_non_exhaustive()
    }
}

fn cache_error(e: TenantError) -> CacheError {
    match e {
        TenantError::Store(s) => CacheError::Store(s),
        other => CacheError::Sealing(other.to_string()),
    }
}

#[async_trait]
impl CacheSealer for TenantKeys {
    async fn key_for_write(&self, scope: &Scope) -> CacheResult<Option<Arc<dyn SealingKey>>> {
        let Scope::Tenant(tenant) = scope else {
            return Ok(None);
        };
        let key = self.key_for_sealing(tenant).await.map_err(cache_error)?;
        Ok(key.map(|k| k as Arc<dyn SealingKey>))
    }

    async fn key_for_read(&self, scope: &Scope) -> CacheResult<Option<Arc<dyn SealingKey>>> {
        let Scope::Tenant(tenant) = scope else {
            return Ok(None);
        };
        let key = self.key_for(tenant).await.map_err(cache_error)?;
        Ok(key.map(|k| k as Arc<dyn SealingKey>))
    }
}
