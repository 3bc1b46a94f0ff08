//! The `warming:` section: how much each tier warms and how often, how access
//! popularity is bounded and persisted, how warm jobs are retained, and the manual list.
//!
//! Warming itself is switched by `persistence.cache.enable_warming`
//! (`ENABLE_CACHE_WARMING`); its concurrency and the "near expiry" horizon are the
//! cache's `warming_concurrency` and `warming_refresh_before_expiry_seconds`.

use std::collections::BTreeMap;

use riptide_extract::{Url, normalize_url};
use riptide_persistence::TenantId;
use riptide_persistence::cache::popularity::{MAX_TOP_K, PopularityConfig};
use serde::{Deserialize, Serialize};

use crate::invalid::Invalid;

/// Most URLs one warm run may cover (`max_job_urls`, `startup_top_n`, ...).
pub const MAX_WARM_URLS: usize = 100_000;

/// Most entries of the manual list, over every tenant.
pub const MAX_MANUAL_URLS: usize = 10_000;

/// Most failures a job lists (`max_job_failures`).
pub const MAX_LISTED_FAILURES: usize = 10_000;

/// Cache warming settings (ADR-004).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WarmingConfig {
    /// Tier 1: after a start, warm the manual list and this many of the most accessed
    /// (tenant, URL) pairs over every tenant, in the background.
    pub startup_top_n: usize,
    /// Tier 3: warm the analytics, tenant patterns and manual list this often, seconds,
    /// on the instance holding the `cache-warming` lease (at least 1).
    pub interval_seconds: u64,
    /// The "analytics" source: this many of the most accessed (tenant, URL) pairs over
    /// every tenant; also the default `limit` of an on-demand job.
    pub analytics_top_n: usize,
    /// The "tenant" source (tenant patterns): each tenant's own this many most accessed URLs.
    pub tenant_top_n: usize,
    /// URLs counted per tenant (the top-K kept in memory and in the store).
    pub top_k_per_tenant: usize,
    /// Tenants whose accesses are counted at once.
    pub max_tracked_tenants: usize,
    /// How often access counts are written to the store, ms (and once at shutdown).
    pub persist_interval_ms: u64,
    /// Finished on-demand jobs kept for `GET /admin/cache/warm/{id}`.
    pub max_jobs: usize,
    /// A finished job is forgotten after this many seconds.
    pub job_retention_seconds: u64,
    /// Failures a job lists (it counts them all).
    pub max_job_failures: usize,
    /// Most URLs one on-demand job may warm (its `limit` is capped here).
    pub max_job_urls: usize,
    /// The manual warm list: tenant id → URLs, warmed by every tier.
    pub manual: BTreeMap<String, Vec<String>>,
}

impl Default for WarmingConfig {
    fn default() -> Self {
        Self {
            startup_top_n: 1_000,
            interval_seconds: 6 * 60 * 60,
            analytics_top_n: 1_000,
            tenant_top_n: 100,
            top_k_per_tenant: 1_000,
            max_tracked_tenants: 10_000,
            persist_interval_ms: 60_000,
            max_jobs: 100,
            job_retention_seconds: 3_600,
            max_job_failures: 100,
            max_job_urls: 10_000,
            manual: BTreeMap::new(),
        }
    }
}

