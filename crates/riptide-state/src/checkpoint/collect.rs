//! Reading one tenant's state out of the store into body lines, streamed to the writer
//! in bounded parts, and the lookup-record helpers shared with restore.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt, stream};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::format::{B64, Line, push_line};
use super::seal::{PartFacts, StoredKey, seal_part, tenant_key};
use super::write::WriteMsg;
use super::zset_pages::{ZsetCursor, zset_all};
use super::{CheckpointError, is_month, is_segment};
use riptide_store::keys::{Scope, ScopeKeys, records};
use riptide_store::tenant_id::TenantId;
use riptide_store::{SharedStore, Store, StoreResult};
use riptide_tenant::crypto::{DATA_KEY_RECORD, DataKey, MasterKey};

/// A part is handed to the writer once it holds this many bytes.
const PART_BYTES: usize = 256 * 1024;
/// Records read per `get_many`.
const GET_BATCH: usize = 256;
/// Members per `zset` body line.
pub(super) const ZSET_LINE_MEMBERS: usize = 512;
/// Global lookup records read at once (each lives on its own Cluster slot).
pub(super) const LOOKUP_CONCURRENCY: usize = 16;

/// Lines of one tenant, handed to the writer in parts of about [`PART_BYTES`] (each
/// sealed into one line when the tenant is sealed).
pub(super) struct Sink {
    tx: mpsc::Sender<WriteMsg>,
    buf: Vec<u8>,
    /// Body lines handed over so far (a sealed part is one).
    pub(super) lines: u64,
    seal: Option<PartSeal>,
}

/// How a sink seals its parts, and what the current part holds.
struct PartSeal {
    key: DataKey,
    key_id: String,
    checkpoint: Arc<str>,
    tenant: String,
    seq: u64,
    registry: bool,
    sessions: u64,
}

impl TenantTally {
    /// The sum of both.
    pub(super) fn add(self, other: TenantTally) -> TenantTally {
        TenantTally {
            tenants: self.tenants + other.tenants,
            sessions: self.sessions + other.sessions,
            lines: self.lines + other.lines,
        }
    }
}

impl Sink {
    pub(super) fn new(tx: mpsc::Sender<WriteMsg>) -> Self {
        Self {
            tx,
            buf: Vec::new(),
            lines: 0,
            seal: None,
        }
    }

    /// A sink that seals every part of `tenant` with `key` (id `key_id`).
    fn sealed(
        tx: mpsc::Sender<WriteMsg>,
        checkpoint: Arc<str>,
        tenant: &str,
        key: DataKey,
        key_id: String,
    ) -> Self {
        let mut sink = Self::new(tx);
        sink.seal = Some(PartSeal {
            key,
            key_id,
            checkpoint,
            tenant: tenant.to_owned(),
            seq: 0,
            registry: false,
            sessions: 0,
        });
        sink
    }

    /// Appends a line, handing the part over when it is full.
    pub(super) async fn push(&mut self, line: &Line<'_>) -> Result<(), CheckpointError> {
        push_line(&mut self.buf, line).map_err(|e| CheckpointError::Encode(e.to_string()))?;
        match &mut self.seal {
            Some(seal) => match line {
                Line::Tenant { .. } => seal.registry = true,
                Line::Session { .. } => seal.sessions += 1,
                _ => {}
            },
            None => self.lines += 1,
        }
        if self.buf.len() >= PART_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    /// Hands what is buffered to the writer (sealed into one line first when sealing).
    pub(super) async fn flush(&mut self) -> Result<(), CheckpointError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut part = std::mem::take(&mut self.buf);
        if let Some(seal) = &mut self.seal {
            let facts = PartFacts {
                checkpoint: &seal.checkpoint,
                tenant: &seal.tenant,
                key: &seal.key_id,
                seq: seal.seq,
                registry: seal.registry,
                sessions: seal.sessions,
            };
            let line = seal_part(&seal.key, facts, &part)?;
            // The plain lines never reach the writer (best effort: the allocator may
            // have copied them while the buffer grew).
            part.fill(0);
            part.clear();
            push_line(&mut part, &line).map_err(|e| CheckpointError::Encode(e.to_string()))?;
            (seal.seq, seal.registry, seal.sessions) = (seal.seq + 1, false, 0);
            self.lines += 1;
        }
        self.tx
            .send(WriteMsg::Data(part))
            .await
            .map_err(|_| CheckpointError::WriterStopped)
    }
}

