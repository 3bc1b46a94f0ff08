//! What checkpoints are listed, created with and restored into: the public types of
//! [`super::CheckpointManager`]'s answers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::diff::RestoreObject;

/// What a checkpoint carries besides the store's data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointExtra {
    /// The running configuration document.
    pub config: Option<serde_json::Value>,
    /// Cache keys to warm after a restore: `(tenant, key)`.
    pub warm_list: Vec<(Option<String>, String)>,
}

/// One checkpoint file, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// The id (file name without `.ckpt`).
    pub id: String,
    /// When it was taken (from its header; from its id when the header is unreadable).
    pub created_at: DateTime<Utc>,
    /// File size.
    pub size_bytes: u64,
    /// Tenants in it (0 when invalid).
    pub tenants: u64,
    /// Sessions in it (0 when invalid).
    pub sessions: u64,
    /// Header, version and checksum verified.
    pub valid: bool,
    /// Why it is invalid.
    pub problem: Option<String>,
}

/// Kinds of objects a checkpoint restores, as counted in a [`RestoreReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// Registry entries (`<p>:tenants` members).
    Registry,
    /// Tenant records (`meta`).
    Tenant,
    /// Wrapped data keys (`dek`).
    DataKey,
    /// Quota overrides (`q` counters).
    Quota,
    /// Storage counters (`storage`).
    Storage,
    /// API key records (`key:<id>`).
    ApiKey,
    /// API key index members (`keys`).
    ApiKeyIndex,
    /// API key lookup records (`<p>:apikey:<hash>`).
    ApiKeyLookup,
    /// Usage counters (`usage:YYYY-MM`).
    Usage,
    /// Usage month index members (`usage_months`).
    UsageMonth,
    /// Sessions (record and index entry).
    Session,
}

impl RecordKind {
    /// Every kind, in report order.
    pub const ALL: [RecordKind; 11] = [
        RecordKind::Registry,
        RecordKind::Tenant,
        RecordKind::DataKey,
        RecordKind::Quota,
        RecordKind::Storage,
        RecordKind::ApiKey,
        RecordKind::ApiKeyIndex,
        RecordKind::ApiKeyLookup,
        RecordKind::Usage,
        RecordKind::UsageMonth,
        RecordKind::Session,
    ];

    /// Stable lower-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            RecordKind::Registry => "registry",
            RecordKind::Tenant => "tenant",
            RecordKind::DataKey => "data_key",
            RecordKind::Quota => "quota",
            RecordKind::Storage => "storage",
            RecordKind::ApiKey => "api_key",
            RecordKind::ApiKeyIndex => "api_key_index",
            RecordKind::ApiKeyLookup => "api_key_lookup",
            RecordKind::Usage => "usage",
            RecordKind::UsageMonth => "usage_month",
            RecordKind::Session => "session",
        }
    }
}

/// What a restore did (or, in a dry run, would do) to one kind of object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCounts {
    /// Absent from the store: created.
    pub create: u64,
    /// Present but different: overwritten.
    pub overwrite: u64,
    /// Already equal: left alone.
    pub unchanged: u64,
    /// Different, but the store's copy is newer (or never replaced): kept.
    #[serde(default)]
    pub kept_newer: u64,
    /// Deleted or revoked since the checkpoint (a tombstone names it): not written.
    #[serde(default)]
    pub refused: u64,
}

/// The outcome of [`CheckpointManager::restore`](super::CheckpointManager::restore).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RestoreReport {
    /// The checkpoint.
    pub id: String,
    /// Nothing was written.
    pub dry_run: bool,
    /// When the checkpoint was taken.
    pub created_at: DateTime<Utc>,
    /// Tenants in the checkpoint.
    pub tenants: u64,
    /// Sessions in the checkpoint.
    pub sessions: u64,
    /// Per kind: created, overwritten, unchanged, kept because newer, refused.
    pub kinds: BTreeMap<RecordKind, KindCounts>,
    /// Every object not left as it is, with what happens to it: kept and refused ones
    /// first (at most [`MAX_OBJECTS_LISTED`](super::MAX_OBJECTS_LISTED)), then created and overwritten ones (as
    /// many).
    #[serde(default)]
    pub objects: Vec<RestoreObject>,
    /// How many objects are not left as they are (all counted, listed or not).
    #[serde(default)]
    pub objects_total: u64,
    /// Sessions not restored because they expired since the checkpoint.
    pub sessions_expired: u64,
    /// Tenants registered in the store but not in the checkpoint (left alone); at most
    /// the first 1,000.
    pub extra_tenants: Vec<String>,
    /// How many such tenants there are.
    pub extra_tenants_total: u64,
    /// Tenants in the checkpoint whose sealed data can no longer be opened: they were
    /// deleted and their checkpoint key destroyed. Nothing of them is restored.
    #[serde(default)]
    pub shredded_tenants: Vec<String>,
    /// The configuration document saved with the checkpoint (not applied here).
    pub config: Option<serde_json::Value>,
    /// The warm list saved with the checkpoint.
    pub warm_list: Vec<(Option<String>, String)>,
    /// Wall time of the restore, ms.
    pub duration_ms: u64,
}

impl RestoreReport {
    /// The counts of `kind` (zero when none).
    pub fn counts(&self, kind: RecordKind) -> KindCounts {
        self.kinds.get(&kind).copied().unwrap_or_default()
    }

    /// Objects created plus overwritten, over every kind.
    pub fn changes(&self) -> u64 {
        self.kinds.values().map(|c| c.create + c.overwrite).sum()
    }

    /// Objects kept because newer plus refused, over every kind.
    pub fn protected(&self) -> u64 {
        self.kinds.values().map(|c| c.kept_newer + c.refused).sum()
    }
}
