//! [`InstanceInfo`]: one instance sharing the store, as the registry lists it.

use chrono::{DateTime, Utc};
use serde::Serialize;

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
