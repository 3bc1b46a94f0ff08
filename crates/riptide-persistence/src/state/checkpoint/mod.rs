//! Checkpoints of the durable state: create, list, verify and restore (issue 4, item 3).
//!
//! # What a checkpoint holds
//!
//! For every tenant in the registry (`<p>:tenants`), copied byte for byte as stored:
//!
//! | what | store key (`<p>:tenant:{<id>}:` + ...) | kind |
//! |---|---|---|
//! | registry entry (score = creation ms) | `<p>:tenants` member `<id>` | sorted-set member |
//! | the tenant record | `meta` | record |
//! | wrapped data key (without it an encrypted tenant's data is unreadable) | `dek` | record |
//! | quota overrides | `q` | counters |
//! | storage in use | `storage` | counters |
//! | API key index, key records | `keys`, `key:<key_id>` | sorted set, records |
//! | API key lookups (the keys' HMACs, never a secret: none is stored) | `<p>:apikey:<hash>` | global records |
//! | usage months, usage counters | `usage_months`, `usage:YYYY-MM` | sorted set, counters |
//! | live sessions (bytes as stored, possibly sealed; expiry) | `session:<id>`, index `sessions` | records with TTL |
//!
//! plus the running configuration document and the cache warm list given to
//! [`CheckpointManager::create`]. Secrets in the configuration (`tenant.master_key`,
//! `tenant.api_key_pepper`, tokens, passwords, the password of a store URL) are saved
//! as `<redacted>`: a checkpoint lies next to the wrapped data keys and must never
//! also hold the master key that unwraps them. Whoever applies a restored
//! configuration keeps the running secrets.
//!
//! Not included, on purpose: cache entries (a cache is rebuilt, and warmed from the
//! warm list), rate-limit state (`rl`: it refills within a period), the usage and
//! storage dedupe records (`usage_batches`, `storage:batches`: they only guard retries
//! in flight) and the audit log (append-only and hash-chained; it is never rewound).
//!
//! Sessions are read straight from their records and index (the layout of
//! `state::sessions`: `session:<id>` with a TTL, index `sessions` scored by expiry ms)
//! rather than through the session manager, so checkpoints do not depend on its memory
//! tier: a session spilled to disk by one instance is, on Redis, still in the store.
//! Sessions whose expiry has passed are left out.
//!
//! A checkpoint is taken while the service runs: each object is copied as it was when
//! read, not as of one instant across tenants (no store offers that without stopping
//! writes). Tenants created while it runs may or may not be in it.
//!
//! # Sealed per tenant (crypto-shredding)
//!
//! Once a master key is attached ([`CheckpointManager::seal_with`]; the service always
//! attaches the tenant layer's), each tenant's lines are sealed in parts with that
//! tenant's own checkpoint key (see `seal.rs`), kept in the store and in the directory's
//! keys file ([`KEYS_FILE`]), never in a checkpoint. Deleting a tenant deletes its key
//! record in the same atomic write and its keys-file entries right after (on every
//! instance that hears of it; every checkpoint and start catches up from the
//! tombstones), so every retained checkpoint's copy of the tenant — record, wrapped data
//! key, keys, usage, sessions — can no longer be opened, with or without the master key.
//! A restore reports such tenants as `shredded_tenants` and writes nothing of them.
//!
//! # Format
//!
//! See [`format`]: header `RTCK` + version + flags + creation time, a zstd frame of JSON
//! lines (base64 for bytes; a tenant's lines sealed into `sealed` lines), a footer with the figures, and a blake3 checksum of all of
//! it. Files are `<checkpoint_dir>/<id>.ckpt`, where the id is the UTC creation time
//! and a random suffix (`20261103T101500123Z-8f3a9c21`), so names sort by age. They are
//! written to a hidden temp file, fsynced, renamed and the directory fsynced; then only
//! the newest `checkpoint_retention` are kept.
//!
//! # Scale
//!
//! Nothing is held whole: tenants are read a few at a time (registry paged by score),
//! each tenant's lines go to a writer thread in parts of about 256 KiB through a
//! bounded channel, and the writer compresses and hashes as it writes. Restore streams
//! the body back in chunks of at most 256 objects of one tenant. Memory stays in the
//! low megabytes whatever the number of tenants and sessions.
//!
//! # Restore
//!
//! [`CheckpointManager::restore`] checks the id (only `[0-9A-Za-z_-]`, optionally with
//! `.ckpt`, naming a regular file in the directory), then the header, version, footer
//! and checksum, then parses every line and checks it against the layout above — all
//! before the store is touched; a checkpoint taken before the tombstone horizon (see
//! below) is refused too. A dry run then compares each object with the store and
//! reports, per kind, how many would be created, overwritten, left unchanged, kept
//! because the store's copy is newer, or refused because a tombstone names them, and
//! lists every object not left as it is (tenant, kind, key id or counters name, never
//! a value); applying writes exactly the created and overwritten ones, in batches, with
//! `Durable` writes.
//!
//! # What restore keeps (issue 10, item 1)
//!
//! A restore never undoes a security decision made after the checkpoint was taken:
//!
//! - a tenant deleted since leaves a tombstone (`crate::tenant::tombstones`): nothing
//!   of it is written back — registry entry, record, data key, keys, lookups, quota,
//!   usage, sessions — so it stays absent and its data stays unreadable;
//! - an API key revoked since leaves a tombstone: its record, index entry and lookup
//!   are not written back;
//! - a tenant record changed since (suspended, resumed, renamed...: `updated_at` at or
//!   after the checkpoint, or a higher `version`) is kept, with its quota overrides;
//! - existing API key records, lookups, data keys and registry entries are never
//!   replaced: they only move forward (revoked, expired, used; a data key or a
//!   registry score that differs belongs to a tenant created again under the same id);
//! - restore never writes a tombstone, so it never removes one. Tombstones are pruned
//!   after `tenant.audit_retention_days`, and a checkpoint older than the pruned ones
//!   is refused (`checkpoint_too_old`).
//!
//! JWT verification keys are not in checkpoints at all: restore never touches them.
//!
//! After a restore:
//!
//! - every record the restore may write is byte-equal to its copy, counters hold
//!   exactly the checkpoint's fields, and sorted sets hold the checkpoint's members
//!   with their scores;
//! - sessions get back their absolute expiry (TTL = expiry − now), so a session lives
//!   no longer than it would have; those expired since are skipped and counted;
//! - what the checkpoint does not know is left alone: tenants registered in the store
//!   but absent from the checkpoint are reported (never deleted), and so are members
//!   added to a tenant's sorted sets since;
//! - a restore interrupted half-way can simply be run again (it is idempotent).
//!
//! Writes go through the store's single-object operations, so a restore costs about
//! nine writes per tenant plus one per 256 records; on the embedded store each is a
//! durable (fsynced) commit, which bounds its speed.
//!
//! Instances cache tenant records, authentication outcomes and unwrapped data keys for
//! a short while (`tenant.record_cache_ttl_ms`, at most a second for records and keys'
//! outcomes); whoever drives a restore should announce the restored tenants as changed
//! (DistributedSync) so every instance drops those copies at once.
//!
//! # Metrics
//!
//! `checkpoint_duration_seconds{operation="create"|"restore"|"dry_run"}` (histogram),
//! `checkpoint_size_bytes` (gauge, the last checkpoint written) and
//! `checkpoint_operations_total{operation, result}`.

