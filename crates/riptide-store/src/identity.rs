//! The store identity: a record written once into the store, so an instance can tell
//! that the store it started on has been wiped or replaced under it.
//!
//! A Redis without persistence that restarts comes back empty: every tenant and API key
//! is gone, every request gets 401, and a ping still answers. The identity record
//! (`<prefix>:store:identity`, no TTL, a durable write) turns that into something
//! visible: an instance adopts the identity it finds at start (writing a new one when
//! there is none), and [`StoreIdentity::check`] reports [`IdentityCheck::Missing`] or
//! [`IdentityCheck::Replaced`] once the store no longer holds it. The service answers
//! `/readyz` with 503 `store_identity_lost` then.
//!
//! Recovery is a restart: a restarted instance adopts whatever identity the store holds
//! now (writing one if it is empty), which is the operator saying "this store is the
//! one to use". Running instances never re-adopt by themselves, so a wipe cannot pass
//! unnoticed because some instance rewrote the record first.

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::{Durability, Store, StoreError, StoreResult};

/// Gauge: 1 while the identity this instance adopted at start is gone from the store.
pub const LOST_GAUGE: &str = "store_identity_lost";

/// The identity record's key under the store's key prefix.
pub fn identity_key(prefix: &str) -> String {
    format!("{prefix}:store:identity")
}

/// One store's identity, as written at its first start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreIdentity {
    /// 128 random bits, hex.
    pub id: String,
    /// When it was written, ms since the Unix epoch.
    pub created_ms: u64,
}

/// How [`StoreIdentity::adopt`] got its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adopted {
    /// The store already held one.
    Found,
    /// The store held none; this instance wrote it.
    Created,
}

/// What [`StoreIdentity::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityCheck {
    /// The store still holds the identity adopted at start.
    Same,
    /// The store holds no identity: it was wiped (or restarted without persistence).
    Missing,
    /// The store holds another identity: it was replaced; with the id found.
    Replaced(String),
}

impl IdentityCheck {
    /// Stable lower-case name, for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            IdentityCheck::Same => "same",
            IdentityCheck::Missing => "missing",
            IdentityCheck::Replaced(_) => "replaced",
        }
    }
}

impl StoreIdentity {
    /// Reads the store's identity, writing a new one when there is none. Two instances
    /// starting together on an empty store adopt the same one (the write is `SET NX`).
    pub async fn adopt(store: &dyn Store, clock: &dyn Clock) -> StoreResult<(Self, Adopted)> {
        let key = identity_key(store.key_prefix());
        let fresh = StoreIdentity {
            id: hex::encode(rand::random::<[u8; 16]>()),
            created_ms: clock.now_ms(),
        };
        let encoded = serde_json::to_vec(&fresh)
            .map_err(|e| StoreError::Backend(format!("encoding the store identity: {e}")))?;
        if store
            .set_if_absent(&key, &encoded, None, Durability::Durable)
            .await?
        {
            return Ok((fresh, Adopted::Created));
        }
        match read(store).await? {
            Some(found) => Ok((found, Adopted::Found)),
            // Deleted between our two calls: a wipe while starting; refuse to guess.
            None => Err(StoreError::Unavailable(
                "the store identity vanished while starting".into(),
            )),
        }
    }

    /// Compares the store's identity with this one.
    pub async fn check(&self, store: &dyn Store) -> StoreResult<IdentityCheck> {
        Ok(match read(store).await? {
            Some(found) if found.id == self.id => IdentityCheck::Same,
            Some(found) => IdentityCheck::Replaced(found.id),
            None => IdentityCheck::Missing,
        })
    }
}

/// The store's identity record, if any. A record that does not parse counts as another
/// identity, never as this one.
async fn read(store: &dyn Store) -> StoreResult<Option<StoreIdentity>> {
    let Some(raw) = store.get(&identity_key(store.key_prefix())).await? else {
        return Ok(None);
    };
    Ok(Some(serde_json::from_slice(&raw).unwrap_or(
        StoreIdentity {
            id: format!("unreadable:{}", hex::encode(blake3::hash(&raw).as_bytes())),
            created_ms: 0,
        },
    )))
}
