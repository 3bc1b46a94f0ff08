//! The stored records of keys (per-tenant key records, global lookup records and the
//! tenant's index) and the store operations on them.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::format::{Digest, is_key_id};
use super::{ApiKeyInfo, ApiKeys, CHUNK, MAX_LABEL_CHARS};
use crate::error::{TenantError, TenantResult};
use riptide_store::keys::{Scope, ScopeKeys, records};
use riptide_store::tenant_id::TenantId;
use riptide_store::{Durability, SharedStore};

/// The per-tenant key record as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct KeyRecord {
    pub(super) key_id: String,
    pub(super) label: Option<String>,
    pub(super) display_prefix: String,
    /// Lower-case hex of `HMAC-SHA256(pepper, secret)`.
    pub(super) hash_hex: String,
    pub(super) created_at: DateTime<Utc>,
    pub(super) last_used_at: Option<DateTime<Utc>>,
    pub(super) expires_at: Option<DateTime<Utc>>,
    pub(super) revoked_at: Option<DateTime<Utc>>,
}

impl KeyRecord {
    pub(super) fn info(&self) -> ApiKeyInfo {
        ApiKeyInfo {
            key_id: self.key_id.clone(),
            label: self.label.clone(),
            display_prefix: self.display_prefix.clone(),
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
        }
    }

    pub(super) fn expired_at(&self, now_ms: u64) -> bool {
        self.expires_at.is_some_and(|e| now_ms >= ms_of(e))
    }

    pub(super) fn digest(&self) -> Option<Digest> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&self.hash_hex, &mut out).ok()?;
        Some(out)
    }
}

/// The global lookup record: which tenant's which key a hash belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct LookupRecord {
    pub(super) tenant_id: TenantId,
    pub(super) key_id: String,
}

impl ApiKeys {
    pub(super) fn lookup_key(&self, digest: &Digest) -> String {
        format!("{}:apikey:{}", self.store.key_prefix(), hex::encode(digest))
    }

    /// The record key of `key_id`; a malformed id cannot name a key, so it is NotFound.
    pub(super) fn record_key(&self, tenant: &TenantId, key_id: &str) -> TenantResult<String> {
        if !is_key_id(key_id) {
            return Err(not_found(key_id));
        }
        Ok(scope(&self.store, tenant).record(&records::api_key(key_id)))
    }

    /// Reads, changes and compare-and-swaps a key record. `change` returns whether it
    /// changed anything (nothing is written otherwise). `None` when the record is absent.
    pub(super) async fn update_record(
        &self,
        record_key: &str,
        attempts: usize,
        mut change: impl FnMut(&mut KeyRecord) -> bool,
    ) -> TenantResult<Option<KeyRecord>> {
        for _ in 0..attempts {
            let Some(old) = self.store.get(record_key).await? else {
                return Ok(None);
            };
            let mut record: KeyRecord = parse(record_key, &old)?;
            if !change(&mut record) {
                return Ok(Some(record));
            }
            let new = to_json(&record)?;
            if self
                .store
                .compare_and_swap(record_key, Some(&old), Some(&new), Durability::Durable)
                .await?
            {
                return Ok(Some(record));
            }
        }
        Err(TenantError::Conflict(record_key.to_owned()))
    }

    /// Every key record of the scope's index, as `(record key, bytes)`; a member whose
    /// record is missing has `None`.
    pub(super) async fn load_all(
        &self,
        keys: &ScopeKeys,
    ) -> TenantResult<Vec<(String, Option<Bytes>)>> {
        let index = keys.record(records::API_KEY_INDEX);
        let mut out = Vec::new();
        let mut offset = 0u64;
        loop {
            let page = self.store.zset_range(&index, offset, CHUNK as u64).await?;
            let n = page.len();
            let record_keys: Vec<String> = page
                .into_iter()
                .map(|(id, _)| keys.record(&records::api_key(&id)))
                .collect();
            let values = self.store.get_many(&record_keys).await?;
            out.extend(record_keys.into_iter().zip(values));
            if n < CHUNK {
                return Ok(out);
            }
            offset += n as u64;
        }
    }

