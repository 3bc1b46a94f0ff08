//! One warm run: (tenant, URL) targets in, each tenant's cache filled where `/extract`
//! would find it.
//!
//! Targets are grouped by tenant. A deleted tenant's targets are skipped and its access
//! counts forgotten; a suspended tenant's are skipped. An active tenant's URLs go to the
//! persistence layer's cache warmer in batches of [`BATCH`]: it reads which of their
//! keys are missing or near expiry (one store round trip), loads those through the page
//! loader with `persistence.cache.warming_concurrency` loads at once, and writes them
//! back in one batch. Progress and the metrics move after every batch.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use chrono::{DateTime, Utc};
use riptide_extract::Url;
use riptide_persistence::cache::popularity::Popularity;
use riptide_persistence::clock::SharedClock;
use riptide_persistence::tenant::{TenantManager, TenantStatus};
use riptide_persistence::{CacheError, PersistentCacheManager, TenantId};

use super::loader::{SharedPageLoader, UrlRegistry};
use super::metrics::{self, Tier};
use super::progress::{Failure, Progress};

/// URLs handed to the cache warmer at once (and its batch size).
pub const BATCH: usize = 32;

/// One URL to warm for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Whose cache.
    pub tenant: TenantId,
    /// The normalized URL.
    pub url: Url,
}

/// Removes repeated targets, keeping the first of each.
pub fn dedup(targets: Vec<Target>) -> Vec<Target> {
    let mut seen = HashSet::new();
    targets
        .into_iter()
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

/// What a run works with.
pub struct Runner {
    pub(super) cache: Arc<PersistentCacheManager>,
    pub(super) tenants: Arc<TenantManager>,
    pub(super) popularity: Arc<Popularity>,
    pub(super) registry: Arc<UrlRegistry>,
    pub(super) pages: Arc<ArcSwapOption<SharedPageLoader>>,
    pub(super) clock: SharedClock,
}

impl Runner {
    /// The injected clock's time.
    pub fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.clock.now_ms() as i64).unwrap_or_default()
    }

    /// Warms `targets` (deduplicated first) as a run of `tier`, reporting into
    /// `progress`. The run fails as a whole when warming is disabled or no page loader
    /// is installed; otherwise it is done, with failed URLs listed.
    pub async fn run(&self, tier: Tier, targets: Vec<Target>, progress: &Progress) {
        let targets = dedup(targets);
        progress.start(targets.len(), self.now());
        metrics::progress(tier, progress.fraction());
        let error = self.warm(tier, targets, progress).await.err();
        if let Some(e) = &error {
            tracing::warn!(warming.tier = tier.as_str(), error = %e, "warm run failed");
        }
        self.finish(tier, progress, error);
    }

    /// Ends `progress` (a failure when `error`), with its metrics.
    pub fn finish(&self, tier: Tier, progress: &Progress, error: Option<String>) {
        progress.finish(error.clone(), self.now());
        metrics::progress(tier, progress.fraction());
        metrics::run_finished(tier, error.is_some());
        let view = progress.view();
        tracing::info!(
            warming.tier = tier.as_str(),
            total = view.total,
            warmed = view.warmed,
            fresh = view.fresh,
            failed = view.failed,
            skipped = view.skipped,
            "warm run finished"
        );
    }

    async fn warm(
        &self,
        tier: Tier,
        targets: Vec<Target>,
        progress: &Progress,
    ) -> Result<(), String> {
        if targets.is_empty() {
            return Ok(());
        }
        if !self.cache.settings().enable_warming {
            return Err(CacheError::WarmingDisabled.to_string());
        }
        let pages = self
            .pages
            .load_full()
            .ok_or("no page loader is installed")?;
        for (tenant, urls) in by_tenant(targets) {
            match self.tenants.get_tenant(&tenant).await {
                Ok(Some(t)) if t.status == TenantStatus::Active => {
                    for batch in urls.chunks(BATCH) {
                        self.warm_batch(tier, &tenant, batch, pages.as_ref(), progress)
                            .await?;
                        metrics::progress(tier, progress.fraction());
                    }
                }
                Ok(Some(_)) => self.skip(tier, progress, urls.len()),
                Ok(None) => {
                    self.skip(tier, progress, urls.len());
                    if let Err(e) = self.popularity.forget(&tenant).await {
                        tracing::warn!(tenant.id = %tenant, error = %e,
                            "cannot forget the access counts of a deleted tenant");
                    }
                }
                Err(e) => {
                    let error = e.to_string();
                    let failures = urls.iter().map(|url| failure(&tenant, url, &error));
                    metrics::urls(tier, "failed", urls.len());
                    progress.add_failures(failures);
                }
            }
            metrics::progress(tier, progress.fraction());
        }
        Ok(())
    }

    fn skip(&self, tier: Tier, progress: &Progress, n: usize) {
        metrics::urls(tier, "skipped", n);
        progress.add_skipped(n);
    }

    /// One batch of one tenant. Errors only when the run cannot go on at all.
    async fn warm_batch(
        &self,
        tier: Tier,
        tenant: &TenantId,
        urls: &[Url],
        pages: &SharedPageLoader,
        progress: &Progress,
    ) -> Result<(), String> {
        let keyed: Vec<(String, Url)> = urls
            .iter()
            .map(|url| (pages.cache_key(tenant, url), url.clone()))
            .collect();
        let _registered = self.registry.register(&keyed);
        let url_of: HashMap<&str, &Url> = keyed.iter().map(|(k, u)| (k.as_str(), u)).collect();
        let keys: Vec<String> = keyed.iter().map(|(k, _)| k.clone()).collect();
        match self.cache.warm_cache_for(&tenant, keys).await {
            Ok(report) => {
                metrics::urls(tier, "warmed", report.warmed);
                metrics::urls(tier, "fresh", report.fresh);
                metrics::urls(tier, "failed", report.failed.len());
                progress.add_done(report.warmed, report.fresh);
                progress.add_failures(report.failed.iter().map(|f| {
                    Failure {
                        tenant_id: tenant.to_string(),
                        url: url_of
                            .get(f.key.as_str())
                            .map_or_else(|| f.key.clone(), |u| u.to_string()),
                        error: f.error.clone(),
                    }
                }));
                // Two URLs with one cache key are one entry: count the duplicate as fresh.
                let handled = report.warmed + report.fresh + report.failed.len();
                if handled < urls.len() {
                    progress.add_done(0, urls.len() - handled);
                    metrics::urls(tier, "fresh", urls.len() - handled);
                }
                Ok(())
            }
            Err(
                e @ (CacheError::WarmingDisabled | CacheError::NoWarmer | CacheError::NoWarmLoader),
            ) => Err(e.to_string()),
            Err(e) => {
                let error = e.to_string();
                metrics::urls(tier, "failed", urls.len());
                progress.add_failures(urls.iter().map(|url| failure(tenant, url, &error)));
                Ok(())
            }
        }
    }
}

