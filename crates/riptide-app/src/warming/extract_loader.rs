//! The service's [`PageLoader`]: warming stores what `POST /extract {url}` stores, where
//! it stores it.
//!
//! The key is `/extract`'s own ([`ExtractKey`] without a session), and the value is the
//! same serialized extraction ([`fetch_body`], with the same fetcher, SSRF guard and
//! limits), stored as raw bytes with the default TTL and no metadata, exactly as
//! `/extract` stores a request without `ttl_seconds`. A warmed entry is therefore a
//! `HIT` for the next `/extract` of that URL, and an `/extract` entry is fresh for
//! warming.

use std::sync::Arc;

use futures::future::BoxFuture;
use riptide_extract::{Extractor, Url};
use riptide_persistence::TenantId;
use riptide_persistence::cache::WarmValue;

use super::loader::PageLoader;
use crate::extraction::cache_key::ExtractKey;
use crate::extraction::fetch::fetch_body;

/// Loads pages with the service's extractor.
pub struct ExtractPageLoader {
    extractor: Arc<Extractor>,
}

impl ExtractPageLoader {
    /// A loader fetching with `extractor` (the one `/extract` uses).
    pub fn new(extractor: Arc<Extractor>) -> Self {
        Self { extractor }
    }
}

impl PageLoader for ExtractPageLoader {
    fn cache_key(&self, tenant: &TenantId, url: &Url) -> String {
        ExtractKey::new(tenant, url, None).as_str().to_owned()
    }

    fn load<'a>(
        &'a self,
        tenant: &'a TenantId,
        url: &'a Url,
    ) -> BoxFuture<'a, Result<WarmValue, String>> {
        Box::pin(async move {
            fetch_body(&self.extractor, tenant, url, &[])
                .await
                .map(WarmValue::bytes)
                .map_err(|e| e.to_string())
        })
    }
}
