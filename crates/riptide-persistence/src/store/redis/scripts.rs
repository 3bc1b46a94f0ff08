//! The Lua scripts behind the `cache_*` methods, and the commands that invoke them.
//!
//! Each `cache_*` call is one script run: Redis runs a script atomically, which is what
//! keeps a scope's index, sizes, tags and used-bytes counter exact under concurrent
//! writers. Every script starts with `scripts/common.lua` (the shared helpers and the
//! expiry purge). All keys a script is given carry the scope's hash tag, and the scope
//! keys come first in `KEYS`, so a Cluster routes the call to the scope's slot.
//!
//! Scripts are sent as `EVALSHA` commands built here rather than through
//! [`redis::ScriptInvocation`], which copies every argument once more before packing:
//! cache values can be tens of MB.

use std::sync::LazyLock;

use redis::{Cmd, Script};

use crate::keys::ScopeKeys;
use crate::store::CachePut;

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
