//! The audit log: who did what, to what, when, with which outcome. Append-only,
//! hash-chained, queryable by tenant and time range, pruned by retention.
//!
//! Every record carries a sequence number and `hash = SHA-256(prev_hash ‖ canonical JSON
//! of the record without its hash)`, where `prev_hash` is the previous record's hash (64
//! zeros before the first record). [`AuditLog::verify`] recomputes the chain, so an
//! edited record (its hash no longer matches), a removed record (a gap in the sequence)
//! and a re-linked record (its `prev_hash` is not its predecessor's hash) are found.
//! The chain is not keyed: someone with write access to the store who rewrites every
//! record from the edited one to the head, and the head, is not detected; it protects
//! against edits and deletions of individual records.
//!
//! Store layout (`<p>` is the store's key prefix); every key carries the hash tag
//! `{audit}`, so multi-key reads of the log run on one Redis Cluster slot:
//!
//! | key | value |
//! |---|---|
//! | `<p>:{audit}:rec:<seq>` | the record, JSON |
//! | `<p>:{audit}:head` | `"<seq> <hash>"` of the newest record |
//! | `<p>:{audit}:anchor` | JSON `{first_seq, prev_hash}`: where the retained chain starts (after pruning) |
//! | `<p>:{audit}:by_time` | sorted set: member `<seq>` (20 digits, zero-padded), score the record's time in ms |
//! | `<p>:{audit}:tenant:<id>` | the same, for one tenant's records |
//!
//! Appending is lock-free across tasks and instances: a writer claims `rec:<head+1>` with
//! `set_if_absent`; when another writer took that number, it chains onto that record
//! and tries the next one. The head is then advanced with `compare_and_swap` (only ever
//! forward), so any number of writers produce one gap-free chain.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::error::{TenantError, TenantResult};
use crate::clock::SharedClock;
use crate::store::{Durability, SharedStore};
use crate::tenant_id::TenantId;

/// Longest `actor`, `operation` and `resource`, in characters.
pub const MAX_FIELD_CHARS: usize = 200;

/// Longest `outcome`, in characters (room for an error message).
pub const MAX_OUTCOME_CHARS: usize = 1_024;

/// Most metadata entries of one record.
pub const MAX_METADATA_ENTRIES: usize = 32;

/// Longest metadata key, and longest metadata value, in bytes.
pub const MAX_METADATA_BYTES: usize = 1_024;

/// Most records one [`AuditLog::query`] returns.
pub const MAX_QUERY_LIMIT: u64 = 10_000;

/// The `prev_hash` of the first record ever appended.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Sequence numbers an append tries before giving up with `Conflict` (each lost race
/// means another writer appended, so this bounds the wait under heavy contention).
const APPEND_ATTEMPTS: usize = 1_000;

/// Compare-and-swap attempts to move the head forward.
const HEAD_ATTEMPTS: usize = 64;

/// Records per `get_many` / `delete` call.
const CHUNK: usize = 256;

/// Restarts of a verify walk that met records pruned under it.
const VERIFY_RESTARTS: usize = 8;

/// Attempts of a prune whose anchor update raced another prune.
const PRUNE_ATTEMPTS: usize = 4;

const DAY_MS: u64 = 86_400_000;

/// Outcome of a successful operation, by convention.
pub const OUTCOME_OK: &str = "ok";

/// What to record; [`AuditLog::append`] adds the sequence number, time and hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Who acted: an admin token's name, `tenant:<id>`, `system`, ... (1 to 200 chars).
    pub actor: String,
    /// The tenant concerned, if any (must be a valid tenant id).
    pub tenant_id: Option<String>,
    /// What was done, e.g. `tenant.create`, `api_key.revoke` (1 to 200 chars).
    pub operation: String,
    /// What it was done to or with, e.g. a key id or `plan=basic` (at most 200 chars).
    pub resource: String,
    /// The result (the seed's `result`): [`OUTCOME_OK`], or an error (at most 1024 chars).
    pub outcome: String,
    /// Extra detail: at most 32 entries, keys and values at most 1 KiB each.
    pub metadata: BTreeMap<String, String>,
}

