//! Restore: comparing each object of a validated checkpoint with the store (dry run) or
//! writing what differs (apply) — never what a decision made since the checkpoint took
//! away (tombstones: deleted tenants, revoked keys) or changed (a newer tenant record,
//! any existing key record or data key). Reading and validating the body is
//! `restore_scan.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt, stream};
use tokio::sync::mpsc;

use super::collect::lookup_key;
use super::diff::{Listing, RestoreObject, RestoreOutcome};
use super::restore_scan::{Chunk, Item};
use super::zset_pages::{ZSET_PAGE, ZsetCursor, zset_all};
use super::{CheckpointError, KindCounts, RecordKind};
use riptide_store::keys::{Scope, ScopeKeys, records};
use riptide_store::tenant_id::TenantId;
use riptide_store::{Durability, SharedStore, Store};
use riptide_tenant::tombstones;

/// Lookups, counters and sorted sets of one chunk compared (and written) at once.
const OBJECT_CONCURRENCY: usize = 16;
/// Writes per `set_many`.
const SET_BATCH: usize = 256;
/// Most extra tenant ids listed in a report (all are counted).
pub(super) const MAX_EXTRA_LISTED: usize = 1_000;

/// Counts per kind, the objects listed, and sessions skipped because they expired
/// since the checkpoint.
#[derive(Debug, Default, Clone)]
pub(super) struct Tally {
    pub(super) kinds: BTreeMap<RecordKind, KindCounts>,
    pub(super) listing: Listing,
    pub(super) sessions_expired: u64,
}

/// Why an object that differs from the store may not be written back.
#[derive(Debug, Clone, Copy, Default)]
struct Guard {
    /// A tombstone names it (tenant deleted or key revoked since the checkpoint).
    refused: bool,
    /// The store's copy is newer, or of a kind that is never replaced.
    keep: bool,
}

impl Guard {
    const NONE: Guard = Guard {
        refused: false,
        keep: false,
    };
}

impl Tally {
    /// Counts one object (`same`: its comparison with the store, `None` when absent)
    /// and returns whether to write it.
    fn decide(
        &mut self,
        tenant: &TenantId,
        kind: RecordKind,
        id: Option<&str>,
        same: Option<bool>,
        guard: Guard,
    ) -> bool {
        let c = self.kinds.entry(kind).or_default();
        let outcome = match same {
            Some(true) => {
                c.unchanged += 1;
                return false;
            }
            _ if guard.refused => {
                c.refused += 1;
                RestoreOutcome::Refused
            }
            Some(false) if guard.keep => {
                c.kept_newer += 1;
                RestoreOutcome::KeptNewer
            }
            Some(false) => {
                c.overwrite += 1;
                RestoreOutcome::Overwrite
            }
            None => {
                c.create += 1;
                RestoreOutcome::Create
            }
        };
        self.listing.push(RestoreObject {
            tenant: tenant.as_str().to_owned(),
            kind,
            id: id.map(str::to_owned),
            outcome,
        });
        matches!(outcome, RestoreOutcome::Create | RestoreOutcome::Overwrite)
    }

    /// Adds `other` into `self`.
    pub(super) fn merge(mut self, other: Tally) -> Tally {
        for (kind, c) in other.kinds {
            let mine = self.kinds.entry(kind).or_default();
            mine.create += c.create;
            mine.overwrite += c.overwrite;
            mine.unchanged += c.unchanged;
            mine.kept_newer += c.kept_newer;
            mine.refused += c.refused;
        }
        self.listing.merge(other.listing);
        self.sessions_expired += other.sessions_expired;
        self
    }
}

/// What restore needs of a tenant record to tell which copy is newer.
#[derive(Debug, serde::Deserialize)]
struct Stamp {
    version: u64,
    config: StampTimes,
}

#[derive(Debug, serde::Deserialize)]
struct StampTimes {
    updated_at: chrono::DateTime<chrono::Utc>,
}

impl Stamp {
    fn of(raw: &[u8]) -> Option<Stamp> {
        serde_json::from_slice(raw).ok()
    }

    /// Changed at or after the checkpoint was taken, or a later version than `than`:
    /// a suspension (or any change) made since the checkpoint stays.
    fn newer(&self, checkpoint_ms: i64, than: Option<&Stamp>) -> bool {
        self.config.updated_at.timestamp_millis() >= checkpoint_ms
            || than.is_some_and(|t| self.version > t.version)
    }
}

