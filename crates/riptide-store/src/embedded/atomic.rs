//! `write_atomic` on the embedded store: every op in one durable write transaction.
//!
//! redb runs one write transaction at a time and commits it all or nothing (a crash
//! before the commit's fsync leaves the previous state), so the checks and the writes
//! are atomic. The `Expect` checks run first, before any table is written; a failed
//! check drops the transaction, which writes nothing.

use super::counters::{self, CounterTables};
use super::tables::CacheTables;
use super::zset::{MAX_SCORE, ZsetTables};
use super::{EmbeddedStore, backend, cache};
use crate::{Durability, StoreResult, Transactions, WriteOp};
use async_trait::async_trait;

/// Refuses the whole batch, before anything is written, when a score is one Redis
/// could not hold exactly (as `zset_add` does).
fn check_scores(ops: &[WriteOp]) -> StoreResult<()> {
    for op in ops {
        if let WriteOp::ZsetAdd { members, .. } = op
            && let Some((member, score)) = members
                .iter()
                .find(|(_, score)| score.unsigned_abs() > MAX_SCORE.unsigned_abs())
        {
            return Err(backend(&format!(
                "score {score} of {member:?} is outside ±2^53 (refused on every backend)"
            )));
        }
    }
    Ok(())
}

#[async_trait]
impl Transactions for EmbeddedStore {
    async fn write_atomic(&self, ops: &[crate::WriteOp]) -> StoreResult<bool> {
        check_scores(ops)?;
        let ops = ops.to_vec();
        // Counters records written or deleted must leave the rate limiter's override cache.
        let touched: Vec<String> = ops
            .iter()
            .filter(|op| matches!(op, WriteOp::Counters { .. } | WriteOp::Delete { .. }))
            .map(|op| op.key().to_owned())
            .collect();
        self.write_invalidating(Durability::Durable, touched, move |tx, now, _| {
            let mut tables = CacheTables::open(tx)?;
            for op in &ops {
                let holds = match op {
                    WriteOp::Expect { key, value } => tables
                        .data
                        .with_live(key, now, |live| live == value.as_deref())?,
                    WriteOp::ExpectPresent { key } => {
                        tables.data.with_live(key, now, |live| live.is_some())?
                    }
                    _ => true,
                };
                if !holds {
                    return Ok(false);
                }
            }
            let mut zsets = ZsetTables::open(tx)?;
            let mut counter_tables = CounterTables::open(tx)?;
            for op in &ops {
                match op {
                    WriteOp::Expect { .. } | WriteOp::ExpectPresent { .. } => {}
                    WriteOp::Put { key, value } => tables.data.put(key, value, 0)?,
                    WriteOp::Delete { key } => {
                        // As `delete`: the value (with cache accounting), sorted set,
                        // counters record and remembered batch ids.
                        cache::delete(&mut tables, std::slice::from_ref(key), now)?;
                        zsets.remove_all(key)?;
                        counter_tables.remove_all(key)?;
                        tables
                            .data
                            .remove_prefixed(&counters::applied_prefix(key), now)?;
                    }
                    WriteOp::Counters { key, fields } => counter_tables.set(key, fields)?,
                    WriteOp::ZsetAdd { key, members } => zsets.add(key, members)?,
                    WriteOp::ZsetRemove { key, members } => {
                        zsets.remove(key, members)?;
                    }
                }
            }
            Ok(true)
        })
        .await
    }
}