impl AuditEntry {
    /// An entry without metadata.
    pub fn new(
        actor: &str,
        tenant_id: Option<&str>,
        operation: &str,
        resource: &str,
        outcome: &str,
    ) -> Self {
        Self {
            actor: actor.to_owned(),
            tenant_id: tenant_id.map(str::to_owned),
            operation: operation.to_owned(),
            resource: resource.to_owned(),
            outcome: outcome.to_owned(),
            metadata: BTreeMap::new(),
        }
    }

    /// Adds one metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Checks the documented limits; returns the validated tenant id.
    fn validate(&self) -> TenantResult<Option<TenantId>> {
        check_chars("actor", &self.actor, 1, MAX_FIELD_CHARS)?;
        check_chars("operation", &self.operation, 1, MAX_FIELD_CHARS)?;
        check_chars("resource", &self.resource, 0, MAX_FIELD_CHARS)?;
        check_chars("outcome", &self.outcome, 0, MAX_OUTCOME_CHARS)?;
        if self.metadata.len() > MAX_METADATA_ENTRIES {
            return Err(TenantError::InvalidField {
                field: "metadata",
                reason: format!(
                    "{} entries; at most {MAX_METADATA_ENTRIES}",
                    self.metadata.len()
                ),
            });
        }
        if self
            .metadata
            .iter()
            .any(|(k, v)| k.len() > MAX_METADATA_BYTES || v.len() > MAX_METADATA_BYTES)
        {
            return Err(TenantError::InvalidField {
                field: "metadata",
                reason: format!("keys and values are at most {MAX_METADATA_BYTES} bytes"),
            });
        }
        self.tenant_id
            .as_deref()
            .map(TenantId::parse)
            .transpose()
            .map_err(TenantError::from)
    }
}

/// One record of the log. The seed's `AuditLog` fields map as: `timestamp` → `at`,
/// `tenant_id`, `operation`, `resource`, `result` → `outcome`, `metadata`; `actor` is who.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// When it was appended (millisecond precision, from the injected clock).
    pub at: DateTime<Utc>,
    /// Who acted.
    pub actor: String,
    /// The tenant concerned, if any.
    pub tenant_id: Option<String>,
    /// What was done.
    pub operation: String,
    /// What it was done to.
    pub resource: String,
    /// The result.
    pub outcome: String,
    /// Extra detail.
    pub metadata: BTreeMap<String, String>,
    /// The previous record's hash ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// Lower-case hex SHA-256 of `prev_hash` and the canonical JSON of this record
    /// without `hash`.
    pub hash: String,
}

/// The hashed form of a record: fixed field order, the time as integer milliseconds.
#[derive(Serialize)]
struct Canonical<'a> {
    v: u8,
    seq: u64,
    at_ms: i64,
    actor: &'a str,
    tenant_id: Option<&'a str>,
    operation: &'a str,
    resource: &'a str,
    outcome: &'a str,
    metadata: &'a BTreeMap<String, String>,
    prev_hash: &'a str,
}

impl AuditRecord {
    /// The hash this record should carry, computed from its other fields.
    pub fn compute_hash(&self) -> String {
        let canonical = Canonical {
            v: 1,
            seq: self.seq,
            at_ms: self.at.timestamp_millis(),
            actor: &self.actor,
            tenant_id: self.tenant_id.as_deref(),
            operation: &self.operation,
            resource: &self.resource,
            outcome: &self.outcome,
            metadata: &self.metadata,
            prev_hash: &self.prev_hash,
        };
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.as_bytes());
        // Serializing strings, integers and a string map cannot fail; were it ever to,
        // the hash would cover the prefix only and verification would report it.
        if let Ok(json) = serde_json::to_vec(&canonical) {
            hasher.update(&json);
        }
        hex::encode(hasher.finalize())
    }

    /// The seed's `timestamp`.
    pub fn timestamp(&self) -> DateTime<Utc> {
        self.at
    }

    /// The seed's `result`.
    pub fn result(&self) -> &str {
        &self.outcome
    }
}

