//! The checkpoint directory's keys file, `checkpoint-keys.json` (mode `0600`): every
//! checkpoint key its checkpoints were sealed with, wrapped by the master key, per
//! tenant. It lets a checkpoint be restored onto a store that lost its data; without
//! the master key it opens nothing.
//!
//! A tenant's entries leave it when the tenant is deleted: at once on this instance's
//! deletion, and on the deletion event from another instance; and every checkpoint and
//! every start drops the keys of tenants a tombstone says were deleted after the key
//! was created (an instance that missed the event). From then on the tenant's parts
//! in every checkpoint of the directory are shredded.
//!
//! ```json
//! {"version": 1, "tenants": {"acme": [{"id": "…", "created_ms": 1764900000000, "wrapped": "…"}]}}
//! ```
//!
//! The file is small (one entry per tenant, another only when a tenant's key record was
//! lost and made again) and rewritten whole, atomically.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::seal::StoredKey;

/// File name of the keys file in the checkpoint directory.
pub const KEYS_FILE: &str = "checkpoint-keys.json";

/// The only version written and read.
const VERSION: u32 = 1;

/// Largest keys file read (a forged file cannot make a restore buffer more).
const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The keys file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    version: u32,
    /// Keys per tenant id.
    pub tenants: BTreeMap<String, Vec<StoredKey>>,
}

/// The keys file's path in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(KEYS_FILE)
}

impl KeysFile {
    /// Reads the keys file of `dir`; an absent file is empty. A file that is not a keys
    /// file is an error: rewriting it would shred every tenant.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let path = path(dir);
        let raw = match std::fs::metadata(&path) {
            Ok(m) if m.len() > MAX_BYTES => {
                return Err(format!(
                    "{} is larger than {MAX_BYTES} bytes",
                    path.display()
                ));
            }
            Ok(_) => std::fs::read(&path),
            Err(e) => Err(e),
        };
        match raw {
            Ok(raw) => {
                let file: KeysFile = serde_json::from_slice(&raw).map_err(|e| {
                    format!("{} is not a checkpoint keys file: {e}", path.display())
                })?;
                if file.version != VERSION {
                    return Err(format!(
                        "{} has version {}; this build reads {VERSION}",
                        path.display(),
                        file.version
                    ));
                }
                Ok(file)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Self {
                version: VERSION,
                tenants: BTreeMap::new(),
            }),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Writes it to `dir` atomically (mode `0600`; the directory `0700`).
    pub fn save(&self, dir: &Path) -> Result<(), String> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        riptide_store::private_fs::write_atomic(&path(dir), &json)
            .map_err(|e| format!("cannot write {}: {e}", path(dir).display()))
    }

    /// Adds `key` for `tenant` unless it is there; returns whether it was added.
    pub fn add(&mut self, tenant: &str, key: &StoredKey) -> bool {
        let keys = self.tenants.entry(tenant.to_owned()).or_default();
        if keys.iter().any(|k| k.id == key.id) {
            return false;
        }
        keys.push(key.clone());
        true
    }

    /// Drops every key of `tenant`; returns whether there was one.
    pub fn remove(&mut self, tenant: &str) -> bool {
        self.tenants.remove(tenant).is_some()
    }

    /// Drops the keys created before their tenant's deletion (`deleted_at(tenant)`, ms,
    /// when a tombstone names it); returns how many.
    pub fn prune(&mut self, deleted_at: impl Fn(&str) -> Option<i64>) -> usize {
        let mut removed = 0;
        self.tenants.retain(|tenant, keys| {
            if let Some(at) = deleted_at(tenant) {
                let before = keys.len();
                keys.retain(|k| k.created_ms > at);
                removed += before - keys.len();
            }
            !keys.is_empty()
        });
        removed
    }

    /// The key `id` of `tenant`, if kept.
    pub fn get(&self, tenant: &str, id: &str) -> Option<&StoredKey> {
        self.tenants.get(tenant)?.iter().find(|k| k.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, created_ms: i64) -> StoredKey {
        StoredKey {
            id: id.into(),
            created_ms,
            wrapped: "AA==".into(),
        }
    }

    #[test]
    fn round_trip_add_remove_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = KeysFile::load(dir.path()).unwrap();
        assert!(file.add("a", &key("k1", 10)));
        assert!(!file.add("a", &key("k1", 10)));
        assert!(file.add("a", &key("k2", 30)));
        assert!(file.add("b", &key("k3", 10)));
        file.save(dir.path()).unwrap();
        let mut back = KeysFile::load(dir.path()).unwrap();
        assert_eq!(back, file);
        // "a" deleted at 20 (its later key belongs to a re-created "a"), "b" never.
        let pruned = back.prune(|t| (t == "a").then_some(20));
        assert_eq!(pruned, 1);
        assert!(back.get("a", "k1").is_none() && back.get("a", "k2").is_some());
        assert!(back.remove("b") && !back.remove("b"));
        assert_eq!(back.tenants.len(), 1);
    }

    #[test]
    fn a_damaged_file_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), b"{\"version\": 1, \"tenants\": {\"a\": [").unwrap();
        assert!(KeysFile::load(dir.path()).is_err());
        std::fs::write(path(dir.path()), b"{\"version\": 7, \"tenants\": {}}").unwrap();
        let err = KeysFile::load(dir.path()).unwrap_err();
        assert!(err.contains("version 7"), "{err}");
    }
}
