//! A tenant's whole journey over the real binary: the admin API creates the tenant and
//! its key, `/extract` answers MISS then HIT with the same bytes, `/crawl` mixes cached,
//! fetched and failing URLs, sessions are created, used, read and deleted, `/usage`
//! counts every operation, `/metrics` counts the requests, and the usage is still there
//! after a restart.

use reqwest::Method;
use serde_json::{Value, json};

use super::on_both_backends;
use super::process::{Backend, Launch, Riptide, expect_error, json_body, x_cache};
use crate::pages::Pages;

on_both_backends!(flow);

async fn flow(backend: Backend) {
    let pages = Pages::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let launch = Launch::new(dir.path(), &backend);
    let rt = Riptide::start(&launch).await;

    let health = json_body(rt.get("/healthz").await, 200).await;
    assert_eq!(health["status"], "ok");
    let ready = json_body(rt.get("/readyz").await, 200).await;
    assert_eq!(ready["store"], backend.kind(), "{ready}");

    let acme = rt.create_tenant("acme", "professional", json!({})).await;
    let listed = rt
        .admin_json(Method::GET, "/admin/tenants", None, 200)
        .await;
    let ids: Vec<&str> = listed["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .filter_map(|t| t["tenant_id"].as_str())
        .collect();
    assert!(ids.contains(&"acme"), "{listed}");

    // /extract: MISS, then HIT with byte-identical content; one fetch.
    let article = pages.url("/pages/article.html");
    let miss = rt.extract(&acme, &article).await;
    assert_eq!(miss.status(), 200);
    assert_eq!(x_cache(&miss), "MISS");
    let first = miss.bytes().await.expect("body");
    let hit = rt.extract(&acme, &article).await;
    assert_eq!(hit.status(), 200);
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(
        hit.bytes().await.expect("body"),
        first,
        "a HIT serves the same bytes"
    );
    assert_eq!(pages.hits("/pages/article.html"), 1);
    let doc: Value = serde_json::from_slice(&first).expect("extraction JSON");
    assert_eq!(doc["title"], "Tides of the North Sea", "{doc}");
    assert_eq!(doc["byline"], "Ada Brine", "{doc}");

    // /crawl: a cached page, a new one, an upstream failure and a bad URL, in order.
    let second = pages.url("/pages/second.html");
    let failing = pages.url("/status/500");
    let crawl = rt
        .post(
            &acme,
            "/crawl",
            json!({"urls": [article, second, failing, "not a url"], "concurrency": 2}),
        )
        .await;
    let crawl = json_body(crawl, 200).await;
    let results = crawl["results"].as_array().expect("results");
    assert_eq!(results.len(), 4, "{crawl}");
    assert_eq!(results[0]["status"], "ok", "{crawl}");
    assert_eq!(results[0]["cache"], "HIT", "{crawl}");
    assert_eq!(results[0]["data"], doc, "the cached extraction itself");
    assert_eq!(results[1]["status"], "ok", "{crawl}");
    assert_eq!(results[1]["cache"], "MISS", "{crawl}");
    assert!(results[1]["data"]["title"].is_string(), "{crawl}");
    assert_eq!(results[2]["status"], "error", "{crawl}");
    assert_eq!(results[2]["error"]["code"], "upstream_status", "{crawl}");
    assert_eq!(results[3]["status"], "error", "{crawl}");
    assert_eq!(results[3]["error"]["code"], "invalid_url", "{crawl}");
    assert_eq!(pages.hits("/pages/second.html"), 1);
    assert_eq!(
        pages.hits("/pages/article.html"),
        1,
        "served from the cache"
    );
    // What the crawl fetched, /extract serves from the cache.
    let again = rt.extract(&acme, &second).await;
    assert_eq!(x_cache(&again), "HIT");
    assert_eq!(pages.hits("/pages/second.html"), 1);

    // Sessions: create, read, fetch through, delete.
    let created = rt
        .post(
            &acme,
            "/sessions",
            json!({"headers": {"x-e2e-session": "tide-1"}, "ttl_seconds": 600}),
        )
        .await;
    let location = created
        .headers()
        .get("location")
        .expect("Location")
        .to_str()
        .expect("ASCII")
        .to_owned();
    let created = json_body(created, 201).await;
    let session = created["session_id"]
        .as_str()
        .expect("session_id")
        .to_owned();
    assert_eq!(location, format!("/sessions/{session}"));
    let read = json_body(rt.get_as(&acme, &location).await, 200).await;
    assert_eq!(read["session_id"], session.as_str());
    assert_eq!(read["headers"]["x-e2e-session"], "tide-1", "{read}");
    let through = rt
        .post(
            &acme,
            "/extract",
            json!({"url": second, "session_id": session}),
        )
        .await;
    assert_eq!(through.status(), 200);
    assert_eq!(x_cache(&through), "MISS", "cached per session");
    assert_eq!(
        pages
            .last_header("/pages/second.html", "x-e2e-session")
            .as_deref(),
        Some("tide-1"),
        "the session's header went with the fetch"
    );
    assert_eq!(rt.delete_as(&acme, &location).await.status(), 204);
    expect_error(rt.get_as(&acme, &location).await, 404, "not_found").await;
    expect_error(rt.delete_as(&acme, &location).await, 404, "not_found").await;

    // Every request that reached a handler is one operation, a crawl one per URL.
    let (extracts, crawled, sessions) = (4, 4, 5);
    let operations = extracts + crawled + sessions;
    let usage = json_body(rt.get_as(&acme, "/usage").await, 200).await;
    assert_eq!(usage["tenant_id"], "acme");
    assert_eq!(usage["plan"], "professional");
    assert_eq!(usage["usage"]["operations"], operations, "{usage}");
    assert_eq!(
        usage["usage"]["by_operation"],
        json!({"extract": extracts, "crawl": crawled, "sessions": sessions}),
        "{usage}"
    );
    // Hits: the second extract, the crawl's cached page, the crawled page extracted.
    assert_eq!(usage["usage"]["cache_hits"], 3, "{usage}");
    // Misses: the first extract, the crawl's fetch and failure, the session's fetch.
    assert_eq!(usage["usage"]["cache_misses"], 4, "{usage}");
    assert!(usage["usage"]["data_bytes"].as_u64().expect("bytes") > 0);
    assert!(usage["rate_limit"]["limit"].as_u64().is_some(), "{usage}");
    assert!(
        usage["quotas"]["memory_bytes"]["used"]
            .as_u64()
            .expect("used")
            > 0
    );

    // The admin API reports the same figures, the /usage call included. (That they
    // reach the store is checked after the restart below, and across instances in
    // `two_instances`.)
    let admin_view = rt.admin_usage("acme").await;
    assert_eq!(admin_view["operations"], operations + 1, "{admin_view}");

    // /metrics counts the extracts by route and status.
    let metrics = rt.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.expect("metrics text");
    let extract_200 = sample(
        &text,
        "http_requests_total",
        &["method=\"POST\"", "route=\"/extract\"", "status=\"200\""],
    );
    assert_eq!(extract_200, Some(f64::from(extracts)), "{text}");
    let ops = sample(
        &text,
        "tenant_operations_total",
        &["tenant_id=\"acme\"", "operation=\"crawl\""],
    );
    assert_eq!(ops, Some(f64::from(crawled)), "{text}");

    // After a clean stop and a new start on the same store, the usage is all there.
    rt.stop().await;
    let rt = Riptide::start(&launch).await;
    let usage = rt.admin_usage("acme").await;
    assert_eq!(usage["operations"], operations + 1, "{usage}");
    assert_eq!(usage["by_operation"]["usage"], 1, "{usage}");
    let hit = rt.extract(&acme, &article).await;
    assert_eq!(x_cache(&hit), "HIT", "the cache survived the restart");
    assert_eq!(hit.bytes().await.expect("body"), first);
    assert_eq!(pages.hits("/pages/article.html"), 1);
    rt.stop().await;
}

/// The value of the sample of `metric` whose labels include all of `labels`.
pub fn sample(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let rest = series.strip_prefix(metric)?;
            let matches = rest.starts_with('{') && labels.iter().all(|l| rest.contains(l));
            matches.then(|| value.parse::<f64>().expect("a sample value"))
        })
        .next()
}
