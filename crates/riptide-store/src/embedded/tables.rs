//! The embedded store's redb tables and their compact value encodings.
//!
//! | table | key | value |
//! |---|---|---|
//! | `kv` | data key | 8 bytes LE `expires_at_ms` (0: no TTL), then the payload |
//! | `expiry` | `(expires_at_ms, data key)` | `()` — what the sweeper walks |
//! | `cache_meta` | cache entry key | [`EntryMeta`] (size, expiry, scope base length, tags) |
//! | `cache_order` | `(scope base, expires_at_ms or u64::MAX, entry key)` | entry size |
//! | `cache_tags` | `(scope base, tag, entry key)` | `()` |
//! | `cache_usage` | scope base | `(used_bytes, entries)` |
//! | `zset_scores` | `(set key, member)` | score `i64` |
//! | `zset_order` | `(set key, score, member)` | `()` — (score, member) order |
//! | `zset_len` | set key | member count (no row: empty set) |
//! | `counters` | `(record key, field)` | value `i64` (no row: no field) |
//!
//! A cache entry's payload lives in `kv` like any other value; the `cache_*` tables are
//! its accounting. Entry keys start with their scope base, so `cache_meta` stores the
//! base as a length rather than a copy.
//!
//! Sorted sets and counters records have tables of their own, so a key may name a value,
//! a sorted set and a counters record at once (on Redis one key has one type; callers
//! never mix them). `delete` removes all three. The ids that `counters_add_once` has
//! applied are plain `kv` values `<dedupe key>\0<batch id>` with a TTL, so the sweeper
//! forgets them, and `delete` of the dedupe key drops them all (one range scan), as
//! deleting the dedupe key forgets them on Redis. A lease (`lease.rs`) is two plain `kv`
//! values too: the holding at the lease key (with its TTL) and the fencing counter.

use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};

use super::{RedbResultExt, backend};
use crate::StoreResult;

/// Data key → header + payload.
pub(super) const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// `(expires_at_ms, key)` for every value with a TTL.
pub(super) const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");
/// Cache entry key → encoded [`EntryMeta`].
pub(super) const CACHE_META: TableDefinition<&str, &[u8]> = TableDefinition::new("cache_meta");
/// Eviction order of one scope's entries: `(base, rank, key)` → size.
pub(super) const CACHE_ORDER: TableDefinition<(&str, u64, &str), u64> =
    TableDefinition::new("cache_order");
/// Tag membership: `(base, tag, key)`.
pub(super) const CACHE_TAGS: TableDefinition<(&str, &str, &str), ()> =
    TableDefinition::new("cache_tags");
/// Scope base → `(used_bytes, entries)`.
pub(super) const CACHE_USAGE: TableDefinition<&str, (u64, u64)> =
    TableDefinition::new("cache_usage");

/// Sorted set membership: `(set key, member)` → score.
pub(super) const ZSET_SCORES: TableDefinition<(&str, &str), i64> =
    TableDefinition::new("zset_scores");
/// Sorted set order: `(set key, score, member)`.
pub(super) const ZSET_ORDER: TableDefinition<(&str, i64, &str), ()> =
    TableDefinition::new("zset_order");
/// Sorted set key → member count.
pub(super) const ZSET_LEN: TableDefinition<&str, u64> = TableDefinition::new("zset_len");
/// Counters: `(record key, field)` → value.
pub(super) const COUNTERS: TableDefinition<(&str, &str), i64> = TableDefinition::new("counters");

/// Length of the expiry header in front of every `kv` payload.
const HEADER_LEN: usize = 8;

/// Creates every table, so read transactions never meet a missing one.
pub(super) fn create_all(tx: &WriteTransaction) -> StoreResult<()> {
    tx.open_table(KV).ctx("create table kv")?;
    tx.open_table(EXPIRY).ctx("create table expiry")?;
    tx.open_table(CACHE_META).ctx("create table cache_meta")?;
    tx.open_table(CACHE_ORDER).ctx("create table cache_order")?;
    tx.open_table(CACHE_TAGS).ctx("create table cache_tags")?;
    tx.open_table(CACHE_USAGE).ctx("create table cache_usage")?;
    tx.open_table(ZSET_SCORES).ctx("create table zset_scores")?;
    tx.open_table(ZSET_ORDER).ctx("create table zset_order")?;
    tx.open_table(ZSET_LEN).ctx("create table zset_len")?;
    tx.open_table(COUNTERS).ctx("create table counters")?;
    Ok(())
}