/// What one tenant contributed.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TenantTally {
    /// 1 when the tenant was included (0 when its record vanished meanwhile).
    pub(super) tenants: u64,
    /// Sessions included.
    pub(super) sessions: u64,
    /// Lines written.
    pub(super) lines: u64,
}

/// The `hash_hex` of an API key record (the HMAC of the key, never the secret).
#[derive(Deserialize)]
struct KeyHash {
    hash_hex: String,
}

/// The `tenant_id` of a global lookup record.
#[derive(Deserialize)]
struct LookupOwner {
    tenant_id: String,
}

/// True when `hash` is 64 lower-case hex digits.
pub(super) fn is_hash(hash: &str) -> bool {
    hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The tenant a lookup record points at, if it parses.
pub(super) fn lookup_owner(value: &[u8]) -> Option<String> {
    serde_json::from_slice::<LookupOwner>(value)
        .ok()
        .map(|l| l.tenant_id)
}

/// Global lookup record key of an API key hash.
pub(super) fn lookup_key(prefix: &str, hash: &str) -> String {
    format!("{prefix}:apikey:{hash}")
}

/// Writes one tenant's lines: its record, data key, quota and storage counters, API
/// keys (index, records, global lookups), usage (months and counters), live sessions,
/// its part of the warm list (`warm`), and last its registry entry. A tenant whose record is gone is skipped.
///
/// Reads that do not depend on each other are issued together, so a tenant costs about
/// five round trips of latency whatever its number of objects.
pub(super) async fn collect_tenant(
    shared: SharedStore,
    tx: mpsc::Sender<WriteMsg>,
    id: TenantId,
    score: i64,
    now_ms: u64,
    sealing: Option<Sealing>,
    warm: Vec<String>,
) -> Result<Collected, CheckpointError> {
    let store = &*shared;
    let keys = ScopeKeys::new(store.key_prefix(), &Scope::Tenant(id.clone()));
    let tenant = id.as_str();
    let head_keys = [keys.record(records::TENANT), keys.record(DATA_KEY_RECORD)];
    let (q_key, storage_key) = (
        keys.record(records::QUOTA_OVERRIDES),
        keys.record(records::STORAGE),
    );
    let (index_key, months_key) = (
        keys.record(records::API_KEY_INDEX),
        keys.record(records::USAGE_MONTHS),
    );
    let (head, q, storage, index, months) = tokio::try_join!(
        store.get_many(&head_keys),
        store.counters_get(&q_key),
        store.counters_get(&storage_key),
        zset_all(store, &index_key),
        zset_all(store, &months_key),
    )?;
    let mut head = head.into_iter();
    let Some(meta) = head.next().flatten() else {
        tracing::debug!(tenant.id = %id, "tenant registered without a record (deleted meanwhile?); not in the checkpoint");
        return Ok(Collected::default());
    };
    let (mut sink, key) = match sealing {
        Some(sealing) => {
            let (stored, key) = tenant_key(store, &sealing.master, &id, now_ms).await?;
            let sink = Sink::sealed(tx, sealing.checkpoint, tenant, key, stored.id.clone());
            (sink, Some(stored))
        }
        None => (Sink::new(tx), None),
    };
    for (name, value) in [
        ("meta", Some(meta)),
        (DATA_KEY_RECORD, head.next().flatten()),
    ] {
        if let Some(value) = value {
            sink.push(&Line::Record {
                tenant: tenant.into(),
                name: name.into(),
                value: B64(Cow::Borrowed(&value)),
            })
            .await?;
        }
    }
    for (name, fields) in [("q", q), ("storage", storage)] {
        push_counters(&mut sink, tenant, name, fields).await?;
    }
    let (key_records, usage) = tokio::try_join!(
        read_key_records(store, &keys, &index),
        read_usage(store, &keys, &months),
    )?;
    push_api_keys(&shared, tenant, &index, key_records, &mut sink).await?;
    for (name, fields) in usage {
        push_counters(&mut sink, tenant, &name, fields).await?;
    }
    push_zset(&mut sink, tenant, "usage_months", &months).await?;
    let sessions = collect_sessions(store, &keys, tenant, now_ms, &mut sink).await?;
    if !warm.is_empty() {
        sink.push(&Line::Warm {
            tenant: tenant.into(),
            urls: Cow::Owned(warm),
        })
        .await?;
    }
    sink.push(&Line::Tenant {
        tenant: tenant.into(),
        score,
    })
    .await?;
    sink.flush().await?;
    Ok(Collected {
        tally: TenantTally {
            tenants: 1,
            sessions,
            lines: sink.lines,
        },
        key: key.map(|k| (id.clone(), k)),
    })
}

/// What sealing a tenant's lines needs.
#[derive(Clone)]
pub(super) struct Sealing {
    /// Wraps the tenants' checkpoint keys.
    pub(super) master: MasterKey,
    /// The checkpoint's id (bound into every part).
    pub(super) checkpoint: Arc<str>,
}

/// What one tenant contributed, and the checkpoint key it was sealed with.
#[derive(Debug, Default)]
pub(super) struct Collected {
    pub(super) tally: TenantTally,
    pub(super) key: Option<(TenantId, StoredKey)>,
}

async fn push_counters(
    sink: &mut Sink,
    tenant: &str,
    name: &str,
    fields: Vec<(String, i64)>,
) -> Result<(), CheckpointError> {
    if fields.is_empty() {
        // An absent counters record reads as empty: nothing to restore.
        return Ok(());
    }
    sink.push(&Line::Counters {
        tenant: tenant.into(),
        name: name.into(),
        fields: Cow::Owned(fields),
    })
    .await
}

async fn push_zset(
    sink: &mut Sink,
    tenant: &str,
    name: &str,
    members: &[(String, i64)],
) -> Result<(), CheckpointError> {
    for chunk in members.chunks(ZSET_LINE_MEMBERS) {
        sink.push(&Line::Zset {
            tenant: tenant.into(),
            name: name.into(),
            members: Cow::Borrowed(chunk),
        })
        .await?;
    }
    Ok(())
}

/// The key records the index names (`(key id, bytes)`; index members without a record,
/// left by a crash during key creation, are skipped).
async fn read_key_records(
    store: &dyn Store,
    keys: &ScopeKeys,
    index: &[(String, i64)],
) -> StoreResult<Vec<(String, bytes::Bytes)>> {
    let mut out = Vec::new();
    for chunk in index.chunks(GET_BATCH) {
        let ids: Vec<&str> = chunk
            .iter()
            .map(|(m, _)| m.as_str())
            .filter(|m| is_segment(m))
            .collect();
        if ids.is_empty() {
            continue;
        }
        let record_keys: Vec<String> = ids
            .iter()
            .map(|k| keys.record(&records::api_key(k)))
            .collect();
        let values = store.get_many(&record_keys).await?;
        out.extend(
            ids.into_iter()
                .zip(values)
                .filter_map(|(id, v)| v.map(|v| (id.to_owned(), v))),
        );
    }
    Ok(out)
}

/// The counters of every month in the months index, read concurrently:
/// `(record name, fields)`.
async fn read_usage(
    store: &dyn Store,
    keys: &ScopeKeys,
    months: &[(String, i64)],
) -> StoreResult<Vec<(String, Vec<(String, i64)>)>> {
    let names: Vec<String> = months
        .iter()
        .filter(|(m, _)| is_month(m))
        .map(|(m, _)| records::usage(m))
        .collect();
    let record_keys: Vec<String> = names.iter().map(|n| keys.record(n)).collect();
    let reads: Vec<_> = record_keys.iter().map(|k| store.counters_get(k)).collect();
    let fields = futures::future::try_join_all(reads).await?;
    Ok(names.into_iter().zip(fields).collect())
}

/// Pushes the key records, the index, and the global lookup records of the keys that
/// have one (revoked keys do not).
async fn push_api_keys(
    shared: &SharedStore,
    tenant: &str,
    index: &[(String, i64)],
    records: Vec<(String, bytes::Bytes)>,
    sink: &mut Sink,
) -> Result<(), CheckpointError> {
    let mut hashes = Vec::new();
    for (key_id, value) in &records {
        if let Ok(KeyHash { hash_hex }) = serde_json::from_slice(value)
            && is_hash(&hash_hex)
        {
            hashes.push(hash_hex);
        }
        sink.push(&Line::Record {
            tenant: tenant.into(),
            name: records::api_key(key_id).into(),
            value: B64(Cow::Borrowed(value)),
        })
        .await?;
    }
    push_zset(sink, tenant, "keys", index).await?;
    // Each future owns its store handle and key: nothing borrowed, so the whole
    // checkpoint future stays `Send + 'static`.
    let lookups: Vec<(String, Option<bytes::Bytes>)> = stream::iter(hashes)
        .map(|hash| {
            let store = shared.clone();
            let key = lookup_key(store.key_prefix(), &hash);
            async move {
                let value = store.get(&key).await?;
                Ok::<_, riptide_store::StoreError>((hash, value))
            }
        })
        .buffered(LOOKUP_CONCURRENCY)
        .try_collect()
        .await?;
    for (hash, value) in lookups {
        let Some(value) = value else { continue };
        if lookup_owner(&value).as_deref() != Some(tenant) {
            tracing::warn!(tenant.id = %tenant, "an api key lookup record names another tenant; not in the checkpoint");
            continue;
        }
        sink.push(&Line::Lookup {
            tenant: tenant.into(),
            hash: hash.into(),
            value: B64(Cow::Borrowed(&value)),
        })
        .await?;
    }
    Ok(())
}

async fn collect_sessions(
    store: &dyn Store,
    keys: &ScopeKeys,
    tenant: &str,
    now_ms: u64,
    sink: &mut Sink,
) -> Result<u64, CheckpointError> {
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    let mut cursor = ZsetCursor::new(
        keys.record(records::SESSION_INDEX),
        now.saturating_add(1),
        GET_BATCH as u64,
    );
    // A session touched meanwhile moves up the index and may be met twice.
    let mut seen = HashSet::new();
    let mut count = 0;
    loop {
        let page = cursor.next(store).await?;
        if page.is_empty() {
            return Ok(count);
        }
        let live: Vec<(String, i64)> = page
            .into_iter()
            .filter(|(id, _)| is_segment(id) && seen.insert(id.clone()))
            .collect();
        if live.is_empty() {
            continue;
        }
        let record_keys: Vec<String> = live
            .iter()
            .map(|(id, _)| keys.record(&records::session(id)))
            .collect();
        let values = store.get_many(&record_keys).await?;
        for ((id, expires_at_ms), value) in live.iter().zip(values) {
            // Gone meanwhile (terminated, or expired by the store's own clock).
            let Some(value) = value else { continue };
            sink.push(&Line::Session {
                tenant: tenant.into(),
                id: Cow::Borrowed(id),
                expires_at_ms: *expires_at_ms,
                value: B64(Cow::Borrowed(&value)),
            })
            .await?;
            count += 1;
        }
    }
}