/// What every chunk of one restore shares.
#[derive(Debug, Clone, Copy)]
pub(super) struct Context {
    /// Nothing is written.
    pub(super) dry_run: bool,
    /// Clock ms now (decides which sessions expired).
    pub(super) now_ms: u64,
    /// When the checkpoint was taken: tombstones and changes from then on win.
    pub(super) checkpoint_ms: i64,
}

/// The key id a lookup record names.
fn lookup_key_id(value: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(value).ok()?;
    v.get("key_id")?.as_str().map(str::to_owned)
}

/// Revocation tombstones of one tenant's keys, each read once per chunk.
struct Revoked<'s> {
    store: &'s dyn Store,
    tenant: &'s str,
    checkpoint_ms: i64,
    seen: HashMap<String, bool>,
}

impl Revoked<'_> {
    /// Whether the key was revoked at or after the checkpoint was taken (a key revoked
    /// before is in the checkpoint as revoked, and harmless to restore).
    async fn since(&mut self, key_id: &str) -> Result<bool, CheckpointError> {
        if let Some(known) = self.seen.get(key_id) {
            return Ok(*known);
        }
        let revoked = tombstones::api_key_revoked_at(self.store, self.tenant, key_id)
            .await?
            .is_some_and(|at| at >= self.checkpoint_ms);
        self.seen.insert(key_id.to_owned(), revoked);
        Ok(revoked)
    }
}

