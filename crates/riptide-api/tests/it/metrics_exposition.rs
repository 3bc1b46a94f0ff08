//! `GET /metrics` after real traffic (see `metrics_traffic`): every metric of the seed,
//! and the HTTP metrics, are exposed with the seed's names, types and labels, carry the
//! values the traffic produced, and every histogram is a real histogram with buckets.

use std::collections::BTreeSet;

use chrono::Utc;

use crate::metrics_scrape::Exposition;
use crate::metrics_traffic::exercised;

/// The metric families the service must expose: name, type, labels (histograms: of the
/// `_bucket` series, without `le`).
pub const EXPOSED: [(&str, &str, &[&str]); 12] = [
    (
        "cache_operations_total",
        "counter",
        &["tenant_id", "operation", "result"],
    ),
    (
        "cache_access_duration_seconds",
        "histogram",
        &["tenant_id", "operation"],
    ),
    ("cache_hit_rate", "gauge", &["tenant_id"]),
    ("cache_memory_usage_bytes", "gauge", &["tenant_id"]),
    ("tenant_quota_usage", "gauge", &["tenant_id", "resource"]),
    (
        "tenant_operations_total",
        "counter",
        &["tenant_id", "operation"],
    ),
    ("tenant_billing_units", "gauge", &["tenant_id", "period"]),
    ("config_reload_total", "counter", &["result"]),
    ("checkpoint_duration_seconds", "histogram", &["operation"]),
    ("session_spillover_total", "counter", &["operation"]),
    (
        "http_requests_total",
        "counter",
        &["method", "route", "status"],
    ),
    (
        "http_request_duration_seconds",
        "histogram",
        &["method", "route", "status"],
    ),
];

fn set<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeSet<&'a str> {
    names.into_iter().collect()
}