/// What [`AuditLog::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records checked and found good (before the first bad one, if any).
    pub checked: u64,
    /// The first bad record's sequence number and what is wrong with it.
    pub first_bad: Option<(u64, String)>,
}

impl VerifyReport {
    /// True when the whole retained chain is intact.
    pub fn is_ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Where the retained chain starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Anchor {
    /// The oldest retained sequence number.
    first_seq: u64,
    /// The hash its `prev_hash` must equal (that of the last pruned record).
    prev_hash: String,
}

impl Anchor {
    fn genesis() -> Self {
        Self {
            first_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
        }
    }
}

/// The newest record, as the head key holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    seq: u64,
    hash: String,
}

/// The append-only, hash-chained audit log over one store.
pub struct AuditLog {
    store: SharedStore,
    clock: SharedClock,
    /// `<p>:{audit}`.
    base: String,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// The audit log of `store`; record times come from `clock`.
    pub fn new(store: SharedStore, clock: SharedClock) -> Self {
        let base = format!("{}:{{audit}}", store.key_prefix());
        Self { store, clock, base }
    }

    /// Appends a record and returns it. Bad input is [`TenantError::InvalidField`] (or
    /// `Invalid` for a malformed tenant id). Safe to call from many tasks and instances
    /// at once: they produce one gap-free chain.
    ///
    /// An error from indexing the record (after it was written to the chain) is
    /// returned: the record is then in the chain but may be missing from
    /// [`Self::query`]'s results.
    pub async fn append(&self, entry: AuditEntry) -> TenantResult<AuditRecord> {
        let tenant = entry.validate()?;
        let (mut seq, mut prev_hash) = self.tip().await?;
        for _ in 0..APPEND_ATTEMPTS {
            let mut record = AuditRecord {
                seq,
                at: datetime(self.clock.now_ms()),
                actor: entry.actor.clone(),
                tenant_id: entry.tenant_id.clone(),
                operation: entry.operation.clone(),
                resource: entry.resource.clone(),
                outcome: entry.outcome.clone(),
                metadata: entry.metadata.clone(),
                prev_hash: prev_hash.clone(),
                hash: String::new(),
            };
            record.hash = record.compute_hash();
            let key = self.record_key(seq);
            if self
                .store
                .set_if_absent(&key, &to_json(&record)?, None, Durability::Durable)
                .await?
            {
                self.advance_head(seq, &record.hash).await;
                self.index(&record, tenant.as_ref()).await?;
                return Ok(record);
            }
            // Another writer holds this number: chain onto its record.
            match self.store.get(&key).await? {
                Some(bytes) => {
                    let other: AuditRecord = parse(&key, &bytes)?;
                    prev_hash = other.hash;
                    seq = seq.saturating_add(1);
                }
                // Gone between the two calls (pruned or deleted): start from the head.
                None => (seq, prev_hash) = self.tip().await?,
            }
        }
        Err(TenantError::Conflict(self.head_key()))
    }

