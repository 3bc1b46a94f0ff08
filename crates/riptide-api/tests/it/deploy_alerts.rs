//! `deploy/prometheus/alerts.yml`: a valid Prometheus rules file holding the seed's three
//! alerts, whose expressions only use metrics and labels the service exposes; checked by
//! `promtool` too when it is installed (Debian: `apt-get install prometheus`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use serde::Deserialize;

use crate::deploy_promql::check_against;
use crate::metrics_traffic::exercised;

/// A Prometheus rules file (only alerting rules, every field this file uses).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    alert: String,
    expr: String,
    #[serde(rename = "for")]
    for_: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

fn alerts_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus/alerts.yml")
}

fn rules() -> Vec<Rule> {
    let text = std::fs::read_to_string(alerts_path()).expect("read alerts.yml");
    let file: RulesFile = serde_yaml_ng::from_str(&text).expect("alerts.yml is a rules file");
    let names: BTreeSet<&str> = file.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names.len(), file.groups.len(), "group names are unique");
    file.groups.into_iter().flat_map(|g| g.rules).collect()
}

/// A Prometheus duration such as `5m` or `1h30m`.
fn is_duration(text: &str) -> bool {
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let Some(unit) = ["ms", "s", "m", "h", "d", "w", "y"]
            .into_iter()
            .find(|u| rest.starts_with(u))
        else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    !text.is_empty()
}

