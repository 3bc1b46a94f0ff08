//! Restore: validating a checkpoint's body before anything is written, streaming it back
//! in per-tenant chunks, and comparing each object with the store (dry run) or writing
//! what differs (apply) — never what a decision made since the checkpoint took away
//! (tombstones: deleted tenants, revoked keys) or changed (a newer tenant record, any
//! existing key record or data key).

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt, stream};
use tokio::sync::mpsc;

use super::collect::{ZSET_PAGE, ZsetCursor, is_hash, lookup_key, lookup_owner, zset_all};
use super::diff::{Listing, RestoreObject, RestoreOutcome};
use super::format::{Line, Meta, Verified};
use super::open::{KeyRing, OpenLines, Shredded};
use super::{CheckpointError, KindCounts, RecordKind, is_month, is_segment};
use crate::keys::{Scope, ScopeKeys, records};
use crate::store::{Durability, SharedStore, Store};
use crate::tenant::crypto::DATA_KEY_RECORD;
use crate::tenant::tombstones;
use crate::tenant_id::TenantId;

/// Items per chunk handed from the reader to the appliers.
const CHUNK_ITEMS: usize = 256;
/// A chunk is handed over once its values reach this many bytes.
const CHUNK_BYTES: usize = 1024 * 1024;
/// Lookups, counters and sorted sets of one chunk compared (and written) at once.
const OBJECT_CONCURRENCY: usize = 16;
/// Writes per `set_many`.
const SET_BATCH: usize = 256;
/// Most extra tenant ids listed in a report (all are counted).
pub(super) const MAX_EXTRA_LISTED: usize = 1_000;

/// One validated object of a tenant.
#[derive(Debug)]
pub(super) enum Item {
    /// The tenant's registry entry.
    Registry(i64),
    /// A plain record (`meta`, `dek`, `key:<id>`).
    Record {
        kind: RecordKind,
        name: String,
        value: Vec<u8>,
    },
    /// A global API key lookup record.
    Lookup { hash: String, value: Vec<u8> },
    /// A counters record.
    Counters {
        kind: RecordKind,
        name: String,
        fields: Vec<(String, i64)>,
    },
    /// Members of a sorted set.
    Zset {
        kind: RecordKind,
        name: String,
        members: Vec<(String, i64)>,
    },
    /// A session record and its index entry.
    Session {
        id: String,
        expires_at_ms: i64,
        value: Vec<u8>,
    },
}

impl Item {
    fn weight(&self) -> usize {
        match self {
            Item::Record { value, .. }
            | Item::Lookup { value, .. }
            | Item::Session { value, .. } => value.len(),
            Item::Counters { fields, .. } => fields.len() * 16,
            Item::Zset { members, .. } => members.len() * 16,
            Item::Registry(_) => 8,
        }
    }
}

