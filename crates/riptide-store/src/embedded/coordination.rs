//! Coordination on the embedded store: leases (`lease.rs`), fenced writes (`fenced.rs`)
//! and in-process publish/subscribe (`pubsub.rs`).

use async_trait::async_trait;

use super::{EmbeddedStore, fenced, lease};
use crate::{Coordination, Durability, LeaseOp, LeaseState, StoreResult, Subscription};

#[async_trait]
impl Coordination for EmbeddedStore {
    async fn lease(
        &self,
        key: &str,
        holder: &str,
        ttl_ms: u64,
        op: LeaseOp,
    ) -> StoreResult<LeaseState> {
        lease::lease(self, key, holder, ttl_ms, op).await
    }

    async fn set_fenced(
        &self,
        lease_key: &str,
        token: u64,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
        durability: Durability,
    ) -> StoreResult<bool> {
        fenced::set_fenced(self, lease_key, token, key, value, ttl_ms, durability).await
    }

    async fn publish(&self, channel: &str, payload: &[u8]) -> StoreResult<()> {
        self.inner.pubsub.publish(channel, payload)
    }

    async fn subscribe(&self, channel: &str) -> StoreResult<Subscription> {
        self.inner.pubsub.subscribe(channel, &self.shutdown)
    }
}
