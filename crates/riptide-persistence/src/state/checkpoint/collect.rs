//! Reading one tenant's state out of the store into body lines, streamed to the writer
//! in bounded parts, and the paging helpers shared with restore.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt, stream};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::format::{B64, Line, WriteMsg, push_line};
use super::seal::{PartFacts, StoredKey, seal_part, tenant_key};
use super::{CheckpointError, is_month, is_segment};
use crate::keys::{Scope, ScopeKeys, records};
use crate::store::{SharedStore, SortedSets, Store, StoreResult};
use crate::tenant::crypto::{DATA_KEY_RECORD, DataKey, MasterKey};
use crate::tenant_id::TenantId;

/// A part is handed to the writer once it holds this many bytes.
const PART_BYTES: usize = 256 * 1024;
/// Records read per `get_many`.
const GET_BATCH: usize = 256;
/// Members per `zset` body line.
pub(super) const ZSET_LINE_MEMBERS: usize = 512;
/// Page size of sorted-set reads.
pub(super) const ZSET_PAGE: u64 = 500;
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

/// What replaces a secret value in the saved configuration.
pub(super) const REDACTED: &str = "<redacted>";

/// True for configuration keys that hold secrets (`master_key`, `api_key_pepper`,
/// `admin_tokens`, `password`, ...), but not for paths (`secrets_dir`).
fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let path_like = ["_dir", "_path", "_file", "_ttl_ms", "_seconds"]
        .iter()
        .any(|s| name.ends_with(s));
    !path_like
        && [
            "password",
            "passwd",
            "secret",
            "token",
            "pepper",
            "master_key",
            "private_key",
            "credential",
        ]
        .iter()
        .any(|s| name.contains(s))
}

