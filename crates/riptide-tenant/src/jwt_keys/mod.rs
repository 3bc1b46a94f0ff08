//! Tenants' JWT verification keys: create, list, revoke, and look up the active key a
//! token's `kid` names (verification itself is in `verify.rs`, key material in
//! `material.rs`).
//!
//! A tenant may hold several active keys at once, so a rotation is: create the new key,
//! move the token issuer over, revoke the old one; tokens of both verify in between.
//! Each key fixes its algorithm: `HS256` (a 256-bit secret the service generates and
//! returns once), `EdDSA` (Ed25519) or `RS256` (a public key in PEM the caller supplies).
//!
//! The HS256 secret must be kept, since verifying needs it: it is stored wrapped by the
//! master key (AES-256-GCM, bound to the tenant and kid, like a tenant's data key), so
//! a copy of the store alone does not reveal it. It is never returned after creation.
//!
//! Store layout (`<p>` is the store's key prefix):
//!
//! | key | value |
//! |---|---|
//! | `<p>:tenant:{<id>}:jwtkey:<kid>` | JSON key record: algorithm, key material, label, times |
//! | `<p>:tenant:{<id>}:jwtkeys` | sorted set of the tenant's kids, scored by creation ms |
//!
//! Looked-up keys (and unknown kids) are cached in process for
//! `tenant.record_cache_ttl_ms`, so a revocation on another instance applies everywhere
//! within that time.

mod material;
mod verify;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::expiring::ExpiringCache;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use self::material::JwtAlgorithm;
use self::material::{KeyMaterial, VerifyingKey};
pub use self::verify::{MAX_TOKEN_LEN, VerifiedToken, looks_like_jwt};
use super::api_keys::{is_key_id, random_key_id};
use super::crypto::MasterKey;
use super::error::{TenantError, TenantResult};
use super::registry::TENANT_RECORD;
use crate::config::TenancyConfig;
use riptide_store::clock::SharedClock;
use riptide_store::keys::{Scope, ScopeKeys, records};
use riptide_store::tenant_id::TenantId;
use riptide_store::{Durability, SharedStore, WriteOp};

/// Most verification keys (active and revoked) a tenant may hold; revoke and delete
/// old ones first.
pub const MAX_JWT_KEYS_PER_TENANT: u64 = 100;

/// Longest label, in characters.
pub const MAX_JWT_LABEL_CHARS: usize = 200;

/// Most (tenant, kid) lookups whose outcome is cached.
const KEY_CACHE_CAPACITY: u64 = 100_000;

/// Attempts of a compare-and-swap update of a key record before `Conflict`.
const CAS_ATTEMPTS: usize = 16;