/// The labels `{{ $labels.x }}` templates use.
fn template_labels(text: &str) -> BTreeSet<String> {
    text.match_indices("$labels.")
        .map(|(at, m)| {
            text[at + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_are_the_seeds_and_use_only_exposed_metrics() {
    let rules = rules();
    let by_name: BTreeMap<&str, &Rule> = rules.iter().map(|r| (r.alert.as_str(), r)).collect();
    assert_eq!(by_name.len(), rules.len(), "alert names are unique");
    let expected = [
        ("CachePerformanceDegraded", "warning"),
        ("TenantQuotaExceeded", "warning"),
        ("CacheHitRateLow", "info"),
    ];
    assert_eq!(
        by_name.keys().copied().collect::<BTreeSet<_>>(),
        expected.iter().map(|(n, _)| *n).collect::<BTreeSet<_>>()
    );

    let scrape = &exercised().await.after;
    for (name, severity) in expected {
        let rule = by_name[name];
        assert_eq!(
            rule.labels.get("severity").map(String::as_str),
            Some(severity)
        );
        assert!(is_duration(&rule.for_), "{name}: for {:?}", rule.for_);
        for key in ["summary", "description"] {
            let text = rule.annotations.get(key).map_or("", String::as_str);
            assert!(!text.trim().is_empty(), "{name}: no {key}");
        }
        let refs = check_against(&rule.expr, scrape).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Templates may only use labels the alert's series carry.
        let mut carried = BTreeSet::new();
        for metric in &refs.metrics {
            carried.extend(scrape.label_names(metric).into_iter().map(str::to_owned));
        }
        for text in rule.annotations.values() {
            for label in template_labels(text) {
                assert!(carried.contains(&label), "{name}: $labels.{label}");
            }
        }
    }

    // The seed's thresholds, on the seed's metrics.
    let expr = |name: &str| {
        by_name[name]
            .expr
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let latency = expr("CachePerformanceDegraded");
    assert!(
        latency.starts_with("histogram_quantile(0.95, sum by (le, tenant_id) ("),
        "{latency}"
    );
    assert!(
        latency.contains("rate(cache_access_duration_seconds_bucket{"),
        "{latency}"
    );
    assert!(latency.ends_with(") > 0.010"), "{latency}");
    assert_eq!(expr("TenantQuotaExceeded"), "tenant_quota_usage > 0.90");
    assert_eq!(expr("CacheHitRateLow"), "cache_hit_rate < 0.70");
}

#[test]
fn durations_are_read_like_prometheus_reads_them() {
    for good in ["5m", "1h30m", "30s", "500ms"] {
        assert!(is_duration(good), "{good}");
    }
    for bad in ["", "5", "m", "5 m", "5min"] {
        assert!(!is_duration(bad), "{bad}");
    }
}

/// `promtool`, when installed.
fn promtool() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("promtool"))
        .find(|p| p.is_file())
}

/// Runs `promtool args...`, returning its output; `None` when it is not installed.
fn run_promtool(args: &[&std::ffi::OsStr]) -> Option<String> {
    let Some(promtool) = promtool() else {
        eprintln!("promtool not installed: skipping (apt-get install prometheus)");
        return None;
    };
    let out = Command::new(promtool)
        .args(args)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    Some(text)
}

#[test]
fn promtool_accepts_the_rules() {
    let path = alerts_path();
    if let Some(text) = run_promtool(&["check".as_ref(), "rules".as_ref(), path.as_os_str()]) {
        assert!(text.contains("SUCCESS: 3 rules found"), "{text}");
    }
}

/// The alert expressions (read from the file) evaluated by promtool on synthetic series:
/// a tenant whose gets take ~20 ms is reported, one at ~4 ms is not, slow loads are not
/// cache accesses; quota use and hit rate cross their thresholds only where they should.
#[test]
fn promtool_evaluates_the_expressions_on_synthetic_series() {
    if promtool().is_none() {
        eprintln!("promtool not installed: skipping (apt-get install prometheus)");
        return;
    }
    let rules = rules();
    let expr = |name: &str| {
        let rule = rules.iter().find(|r| r.alert == name).expect("alert");
        serde_json::to_string(&rule.expr).expect("a JSON string is a YAML string")
    };
    let bucket = |tenant: &str, op: &str, le: &str, per_min: u32| {
        format!(
            "      - series: 'cache_access_duration_seconds_bucket{{tenant_id=\"{tenant}\",operation=\"{op}\",le=\"{le}\"}}'\n        values: '0+{per_min}x30'\n"
        )
    };
    let mut series = String::new();
    // slow: every get in (10 ms, 25 ms]; fast: every get in (2.5 ms, 5 ms], loads at 2 s.
    for (le, slow, fast, load) in [
        ("0.0025", 0, 0, 0),
        ("0.005", 0, 60, 0),
        ("0.01", 0, 60, 0),
        ("0.025", 60, 60, 0),
        ("2.5", 60, 60, 60),
        ("+Inf", 60, 60, 60),
    ] {
        series += &bucket("slow", "get", le, slow);
        series += &bucket("fast", "get", le, fast);
        series += &bucket("fast", "load", le, load);
    }
    series += "      - series: 'tenant_quota_usage{tenant_id=\"full\",resource=\"memory_bytes\"}'\n        values: '0.95x30'\n";
    series += "      - series: 'tenant_quota_usage{tenant_id=\"calm\",resource=\"memory_bytes\"}'\n        values: '0.5x30'\n";
    series += "      - series: 'cache_hit_rate{tenant_id=\"cold\"}'\n        values: '0.5x30'\n";
    series += "      - series: 'cache_hit_rate{tenant_id=\"warm\"}'\n        values: '0.9x30'\n";
    let alerts = alerts_path();
    let tests = format!(
        "rule_files:\n  - {alerts}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n{series}\
         \x20   promql_expr_test:\n\
         \x20     - expr: {latency}\n        eval_time: 20m\n        exp_samples:\n\
         \x20         - labels: '{{tenant_id=\"slow\"}}'\n            value: 0.02425\n\
         \x20     - expr: {quota}\n        eval_time: 20m\n        exp_samples:\n\
         \x20         - labels: 'tenant_quota_usage{{tenant_id=\"full\",resource=\"memory_bytes\"}}'\n            value: 0.95\n\
         \x20     - expr: {hit_rate}\n        eval_time: 20m\n        exp_samples:\n\
         \x20         - labels: 'cache_hit_rate{{tenant_id=\"cold\"}}'\n            value: 0.5\n",
        alerts = serde_json::to_string(&alerts.display().to_string()).expect("path"),
        latency = expr("CachePerformanceDegraded"),
        quota = expr("TenantQuotaExceeded"),
        hit_rate = expr("CacheHitRateLow"),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("alerts_test.yml");
    std::fs::write(&file, &tests).expect("write the promtool test");
    let out = run_promtool(&["test".as_ref(), "rules".as_ref(), file.as_os_str()])
        .expect("promtool is installed");
    assert!(out.contains("SUCCESS"), "{out}\n{tests}");
}
