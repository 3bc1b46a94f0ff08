//! The process's Prometheus recorder: installed once, rendered by `GET /metrics`, and
//! kept small by a periodic upkeep task.
//!
//! Every histogram is exposed as a Prometheus histogram (`_bucket{le=...}`, `_sum`,
//! `_count`), never as a summary: quantiles are computed by Prometheus
//! (`histogram_quantile`) and aggregate across instances and tenants. The bucket
//! boundaries of each histogram the service emits are chosen here, for the range its
//! values live in; any other histogram gets `DEFAULT_BUCKETS`.
//!
//! Label cardinality is bounded where the series are made: HTTP series by route
//! template (see `riptide_api::middleware::request_metrics`), cache series by
//! `persistence.cache.max_tracked_tenants`, tenant series by
//! `persistence.tenant.max_metric_tenants` (later tenants share `tenant_id="_other"`).

use std::sync::Mutex;
use std::time::Duration;

use metrics::Unit;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Latency buckets of `http_request_duration_seconds`, from 0.5 ms to 30 s.
const HTTP_DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

/// Buckets of `cache_access_duration_seconds`, from 5 µs (an L1 hit is ~1 µs) to 2.5 s
/// (a slow loader). 10 ms is a boundary, so the p95 > 10 ms alert is exact at its
/// threshold rather than interpolated.
const CACHE_ACCESS_BUCKETS: [f64; 16] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// Buckets of `checkpoint_duration_seconds`, from 5 ms (a near-empty store) to 2 min.
const CHECKPOINT_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Buckets of any histogram not listed above, from 100 µs to 60 s.
const DEFAULT_BUCKETS: [f64; 13] = [
    0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// What kind of series a described metric is.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// `# HELP` texts of the series the service and its persistence layer emit (the seed's
/// names first), with their kind and unit.
const DESCRIPTIONS: [(&str, Kind, Option<Unit>, &str); 30] = [
    (
        "http_requests_total",
        Kind::Counter,
        None,
        "HTTP requests answered, by method, route template and status",
    ),
    (
        "http_request_duration_seconds",
        Kind::Histogram,
        Some(Unit::Seconds),
        "Time from receiving a request to its response, by method, route template and status",
    ),
    (
        "http_connections_open",
        Kind::Gauge,
        None,
        "Client connections open now",
    ),
    (
        "http_connections_max",
        Kind::Gauge,
        None,
        "server.max_connections as enforced (lowered to fit the open-file limit)",
    ),
    (
        "http_connections_refused_total",
        Kind::Counter,
        None,
        "Connections answered 503 too_many_connections because max_connections were open",
    ),
    (
        "http_connections_timed_out_total",
        Kind::Counter,
        None,
        "Connections closed by a timeout: header (request head), idle (keep-alive), body (408)",
    ),
    (
        "http_requests_malformed_total",
        Kind::Counter,
        None,
        "Request heads hyper could not parse, answered with the JSON error, by status: 400 malformed, 414 target too long, 431 head too large",
    ),
    (
        "auth_failures_total",
        Kind::Counter,
        None,
        "Presented API keys or admin tokens that identified nobody, by credential",
    ),
    (
        "auth_throttled_total",
        Kind::Counter,
        None,
        "Requests refused 429 too_many_auth_failures before authentication, by credential",
    ),
    (
        "cache_operations_total",
        Kind::Counter,
        None,
        "Cache operations (entries for batches), by tenant, operation and result",
    ),
    (
        "cache_access_duration_seconds",
        Kind::Histogram,
        Some(Unit::Seconds),
        "Cache operation latency by tenant and operation (load is the loader's run time)",
    ),
    (
        "cache_hit_rate",
        Kind::Gauge,
        None,
        "Hits / (hits + misses) of the tenant's cache gets since start",
    ),
    (
        "cache_memory_usage_bytes",
        Kind::Gauge,
        Some(Unit::Bytes),
        "Bytes of the tenant's cache entries in the store, as last observed",
    ),
    (
        riptide_persistence::store::node_check::PERSISTENCE_GAUGE,
        Kind::Gauge,
        None,
        "1 when every Redis node that answered has AOF or RDB persistence on, 0 when one has neither (the embedded store: 1)",
    ),
    (
        riptide_persistence::store::identity::LOST_GAUGE,
        Kind::Gauge,
        None,
        "1 while the store no longer holds the identity this instance started with (wiped or replaced); set by /readyz",
    ),
    (
        riptide_persistence::sync::FENCED_WRITES_REFUSED,
        Kind::Counter,
        None,
        "Writes of a singleton job refused by the store because its lease had passed to another holding (stale fencing token), by job",
    ),
    (
        "tenant_quota_usage",
        Kind::Gauge,
        None,
        "Last observed use of a quota'd resource divided by its quota, 0..1",
    ),
    (
        "tenant_quota_denied_total",
        Kind::Counter,
        None,
        "Requests refused because they did not fit the tenant's quota",
    ),
    (
        "tenant_operations_total",
        Kind::Counter,
        None,
        "Operations recorded by usage metering, by tenant and operation",
    ),
    (
        "tenant_billing_units",
        Kind::Gauge,
        None,
        "Total in cents of the tenant's bill for the period, as last computed",
    ),
    (
        "config_reload_total",
        Kind::Counter,
        None,
        "Configuration reloads by result (applied, unchanged, error)",
    ),
    (
        "checkpoint_duration_seconds",
        Kind::Histogram,
        Some(Unit::Seconds),
        "Time to create or restore a checkpoint",
    ),
    (
        "checkpoint_operations_total",
        Kind::Counter,
        None,
        "Checkpoint creations and restores, by result",
    ),
    (
        riptide_persistence::tenant::audit::high_water::LENGTH_GAUGE,
        Kind::Gauge,
        None,
        "Length of the audit chain (its newest sequence number) this instance last saw",
    ),
    (
        riptide_persistence::tenant::audit::high_water::HEAD_GAUGE,
        Kind::Gauge,
        None,
        "First 48 bits of the audit chain's head hash this instance last saw, as an integer",
    ),
    (
        "checkpoint_size_bytes",
        Kind::Gauge,
        Some(Unit::Bytes),
        "Size of the last checkpoint written",
    ),
    (
        "session_spillover_total",
        Kind::Counter,
        None,
        "Sessions spilled from the memory tier to disk (spill) and loaded back (load)",
    ),
    (
        "usage_dropped_total",
        Kind::Counter,
        None,
        "Usage records dropped because the usage buffer was full",
    ),
    (
        "usage_flush_failures_total",
        Kind::Counter,
        None,
        "Usage batches whose write to the store failed (they are retried)",
    ),
    (
        "usage_pending_aggregates",
        Kind::Gauge,
        None,
        "(tenant, month) usage aggregates held in memory, not yet flushed",
    ),
];

/// Installs the Prometheus recorder as the process's global `metrics` recorder, or
/// returns the one already installed (a process has one recorder; tests start several
/// servers in one process).
pub fn install() -> Result<PrometheusHandle, BuildError> {
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut slot = HANDLE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(handle) = slot.as_ref() {
        return Ok(handle.clone());
    }
    let handle = builder()?.install_recorder()?;
    describe();
    *slot = Some(handle.clone());
    Ok(handle)
}

/// The exporter with every histogram's buckets.
fn builder() -> Result<PrometheusBuilder, BuildError> {
    let full = |name: &str| Matcher::Full(name.to_owned());
    PrometheusBuilder::new()
        .set_buckets(&DEFAULT_BUCKETS)?
        .set_buckets_for_metric(
            full("http_request_duration_seconds"),
            &HTTP_DURATION_BUCKETS,
        )?
        .set_buckets_for_metric(full("cache_access_duration_seconds"), &CACHE_ACCESS_BUCKETS)?
        .set_buckets_for_metric(full("checkpoint_duration_seconds"), &CHECKPOINT_BUCKETS)
}

fn describe() {
    for (name, kind, unit, help) in DESCRIPTIONS {
        match (kind, unit) {
            (Kind::Counter, Some(unit)) => metrics::describe_counter!(name, unit, help),
            (Kind::Counter, None) => metrics::describe_counter!(name, help),
            (Kind::Gauge, Some(unit)) => metrics::describe_gauge!(name, unit, help),
            (Kind::Gauge, None) => metrics::describe_gauge!(name, help),
            (Kind::Histogram, Some(unit)) => metrics::describe_histogram!(name, unit, help),
            (Kind::Histogram, None) => metrics::describe_histogram!(name, help),
        }
    }
}

/// Runs the recorder's upkeep every few seconds until `cancel` fires.
pub async fn run_upkeep(handle: PrometheusHandle, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recorder of this configuration, not installed globally.
    fn local() -> metrics_exporter_prometheus::PrometheusRecorder {
        builder().expect("valid buckets").build_recorder()
    }

    #[test]
    fn every_histogram_renders_buckets_never_quantiles() {
        let recorder = local();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::histogram!("cache_access_duration_seconds", "tenant_id" => "a")
                .record(0.000_002);
            metrics::histogram!("checkpoint_duration_seconds").record(0.2);
            metrics::histogram!("some_other_seconds").record(1.0);
        });
        let text = handle.render();
        assert!(!text.contains("quantile="), "{text}");
        assert!(
            text.contains(r#"cache_access_duration_seconds_bucket{tenant_id="a",le="0.000005"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"checkpoint_duration_seconds_bucket{le="0.25"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"some_other_seconds_bucket{le="1"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn bucket_boundaries_ascend_and_the_alert_threshold_is_one() {
        for buckets in [
            &HTTP_DURATION_BUCKETS[..],
            &CACHE_ACCESS_BUCKETS,
            &CHECKPOINT_BUCKETS,
            &DEFAULT_BUCKETS,
        ] {
            assert!(buckets.windows(2).all(|w| w[0] < w[1]), "{buckets:?}");
        }
        assert!(CACHE_ACCESS_BUCKETS.contains(&0.01));
    }
}
