//! [`Extractor`]: fetch a page safely and extract its readable content, with fetches
//! and extractions shared fairly among tenants.

use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use reqwest::header::HeaderMap;
use url::Url;

use crate::config::ExtractConfig;
use crate::error::ExtractError;
use crate::extraction::Extraction;
use crate::fair_share::FairShare;
use crate::fetch::Fetcher;
use crate::guard::AddressGuard;
use crate::headers::extra_header_map;
use crate::limits::PageLimits;
use crate::page_runtime::PageRuntime;
use crate::worker::{Init, PoolSettings, WorkerPool, WorkerProgram};

/// Fetches pages and extracts their content. Cheap to clone (one shared, pooled HTTP
/// client and one pool of extraction workers); `Send + Sync`, so one instance serves
/// the whole process.
///
/// A page goes through two stages, each with its own [`FairShare`] of slots: `fetch`
/// (`max_concurrent_fetches` in all, `max_fetches_per_tenant` per caller) and `extract`
/// (one slot per worker, `extractions_per_tenant` per caller). The worker processes
/// (see [`crate::worker`]) live as long as the extractor; dropping it kills them.
#[derive(Clone)]
pub struct Extractor {
    inner: Arc<Inner>,
    /// Where pages are fetched and prepared; outside `inner`, which its tasks hold.
    pages: Arc<PageRuntime>,
}

struct Inner {
    fetcher: Fetcher,
    workers: WorkerPool,
    fetches: Arc<FairShare>,
    extractions: Arc<FairShare>,
    limits: PageLimits,
}

impl std::fmt::Debug for Extractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extractor")
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl Extractor {
    /// An extractor fetching under `cfg`, extracting in `cfg.worker_count()` processes
    /// of `worker`, all started before this returns. Fails with [`ExtractError::Config`]
    /// when the config is invalid or the HTTP client cannot be built, and with
    /// [`ExtractError::Unavailable`] when a worker cannot be started.
    pub async fn start(cfg: &ExtractConfig, worker: WorkerProgram) -> Result<Self, ExtractError> {
        cfg.validate()
            .map_err(|(field, reason)| ExtractError::Config(format!("{field}: {reason}")))?;
        let allow = cfg
            .allow_nets()
            .map_err(|(field, reason)| ExtractError::Config(format!("{field}: {reason}")))?;
        let guard = Arc::new(AddressGuard::new(allow));
        let fetcher = Fetcher::new(cfg, guard)?;
        let size = cfg.worker_count();
        let workers = WorkerPool::start(PoolSettings {
            program: worker,
            size,
            init: Init {
                memory_bytes: cfg.worker_memory_bytes,
                nice: cfg.worker_nice,
                idle: cfg.idle_priority,
                cpus: cfg.worker_cpus.clone(),
            },
            budget: Duration::from_millis(cfg.max_extract_ms),
        })
        .await?;
        let queue = cfg.max_queued_per_tenant;
        let pages = Arc::new(PageRuntime::start(
            cfg.page_thread_count(),
            cfg.worker_nice,
            cfg.idle_priority,
            &cfg.worker_cpus,
        )?);
        Ok(Self {
            pages,
            inner: Arc::new(Inner {
                fetcher,
                workers,
                fetches: FairShare::new(
                    "fetch",
                    cfg.max_concurrent_fetches,
                    cfg.max_fetches_per_tenant,
                    queue,
                ),
                extractions: FairShare::new("extract", size, cfg.extractions_per_tenant(), queue),
                limits: cfg.page_limits(),
            }),
        })
    }

    /// Fetches `url` and extracts its content, as `caller` (the tenant: fetch and
    /// extraction slots are shared fairly among callers).
    ///
    /// `extra_headers` (a session's `Cookie`, `Authorization`, ...) are sent to the
    /// requested host only, not to other hosts a redirect leads to. Headers the caller may
    /// not set (`Host`, hop-by-hop and framing headers, see
    /// [`check_extra_header`](crate::check_extra_header)) and invalid ones are dropped
    /// silently. The page is parsed in a worker process, under the time budget and the
    /// page limits.
    ///
    /// The work runs on the page threads (see `PageRuntime`); dropping the returned
    /// future stops it.
    pub async fn extract(
        &self,
        caller: &str,
        url: &Url,
        extra_headers: &[(String, String)],
    ) -> Result<Extraction, ExtractError> {
        self.on_page_threads(caller, url, extra_headers, Ok).await
    }

    /// [`Extractor::extract`], serialized as JSON (on the page threads too: a big
    /// extraction takes milliseconds to serialize).
    pub async fn extract_json(
        &self,
        caller: &str,
        url: &Url,
        extra_headers: &[(String, String)],
    ) -> Result<Vec<u8>, ExtractError> {
        self.on_page_threads(caller, url, extra_headers, |extraction| {
            serde_json::to_vec(&extraction)
                .map_err(|e| ExtractError::Decode(format!("cannot serialize the extraction: {e}")))
        })
        .await
    }

    /// Fetches and extracts `url`, then `finish`es the extraction, all on the page
    /// threads.
    async fn on_page_threads<T: Send + 'static>(
        &self,
        caller: &str,
        url: &Url,
        extra_headers: &[(String, String)],
        finish: fn(Extraction) -> Result<T, ExtractError>,
    ) -> Result<T, ExtractError> {
        let (inner, caller, url) = (self.inner.clone(), caller.to_owned(), url.clone());
        let headers = extra_header_map(extra_headers);
        self.pages
            .run(async move { finish(inner.extract(&caller, &url, &headers).await?) })
            .await
    }

    /// The fetch and extraction slots: ((in use, queued) of `fetch`, of `extract`).
    pub fn slot_usage(&self) -> ((usize, usize), (usize, usize)) {
        (self.inner.fetches.usage(), self.inner.extractions.usage())
    }
}

