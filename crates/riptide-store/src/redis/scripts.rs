//! The Lua scripts behind the `cache_*` methods and the record and coordination methods
//! that need more than one command (`compare_and_swap`, `counters_set`,
//! `counters_add_once`, `counters_get_applied`, `gcra`, `lease`, `set_fenced`), and the commands that
//! invoke them.
//!
//! Each `cache_*` call is one script run: Redis runs a script atomically, which is what
//! keeps a scope's index, sizes, tags and used-bytes counter exact under concurrent
//! writers. Every cache script starts with `scripts/common.lua` (the shared helpers and
//! the expiry purge). All keys a script is given carry the scope's hash tag, and the scope
//! keys come first in `KEYS`, so a Cluster routes the call to the scope's slot.
//!
//! The record scripts stand alone and declare every key they touch in `KEYS`; a call
//! with two keys relies on the caller's contract that both carry one hash tag (on a
//! Cluster, keys of two slots are refused with `CROSSSLOT`).
//!
//! Scripts are sent as `EVALSHA` commands built here rather than through
//! [`redis::ScriptInvocation`], which copies every argument once more before packing:
//! cache values can be tens of MB.

use std::sync::LazyLock;

use redis::{Cmd, Script};

use super::lease::FENCE_SUFFIX;
use crate::keys::ScopeKeys;
use crate::{CachePut, GcraLimit, LeaseOp};

macro_rules! cache_script {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("scripts/common.lua"),
                include_str!($file)
            ))
        })
    };
}

/// `cache_put`: purge, overwrite accounting, budget check, eviction, write.
pub(super) static PUT: LazyLock<Script> = cache_script!("scripts/put.lua");
/// `cache_remove`: removes given entries.
pub(super) static REMOVE: LazyLock<Script> = cache_script!("scripts/remove.lua");
/// `cache_remove_tag` / `cache_remove_namespace`: removes a member set's entries, bounded.
pub(super) static REMOVE_SET: LazyLock<Script> = cache_script!("scripts/remove_set.lua");
/// `cache_clear`: removes every entry, bounded per call, then the scope's bookkeeping.
pub(super) static CLEAR: LazyLock<Script> = cache_script!("scripts/clear.lua");
/// `cache_usage`: purge, then used bytes and entry count.
pub(super) static USAGE: LazyLock<Script> = cache_script!("scripts/usage.lua");

macro_rules! record_script {
    ($file:literal) => {
        LazyLock::new(|| Script::new(include_str!($file)))
    };
}

/// `compare_and_swap`: GET, compare, then SET (no TTL) or DEL.
pub(super) static CAS: LazyLock<Script> = record_script!("scripts/cas.lua");
/// `counters_set`: HSET / HDEL on one hash, in order.
pub(super) static COUNTERS_SET: LazyLock<Script> = record_script!("scripts/counters_set.lua");
/// `counters_add_once`: HINCRBY each field unless the batch id is remembered.
pub(super) static COUNTERS_ADD_ONCE: LazyLock<Script> =
    record_script!("scripts/counters_add_once.lua");
/// `counters_get_applied`: HGETALL and the applied flags of batch ids, atomically.
pub(super) static COUNTERS_GET_APPLIED: LazyLock<Script> =
    record_script!("scripts/counters_get_applied.lua");
/// `gcra`: overrides, one GCRA step, the new state when admitted.
pub(super) static GCRA: LazyLock<Script> = record_script!("scripts/gcra.lua");
/// `lease`: acquire / extend / release a lease, with its fencing counter.
pub(super) static LEASE: LazyLock<Script> = record_script!("scripts/lease.lua");
/// `set_fenced`: SET only while the lease is held under the writer's token.
pub(super) static SET_FENCED: LazyLock<Script> = record_script!("scripts/set_fenced.lua");
/// `write_atomic`: checks, then every op of an atomic multi-key write.
pub(super) static WRITE_ATOMIC: LazyLock<Script> = record_script!("scripts/write_atomic.lua");

/// Most entries one `remove_set` or `clear` call handles: a few milliseconds of server
/// time, so other clients are not stalled behind a large invalidation.
pub(super) const REMOVE_BATCH: usize = 2_000;

/// Largest budget passed to a script: Lua numbers are doubles, exact up to 2^53, and a
/// budget that large is no limit anyway.
const MAX_SCRIPT_NUMBER: u64 = (1 << 53) - 1;

/// `EVALSHA <sha> <numkeys> <scope keys> <extra keys> <base>`; the caller appends the
/// rest of `ARGV`.
fn invocation<'a>(
    script: &Script,
    scope: &ScopeKeys,
    extra_keys: impl ExactSizeIterator<Item = &'a str>,
) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash())
        .arg(5 + extra_keys.len())
        .arg(scope.index())
        .arg(scope.sizes())
        .arg(scope.entry_tags())
        .arg(scope.used_bytes())
        .arg(scope.member_sets());
    for key in extra_keys {
        cmd.arg(key);
    }
    cmd.arg(scope.base());
    cmd
}

/// The `cache_put` call for `puts`; tags are joined by `\n` (tags never contain
/// whitespace, see [`crate::keys::validate_tag`]).
pub(super) fn put(scope: &ScopeKeys, puts: &[CachePut], budget_bytes: Option<u64>) -> Cmd {
    let mut cmd = invocation(&PUT, scope, puts.iter().map(|p| p.key.as_str()));
    match budget_bytes {
        Some(budget) => cmd.arg(budget.min(MAX_SCRIPT_NUMBER)),
        None => cmd.arg(""),
    };
    let mut tags = String::new();
    for p in puts {
        cmd.arg(&p.namespace);
        match p.ttl_ms {
            Some(ttl) => cmd.arg(ttl),
            None => cmd.arg(""),
        };
        tags.clear();
        for (i, tag) in p.tags.iter().enumerate() {
            if i > 0 {
                tags.push('\n');
            }
            tags.push_str(tag);
        }
        cmd.arg(&tags).arg(&p.value[..]);
    }
    cmd
}

