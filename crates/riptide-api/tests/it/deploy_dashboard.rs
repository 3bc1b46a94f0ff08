//! `deploy/grafana/riptide.json`: a Grafana dashboard whose every query uses metrics and
//! labels the service exposes, with a panel for every metric family of the seed.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use crate::deploy_promql::check_against;
use crate::metrics_exposition::EXPOSED;
use crate::metrics_traffic::exercised;

fn dashboard() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/riptide.json");
    let text = std::fs::read_to_string(path).expect("read riptide.json");
    serde_json::from_str(&text).expect("riptide.json is JSON")
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {value}"))
}

/// The panels, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        out.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

/// `label_values(metric, label)` of a query variable.
fn label_values(query: &str) -> (String, String) {
    let args = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not label_values(metric, label): {query}"));
    let (metric, label) = args.split_once(',').expect("two arguments");
    (metric.trim().to_owned(), label.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_queries_exposed_metrics_and_every_metric_has_a_panel() {
    let dashboard = dashboard();
    let scrape = &exercised().await.after;
    assert!(dashboard["schemaVersion"].as_u64().expect("schemaVersion") >= 36);
    assert!(!str_of(&dashboard, "title").is_empty());
    assert!(!str_of(&dashboard, "uid").is_empty());

    // Variables: a Prometheus data source, and the tenants from label_values.
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating");
    let datasource = variables
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a data source variable");
    assert_eq!(datasource["query"], "prometheus");
    let ds_ref = format!("${{{}}}", str_of(datasource, "name"));
    let tenant = variables
        .iter()
        .find(|v| v["name"] == "tenant_id")
        .expect("a tenant_id variable");
    assert_eq!(tenant["type"], "query");
    assert_eq!(tenant["datasource"]["uid"], ds_ref.as_str());
    let query = match &tenant["query"] {
        Value::String(q) => q.as_str(),
        q => str_of(q, "query"),
    };
    let (metric, label) = label_values(query);
    assert_eq!(label, "tenant_id");
    assert!(
        scrape.label_names(&metric).contains("tenant_id"),
        "{metric} has no tenant_id label"
    );

    let mut ids = BTreeSet::new();
    let mut queried = BTreeSet::new();
    for panel in panels(&dashboard) {
        let title = str_of(panel, "title");
        assert!(
            ids.insert(panel["id"].as_u64().expect("id")),
            "duplicate id: {title}"
        );
        let grid = &panel["gridPos"];
        let (x, w) = (
            grid["x"].as_u64().expect("x"),
            grid["w"].as_u64().expect("w"),
        );
        assert!(
            x + w <= 24 && w > 0 && grid["h"].as_u64() > Some(0),
            "{title}: {grid}"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], ds_ref.as_str(), "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no queries");
        let mut ref_ids = BTreeSet::new();
        for target in targets {
            assert!(
                ref_ids.insert(str_of(target, "refId")),
                "{title}: refId twice"
            );
            let expr = str_of(target, "expr");
            let refs = check_against(expr, scrape).unwrap_or_else(|e| panic!("{title}: {e}"));
            queried.extend(refs.metrics.iter().map(|m| scrape.family_of(m).to_owned()));
        }
    }

    // A panel for every metric family of the seed (and the HTTP ones), and for warming.
    let warming = ["cache_warming_progress", "cache_warming_urls_total"];
    for family in EXPOSED.iter().map(|(family, _, _)| *family).chain(warming) {
        assert!(queried.contains(family), "no panel queries {family}");
    }
}
