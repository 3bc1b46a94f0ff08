//! Where the URLs to warm come from: the seed's `CacheWarmingSource`.
//!
//! - **analytics**: the most accessed (tenant, URL) pairs over every tenant, from the
//!   access counter (which survives restarts);
//! - **tenant patterns**: each tenant's own most accessed URLs, so a small tenant's hot
//!   pages are warmed even when big tenants dominate the analytics;
//! - **manual**: the list in `warming.manual`.

use riptide_extract::{Url, normalize_url};
use riptide_persistence::TenantId;
use riptide_persistence::cache::popularity::{Popular, Popularity};
use serde::{Deserialize, Serialize};

use super::config::WarmingConfig;
use super::runner::{Target, dedup};

/// Which sources a run draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The most accessed pairs over every tenant.
    Analytics,
    /// Each tenant's own most accessed URLs.
    Tenant,
    /// `warming.manual`.
    Manual,
    /// All three.
    All,
}

impl Source {
    /// Every source.
    pub const ALL: [Source; 4] = [
        Source::Analytics,
        Source::Tenant,
        Source::Manual,
        Source::All,
    ];

    /// The source named `name` (its [`Self::as_str`]).
    pub fn parse(name: &str) -> Option<Source> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Stable lower-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Analytics => "analytics",
            Source::Tenant => "tenant",
            Source::Manual => "manual",
            Source::All => "all",
        }
    }
}

/// The seed's `CacheWarmingSource`, resolved to tenants and normalized URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheWarmingSource {
    /// Most accessed over every tenant.
    pub analytics: Vec<Target>,
    /// Each tenant's own most accessed.
    pub tenant_patterns: Vec<Target>,
    /// The configured list.
    pub manual: Vec<Target>,
}

impl CacheWarmingSource {
    /// Draws `source` from the counter and the configuration, limited to `tenant` when
    /// given: `analytics_n` analytics pairs, `tenant_n` URLs per tenant.
    pub fn collect(
        popularity: &Popularity,
        config: &WarmingConfig,
        source: Source,
        tenant: Option<&TenantId>,
        analytics_n: usize,
        tenant_n: usize,
    ) -> Self {
        let wants = |s: Source| source == s || source == Source::All;
        let mut out = Self::default();
        if wants(Source::Analytics) {
            out.analytics = match tenant {
                Some(t) => targets(popularity.top_of(t, analytics_n)),
                None => targets(popularity.top(analytics_n)),
            };
        }
        if wants(Source::Tenant) {
            let tenants = match tenant {
                Some(t) => vec![t.clone()],
                None => {
                    let mut all = popularity.tenants();
                    all.sort();
                    all
                }
            };
            for t in tenants {
                out.tenant_patterns
                    .extend(targets(popularity.top_of(&t, tenant_n)));
            }
        }
        if wants(Source::Manual) {
            out.manual = manual(config)
                .into_iter()
                .filter(|target| tenant.is_none_or(|t| *t == target.tenant))
                .collect();
        }
        out
    }

    /// Every target, manual first, then analytics, then tenant patterns, without
    /// repeats, at most `limit`.
    pub fn into_targets(self, limit: usize) -> Vec<Target> {
        let mut all = self.manual;
        all.extend(self.analytics);
        all.extend(self.tenant_patterns);
        let mut all = dedup(all);
        all.truncate(limit);
        all
    }
}

/// The manual list as targets (the configuration was validated, so nothing is dropped).
pub fn manual(config: &WarmingConfig) -> Vec<Target> {
    config
        .manual_targets()
        .unwrap_or_default()
        .into_iter()
        .map(|(tenant, url)| Target { tenant, url })
        .collect()
}

/// Counted pairs as targets. The counter holds URLs as `/extract` normalized them; one
/// that no longer parses is left out.
fn targets(popular: Vec<Popular>) -> Vec<Target> {
    popular
        .into_iter()
        .filter_map(|p| {
            let url: Url = normalize_url(&p.url).ok()?;
            Some(Target {
                tenant: p.tenant_id,
                url,
            })
        })
        .collect()
}