/// Splits a stored `kv` value into its expiry (0: none) and payload.
pub(super) fn split_value(raw: &[u8]) -> StoreResult<(u64, &[u8])> {
    match raw.split_first_chunk::<HEADER_LEN>() {
        Some((header, payload)) => Ok((u64::from_le_bytes(*header), payload)),
        None => Err(backend("corrupt value: shorter than its expiry header")),
    }
}

/// True while a value with this expiry (0: none) may be returned at `now`.
pub(super) fn is_live(expires_at: u64, now: u64) -> bool {
    expires_at == 0 || now < expires_at
}

/// Position of an entry in its scope's eviction order: soonest expiry first, no TTL last.
pub(super) fn order_rank(expires_at: u64) -> u64 {
    if expires_at == 0 {
        u64::MAX
    } else {
        expires_at
    }
}

/// The smallest string greater than every string that starts with `prefix`, for range
/// scans. Keys and bases are ASCII, so bumping the last byte stays valid UTF-8.
pub(super) fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.to_owned();
    match end.pop() {
        Some(c) if (c as u32) < 0x7f => end.push((c as u8 + 1) as char),
        Some(c) => {
            // Not reached with our ASCII keys; `c` followed by U+10FFFF bounds it anyway.
            end.push(c);
            end.push(char::MAX);
        }
        None => end.push(char::MAX),
    }
    end
}

/// The smallest string greater than `s` itself: the exclusive upper bound of a range of
/// tuple keys whose first element is exactly `s`.
pub(super) fn just_after(s: &str) -> String {
    let mut next = String::with_capacity(s.len() + 1);
    next.push_str(s);
    next.push('\0');
    next
}

/// Accounting of one cache entry, stored in `cache_meta`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EntryMeta {
    /// Stored payload bytes.
    pub size: u64,
    /// Expiry in ms since the epoch (0: none).
    pub expires_at: u64,
    /// Length of the scope base at the start of the entry key.
    pub base_len: usize,
    /// The entry's tags.
    pub tags: Vec<String>,
}

impl EntryMeta {
    /// `size u64 | expires_at u64 | base_len u16 | (tag_len u16 | tag)*`, little endian.
    fn encode(
        size: u64,
        expires_at: u64,
        base_len: usize,
        tags: &[String],
    ) -> StoreResult<Vec<u8>> {
        let mut out = Vec::with_capacity(18 + tags.iter().map(|t| 2 + t.len()).sum::<usize>());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&expires_at.to_le_bytes());
        out.extend_from_slice(&len_u16(base_len, "scope base")?.to_le_bytes());
        for tag in tags {
            out.extend_from_slice(&len_u16(tag.len(), "tag")?.to_le_bytes());
            out.extend_from_slice(tag.as_bytes());
        }
        Ok(out)
    }

    fn decode(raw: &[u8]) -> StoreResult<Self> {
        let corrupt = || backend("corrupt cache entry metadata");
        let (size, rest) = raw.split_first_chunk::<8>().ok_or_else(corrupt)?;
        let (expires_at, rest) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
        let (base_len, mut rest) = rest.split_first_chunk::<2>().ok_or_else(corrupt)?;
        let mut tags = Vec::new();
        while !rest.is_empty() {
            let (len, tail) = rest.split_first_chunk::<2>().ok_or_else(corrupt)?;
            let len = usize::from(u16::from_le_bytes(*len));
            let (tag, tail) = tail.split_at_checked(len).ok_or_else(corrupt)?;
            tags.push(std::str::from_utf8(tag).map_err(|_| corrupt())?.to_owned());
            rest = tail;
        }
        Ok(Self {
            size: u64::from_le_bytes(*size),
            expires_at: u64::from_le_bytes(*expires_at),
            base_len: usize::from(u16::from_le_bytes(*base_len)),
            tags,
        })
    }
}

fn len_u16(len: usize, what: &str) -> StoreResult<u16> {
    u16::try_from(len).map_err(|_| backend(&format!("{what} longer than 65535 bytes")))
}

/// A scope's cache usage as stored in `cache_usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Usage {
    /// Sum of the stored sizes of the scope's entries.
    pub bytes: u64,
    /// Number of entries.
    pub entries: u64,
}