/// A copy of `value` with every secret replaced by [`REDACTED`]: string values (or
/// strings inside arrays and objects) under a secret-looking key, and the password of
/// any URL with credentials (`redis://user:pass@host`). A checkpoint lies next to the
/// wrapped data keys; it must never also hold the master key that unwraps them.
pub(super) fn redact_secrets(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    fn all_strings(value: &Value) -> Value {
        match value {
            Value::String(s) if s.is_empty() => Value::String(String::new()),
            Value::String(_) => Value::String(REDACTED.to_owned()),
            Value::Array(items) => Value::Array(items.iter().map(all_strings).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), all_strings(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_name(k) {
                        all_strings(v)
                    } else {
                        redact_secrets(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_secrets).collect()),
        Value::String(s) => Value::String(redact_url_password(s)),
        other => other.clone(),
    }
}

/// `scheme://user:password@host...` → `scheme://user:<redacted>@host...` (also for each
/// URL of a comma-separated list); anything else unchanged.
fn redact_url_password(s: &str) -> String {
    if !s.contains("://") || !s.contains('@') {
        return s.to_owned();
    }
    s.split(',')
        .map(|part| {
            let Some((scheme, rest)) = part.split_once("://") else {
                return part.to_owned();
            };
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let Some(at) = rest[..authority_end].rfind('@') else {
                return part.to_owned();
            };
            match rest[..at].split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:{REDACTED}{}", &rest[at..]),
                None => part.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Every member of a (small) sorted set, in order.
pub(super) async fn zset_all(store: &dyn SortedSets, key: &str) -> StoreResult<Vec<(String, i64)>> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let page = store.zset_range(key, offset, ZSET_PAGE).await?;
        let n = page.len() as u64;
        out.extend(page);
        if n < ZSET_PAGE {
            return Ok(out);
        }
        offset += n;
    }
}

/// Pages through a sorted set by score, from `min` up, without offsets: members
/// removed meanwhile never make it skip others (members added meanwhile may or may not
/// be seen). Members sharing the last score are asked for again on the next page and
/// filtered out, so a run of `n` equal scores costs `O(n²/page)` members read; the
/// scores paged here are millisecond times, where such runs are short.
pub(super) struct ZsetCursor {
    key: String,
    /// Score of the last member returned (or the start).
    min: i64,
    /// The last member returned.
    last: Option<(i64, String)>,
    /// Members returned with score `min` (they come back in the next query).
    at_min: u64,
    /// Grows when a page held nothing new, so progress is certain.
    extra: u64,
    page: u64,
    done: bool,
}

impl ZsetCursor {
    pub(super) fn new(key: String, min: i64, page: u64) -> Self {
        Self {
            key,
            min,
            last: None,
            at_min: 0,
            extra: 0,
            page,
            done: false,
        }
    }

    /// The next page (empty at the end).
    pub(super) async fn next(&mut self, store: &dyn SortedSets) -> StoreResult<Vec<(String, i64)>> {
        while !self.done {
            let limit = self.page + self.at_min + self.extra;
            let raw = store
                .zset_range_by_score(&self.key, self.min, i64::MAX, limit)
                .await?;
            self.done = (raw.len() as u64) < limit;
            let fresh: Vec<(String, i64)> = raw
                .into_iter()
                .filter(|(m, s)| match &self.last {
                    Some((ls, lm)) => (*s, m.as_str()) > (*ls, lm.as_str()),
                    None => true,
                })
                .collect();
            let Some((m, s)) = fresh.last() else {
                self.extra += self.page;
                continue;
            };
            self.extra = 0;
            if *s != self.min {
                self.min = *s;
                self.at_min = 0;
            }
            self.at_min += fresh.iter().filter(|(_, fs)| *fs == self.min).count() as u64;
            self.last = Some((*s, m.clone()));
            return Ok(fresh);
        }
        Ok(Vec::new())
    }
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
                Ok::<_, crate::store::StoreError>((hash, value))
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

#[cfg(test)]
mod tests {
    use crate::store::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_are_redacted_from_the_saved_configuration() {
        let config = json!({
            "redis": {"url": "redis://app:s3cr3t@cache:6379/0", "key_prefix": "riptide"},
            "tenant": {
                "master_key": "AAAAbase64keymaterial",
                "api_key_pepper": "pepper!",
                "secrets_dir": "/var/lib/riptide/secrets",
                "record_cache_ttl_ms": 1000,
                "api_key_prefix": "rt_"
            },
            "admin": {"tokens": [{"token": "adm-1", "role": "owner"}], "admin_token": ""},
            "nodes": "redis://:pw@a:1,redis://b:2"
        });
        let out = redact_secrets(&config);
        let text = out.to_string();
        for secret in [
            "s3cr3t",
            "AAAAbase64keymaterial",
            "pepper!",
            "adm-1",
            ":pw@",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(out["redis"]["url"], "redis://app:<redacted>@cache:6379/0");
        assert_eq!(out["redis"]["key_prefix"], "riptide");
        assert_eq!(out["tenant"]["secrets_dir"], "/var/lib/riptide/secrets");
        assert_eq!(out["tenant"]["api_key_prefix"], "rt_");
        assert_eq!(out["tenant"]["record_cache_ttl_ms"], 1000);
        assert_eq!(out["admin"]["admin_token"], "", "unset stays unset");
        assert_eq!(out["nodes"], "redis://:<redacted>@a:1,redis://b:2");
    }

    #[tokio::test]
    async fn zset_cursor_pages_survive_ties_and_deletions() {
        let dir = tempfile::tempdir().expect("dir");
        let store = crate::store::embedded::EmbeddedStore::open(
            dir.path(),
            &crate::config::EmbeddedConfig::default(),
            crate::clock::system_clock(),
        )
        .expect("store");
        // 1,200 members on 4 scores: long runs of ties across page boundaries.
        let members: Vec<(String, i64)> = (0..1_200)
            .map(|i| (format!("m{i:04}"), i64::from(i / 300)))
            .collect();
        store.zset_add("z", &members).await.expect("add");
        let mut cursor = ZsetCursor::new("z".to_owned(), i64::MIN, 100);
        let first = cursor.next(&*store).await.expect("page");
        assert_eq!(first.len(), 100);
        // Members already returned and members not yet reached disappear meanwhile.
        let seen: Vec<String> = first.iter().take(50).map(|(m, _)| m.clone()).collect();
        let unseen: Vec<String> = (1_190..1_200).map(|i| format!("m{i:04}")).collect();
        store.zset_remove("z", &seen).await.expect("remove");
        store.zset_remove("z", &unseen).await.expect("remove");
        let mut got: Vec<String> = first.into_iter().map(|(m, _)| m).collect();
        loop {
            let page = cursor.next(&*store).await.expect("page");
            if page.is_empty() {
                break;
            }
            got.extend(page.into_iter().map(|(m, _)| m));
        }
        let expected: Vec<String> = (0..1_190).map(|i| format!("m{i:04}")).collect();
        assert_eq!(
            got, expected,
            "every remaining member once, in order, none skipped"
        );
    }

    /// Sorted sets in memory: a test double of the one capability the cursor uses.
    #[derive(Default)]
    struct Sets(std::sync::Mutex<std::collections::BTreeSet<(i64, String)>>);

    impl Sets {
        fn members(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<(i64, String)>> {
            self.0.lock().expect("lock")
        }
    }

    #[async_trait::async_trait]
    impl SortedSets for Sets {
        async fn zset_add(&self, _: &str, members: &[(String, i64)]) -> StoreResult<()> {
            let mut set = self.members();
            for (m, s) in members {
                set.retain(|(_, old)| old != m);
                set.insert((*s, m.clone()));
            }
            Ok(())
        }
        async fn zset_remove(&self, _: &str, members: &[String]) -> StoreResult<u64> {
            let mut set = self.members();
            let before = set.len();
            set.retain(|(_, m)| !members.contains(m));
            Ok((before - set.len()) as u64)
        }
        async fn zset_range(
            &self,
            _: &str,
            offset: u64,
            limit: u64,
        ) -> StoreResult<Vec<(String, i64)>> {
            let set = self.members();
            let page = set.iter().skip(offset as usize).take(limit as usize);
            Ok(page.map(|(s, m)| (m.clone(), *s)).collect())
        }
        async fn zset_range_by_score(
            &self,
            _: &str,
            min: i64,
            max: i64,
            limit: u64,
        ) -> StoreResult<Vec<(String, i64)>> {
            let set = self.members();
            let page = set.iter().filter(|(s, _)| (min..=max).contains(s));
            Ok(page
                .take(limit as usize)
                .map(|(s, m)| (m.clone(), *s))
                .collect())
        }
        async fn zset_remove_by_score(&self, _: &str, min: i64, max: i64) -> StoreResult<u64> {
            let mut set = self.members();
            let before = set.len();
            set.retain(|(s, _)| !(min..=max).contains(s));
            Ok((before - set.len()) as u64)
        }
        async fn zset_score(&self, _: &str, member: &str) -> StoreResult<Option<i64>> {
            Ok(self
                .members()
                .iter()
                .find(|(_, m)| m == member)
                .map(|(s, _)| *s))
        }
        async fn zset_len(&self, _: &str) -> StoreResult<u64> {
            Ok(self.members().len() as u64)
        }
    }

    #[tokio::test]
    async fn zset_cursor_sees_each_member_once_while_members_come_and_go() {
        let sets = Sets::default();
        // 500 members, all on one score: one run of ties across every page.
        let members: Vec<(String, i64)> = (0..500).map(|i| (format!("m{i:03}"), 7)).collect();
        sets.zset_add("z", &members).await.expect("add");
        let mut cursor = ZsetCursor::new("z".to_owned(), i64::MIN, 64);
        let mut got = Vec::new();
        loop {
            let page = cursor.next(&sets).await.expect("page");
            if page.is_empty() {
                break;
            }
            got.extend(page.into_iter().map(|(m, _)| m));
            // Between pages the first member goes and a later score arrives.
            let first = sets.zset_range("z", 0, 1).await.expect("range");
            let gone: Vec<String> = first.into_iter().map(|(m, _)| m).collect();
            sets.zset_remove("z", &gone).await.expect("remove");
            let late = format!("late{}", got.len());
            sets.zset_add("z", &[(late, 9)]).await.expect("add");
        }
        let mut unique = got.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), got.len(), "no member twice");
        let tied = got.iter().filter(|m| m.starts_with('m')).count();
        assert_eq!(
            tied, 500,
            "every tied member present at the start is seen once"
        );
        assert_eq!(
            zset_all(&sets, "z").await.expect("all").len(),
            sets.members().len()
        );
    }
}
