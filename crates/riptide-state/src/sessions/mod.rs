//! Per-tenant sessions (issue 4, item 4): cookies and headers that `/extract` sends,
//! with a time to live, kept in the store, cached decoded in a memory tier bounded by
//! bytes, and spilled to disk when that tier is full.
//!
//! # Where a session lives
//!
//! - **The store is the authority.** Every create, update and terminate goes to the
//!   store first, so on Redis any instance can serve any session, and on the embedded
//!   store sessions are durable in redb (durable commits). Nothing here ever deletes a
//!   live session from the store except [`SessionManager::terminate`]; shutdown does
//!   not.
//! - **The memory tier** holds decoded sessions, least recently used first out once
//!   their estimated bytes pass `state.session_memory_limit_bytes`.
//! - **Spill files**: a session leaving the memory tier is written to
//!   `<state.spill_dir>/<tenant>/<id>.session` (atomically: temporary file, fsync,
//!   rename) in the store record's exact format, so a tenant with encryption has sealed
//!   spill files too. A background task writes them (`spill_writer.rs`): the request
//!   that filled the tier never waits for a write or an fsync, and when the disk falls
//!   behind, sessions leave memory without a spill file rather than make requests wait
//!   (the store has them; [`SessionManager::flush_spills`] waits for what is queued). A later [`SessionManager::get`] loads it back into memory and
//!   deletes the file. A spill file whose session has expired is removed, never
//!   served. Spill files left by an earlier process (after [`SessionManager::spill_all`]
//!   at shutdown) are used when their header matches the store's index entry, and
//!   removed otherwise. Each running manager needs a spill dir of its own.
//! - When neither memory nor a spill file has a session, it is read from the store.
//!
//! Local copies are not told about changes made by other instances: the sync layer
//! calls [`SessionManager::forget`] (or [`SessionManager::clear_local`] after it may
//! have missed messages) when another instance changed a session.
//!
//! # Store key layout
//!
//! | what | key | value |
//! |---|---|---|
//! | a session | `<p>:tenant:{<t>}:session:<id>` | `codec` bytes (header + JSON, sealed for encrypted tenants; AAD = this key + header); store TTL = the session's lifetime at creation |
//! | the tenant's session index | `<p>:tenant:{<t>}:sessions` | sorted set: member id, score `expires_at` in ms |
//! | bytes charged to `storage_bytes` | `<p>:tenant:{<t>}:session_bytes` | sorted set: member id, score bytes (only with a tenant manager attached) |
//! | tenants that hold sessions | `<p>:{global}:session_tenants` | sorted set: member tenant id, score last write in ms (for sweeping) |
//!
//! An update is a compare-and-swap of the whole record (bounded retries). The store's
//! compare-and-swap writes without TTL, so an updated record stays until
//! [`SessionManager::sweep_expired`] (or a terminate) removes it; every read checks
//! `expires_at` itself, so an expired session is never served either way.
//!
//! # Tenants
//!
//! Without [`SessionManager::attach_tenants`], tenant ids are only validated: there is
//! no quota accounting, no check that the tenant exists or is active, and nothing is
//! sealed (a record sealed earlier cannot be read). With it:
//! - the tenant must exist for every call, and be active to create or update;
//! - session bytes (the stored record's length) are charged to the tenant's
//!   `storage_bytes` with `TenantManager::adjust_storage` before a create or a growing
//!   update is written (`QuotaExceeded` refuses the write), and released on terminate,
//!   expiry (sweep) and shrink;
//! - sessions of a tenant that has a data key (every tenant with encryption) are
//!   sealed with it, in the store and in spill files; a tenant with encryption on but
//!   no data key gets an error rather than a record in the clear.
//!
//! Metrics: `session_spillover_total{operation="spill"|"load"}`; the in-memory figures
//! are [`SessionManager::figures`].

mod codec;
mod error;
mod import;
mod maintenance;
mod memory;
mod model;
mod ops;
mod spill;
mod spill_writer;
mod tiering;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::StateConfig;
use riptide_store::SharedStore;
use riptide_store::clock::SharedClock;
use riptide_store::keys::{Scope, ScopeKeys, records};
use riptide_store::tenant_id::{AsTenantId, TenantId};
use riptide_tenant::TenantManager;
use riptide_tenant::crypto::DataKey;
use riptide_tenant::data_keys::TenantKeys;

pub use error::{SessionError, SessionResult};
pub use import::ImportReport;
pub use maintenance::{SpillAllReport, SweepReport};
pub use memory::TierFigures;
pub use model::{
    MAX_COOKIE_VALUE_LEN, MAX_COOKIES, MAX_HEADER_VALUE_LEN, MAX_HEADERS, MAX_NAME_LEN,
    MAX_SESSION_TTL, Session, SessionCookie, SessionInit, SessionSummary, SessionUpdate,
    validate_session_id,
};
pub use ops::MAX_LIST_LIMIT;

