//! What the state manager needs of the other instances sharing its store, without
//! knowing how they are reached: the sync layer (above this one) implements [`Peers`]
//! and installs itself with `DistributedSync::attach_state`. Without peers the
//! instance is alone: reloads stay local and the state report lists no instances.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A failure reaching the other instances.
pub type PeerError = Box<dyn std::error::Error + Send + Sync>;

/// One instance sharing the store, as the registry last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceInfo {
    /// The instance id.
    pub id: String,
    /// Its last heartbeat.
    pub last_seen: DateTime<Utc>,
    /// Heard from within `instance_ttl_ms`.
    pub alive: bool,
    /// This is the instance that answered.
    pub is_self: bool,
    /// When it started, from its record (absent once the record expired).
    pub started_at: Option<DateTime<Utc>>,
    /// Its process id, from its record.
    pub pid: Option<u32>,
    /// Its crate version, from its record.
    pub version: Option<String>,
}

/// The other instances, as the state manager uses them.
#[async_trait]
pub trait Peers: Send + Sync + 'static {
    /// This instance's id.
    fn instance_id(&self) -> String;
    /// Every instance sharing the store, as last seen.
    async fn instances(&self) -> Result<Vec<InstanceInfo>, PeerError>;
    /// The instance holding singleton job `job`, if known.
    fn leader(&self, job: &str) -> Option<String>;
    /// Asks every other instance to reload its configuration.
    async fn request_reload(&self, requested_by: &str) -> Result<(), PeerError>;
    /// Leaves the group (the last step of a shutdown).
    async fn leave(&self);
}
