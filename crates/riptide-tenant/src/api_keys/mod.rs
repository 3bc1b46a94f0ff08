//! Tenants' API keys: create (the secret is shown once), list, revoke, rotate with an
//! overlap window, authenticate in O(1) with a constant-time comparison, and delete
//! every key of a tenant.
//!
//! A key looks like `rt_k7x2mq4ab9cd_<43 characters>`: the configured prefix (so leaked
//! keys are recognisable by secret scanners), a 12-character key id (60 bits; it names
//! the key in listings and is not secret) and 32 random bytes (256 bits) in base64url.
//! The secret is never stored or logged: the store holds `HMAC-SHA256(pepper, secret)`
//! with a server pepper (see [`super::secrets`]), so a copy of the store alone cannot be
//! used to authenticate or to test guesses offline.
//!
//! Store layout (`<p>` is the store's key prefix):
//!
//! | key | value |
//! |---|---|
//! | `<p>:apikey:<hex hmac>` | JSON `{tenant_id, key_id}`: the O(1) lookup of a presented key |
//! | `<p>:tenant:{<id>}:key:<key_id>` | JSON key record: label, display prefix, hash, times |
//! | `<p>:tenant:{<id>}:keys` | sorted set of the tenant's key ids, scored by creation ms |
//!
//! Authentication results (successes and failures) are cached in process for
//! `tenant.record_cache_ttl_ms` (at most one second), so a revocation on another
//! instance applies everywhere within that time while hot keys cost no store round
//! trip. Expiry after a rotation is checked against the injected clock on every call,
//! cached or not.

mod auth;
mod format;
mod records;

pub(crate) use self::format::{is_key_id, random_key_id};

use std::fmt;
use std::time::Duration;

use crate::expiring::ExpiringCache;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use self::auth::Cached;
use self::format::{Digest, HmacSha256, keyed_mac};
use self::records::{
    KeyRecord, LookupRecord, corrupt, datetime, ms_of, not_found, parse, scope, score, to_json,
    validate_label,
};
use super::error::{TenantError, TenantResult};
use super::registry::TENANT_RECORD;
use super::tombstones;
use crate::config::TenancyConfig;
use riptide_store::clock::SharedClock;
use riptide_store::tenant_id::TenantId;
use riptide_store::{Durability, SharedStore, StoreKind, WriteOp};

/// Characters in a key id.
pub const KEY_ID_LEN: usize = 12;

/// Random bytes in a key's secret part (256 bits).
pub const SECRET_BYTES: usize = 32;

/// Longest presented key looked at; anything longer is refused before any work.
pub const MAX_PRESENTED_LEN: usize = 200;

/// Most keys (active, rotated, revoked) a tenant may hold. When a create finds the
/// tenant at the limit, revoked and expired keys are purged first.
pub const MAX_KEYS_PER_TENANT: u64 = 1_000;

/// Longest key label, in characters.
pub const MAX_LABEL_CHARS: usize = 200;

/// `last_used_at` is written at most this often per key (ms of the injected clock).
pub const LAST_USED_INTERVAL_MS: u64 = 60_000;

/// Most presented keys whose authentication outcome is cached.
const AUTH_CACHE_CAPACITY: u64 = 100_000;

/// Most keys whose last `last_used_at` write is remembered.
const TOUCH_CACHE_CAPACITY: u64 = 100_000;

/// Attempts of a compare-and-swap update of a key record before `Conflict`.
const CAS_ATTEMPTS: usize = 16;

/// Keys per `get_many` / `delete` call and index page.
const CHUNK: usize = 256;