    /// Deletes lookup records (one per call: they live on different Cluster slots).
    pub(super) async fn delete_lookups(&self, digests: &[Digest]) -> TenantResult<()> {
        for digest in digests {
            self.auth_cache.invalidate(digest);
        }
        // One call: the store deletes keys of several slots itself (and the future stays
        // `Send`, so handlers on spawned tasks can revoke keys).
        let lookups: Vec<String> = digests.iter().map(|d| self.lookup_key(d)).collect();
        if !lookups.is_empty() {
            self.store.delete(&lookups).await?;
        }
        for digest in digests {
            self.auth_cache.invalidate(digest);
        }
        Ok(())
    }

    /// Removes the tenant's revoked and expired keys, and index members without a
    /// record. Returns how many index members went.
    pub(super) async fn purge_dead(&self, tenant: &TenantId) -> TenantResult<u64> {
        let keys = scope(&self.store, tenant);
        let now_ms = self.clock.now_ms();
        let mut dead_ids = Vec::new();
        let mut dead_keys = Vec::new();
        let mut dead_digests = Vec::new();
        for (record_key, bytes) in self.load_all(&keys).await? {
            let record = match bytes {
                Some(bytes) => parse::<KeyRecord>(&record_key, &bytes)?,
                None => {
                    if let Some(id) = record_key.rsplit_once("key:").map(|(_, id)| id.to_owned()) {
                        dead_ids.push(id);
                    }
                    continue;
                }
            };
            if record.revoked_at.is_some() || record.expired_at(now_ms) {
                dead_digests.extend(record.digest());
                dead_ids.push(record.key_id.clone());
                dead_keys.push(record_key);
            }
        }
        self.delete_lookups(&dead_digests).await?;
        for chunk in dead_keys.chunks(CHUNK) {
            self.store.delete(chunk).await?;
        }
        let index = keys.record(records::API_KEY_INDEX);
        let mut removed = 0;
        for chunk in dead_ids.chunks(CHUNK) {
            removed += self.store.zset_remove(&index, chunk).await?;
        }
        if removed > 0 {
            tracing::info!(tenant.id = %tenant, api_keys = removed, "purged revoked and expired api keys");
        }
        Ok(removed)
    }
}

pub(super) fn scope(store: &SharedStore, tenant: &TenantId) -> ScopeKeys {
    ScopeKeys::new(store.key_prefix(), &Scope::Tenant(tenant.clone()))
}

pub(super) fn validate_label(label: Option<&str>) -> TenantResult<Option<String>> {
    let Some(label) = label else {
        return Ok(None);
    };
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(TenantError::InvalidField {
            field: "label",
            reason: format!("longer than {MAX_LABEL_CHARS} characters"),
        });
    }
    if label.chars().any(char::is_control) {
        return Err(TenantError::InvalidField {
            field: "label",
            reason: "contains control characters".to_owned(),
        });
    }
    Ok(Some(label.to_owned()))
}

pub(super) fn not_found(key_id: &str) -> TenantError {
    TenantError::NotFound {
        what: "api key",
        id: riptide_store::tenant_id::truncate_for_error(key_id),
    }
}

pub(super) fn corrupt(key: &str, reason: impl Into<String>) -> TenantError {
    TenantError::Corrupt {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

pub(super) fn parse<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> TenantResult<T> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(key, e.to_string()))
}

pub(super) fn to_json<T: Serialize>(value: &T) -> TenantResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| TenantError::Corrupt {
        key: "<encode>".to_owned(),
        reason: e.to_string(),
    })
}

/// Clock milliseconds as a time (the epoch for a value chrono cannot hold).
pub(super) fn datetime(ms: u64) -> DateTime<Utc> {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_default()
}

/// A time as clock milliseconds (0 before the epoch).
pub(super) fn ms_of(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or(0)
}

pub(super) fn score(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}
