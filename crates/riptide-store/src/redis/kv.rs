//! Plain values on Redis: single commands (`GET`, `MGET`, `SET ... PX`, `SET NX`, `DEL`),
//! one pipeline for `set_many`, one script run for `compare_and_swap`.

use async_trait::async_trait;
use bytes::Bytes;
use redis::Value;

use super::error::from_redis;
use super::{RedisStore, check_ttl, scripts};
use crate::{Durability, KeyValue, StoreResult};

#[async_trait]
impl KeyValue for RedisStore {
    async fn get(&self, key: &str) -> StoreResult<Option<Bytes>> {
        // The hot path: one command, and the reply's buffer becomes the `Bytes` as is.
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.pool.get())
            .await
            .map_err(from_redis)?;
        Ok(value.map(Bytes::from))
    }

    async fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut self.pool.get())
            .await
            .map_err(from_redis)?;
        Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect())
    }

    async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
        _durability: Durability,
    ) -> StoreResult<()> {
        check_ttl(ttl_ms)?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        if let Some(ttl) = ttl_ms {
            cmd.arg("PX").arg(ttl);
        }
        cmd.query_async(&mut self.pool.get())
            .await
            .map_err(from_redis)
    }

    async fn set_many(
        &self,
        entries: &[(String, Bytes, Option<u64>)],
        _durability: Durability,
    ) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        for (_, _, ttl) in entries {
            check_ttl(*ttl)?;
        }
        // One round trip; not a transaction: every SET stands alone.
        let mut pipe = redis::pipe();
        for (key, value, ttl) in entries {
            pipe.cmd("SET").arg(key).arg(&value[..]);
            if let Some(ttl) = ttl {
                pipe.arg("PX").arg(*ttl);
            }
            pipe.ignore();
        }
        pipe.query_async(&mut self.pool.get())
            .await
            .map_err(from_redis)
    }

    async fn delete(&self, keys: &[String]) -> StoreResult<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        // On a Cluster, the connection splits a DEL whose keys span slots into one DEL
        // per node and sums the replies.
        redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut self.pool.get())
            .await
            .map_err(from_redis)
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
        _durability: Durability,
    ) -> StoreResult<bool> {
        check_ttl(ttl_ms)?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("NX");
        if let Some(ttl) = ttl_ms {
            cmd.arg("PX").arg(ttl);
        }
        // `OK` when written, nil when the key exists.
        let reply: Value = self.query(&cmd).await?;
        Ok(!matches!(reply, Value::Nil))
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
        _durability: Durability,
    ) -> StoreResult<bool> {
        let cmd = scripts::cas(key, expected, new);
        let swapped: i64 = self.eval(&scripts::CAS, &cmd).await?;
        Ok(swapped == 1)
    }
}