/// Compares one chunk with the store and, unless `dry_run`, writes what differs and
/// may be written (see [`Tally::decide`]): records and sessions (one read, batched
/// writes), lookups, counters (exactly the checkpoint's fields), sorted-set members, and
/// the registry entry last.
///
/// Nothing of a tenant deleted at or after the checkpoint was taken is written, nor
/// anything of an API key revoked since; a tenant record changed since (a suspension,
/// say) is kept with its quota overrides; existing key records, lookups and data keys
/// are never replaced (they only move forward: revoked, expired, used).
pub(super) async fn apply_chunk(
    shared: SharedStore,
    chunk: Chunk,
    ctx: Context,
) -> Result<Tally, CheckpointError> {
    let store = &*shared;
    let prefix = store.key_prefix();
    let tenant = chunk.tenant;
    let keys = ScopeKeys::new(prefix, &Scope::Tenant(tenant.clone()));
    let now = i64::try_from(ctx.now_ms).unwrap_or(i64::MAX);
    let mut tally = Tally::default();
    let deleted = tombstones::tenant_deleted_at(store, tenant.as_str())
        .await?
        .is_some_and(|at| at >= ctx.checkpoint_ms);
    let mut revoked = Revoked {
        store,
        tenant: tenant.as_str(),
        checkpoint_ms: ctx.checkpoint_ms,
        seen: HashMap::new(),
    };
    // The store's tenant record, read once when the chunk holds what depends on it.
    let needs_meta = chunk.items.iter().any(|i| {
        matches!(
            i,
            Item::Record {
                kind: RecordKind::Tenant,
                ..
            } | Item::Counters {
                kind: RecordKind::Quota,
                ..
            }
        )
    });
    let current_meta = if needs_meta && !deleted {
        store
            .get(&keys.record(records::TENANT))
            .await?
            .and_then(|raw| Stamp::of(&raw))
    } else {
        None
    };
    let tenant_newer = current_meta
        .as_ref()
        .is_some_and(|m| m.newer(ctx.checkpoint_ms, None));

    let mut plain = Vec::new();
    let mut lookups = Vec::new();
    let mut counters = Vec::new();
    let mut zsets: HashMap<String, (RecordKind, Vec<(String, i64)>)> = HashMap::new();
    let mut registry = None;
    for item in chunk.items {
        match item {
            Item::Record { kind, name, value } => {
                let key_id = name.strip_prefix("key:").map(str::to_owned);
                let guard = match kind {
                    RecordKind::Tenant => Guard {
                        refused: deleted,
                        keep: current_meta.as_ref().is_some_and(|m| {
                            m.newer(ctx.checkpoint_ms, Stamp::of(&value).as_ref())
                        }),
                    },
                    RecordKind::ApiKey => Guard {
                        refused: deleted
                            || match &key_id {
                                Some(id) => revoked.since(id).await?,
                                None => false,
                            },
                        keep: true,
                    },
                    // Replacing a live data key would make what is sealed under it unreadable.
                    _ => Guard {
                        refused: deleted,
                        keep: true,
                    },
                };
                plain.push((kind, keys.record(&name), value, None, None, key_id, guard))
            }
            Item::Session {
                id,
                expires_at_ms,
                value,
            } => match u64::try_from(expires_at_ms - now.min(expires_at_ms)) {
                Ok(ttl) if ttl > 0 => plain.push((
                    RecordKind::Session,
                    keys.record(&records::session(&id)),
                    value,
                    Some(ttl),
                    Some((id, expires_at_ms)),
                    None,
                    Guard {
                        refused: deleted,
                        keep: false,
                    },
                )),
                _ => tally.sessions_expired += 1,
            },
            Item::Lookup { hash, value } => {
                let key_id = lookup_key_id(&value);
                let refused = deleted
                    || match &key_id {
                        Some(id) => revoked.since(id).await?,
                        None => true,
                    };
                let guard = Guard {
                    refused,
                    keep: true,
                };
                lookups.push((lookup_key(prefix, &hash), value, key_id, guard))
            }
            Item::Counters { kind, name, fields } => {
                let guard = Guard {
                    refused: deleted,
                    // Quota overrides mirror the tenant record: kept with it.
                    keep: kind == RecordKind::Quota && tenant_newer,
                };
                counters.push((kind, keys.record(&name), name, fields, guard))
            }
            Item::Zset {
                kind,
                name,
                members,
            } => zsets
                .entry(keys.record(&name))
                .or_insert_with(|| (kind, Vec::new()))
                .1
                .extend(members),
            Item::Registry(score) => registry = Some(score),
        }
    }

    // Records and sessions: one read for the chunk (one scope), batched writes.
    if !plain.is_empty() {
        let read: Vec<String> = plain.iter().map(|p| p.1.clone()).collect();
        let current = store.get_many(&read).await?;
        let mut writes = Vec::new();
        let mut index = Vec::new();
        for ((kind, key, value, ttl, session, key_id, guard), now_value) in
            plain.into_iter().zip(current)
        {
            let same = now_value.as_ref().map(|v| v.as_ref() == value.as_slice());
            if tally.decide(&tenant, kind, key_id.as_deref(), same, guard) {
                writes.push((key, Bytes::from(value), ttl));
                if let Some(member) = session {
                    index.push(member);
                }
            } else if same == Some(true)
                && let Some(member) = session
            {
                // The record is there: make sure its index entry is too.
                index.push(member);
            }
        }
        if !ctx.dry_run {
            for batch in writes.chunks(SET_BATCH) {
                store.set_many(batch, Durability::Durable).await?;
            }
            if !index.is_empty() {
                store
                    .zset_add(&keys.record(records::SESSION_INDEX), &index)
                    .await?;
            }
        }
    }

    // Sorted-set members: refused when their tenant was deleted, or (key index) their
    // key revoked, since.
    let mut zset_jobs = Vec::new();
    for (key, (kind, members)) in zsets {
        let mut guarded = Vec::with_capacity(members.len());
        for (member, score) in members {
            let refused =
                deleted || (kind == RecordKind::ApiKeyIndex && revoked.since(&member).await?);
            guarded.push((member, score, refused));
        }
        zset_jobs.push((key, kind, guarded));
    }

    // Lookups (each on its own slot), counters and sorted sets are independent
    // objects: compared and written a few at once.
    let mut jobs: Vec<BoxFuture<'static, Result<Tally, CheckpointError>>> = Vec::new();
    for (key, value, key_id, guard) in lookups {
        jobs.push(Box::pin(restore_lookup(
            shared.clone(),
            tenant.clone(),
            key,
            value,
            key_id,
            guard,
            ctx.dry_run,
        )));
    }
    for (kind, key, name, fields, guard) in counters {
        jobs.push(Box::pin(restore_counters(
            shared.clone(),
            tenant.clone(),
            kind,
            key,
            name,
            fields,
            guard,
            ctx.dry_run,
        )));
    }
    for (key, kind, members) in zset_jobs {
        jobs.push(Box::pin(restore_zset(
            shared.clone(),
            tenant.clone(),
            kind,
            key,
            members,
            ctx.dry_run,
        )));
    }
    let mut tally = stream::iter(jobs)
        .buffer_unordered(OBJECT_CONCURRENCY)
        .try_fold(tally, |acc, t| async move { Ok(acc.merge(t)) })
        .await?;

    if let Some(score) = registry {
        let key = registry_key(prefix);
        let same = store
            .zset_score(&key, tenant.as_str())
            .await?
            .map(|s| s == score);
        // Another score is a tenant created again under this id: it stays.
        let guard = Guard {
            refused: deleted,
            keep: true,
        };
        if tally.decide(&tenant, RecordKind::Registry, None, same, guard) && !ctx.dry_run {
            store
                .zset_add(&key, &[(tenant.as_str().to_owned(), score)])
                .await?;
        }
    }
    Ok(tally)
}