    /// Records of `tenant` (or of every tenant and none, when `None`) appended between
    /// `from` and `to` inclusive, oldest first, at most `limit` (capped at
    /// [`MAX_QUERY_LIMIT`]). A record that cannot be decoded is logged and skipped
    /// ([`Self::verify`] reports it).
    pub async fn query(
        &self,
        tenant: Option<&TenantId>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> TenantResult<Vec<AuditRecord>> {
        let limit = limit.min(MAX_QUERY_LIMIT);
        if limit == 0 || from > to {
            return Ok(Vec::new());
        }
        let index = match tenant {
            Some(t) => self.tenant_key(t),
            None => self.by_time_key(),
        };
        let members = self
            .store
            .zset_range_by_score(
                &index,
                from.timestamp_millis(),
                to.timestamp_millis(),
                limit,
            )
            .await?;
        let keys: Vec<String> = members
            .iter()
            .filter_map(|(m, _)| m.parse::<u64>().ok())
            .map(|seq| self.record_key(seq))
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK) {
            let values = self.store.get_many(chunk).await?;
            for (key, value) in chunk.iter().zip(values) {
                let Some(bytes) = value else { continue };
                match parse::<AuditRecord>(key, &bytes) {
                    Ok(r) if tenant.is_none_or(|t| r.tenant_id.as_deref() == Some(t.as_str())) => {
                        out.push(r)
                    }
                    Ok(_) => {
                        tracing::error!(audit.key = %key, "audit record indexed under the wrong tenant")
                    }
                    Err(e) => {
                        tracing::error!(audit.key = %key, error = %e, "unreadable audit record skipped")
                    }
                }
            }
        }
        out.sort_by(|a, b| a.at.cmp(&b.at).then(a.seq.cmp(&b.seq)));
        Ok(out)
    }

