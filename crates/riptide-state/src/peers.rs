//! What the state manager needs of the other instances sharing its store, without
//! knowing how they are reached: the sync layer's `DistributedSync` implements [`Peers`]
//! (`coordination.rs`) and [`StateManager::attach_sync`](crate::StateManager::attach_sync)
//! installs it; tests install doubles. Without peers the instance is alone: reloads stay
//! local and the state report lists no instances.

use async_trait::async_trait;
use riptide_sync::InstanceInfo;

/// A failure reaching the other instances.
pub type PeerError = Box<dyn std::error::Error + Send + Sync>;

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