/// Checks the buckets of one histogram series (`labels` selects it): `le` bounds
/// ascending to `+Inf`, counts cumulative, the `+Inf` bucket equal to `_count`.
fn assert_buckets(exp: &Exposition, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    let bucket = format!("{name}_bucket");
    let wanted = |s: &&crate::metrics_scrape::Sample| {
        labels
            .iter()
            .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    };
    let mut buckets: Vec<(f64, f64)> = exp
        .series(&bucket)
        .filter(wanted)
        .map(|s| {
            let le = s.labels.get("le").expect("a bucket has le");
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("numeric le")
            };
            (bound, s.value)
        })
        .collect();
    assert!(buckets.len() >= 5, "{name}{labels:?}: too few buckets");
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(buckets.last().map(|b| b.0), Some(f64::INFINITY));
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "{name}{labels:?}: buckets not cumulative: {buckets:?}"
    );
    let count = exp.value(&format!("{name}_count"), labels);
    assert_eq!(buckets.last().map(|b| b.1), Some(count));
    assert!(exp.find(&format!("{name}_sum"), labels).is_some());
    buckets.iter().map(|b| b.0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seed_metric_is_exposed_with_its_labels_after_real_traffic() {
    let run = exercised().await;
    let (before, after, text) = (&run.before, &run.after, &run.after_text);
    let t = run.tenant.as_str();

    for (name, kind, labels) in EXPOSED {
        assert_eq!(
            after.types.get(name).map(String::as_str),
            Some(kind),
            "{name}\n{text}"
        );
        let sample = if kind == "histogram" {
            format!("{name}_bucket")
        } else {
            name.to_owned()
        };
        let mut expected = set(labels.iter().copied());
        if kind == "histogram" {
            expected.insert("le");
        }
        assert_eq!(after.label_names(&sample), expected, "{sample}\n{text}");
    }
    // Histograms are histograms, never summaries with client-side quantiles.
    assert!(after.types.values().all(|k| k != "summary"), "{text}");
    assert!(!text.contains("quantile="), "{text}");

    // Cache: 2 sets, 3 hits, 2 misses, 1 delete of this tenant.
    let cache_ops = |operation, result| {
        after.value(
            "cache_operations_total",
            &[
                ("tenant_id", t),
                ("operation", operation),
                ("result", result),
            ],
        )
    };
    assert_eq!(cache_ops("set", "ok"), 2.0, "{text}");
    assert_eq!(cache_ops("get", "hit"), 3.0, "{text}");
    assert_eq!(cache_ops("get", "miss"), 2.0, "{text}");
    assert_eq!(cache_ops("delete", "ok"), 1.0, "{text}");
    let get = [("tenant_id", t), ("operation", "get")];
    let bounds = assert_buckets(after, "cache_access_duration_seconds", &get);
    assert!(
        bounds.contains(&0.000_005) && bounds.contains(&0.01),
        "{bounds:?}"
    );
    assert_eq!(
        after.value("cache_access_duration_seconds_count", &get),
        5.0
    );
    assert_eq!(after.value("cache_hit_rate", &[("tenant_id", t)]), 0.6);
    assert!(after.value("cache_memory_usage_bytes", &[("tenant_id", t)]) > 0.0);

    // Tenants: quota ratios within 0..1, the metered operations, this month's bill.
    for resource in ["operations_per_minute", "memory_bytes"] {
        let ratio = after
            .find(
                "tenant_quota_usage",
                &[("tenant_id", t), ("resource", resource)],
            )
            .unwrap_or_else(|| panic!("tenant_quota_usage of {resource}\n{text}"))
            .value;
        assert!((0.0..=1.0).contains(&ratio), "{resource}: {ratio}");
    }
    assert!(
        after.value(
            "tenant_quota_usage",
            &[("tenant_id", t), ("resource", "operations_per_minute")]
        ) > 0.0
    );
    assert_eq!(
        after.value(
            "tenant_operations_total",
            &[("tenant_id", t), ("operation", "extract")]
        ),
        3.0
    );
    let period = Utc::now().format("%Y-%m").to_string();
    let bill = after.find(
        "tenant_billing_units",
        &[("tenant_id", t), ("period", &period)],
    );
    assert!(bill.is_some_and(|s| s.value >= 0.0), "{text}");

    // State: counted by what this run did (other tests share the process's recorder,
    // so only growth is attributable).
    let grew = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    assert!(grew("config_reload_total", &[("result", "applied")]) >= 1.0);
    let create = [("operation", "create")];
    assert!(grew("checkpoint_duration_seconds_count", &create) >= 1.0);
    assert_buckets(after, "checkpoint_duration_seconds", &create);
    assert!(grew("session_spillover_total", &[("operation", "spill")]) >= 1.0);
    assert!(grew("session_spillover_total", &[("operation", "load")]) >= 1.0);

    // HTTP: by route template; a path matching no route is `unmatched`.
    let healthz = [("method", "GET"), ("route", "/healthz"), ("status", "200")];
    assert!(grew("http_requests_total", &healthz) >= 3.0);
    assert_buckets(after, "http_request_duration_seconds", &healthz);
    let template = [
        ("method", "GET"),
        ("route", "/admin/tenants/{id}"),
        ("status", "401"),
    ];
    assert!(grew("http_requests_total", &template) >= 1.0, "{text}");
    let unmatched = [("method", "GET"), ("route", "unmatched"), ("status", "404")];
    assert!(grew("http_requests_total", &unmatched) >= 1.0);
    assert!(
        after
            .find(
                "http_requests_total",
                &[("method", "POST"), ("status", "405")]
            )
            .is_some(),
        "{text}"
    );
    for sample in after
        .series("http_requests_total")
        .chain(after.series("http_request_duration_seconds_bucket"))
    {
        let route = &sample.labels["route"];
        assert!(
            route == "unmatched"
                || (route.starts_with('/') && !route.contains("/no/such") && !route.contains(t)),
            "raw path as a route label: {route}"
        );
    }
}
