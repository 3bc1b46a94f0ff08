//! Is the store still the one we started on, and is it safe to keep records in?
//!
//! 1. At start, [`StoreSanity::start`] checks every Redis node's `maxmemory-policy` and
//!    persistence ([`riptide_persistence::store::node_check`]): an `allkeys-*` policy
//!    refuses the start unless `persistence.redis.allow_evicting_policy` is true. Then
//!    it adopts the store identity ([`riptide_persistence::store::identity`]).
//! 2. After a reconnect to Redis, [`follow_reconnects`] checks the nodes again: the
//!    server may have been restarted with another configuration. A refused policy now
//!    makes `/readyz` answer 503 `store_evicting_policy` (a running service cannot exit
//!    usefully) until a later check passes.
//! 3. Every `/readyz` compares the store's identity with the adopted one
//!    ([`StoreSanity::readiness`]): a wiped or replaced store answers 503
//!    `store_identity_lost` and sets `store_identity_lost 1`, instead of the service
//!    answering 401 to every tenant while reporting ready.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use riptide_persistence::clock::Clock;
use riptide_persistence::store::identity::{Adopted, IdentityCheck, LOST_GAUGE, StoreIdentity};
use riptide_persistence::store::node_check::check_nodes;
use riptide_persistence::store::{StoreKind, SubscriptionEvent};
use riptide_persistence::{SharedStore, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::log_every::LogEvery;

/// How often a lost identity is logged again while it stays lost.
const LOST_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Pause between node checks after a reconnect while the store still fails them.
const RECHECK_DELAY: Duration = Duration::from_millis(500);
/// Node checks tried after one reconnect before waiting for the next one.
const RECHECK_ATTEMPTS: usize = 20;

/// The identity adopted at start and what the checks found since.
#[derive(Debug)]
pub struct StoreSanity {
    identity: StoreIdentity,
    allow_evicting_policy: bool,
    /// Why the last node check after a reconnect refused the store, if it did.
    evicting: Mutex<Option<String>>,
    /// Whether the last identity check found the identity gone.
    lost: AtomicBool,
    lost_log: LogEvery,
}

impl StoreSanity {
    /// Checks the nodes and adopts the store identity. Fails (so the process exits 1)
    /// when a node's policy can evict keys without a TTL and that is not allowed, or
    /// when the store cannot be read.
    pub async fn start(
        store: &dyn Store,
        clock: &dyn Clock,
        allow_evicting_policy: bool,
    ) -> anyhow::Result<Self> {
        check_nodes(store, allow_evicting_policy)
            .await
            .context("checking how the store keeps data")?;
        let (identity, adopted) = StoreIdentity::adopt(store, clock)
            .await
            .context("reading the store identity")?;
        match adopted {
            Adopted::Found => tracing::info!(store.identity = %identity.id, "store identity found"),
            // Also what an operator sees after recovering from a wipe by a restart.
            Adopted::Created => tracing::warn!(
                store.identity = %identity.id,
                "store held no identity: wrote a new one (expected on a new store; \
                 otherwise this store was wiped or replaced)"
            ),
        }
        metrics::gauge!(LOST_GAUGE).set(0.0);
        Ok(Self {
            identity,
            allow_evicting_policy,
            evicting: Mutex::new(None),
            lost: AtomicBool::new(false),
            lost_log: LogEvery::new(LOST_LOG_INTERVAL),
        })
    }

    /// The identity adopted at start.
    pub fn identity(&self) -> &StoreIdentity {
        &self.identity
    }

    /// What `/readyz` adds to the ping: no refused node policy since the last reconnect,
    /// and the store still holding the adopted identity.
    pub async fn readiness(&self, store: &dyn Store) -> Result<(), ApiError> {
        if let Some(reason) = self
            .evicting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(ApiError::StoreEvictingPolicy(reason));
        }
        let check = self.identity.check(store).await?;
        let lost = check != IdentityCheck::Same;
        metrics::gauge!(LOST_GAUGE).set(if lost { 1.0 } else { 0.0 });
        let was_lost = self.lost.swap(lost, Ordering::Relaxed);
        if !lost {
            if was_lost {
                tracing::info!(store.identity = %self.identity.id, "store identity is back");
            }
            return Ok(());
        }
        if let Some(suppressed) = self.lost_log.check() {
            let found = match &check {
                IdentityCheck::Replaced(id) => id.as_str(),
                _ => "-",
            };
            tracing::error!(
                store.identity = %self.identity.id,
                store.identity_found = found,
                store.identity_check = check.as_str(),
                suppressed,
                "store identity lost: the store was wiped or replaced; not ready until \
                 restarted (see docs/OPERATIONS.md, Running Redis safely)"
            );
        }
        Err(ApiError::StoreIdentityLost {
            found: check.as_str(),
        })
    }

    /// One node check after a reconnect: records a refused policy for `/readyz`, clears
    /// an earlier one when it passes. `Err` when the store could not be asked.
    async fn recheck(&self, store: &dyn Store) -> Result<(), StoreError> {
        let refused = match check_nodes(store, self.allow_evicting_policy).await {
            Ok(_) => None,
            Err(StoreError::Config(reason)) => Some(reason),
            Err(e) => return Err(e),
        };
        if let Some(reason) = &refused {
            tracing::error!(error = %reason, "after a reconnect: the store may evict keys without a TTL; not ready");
        }
        *self.evicting.lock().unwrap_or_else(|e| e.into_inner()) = refused;
        Ok(())
    }
}

/// Checks the Redis nodes again each time the connection to them is re-established
/// (seen as a resubscription of a channel of our own), until `cancel`. Does nothing on
/// the embedded store. On a Cluster, the subscription lives on one node, so a restart of
/// another master alone is not seen here (its identity loss still is, by `/readyz`).
pub async fn follow_reconnects(
    sanity: std::sync::Arc<StoreSanity>,
    store: SharedStore,
    cancel: CancellationToken,
) {
    if store.kind() == StoreKind::Embedded {
        return;
    }
    let channel = format!("{}:store:reconnects", store.key_prefix());
    let mut subscription = match store.subscribe(&channel).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot follow store reconnects: node settings are checked at start only");
            return;
        }
    };
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => return,
            event = subscription.events.recv() => event,
        };
        match event {
            None => return,
            Some(SubscriptionEvent::Message(_)) => continue,
            Some(SubscriptionEvent::Resubscribed) => {}
        }
        for _ in 0..RECHECK_ATTEMPTS {
            match sanity.recheck(&*store).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "node check after a reconnect failed; retrying")
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(RECHECK_DELAY) => {}
            }
        }
    }
}