/// One global lookup record: compare, and write when absent and allowed.
async fn restore_lookup(
    store: SharedStore,
    tenant: TenantId,
    key: String,
    value: Vec<u8>,
    key_id: Option<String>,
    guard: Guard,
    dry_run: bool,
) -> Result<Tally, CheckpointError> {
    let same = store
        .get(&key)
        .await?
        .map(|v| v.as_ref() == value.as_slice());
    let mut tally = Tally::default();
    let write = tally.decide(
        &tenant,
        RecordKind::ApiKeyLookup,
        key_id.as_deref(),
        same,
        guard,
    );
    if !dry_run && write {
        store.set(&key, &value, None, Durability::Durable).await?;
    }
    Ok(tally)
}

/// One counters record: after a write it holds exactly the checkpoint's fields.
#[allow(clippy::too_many_arguments)]
async fn restore_counters(
    store: SharedStore,
    tenant: TenantId,
    kind: RecordKind,
    key: String,
    name: String,
    fields: Vec<(String, i64)>,
    guard: Guard,
    dry_run: bool,
) -> Result<Tally, CheckpointError> {
    let current = store.counters_get(&key).await?;
    let wanted: BTreeMap<&str, i64> = fields.iter().map(|(f, v)| (f.as_str(), *v)).collect();
    let have: BTreeMap<&str, i64> = current.iter().map(|(f, v)| (f.as_str(), *v)).collect();
    // An absent record reads as empty.
    let same = (!have.is_empty()).then_some(have == wanted);
    let mut tally = Tally::default();
    let write = tally.decide(&tenant, kind, Some(&name), same, guard);
    if !dry_run && write {
        let mut set: Vec<(String, Option<i64>)> =
            fields.iter().map(|(f, v)| (f.clone(), Some(*v))).collect();
        set.extend(
            have.keys()
                .filter(|f| !wanted.contains_key(*f))
                .map(|f| ((*f).to_owned(), None)),
        );
        store.counters_set(&key, &set).await?;
    }
    Ok(tally)
}

/// Members of one sorted set: each member counted; missing or re-scored ones written
/// unless refused.
async fn restore_zset(
    store: SharedStore,
    tenant: TenantId,
    kind: RecordKind,
    key: String,
    members: Vec<(String, i64, bool)>,
    dry_run: bool,
) -> Result<Tally, CheckpointError> {
    let current: HashMap<String, i64> = zset_all(&*store, &key).await?.into_iter().collect();
    let mut tally = Tally::default();
    let mut add = Vec::new();
    for (member, score, refused) in members {
        let same = current.get(&member).map(|s| *s == score);
        let guard = Guard {
            refused,
            ..Guard::NONE
        };
        if tally.decide(&tenant, kind, Some(&member), same, guard) {
            add.push((member, score));
        }
    }
    if !dry_run {
        for batch in add.chunks(ZSET_PAGE as usize) {
            store.zset_add(&key, batch).await?;
        }
    }
    Ok(tally)
}

/// The tenant registry's key.
pub(super) fn registry_key(prefix: &str) -> String {
    format!("{prefix}:tenants")
}

/// Tenants registered in the store but absent from the checkpoint: the first
/// [`MAX_EXTRA_LISTED`] ids, and how many there are.
pub(super) async fn extra_tenants(
    store: &dyn Store,
    in_checkpoint: &HashSet<String>,
) -> Result<(Vec<String>, u64), CheckpointError> {
    let mut cursor = ZsetCursor::new(registry_key(store.key_prefix()), i64::MIN, ZSET_PAGE);
    let mut listed = Vec::new();
    let mut total = 0;
    loop {
        let page = cursor.next(store).await?;
        if page.is_empty() {
            return Ok((listed, total));
        }
        for (id, _) in page {
            if !in_checkpoint.contains(&id) {
                total += 1;
                if listed.len() < MAX_EXTRA_LISTED {
                    listed.push(id);
                }
            }
        }
    }
}

/// Applies every chunk read from `rx`, a few concurrently, and sums their tallies.
pub(super) async fn apply_all(
    store: SharedStore,
    rx: mpsc::Receiver<Chunk>,
    ctx: Context,
    concurrency: usize,
) -> Result<Tally, CheckpointError> {
    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
        .map(|chunk| apply_chunk(store.clone(), chunk, ctx))
        .buffer_unordered(concurrency)
        .try_fold(Tally::default(), |acc, t| async move { Ok(acc.merge(t)) })
        .await
}