impl Usage {
    pub(super) fn add(&mut self, size: u64) {
        self.bytes = self.bytes.saturating_add(size);
        self.entries = self.entries.saturating_add(1);
    }

    pub(super) fn sub(&mut self, size: u64) {
        self.bytes = self.bytes.saturating_sub(size);
        self.entries = self.entries.saturating_sub(1);
    }
}

/// The plain key/value tables of one write transaction.
pub(super) struct KvTables<'t> {
    kv: Table<'t, &'static str, &'static [u8]>,
    expiry: Table<'t, (u64, &'static str), ()>,
    /// Reused buffer for header + payload, so a batch allocates once.
    scratch: Vec<u8>,
}

impl<'t> KvTables<'t> {
    pub(super) fn open(tx: &'t WriteTransaction) -> StoreResult<Self> {
        Ok(Self {
            kv: tx.open_table(KV).ctx("open table kv")?,
            expiry: tx.open_table(EXPIRY).ctx("open table expiry")?,
            scratch: Vec::new(),
        })
    }

    /// Writes `key`, keeping the expiry index in step with the value it replaces.
    pub(super) fn put(&mut self, key: &str, payload: &[u8], expires_at: u64) -> StoreResult<()> {
        self.scratch.clear();
        self.scratch.extend_from_slice(&expires_at.to_le_bytes());
        self.scratch.extend_from_slice(payload);
        let old_expiry = match self
            .kv
            .insert(key, self.scratch.as_slice())
            .ctx("write value")?
        {
            Some(old) => split_value(old.value())?.0,
            None => 0,
        };
        if old_expiry != 0 && old_expiry != expires_at {
            self.expiry
                .remove((old_expiry, key))
                .ctx("update expiry index")?;
        }
        if expires_at != 0 {
            self.expiry
                .insert((expires_at, key), ())
                .ctx("update expiry index")?;
        }
        Ok(())
    }

    /// Calls `f` with the payload of `key` if it is live at `now`, else with `None`.
    pub(super) fn with_live<R>(
        &self,
        key: &str,
        now: u64,
        f: impl FnOnce(Option<&[u8]>) -> R,
    ) -> StoreResult<R> {
        match self.kv.get(key).ctx("read value")? {
            Some(raw) => {
                let (expires_at, payload) = split_value(raw.value())?;
                Ok(f(is_live(expires_at, now).then_some(payload)))
            }
            None => Ok(f(None)),
        }
    }

    /// Calls `f` with the stored value of `key` (expiry header and payload, live or not),
    /// or with `None` when absent.
    pub(super) fn with_raw<R>(
        &self,
        key: &str,
        f: impl FnOnce(Option<&[u8]>) -> R,
    ) -> StoreResult<R> {
        let raw = self.kv.get(key).ctx("read value")?;
        Ok(f(raw.as_ref().map(|raw| raw.value())))
    }

    /// Deletes every value whose key starts with `prefix`; returns how many were live at
    /// `now`. (Used for the applied batch ids under one dedupe key.)
    pub(super) fn remove_prefixed(&mut self, prefix: &str, now: u64) -> StoreResult<u64> {
        let end = prefix_end(prefix);
        let mut doomed = Vec::new();
        for item in self.kv.range(prefix..end.as_str()).ctx("scan values")? {
            let (key, _) = item.ctx("scan values")?;
            doomed.push(key.value().to_owned());
        }
        let mut live = 0;
        for key in &doomed {
            if let Some(expires_at) = self.remove(key)?
                && is_live(expires_at, now)
            {
                live += 1;
            }
        }
        Ok(live)
    }

    /// Deletes `key`; returns the removed value's expiry (0: none), or `None` if absent.
    pub(super) fn remove(&mut self, key: &str) -> StoreResult<Option<u64>> {
        let expires_at = match self.kv.remove(key).ctx("delete value")? {
            Some(old) => split_value(old.value())?.0,
            None => return Ok(None),
        };
        if expires_at != 0 {
            self.expiry
                .remove((expires_at, key))
                .ctx("update expiry index")?;
        }
        Ok(Some(expires_at))
    }

