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

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt, stream};
use hmac::{Hmac, KeyInit, Mac};
use moka::sync::Cache;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::error::{TenantError, TenantResult};
use super::secrets::MIN_PEPPER_LEN;
use crate::clock::SharedClock;
use crate::config::TenantConfig;
use crate::keys::{Scope, ScopeKeys};
use crate::store::{Durability, SharedStore};
use crate::tenant_id::TenantId;

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

/// Length of the base64url (no padding) text of [`SECRET_BYTES`].
const SECRET_BODY_LEN: usize = (SECRET_BYTES * 4).div_ceil(3);

/// Key id alphabet: lower-case RFC 4648 base32.
const KEY_ID_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Most presented keys whose authentication outcome is cached.
const AUTH_CACHE_CAPACITY: u64 = 100_000;

/// Most keys whose last `last_used_at` write is remembered.
const TOUCH_CACHE_CAPACITY: u64 = 100_000;

/// Attempts of a compare-and-swap update of a key record before `Conflict`.
const CAS_ATTEMPTS: usize = 16;

/// Keys per `get_many` / `delete` call and index page.
const CHUNK: usize = 256;

/// Lookup records deleted concurrently by `delete_all` (they live on different slots).
const DELETE_CONCURRENCY: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// `HMAC-SHA256(pepper, secret)`.
type Digest = [u8; 32];

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

/// The per-tenant key record as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyRecord {
    key_id: String,
    label: Option<String>,
    display_prefix: String,
    /// Lower-case hex of `HMAC-SHA256(pepper, secret)`.
    hash_hex: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl KeyRecord {
    fn info(&self) -> ApiKeyInfo {
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

    fn expired_at(&self, now_ms: u64) -> bool {
        self.expires_at.is_some_and(|e| now_ms >= ms_of(e))
    }

    fn digest(&self) -> Option<Digest> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&self.hash_hex, &mut out).ok()?;
        Some(out)
    }
}

/// The global lookup record: which tenant's which key a hash belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LookupRecord {
    tenant_id: TenantId,
    key_id: String,
}

/// A cached authentication outcome.
#[derive(Debug, Clone)]
enum Cached {
    /// The key authenticated; it stops working at `expires_at_ms`, if set.
    Valid {
        key: AuthenticatedKey,
        expires_at_ms: Option<u64>,
    },
    /// Unknown, revoked or expired.
    Invalid,
}