use memory::{SessionKey, Tiers};
use spill::SpillDir;
use spill_writer::SpillQueue;

/// Most sessions in the spill index; beyond it an evicted session just leaves memory.
const MAX_SPILLED: usize = 1_000_000;
/// Attempts of a compare-and-swap before [`SessionError::Conflict`].
const MAX_CAS_ATTEMPTS: usize = 8;
/// Record suffix of the global registry of tenants with sessions.
const TENANTS_RECORD: &str = records::SESSION_TENANTS;

/// The tenant layer, when attached.
struct TenantLink {
    manager: Arc<TenantManager>,
    keys: Arc<TenantKeys>,
}

/// Counters of the tiers, for [`SessionFigures`] and the metrics.
#[derive(Default)]
struct Counters {
    spills: AtomicU64,
    loads: AtomicU64,
    spill_failures: AtomicU64,
    expired_removed: AtomicU64,
    spill_metric: OnceLock<metrics::Counter>,
    load_metric: OnceLock<metrics::Counter>,
}

impl Counters {
    fn spilled(&self) {
        self.spills.fetch_add(1, Ordering::Relaxed);
        self.spill_metric
            .get_or_init(|| metrics::counter!("session_spillover_total", "operation" => "spill"))
            .increment(1);
    }

    fn loaded(&self) {
        self.loads.fetch_add(1, Ordering::Relaxed);
        self.load_metric
            .get_or_init(|| metrics::counter!("session_spillover_total", "operation" => "load"))
            .increment(1);
    }
}

/// Session and spill figures for `current_state()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SessionFigures {
    /// Memory tier and spill index, right now.
    #[serde(flatten)]
    pub tiers: TierFigures,
    /// Sessions written to spill files since start.
    pub spills_total: u64,
    /// Sessions loaded back from spill files since start.
    pub loads_total: u64,
    /// Spill files that could not be written (the session stays in the store).
    pub spill_failures_total: u64,
    /// Expired sessions removed from the store by sweeps since start.
    pub expired_removed_total: u64,
}

/// Where the periodic sweep stands.
#[derive(Default)]
struct SweepCursor {
    /// Offset into the registry of tenants with sessions.
    tenant_offset: u64,
    /// Last tenant directory of the spill dir visited.
    spill_dir_after: Option<String>,
    /// Spill files not known to this process seen in the current pass over the spill
    /// dir.
    foreign_seen: u64,
}

/// Per-tenant sessions with a memory tier and disk spillover. See the module docs.
pub struct SessionManager {
    store: SharedStore,
    clock: SharedClock,
    default_ttl: Duration,
    max_sessions: u64,
    spill: SpillDir,
    tiers: Mutex<Tiers>,
    tenants: ArcSwapOption<TenantLink>,
    counters: Counters,
    sweep: Mutex<SweepCursor>,
    /// The spill dir may hold files of an earlier process: look for one on a miss.
    foreign_spill: AtomicBool,
    /// Told of every update and termination, so other instances drop their copies.
    listener: ArcSwapOption<SessionChangeListener>,
    /// The background writer of spill files (see `spill_writer.rs`).
    spills: SpillQueue,
    /// This manager, for the background writer (which must not keep it alive).
    me: Weak<SessionManager>,
}

/// Told `(tenant, session id)` of every session changed or terminated here; the sync
/// layer publishes it so other instances drop their local copies.
pub struct SessionChangeListener(pub SessionChangeFn);

/// The function inside a [`SessionChangeListener`]: `(tenant, session id)`.
pub type SessionChangeFn = Box<dyn Fn(&str, &str) + Send + Sync>;

/// What a call needs to know about its tenant.
struct Ctx {
    id: TenantId,
    keys: ScopeKeys,
    link: Option<Arc<TenantLink>>,
    /// The key new writes are sealed with (writes only).
    seal: Option<Arc<DataKey>>,
}

/// What a call does, for the tenant checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// The tenant must exist.
    Read,
    /// The tenant must exist and be active; the sealing key is resolved.
    Write,
    /// The tenant must exist; the sealing key is resolved (imports).
    Restore,
    /// No check (background sweeps, which must also clean up after deleted tenants).
    Internal,
}