fn failure(tenant: &TenantId, url: &Url, error: &str) -> Failure {
    Failure {
        tenant_id: tenant.to_string(),
        url: url.to_string(),
        error: error.to_owned(),
    }
}

/// Targets grouped by tenant, tenants and URLs in first-seen order.
fn by_tenant(targets: Vec<Target>) -> Vec<(TenantId, Vec<Url>)> {
    let mut groups: Vec<(TenantId, Vec<Url>)> = Vec::new();
    let mut position: HashMap<TenantId, usize> = HashMap::new();
    for Target { tenant, url } in targets {
        let i = *position.entry(tenant.clone()).or_insert_with(|| {
            groups.push((tenant, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(url);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(tenant: &str, url: &str) -> Target {
        Target {
            tenant: TenantId::parse(tenant).expect("id"),
            url: Url::parse(url).expect("url"),
        }
    }

    #[test]
    fn targets_are_deduplicated_and_grouped_in_order() {
        let targets = dedup(vec![
            target("b", "https://x/1"),
            target("a", "https://x/1"),
            target("b", "https://x/2"),
            target("b", "https://x/1"),
        ]);
        assert_eq!(targets.len(), 3);
        let groups = by_tenant(targets);
        let names: Vec<(&str, usize)> = groups
            .iter()
            .map(|(t, urls)| (t.as_str(), urls.len()))
            .collect();
        assert_eq!(names, [("b", 2), ("a", 1)]);
    }
}
