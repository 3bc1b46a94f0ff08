//! `write_atomic` on Redis: every op in one Lua script run (`scripts/write_atomic.lua`).
//!
//! Redis runs a script without interleaving other clients' commands, and the script
//! checks everything that could fail (expectations, key types) before its first write,
//! so it applies all of its ops or none. On a Cluster the script runs on the slot of its
//! keys; keys of two slots are refused with `CROSSSLOT` before it runs.

use async_trait::async_trait;
use redis::Cmd;

use super::{RedisStore, records};
use crate::{StoreResult, Transactions, WriteOp};

/// `EVALSHA <sha> <n> <key of each op> <name, argument count, arguments of each op>`.
fn command(ops: &[WriteOp]) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(super::scripts::WRITE_ATOMIC.get_hash())
        .arg(ops.len());
    for op in ops {
        cmd.arg(op.key());
    }
    for op in ops {
        match op {
            WriteOp::Expect { value, .. } => {
                cmd.arg("expect");
                match value {
                    Some(v) => cmd.arg(2).arg("1").arg(&v[..]),
                    None => cmd.arg(1).arg("0"),
                };
            }
            WriteOp::ExpectPresent { .. } => {
                cmd.arg("expect").arg(1).arg("2");
            }
            WriteOp::Put { value, .. } => {
                cmd.arg("put").arg(1).arg(&value[..]);
            }
            WriteOp::Delete { .. } => {
                cmd.arg("del").arg(0);
            }
            WriteOp::Counters { fields, .. } => {
                cmd.arg("hset").arg(fields.len() * 2);
                for (field, value) in fields {
                    cmd.arg(field);
                    match value {
                        Some(v) => cmd.arg(*v),
                        None => cmd.arg(""),
                    };
                }
            }
            WriteOp::ZsetAdd { members, .. } => {
                cmd.arg("zadd").arg(members.len() * 2);
                for (member, score) in members {
                    cmd.arg(*score).arg(member);
                }
            }
            WriteOp::ZsetRemove { members, .. } => {
                cmd.arg("zrem").arg(members.len());
                for member in members {
                    cmd.arg(member);
                }
            }
        }
    }
    cmd
}

#[async_trait]
impl Transactions for RedisStore {
    async fn write_atomic(&self, ops: &[crate::WriteOp]) -> StoreResult<bool> {
        if ops.is_empty() {
            return Ok(true);
        }
        for op in ops {
            if let WriteOp::ZsetAdd { members, .. } = op {
                records::check_scores(members)?;
            }
        }
        let cmd = command(ops);
        let wrote: i64 = self.eval(&super::scripts::WRITE_ATOMIC, &cmd).await?;
        Ok(wrote == 1)
    }
}