pub mod format;

mod audit_anchor;
mod collect;
mod diff;
mod error;
mod files;
mod keys_file;
mod open;
mod restore;
mod restore_scan;
pub(crate) mod seal;

use self::audit_anchor::audit_anchor;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use self::diff::{MAX_OBJECTS_LISTED, RestoreObject, RestoreOutcome};
pub use self::error::CheckpointError;
pub use self::keys_file::KEYS_FILE;
pub use self::seal::KEY_RECORD;

use self::collect::{Sealing, TenantTally, ZSET_PAGE, ZsetCursor, collect_tenant};
use self::error::task_err;
use self::files::{datetime, new_id};
pub(crate) use self::files::{is_month, is_segment};
use self::format::{Footer, Header, Line, Meta, WriteError, WriteMsg};
use self::keys_file::KeysFile;
use self::seal::StoredKey;
use crate::clock::SharedClock;
use crate::fence::LeaseToken;
use crate::state::config::StateConfig;
use crate::store::{Durability, SharedStore};
use crate::tenant::crypto::MasterKey;
use crate::tenant::tombstones;
use crate::tenant_id::TenantId;

/// Tenants read at once while creating, and chunks applied at once while restoring.
const CONCURRENCY: usize = 8;
/// The fenced key (beside the checkpoint job's lease) of the latest scheduled checkpoint.
pub const LATEST: &str = "latest";
/// Parts queued for the writer thread (each about 256 KiB).
const WRITE_QUEUE: usize = 16;
/// Chunks queued between the restore reader and the appliers.
const CHUNK_QUEUE: usize = 2 * CONCURRENCY;