impl Inner {
    async fn extract(
        &self,
        caller: &str,
        url: &Url,
        headers: &HeaderMap,
    ) -> Result<Extraction, ExtractError> {
        let inner = self;
        let fetched_at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let slot = inner.fetches.acquire(caller).await?;
        let fetched = inner.fetcher.fetch(url, headers).await?;
        drop(slot);
        let bytes_fetched = fetched.body.len() as u64;
        let slot = inner.extractions.acquire(caller).await?;
        let content = inner
            .workers
            .extract(
                fetched.final_url.as_str(),
                fetched.charset.as_deref(),
                &inner.limits,
                fetched.body,
            )
            .await?;
        drop(slot);
        let content_hash = blake3::hash(content.text.as_bytes()).to_hex().to_string();
        tracing::debug!(
            url = %url,
            final_url = %fetched.final_url,
            bytes = bytes_fetched,
            text_chars = content.text.len(),
            "extracted page"
        );
        Ok(Extraction {
            url: url.to_string(),
            final_url: fetched.final_url.to_string(),
            status: fetched.status,
            content_type: fetched.content_type,
            title: content.title,
            byline: content.byline,
            excerpt: content.excerpt,
            text: content.text,
            markdown: content.markdown,
            links: content.links,
            language: content.language,
            published: content.published,
            content_hash,
            fetched_at,
            bytes_fetched,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_config_is_refused_with_the_field() {
        let cfg = ExtractConfig {
            timeout_ms: 0,
            ..ExtractConfig::default()
        };
        let worker = WorkerProgram::new("/nonexistent", &[]);
        let err = futures::executor::block_on(Extractor::start(&cfg, worker)).unwrap_err();
        assert_eq!(err.kind(), "invalid_config");
        assert!(err.to_string().contains("timeout_ms"), "{err}");
    }

    #[test]
    fn extractor_is_shareable() {
        fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync::<Extractor>();
    }

    #[tokio::test]
    async fn a_program_that_is_no_worker_is_refused_at_start() {
        let cfg = ExtractConfig {
            workers: 1,
            ..ExtractConfig::default()
        };
        for worker in [
            WorkerProgram::new("/nonexistent/worker", &[]),
            WorkerProgram::new("/bin/true", &[]),
            WorkerProgram::new("/bin/cat", &[]),
        ] {
            let err = Extractor::start(&cfg, worker.clone()).await.unwrap_err();
            assert_eq!(err.kind(), "extraction_unavailable", "{worker:?}: {err}");
        }
    }
}
