//! Counters records on Redis: a hash per record; `counters_get` is one `HGETALL`, the
//! writes and the consistent read are one script run each.

use async_trait::async_trait;

use super::{RedisStore, records, scripts};
use crate::{Counters, CountersApplied, StoreError, StoreResult};

#[async_trait]
impl Counters for RedisStore {
    async fn counters_get(&self, key: &str) -> StoreResult<Vec<(String, i64)>> {
        let reply: Vec<(String, String)> = self.query(redis::cmd("HGETALL").arg(key)).await?;
        records::counters_from(reply)
    }

    async fn counters_set(&self, key: &str, fields: &[(String, Option<i64>)]) -> StoreResult<()> {
        if fields.is_empty() {
            return Ok(());
        }
        let cmd = scripts::counters_set(key, fields);
        let _: i64 = self.eval(&scripts::COUNTERS_SET, &cmd).await?;
        Ok(())
    }

    async fn counters_add_once(
        &self,
        key: &str,
        dedupe_key: &str,
        batch_id: &str,
        increments: &[(String, i64)],
        dedupe_ttl_ms: u64,
    ) -> StoreResult<bool> {
        records::check_dedupe_ttl(dedupe_ttl_ms)?;
        let cmd = scripts::counters_add_once(key, dedupe_key, batch_id, increments, dedupe_ttl_ms);
        let applied: i64 = self.eval(&scripts::COUNTERS_ADD_ONCE, &cmd).await?;
        Ok(applied == 1)
    }

    async fn counters_get_applied(
        &self,
        key: &str,
        dedupe_key: &str,
        batch_ids: &[String],
    ) -> StoreResult<CountersApplied> {
        let cmd = scripts::counters_get_applied(key, dedupe_key, batch_ids);
        let (fields, flags): (Vec<(String, String)>, Vec<i64>) =
            self.eval(&scripts::COUNTERS_GET_APPLIED, &cmd).await?;
        if flags.len() != batch_ids.len() {
            return Err(StoreError::Backend(format!(
                "counters_get_applied: {} flags for {} batch ids",
                flags.len(),
                batch_ids.len()
            )));
        }
        Ok(CountersApplied {
            counters: records::counters_from(fields)?,
            applied: flags.into_iter().map(|f| f == 1).collect(),
        })
    }
}