impl SessionManager {
    /// Sessions in `store`, timed by `clock`, sized and placed by `cfg`
    /// (`session_ttl_seconds`, `session_memory_limit_bytes`, `spill_dir`,
    /// `max_sessions_per_tenant`). The spill directory is created when first needed.
    pub fn new(store: SharedStore, clock: SharedClock, cfg: &StateConfig) -> Arc<Self> {
        let foreign = std::fs::read_dir(&cfg.spill_dir).is_ok_and(|mut d| d.next().is_some());
        let limit = cfg.session_memory_limit_bytes.max(1);
        Arc::new_cyclic(|me| Self {
            store,
            clock,
            default_ttl: Duration::from_secs(cfg.session_ttl_seconds.max(1)),
            max_sessions: cfg.max_sessions_per_tenant.max(1),
            spill: SpillDir::new(cfg.spill_dir.clone()),
            tiers: Mutex::new(Tiers::new(
                limit,
                MAX_SPILLED,
                spill_writer::writing_budget(limit),
            )),
            tenants: ArcSwapOption::empty(),
            counters: Counters::default(),
            sweep: Mutex::new(SweepCursor::default()),
            foreign_spill: AtomicBool::new(foreign),
            listener: ArcSwapOption::empty(),
            spills: SpillQueue::default(),
            me: me.clone(),
        })
    }

    /// Plugs in the tenant layer (see the module docs: existence and status checks,
    /// `storage_bytes` accounting, sealing). Sessions reach tenants' data keys through
    /// their own [`TenantKeys`] over the tenant manager's store and master key
    /// (`tenant.master_key`, or the key file under `tenant.secrets_dir`), holding an
    /// unwrapped key for at most 30 seconds.
    pub fn attach_tenants(&self, tenants: Arc<TenantManager>) -> SessionResult<()> {
        // The tenant layer's own key cache: a deleted tenant's key is forgotten here too.
        let keys = tenants.data_keys().clone();
        self.tenants.store(Some(Arc::new(TenantLink {
            manager: tenants,
            keys,
        })));
        Ok(())
    }

    /// Installs the listener told of every session changed or terminated here.
    pub fn set_change_listener(&self, listener: SessionChangeListener) {
        self.listener.store(Some(Arc::new(listener)));
    }

    pub(super) fn announce(&self, tenant: &str, id: &str) {
        if let Some(l) = self.listener.load().as_ref() {
            (l.0)(tenant, id);
        }
    }

    /// Session and spill figures (for `current_state()`).
    pub fn figures(&self) -> SessionFigures {
        SessionFigures {
            tiers: self.lock_tiers().figures(),
            spills_total: self.counters.spills.load(Ordering::Relaxed),
            loads_total: self.counters.loads.load(Ordering::Relaxed),
            spill_failures_total: self.counters.spill_failures.load(Ordering::Relaxed),
            expired_removed_total: self.counters.expired_removed.load(Ordering::Relaxed),
        }
    }

    /// The spill directory.
    pub fn spill_dir(&self) -> &std::path::Path {
        self.spill.root()
    }

    // ---- helpers ----

    fn lock_tiers(&self) -> MutexGuard<'_, Tiers> {
        // The tiers hold no invariant a panic could half-break that matters more than
        // serving: recover from poisoning.
        self.tiers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn scope(&self, tenant: &TenantId) -> ScopeKeys {
        ScopeKeys::new(self.store.key_prefix(), &Scope::Tenant(tenant.clone()))
    }

    fn registry_key(&self) -> String {
        ScopeKeys::new(self.store.key_prefix(), &Scope::Global).record(TENANTS_RECORD)
    }

    /// Resolves and checks the tenant for a call.
    async fn context(
        &self,
        tenant: &(impl AsTenantId + ?Sized),
        access: Access,
    ) -> SessionResult<Ctx> {
        let id = tenant.as_tenant_id()?.into_owned();
        let keys = self.scope(&id);
        let link = self.tenants.load_full();
        let mut seal = None;
        if let (Some(l), false) = (&link, access == Access::Internal) {
            let record = l
                .manager
                .get_tenant(&id)
                .await?
                .ok_or_else(|| riptide_tenant::TenantError::tenant_not_found(id.as_str()))?;
            if access == Access::Write && !record.is_active() {
                return Err(riptide_tenant::TenantError::Suspended(id.to_string()).into());
            }
            if matches!(access, Access::Write | Access::Restore) {
                // Sealed whenever the tenant has a data key (as spill files are); a
                // tenant with encryption on must have one: never write it in the clear.
                seal = l.keys.key_for(&id).await?;
                if seal.is_none() && record.encrypted() {
                    return Err(SessionError::Crypto(format!(
                        "tenant {:?} has encryption enabled but no data key",
                        id.as_str()
                    )));
                }
            }
        }
        Ok(Ctx {
            id,
            keys,
            link,
            seal,
        })
    }