    /// Up to `limit` `(expires_at, key)` pairs due at `now`, soonest first.
    pub(super) fn due(&self, now: u64, limit: usize) -> StoreResult<Vec<(u64, String)>> {
        let mut out = Vec::new();
        for item in self
            .expiry
            .range(..(now.saturating_add(1), ""))
            .ctx("scan expiry index")?
        {
            if out.len() >= limit {
                break;
            }
            let (key, _) = item.ctx("scan expiry index")?;
            let (expires_at, key) = key.value();
            out.push((expires_at, key.to_owned()));
        }
        Ok(out)
    }

    /// Drops one expiry index row and, if the value still carries that expiry, the value.
    /// Returns true when a value was deleted.
    pub(super) fn expire(&mut self, expires_at: u64, key: &str) -> StoreResult<bool> {
        self.expiry
            .remove((expires_at, key))
            .ctx("update expiry index")?;
        let current = match self.kv.get(key).ctx("read value")? {
            Some(value) => split_value(value.value())?.0,
            None => return Ok(false),
        };
        // A rewrite moves the index row, so a mismatch means the row was stale: keep the value.
        if current != expires_at {
            return Ok(false);
        }
        self.kv.remove(key).ctx("delete value")?;
        Ok(true)
    }
}

/// Every table a cache operation touches, opened once per write transaction.
pub(super) struct CacheTables<'t> {
    pub(super) data: KvTables<'t>,
    meta: Table<'t, &'static str, &'static [u8]>,
    order: Table<'t, (&'static str, u64, &'static str), u64>,
    tags: Table<'t, (&'static str, &'static str, &'static str), ()>,
    usage: Table<'t, &'static str, (u64, u64)>,
}

impl<'t> CacheTables<'t> {
    pub(super) fn open(tx: &'t WriteTransaction) -> StoreResult<Self> {
        Ok(Self {
            data: KvTables::open(tx)?,
            meta: tx.open_table(CACHE_META).ctx("open table cache_meta")?,
            order: tx.open_table(CACHE_ORDER).ctx("open table cache_order")?,
            tags: tx.open_table(CACHE_TAGS).ctx("open table cache_tags")?,
            usage: tx.open_table(CACHE_USAGE).ctx("open table cache_usage")?,
        })
    }

    /// The stored usage of the scope `base`.
    pub(super) fn usage(&self, base: &str) -> StoreResult<Usage> {
        Ok(match self.usage.get(base).ctx("read cache usage")? {
            Some(row) => {
                let (bytes, entries) = row.value();
                Usage { bytes, entries }
            }
            None => Usage::default(),
        })
    }

    /// Stores the usage of the scope `base`; an empty scope keeps no row.
    pub(super) fn set_usage(&mut self, base: &str, usage: Usage) -> StoreResult<()> {
        if usage == Usage::default() {
            self.usage.remove(base).ctx("write cache usage")?;
        } else {
            self.usage
                .insert(base, (usage.bytes, usage.entries))
                .ctx("write cache usage")?;
        }
        Ok(())
    }

