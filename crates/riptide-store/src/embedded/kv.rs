//! Plain values on the embedded store: reads inline from the `kv` table, writes in one
//! transaction on the blocking pool; `set_if_absent` and `compare_and_swap` are in
//! `records.rs`.

use async_trait::async_trait;
use bytes::Bytes;

use super::counters::{self, CounterTables};
use super::tables::{CacheTables, KvTables};
use super::zset::ZsetTables;
use super::{EmbeddedStore, RedbResultExt, cache, check_ttl, expires_at, live_payload, records};
use crate::{Durability, KeyValue, StoreResult};

#[async_trait]
impl KeyValue for EmbeddedStore {
    async fn get(&self, key: &str) -> StoreResult<Option<Bytes>> {
        let table = self.inner.read_kv()?;
        match table.get(key).ctx("read value")? {
            Some(raw) => live_payload(raw.value(), self.inner.clock.now_ms()),
            None => Ok(None),
        }
    }

    async fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Bytes>>> {
        let table = self.inner.read_kv()?;
        let now = self.inner.clock.now_ms();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(match table.get(key.as_str()).ctx("read value")? {
                Some(raw) => live_payload(raw.value(), now)?,
                None => None,
            });
        }
        Ok(out)
    }

    async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
        durability: Durability,
    ) -> StoreResult<()> {
        check_ttl(ttl_ms)?;
        let key = key.to_owned();
        let value = Bytes::copy_from_slice(value);
        self.write(durability, move |tx, now| {
            KvTables::open(tx)?.put(&key, &value, expires_at(now, ttl_ms))
        })
        .await
    }

    async fn set_many(
        &self,
        entries: &[(String, Bytes, Option<u64>)],
        durability: Durability,
    ) -> StoreResult<()> {
        for (_, _, ttl_ms) in entries {
            check_ttl(*ttl_ms)?;
        }
        let entries = entries.to_vec();
        self.write(durability, move |tx, now| {
            let mut tables = KvTables::open(tx)?;
            for (key, value, ttl_ms) in &entries {
                tables.put(key, value, expires_at(now, *ttl_ms))?;
            }
            Ok(())
        })
        .await
    }

    async fn delete(&self, keys: &[String]) -> StoreResult<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        self.write_invalidating(Durability::Durable, keys.to_vec(), |tx, now, keys| {
            let mut tables = CacheTables::open(tx)?;
            let mut zsets = ZsetTables::open(tx)?;
            let mut counters = CounterTables::open(tx)?;
            let mut existed = 0;
            for key in keys {
                let value = cache::delete(&mut tables, std::slice::from_ref(key), now)? > 0;
                let zset = zsets.remove_all(key)?;
                let record = counters.remove_all(key)?;
                let applied = tables
                    .data
                    .remove_prefixed(&counters::applied_prefix(key), now)?;
                if value || zset || record || applied > 0 {
                    existed += 1;
                }
            }
            Ok(existed)
        })
        .await
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
        durability: Durability,
    ) -> StoreResult<bool> {
        records::set_if_absent(self, key, value, ttl_ms, durability).await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
        durability: Durability,
    ) -> StoreResult<bool> {
        records::compare_and_swap(self, key, expected, new, durability).await
    }
}
