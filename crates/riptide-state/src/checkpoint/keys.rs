//! The manager's side of the keys file: remembering the keys new checkpoints were
//! sealed with, forgetting deleted tenants', and the key ring a restore opens with.

use super::error::task_err;
use super::keys_file::KeysFile;
use super::seal::StoredKey;
use super::zset_pages::zset_all;
use super::{CheckpointError, CheckpointManager, open};
use riptide_store::tenant_id::TenantId;
use riptide_tenant::tombstones;

impl CheckpointManager {
    /// Drops every checkpoint key of `tenant` from the keys file (the tenant was
    /// deleted): its parts of every checkpoint here can no longer be opened. Returns
    /// whether the file held one.
    pub async fn forget_tenant_keys(&self, tenant: &str) -> Result<bool, CheckpointError> {
        let tenant = tenant.to_owned();
        self.edit_keys_file(move |file| file.remove(&tenant)).await
    }

    /// Drops from the keys file the keys of tenants deleted after the key was made (a
    /// tombstone says so): catches up with deletions this instance did not hear of.
    /// Returns how many keys were dropped.
    pub async fn prune_keys(&self) -> Result<usize, CheckpointError> {
        // One read of the tombstones (bounded by the audit retention), not one per
        // tenant of the keys file: this runs before every checkpoint.
        let store = &*self.store;
        let deleted: std::collections::HashMap<String, i64> =
            zset_all(store, &tombstones::tenants_key(store.key_prefix()))
                .await?
                .into_iter()
                .collect();
        if deleted.is_empty() {
            return Ok(0);
        }
        let removed = self
            .edit_keys_file(move |file| file.prune(|t| deleted.get(t).copied()))
            .await?;
        if removed > 0 {
            tracing::info!(
                checkpoint.keys_dropped = removed,
                "checkpoint keys of deleted tenants dropped"
            );
        }
        Ok(removed)
    }

    /// Adds the keys a new checkpoint was sealed with to the keys file.
    pub(super) async fn remember_keys(
        &self,
        keys: Vec<(TenantId, StoredKey)>,
    ) -> Result<(), CheckpointError> {
        self.edit_keys_file(move |file| {
            keys.iter()
                .filter(|(tenant, key)| file.add(tenant.as_str(), key))
                .count()
        })
        .await
        .map(|_| ())
    }

    /// Reads the keys file, applies `change`, and rewrites it when `change` reports a
    /// change (`true` or a non-zero count).
    async fn edit_keys_file<T, F>(&self, change: F) -> Result<T, CheckpointError>
    where
        T: Changed + Send + 'static,
        F: FnOnce(&mut KeysFile) -> T + Send + 'static,
    {
        let (dir, lock) = (self.dir.clone(), self.keys_file.clone());
        tokio::task::spawn_blocking(move || {
            let _one_at_a_time = lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut file = KeysFile::load(&dir)?;
            let outcome = change(&mut file);
            if outcome.changed() {
                file.save(&dir)?;
            }
            Ok(outcome)
        })
        .await
        .map_err(task_err)?
        .map_err(CheckpointError::Keys)
    }

    /// The keys a restore may open sealed parts with, after dropping those of tenants
    /// deleted since (so a deletion this instance missed still shreds).
    pub(super) async fn key_ring(&self) -> Result<open::KeyRing, CheckpointError> {
        let master = self.master.load_full().map(|m| (*m).clone());
        if master.is_some() {
            self.prune_keys().await?;
        }
        let dir = self.dir.clone();
        let file = tokio::task::spawn_blocking(move || KeysFile::load(&dir))
            .await
            .map_err(task_err)?
            .map_err(CheckpointError::Keys)?;
        Ok(open::KeyRing::new(master, file, self.store.clone()))
    }
}

/// What a change of the keys file reports: whether it changed anything.
trait Changed {
    fn changed(&self) -> bool;
}

impl Changed for bool {
    fn changed(&self) -> bool {
        *self
    }
}

impl Changed for usize {
    fn changed(&self) -> bool {
        *self > 0
    }
}
