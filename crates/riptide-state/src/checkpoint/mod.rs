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
//! See [`format`](mod@format): header `RTCK` + version + flags + creation time, a zstd frame of JSON
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
//! - a tenant deleted since leaves a tombstone (`riptide_tenant::tombstones`): nothing
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
mod create;
mod diff;
mod error;
mod files;
mod keys;
mod keys_file;
mod open;
mod redact;
mod report;
mod restore;
mod restore_scan;
pub(crate) mod seal;
mod write;
mod zset_pages;

use std::path::{Path, PathBuf};
use std::time::Instant;

use tokio::sync::mpsc;

pub use self::diff::{MAX_OBJECTS_LISTED, RestoreObject, RestoreOutcome};
pub use self::error::CheckpointError;
pub use self::keys_file::KEYS_FILE;
pub use self::report::{CheckpointExtra, CheckpointInfo, KindCounts, RecordKind, RestoreReport};
pub use self::seal::KEY_RECORD;

use self::error::task_err;
use self::files::datetime;
pub(crate) use self::files::{is_month, is_segment};
use crate::config::StateConfig;
use riptide_store::SharedStore;
use riptide_store::clock::SharedClock;
use riptide_tenant::crypto::MasterKey;
use riptide_tenant::tombstones;

/// Tenants read at once while creating, and chunks applied at once while restoring.
const CONCURRENCY: usize = 8;
/// The fenced key (beside the checkpoint job's lease) of the latest scheduled checkpoint.
pub const LATEST: &str = "latest";
/// Parts queued for the writer thread (each about 256 KiB).
const WRITE_QUEUE: usize = 16;
/// Chunks queued between the restore reader and the appliers.
const CHUNK_QUEUE: usize = 2 * CONCURRENCY;

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

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
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

/// Records the duration and outcome of an operation.
fn record<T>(operation: &'static str, started: Instant, result: &Result<T, CheckpointError>) {
    metrics::histogram!("checkpoint_duration_seconds", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!("checkpoint_operations_total", "operation" => operation, "result" => outcome)
        .increment(1);
}
