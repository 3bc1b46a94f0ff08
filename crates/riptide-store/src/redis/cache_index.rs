//! The cache index on Redis: each `cache_*` call is one Lua script run on the scope's
//! hash tag (`scripts.rs`, `scripts/*.lua`), so the accounting stays exact under
//! concurrent writers.

use async_trait::async_trait;

use super::{RedisStore, check_ttl, non_negative, refused, scripts};
use crate::keys::{ScopeKeys, validate_tag};
use crate::{CacheIndex, CachePut, PutOutcome, RemoveOutcome, ScopeUsage, StoreResult};

/// Every put must be a cache entry key of `scope` in its stated namespace (the scripts
/// find an entry's namespace set from its key), with valid tags.
fn check_puts(scope: &ScopeKeys, puts: &[CachePut]) -> StoreResult<()> {
    let entries = format!("{}:c:", scope.base());
    for p in puts {
        check_ttl(p.ttl_ms)?;
        let in_namespace = p
            .key
            .strip_prefix(&entries)
            .and_then(|rest| rest.strip_prefix(p.namespace.as_str()))
            .is_some_and(|rest| rest.starts_with(':'));
        if p.namespace.is_empty() || p.namespace.contains(':') || !in_namespace {
            return Err(refused(format!(
                "cache key {:?} is not an entry of {:?} in namespace {:?}",
                p.key,
                scope.base(),
                p.namespace
            )));
        }
        for tag in &p.tags {
            validate_tag(tag).map_err(|e| refused(e.to_string()))?;
        }
    }
    Ok(())
}

#[async_trait]
impl CacheIndex for RedisStore {
    async fn cache_put(
        &self,
        scope: &ScopeKeys,
        puts: &[CachePut],
        budget_bytes: Option<u64>,
    ) -> StoreResult<PutOutcome> {
        check_puts(scope, puts)?;
        let cmd = scripts::put(scope, puts, budget_bytes);
        let (evicted, used_bytes, entries): (Vec<String>, i64, i64) =
            self.eval(&scripts::PUT, &cmd).await?;
        Ok(PutOutcome {
            evicted,
            used_bytes: non_negative(used_bytes),
            entries: non_negative(entries),
        })
    }

    async fn cache_remove(&self, scope: &ScopeKeys, keys: &[String]) -> StoreResult<RemoveOutcome> {
        // A key outside the scope cannot be one of its entries; leaving it out also keeps
        // the script on the scope's Cluster slot.
        let entries = format!("{}:c:", scope.base());
        let ours: Vec<&str> = keys
            .iter()
            .map(String::as_str)
            .filter(|k| k.starts_with(&entries))
            .collect();
        let cmd = scripts::remove(scope, ours.into_iter());
        let (removed, used_bytes, entries): (i64, i64, i64) =
            self.eval(&scripts::REMOVE, &cmd).await?;
        Ok(RemoveOutcome {
            removed: non_negative(removed),
            used_bytes: non_negative(used_bytes),
            entries: non_negative(entries),
        })
    }

    async fn cache_remove_tag(&self, scope: &ScopeKeys, tag: &str) -> StoreResult<RemoveOutcome> {
        let set = scope.tag_members(tag);
        self.remove_all(&scripts::REMOVE_SET, scripts::remove_set(scope, &set))
            .await
    }

    async fn cache_remove_namespace(
        &self,
        scope: &ScopeKeys,
        namespace: &str,
    ) -> StoreResult<RemoveOutcome> {
        let set = scope.namespace_members(namespace);
        self.remove_all(&scripts::REMOVE_SET, scripts::remove_set(scope, &set))
            .await
    }

    async fn cache_clear(&self, scope: &ScopeKeys) -> StoreResult<RemoveOutcome> {
        self.remove_all(&scripts::CLEAR, scripts::clear(scope))
            .await
    }

    async fn cache_usage(&self, scope: &ScopeKeys) -> StoreResult<ScopeUsage> {
        let cmd = scripts::usage(scope);
        loop {
            let (used_bytes, entries, more): (i64, i64, i64) =
                self.eval(&scripts::USAGE, &cmd).await?;
            if more == 0 {
                return Ok(ScopeUsage {
                    used_bytes: non_negative(used_bytes),
                    entries: non_negative(entries),
                });
            }
        }
    }
}
