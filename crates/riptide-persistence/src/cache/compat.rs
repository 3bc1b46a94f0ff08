//! The seed's own signatures of the cache manager: the JSON `get` and `set` take the
//! tenant as `Option<&str>` (`Some(id)`: that tenant, `None`: the global scope), so the
//! seed's `cache.get(&key, Some(&tenant_ctx.tenant_id))` and `cache.get(key, None)`
//! compile as written. The id is validated here, the edge; everything else in the cache
//! takes a typed scope ([`crate::keys::AsScope`]).

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::CacheResult;
use super::envelope::{CacheMetadata, Codec};
use super::json::{decode_json, encode_json};
use super::manager::{PersistentCacheManager, PutItem};
use super::stats::Op;
use crate::keys::Scope;
use crate::tenant_id::TenantId;

/// The scope the seed's tenant argument names.
pub fn scope_of(tenant: Option<&str>) -> CacheResult<Scope> {
    Ok(match tenant {
        Some(t) => Scope::Tenant(TenantId::parse(t)?),
        None => Scope::Global,
    })
}

impl PersistentCacheManager {
    /// The value of `key` deserialized from JSON, or `None` on a miss.
    pub async fn get<T: DeserializeOwned>(
        &self,
        key: &str,
        tenant: Option<&str>,
    ) -> CacheResult<Option<T>> {
        match self.get_entry(key, &scope_of(tenant)?).await? {
            Some(e) => decode_json(&e.payload).map(Some),
            None => Ok(None),
        }
    }

    /// Stores `value` as JSON under `key`. `ttl: None` uses `default_ttl_seconds`.
    pub async fn set<V: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &V,
        tenant: Option<&str>,
        ttl: Option<Duration>,
        metadata: Option<CacheMetadata>,
    ) -> CacheResult<()> {
        let item = PutItem {
            key: key.to_owned(),
            payload: encode_json(value)?,
            codec: Codec::Json,
            ttl,
            metadata,
        };
        self.put(scope_of(tenant)?, vec![item], Op::Set).await
    }
}