/// A body line, validated.
enum Parsed {
    Meta(Meta<'static>),
    End {
        tenants: u64,
        sessions: u64,
        lines: u64,
    },
    Item(TenantId, Item),
    /// A tenant's part of the warm list.
    Warm(TenantId, Vec<String>),
}

/// Most URLs of one tenant's warm list line.
const MAX_WARM_URLS: usize = 100_000;

fn tenant_of(raw: &str) -> Result<TenantId, String> {
    TenantId::parse(raw).map_err(|e| e.to_string())
}

/// Checks a line against the layout: only the records a checkpoint holds can be
/// written back, under a valid tenant id, so a damaged or forged body can never name an
/// arbitrary key.
fn classify(line: Line<'static>) -> Result<Parsed, String> {
    Ok(match line {
        Line::Meta(meta) => Parsed::Meta(meta),
        Line::End {
            tenants,
            sessions,
            lines,
        } => Parsed::End {
            tenants,
            sessions,
            lines,
        },
        Line::Tenant { tenant, score } => Parsed::Item(tenant_of(&tenant)?, Item::Registry(score)),
        Line::Record {
            tenant,
            name,
            value,
        } => {
            let kind = match name.as_ref() {
                "meta" => RecordKind::Tenant,
                DATA_KEY_RECORD => RecordKind::DataKey,
                other => match other.strip_prefix("key:") {
                    Some(id) if is_segment(id) => RecordKind::ApiKey,
                    _ => return Err(format!("unexpected record {name:?}")),
                },
            };
            Parsed::Item(
                tenant_of(&tenant)?,
                Item::Record {
                    kind,
                    name: name.into_owned(),
                    value: value.0.into_owned(),
                },
            )
        }
        Line::Lookup {
            tenant,
            hash,
            value,
        } => {
            if !is_hash(&hash) {
                return Err(format!("api key lookup hash {hash:?} is not 64 hex digits"));
            }
            if lookup_owner(&value.0).as_deref() != Some(tenant.as_ref()) {
                return Err(format!(
                    "api key lookup {hash} does not belong to tenant {tenant:?}"
                ));
            }
            Parsed::Item(
                tenant_of(&tenant)?,
                Item::Lookup {
                    hash: hash.into_owned(),
                    value: value.0.into_owned(),
                },
            )
        }
        Line::Counters {
            tenant,
            name,
            fields,
        } => {
            let kind = match name.as_ref() {
                "q" => RecordKind::Quota,
                "storage" => RecordKind::Storage,
                other => match other.strip_prefix("usage:") {
                    Some(month) if is_month(month) => RecordKind::Usage,
                    _ => return Err(format!("unexpected counters {name:?}")),
                },
            };
            Parsed::Item(
                tenant_of(&tenant)?,
                Item::Counters {
                    kind,
                    name: name.into_owned(),
                    fields: fields.into_owned(),
                },
            )
        }
        Line::Zset {
            tenant,
            name,
            members,
        } => {
            let kind = match name.as_ref() {
                "keys" => RecordKind::ApiKeyIndex,
                "usage_months" => RecordKind::UsageMonth,
                _ => return Err(format!("unexpected sorted set {name:?}")),
            };
            Parsed::Item(
                tenant_of(&tenant)?,
                Item::Zset {
                    kind,
                    name: name.into_owned(),
                    members: members.into_owned(),
                },
            )
        }
        Line::Session {
            tenant,
            id,
            expires_at_ms,
            value,
        } => {
            if !is_segment(&id) {
                return Err(format!("invalid session id {id:?}"));
            }
            Parsed::Item(
                tenant_of(&tenant)?,
                Item::Session {
                    id: id.into_owned(),
                    expires_at_ms,
                    value: value.0.into_owned(),
                },
            )
        }
        Line::Warm { tenant, urls } => {
            if urls.len() > MAX_WARM_URLS {
                return Err(format!(
                    "tenant {tenant}: a warm list of more than {MAX_WARM_URLS} URLs"
                ));
            }
            Parsed::Warm(tenant_of(&tenant)?, urls.into_owned())
        }
        Line::Sealed { tenant, .. } => {
            return Err(format!(
                "a sealed part of tenant {tenant} inside a sealed part"
            ));
        }
    })
}

/// What the validation pass learned.
pub(super) struct Scan {
    /// The meta line.
    pub(super) meta: Meta<'static>,
    /// Tenants with a registry entry in the checkpoint.
    pub(super) tenants: HashSet<String>,
    /// Sessions in the checkpoint.
    pub(super) sessions: u64,
    /// Tenants whose sealed parts could not be opened: deleted, their key destroyed.
    pub(super) shredded: BTreeMap<String, Shredded>,
    /// The tenants' parts of the warm list (the meta line has the rest).
    pub(super) warm: Vec<(Option<String>, String)>,
}

/// Reads and validates the whole body without touching the store: every line parses
/// and fits the layout, `meta` comes first and `end` last, and the figures agree with
/// the footer.
pub(super) fn scan(v: &mut Verified, ring: &mut KeyRing) -> Result<Scan, String> {
    let (footer, version) = (v.footer, v.header.version);
    let reader = v
        .lines()
        .map_err(|e| format!("cannot read the body: {e}"))?;
    let mut lines = OpenLines::new(reader, ring);
    let meta = match lines.next()?.map(classify).transpose()? {
        Some(Parsed::Meta(meta)) => meta,
        _ => return Err("the body does not start with its meta line".to_owned()),
    };
    if meta.format != version {
        return Err(format!(
            "the body says format {}, the header {version}",
            meta.format
        ));
    }
    let mut tenants = HashSet::new();
    let mut sessions = 0;
    let mut warm = Vec::new();
    loop {
        let item = lines.next()?.map(classify).transpose()?;
        let number = lines.number;
        match item {
            None => return Err("the body has no end line".to_owned()),
            Some(Parsed::Meta(_)) => return Err(format!("line {number}: a second meta line")),
            Some(Parsed::Item(tenant, item)) => match item {
                Item::Registry(_) => {
                    tenants.insert(tenant.as_str().to_owned());
                }
                Item::Session { .. } => sessions += 1,
                _ => {}
            },
            Some(Parsed::Warm(tenant, urls)) => {
                warm.extend(urls.into_iter().map(|u| (Some(tenant.to_string()), u)));
            }
            Some(Parsed::End {
                tenants: t,
                sessions: s,
                lines: l,
            }) => {
                for (tenant, gone) in &lines.shredded {
                    if gone.registry {
                        tenants.insert(tenant.clone());
                    }
                    sessions += gone.sessions;
                }
                let counted = (tenants.len() as u64, sessions, number);
                if (t, s, l) != counted
                    || (t, s, l) != (footer.tenants, footer.sessions, footer.lines)
                {
                    return Err(format!(
                        "figures disagree: end line {:?}, footer {:?}, counted {counted:?}",
                        (t, s, l),
                        (footer.tenants, footer.sessions, footer.lines)
                    ));
                }
                break;
            }
        }
    }
    if lines.next()?.is_some() {
        return Err(format!("data after the end line (line {})", lines.number));
    }
    Ok(Scan {
        meta,
        tenants,
        sessions,
        shredded: std::mem::take(&mut lines.shredded),
        warm,
    })
}

/// Consecutive items of one tenant.
pub(super) struct Chunk {
    tenant: TenantId,
    items: Vec<Item>,
}

/// Streams the body (already validated by [`scan`]) as chunks to `tx`; runs on a
/// blocking thread. Stops quietly when the receiver goes away.
pub(super) fn read_chunks(
    mut v: Verified,
    mut ring: KeyRing,
    tx: mpsc::Sender<Chunk>,
) -> Result<(), String> {
    let reader = v
        .lines()
        .map_err(|e| format!("cannot read the body: {e}"))?;
    let mut lines = OpenLines::new(reader, &mut ring);
    let mut current: Option<Chunk> = None;
    let mut weight = 0;
    while let Some(line) = lines.next()? {
        let Parsed::Item(tenant, item) = classify(line)? else {
            continue;
        };
        let full = current.as_ref().is_some_and(|c| {
            c.tenant != tenant || c.items.len() >= CHUNK_ITEMS || weight >= CHUNK_BYTES
        });
        if full && let Some(chunk) = current.take() {
            if tx.blocking_send(chunk).is_err() {
                return Ok(());
            }
            weight = 0;
        }
        weight += item.weight();
        current
            .get_or_insert_with(|| Chunk {
                tenant,
                items: Vec::new(),
            })
            .items
            .push(item);
    }
    if let Some(chunk) = current {
        // A closed receiver means the appliers stopped; they report why.
        let _ = tx.blocking_send(chunk);
    }
    Ok(())
}

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

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::super::format::{B64, Footer, Header, WriteMsg, push_line, verify, write_file};
    use super::*;

