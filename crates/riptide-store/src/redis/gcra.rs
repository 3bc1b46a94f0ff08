//! The GCRA rate limiter on Redis: one script run (`scripts/gcra.lua`) per step, which
//! mirrors `store/gcra.rs` in integer µs on the caller's clock.

use async_trait::async_trait;

use super::{RedisStore, records, scripts};
use crate::{GcraDecision, GcraLimit, RateLimit, StoreResult};

#[async_trait]
impl RateLimit for RedisStore {
    async fn gcra(
        &self,
        key: &str,
        limit: &GcraLimit,
        now_ms: u64,
        cost: u64,
    ) -> StoreResult<GcraDecision> {
        records::check_gcra(limit, now_ms, cost)?;
        let cmd = scripts::gcra(key, limit, now_ms, cost);
        let reply: records::GcraReply = self.eval(&scripts::GCRA, &cmd).await?;
        Ok(records::decision(reply))
    }
}