/// A newly created verification key. For HS256 the only value that ever holds the
/// secret: show it once. `Debug` redacts it.
#[derive(Clone, Serialize)]
pub struct CreatedJwtKey {
    /// The key id to put in tokens' `kid` header.
    pub kid: String,
    /// The algorithm tokens must be signed with.
    pub algorithm: JwtAlgorithm,
    /// HS256 only: the secret to sign with, used as is (its UTF-8 bytes are the HMAC
    /// key). `None` for public keys.
    pub secret: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for CreatedJwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedJwtKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// What a listing shows of a key: never an HS256 secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtKeyInfo {
    /// The key id (`kid`).
    pub kid: String,
    /// The algorithm tokens must be signed with.
    pub algorithm: JwtAlgorithm,
    /// The label given at creation.
    pub label: Option<String>,
    /// The public key as supplied (EdDSA, RS256); `None` for HS256.
    pub public_key_pem: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Set by a revocation: tokens naming this key no longer verify.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The stored record of a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct JwtKeyRecord {
    kid: String,
    algorithm: JwtAlgorithm,
    label: Option<String>,
    material: KeyMaterial,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl JwtKeyRecord {
    fn info(&self) -> JwtKeyInfo {
        JwtKeyInfo {
            kid: self.kid.clone(),
            algorithm: self.algorithm,
            label: self.label.clone(),
            public_key_pem: self.material.public_pem().map(str::to_owned),
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        }
    }
}

/// The JWT verification keys of every tenant, over one store.
pub struct JwtKeys {
    store: SharedStore,
    clock: SharedClock,
    master: MasterKey,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    leeway_s: u64,
    /// The `aud` tokens must carry, when configured.
    audience: Option<String>,
    /// Active key per (tenant, kid); `None` for unknown or revoked kids.
    cache: ExpiringCache<(TenantId, String), Option<Arc<VerifyingKey>>>,
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKeys")
            .field("leeway_s", &self.leeway_s)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// JWT keys over `store`, HS256 secrets wrapped by `master`. Reads `jwt_leeway_seconds`,
    /// `jwt_audience` and `record_cache_ttl_ms` (clamped to 1..=1000) from `cfg`.
    pub fn new(
        store: SharedStore,
        clock: SharedClock,
        master: MasterKey,
        cfg: &TenancyConfig,
    ) -> Self {
        let ttl = Duration::from_millis(cfg.record_cache_ttl_ms.clamp(1, 1_000));
        let audience = cfg.jwt_audience.trim();
        Self {
            store,
            clock,
            master,
            leeway_s: cfg.jwt_leeway_seconds,
            audience: (!audience.is_empty()).then(|| audience.to_owned()),
            cache: ExpiringCache::new(KEY_CACHE_CAPACITY, ttl),
        }
    }

    /// Creates a key for `tenant`: HS256 with a generated secret (`public_key_pem` must be
    /// `None`), or EdDSA / RS256 with the caller's public key in PEM (required).
    ///
    /// The caller (the tenant manager) checks that the tenant exists. A tenant already
    /// holding [`MAX_JWT_KEYS_PER_TENANT`] keys gets [`TenantError::QuotaExceeded`] for
    /// resource `jwt_keys`.
    pub async fn create(
        &self,
        tenant: &TenantId,
        algorithm: JwtAlgorithm,
        public_key_pem: Option<&str>,
        label: Option<&str>,
    ) -> TenantResult<CreatedJwtKey> {
        let label = validate_label(label)?;
        let keys = scope(&self.store, tenant);
        let index = keys.record(records::JWT_KEY_INDEX);
        let count = self.store.zset_len(&index).await?;
        if count >= MAX_JWT_KEYS_PER_TENANT {
            return Err(TenantError::QuotaExceeded {
                resource: "jwt_keys".to_owned(),
                limit: MAX_JWT_KEYS_PER_TENANT,
                current: count,
                retry_after: None,
            });
        }
        // The public key is checked before any write.
        let public = match (algorithm, public_key_pem) {
            (JwtAlgorithm::HS256, None) => None,
            (JwtAlgorithm::HS256, Some(_)) => {
                return Err(TenantError::InvalidField {
                    field: "public_key_pem",
                    reason: "HS256 keys are generated by the service; send no public key"
                        .to_owned(),
                });
            }
            (_, None) => {
                return Err(TenantError::InvalidField {
                    field: "public_key_pem",
                    reason: format!("required for {}", algorithm.as_str()),
                });
            }
            (_, Some(pem)) => Some(KeyMaterial::public(algorithm, pem)?),
        };
        // A kid collides with one of the tenant's with probability ~2^-50; the record is
        // written with `set_if_absent`, so a collision just draws again.
        for _ in 0..4 {
            let kid = random_key_id();
            let (material, secret) = match &public {
                Some(material) => (material.clone(), None),
                None => {
                    let (material, secret) =
                        KeyMaterial::generate_hs256(&self.master, tenant, &kid)?;
                    (material, Some(secret))
                }
            };
            let now_ms = self.clock.now_ms();
            let record = JwtKeyRecord {
                kid: kid.clone(),
                algorithm,
                label: label.clone(),
                material,
                created_at: datetime(now_ms),
                revoked_at: None,
            };
            let record_key = keys.record(&records::jwt_key(&kid));
            let score = i64::try_from(now_ms).unwrap_or(i64::MAX);
            // Record and index entry all or nothing (a record without its entry could
            // verify tokens yet never be listed or revoked), and only while the tenant
            // exists, so a key created during its deletion is never left behind.
            let ops = [
                WriteOp::present(keys.record(TENANT_RECORD)),
                WriteOp::absent(record_key.clone()),
                WriteOp::put(record_key.clone(), to_json(&record)?),
                WriteOp::ZsetAdd {
                    key: index.clone(),
                    members: vec![(kid.clone(), score)],
                },
            ];
            if !self.store.write_atomic(&ops).await? {
                if self.store.get(&keys.record(TENANT_RECORD)).await?.is_none() {
                    return Err(TenantError::tenant_not_found(tenant.as_str()));
                }
                continue;
            }
            self.cache.invalidate(&(tenant.clone(), kid.clone()));
            tracing::info!(tenant.id = %tenant, jwt_key.kid = %kid, jwt_key.algorithm = algorithm.as_str(), "jwt key created");
            return Ok(CreatedJwtKey {
                kid,
                algorithm,
                secret,
                created_at: record.created_at,
            });
        }
        Err(TenantError::Conflict(format!(
            "jwt key id of tenant {tenant}"
        )))
    }

    /// The tenant's keys, oldest first, revoked ones included. Never an HS256 secret.
    pub async fn list(&self, tenant: &TenantId) -> TenantResult<Vec<JwtKeyInfo>> {
        let keys = scope(&self.store, tenant);
        let ids = self
            .store
            .zset_range(
                &keys.record(records::JWT_KEY_INDEX),
                0,
                MAX_JWT_KEYS_PER_TENANT,
            )
            .await?;
        let record_keys: Vec<String> = ids
            .into_iter()
            .map(|(kid, _)| keys.record(&records::jwt_key(&kid)))
            .collect();
        let values = self.store.get_many(&record_keys).await?;
        let mut out = Vec::with_capacity(values.len());
        for (record_key, bytes) in record_keys.iter().zip(values) {
            if let Some(bytes) = bytes {
                out.push(parse::<JwtKeyRecord>(record_key, &bytes)?.info());
            }
        }
        Ok(out)
    }

    /// Revokes a key of `tenant`: tokens naming it fail at once on this instance and
    /// within `record_cache_ttl_ms` on every other. Revoking it again is a no-op. An
    /// unknown kid, or another tenant's, is [`TenantError::NotFound`].
    pub async fn revoke(&self, tenant: &TenantId, kid: &str) -> TenantResult<()> {
        let record_key = record_key(&self.store, tenant, kid)?;
        let now = datetime(self.clock.now_ms());
        let mut attempts = 0;
        loop {
            let Some(old) = self.store.get(&record_key).await? else {
                return Err(not_found(kid));
            };
            let mut record: JwtKeyRecord = parse(&record_key, &old)?;
            if record.revoked_at.is_some() {
                break;
            }
            record.revoked_at = Some(now);
            let new = to_json(&record)?;
            if self
                .store
                .compare_and_swap(&record_key, Some(&old), Some(&new), Durability::Durable)
                .await?
            {
                break;
            }
            attempts += 1;
            if attempts >= CAS_ATTEMPTS {
                return Err(TenantError::Conflict(record_key));
            }
        }
        self.cache.invalidate(&(tenant.clone(), kid.to_owned()));
        tracing::info!(tenant.id = %tenant, jwt_key.kid = %kid, "jwt key revoked");
        Ok(())
    }

    /// Deletes every key of the tenant (with the tenant). Returns how many went.
    pub async fn delete_all(&self, tenant: &TenantId) -> TenantResult<u64> {
        let keys = scope(&self.store, tenant);
        let index = keys.record(records::JWT_KEY_INDEX);
        let ids = self
            .store
            .zset_range(&index, 0, MAX_JWT_KEYS_PER_TENANT)
            .await?;
        let record_keys: Vec<String> = ids
            .iter()
            .map(|(kid, _)| keys.record(&records::jwt_key(kid)))
            .collect();
        if !record_keys.is_empty() {
            self.store.delete(&record_keys).await?;
        }
        // The index goes last: until then, a retry finds every key again.
        self.store.delete(&[index]).await?;
        self.forget_cached();
        Ok(ids.len() as u64)
    }

    /// Drops every cached key lookup (when another instance revoked a key or deleted a
    /// tenant).
    pub fn forget_cached(&self) {
        self.cache.invalidate_all();
    }

    /// The active key `kid` of `tenant`, from the cache or the store; `None` when it is
    /// unknown or revoked.
    async fn active(
        &self,
        tenant: &TenantId,
        kid: &str,
    ) -> TenantResult<Option<Arc<VerifyingKey>>> {
        let cache_key = (tenant.clone(), kid.to_owned());
        if let Some(found) = self.cache.get(&cache_key) {
            return Ok(found);
        }
        let record_key = record_key(&self.store, tenant, kid)?;
        let found = match self.store.get(&record_key).await? {
            Some(bytes) => {
                let record: JwtKeyRecord = parse(&record_key, &bytes)?;
                if record.revoked_at.is_some() {
                    None
                } else {
                    Some(Arc::new(record.material.verifying_key(
                        record.algorithm,
                        &self.master,
                        tenant,
                        kid,
                    )?))
                }
            }
            None => None,
        };
        self.cache.insert(cache_key, found.clone());
        Ok(found)
    }
}

fn scope(store: &SharedStore, tenant: &TenantId) -> ScopeKeys {
    ScopeKeys::new(store.key_prefix(), &Scope::Tenant(tenant.clone()))
}

/// The record key of `kid`; a malformed kid cannot name a key, so it is NotFound.
fn record_key(store: &SharedStore, tenant: &TenantId, kid: &str) -> TenantResult<String> {
    if !is_key_id(kid) {
        return Err(not_found(kid));
    }
    Ok(scope(store, tenant).record(&records::jwt_key(kid)))
}

fn validate_label(label: Option<&str>) -> TenantResult<Option<String>> {
    let Some(label) = label else {
        return Ok(None);
    };
    if label.chars().count() > MAX_JWT_LABEL_CHARS || label.chars().any(char::is_control) {
        return Err(TenantError::InvalidField {
            field: "label",
            reason: format!("at most {MAX_JWT_LABEL_CHARS} characters, no control characters"),
        });
    }
    Ok(Some(label.to_owned()))
}

fn not_found(kid: &str) -> TenantError {
    TenantError::NotFound {
        what: "jwt key",
        id: riptide_store::tenant_id::truncate_for_error(kid),
    }
}

fn parse<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> TenantResult<T> {
    serde_json::from_slice(bytes).map_err(|e| TenantError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

fn to_json<T: Serialize>(value: &T) -> TenantResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| TenantError::Corrupt {
        key: "<encode>".to_owned(),
        reason: e.to_string(),
    })
}

fn datetime(ms: u64) -> DateTime<Utc> {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_key_debug_redacts_the_secret() {
        let k = CreatedJwtKey {
            kid: "k".into(),
            algorithm: JwtAlgorithm::HS256,
            secret: Some("supersecret".into()),
            created_at: Utc::now(),
        };
        assert!(!format!("{k:?}").contains("supersecret"));
    }

    #[test]
    fn labels_are_bounded() {
        assert!(validate_label(Some("ci")).is_ok());
        assert!(validate_label(Some("a\nb")).is_err());
        assert!(validate_label(Some(&"x".repeat(201))).is_err());
    }
}