/// The API keys of every tenant, over one store.
pub struct ApiKeys {
    store: SharedStore,
    clock: SharedClock,
    pepper: Vec<u8>,
    prefix: String,
    overlap_ms: u64,
    /// Outcome per presented key's HMAC (never the key itself).
    auth_cache: Cache<Digest, Cached>,
    /// Clock ms of the last `last_used_at` write per key's HMAC.
    touched: Cache<Digest, u64>,
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
        cfg: &TenantConfig,
    ) -> Self {
        let ttl = Duration::from_millis(cfg.record_cache_ttl_ms.clamp(1, 1_000));
        Self {
            store,
            clock,
            pepper,
            prefix: cfg.api_key_prefix.clone(),
            overlap_ms: cfg.api_key_rotation_overlap_seconds.saturating_mul(1_000),
            auth_cache: Cache::builder()
                .max_capacity(AUTH_CACHE_CAPACITY)
                .time_to_live(ttl)
                .build(),
            touched: Cache::builder()
                .max_capacity(TOUCH_CACHE_CAPACITY)
                .time_to_live(Duration::from_millis(LAST_USED_INTERVAL_MS))
                .build(),
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
        let index = keys.record("keys");
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
            let record_key = keys.record(&format!("key:{key_id}"));
            // Index first: a crash after it leaves an index member without a record,
            // which listings skip and `delete_all` / purges remove.
            self.store
                .zset_add(&index, &[(key_id.clone(), score(now_ms))])
                .await?;
            if !self
                .store
                .set_if_absent(&record_key, &to_json(&record)?, None, Durability::Durable)
                .await?
            {
                continue;
            }
            let lookup = LookupRecord {
                tenant_id: tenant.clone(),
                key_id: key_id.clone(),
            };
            let written = self
                .store
                .set_if_absent(
                    &self.lookup_key(&digest),
                    &to_json(&lookup)?,
                    None,
                    Durability::Durable,
                )
                .await;
            match written {
                Ok(true) => {}
                other => {
                    self.undo_create(&record_key, &index, &key_id).await;
                    other?;
                    return Err(TenantError::Conflict("api key lookup record".to_owned()));
                }
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

    /// Drops every cached lookup, so the next presentation of any key reads the store
    /// (used when another instance revoked a key).
    pub fn forget_cached(&self) {
        self.auth_cache.invalidate_all();
    }

    /// Authenticates a presented key.
    ///
    /// Malformed input (wrong prefix, length or characters, more than
    /// [`MAX_PRESENTED_LEN`] bytes) is refused without touching the store. Otherwise the
    /// key's HMAC finds the lookup record in one read and the tenant's key record in a
    /// second; the stored hash is compared in constant time, and revoked or expired keys
    /// are refused. Every failure is [`TenantError::InvalidApiKey`]; only store trouble
    /// is reported as such. Outcomes are cached for `record_cache_ttl_ms`.
    ///
    /// `last_used_at` is written at most once a minute per key, best effort: a failed
    /// write is logged, never an authentication failure.
    pub async fn authenticate(&self, presented: &str) -> TenantResult<AuthenticatedKey> {
        if !self.is_well_formed(presented) {
            return Err(TenantError::InvalidApiKey);
        }
        let digest = self.mac(presented)?;
        let now_ms = self.clock.now_ms();
        let outcome = match self.auth_cache.get(&digest) {
            Some(cached) => cached,
            None => {
                let fresh = self.lookup(presented, &digest, now_ms).await?;
                self.auth_cache.insert(digest, fresh.clone());
                fresh
            }
        };
        match outcome {
            Cached::Valid { key, expires_at_ms } if expires_at_ms.is_none_or(|e| now_ms < e) => {
                self.touch(&digest, &key, now_ms).await;
                Ok(key)
            }
            _ => Err(TenantError::InvalidApiKey),
        }
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
        self.store.delete(&[keys.record("keys")]).await?;
        tracing::info!(tenant.id = %tenant, api_keys = all.len(), "deleted every api key of the tenant");
        Ok(all.len() as u64)
    }

    // ---- helpers ----

    fn is_well_formed(&self, presented: &str) -> bool {
        is_well_formed(&self.prefix, presented)
    }

    fn mac(&self, secret: &str) -> TenantResult<Digest> {
        if self.pepper.len() < MIN_PEPPER_LEN {
            return Err(TenantError::Crypto(format!(
                "the api key pepper has {} bytes; at least {MIN_PEPPER_LEN} are required",
                self.pepper.len()
            )));
        }
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.pepper)
            .map_err(|_| TenantError::Crypto("HMAC refused the api key pepper".to_owned()))?;
        mac.update(secret.as_bytes());
        Ok(mac.finalize().into_bytes().into())
    }

    fn lookup_key(&self, digest: &Digest) -> String {
        format!("{}:apikey:{}", self.store.key_prefix(), hex::encode(digest))
    }

    /// The record key of `key_id`; a malformed id cannot name a key, so it is NotFound.
    fn record_key(&self, tenant: &TenantId, key_id: &str) -> TenantResult<String> {
        if !is_key_id(key_id) {
            return Err(not_found(key_id));
        }
        Ok(scope(&self.store, tenant).record(&format!("key:{key_id}")))
    }

    /// The authentication outcome from the store.
    async fn lookup(&self, presented: &str, digest: &Digest, now_ms: u64) -> TenantResult<Cached> {
        let lookup_key = self.lookup_key(digest);
        let Some(bytes) = self.store.get(&lookup_key).await? else {
            return Ok(Cached::Invalid);
        };
        let lookup: LookupRecord = parse(&lookup_key, &bytes)?;
        // The key id inside the presented key must be the one the hash points at.
        let presented_id = presented
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.get(..KEY_ID_LEN))
            .unwrap_or_default();
        if lookup.key_id != presented_id || !is_key_id(&lookup.key_id) {
            return Ok(Cached::Invalid);
        }
        let record_key =
            scope(&self.store, &lookup.tenant_id).record(&format!("key:{}", lookup.key_id));
        let Some(bytes) = self.store.get(&record_key).await? else {
            return Ok(Cached::Invalid);
        };
        let record: KeyRecord = parse(&record_key, &bytes)?;
        let computed = hex::encode(digest);
        let same_hash: bool = record.hash_hex.as_bytes().ct_eq(computed.as_bytes()).into();
        if !same_hash || record.revoked_at.is_some() || record.expired_at(now_ms) {
            return Ok(Cached::Invalid);
        }
        Ok(Cached::Valid {
            key: AuthenticatedKey {
                tenant_id: lookup.tenant_id,
                key_id: lookup.key_id,
            },
            expires_at_ms: record.expires_at.map(ms_of),
        })
    }

    /// Writes `last_used_at` if this key's last write is a minute old; best effort.
    async fn touch(&self, digest: &Digest, key: &AuthenticatedKey, now_ms: u64) {
        if let Some(last) = self.touched.get(digest)
            && now_ms < last.saturating_add(LAST_USED_INTERVAL_MS)
        {
            return;
        }
        self.touched.insert(*digest, now_ms);
        let record_key = scope(&self.store, &key.tenant_id).record(&format!("key:{}", key.key_id));
        let now = datetime(now_ms);
        // One attempt: losing a race to a revoke or another instance's write is fine.
        let result = self
            .update_record(&record_key, 1, |r| {
                if r.revoked_at.is_some() {
                    return false;
                }
                r.last_used_at = Some(now);
                true
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(
                tenant.id = %key.tenant_id,
                api_key.id = %key.key_id,
                error = %e,
                "could not record an api key's last use"
            );
        }
    }

    /// Reads, changes and compare-and-swaps a key record. `change` returns whether it
    /// changed anything (nothing is written otherwise). `None` when the record is absent.
    async fn update_record(
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
    async fn load_all(&self, keys: &ScopeKeys) -> TenantResult<Vec<(String, Option<Bytes>)>> {
        let index = keys.record("keys");
        let mut out = Vec::new();
        let mut offset = 0u64;
        loop {
            let page = self.store.zset_range(&index, offset, CHUNK as u64).await?;
            let n = page.len();
            let record_keys: Vec<String> = page
                .into_iter()
                .map(|(id, _)| keys.record(&format!("key:{id}")))
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
    async fn delete_lookups(&self, digests: &[Digest]) -> TenantResult<()> {
        for digest in digests {
            self.auth_cache.invalidate(digest);
        }
        stream::iter(digests.iter().map(|d| self.lookup_key(d)))
            .map(|key| async move { self.store.delete(&[key]).await })
            .buffer_unordered(DELETE_CONCURRENCY)
            .try_collect::<Vec<u64>>()
            .await?;
        for digest in digests {
            self.auth_cache.invalidate(digest);
        }
        Ok(())
    }

    /// Removes the tenant's revoked and expired keys, and index members without a
    /// record. Returns how many index members went.
    async fn purge_dead(&self, tenant: &TenantId) -> TenantResult<u64> {
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
        let index = keys.record("keys");
        let mut removed = 0;
        for chunk in dead_ids.chunks(CHUNK) {
            removed += self.store.zset_remove(&index, chunk).await?;
        }
        if removed > 0 {
            tracing::info!(tenant.id = %tenant, api_keys = removed, "purged revoked and expired api keys");
        }
        Ok(removed)
    }

    /// Best-effort rollback of a half-created key.
    async fn undo_create(&self, record_key: &str, index: &str, key_id: &str) {
        if let Err(e) = self.store.delete(&[record_key.to_owned()]).await {
            tracing::warn!(api_key.id = %key_id, error = %e, "could not roll back an api key record");
        }
        if let Err(e) = self.store.zset_remove(index, &[key_id.to_owned()]).await {
            tracing::warn!(api_key.id = %key_id, error = %e, "could not roll back an api key index entry");
        }
    }
}

fn scope(store: &SharedStore, tenant: &TenantId) -> ScopeKeys {
    ScopeKeys::new(store.key_prefix(), &Scope::Tenant(tenant.clone()))
}

/// True when `presented` has the shape of a key with `prefix`: at most
/// [`MAX_PRESENTED_LEN`] bytes, the prefix, a key id, `_`, and 43 base64url characters.
fn is_well_formed(prefix: &str, presented: &str) -> bool {
    if presented.len() > MAX_PRESENTED_LEN {
        return false;
    }
    let Some(rest) = presented.strip_prefix(prefix) else {
        return false;
    };
    let rest = rest.as_bytes();
    rest.len() == KEY_ID_LEN + 1 + SECRET_BODY_LEN
        && rest[..KEY_ID_LEN]
            .iter()
            .all(|c| KEY_ID_ALPHABET.contains(c))
        && rest[KEY_ID_LEN] == b'_'
        && rest[KEY_ID_LEN + 1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

fn random_key_id() -> String {
    let mut rng = rand::rng();
    (0..KEY_ID_LEN)
        .map(|_| char::from(KEY_ID_ALPHABET[rng.random_range(0..KEY_ID_ALPHABET.len())]))
        .collect()
}

fn is_key_id(key_id: &str) -> bool {
    key_id.len() == KEY_ID_LEN && key_id.bytes().all(|c| KEY_ID_ALPHABET.contains(&c))
}

fn validate_label(label: Option<&str>) -> TenantResult<Option<String>> {
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

fn not_found(key_id: &str) -> TenantError {
    TenantError::NotFound {
        what: "api key",
        id: crate::tenant_id::truncate_for_error(key_id),
    }
}

fn corrupt(key: &str, reason: impl Into<String>) -> TenantError {
    TenantError::Corrupt {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> TenantResult<T> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(key, e.to_string()))
}

fn to_json<T: Serialize>(value: &T) -> TenantResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| TenantError::Corrupt {
        key: "<encode>".to_owned(),
        reason: e.to_string(),
    })
}

/// Clock milliseconds as a time (the epoch for a value chrono cannot hold).
fn datetime(ms: u64) -> DateTime<Utc> {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_default()
}

/// A time as clock milliseconds (0 before the epoch).
fn ms_of(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or(0)
}

fn score(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(SECRET_BODY_LEN, 43);
        let id = random_key_id();
        assert!(is_key_id(&id), "{id}");
        assert!(!is_key_id("ABCDEFGHIJKL"));
        assert!(!is_key_id("abc"));
    }

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

    #[test]
    fn well_formedness() {
        let good = format!(
            "rt_{}_{}",
            random_key_id(),
            URL_SAFE_NO_PAD.encode([9u8; 32])
        );
        assert!(is_well_formed("rt_", &good), "{good}");
        for bad in [
            String::new(),
            "rt_".to_owned(),
            good.replacen("rt_", "xx_", 1),
            format!("{good}A"),
            good[..good.len() - 1].to_owned(),
            good.replace('_', "*"),
            "x".repeat(5_000),
            format!(
                "rt_{}_{}",
                "A".repeat(12),
                URL_SAFE_NO_PAD.encode([9u8; 32])
            ),
        ] {
            assert!(!is_well_formed("rt_", &bad), "{bad:?}");
        }
    }
}