    /// The accounting of entry `key`, if it is a cache entry.
    pub(super) fn meta(&self, key: &str) -> StoreResult<Option<EntryMeta>> {
        match self.meta.get(key).ctx("read cache entry metadata")? {
            Some(raw) => EntryMeta::decode(raw.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Records entry `key` (of scope `base`) in the index, order and tag tables. The caller
    /// writes the payload and adjusts the usage.
    pub(super) fn insert_entry(
        &mut self,
        base: &str,
        key: &str,
        size: u64,
        expires_at: u64,
        tags: &[String],
    ) -> StoreResult<()> {
        let meta = EntryMeta::encode(size, expires_at, base.len(), tags)?;
        self.meta
            .insert(key, meta.as_slice())
            .ctx("write cache entry metadata")?;
        self.order
            .insert((base, order_rank(expires_at), key), size)
            .ctx("write cache index")?;
        for tag in tags {
            self.tags
                .insert((base, tag.as_str(), key), ())
                .ctx("write cache tags")?;
        }
        Ok(())
    }

    /// Forgets entry `key` in the index, order and tag tables and returns what it was.
    /// The caller deletes the payload and adjusts the usage.
    pub(super) fn remove_entry(&mut self, key: &str) -> StoreResult<Option<EntryMeta>> {
        let meta = match self.meta.remove(key).ctx("delete cache entry metadata")? {
            Some(raw) => EntryMeta::decode(raw.value())?,
            None => return Ok(None),
        };
        let base = key
            .get(..meta.base_len)
            .ok_or_else(|| backend("corrupt cache entry base"))?;
        self.order
            .remove((base, order_rank(meta.expires_at), key))
            .ctx("delete cache index")?;
        for tag in &meta.tags {
            self.tags
                .remove((base, tag.as_str(), key))
                .ctx("delete cache tags")?;
        }
        Ok(Some(meta))
    }

    /// Keys of scope `base` in eviction order (soonest expiry first, no TTL last, ties by
    /// key) while `keep_going(key, size)` says so. `until` bounds the rank, exclusive:
    /// `Some(now + 1)` lists the expired entries, `None` every entry.
    pub(super) fn ordered(
        &self,
        base: &str,
        until: Option<u64>,
        mut keep_going: impl FnMut(&str, u64) -> bool,
    ) -> StoreResult<Vec<String>> {
        let next_base;
        let end = match until {
            Some(rank) => (base, rank, ""),
            None => {
                // Entries without TTL rank u64::MAX, so bound by the next base instead.
                next_base = just_after(base);
                (next_base.as_str(), 0u64, "")
            }
        };
        let mut out = Vec::new();
        for item in self
            .order
            .range((base, 0u64, "")..end)
            .ctx("scan cache index")?
        {
            let (key, size) = item.ctx("scan cache index")?;
            let (_, _, key) = key.value();
            if !keep_going(key, size.value()) {
                break;
            }
            out.push(key.to_owned());
        }
        Ok(out)
    }

    /// Entries of scope `base` carrying `tag`.
    pub(super) fn tagged(&self, base: &str, tag: &str) -> StoreResult<Vec<String>> {
        let end = just_after(tag);
        let mut out = Vec::new();
        let range = self
            .tags
            .range((base, tag, "")..(base, end.as_str(), ""))
            .ctx("scan cache tags")?;
        for item in range {
            let (key, _) = item.ctx("scan cache tags")?;
            out.push(key.value().2.to_owned());
        }
        Ok(out)
    }

    /// Deletes every tag row of scope `base` (after its entries are gone, there should be
    /// none; this clears any that drifted).
    pub(super) fn purge_tags(&mut self, base: &str) -> StoreResult<()> {
        let end = just_after(base);
        self.tags
            .retain_in((base, "", "")..(end.as_str(), "", ""), |_, ()| false)
            .ctx("delete cache tags")
    }

    /// Entries whose key starts with `prefix`.
    pub(super) fn with_prefix(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let end = prefix_end(prefix);
        let mut out = Vec::new();
        for item in self
            .meta
            .range(prefix..end.as_str())
            .ctx("scan cache entries")?
        {
            let (key, _) = item.ctx("scan cache entries")?;
            out.push(key.value().to_owned());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_meta_round_trips() {
        let tags = vec!["a".to_owned(), "url:example.com".to_owned()];
        let raw = EntryMeta::encode(1234, 99, 17, &tags).unwrap();
        let meta = EntryMeta::decode(&raw).unwrap();
        assert_eq!(
            meta,
            EntryMeta {
                size: 1234,
                expires_at: 99,
                base_len: 17,
                tags
            }
        );
        assert!(EntryMeta::decode(&raw[..raw.len() - 1]).is_err());
        assert!(EntryMeta::decode(&raw[..5]).is_err());
    }

    #[test]
    fn value_header_and_liveness() {
        let mut raw = 50u64.to_le_bytes().to_vec();
        raw.extend_from_slice(b"xyz");
        assert_eq!(split_value(&raw).unwrap(), (50, &b"xyz"[..]));
        assert!(split_value(b"short").is_err());
        assert!(is_live(0, u64::MAX));
        assert!(is_live(50, 49));
        assert!(!is_live(50, 50));
    }

    #[test]
    fn range_bounds_cover_exactly_the_prefix() {
        assert_eq!(prefix_end("a:c:ns:"), "a:c:ns;");
        let end = prefix_end("a:c:ns:");
        assert!("a:c:ns:zzz" < end.as_str());
        assert!("a:c:nsx:1" > end.as_str());
        let after = just_after("base");
        assert!("base" < after.as_str() && after.as_str() < "base:x" && after.as_str() < "basf");
    }
}