/// What a checkpoint carries besides the store's data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointExtra {
    /// The running configuration document.
    pub config: Option<serde_json::Value>,
    /// Cache keys to warm after a restore: `(tenant, key)`.
    pub warm_list: Vec<(Option<String>, String)>,
}

/// One checkpoint file, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// The id (file name without `.ckpt`).
    pub id: String,
    /// When it was taken (from its header; from its id when the header is unreadable).
    pub created_at: DateTime<Utc>,
    /// File size.
    pub size_bytes: u64,
    /// Tenants in it (0 when invalid).
    pub tenants: u64,
    /// Sessions in it (0 when invalid).
    pub sessions: u64,
    /// Header, version and checksum verified.
    pub valid: bool,
    /// Why it is invalid.
    pub problem: Option<String>,
}

/// Kinds of objects a checkpoint restores, as counted in a [`RestoreReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// Registry entries (`<p>:tenants` members).
    Registry,
    /// Tenant records (`meta`).
    Tenant,
    /// Wrapped data keys (`dek`).
    DataKey,
    /// Quota overrides (`q` counters).
    Quota,
    /// Storage counters (`storage`).
    Storage,
    /// API key records (`key:<id>`).
    ApiKey,
    /// API key index members (`keys`).
    ApiKeyIndex,
    /// API key lookup records (`<p>:apikey:<hash>`).
    ApiKeyLookup,
    /// Usage counters (`usage:YYYY-MM`).
    Usage,
    /// Usage month index members (`usage_months`).
    UsageMonth,
    /// Sessions (record and index entry).
    Session,
}

impl RecordKind {
    /// Every kind, in report order.
    pub const ALL: [RecordKind; 11] = [
        RecordKind::Registry,
        RecordKind::Tenant,
        RecordKind::DataKey,
        RecordKind::Quota,
        RecordKind::Storage,
        RecordKind::ApiKey,
        RecordKind::ApiKeyIndex,
        RecordKind::ApiKeyLookup,
        RecordKind::Usage,
        RecordKind::UsageMonth,
        RecordKind::Session,
    ];

    /// Stable lower-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            RecordKind::Registry => "registry",
            RecordKind::Tenant => "tenant",
            RecordKind::DataKey => "data_key",
            RecordKind::Quota => "quota",
            RecordKind::Storage => "storage",
            RecordKind::ApiKey => "api_key",
            RecordKind::ApiKeyIndex => "api_key_index",
            RecordKind::ApiKeyLookup => "api_key_lookup",
            RecordKind::Usage => "usage",
            RecordKind::UsageMonth => "usage_month",
            RecordKind::Session => "session",
        }
    }
}

/// What a restore did (or, in a dry run, would do) to one kind of object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCounts {
    /// Absent from the store: created.
    pub create: u64,
    /// Present but different: overwritten.
    pub overwrite: u64,
    /// Already equal: left alone.
    pub unchanged: u64,
    /// Different, but the store's copy is newer (or never replaced): kept.
    #[serde(default)]
    pub kept_newer: u64,
    /// Deleted or revoked since the checkpoint (a tombstone names it): not written.
    #[serde(default)]
    pub refused: u64,
}

/// The outcome of [`CheckpointManager::restore`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RestoreReport {
    /// The checkpoint.
    pub id: String,
    /// Nothing was written.
    pub dry_run: bool,
    /// When the checkpoint was taken.
    pub created_at: DateTime<Utc>,
    /// Tenants in the checkpoint.
    pub tenants: u64,
    /// Sessions in the checkpoint.
    pub sessions: u64,
    /// Per kind: created, overwritten, unchanged, kept because newer, refused.
    pub kinds: BTreeMap<RecordKind, KindCounts>,
    /// Every object not left as it is, with what happens to it: kept and refused ones
    /// first (at most [`MAX_OBJECTS_LISTED`]), then created and overwritten ones (as
    /// many).
    #[serde(default)]
    pub objects: Vec<RestoreObject>,
    /// How many objects are not left as they are (all counted, listed or not).
    #[serde(default)]
    pub objects_total: u64,
    /// Sessions not restored because they expired since the checkpoint.
    pub sessions_expired: u64,
    /// Tenants registered in the store but not in the checkpoint (left alone); at most
    /// the first 1,000.
    pub extra_tenants: Vec<String>,
    /// How many such tenants there are.
    pub extra_tenants_total: u64,
    /// Tenants in the checkpoint whose sealed data can no longer be opened: they were
    /// deleted and their checkpoint key destroyed. Nothing of them is restored.
    #[serde(default)]
    pub shredded_tenants: Vec<String>,
    /// The configuration document saved with the checkpoint (not applied here).
    pub config: Option<serde_json::Value>,
    /// The warm list saved with the checkpoint.
    pub warm_list: Vec<(Option<String>, String)>,
    /// Wall time of the restore, ms.
    pub duration_ms: u64,
}

