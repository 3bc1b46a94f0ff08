//! What warming needs from `/extract`: the cache key of a URL and the value `/extract`
//! would cache for it ([`PageLoader`]), and the adapter that lets the persistence
//! layer's cache warmer, which works on cache keys, load by URL ([`UrlRegistry`]).
//!
//! The cache warmer (`PersistentCacheManager::warm_cache_for`) checks which keys are
//! missing or near expiry straight in the store, loads those with bounded concurrency
//! and writes them back in batches. It hands its loader a cache key; a warm run first
//! registers the URL of every key it is about to warm (a [`Registration`], dropped
//! when the batch is done), so the loader can find the URL again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use futures::future::BoxFuture;
use riptide_extract::Url;
use riptide_persistence::TenantId;
use riptide_persistence::cache::{WarmLoader, WarmValue};

/// Produces what `/extract` caches, so a warmed entry is exactly the one a request
/// would have stored.
pub trait PageLoader: Send + Sync + 'static {
    /// The cache key `/extract` uses for `url` with its default options, within
    /// `tenant`'s scope.
    fn cache_key(&self, tenant: &TenantId, url: &Url) -> String;

    /// Fetches and extracts `url` for `tenant` and returns the value `/extract` would
    /// cache for it (payload, codec, TTL, metadata), or why it could not.
    fn load<'a>(
        &'a self,
        tenant: &'a TenantId,
        url: &'a Url,
    ) -> BoxFuture<'a, Result<WarmValue, String>>;
}

/// A shared [`PageLoader`].
pub type SharedPageLoader = Arc<dyn PageLoader>;

/// Cache key → the URL it stands for, for the keys being warmed right now.
#[derive(Default)]
pub struct UrlRegistry {
    /// With how many registrations hold each key (two runs may warm one URL at once).
    urls: Mutex<HashMap<String, (Url, usize)>>,
}

impl UrlRegistry {
    /// Registers `keyed` (key, URL) pairs until the returned guard is dropped.
    pub fn register(self: &Arc<Self>, keyed: &[(String, Url)]) -> Registration {
        let mut urls = self.urls.lock().unwrap_or_else(PoisonError::into_inner);
        for (key, url) in keyed {
            urls.entry(key.clone())
                .and_modify(|(_, holders)| *holders += 1)
                .or_insert_with(|| (url.clone(), 1));
        }
        Registration {
            registry: self.clone(),
            keys: keyed.iter().map(|(k, _)| k.clone()).collect(),
        }
    }

    fn url_of(&self, key: &str) -> Option<Url> {
        let urls = self.urls.lock().unwrap_or_else(PoisonError::into_inner);
        urls.get(key).map(|(url, _)| url.clone())
    }

    /// Keys registered now (for tests of the bound).
    pub fn len(&self) -> usize {
        self.urls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when no key is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keeps a batch's keys registered; dropping it unregisters them.
pub struct Registration {
    registry: Arc<UrlRegistry>,
    keys: Vec<String>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut urls = self
            .registry
            .urls
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for key in &self.keys {
            if let Some((_, holders)) = urls.get_mut(key) {
                *holders -= 1;
                if *holders == 0 {
                    urls.remove(key);
                }
            }
        }
    }
}

/// The cache warmer's loader: finds the URL of a key in the registry and has the
/// current [`PageLoader`] load it.
pub struct KeyedLoader {
    registry: Arc<UrlRegistry>,
    pages: Arc<arc_swap::ArcSwapOption<SharedPageLoader>>,
}

impl KeyedLoader {
    /// A loader over `registry`, loading with whatever `pages` holds at the time.
    pub fn new(
        registry: Arc<UrlRegistry>,
        pages: Arc<arc_swap::ArcSwapOption<SharedPageLoader>>,
    ) -> Self {
        Self { registry, pages }
    }
}

#[async_trait]
impl WarmLoader for KeyedLoader {
    async fn load(&self, tenant: Option<&TenantId>, key: &str) -> Result<WarmValue, String> {
        let tenant = tenant.ok_or("warming only loads into a tenant's cache")?;
        let url = self
            .registry
            .url_of(key)
            .ok_or_else(|| format!("no URL is registered for cache key {key:?}"))?;
        let pages = self
            .pages
            .load_full()
            .ok_or("no page loader is installed")?;
        pages.load(tenant, &url).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_are_counted_and_dropped() {
        let registry = Arc::new(UrlRegistry::default());
        let url = Url::parse("https://example.com/").expect("url");
        let pair = [("k".to_owned(), url.clone())];
        let first = registry.register(&pair);
        let second = registry.register(&pair);
        drop(first);
        assert_eq!(registry.url_of("k"), Some(url));
        drop(second);
        assert!(registry.is_empty());
    }
}
