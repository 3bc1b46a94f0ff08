//! Invalidation by key, tag, namespace and whole scope, locally and from other instances.

use std::time::Instant;

use super::CacheResult;
use super::invalidation::Invalidation;
use super::manager::{PersistentCacheManager, l1_key_of};
use super::stats::{Op, OpResult};
use riptide_store::RemoveOutcome;
use riptide_store::keys::{AsScope, Namespace, Scope, ScopeKeys, validate_tag};

impl PersistentCacheManager {
    /// Removes every entry of the tenant (or the global scope) that carries `tag`.
    /// Returns how many live entries were removed.
    pub async fn invalidate_tag(
        &self,
        tag: &str,
        scope: &(impl AsScope + ?Sized),
    ) -> CacheResult<u64> {
        validate_tag(tag)?;
        let scope = scope.as_scope()?;
        let inv = Invalidation::Tag {
            scope: scope.clone().into_owned(),
            tag: tag.to_owned(),
        };
        self.remove_many(&scope, inv, async |keys| {
            self.store.cache_remove_tag(keys, tag).await
        })
        .await
    }

    /// Removes every entry of the tenant (or global scope) in `namespace`.
    pub async fn invalidate_namespace(
        &self,
        namespace: &str,
        scope: &(impl AsScope + ?Sized),
    ) -> CacheResult<u64> {
        let ns = Namespace::parse(namespace)?;
        let scope = scope.as_scope()?;
        let inv = Invalidation::Namespace {
            scope: scope.clone().into_owned(),
            namespace: ns.as_str().to_owned(),
        };
        self.remove_many(&scope, inv, async |keys| {
            self.store.cache_remove_namespace(keys, ns.as_str()).await
        })
        .await
    }

    /// Removes every cache entry of the tenant (or of the global scope).
    pub async fn clear(&self, scope: &(impl AsScope + ?Sized)) -> CacheResult<u64> {
        let scope = scope.as_scope()?;
        let inv = Invalidation::Scope(scope.clone().into_owned());
        self.remove_many(&scope, inv, async |keys| self.store.cache_clear(keys).await)
            .await
    }

    async fn remove_many<F>(&self, scope: &Scope, inv: Invalidation, remove: F) -> CacheResult<u64>
    where
        F: AsyncFnOnce(&ScopeKeys) -> Result<RemoveOutcome, riptide_store::StoreError>,
    {
        let start = Instant::now();
        let stats = self.scope_stats(scope);
        let keys = ScopeKeys::new(self.store.key_prefix(), scope);
        let result = remove(&keys).await;
        // Drop L1 copies whatever the store said: a partial failure may have removed some.
        self.apply_remote_invalidation(&inv);
        self.announce(inv);
        match result {
            Ok(o) => {
                self.stats
                    .record(&stats, Op::Invalidate, OpResult::Ok, start.elapsed(), 1);
                stats.observe_usage(o.used_bytes, o.entries);
                Ok(o.removed)
            }
            Err(e) => {
                self.stats
                    .record(&stats, Op::Invalidate, OpResult::Error, start.elapsed(), 1);
                Err(e.into())
            }
        }
    }

    /// Applies an invalidation to L1 only. The sync layer calls this for messages from
    /// other instances; the store was already changed by the instance that sent it.
    pub fn apply_remote_invalidation(&self, inv: &Invalidation) {
        match inv.clone() {
            Invalidation::Key { store_key } => self.l1.invalidate(&l1_key_of(&store_key)),
            Invalidation::Tag { scope, tag } => self
                .l1
                .invalidate_if(move |v| v.scope == scope && v.entry.tags().contains(&tag)),
            Invalidation::Namespace { scope, namespace } => self
                .l1
                .invalidate_if(move |v| v.scope == scope && *v.namespace == *namespace),
            Invalidation::Scope(scope) => self.l1.invalidate_if(move |v| v.scope == scope),
            Invalidation::All => self.l1.clear(),
        }
    }
}