impl RestoreReport {
    /// The counts of `kind` (zero when none).
    pub fn counts(&self, kind: RecordKind) -> KindCounts {
        self.kinds.get(&kind).copied().unwrap_or_default()
    }

    /// Objects created plus overwritten, over every kind.
    pub fn changes(&self) -> u64 {
        self.kinds.values().map(|c| c.create + c.overwrite).sum()
    }

    /// Objects kept because newer plus refused, over every kind.
    pub fn protected(&self) -> u64 {
        self.kinds.values().map(|c| c.kept_newer + c.refused).sum()
    }
}

/// Creates, lists and restores checkpoints of one store in one directory.
pub struct CheckpointManager {
    store: SharedStore,
    clock: SharedClock,
    dir: PathBuf,
    retention: usize,
    /// One restore at a time: two interleaved restores would mix their checkpoints.
    restoring: tokio::sync::Mutex<()>,
    /// Wraps the tenants' checkpoint keys; without it tenants are not sealed.
    master: arc_swap::ArcSwapOption<MasterKey>,
    /// One change of the keys file at a time (read, change, rewrite).
    keys_file: std::sync::Arc<std::sync::Mutex<()>>,
}

impl std::fmt::Debug for CheckpointManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointManager")
            .field("dir", &self.dir)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl CheckpointManager {
    /// Checkpoints of `store` in `cfg.checkpoint_dir`, keeping the newest
    /// `cfg.checkpoint_retention` (at least 1). `clock` dates checkpoints and decides
    /// which sessions are live. The directory is created on the first checkpoint.
    pub fn new(store: SharedStore, clock: SharedClock, cfg: &StateConfig) -> Self {
        Self {
            store,
            clock,
            dir: cfg.checkpoint_dir.clone(),
            retention: cfg.checkpoint_retention.max(1),
            restoring: tokio::sync::Mutex::new(()),
            master: arc_swap::ArcSwapOption::empty(),
            keys_file: Default::default(),
        }
    }

    /// Seals every tenant's part of the checkpoints taken from now on with the tenant's
    /// own checkpoint key, wrapped by `master` (see `seal`): deleting a tenant then
    /// shreds it in every retained checkpoint.
    pub fn seal_with(&self, master: MasterKey) {
        self.master.store(Some(std::sync::Arc::new(master)));
    }

    /// Drops every checkpoint key of `tenant` from the keys file (the tenant was
    /// deleted): its parts of every checkpoint here can no longer be opened. Returns
    /// whether the file held one.
    pub async fn forget_tenant_keys(&self, tenant: &str) -> Result<bool, CheckpointError> {
        let tenant = tenant.to_owned();
        self.edit_keys_file(move |file| file.remove(&tenant)).await
    }

    /// Drops from the keys file the keys of tenants deleted after the key was made (a
    /// tombstone says so): catches up with deletions this instance did not hear of.
    /// Returns how many keys were dropped.
    pub async fn prune_keys(&self) -> Result<usize, CheckpointError> {
        // One read of the tombstones (bounded by the audit retention), not one per
        // tenant of the keys file: this runs before every checkpoint.
        let store = &*self.store;
        let deleted: std::collections::HashMap<String, i64> =
            collect::zset_all(store, &tombstones::tenants_key(store.key_prefix()))
                .await?
                .into_iter()
                .collect();
        if deleted.is_empty() {
            return Ok(0);
        }
        let removed = self
            .edit_keys_file(move |file| file.prune(|t| deleted.get(t).copied()))
            .await?;
        if removed > 0 {
            tracing::info!(
                checkpoint.keys_dropped = removed,
                "checkpoint keys of deleted tenants dropped"
            );
        }
        Ok(removed)
    }

    /// Adds the keys a new checkpoint was sealed with to the keys file.
    async fn remember_keys(&self, keys: Vec<(TenantId, StoredKey)>) -> Result<(), CheckpointError> {
        self.edit_keys_file(move |file| {
            keys.iter()
                .filter(|(tenant, key)| file.add(tenant.as_str(), key))
                .count()
        })
        .await
        .map(|_| ())
    }

    /// Reads the keys file, applies `change`, and rewrites it when `change` reports a
    /// change (`true` or a non-zero count).
    async fn edit_keys_file<T, F>(&self, change: F) -> Result<T, CheckpointError>
    where
        T: Changed + Send + 'static,
        F: FnOnce(&mut KeysFile) -> T + Send + 'static,
    {
        let (dir, lock) = (self.dir.clone(), self.keys_file.clone());
        tokio::task::spawn_blocking(move || {
            let _one_at_a_time = lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut file = KeysFile::load(&dir)?;
            let outcome = change(&mut file);
            if outcome.changed() {
                file.save(&dir)?;
            }
            Ok(outcome)
        })
        .await
        .map_err(task_err)?
        .map_err(CheckpointError::Keys)
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes a checkpoint (see the module docs for what it holds), writes it atomically,
    /// prunes old ones, and returns its listing. Records `checkpoint_duration_seconds`.
    /// On failure no file is left behind.
    pub async fn create(&self, extra: CheckpointExtra) -> Result<CheckpointInfo, CheckpointError> {
        self.create_with(extra, None).await
    }

    /// [`Self::create`] for the scheduled checkpoint job, under its singleton lease:
    /// once the file is complete and fsynced, and before it is renamed into place, its id
    /// is recorded with a fenced write (`<p>:lease:{checkpoint}:latest`, see
    /// [`crate::fence::LeaseToken::set`]). When the store refuses it (the holding went
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
        let writer =
            {
                let (dir, id) = (self.dir.clone(), id.clone());
                let gate = lease.map(|lease| (lease.clone(), tokio::runtime::Handle::current()));
                tokio::task::spawn_blocking(move || {
                    format::write_file_gated(&dir, &id.clone(), Header::new(now_ms), rx, || {
                        match gate {
                            Some((lease, runtime)) => runtime.block_on(record_latest(&lease, &id)),
                            None => Ok(()),
                        }
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
                .map(|c| std::borrow::Cow::Owned(collect::redact_secrets(c))),
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

    /// Every checkpoint in the directory, newest first, each verified (header, version,
    /// footer and checksum; a damaged file is listed with `valid: false` and the
    /// reason). An absent directory lists nothing.
    pub async fn list(&self) -> Result<Vec<CheckpointInfo>, CheckpointError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || files::list_dir(&dir))
            .await
            .map_err(task_err)?
    }

    /// Restores checkpoint `id` (see the module docs). The id, the file and every line
    /// are checked before the store is touched; a refusal is a typed error naming the
    /// reason. With `dry_run`, nothing is written and the report says what would change.
    pub async fn restore(&self, id: &str, dry_run: bool) -> Result<RestoreReport, CheckpointError> {
        let started = Instant::now();
        let result = self.restore_inner(id, dry_run, started).await;
        record(
            if dry_run { "dry_run" } else { "restore" },
            started,
            &result,
        );
        match &result {
            Ok(r) => tracing::info!(
                checkpoint.id = %r.id,
                dry_run,
                changes = r.changes(),
                kept_or_refused = r.protected(),
                extra_tenants = r.extra_tenants_total,
                duration_ms = r.duration_ms,
                "checkpoint restore finished"
            ),
            Err(e) => {
                tracing::warn!(checkpoint.id = %id, dry_run, error = %e, "checkpoint restore refused or failed")
            }
        }
        result
    }

    async fn restore_inner(
        &self,
        id: &str,
        dry_run: bool,
        started: Instant,
    ) -> Result<RestoreReport, CheckpointError> {
        let _one_at_a_time = self.restoring.lock().await;
        let (id, path) = files::resolve(&self.dir, id)?;
        let verified = tokio::task::spawn_blocking(move || format::verify(&path))
            .await
            .map_err(task_err)?
            .map_err(|p| CheckpointError::from_problem(&id, p))?;
        let created_at = datetime(verified.header.created_at_ms);
        let ring = self.key_ring().await?;
        let (verified, ring, scan) = tokio::task::spawn_blocking(move || {
            let (mut v, mut ring) = (verified, ring);
            let scan = restore_scan::scan(&mut v, &mut ring);
            (v, ring, scan)
        })
        .await
        .map_err(task_err)?;
        let scan = scan.map_err(|reason| CheckpointError::Corrupt {
            id: id.clone(),
            reason,
        })?;

        let store = &*self.store;
        let checkpoint_ms = i64::try_from(verified.header.created_at_ms).unwrap_or(i64::MAX);
        // Older tombstones are pruned: what they guarded could come back.
        let horizon = tombstones::horizon(store).await?;
        if checkpoint_ms < horizon {
            return Err(CheckpointError::BeforeTombstoneHorizon {
                id,
                horizon: datetime(u64::try_from(horizon).unwrap_or(0)),
            });
        }
        let (extra_tenants, extra_tenants_total) =
            restore::extra_tenants(store, &scan.tenants).await?;
        let ctx = restore::Context {
            dry_run,
            now_ms: self.clock.now_ms(),
            checkpoint_ms,
        };
        let (tx, rx) = mpsc::channel(CHUNK_QUEUE);
        let reader =
            tokio::task::spawn_blocking(move || restore_scan::read_chunks(verified, ring, tx));
        let applied = restore::apply_all(self.store.clone(), rx, ctx, CONCURRENCY).await;
        let read = reader.await.map_err(task_err)?;
        let tally = applied?;
        read.map_err(|reason| CheckpointError::Corrupt {
            id: id.clone(),
            reason,
        })?;
        Ok(RestoreReport {
            id,
            dry_run,
            created_at,
            tenants: scan.tenants.len() as u64,
            sessions: scan.sessions,
            objects_total: tally
                .kinds
                .values()
                .map(|c| c.create + c.overwrite + c.kept_newer + c.refused)
                .sum(),
            kinds: tally.kinds,
            objects: tally.listing.into_sorted(),
            sessions_expired: tally.sessions_expired,
            extra_tenants,
            extra_tenants_total,
            shredded_tenants: scan.shredded.into_keys().collect(),
            config: scan.meta.config.map(std::borrow::Cow::into_owned),
            warm_list: scan
                .meta
                .warm_list
                .into_owned()
                .into_iter()
                .chain(scan.warm)
                .collect(),
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// The keys a restore may open sealed parts with, after dropping those of tenants
    /// deleted since (so a deletion this instance missed still shreds).
    async fn key_ring(&self) -> Result<open::KeyRing, CheckpointError> {
        let master = self.master.load_full().map(|m| (*m).clone());
        if master.is_some() {
            self.prune_keys().await?;
        }
        let dir = self.dir.clone();
        let file = tokio::task::spawn_blocking(move || KeysFile::load(&dir))
            .await
            .map_err(task_err)?
            .map_err(CheckpointError::Keys)?;
        Ok(open::KeyRing::new(master, file, self.store.clone()))
    }

    /// Keeps the newest `retention` checkpoints (of the files named like generated ids)
    /// and removes leftover temp files of crashed writes. Failures are logged: the new checkpoint is written either way.
    async fn prune(&self) {
        let (dir, keep) = (self.dir.clone(), self.retention);
        match tokio::task::spawn_blocking(move || files::prune_dir(&dir, keep)).await {
            Ok(Ok(removed)) if removed > 0 => {
                tracing::debug!(checkpoint.removed = removed, "old checkpoints pruned");
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot prune old checkpoints"),
            Err(e) => tracing::warn!(error = %e, "checkpoint pruning task failed"),
        }
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

/// What a change of the keys file reports: whether it changed anything.
trait Changed {
    fn changed(&self) -> bool;
}

impl Changed for bool {
    fn changed(&self) -> bool {
        *self
    }
}

impl Changed for usize {
    fn changed(&self) -> bool {
        *self > 0
    }
}

/// Records `id` as the latest scheduled checkpoint, fenced by `lease`: the gate of its
/// file's rename (see [`CheckpointManager::create_fenced`]).
async fn record_latest(lease: &LeaseToken, id: &str) -> Result<(), crate::fence::FenceError> {
    lease
        .set(LATEST, id.as_bytes(), None, Durability::Durable)
        .await
}

/// Records the duration and outcome of an operation.
fn record<T>(operation: &'static str, started: Instant, result: &Result<T, CheckpointError>) {
    metrics::histogram!("checkpoint_duration_seconds", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!("checkpoint_operations_total", "operation" => operation, "result" => outcome)
        .increment(1);
}
