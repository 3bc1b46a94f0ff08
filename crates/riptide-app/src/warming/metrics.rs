//! The warming metrics, named in one place:
//!
//! - `cache_warming_urls_total{tier, result}`: (tenant, URL) pairs handled, by result
//!   `warmed`, `fresh`, `failed` or `skipped`;
//! - `cache_warming_progress{tier}`: fraction handled of the tier's latest run, 0 to 1;
//! - `cache_warming_runs_total{tier, result}`: finished runs, `done` or `failed`;
//! - `cache_warming_jobs_running`: on-demand jobs running;
//! - `cache_warming_popularity_tenants`, `cache_warming_popularity_urls`: what the access
//!   counter tracks; `cache_warming_popularity_refused_total`: accesses it could not count;
//! - `cache_warming_popularity_persist_total{result}`: tenants' counts written to the
//!   store, `ok` or `error`.
//!
//! `tier` is `startup`, `background` or `on_demand`.

use riptide_persistence::cache::popularity::{PersistReport, PopularityStats};

/// Which tier a run belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Tier 1: after a start.
    Startup,
    /// Tier 3: on schedule, on the lease holder.
    Background,
    /// Tier 2: `POST /admin/cache/warm`.
    OnDemand,
}

impl Tier {
    /// The `tier` label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Tier::Startup => "startup",
            Tier::Background => "background",
            Tier::OnDemand => "on_demand",
        }
    }
}

/// Describes the metrics (once per process is enough; again is harmless).
pub fn describe() {
    metrics::describe_counter!(
        "cache_warming_urls_total",
        "(tenant, URL) pairs handled by cache warming, by tier and result"
    );
    metrics::describe_gauge!(
        "cache_warming_progress",
        "Fraction handled of the latest warm run of each tier, 0 to 1"
    );
    metrics::describe_counter!(
        "cache_warming_runs_total",
        "Finished warm runs, by tier and result"
    );
    metrics::describe_gauge!("cache_warming_jobs_running", "On-demand warm jobs running");
    metrics::describe_gauge!(
        "cache_warming_popularity_tenants",
        "Tenants whose URL accesses are counted"
    );
    metrics::describe_gauge!(
        "cache_warming_popularity_urls",
        "URLs whose accesses are counted, over every tenant"
    );
    metrics::describe_counter!(
        "cache_warming_popularity_refused_total",
        "Accesses not counted (URL too long, tenant table full)"
    );
    metrics::describe_counter!(
        "cache_warming_popularity_persist_total",
        "Tenants' access counts written to the store, by result"
    );
}

/// Counts `n` pairs of `tier` with `result`.
pub fn urls(tier: Tier, result: &'static str, n: usize) {
    if n > 0 {
        metrics::counter!("cache_warming_urls_total", "tier" => tier.as_str(), "result" => result)
            .increment(n as u64);
    }
}

/// Sets the progress of `tier`'s latest run.
pub fn progress(tier: Tier, fraction: f64) {
    metrics::gauge!("cache_warming_progress", "tier" => tier.as_str()).set(fraction);
}

/// Counts a finished run.
pub fn run_finished(tier: Tier, failed: bool) {
    let result = if failed { "failed" } else { "done" };
    metrics::counter!("cache_warming_runs_total", "tier" => tier.as_str(), "result" => result)
        .increment(1);
}

/// Sets the number of running on-demand jobs.
pub fn jobs_running(n: usize) {
    metrics::gauge!("cache_warming_jobs_running").set(n as f64);
}

/// Publishes what the access counter holds and what a persist did.
pub fn popularity(stats: &PopularityStats, persisted: Option<&PersistReport>) {
    metrics::gauge!("cache_warming_popularity_tenants").set(stats.tenants as f64);
    metrics::gauge!("cache_warming_popularity_urls").set(stats.urls as f64);
    metrics::counter!("cache_warming_popularity_refused_total").absolute(stats.refused);
    if let Some(report) = persisted {
        let ok = report.written as u64;
        let failed = report.failed.len() as u64;
        metrics::counter!("cache_warming_popularity_persist_total", "result" => "ok").increment(ok);
        metrics::counter!("cache_warming_popularity_persist_total", "result" => "error")
            .increment(failed);
    }
}
