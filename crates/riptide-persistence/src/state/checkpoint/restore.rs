//! Restore: validating a checkpoint's body before anything is written, streaming it back
//! in per-tenant chunks, and comparing each object with the store (dry run) or writing
//! what differs (apply).

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt, stream};
use tokio::sync::mpsc;

use super::collect::{ZSET_PAGE, ZsetCursor, is_hash, lookup_key, lookup_owner, zset_all};
use super::format::{FORMAT_VERSION, Line, Meta, Verified};
use super::{CheckpointError, KindCounts, RecordKind, is_month, is_segment};
use crate::keys::{Scope, ScopeKeys};
use crate::store::{Durability, SharedStore, Store};
use crate::tenant::crypto::DATA_KEY_RECORD;
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
}

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
}

/// Reads and validates the whole body without touching the store: every line parses
/// and fits the layout, `meta` comes first and `end` last, and the figures agree with
/// the footer.
pub(super) fn scan(v: &mut Verified) -> Result<Scan, String> {
    let footer = v.footer;
    let mut lines = v
        .lines()
        .map_err(|e| format!("cannot read the body: {e}"))?;
    let mut number = 1;
    let meta = match lines.next_line(number)?.map(classify).transpose()? {
        Some(Parsed::Meta(meta)) => meta,
        _ => return Err("the body does not start with its meta line".to_owned()),
    };
    if meta.format != FORMAT_VERSION {
        return Err(format!(
            "the body says format {}, the header {FORMAT_VERSION}",
            meta.format
        ));
    }
    let mut tenants = HashSet::new();
    let mut sessions = 0;
    loop {
        number += 1;
        match lines.next_line(number)?.map(classify).transpose()? {
            None => return Err("the body has no end line".to_owned()),
            Some(Parsed::Meta(_)) => return Err(format!("line {number}: a second meta line")),
            Some(Parsed::Item(tenant, item)) => match item {
                Item::Registry(_) => {
                    tenants.insert(tenant.as_str().to_owned());
                }
                Item::Session { .. } => sessions += 1,
                _ => {}
            },
            Some(Parsed::End {
                tenants: t,
                sessions: s,
                lines: l,
            }) => {
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
    if lines.next_line(number + 1)?.is_some() {
        return Err(format!("data after the end line (line {})", number + 1));
    }
    Ok(Scan {
        meta,
        tenants,
        sessions,
    })
}

/// Consecutive items of one tenant.
pub(super) struct Chunk {
    tenant: TenantId,
    items: Vec<Item>,
}

/// Streams the body (already validated by [`scan`]) as chunks to `tx`; runs on a
/// blocking thread. Stops quietly when the receiver goes away.
pub(super) fn read_chunks(mut v: Verified, tx: mpsc::Sender<Chunk>) -> Result<(), String> {
    let mut lines = v
        .lines()
        .map_err(|e| format!("cannot read the body: {e}"))?;
    let mut current: Option<Chunk> = None;
    let mut weight = 0;
    let mut number = 0;
    loop {
        number += 1;
        let Some(line) = lines.next_line(number)? else {
            break;
        };
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

/// Counts per kind, and sessions skipped because they expired since the checkpoint.
#[derive(Debug, Default, Clone)]
pub(super) struct Tally {
    pub(super) kinds: BTreeMap<RecordKind, KindCounts>,
    pub(super) sessions_expired: u64,
}

impl Tally {
    fn count(&mut self, kind: RecordKind, current: Option<bool>) {
        let c = self.kinds.entry(kind).or_default();
        match current {
            None => c.create += 1,
            Some(true) => c.unchanged += 1,
            Some(false) => c.overwrite += 1,
        }
    }

    /// Adds `other` into `self`.
    pub(super) fn merge(mut self, other: Tally) -> Tally {
        for (kind, c) in other.kinds {
            let mine = self.kinds.entry(kind).or_default();
            mine.create += c.create;
            mine.overwrite += c.overwrite;
            mine.unchanged += c.unchanged;
        }
        self.sessions_expired += other.sessions_expired;
        self
    }
}

/// Compares one chunk with the store and, unless `dry_run`, writes what differs:
/// records and sessions (one read, batched writes), lookups, counters (exactly the
/// checkpoint's fields), sorted-set members, and the registry entry last.
pub(super) async fn apply_chunk(
    shared: SharedStore,
    chunk: Chunk,
    dry_run: bool,
    now_ms: u64,
) -> Result<Tally, CheckpointError> {
    let store = &*shared;
    let prefix = store.key_prefix();
    let keys = ScopeKeys::new(prefix, &Scope::Tenant(chunk.tenant.clone()));
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    let mut tally = Tally::default();

    let mut plain = Vec::new();
    let mut lookups = Vec::new();
    let mut counters = Vec::new();
    let mut zsets: HashMap<String, (RecordKind, Vec<(String, i64)>)> = HashMap::new();
    let mut registry = None;
    for item in chunk.items {
        match item {
            Item::Record { kind, name, value } => {
                plain.push((kind, keys.record(&name), value, None, None))
            }
            Item::Session {
                id,
                expires_at_ms,
                value,
            } => match u64::try_from(expires_at_ms - now.min(expires_at_ms)) {
                Ok(ttl) if ttl > 0 => plain.push((
                    RecordKind::Session,
                    keys.record(&format!("session:{id}")),
                    value,
                    Some(ttl),
                    Some((id, expires_at_ms)),
                )),
                _ => tally.sessions_expired += 1,
            },
            Item::Lookup { hash, value } => lookups.push((lookup_key(prefix, &hash), value)),
            Item::Counters { kind, name, fields } => {
                counters.push((kind, keys.record(&name), fields))
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
        for ((kind, key, value, ttl, session), now_value) in plain.into_iter().zip(current) {
            let same = now_value.as_ref().map(|v| v.as_ref() == value.as_slice());
            tally.count(kind, same);
            if let Some(member) = session {
                index.push(member);
            }
            if same != Some(true) {
                writes.push((key, Bytes::from(value), ttl));
            }
        }
        if !dry_run {
            for batch in writes.chunks(SET_BATCH) {
                store.set_many(batch, Durability::Durable).await?;
            }
            if !index.is_empty() {
                store.zset_add(&keys.record("sessions"), &index).await?;
            }
        }
    }

    // Lookups (each on its own slot), counters and sorted sets are independent
    // objects: compared and written a few at once.
    let mut jobs: Vec<BoxFuture<'static, Result<Tally, CheckpointError>>> = Vec::new();
    for (key, value) in lookups {
        jobs.push(Box::pin(restore_lookup(
            shared.clone(),
            key,
            value,
            dry_run,
        )));
    }
    for (kind, key, fields) in counters {
        jobs.push(Box::pin(restore_counters(
            shared.clone(),
            kind,
            key,
            fields,
            dry_run,
        )));
    }
    for (key, (kind, members)) in zsets {
        jobs.push(Box::pin(restore_zset(
            shared.clone(),
            kind,
            key,
            members,
            dry_run,
        )));
    }
    let mut tally = stream::iter(jobs)
        .buffer_unordered(OBJECT_CONCURRENCY)
        .try_fold(tally, |acc, t| async move { Ok(acc.merge(t)) })
        .await?;

    if let Some(score) = registry {
        let key = registry_key(prefix);
        let tenant = chunk.tenant.as_str();
        let same = store.zset_score(&key, tenant).await?.map(|s| s == score);
        tally.count(RecordKind::Registry, same);
        if !dry_run && same != Some(true) {
            store.zset_add(&key, &[(tenant.to_owned(), score)]).await?;
        }
    }
    Ok(tally)
}

/// One global lookup record: compare, and write unless equal.
async fn restore_lookup(
    store: SharedStore,
    key: String,
    value: Vec<u8>,
    dry_run: bool,
) -> Result<Tally, CheckpointError> {
    let same = store
        .get(&key)
        .await?
        .map(|v| v.as_ref() == value.as_slice());
    if !dry_run && same != Some(true) {
        store.set(&key, &value, None, Durability::Durable).await?;
    }
    let mut tally = Tally::default();
    tally.count(RecordKind::ApiKeyLookup, same);
    Ok(tally)
}

/// One counters record: after a write it holds exactly the checkpoint's fields.
async fn restore_counters(
    store: SharedStore,
    kind: RecordKind,
    key: String,
    fields: Vec<(String, i64)>,
    dry_run: bool,
) -> Result<Tally, CheckpointError> {
    let current = store.counters_get(&key).await?;
    let wanted: BTreeMap<&str, i64> = fields.iter().map(|(f, v)| (f.as_str(), *v)).collect();
    let have: BTreeMap<&str, i64> = current.iter().map(|(f, v)| (f.as_str(), *v)).collect();
    // An absent record reads as empty.
    let same = (!have.is_empty()).then_some(have == wanted);
    if !dry_run && same != Some(true) {
        let mut set: Vec<(String, Option<i64>)> =
            fields.iter().map(|(f, v)| (f.clone(), Some(*v))).collect();
        set.extend(
            have.keys()
                .filter(|f| !wanted.contains_key(*f))
                .map(|f| ((*f).to_owned(), None)),
        );
        store.counters_set(&key, &set).await?;
    }
    let mut tally = Tally::default();
    tally.count(kind, same);
    Ok(tally)
}

/// Members of one sorted set: each member counted; missing or re-scored ones written.
async fn restore_zset(
    store: SharedStore,
    kind: RecordKind,
    key: String,
    members: Vec<(String, i64)>,
    dry_run: bool,
) -> Result<Tally, CheckpointError> {
    let current: HashMap<String, i64> = zset_all(&*store, &key).await?.into_iter().collect();
    let mut tally = Tally::default();
    let mut add = Vec::new();
    for (member, score) in members {
        let same = current.get(&member).map(|s| *s == score);
        tally.count(kind, same);
        if same != Some(true) {
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
    dry_run: bool,
    now_ms: u64,
    concurrency: usize,
) -> Result<Tally, CheckpointError> {
    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
        .map(|chunk| apply_chunk(store.clone(), chunk, dry_run, now_ms))
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
            format: FORMAT_VERSION,
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
        let (path, _, _) = write_file(dir.path(), "t", Header::new(1), rx).expect("write");
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
        let scan = scan(&mut v).expect("valid");
        assert_eq!((scan.tenants.len(), scan.sessions), (1, 1));
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
            let err = scan(&mut v).err().unwrap_or_default();
            assert!(err.contains(expected), "{expected:?} in {err:?}");
        }
    }
}