    /// Walks the retained chain from its oldest record to the newest and reports the
    /// first record that was edited (hash mismatch), removed (gap), re-linked
    /// (`prev_hash` differs from its predecessor's hash) or is unreadable. Pruning does
    /// not make it fail: the walk starts at the anchor pruning leaves.
    pub async fn verify(&self) -> TenantResult<VerifyReport> {
        let mut restarts = 0;
        'walk: loop {
            let anchor = self.anchor().await?.1;
            let head = self.head().await?;
            let mut seq = anchor.first_seq;
            let mut expected_prev = anchor.prev_hash;
            let mut checked = 0u64;
            let bad = |seq: u64, checked: u64, reason: String| VerifyReport {
                checked,
                first_bad: Some((seq, reason)),
            };
            loop {
                let keys: Vec<String> = (0..CHUNK as u64)
                    .map(|i| self.record_key(seq.saturating_add(i)))
                    .collect();
                let values = self.store.get_many(&keys).await?;
                for (key, value) in keys.iter().zip(values) {
                    let Some(bytes) = value else {
                        if head.as_ref().is_some_and(|h| seq <= h.seq) {
                            // Pruned under us? Then start again from the new anchor.
                            if self.anchor().await?.1.first_seq > seq && restarts < VERIFY_RESTARTS
                            {
                                restarts += 1;
                                continue 'walk;
                            }
                            return Ok(bad(
                                seq,
                                checked,
                                "record missing: the chain has a gap".to_owned(),
                            ));
                        }
                        // Past the head: the end of the chain.
                        return Ok(VerifyReport {
                            checked,
                            first_bad: None,
                        });
                    };
                    let record: AuditRecord = match parse(key, &bytes) {
                        Ok(r) => r,
                        Err(e) => return Ok(bad(seq, checked, format!("unreadable record: {e}"))),
                    };
                    if record.seq != seq {
                        return Ok(bad(
                            seq,
                            checked,
                            format!("record claims seq {}", record.seq),
                        ));
                    }
                    if record.compute_hash() != record.hash {
                        return Ok(bad(
                            seq,
                            checked,
                            "hash mismatch: the record was edited".to_owned(),
                        ));
                    }
                    if record.prev_hash != expected_prev {
                        return Ok(bad(
                            seq,
                            checked,
                            "prev_hash is not the previous record's hash: the chain is broken"
                                .to_owned(),
                        ));
                    }
                    if let Some(h) = &head
                        && h.seq == seq
                        && h.hash != record.hash
                    {
                        return Ok(bad(
                            seq,
                            checked,
                            "the head names a different hash for this record".to_owned(),
                        ));
                    }
                    expected_prev = record.hash;
                    checked += 1;
                    seq = seq.saturating_add(1);
                }
            }
        }
    }

    /// Deletes records older than `retention_days` (from `tenant.audit_retention_days`)
    /// and moves the anchor past them, so [`Self::verify`] keeps passing. Only a prefix
    /// of the chain is pruned: the walk stops at the first record inside the retention
    /// window (and at a gap). Returns how many records were deleted.
    pub async fn prune(&self, retention_days: u32) -> TenantResult<u64> {
        if retention_days == 0 {
            return Err(TenantError::InvalidField {
                field: "retention_days",
                reason: "must be > 0".to_owned(),
            });
        }
        let cutoff_ms = self
            .clock
            .now_ms()
            .saturating_sub(u64::from(retention_days).saturating_mul(DAY_MS));
        let first = self.advance_anchor(cutoff_ms).await?;
        let by_time = self.by_time_key();
        let mut pruned = 0u64;
        loop {
            let batch = self
                .store
                .zset_range_by_score(&by_time, i64::MIN, score(cutoff_ms) - 1, CHUNK as u64)
                .await?;
            let members: Vec<(String, u64)> = batch
                .into_iter()
                .filter_map(|(m, _)| m.parse::<u64>().ok().map(|seq| (m, seq)))
                .filter(|(_, seq)| *seq < first)
                .collect();
            if members.is_empty() {
                break;
            }
            let keys: Vec<String> = members
                .iter()
                .map(|(_, seq)| self.record_key(*seq))
                .collect();
            let values = self.store.get_many(&keys).await?;
            // Tenant indexes first, then records, then the time index: a crash in
            // between leaves the time index entry, so the next prune finishes the job.
            let mut by_tenant: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for ((member, _), value) in members.iter().zip(&values) {
                let tenant = value
                    .as_ref()
                    .and_then(|b| serde_json::from_slice::<AuditRecord>(b).ok())
                    .and_then(|r| r.tenant_id)
                    .and_then(|t| TenantId::parse(&t).ok());
                if let Some(t) = tenant {
                    by_tenant
                        .entry(self.tenant_key(&t))
                        .or_default()
                        .push(member.clone());
                }
            }
            for (key, members) in &by_tenant {
                self.store.zset_remove(key, members).await?;
            }
            self.store.delete(&keys).await?;
            let names: Vec<String> = members.into_iter().map(|(m, _)| m).collect();
            self.store.zset_remove(&by_time, &names).await?;
            pruned += names.len() as u64;
        }
        if pruned > 0 {
            tracing::info!(
                audit.pruned = pruned,
                audit.first_seq = first,
                retention_days,
                "pruned the audit log"
            );
        }
        Ok(pruned)
    }

    // ---- helpers ----

    fn record_key(&self, seq: u64) -> String {
        format!("{}:rec:{seq}", self.base)
    }

    fn head_key(&self) -> String {
        format!("{}:head", self.base)
    }

    fn anchor_key(&self) -> String {
        format!("{}:anchor", self.base)
    }

    fn by_time_key(&self) -> String {
        format!("{}:by_time", self.base)
    }

    fn tenant_key(&self, tenant: &TenantId) -> String {
        format!("{}:tenant:{}", self.base, tenant.as_str())
    }

    /// The newest record per the head key.
    async fn head(&self) -> TenantResult<Option<Head>> {
        let key = self.head_key();
        match self.store.get(&key).await? {
            Some(bytes) => parse_head(&bytes)
                .map(Some)
                .ok_or_else(|| corrupt(&key, "expected \"<seq> <hash>\"")),
            None => Ok(None),
        }
    }

    /// The anchor's raw bytes (for compare-and-swap) and value (genesis when absent).
    async fn anchor(&self) -> TenantResult<(Option<Vec<u8>>, Anchor)> {
        let key = self.anchor_key();
        match self.store.get(&key).await? {
            Some(bytes) => {
                let anchor = parse(&key, &bytes)?;
                Ok((Some(bytes.to_vec()), anchor))
            }
            None => Ok((None, Anchor::genesis())),
        }
    }

    /// The sequence number and `prev_hash` the next record should have.
    async fn tip(&self) -> TenantResult<(u64, String)> {
        match self.head().await? {
            Some(h) => Ok((h.seq.saturating_add(1), h.hash)),
            None => {
                let anchor = self.anchor().await?.1;
                Ok((anchor.first_seq, anchor.prev_hash))
            }
        }
    }

    /// Moves the head to `seq` unless it is there or further already. A failure only
    /// leaves the head behind (appends and verify walk past it), so it is logged.
    async fn advance_head(&self, seq: u64, hash: &str) {
        let key = self.head_key();
        let new = format!("{seq} {hash}");
        for _ in 0..HEAD_ATTEMPTS {
            let current = match self.store.get(&key).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(audit.seq = seq, error = %e, "could not read the audit head");
                    return;
                }
            };
            if current
                .as_deref()
                .and_then(parse_head)
                .is_some_and(|h| h.seq >= seq)
            {
                return;
            }
            match self
                .store
                .compare_and_swap(
                    &key,
                    current.as_deref(),
                    Some(new.as_bytes()),
                    Durability::Durable,
                )
                .await
            {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(audit.seq = seq, error = %e, "could not advance the audit head");
                    return;
                }
            }
        }
        tracing::warn!(
            audit.seq = seq,
            "gave up advancing the audit head under contention"
        );
    }

    async fn index(&self, record: &AuditRecord, tenant: Option<&TenantId>) -> TenantResult<()> {
        let member = vec![(member(record.seq), record.at.timestamp_millis())];
        self.store.zset_add(&self.by_time_key(), &member).await?;
        if let Some(t) = tenant {
            self.store.zset_add(&self.tenant_key(t), &member).await?;
        }
        Ok(())
    }

    /// Moves the anchor past the records older than `cutoff_ms` at the start of the
    /// chain; returns the first retained sequence number.
    async fn advance_anchor(&self, cutoff_ms: u64) -> TenantResult<u64> {
        for _ in 0..PRUNE_ATTEMPTS {
            let (raw, anchor) = self.anchor().await?;
            let Some(head) = self.head().await? else {
                return Ok(anchor.first_seq);
            };
            let mut first = anchor.first_seq;
            let mut prev_hash = anchor.prev_hash.clone();
            'walk: while first <= head.seq {
                let last = head.seq.min(first.saturating_add(CHUNK as u64 - 1));
                let keys: Vec<String> = (first..=last).map(|s| self.record_key(s)).collect();
                let values = self.store.get_many(&keys).await?;
                for (key, value) in keys.iter().zip(values) {
                    // Stop at a gap or an unreadable record: verify reports it.
                    let Some(record) =
                        value.and_then(|b| serde_json::from_slice::<AuditRecord>(&b).ok())
                    else {
                        tracing::warn!(audit.key = %key, "audit pruning stopped at a missing or unreadable record");
                        break 'walk;
                    };
                    if ms_of(record.at) >= cutoff_ms || record.seq != first {
                        break 'walk;
                    }
                    prev_hash = record.hash;
                    first += 1;
                }
            }
            if first == anchor.first_seq {
                return Ok(first);
            }
            let new = to_json(&Anchor {
                first_seq: first,
                prev_hash,
            })?;
            if self
                .store
                .compare_and_swap(
                    &self.anchor_key(),
                    raw.as_deref(),
                    Some(&new),
                    Durability::Durable,
                )
                .await?
            {
                return Ok(first);
            }
        }
        Err(TenantError::Conflict(self.anchor_key()))
    }
}