impl WarmingConfig {
    /// Checks every range and the manual list; errors name the dotted key.
    pub fn validate(&self) -> Result<(), Invalid> {
        let at_most = |key: &str, value: usize, max: usize| {
            if value > max {
                Err(invalid(key, format!("must be at most {max}")))
            } else {
                Ok(())
            }
        };
        at_most("warming.startup_top_n", self.startup_top_n, MAX_WARM_URLS)?;
        at_most(
            "warming.analytics_top_n",
            self.analytics_top_n,
            MAX_WARM_URLS,
        )?;
        at_most("warming.tenant_top_n", self.tenant_top_n, MAX_TOP_K)?;
        at_most(
            "warming.max_job_failures",
            self.max_job_failures,
            MAX_LISTED_FAILURES,
        )?;
        at_most("warming.max_job_urls", self.max_job_urls, MAX_WARM_URLS)?;
        let positive: [(&str, u64); 5] = [
            ("warming.interval_seconds", self.interval_seconds),
            ("warming.persist_interval_ms", self.persist_interval_ms),
            ("warming.max_jobs", self.max_jobs as u64),
            ("warming.job_retention_seconds", self.job_retention_seconds),
            ("warming.max_job_urls", self.max_job_urls as u64),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        self.popularity().validate().map_err(|e| match e {
            riptide_persistence::InvalidInput::Config { key, reason } => invalid(key, reason),
            other => invalid("warming", other.to_string()),
        })?;
        self.manual_targets().map(drop)
    }

    /// The bounds of the access counter.
    pub fn popularity(&self) -> PopularityConfig {
        PopularityConfig {
            top_k_per_tenant: self.top_k_per_tenant,
            max_tenants: self.max_tracked_tenants,
        }
    }

    /// The manual list as validated tenant ids and normalized URLs, in file order per
    /// tenant (tenants by id).
    pub fn manual_targets(&self) -> Result<Vec<(TenantId, Url)>, Invalid> {
        let mut out = Vec::new();
        for (tenant, urls) in &self.manual {
            let key = format!("warming.manual.{tenant}");
            let id = TenantId::parse(tenant).map_err(|e| invalid(&key, e.to_string()))?;
            for raw in urls {
                let url = normalize_url(raw).map_err(|e| invalid(&key, format!("{raw:?}: {e}")))?;
                out.push((id.clone(), url));
            }
            if out.len() > MAX_MANUAL_URLS {
                return Err(invalid(
                    "warming.manual",
                    format!("at most {MAX_MANUAL_URLS} URLs over every tenant"),
                ));
            }
        }
        Ok(out)
    }
}

fn invalid(key: &str, reason: impl Into<String>) -> Invalid {
    Invalid {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let cfg = WarmingConfig::default();
        assert_eq!(cfg.validate(), Ok(()));
        assert_eq!(cfg.startup_top_n, 1_000);
        assert_eq!(cfg.interval_seconds, 21_600);
    }

    #[test]
    fn bad_values_name_their_key() {
        type Case = (&'static str, fn(&mut WarmingConfig));
        let cases: [Case; 7] = [
            ("warming.interval_seconds", |c| c.interval_seconds = 0),
            ("warming.persist_interval_ms", |c| c.persist_interval_ms = 0),
            ("warming.top_k_per_tenant", |c| c.top_k_per_tenant = 0),
            ("warming.max_tracked_tenants", |c| c.max_tracked_tenants = 0),
            ("warming.startup_top_n", |c| {
                c.startup_top_n = MAX_WARM_URLS + 1
            }),
            ("warming.manual.Bad", |c| {
                c.manual
                    .insert("Bad".into(), vec!["https://example.com/".into()]);
            }),
            ("warming.manual.acme", |c| {
                c.manual
                    .insert("acme".into(), vec!["ftp://example.com/".into()]);
            }),
        ];
        for (key, set) in cases {
            let mut cfg = WarmingConfig::default();
            set(&mut cfg);
            let err = cfg.validate().expect_err(key);
            assert_eq!(err.key, key, "{err:?}");
        }
    }

    #[test]
    fn the_manual_list_is_normalized() {
        let mut cfg = WarmingConfig::default();
        cfg.manual.insert(
            "acme".into(),
            vec![
                "HTTPS://Example.com/a#top".into(),
                "http://b.example".into(),
            ],
        );
        let targets = cfg.manual_targets().expect("valid");
        let urls: Vec<&str> = targets.iter().map(|(_, u)| u.as_str()).collect();
        assert_eq!(urls, ["https://example.com/a", "http://b.example/"]);
        assert_eq!(targets[0].0.as_str(), "acme");
    }
}
