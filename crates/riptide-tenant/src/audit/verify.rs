//! Checking and pruning the chain: [`AuditLog::verify`] walks it from the anchor to the
//! head, and [`AuditLog::prune`] deletes a prefix past its retention and moves the anchor.

use std::collections::BTreeMap;

use super::{
    Anchor, AuditLog, AuditRecord, CHUNK, ChainTip, RECORD_VERSION, ms_of, parse, score, to_json,
};
use crate::error::{TenantError, TenantResult};
use riptide_store::Durability;
use riptide_store::tenant_id::TenantId;

/// Restarts of a verify walk that met records pruned under it.
const VERIFY_RESTARTS: usize = 8;

/// Attempts of a prune whose anchor update raced another prune.
const PRUNE_ATTEMPTS: usize = 4;

const DAY_MS: u64 = 86_400_000;

/// What [`AuditLog::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records checked and found good (before the first bad one, if any).
    pub checked: u64,
    /// The first bad record's sequence number and what is wrong with it.
    pub first_bad: Option<(u64, String)>,
    /// What is wrong with the chain as a whole: its head missing or rolled back, the
    /// chain shorter than once seen, another record where one was seen.
    pub problems: Vec<String>,
    /// The end of the chain as walked (the last good record).
    pub end: ChainTip,
    /// The head key as stored, if any.
    pub head: Option<ChainTip>,
    /// The longest chain this instance had seen before this walk.
    pub high_water: Option<ChainTip>,
    /// Good records from before the audit key (version 1, unkeyed).
    pub unkeyed: u64,
}

impl VerifyReport {
    /// True when the whole retained chain is intact and as long as ever seen.
    pub fn is_ok(&self) -> bool {
        self.first_bad.is_none() && self.problems.is_empty()
    }
}

/// How far a walk got.
struct Walk {
    checked: u64,
    first_bad: Option<(u64, String)>,
    end: ChainTip,
    /// The hash of the record at the high-water length, when the walk passed it.
    at_mark: Option<String>,
    unkeyed: u64,
}

impl AuditLog {
    /// Walks the retained chain from its oldest record to the newest and reports the
    /// first record that was edited or forged (its HMAC does not match), removed (gap),
    /// re-linked (`prev_hash` differs from its predecessor's hash) or is unreadable;
    /// then checks the chain's end against its head key and the high-water mark: a
    /// missing head, a head or chain end below a length once seen, or another record
    /// at that length are reported in [`VerifyReport::problems`]. Pruning does not make
    /// it fail: the walk starts at the anchor pruning leaves. A good chain raises the
    /// high-water mark to its end.
    pub async fn verify(&self) -> TenantResult<VerifyReport> {
        let high_water = self.high_water.get();
        let mut restarts = 0;
        let (walk, head, anchor) = loop {
            let anchor = self.anchor().await?.1;
            let head = self.head().await?;
            match self
                .walk(&anchor, head.as_ref(), high_water.as_ref())
                .await?
            {
                Some(walk) => break (walk, head, anchor),
                // Pruned under us: start again from the new anchor.
                None if restarts < VERIFY_RESTARTS => restarts += 1,
                None => {
                    return Err(TenantError::Conflict(self.anchor_key()));
                }
            }
        };
        let mut problems = Vec::new();
        let end = &walk.end;
        if head.is_none() && end.length >= anchor.first_seq {
            problems.push(format!(
                "the head key is missing while records {} to {} exist: it was deleted",
                anchor.first_seq, end.length
            ));
        }
        if let Some(seen) = &high_water {
            if let Some(h) = head.as_ref().filter(|h| h.seq < seen.length) {
                problems.push(format!(
                    "the head points at record {} but the chain was seen at record {} \
                     (hash {}): the head was rolled back",
                    h.seq, seen.length, seen.head_hash
                ));
            }
            if walk.first_bad.is_none() && end.length < seen.length {
                problems.push(format!(
                    "the chain ends at record {} but was seen at record {} (hash {}): \
                     records {} to {} were deleted",
                    end.length,
                    seen.length,
                    seen.head_hash,
                    end.length + 1,
                    seen.length
                ));
            }
            if let Some(found) = walk.at_mark.as_ref().filter(|h| **h != seen.head_hash) {
                problems.push(format!(
                    "record {} has hash {found} but was seen with hash {}: the chain was \
                     rewritten",
                    seen.length, seen.head_hash
                ));
            }
            if anchor.first_seq == seen.length + 1 && anchor.prev_hash != seen.head_hash {
                problems.push(format!(
                    "the chain was pruned after record {} but its hash was {}, not {}: the \
                     chain was rewritten",
                    seen.length, seen.head_hash, anchor.prev_hash
                ));
            }
        }
        if let Some(h) = &head
            && anchor.first_seq > h.seq + 1
        {
            problems.push(format!(
                "the retained chain starts at record {} after the head at record {}",
                anchor.first_seq, h.seq
            ));
        }
        let report = VerifyReport {
            checked: walk.checked,
            first_bad: walk.first_bad,
            problems,
            end: walk.end,
            head: head.map(|h| ChainTip {
                length: h.seq,
                head_hash: h.hash,
            }),
            high_water,
            unkeyed: walk.unkeyed,
        };
        if report.is_ok() && report.end.length > 0 {
            self.high_water.observe(report.end.clone()).await;
        }
        if !report.is_ok() {
            tracing::error!(
                audit.first_bad = ?report.first_bad,
                audit.problems = ?report.problems,
                "the audit log failed verification"
            );
        }
        Ok(report)
    }

