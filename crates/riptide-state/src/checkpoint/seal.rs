//! Crypto-shredding of checkpoints (issue 10, item 2): every tenant's lines are sealed
//! with that tenant's own checkpoint key, so deleting the key shreds the tenant in every
//! retained checkpoint at once.
//!
//! A tenant's checkpoint key is a random AES-256-GCM key, wrapped by the master key
//! (bound to `<tenant>/checkpoint`) and kept in two places, never in a checkpoint:
//!
//! - the record `<p>:tenant:{<id>}:ckpt_key`, shared by the instances, created by the
//!   first checkpoint that includes the tenant and removed in the tenant's atomic
//!   deletion;
//! - the checkpoint directory's keys file (`keys_file.rs`), so checkpoints stay
//!   restorable onto a store that lost its data; a tenant's entries leave it when the
//!   tenant is deleted.
//!
//! A sealed part is one body line ([`Line::Sealed`]) holding up to about 256 KiB of the
//! tenant's plain lines. What is bound into its authentication (the checkpoint id, the
//! tenant, the key id, the part's number, whether it holds the registry entry and how
//! many sessions) cannot be changed or moved to another checkpoint or tenant without
//! the part failing to open.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::CheckpointError;
use super::format::{B64, Line};
use riptide_store::keys::{Scope, ScopeKeys, records};
use riptide_store::tenant_id::TenantId;
use riptide_store::{Durability, Store};
use riptide_tenant::crypto::{DataKey, MasterKey};

/// Record suffix of a tenant's checkpoint key.
pub const KEY_RECORD: &str = records::CHECKPOINT_KEY;

/// Context bound into every sealed part.
const AAD_CONTEXT: &[u8] = b"riptide checkpoint part v2";

/// A tenant's checkpoint key as stored: in its record and in the keys file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredKey {
    /// Random id (16 hex digits), named by every part it seals.
    pub id: String,
    /// When it was created, Unix ms: a deletion after it shreds it.
    pub created_ms: i64,
    /// The key wrapped by the master key (base64).
    pub wrapped: String,
}

impl StoredKey {
    /// Unwraps the key for `tenant`.
    pub fn unwrap(&self, master: &MasterKey, tenant: &str) -> Result<DataKey, String> {
        let wrapped = STANDARD
            .decode(&self.wrapped)
            .map_err(|e| format!("checkpoint key {} of tenant {tenant}: {e}", self.id))?;
        master
            .unwrap(&wrapped, &wrap_context(tenant))
            .map_err(|e| format!("checkpoint key {} of tenant {tenant}: {e}", self.id))
    }
}

fn wrap_context(tenant: &str) -> String {
    format!("{tenant}/checkpoint")
}

/// The record key of `tenant`'s checkpoint key.
pub fn key_record(prefix: &str, tenant: &TenantId) -> String {
    ScopeKeys::new(prefix, &Scope::Tenant(tenant.clone())).record(KEY_RECORD)
}

/// `tenant`'s checkpoint key record, if the store has one.
pub(super) async fn stored_key(
    store: &dyn Store,
    tenant: &TenantId,
) -> Result<Option<StoredKey>, CheckpointError> {
    let Some(raw) = store.get(&key_record(store.key_prefix(), tenant)).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&raw).map(Some).map_err(|e| {
        CheckpointError::Keys(format!("the checkpoint key record of tenant {tenant}: {e}"))
    })
}

/// `tenant`'s checkpoint key from the store, created when it has none (two instances
/// racing agree on the first one written). One read when it exists.
pub(super) async fn tenant_key(
    store: &dyn Store,
    master: &MasterKey,
    tenant: &TenantId,
    now_ms: u64,
) -> Result<(StoredKey, DataKey), CheckpointError> {
    let damaged = |reason: String| CheckpointError::Keys(reason);
    let stored = match stored_key(store, tenant).await? {
        Some(stored) => stored,
        None => {
            let key = DataKey::generate();
            let wrapped = master
                .wrap(&key, &wrap_context(tenant.as_str()))
                .map_err(|e| damaged(e.to_string()))?;
            let stored = StoredKey {
                id: hex::encode(rand::random::<[u8; 8]>()),
                created_ms: i64::try_from(now_ms).unwrap_or(i64::MAX),
                wrapped: STANDARD.encode(wrapped),
            };
            let json = serde_json::to_vec(&stored).map_err(|e| damaged(e.to_string()))?;
            // Not fsynced (a first sealed checkpoint of 10,000 tenants would otherwise
            // wait for 10,000 commits): the keys file is fsynced before the checkpoint
            // is renamed into place, so a record lost in a crash costs only a new key.
            let record = key_record(store.key_prefix(), tenant);
            store
                .set_if_absent(&record, &json, None, Durability::Cache)
                .await?;
            // Another instance may have written first: its key is the one.
            stored_key(store, tenant).await?.ok_or_else(|| {
                damaged(format!(
                    "the checkpoint key of tenant {tenant} vanished while it was created (tenant deleted meanwhile?)"
                ))
            })?
        }
    };
    let key = stored.unwrap(master, tenant.as_str()).map_err(damaged)?;
    Ok((stored, key))
}

