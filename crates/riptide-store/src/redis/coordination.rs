//! Coordination on Redis: leases and fenced writes are one script run each
//! (`scripts/lease.lua`, `scripts/set_fenced.lua`); `publish` is one `PUBLISH`, and each
//! subscription owns a connection of its own (`pubsub.rs`).

use async_trait::async_trait;

use super::{RedisStore, check_ttl, lease, pubsub, scripts};
use crate::{Coordination, Durability, LeaseOp, LeaseState, StoreResult, Subscription};

#[async_trait]
impl Coordination for RedisStore {
    async fn lease(
        &self,
        key: &str,
        holder: &str,
        ttl_ms: u64,
        op: LeaseOp,
    ) -> StoreResult<LeaseState> {
        lease::check(holder, ttl_ms)?;
        let cmd = scripts::lease(key, holder, ttl_ms, op);
        let reply: lease::LeaseReply = self.eval(&scripts::LEASE, &cmd).await?;
        Ok(lease::state(reply))
    }

    async fn set_fenced(
        &self,
        lease_key: &str,
        token: u64,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
        _durability: Durability,
    ) -> StoreResult<bool> {
        check_ttl(ttl_ms)?;
        let cmd = scripts::set_fenced(lease_key, token, key, value, ttl_ms);
        let written: i64 = self.eval(&scripts::SET_FENCED, &cmd).await?;
        Ok(written == 1)
    }

    async fn publish(&self, channel: &str, payload: &[u8]) -> StoreResult<()> {
        pubsub::check_channel(channel)?;
        // Replies with the number of subscribers reached; on a Cluster only those of the
        // node it ran on, so it says nothing useful and is ignored.
        let _receivers: i64 = self
            .query(redis::cmd("PUBLISH").arg(channel).arg(payload))
            .await?;
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> StoreResult<Subscription> {
        self.subscriber.subscribe(channel).await
    }
}
