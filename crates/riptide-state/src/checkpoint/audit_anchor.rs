//! The audit anchor of a checkpoint: the audit chain's length and head hash at the time,
//! kept in the checkpoint's meta line, outside the store an attacker may rewrite.

use riptide_store::Store;
use riptide_tenant::audit::{ChainTip, stored_tip};

/// The audit chain's end as `store`'s head key names it; `None` (logged) when there is
/// no chain yet or the head cannot be read, which does not stop the checkpoint.
pub(super) async fn audit_anchor(store: &dyn Store) -> Option<ChainTip> {
    match stored_tip(store).await {
        Ok(tip) => tip,
        Err(e) => {
            tracing::warn!(error = %e, "checkpoint without an audit anchor: the audit head is unreadable");
            None
        }
    }
}
