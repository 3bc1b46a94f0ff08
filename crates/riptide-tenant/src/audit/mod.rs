//! The audit log: who did what, to what, when, with which outcome. Append-only,
//! hash-chained, queryable by tenant and time range, pruned by retention.
//!
//! Every record carries a sequence number and `hash = HMAC-SHA256(audit key, prev_hash ‖
//! canonical JSON of the record without its hash)`, where `prev_hash` is the previous
//! record's hash (64 zeros before the first record) and the audit key is derived from
//! the master key, never stored ([`AuditKey`]). [`AuditLog::verify`] recomputes the
//! chain, so an edited or forged record (its hash does not match), a removed record (a
//! gap in the sequence) and a re-linked record (its `prev_hash` is not its predecessor's
//! hash) are found; records from before the key (version 1, plain SHA-256) are accepted
//! only before the first keyed one.
//!
//! The end of the chain is anchored outside it: in the high-water mark of this instance
//! (memory, a `0600` file, gauges; see [`high_water`]) and in every checkpoint's meta
//! line. `verify` reports a chain shorter than the mark (deleted last records, a head
//! rolled back) or with another record at the mark's length. A head that is missing
//! while records exist, or below the mark, stops appends with
//! [`TenantError::AuditUnavailable`]: auditing fails closed, it never stops silently.
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

pub mod high_water;
mod key;
mod record;
mod verify;

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use self::high_water::HighWater;
pub use self::high_water::{ChainTip, HIGH_WATER_FILE};
pub use self::key::AuditKey;
pub use self::record::{AuditEntry, AuditRecord, RECORD_VERSION};
pub use self::verify::VerifyReport;
use super::error::{TenantError, TenantResult};
use riptide_store::clock::SharedClock;
use riptide_store::tenant_id::TenantId;
use riptide_store::{Durability, SharedStore, Store};

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

/// Reads of a missing head before it counts as lost: an append in flight on another
/// task or instance has claimed its record but not yet moved the head.
const LOST_HEAD_READS: usize = 5;

/// Pause between those reads.
const LOST_HEAD_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// Records per `get_many` / `delete` call.
const CHUNK: usize = 256;

/// Outcome of a successful operation, by convention.
pub const OUTCOME_OK: &str = "ok";

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
    key: AuditKey,
    high_water: HighWater,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// The audit log of `store`, its records authenticated with `key`; record times
    /// come from `clock`. The high-water mark is kept in memory only (see
    /// [`Self::with_high_water_file`]).
    pub fn new(store: SharedStore, clock: SharedClock, key: AuditKey) -> Self {
        let base = format!("{}:{{audit}}", store.key_prefix());
        Self {
            store,
            clock,
            base,
            key,
            high_water: HighWater::in_memory(),
        }
    }

    /// Keeps the high-water mark in `file` too (mode `0600`), starting from what it
    /// holds, so a restart still knows how long the chain was.
    pub fn with_high_water_file(mut self, file: std::path::PathBuf) -> Self {
        self.high_water = HighWater::in_file(file);
        self
    }

    /// The longest chain this instance has seen (appended or verified), if any.
    pub fn high_water(&self) -> Option<ChainTip> {
        self.high_water.get()
    }

    /// `Ok` when a record can be appended; [`TenantError::AuditUnavailable`], saying
    /// what is wrong, when the head was lost (deleted while records exist) or rolled
    /// back below the high-water mark. Admin operations call it first, so none happens
    /// without its record.
    pub async fn ensure_writable(&self) -> TenantResult<()> {
        self.tip().await.map(drop)
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
                v: RECORD_VERSION,
            };
            record.hash = record.compute_hash(&self.key);
            let key = self.record_key(seq);
            if self
                .store
                .set_if_absent(&key, &to_json(&record)?, None, Durability::Durable)
                .await?
            {
                self.advance_head(seq, &record.hash).await;
                self.high_water
                    .observe(ChainTip {
                        length: seq,
                        head_hash: record.hash.clone(),
                    })
                    .await;
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

    /// The sequence number and `prev_hash` the next record should have, or
    /// [`TenantError::AuditUnavailable`] when the head was lost or rolled back.
    async fn tip(&self) -> TenantResult<(u64, String)> {
        let seen = self.high_water.get();
        for read in 0..LOST_HEAD_READS {
            if let Some(h) = self.head().await? {
                if let Some(seen) = seen.as_ref().filter(|s| h.seq < s.length)
                    && !self.holds(seen).await?
                {
                    return Err(TenantError::AuditUnavailable(format!(
                        "the audit head is at record {} but this instance has seen the chain at \
                         record {} (hash {}), which is gone or replaced: the head was rolled back",
                        h.seq, seen.length, seen.head_hash
                    )));
                }
                return Ok((h.seq.saturating_add(1), h.hash));
            }
            let anchor = self.anchor().await?.1;
            let first_exists = self
                .store
                .get(&self.record_key(anchor.first_seq))
                .await?
                .is_some();
            if !first_exists {
                if let Some(seen) = seen.as_ref().filter(|s| s.length >= anchor.first_seq) {
                    return Err(TenantError::AuditUnavailable(format!(
                        "the audit head and records from {} on are missing, but this instance has \
                         seen the chain at record {} (hash {})",
                        anchor.first_seq, seen.length, seen.head_hash
                    )));
                }
                return Ok((anchor.first_seq, anchor.prev_hash));
            }
            if read + 1 < LOST_HEAD_READS {
                tokio::time::sleep(LOST_HEAD_PAUSE).await;
            }
        }
        Err(TenantError::AuditUnavailable(
            "the audit head is missing while records exist: it was deleted".to_owned(),
        ))
    }

    /// Whether the record at `tip.length` is still there with `tip.head_hash` (a head
    /// that merely lags behind it, after a failed head update, is harmless).
    async fn holds(&self, tip: &ChainTip) -> TenantResult<bool> {
        let key = self.record_key(tip.length);
        Ok(match self.store.get(&key).await? {
            Some(bytes) => {
                parse::<AuditRecord>(&key, &bytes).is_ok_and(|r| r.hash == tip.head_hash)
            }
            None => false,
        })
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
}

/// The end of the audit chain of `store` as its head key says (unverified), for
/// anchoring it elsewhere (checkpoints). `None` when there is no head.
pub async fn stored_tip(store: &dyn Store) -> TenantResult<Option<ChainTip>> {
    let key = format!("{}:{{audit}}:head", store.key_prefix());
    Ok(store
        .get(&key)
        .await?
        .as_deref()
        .and_then(parse_head)
        .map(|h| ChainTip {
            length: h.seq,
            head_hash: h.hash,
        }))
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
