//! Sorted sets on Redis: single commands; scores beyond ±2^53 are refused, not rounded
//! (`records.rs`).

use async_trait::async_trait;

use super::{RedisStore, non_negative, records};
use crate::{SortedSets, StoreResult};

#[async_trait]
impl SortedSets for RedisStore {
    async fn zset_add(&self, key: &str, members: &[(String, i64)]) -> StoreResult<()> {
        if members.is_empty() {
            return Ok(());
        }
        records::check_scores(members)?;
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(key);
        for (member, score) in members {
            cmd.arg(*score).arg(member);
        }
        let _added: i64 = self.query(&cmd).await?;
        Ok(())
    }

    async fn zset_remove(&self, key: &str, members: &[String]) -> StoreResult<u64> {
        if members.is_empty() {
            return Ok(0);
        }
        let removed: i64 = self.query(redis::cmd("ZREM").arg(key).arg(members)).await?;
        Ok(non_negative(removed))
    }

    async fn zset_range(
        &self,
        key: &str,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Vec<(String, i64)>> {
        let Some((start, stop)) = records::rank_range(offset, limit) else {
            return Ok(Vec::new());
        };
        let reply: Vec<(String, f64)> = self
            .query(
                redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(start)
                    .arg(stop)
                    .arg("WITHSCORES"),
            )
            .await?;
        records::scored(reply)
    }

    async fn zset_range_by_score(
        &self,
        key: &str,
        min: i64,
        max: i64,
        limit: u64,
    ) -> StoreResult<Vec<(String, i64)>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let reply: Vec<(String, f64)> = self
            .query(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(key)
                    .arg(records::score_bound(min))
                    .arg(records::score_bound(max))
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(records::count(limit)),
            )
            .await?;
        records::scored(reply)
    }

    async fn zset_remove_by_score(&self, key: &str, min: i64, max: i64) -> StoreResult<u64> {
        let removed: i64 = self
            .query(
                redis::cmd("ZREMRANGEBYSCORE")
                    .arg(key)
                    .arg(records::score_bound(min))
                    .arg(records::score_bound(max)),
            )
            .await?;
        Ok(non_negative(removed))
    }

    async fn zset_score(&self, key: &str, member: &str) -> StoreResult<Option<i64>> {
        let score: Option<f64> = self
            .query(redis::cmd("ZSCORE").arg(key).arg(member))
            .await?;
        score.map(|s| records::score_from(member, s)).transpose()
    }

    async fn zset_len(&self, key: &str) -> StoreResult<u64> {
        let len: i64 = self.query(redis::cmd("ZCARD").arg(key)).await?;
        Ok(non_negative(len))
    }
}