/// A newly created key. The only value that ever holds the secret: show it to the
/// caller once; it cannot be recovered later. `Debug` redacts it.
#[derive(Clone, Serialize)]
pub struct CreatedApiKey {
    /// The key's id (not secret), as shown by [`ApiKeys::list`].
    pub key_id: String,
    /// The full key to present as `Authorization: Bearer <secret>`.
    pub secret: String,
    /// The recognisable start of the key (`<prefix><key_id>…`), as shown in listings.
    pub display_prefix: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedApiKey")
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .field("display_prefix", &self.display_prefix)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// What a listing shows of a key: never the secret nor its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    /// The key's id.
    pub key_id: String,
    /// The label given at creation (a rotated key inherits its predecessor's).
    pub label: Option<String>,
    /// The recognisable start of the key (`<prefix><key_id>…`).
    pub display_prefix: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last authenticated (written at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Set by a rotation: the key stops working at this time.
    pub expires_at: Option<DateTime<Utc>>,
    /// Set by a revocation: the key no longer works.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKeyInfo {
    /// True when the key authenticates at `now` (neither revoked nor expired).
    pub fn is_active_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// Who a presented key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedKey {
    /// The key's tenant.
    pub tenant_id: TenantId,
    /// The key's id.
    pub key_id: String,
}

/// The API keys of every tenant, over one store.
pub struct ApiKeys {
    store: SharedStore,
    clock: SharedClock,
    pepper: Vec<u8>,
    /// The HMAC with the pepper absorbed (`None` when the pepper is unusable).
    keyed: Option<HmacSha256>,
    prefix: String,
    overlap_ms: u64,
    /// Outcome per presented key's HMAC (never the key itself).
    auth_cache: ExpiringCache<Digest, Cached>,
    /// Clock ms of the last `last_used_at` write per key's HMAC.
    touched: ExpiringCache<Digest, u64>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("prefix", &self.prefix)
            .field("overlap_ms", &self.overlap_ms)
            .field("pepper", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl ApiKeys {
    /// API keys over `store`, hashed under `pepper` (from [`super::secrets::load_pepper`];
    /// a pepper shorter than 32 bytes makes every operation fail with
    /// [`TenantError::Crypto`]). Reads `api_key_prefix`,
    /// `api_key_rotation_overlap_seconds` and `record_cache_ttl_ms` (clamped to 1..=1000)
    /// from `cfg`.
    pub fn new(
        store: SharedStore,
        clock: SharedClock,
        pepper: Vec<u8>,
        cfg: &TenancyConfig,
    ) -> Self {
        let ttl = Duration::from_millis(cfg.record_cache_ttl_ms.clamp(1, 1_000));
        Self {
            store,
            clock,
            keyed: keyed_mac(&pepper),
            pepper,
            prefix: cfg.api_key_prefix.clone(),
            overlap_ms: cfg.api_key_rotation_overlap_seconds.saturating_mul(1_000),
            auth_cache: ExpiringCache::new(AUTH_CACHE_CAPACITY, ttl),
            touched: ExpiringCache::new(
                TOUCH_CACHE_CAPACITY,
                Duration::from_millis(LAST_USED_INTERVAL_MS),
            ),
        }
    }

    /// Creates a key for `tenant` with an optional label (at most 200 characters, no
    /// control characters). The returned secret is the only copy.
    ///
    /// The caller (the tenant manager) checks that the tenant exists. A tenant holding
    /// [`MAX_KEYS_PER_TENANT`] keys even after its revoked and expired keys are purged
    /// gets [`TenantError::QuotaExceeded`] for resource `api_keys`.
    pub async fn create(
        &self,
        tenant: &TenantId,
        label: Option<&str>,
    ) -> TenantResult<CreatedApiKey> {
        let label = validate_label(label)?;
        let keys = scope(&self.store, tenant);
        let index = keys.record(riptide_store::keys::records::API_KEY_INDEX);
        let mut count = self.store.zset_len(&index).await?;
        if count >= MAX_KEYS_PER_TENANT {
            self.purge_dead(tenant).await?;
            count = self.store.zset_len(&index).await?;
            if count >= MAX_KEYS_PER_TENANT {
                return Err(TenantError::QuotaExceeded {
                    resource: "api_keys".to_owned(),
                    limit: MAX_KEYS_PER_TENANT,
                    current: count,
                    retry_after: None,
                });
            }
        }
        // A key id collides with one of the tenant's keys with probability ~2^-50; the
        // record is written with `set_if_absent`, so a collision just draws again.
        for _ in 0..4 {
            let key_id = random_key_id();
            let mut body = [0u8; SECRET_BYTES];
            rand::rng().fill_bytes(&mut body);
            let secret = format!("{}{key_id}_{}", self.prefix, URL_SAFE_NO_PAD.encode(body));
            let digest = self.mac(&secret)?;
            let now_ms = self.clock.now_ms();
            let record = KeyRecord {
                key_id: key_id.clone(),
                label: label.clone(),
                display_prefix: format!("{}{key_id}…", self.prefix),
                hash_hex: hex::encode(digest),
                created_at: datetime(now_ms),
                last_used_at: None,
                expires_at: None,
                revoked_at: None,
            };
            let record_key = keys.record(&riptide_store::keys::records::api_key(&key_id));
            let lookup = to_json(&LookupRecord {
                tenant_id: tenant.clone(),
                key_id: key_id.clone(),
            })?;
            if !self
                .write_new_key(tenant, &record_key, &to_json(&record)?, &digest, &lookup)
                .await?
            {
                continue;
            }
            tracing::info!(tenant.id = %tenant, api_key.id = %key_id, "api key created");
            return Ok(CreatedApiKey {
                key_id,
                secret,
                display_prefix: record.display_prefix,
                created_at: record.created_at,
            });
        }
        Err(TenantError::Conflict(format!(
            "api key id of tenant {tenant}"
        )))
    }

    /// Writes a new key's record, index entry and lookup record all or nothing, only
    /// while the tenant exists (a key created during the tenant's deletion is never
    /// left behind). `false` when the key id is taken. On a Cluster the lookup (a key of
    /// its own slot) is written first: a crash after it leaves a lookup whose record
    /// does not exist, which authenticates nothing.
    async fn write_new_key(
        &self,
        tenant: &TenantId,
        record_key: &str,
        record: &[u8],
        digest: &Digest,
        lookup: &[u8],
    ) -> TenantResult<bool> {
        let keys = scope(&self.store, tenant);
        let key_id = record_key.rsplit(':').next().unwrap_or_default().to_owned();
        let lookup_key = self.lookup_key(digest);
        let mut ops = vec![
            WriteOp::present(keys.record(TENANT_RECORD)),
            WriteOp::absent(record_key.to_owned()),
            WriteOp::put(record_key.to_owned(), record.to_vec()),
            WriteOp::ZsetAdd {
                key: keys.record(riptide_store::keys::records::API_KEY_INDEX),
                members: vec![(key_id, score(self.clock.now_ms()))],
            },
        ];
        let lookup_apart = self.store.kind() == StoreKind::RedisCluster;
        if lookup_apart {
            if !self
                .store
                .set_if_absent(&lookup_key, lookup, None, Durability::Durable)
                .await?
            {
                // 256 random bits collided with a live key: refuse rather than overwrite.
                return Err(TenantError::Conflict("api key lookup record".to_owned()));
            }
        } else {
            ops.push(WriteOp::absent(lookup_key.clone()));
            ops.push(WriteOp::put(lookup_key.clone(), lookup.to_vec()));
        }
        if self.store.write_atomic(&ops).await? {
            return Ok(true);
        }
        if lookup_apart {
            self.store.delete(&[lookup_key]).await?;
        }
        if self.store.get(&keys.record(TENANT_RECORD)).await?.is_none() {
            return Err(TenantError::tenant_not_found(tenant.as_str()));
        }
        Ok(false)
    }

    /// The tenant's keys, oldest first, revoked and expired ones included (see
    /// [`ApiKeyInfo::is_active_at`]). Never the secret nor its hash.
    pub async fn list(&self, tenant: &TenantId) -> TenantResult<Vec<ApiKeyInfo>> {
        let keys = scope(&self.store, tenant);
        let mut out = Vec::new();
        for (record_key, bytes) in self.load_all(&keys).await? {
            if let Some(bytes) = bytes {
                out.push(parse::<KeyRecord>(&record_key, &bytes)?.info());
            }
        }
        Ok(out)
    }

    /// One key of the tenant; another tenant's key is [`TenantError::NotFound`].
    pub async fn get(&self, tenant: &TenantId, key_id: &str) -> TenantResult<ApiKeyInfo> {
        let record_key = self.record_key(tenant, key_id)?;
        match self.store.get(&record_key).await? {
            Some(bytes) => Ok(parse::<KeyRecord>(&record_key, &bytes)?.info()),
            None => Err(not_found(key_id)),
        }
    }

    /// Revokes a key of `tenant`: it fails at once on this instance and within
    /// `record_cache_ttl_ms` on every other. Revoking a revoked key again is a no-op
    /// (and retries removing its lookup record). An unknown key id, or another
    /// tenant's, is [`TenantError::NotFound`].
    pub async fn revoke(&self, tenant: &TenantId, key_id: &str) -> TenantResult<()> {
        let record_key = self.record_key(tenant, key_id)?;
        let now = datetime(self.clock.now_ms());
        let record = self
            .update_record(&record_key, CAS_ATTEMPTS, |r| {
                if r.revoked_at.is_some() {
                    return false;
                }
                r.revoked_at = Some(now);
                true
            })
            .await?
            .ok_or_else(|| not_found(key_id))?;
        // Also on a repeated revocation, so a retry after a failure here completes it.
        let revoked_ms = record.revoked_at.map_or(self.clock.now_ms(), ms_of);
        tombstones::api_key_revoked(&*self.store, tenant, key_id, revoked_ms).await?;
        let digest = record
            .digest()
            .ok_or_else(|| corrupt(&record_key, "hash_hex is not 32 bytes of hex"))?;
        self.auth_cache.invalidate(&digest);
        self.store.delete(&[self.lookup_key(&digest)]).await?;
        self.auth_cache.invalidate(&digest);
        tracing::info!(tenant.id = %tenant, api_key.id = %key_id, "api key revoked");
        Ok(())
    }

    /// Rotates a key: the old key keeps working for
    /// `tenant.api_key_rotation_overlap_seconds` (an earlier expiry is kept), and a new
    /// key with the same label is created and returned.
    ///
    /// The old key's expiry is set first, so a failure while creating the new key
    /// leaves a working old key and the rotation can simply be retried. A revoked or
    /// already expired key is refused with [`TenantError::InvalidField`]; an unknown
    /// one, or another tenant's, is [`TenantError::NotFound`].
    pub async fn rotate(&self, tenant: &TenantId, key_id: &str) -> TenantResult<CreatedApiKey> {
        let record_key = self.record_key(tenant, key_id)?;
        let now_ms = self.clock.now_ms();
        let expires = datetime(now_ms.saturating_add(self.overlap_ms));
        let mut refused: Option<&'static str> = None;
        let record = self
            .update_record(&record_key, CAS_ATTEMPTS, |r| {
                if r.revoked_at.is_some() {
                    refused = Some("the key is revoked");
                    return false;
                }
                if r.expired_at(now_ms) {
                    refused = Some("the key has expired");
                    return false;
                }
                refused = None;
                match r.expires_at {
                    Some(e) if e <= expires => false,
                    _ => {
                        r.expires_at = Some(expires);
                        true
                    }
                }
            })
            .await?
            .ok_or_else(|| not_found(key_id))?;
        if let Some(reason) = refused {
            return Err(TenantError::InvalidField {
                field: "key_id",
                reason: reason.to_owned(),
            });
        }
        if let Some(digest) = record.digest() {
            // The cached outcome does not know the new expiry yet.
            self.auth_cache.invalidate(&digest);
        }
        let created = self.create(tenant, record.label.as_deref()).await?;
        tracing::info!(
            tenant.id = %tenant,
            api_key.id = %key_id,
            api_key.new_id = %created.key_id,
            overlap_ms = self.overlap_ms,
            "api key rotated"
        );
        Ok(created)
    }

    /// Removes every key of `tenant`: lookup records, key records and the index (used
    /// by tenant deletion). Returns how many keys there were.
    pub async fn delete_all(&self, tenant: &TenantId) -> TenantResult<u64> {
        let keys = scope(&self.store, tenant);
        let all = self.load_all(&keys).await?;
        let digests: Vec<Digest> = all
            .iter()
            .filter_map(|(_, bytes)| bytes.as_ref())
            .filter_map(|bytes| serde_json::from_slice::<KeyRecord>(bytes).ok())
            .filter_map(|r| r.digest())
            .collect();
        self.delete_lookups(&digests).await?;
        let record_keys: Vec<String> = all.iter().map(|(k, _)| k.clone()).collect();
        for chunk in record_keys.chunks(CHUNK) {
            self.store.delete(chunk).await?;
        }
        // The index goes last: until then, a retry finds every key again.
        self.store
            .delete(&[keys.record(riptide_store::keys::records::API_KEY_INDEX)])
            .await?;
        tracing::info!(tenant.id = %tenant, api_keys = all.len(), "deleted every api key of the tenant");
        Ok(all.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_key_debug_redacts_the_secret() {
        let k = CreatedApiKey {
            key_id: "k".into(),
            secret: "rt_supersecret".into(),
            display_prefix: "rt_k…".into(),
            created_at: Utc::now(),
        };
        assert!(!format!("{k:?}").contains("supersecret"));
    }
}