/// What binds a part to its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartFacts<'a> {
    /// The checkpoint id.
    pub checkpoint: &'a str,
    /// The tenant.
    pub tenant: &'a str,
    /// The key's id.
    pub key: &'a str,
    /// The part's number within the tenant, from 0.
    pub seq: u64,
    /// Whether it holds the tenant's registry entry.
    pub registry: bool,
    /// Sessions it holds.
    pub sessions: u64,
}

impl PartFacts<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut aad = AAD_CONTEXT.to_vec();
        for field in [self.checkpoint, self.tenant, self.key] {
            aad.extend_from_slice(&(field.len() as u64).to_le_bytes());
            aad.extend_from_slice(field.as_bytes());
        }
        aad.extend_from_slice(&self.seq.to_le_bytes());
        aad.push(u8::from(self.registry));
        aad.extend_from_slice(&self.sessions.to_le_bytes());
        aad
    }
}

/// zstd level of a part before it is sealed: ciphertext does not compress, so the
/// file's own compression gains nothing on sealed parts.
const PART_ZSTD_LEVEL: i32 = 3;

/// Largest opened part (a forged part cannot make a restore allocate more).
const MAX_PART_PLAIN: usize = super::format::MAX_LINE_BYTES;

/// Compresses and seals `plain` (complete body lines) into one [`Line::Sealed`].
pub(super) fn seal_part(
    key: &DataKey,
    facts: PartFacts<'_>,
    plain: &[u8],
) -> Result<Line<'static>, CheckpointError> {
    let mut packed = zstd::bulk::compress(plain, PART_ZSTD_LEVEL)
        .map_err(|e| CheckpointError::Encode(format!("cannot compress a part: {e}")))?;
    let sealed = key.seal(&packed, &facts.aad());
    packed.fill(0);
    let sealed = sealed.map_err(|_| {
        CheckpointError::Encode(format!("cannot seal a part of tenant {}", facts.tenant))
    })?;
    Ok(Line::Sealed {
        tenant: facts.tenant.to_owned().into(),
        key: facts.key.to_owned().into(),
        seq: facts.seq,
        registry: facts.registry,
        sessions: facts.sessions,
        data: B64(sealed.into()),
    })
}

/// Opens a part sealed by [`seal_part`]: its plain body lines.
pub(super) fn open_part(
    key: &DataKey,
    facts: PartFacts<'_>,
    data: &[u8],
) -> Result<Vec<u8>, String> {
    let packed = key.open(data, &facts.aad()).map_err(|_| {
        format!(
            "part {} of tenant {} does not open with its checkpoint key {} (altered, or moved from another checkpoint)",
            facts.seq, facts.tenant, facts.key
        )
    })?;
    zstd::bulk::decompress(&packed, MAX_PART_PLAIN).map_err(|e| {
        format!(
            "part {} of tenant {} does not decompress within {MAX_PART_PLAIN} bytes: {e}",
            facts.seq, facts.tenant
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_opens_only_where_it_was_sealed() {
        let key = DataKey::generate();
        let facts = PartFacts {
            checkpoint: "c1",
            tenant: "acme",
            key: "k1",
            seq: 0,
            registry: true,
            sessions: 2,
        };
        let Line::Sealed { data, .. } = seal_part(&key, facts, b"lines\n").unwrap() else {
            panic!("not a sealed line");
        };
        assert_eq!(open_part(&key, facts, &data.0).unwrap(), b"lines\n");
        let moved = [
            PartFacts {
                checkpoint: "c2",
                ..facts
            },
            PartFacts {
                tenant: "other",
                ..facts
            },
            PartFacts { seq: 1, ..facts },
            PartFacts {
                registry: false,
                ..facts
            },
            PartFacts {
                sessions: 0,
                ..facts
            },
        ];
        for other in moved {
            assert!(open_part(&key, other, &data.0).is_err(), "{other:?}");
        }
        assert!(open_part(&DataKey::generate(), facts, &data.0).is_err());
    }

    #[test]
    fn a_stored_key_unwraps_only_for_its_tenant_and_master() {
        let master = MasterKey::generate();
        let key = DataKey::generate();
        let stored = StoredKey {
            id: "k1".into(),
            created_ms: 1,
            wrapped: STANDARD.encode(master.wrap(&key, &wrap_context("acme")).unwrap()),
        };
        assert!(stored.unwrap(&master, "acme").is_ok());
        assert!(stored.unwrap(&master, "other").is_err());
        assert!(stored.unwrap(&MasterKey::generate(), "acme").is_err());
    }
}
