//! Checking and pruning the chain: [`AuditLog::verify`] walks it from the anchor to the
//! head, and [`AuditLog::prune`] deletes a prefix past its retention and moves the anchor.

use std::collections::BTreeMap;

use super::{Anchor, AuditLog, AuditRecord, CHUNK, ms_of, parse, score, to_json};
use crate::store::Durability;
use crate::tenant::error::{TenantError, TenantResult};
use crate::tenant_id::TenantId;

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
}

impl VerifyReport {
    /// True when the whole retained chain is intact.
    pub fn is_ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

impl AuditLog {
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
