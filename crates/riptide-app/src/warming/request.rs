//! On-demand warm requests (tier 2): what `POST /admin/cache/warm` asks for
//! ([`WarmRequest`]), validated and resolved to (tenant, URL) targets, then registered as
//! a job ([`PreparedJob`]) that starts once the request is audited; and jobs over the
//! warm list of a restored checkpoint ([`WarmingService::warm_pairs`]).

use std::sync::Arc;

use riptide_extract::{Url, normalize_url};
use riptide_persistence::TenantId;

use super::config::WarmingConfig;
use super::jobs::{Job, TooManyJobs};
use super::runner::Target;
use super::sources::{CacheWarmingSource, Source};
use super::{WarmingService, retention, scheduler};

/// Why a warm job was not started.
#[derive(Debug, thiserror::Error)]
pub enum WarmingError {
    /// `persistence.cache.enable_warming` is off.
    #[error("cache warming is disabled (persistence.cache.enable_warming = false)")]
    Disabled,
    /// Nothing can fetch and extract pages yet.
    #[error("no page loader is installed, so nothing can be warmed")]
    NoLoader,
    /// Too many jobs are running.
    #[error(transparent)]
    TooManyJobs(#[from] TooManyJobs),
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The named tenant does not exist.
    #[error("tenant {0:?} not found")]
    UnknownTenant(String),
    /// The tenant layer failed.
    #[error(transparent)]
    Tenant(#[from] riptide_persistence::tenant::TenantError),
}

/// What an on-demand job should warm (the body of `POST /admin/cache/warm`, parsed).
#[derive(Debug, Clone, Default)]
pub struct WarmRequest {
    /// Only this tenant's cache (required with `urls`).
    pub tenant_id: Option<String>,
    /// Exactly these URLs (instead of a source).
    pub urls: Option<Vec<String>>,
    /// Which sources (default: all).
    pub source: Option<Source>,
    /// At most this many pairs (default and cap: `warming.max_job_urls`).
    pub limit: Option<usize>,
}

/// A job that is registered but not started yet (so the request can be audited first).
pub struct PreparedJob {
    service: Arc<WarmingService>,
    job: Arc<Job>,
    targets: Vec<Target>,
}

impl PreparedJob {
    /// The job's id.
    pub fn id(&self) -> &str {
        &self.job.id
    }

    /// Pairs it will warm.
    pub fn total(&self) -> usize {
        self.targets.len()
    }

    /// Starts it as a tracked task (stopped on shutdown) and returns the job.
    pub fn launch(self) -> Arc<Job> {
        let Self {
            service,
            job,
            targets,
        } = self;
        scheduler::spawn_job(&service, job.clone(), targets);
        job
    }

    /// Forgets the job without running it.
    pub fn abandon(self) {
        self.service.jobs.remove(&self.job.id);
    }
}

impl WarmingService {
    /// Validates `request`, resolves what it warms and registers the job (not started:
    /// [`PreparedJob::launch`] starts it).
    pub async fn prepare_job(
        self: &Arc<Self>,
        request: WarmRequest,
    ) -> Result<PreparedJob, WarmingError> {
        if !self.runner.cache.settings().enable_warming {
            return Err(WarmingError::Disabled);
        }
        if self.runner.pages.load().is_none() {
            return Err(WarmingError::NoLoader);
        }
        let cfg = self.config.load_full();
        let targets = self.resolve(&cfg, &request).await?;
        let job = self.jobs.create(
            if request.urls.is_some() {
                None
            } else {
                Some(request.source.unwrap_or(Source::All))
            },
            cfg.max_job_failures,
            cfg.max_jobs,
            retention(&cfg),
        )?;
        Ok(PreparedJob {
            service: self.clone(),
            job,
            targets,
        })
    }

    /// Starts a job over explicit pairs, such as a restored checkpoint's warm list
    /// (`(tenant, url)`; pairs without a tenant, or with an invalid id or URL, are left
    /// out). Refused like [`Self::prepare_job`].
    pub fn warm_pairs(
        self: &Arc<Self>,
        pairs: &[(Option<String>, String)],
    ) -> Result<Arc<Job>, WarmingError> {
        if !self.runner.cache.settings().enable_warming {
            return Err(WarmingError::Disabled);
        }
        if self.runner.pages.load().is_none() {
            return Err(WarmingError::NoLoader);
        }
        let cfg = self.config.load_full();
        let mut targets: Vec<Target> = pairs
            .iter()
            .filter_map(|(tenant, url)| {
                Some(Target {
                    tenant: TenantId::parse(tenant.as_deref()?).ok()?,
                    url: normalize_url(url).ok()?,
                })
            })
            .collect();
        targets.truncate(cfg.max_job_urls);
        let job = self
            .jobs
            .create(None, cfg.max_job_failures, cfg.max_jobs, retention(&cfg))?;
        scheduler::spawn_job(self, job.clone(), targets);
        Ok(job)
    }

    async fn resolve(
        &self,
        cfg: &WarmingConfig,
        request: &WarmRequest,
    ) -> Result<Vec<Target>, WarmingError> {
        let max = cfg.max_job_urls;
        let limit = match request.limit {
            Some(0) => return Err(WarmingError::Invalid("limit must be at least 1".into())),
            Some(n) if n > max => {
                return Err(WarmingError::Invalid(format!(
                    "limit must be at most {max} (warming.max_job_urls)"
                )));
            }
            Some(n) => n,
            None => max,
        };
        let tenant = match &request.tenant_id {
            Some(raw) => {
                let id = TenantId::parse(raw)
                    .map_err(|e| WarmingError::Invalid(format!("tenant_id: {e}")))?;
                if self.runner.tenants.get_tenant(&id).await?.is_none() {
                    return Err(WarmingError::UnknownTenant(id.to_string()));
                }
                Some(id)
            }
            None => None,
        };
        if let Some(urls) = &request.urls {
            if request.source.is_some() {
                return Err(WarmingError::Invalid(
                    "give either urls or source, not both".into(),
                ));
            }
            let Some(tenant) = tenant else {
                return Err(WarmingError::Invalid(
                    "urls need a tenant_id: each tenant has its own cache".into(),
                ));
            };
            if urls.is_empty() || urls.len() > limit {
                return Err(WarmingError::Invalid(format!(
                    "urls must list 1 to {limit} URLs"
                )));
            }
            return urls
                .iter()
                .enumerate()
                .map(|(n, raw)| {
                    let url: Url = normalize_url(raw)
                        .map_err(|e| WarmingError::Invalid(format!("urls[{n}]: {e}")))?;
                    Ok(Target {
                        tenant: tenant.clone(),
                        url,
                    })
                })
                .collect();
        }
        let source = request.source.unwrap_or(Source::All);
        if source != Source::Manual
            && let Err(e) = self.runner.popularity.load().await
        {
            tracing::warn!(error = %e, "cannot refresh the access counts; using those held here");
        }
        let analytics_n = request.limit.unwrap_or(cfg.analytics_top_n);
        let tenant_n = match (&tenant, request.limit) {
            (Some(_), Some(n)) => n,
            _ => cfg.tenant_top_n,
        };
        Ok(CacheWarmingSource::collect(
            &self.runner.popularity,
            cfg,
            source,
            tenant.as_ref(),
            analytics_n,
            tenant_n,
        )
        .into_targets(limit))
    }
}