fn parse_head(bytes: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (seq, hash) = text.split_once(' ')?;
    Some(Head {
        seq: seq.parse().ok()?,
        hash: hash.to_owned(),
    })
}

/// A sorted-set member for `seq`: zero-padded so member order is numeric order.
fn member(seq: u64) -> String {
    format!("{seq:020}")
}

fn check_chars(field: &'static str, value: &str, min: usize, max: usize) -> TenantResult<()> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(TenantError::InvalidField {
            field,
            reason: format!("{n} characters; expected {min} to {max}"),
        });
    }
    Ok(())
}

fn corrupt(key: &str, reason: impl Into<String>) -> TenantError {
    TenantError::Corrupt {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> TenantResult<T> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(key, e.to_string()))
}

fn to_json<T: Serialize>(value: &T) -> TenantResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| corrupt("<encode>", e.to_string()))
}

/// Clock milliseconds as a time (the epoch for a value chrono cannot hold).
fn datetime(ms: u64) -> DateTime<Utc> {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_default()
}

/// A time as clock milliseconds (0 before the epoch).
fn ms_of(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or(0)
}

fn score(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AuditRecord {
        let mut r = AuditRecord {
            seq: 7,
            at: datetime(1_700_000_000_123),
            actor: "admin".into(),
            tenant_id: Some("acme".into()),
            operation: "tenant.create".into(),
            resource: "plan=basic".into(),
            outcome: OUTCOME_OK.into(),
            metadata: BTreeMap::from([("b".into(), "2".into()), ("a".into(), "1".into())]),
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        };
        r.hash = r.compute_hash();
        r
    }

    #[test]
    fn hash_survives_a_json_round_trip_and_covers_every_field() {
        let r = record();
        let back: AuditRecord =
            serde_json::from_slice(&serde_json::to_vec(&r).expect("json")).expect("parse");
        assert_eq!(back.compute_hash(), r.hash);
        let mut edited = r.clone();
        edited.outcome = "error".into();
        assert_ne!(edited.compute_hash(), r.hash);
        let mut relinked = r.clone();
        relinked.prev_hash = "f".repeat(64);
        assert_ne!(relinked.compute_hash(), r.hash);
        let mut moved = r;
        moved.at = datetime(1_700_000_000_124);
        assert_ne!(moved.compute_hash(), back.hash);
    }

    #[test]
    fn entry_limits() {
        let ok = AuditEntry::new("admin", Some("acme"), "op", "res", "ok");
        assert!(ok.validate().is_ok());
        let long = "x".repeat(MAX_FIELD_CHARS + 1);
        for bad in [
            AuditEntry::new("", None, "op", "", "ok"),
            AuditEntry::new(&long, None, "op", "", "ok"),
            AuditEntry::new("a", None, &long, "", "ok"),
            AuditEntry::new("a", None, "op", &long, "ok"),
            AuditEntry::new("a", None, "op", "", &"x".repeat(MAX_OUTCOME_CHARS + 1)),
            AuditEntry::new("a", None, "op", "", "ok")
                .with_metadata("k", "v".repeat(MAX_METADATA_BYTES + 1)),
        ] {
            assert!(
                matches!(bad.validate(), Err(TenantError::InvalidField { .. })),
                "{bad:?}"
            );
        }
        let many = (0..=MAX_METADATA_ENTRIES)
            .fold(AuditEntry::new("a", None, "op", "", "ok"), |e, i| {
                e.with_metadata(format!("k{i}"), "v")
            });
        assert!(matches!(
            many.validate(),
            Err(TenantError::InvalidField {
                field: "metadata",
                ..
            })
        ));
        assert!(matches!(
            AuditEntry::new("a", Some("Bad Id"), "op", "", "ok").validate(),
            Err(TenantError::Invalid(_))
        ));
        // Characters, not bytes: 200 multi-byte characters are fine.
        assert!(
            AuditEntry::new(&"é".repeat(MAX_FIELD_CHARS), None, "op", "", "ok")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn head_and_member_formats() {
        assert_eq!(
            parse_head(b"12 abc"),
            Some(Head {
                seq: 12,
                hash: "abc".into()
            })
        );
        assert_eq!(parse_head(b"x abc"), None);
        assert_eq!(parse_head(b"12"), None);
        assert!(member(9) < member(10));
        assert_eq!(GENESIS_HASH.len(), 64);
    }
}
