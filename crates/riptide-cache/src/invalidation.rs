//! [`Invalidation`]: what makes L1 entries untrustworthy, as the cache announces it and
//! the sync layer carries it (the calls that invalidate are in `invalidate.rs`).

use riptide_store::keys::Scope;

/// A change that makes L1 entries untrustworthy; applied locally by the cache itself and
/// on other instances through `PersistentCacheManager::apply_remote_invalidation`.
/// Serializable: the sync layer carries it between instances.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Invalidation {
    /// One entry, by its store key.
    Key {
        /// The full store key of the entry.
        store_key: String,
    },
    /// Every entry of `scope` carrying `tag`.
    Tag {
        /// Whose entries.
        scope: Scope,
        /// The tag.
        tag: String,
    },
    /// Every entry of `scope` in `namespace`.
    Namespace {
        /// Whose entries.
        scope: Scope,
        /// The namespace.
        namespace: String,
    },
    /// Every entry of `scope`.
    Scope(Scope),
    /// Everything in L1 (after messages may have been lost).
    All,
}
