//! Authentication of presented keys: one HMAC, two reads, a constant-time comparison,
//! outcomes cached briefly, and the best-effort `last_used_at` write.

use subtle::ConstantTimeEq;

use super::format::{Digest, is_key_id};
use super::records::{KeyRecord, LookupRecord, datetime, ms_of, parse, scope};
use super::{ApiKeys, AuthenticatedKey, KEY_ID_LEN, LAST_USED_INTERVAL_MS};
use crate::error::{TenantError, TenantResult};
use riptide_store::keys::records;

/// A cached authentication outcome.
#[derive(Debug, Clone)]
pub(super) enum Cached {
    /// The key authenticated; it stops working at `expires_at_ms`, if set.
    Valid {
        key: AuthenticatedKey,
        expires_at_ms: Option<u64>,
    },
    /// Unknown, revoked or expired.
    Invalid,
}

impl ApiKeys {
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
    ///
    /// [`MAX_PRESENTED_LEN`]: super::MAX_PRESENTED_LEN
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
            scope(&self.store, &lookup.tenant_id).record(&records::api_key(&lookup.key_id));
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
        let record_key = scope(&self.store, &key.tenant_id).record(&records::api_key(&key.key_id));
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
}