    /// Walks from `anchor` to the last record (past the head while records follow).
    /// `None` when records were pruned under the walk.
    async fn walk(
        &self,
        anchor: &Anchor,
        head: Option<&super::Head>,
        mark: Option<&ChainTip>,
    ) -> TenantResult<Option<Walk>> {
        let mut walk = Walk {
            checked: 0,
            first_bad: None,
            end: ChainTip {
                length: anchor.first_seq.saturating_sub(1),
                head_hash: anchor.prev_hash.clone(),
            },
            at_mark: None,
            unkeyed: 0,
        };
        let mut seq = anchor.first_seq;
        let mut keyed_seen = false;
        loop {
            let keys: Vec<String> = (0..CHUNK as u64)
                .map(|i| self.record_key(seq.saturating_add(i)))
                .collect();
            let values = self.store.get_many(&keys).await?;
            for (key, value) in keys.iter().zip(values) {
                let mut bad = |reason: String| {
                    walk.first_bad = Some((seq, reason));
                };
                let Some(bytes) = value else {
                    if head.is_some_and(|h| seq <= h.seq) {
                        if self.anchor().await?.1.first_seq > seq {
                            return Ok(None);
                        }
                        bad("record missing: the chain has a gap".to_owned());
                    }
                    // Else past the head: the end of the chain.
                    return Ok(Some(walk));
                };
                let record: AuditRecord = match parse(key, &bytes) {
                    Ok(r) => r,
                    Err(e) => {
                        bad(format!("unreadable record: {e}"));
                        return Ok(Some(walk));
                    }
                };
                let reason = if record.seq != seq {
                    Some(format!("record claims seq {}", record.seq))
                } else if record.v > RECORD_VERSION {
                    Some(format!("unknown record version {}", record.v))
                } else if record.v < RECORD_VERSION && keyed_seen {
                    Some("an unkeyed (version 1) record after keyed ones: it was forged".to_owned())
                } else if record.compute_hash(&self.key) != record.hash {
                    Some(
                        "hash mismatch: the record was edited, or written without this \
                         service's audit key"
                            .to_owned(),
                    )
                } else if record.prev_hash != walk.end.head_hash {
                    Some(
                        "prev_hash is not the previous record's hash: the chain is broken"
                            .to_owned(),
                    )
                } else if head.is_some_and(|h| h.seq == seq && h.hash != record.hash) {
                    Some("the head names a different hash for this record".to_owned())
                } else {
                    None
                };
                if let Some(reason) = reason {
                    bad(reason);
                    return Ok(Some(walk));
                }
                if record.v < RECORD_VERSION {
                    walk.unkeyed += 1;
                } else {
                    keyed_seen = true;
                }
                if mark.is_some_and(|m| m.length == seq) {
                    walk.at_mark = Some(record.hash.clone());
                }
                walk.end = ChainTip {
                    length: seq,
                    head_hash: record.hash,
                };
                walk.checked += 1;
                seq = seq.saturating_add(1);
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