    /// The data key that opens sealed records of `tenant`, when the tenant layer is
    /// attached and the tenant has one.
    async fn open_key(&self, tenant: &TenantId) -> SessionResult<Option<Arc<DataKey>>> {
        match self.tenants.load_full() {
            Some(l) => Ok(l.keys.key_for(tenant).await?),
            None => Ok(None),
        }
    }

    /// Decodes stored bytes of session `id` of `tenant` and checks they belong there.
    async fn decode(
        &self,
        tenant: &TenantId,
        id: &str,
        store_key: &str,
        bytes: &[u8],
    ) -> SessionResult<Session> {
        let header = codec::Header::parse(bytes, store_key)?;
        let key = if header.sealed {
            self.open_key(tenant).await?
        } else {
            None
        };
        let session = codec::decode(bytes, store_key, key.as_deref())?;
        if session.id != id || session.tenant_id != tenant.as_str() {
            return Err(SessionError::Corrupt {
                key: store_key.to_owned(),
                reason: "the record names another session".into(),
            });
        }
        Ok(session)
    }

    /// Charges (`delta > 0`) or releases (`delta < 0`) session bytes to the tenant's
    /// `storage_bytes`, when the tenant layer is attached.
    async fn charge(&self, ctx: &Ctx, delta: i64) -> SessionResult<()> {
        if let (Some(l), true) = (&ctx.link, delta != 0) {
            l.manager.adjust_storage(&ctx.id, delta).await?;
        }
        Ok(())
    }

    /// Releases bytes; a failure is logged (the bytes stay counted: conservative).
    async fn release(&self, ctx: &Ctx, bytes: u64) {
        let delta = -(i64::try_from(bytes).unwrap_or(i64::MAX));
        if let Err(e) = self.charge(ctx, delta).await {
            match e {
                SessionError::Tenant(riptide_tenant::TenantError::NotFound { .. }) => {}
                e => tracing::warn!(
                    tenant.id = ctx.id.as_str(),
                    bytes,
                    error = %e,
                    "could not release session bytes from storage_bytes"
                ),
            }
        }
    }
}

/// The store key of a session's record.
fn record_key(scope: &ScopeKeys, id: &str) -> String {
    scope.record(&records::session(id))
}

/// The tenant's session index (expiry-ordered).
fn index_key(scope: &ScopeKeys) -> String {
    scope.record(records::SESSION_INDEX)
}

/// The tenant's ledger of bytes charged per session.
fn ledger_key(scope: &ScopeKeys) -> String {
    scope.record(records::SESSION_BYTES)
}

/// Milliseconds since the epoch as a timestamp.
fn to_datetime(ms: u64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// A score for a sorted set.
fn score(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A duration in whole milliseconds, at least 1.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl SessionKey {
    fn of(ctx: &Ctx, id: &str) -> Self {
        SessionKey {
            tenant: ctx.id.clone(),
            id: id.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicU64;

    use metrics::{
        Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    use super::*;

    /// A counter registered with its name and labels.
    type Registered = (String, Vec<(String, String)>, Arc<AtomicU64>);

    /// Records counters by name and labels.
    #[derive(Default)]
    struct TestRecorder {
        counters: Mutex<Vec<Registered>>,
    }

    impl Recorder for TestRecorder {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let value = Arc::new(AtomicU64::new(0));
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            self.counters
                .lock()
                .unwrap()
                .push((key.name().to_owned(), labels, value.clone()));
            Counter::from_arc(value)
        }

        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }

        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn spills_and_loads_are_counted_by_operation() {
        let recorder = TestRecorder::default();
        let counters = Counters::default();
        metrics::with_local_recorder(&recorder, || {
            counters.spilled();
            counters.spilled();
            counters.loaded();
        });
        let seen = recorder.counters.lock().unwrap();
        let value = |op: &str| {
            seen.iter()
                .find(|(name, labels, _)| {
                    name == "session_spillover_total"
                        && labels == &vec![("operation".to_owned(), op.to_owned())]
                })
                .map(|(_, _, v)| v.load(Ordering::Relaxed))
        };
        assert_eq!(value("spill"), Some(2));
        assert_eq!(value("load"), Some(1));
        assert_eq!(counters.spills.load(Ordering::Relaxed), 2);
        assert_eq!(counters.loads.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn key_layout() {
        let scope = ScopeKeys::new("riptide", &Scope::Tenant(TenantId::parse("acme").unwrap()));
        assert_eq!(
            record_key(&scope, "AAAAAAAAAAAAAAAAAAAAAA"),
            "riptide:tenant:{acme}:session:AAAAAAAAAAAAAAAAAAAAAA"
        );
        assert_eq!(index_key(&scope), "riptide:tenant:{acme}:sessions");
        assert_eq!(ledger_key(&scope), "riptide:tenant:{acme}:session_bytes");
    }
}
