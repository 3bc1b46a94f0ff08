//! The seed's own signatures of the cache manager: the JSON `get` and `set` take the
//! tenant as `Option<&str>` (`Some(id)`: that tenant, `None`: the global scope), so the
//! seed's `cache.get(&key, Some(&tenant_ctx.tenant_id))` and `cache.get(key, None)`
//! compile as written. The id is validated here, the edge; everything else in the cache
//! takes a typed scope ([`riptide_store::keys::AsScope`]).
//!
//! The seed's constructor, [`PersistentCacheManager::new`], is here too.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::CacheResult;
use super::config::CacheConfig;
use super::envelope::{CacheMetadata, Codec};
use super::json::{decode_json, encode_json};
use super::manager::{PersistentCacheManager, PutItem};
use super::stats::Op;
use riptide_store::keys::Scope;
use riptide_store::tenant_id::TenantId;

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

impl PersistentCacheManager {
    /// A cache over the store `url` names (the seed's constructor), with the store
    /// sections' defaults. `url` is `embedded`, a directory path, or a Redis URL (see
    /// [`riptide_store::StoreUrl`]).
    pub async fn new(url: &str, config: CacheConfig) -> CacheResult<Self> {
        config.validate()?;
        let store = riptide_store::open_store_with_defaults(url).await?;
        Self::with_store(store, config)
    }
}