/// The `cache_remove` call for `keys` (already filtered to the scope's entry keys).
pub(super) fn remove<'a>(scope: &ScopeKeys, keys: impl ExactSizeIterator<Item = &'a str>) -> Cmd {
    invocation(&REMOVE, scope, keys)
}

/// One bounded `remove_set` call over the member set `set`.
pub(super) fn remove_set(scope: &ScopeKeys, set: &str) -> Cmd {
    let mut cmd = invocation(&REMOVE_SET, scope, std::iter::once(set));
    cmd.arg(REMOVE_BATCH);
    cmd
}

/// One bounded `clear` call.
pub(super) fn clear(scope: &ScopeKeys) -> Cmd {
    let mut cmd = invocation(&CLEAR, scope, std::iter::empty());
    cmd.arg(REMOVE_BATCH);
    cmd
}

/// One `usage` call.
pub(super) fn usage(scope: &ScopeKeys) -> Cmd {
    invocation(&USAGE, scope, std::iter::empty())
}

/// `EVALSHA <sha> <numkeys> <keys>`; the caller appends `ARGV`.
fn record_invocation(script: &Script, keys: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len());
    for key in keys {
        cmd.arg(*key);
    }
    cmd
}

/// The `compare_and_swap` call; `expected` and `new` are sent as given (binary-safe).
pub(super) fn cas(key: &str, expected: Option<&[u8]>, new: Option<&[u8]>) -> Cmd {
    let mut cmd = record_invocation(&CAS, &[key]);
    for value in [expected, new] {
        match value {
            Some(v) => cmd.arg("1").arg(v),
            None => cmd.arg("0").arg(""),
        };
    }
    cmd
}

/// The `counters_set` call: (field, value) pairs, an empty value for a removal.
pub(super) fn counters_set(key: &str, fields: &[(String, Option<i64>)]) -> Cmd {
    let mut cmd = record_invocation(&COUNTERS_SET, &[key]);
    for (field, value) in fields {
        cmd.arg(field);
        match value {
            Some(v) => cmd.arg(*v),
            None => cmd.arg(""),
        };
    }
    cmd
}

/// The `counters_add_once` call.
pub(super) fn counters_add_once(
    key: &str,
    dedupe_key: &str,
    batch_id: &str,
    increments: &[(String, i64)],
    dedupe_ttl_ms: u64,
) -> Cmd {
    let mut cmd = record_invocation(&COUNTERS_ADD_ONCE, &[key, dedupe_key]);
    cmd.arg(batch_id).arg(dedupe_ttl_ms);
    for (field, by) in increments {
        cmd.arg(field).arg(*by);
    }
    cmd
}

/// The `counters_get_applied` call.
pub(super) fn counters_get_applied(key: &str, dedupe_key: &str, batch_ids: &[String]) -> Cmd {
    let mut cmd = record_invocation(&COUNTERS_GET_APPLIED, &[key, dedupe_key]);
    for id in batch_ids {
        cmd.arg(id);
    }
    cmd
}

/// The `gcra` call: `KEYS = [key]` or `[key, overrides key]`; `ARGV = now_ms, rate,
/// burst, period_ms, cost, rate field, burst field` (empty fields without overrides).
pub(super) fn gcra(key: &str, limit: &GcraLimit, now_ms: u64, cost: u64) -> Cmd {
    let mut cmd = match &limit.overrides {
        Some((overrides, _, _)) => record_invocation(&GCRA, &[key, overrides]),
        None => record_invocation(&GCRA, &[key]),
    };
    cmd.arg(now_ms)
        .arg(limit.rate)
        .arg(limit.burst)
        .arg(limit.period_ms)
        .arg(cost);
    match &limit.overrides {
        Some((_, rate_field, burst_field)) => cmd.arg(rate_field).arg(burst_field),
        None => cmd.arg("").arg(""),
    };
    cmd
}

/// The `lease` call: `KEYS = [key, key + ":fence"]`; `ARGV = holder, ttl_ms, op`.
pub(super) fn lease(key: &str, holder: &str, ttl_ms: u64, op: LeaseOp) -> Cmd {
    let fence = format!("{key}{FENCE_SUFFIX}");
    let mut cmd = record_invocation(&LEASE, &[key, &fence]);
    cmd.arg(holder).arg(ttl_ms).arg(match op {
        LeaseOp::Acquire => "acquire",
        LeaseOp::Release => "release",
    });
    cmd
}

/// The `set_fenced` call: `KEYS = [lease key, key]`; `ARGV = token, value, ttl_ms or ''`.
/// The token is sent in decimal and compared as a string, so it stays exact.
pub(super) fn set_fenced(
    lease_key: &str,
    token: u64,
    key: &str,
    value: &[u8],
    ttl_ms: Option<u64>,
) -> Cmd {
    let mut cmd = record_invocation(&SET_FENCED, &[lease_key, key]);
    cmd.arg(token.to_string()).arg(value);
    match ttl_ms {
        Some(ttl) => cmd.arg(ttl),
        None => cmd.arg(""),
    };
    cmd
}