    fn meta() -> Line<'static> {
        Line::Meta(Meta {
            id: "x".into(),
            format: super::super::format::FORMAT_VERSION,
            created_at_ms: 1,
            key_prefix: "riptide".into(),
            store_kind: "embedded".into(),
            config: None,
            warm_list: Cow::Owned(Vec::new()),
            audit: None,
        })
    }

    /// A checksum-valid file holding `lines`, then an `end` line and a footer that
    /// claim `figures` (tenants, sessions).
    fn file_with(lines: &[Line<'static>], figures: (u64, u64)) -> (tempfile::TempDir, Verified) {
        file_as(Header::new(1), lines, figures)
    }

    fn file_as(
        header: Header,
        lines: &[Line<'static>],
        figures: (u64, u64),
    ) -> (tempfile::TempDir, Verified) {
        let dir = tempfile::tempdir().expect("dir");
        let mut body = Vec::new();
        for l in lines {
            push_line(&mut body, l).expect("encode");
        }
        let count = lines.len() as u64 + 1;
        let end = Line::End {
            tenants: figures.0,
            sessions: figures.1,
            lines: count,
        };
        push_line(&mut body, &end).expect("encode");
        let (tx, rx) = mpsc::channel(2);
        tx.try_send(WriteMsg::Data(body)).expect("send");
        tx.try_send(WriteMsg::Finish(Footer {
            body_len: 0,
            tenants: figures.0,
            sessions: figures.1,
            lines: count,
        }))
        .expect("send");
        drop(tx);
        let (path, _, _) = write_file(dir.path(), "t", header, rx).expect("write");
        let verified = verify(&path).expect("checksum-valid");
        (dir, verified)
    }

    fn record(tenant: &str, name: &str, value: &[u8]) -> Line<'static> {
        Line::Record {
            tenant: tenant.to_owned().into(),
            name: name.to_owned().into(),
            value: B64(Cow::Owned(value.to_vec())),
        }
    }

    #[test]
    fn a_valid_body_scans() {
        let lines = [
            meta(),
            record("acme", "meta", b"{}"),
            record("acme", "key:k7x2mq4ab9cd", b"{}"),
            Line::Session {
                tenant: "acme".into(),
                id: "s-1".into(),
                expires_at_ms: 5,
                value: B64(Cow::Owned(b"x".to_vec())),
            },
            Line::Tenant {
                tenant: "acme".into(),
                score: 1,
            },
        ];
        let (_dir, mut v) = file_with(&lines, (1, 1));
        let scan = scan(&mut v, &mut KeyRing::offline(None)).expect("valid");
        assert_eq!((scan.tenants.len(), scan.sessions), (1, 1));
    }

    #[test]
    fn version_1_files_still_scan() {
        let Line::Meta(mut m) = meta() else {
            unreachable!()
        };
        m.format = 1;
        let header = Header {
            version: 1,
            ..Header::new(1)
        };
        let (_dir, mut v) = file_as(header, &[Line::Meta(m)], (0, 0));
        assert!(scan(&mut v, &mut KeyRing::offline(None)).is_ok());
    }

    #[test]
    fn a_tenant_whose_key_is_gone_is_shredded_not_corrupt() {
        use super::super::seal::{PartFacts, seal_part};
        let key = crate::tenant::crypto::DataKey::generate();
        let facts = PartFacts {
            checkpoint: "x",
            tenant: "gone",
            key: "k1",
            seq: 0,
            registry: true,
            sessions: 3,
        };
        let part = seal_part(&key, facts, b"anything\n").expect("sealed");
        let (_dir, mut v) = file_with(&[meta(), part], (1, 3));
        let master = crate::tenant::crypto::MasterKey::generate();
        let scan = scan(&mut v, &mut KeyRing::offline(Some(master))).expect("figures check out");
        assert_eq!(scan.shredded.keys().collect::<Vec<_>>(), ["gone"]);
        assert_eq!((scan.tenants.len(), scan.sessions), (1, 3));
    }

    #[test]
    fn forged_or_inconsistent_bodies_are_refused_before_any_write() {
        let lookup = |tenant: &str, owner: &str| Line::Lookup {
            tenant: tenant.to_owned().into(),
            hash: "ab".repeat(32).into(),
            value: B64(Cow::Owned(
                format!(r#"{{"tenant_id":"{owner}","key_id":"k"}}"#).into_bytes(),
            )),
        };
        let cases: Vec<(Vec<Line<'static>>, (u64, u64), &str)> = vec![
            (
                vec![meta(), record("acme", "rl", b"x")],
                (0, 0),
                "unexpected record",
            ),
            (
                vec![meta(), record("acme", "key:../../x", b"x")],
                (0, 0),
                "unexpected record",
            ),
            (
                vec![meta(), record("Not A Tenant", "meta", b"x")],
                (0, 0),
                "invalid tenant id",
            ),
            (
                vec![meta(), lookup("acme", "globex")],
                (0, 0),
                "does not belong",
            ),
            (vec![record("acme", "meta", b"x")], (0, 0), "meta line"),
            (vec![meta(), meta()], (0, 0), "second meta"),
            (
                vec![meta(), record("acme", "meta", b"{}")],
                (1, 0),
                "figures disagree",
            ),
        ];
        for (lines, figures, expected) in cases {
            let (_dir, mut v) = file_with(&lines, figures);
            let err = scan(&mut v, &mut KeyRing::offline(None))
                .err()
                .unwrap_or_default();
            assert!(err.contains(expected), "{expected:?} in {err:?}");
        }
    }
}
