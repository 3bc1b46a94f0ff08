//! Hostile pages against the real binary: every page of the hostile corpus
//! ([`riptide_test_support::hostile`]) gets its bounded answer, costs at most the
//! extraction budget in CPU (the service and its workers, read from `/proc`), leaves no
//! work running after the answer, and the service stays live and small.

use std::time::{Duration, Instant};

use reqwest::Response;
use riptide_test_support::hostile::{HostileSite, corpus};
use serde_json::{Value, json};

use super::proc_stats::{mib, peak_rss, running_children, tree_cpu_ms};
use super::process::{Backend, Launch, Riptide, Tenant};

/// The extraction budget the binary runs with here.
const BUDGET_MS: u64 = 2_000;
/// The fetch timeout: a slow body is cut here.
const FETCH_TIMEOUT_MS: u64 = 4_000;
/// `extract.max_answer_bytes`, the default.
const MAX_ANSWER: usize = 8 * 1024 * 1024;
/// CPU a page may cost on top of its extraction: fetching, decoding a body of up to
/// 5 MiB and the request itself, in a debug build.
const FETCH_CPU_MS: u64 = 1_500;

fn launch(dir: &std::path::Path) -> Launch {
    Launch::new(dir, &Backend::Embedded)
        .set("extract.max_extract_ms", json!(BUDGET_MS))
        .set("extract.timeout_ms", json!(FETCH_TIMEOUT_MS))
        .set("extract.workers", json!(2))
}

/// Status, error code and body length of an answer; the error's message is logged.
async fn outcome(response: Response) -> (u16, Option<String>, usize) {
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("answer body");
    let error = serde_json::from_slice::<Value>(&body)
        .ok()
        .map(|v| v["error"].clone())
        .filter(|e| e.is_object());
    if let Some(error) = &error {
        println!("{status} {error}");
    }
    let code = error.and_then(|e| e["code"].as_str().map(str::to_owned));
    (status, code, body.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_page_gets_a_bounded_answer_within_its_budget() {
    let site = HostileSite::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = Riptide::start(&launch(dir.path())).await;
    let acme = rt.create_tenant("acme", "professional", json!({})).await;
    let pid = rt.pid();
    let mut table = Vec::new();
    for page in corpus() {
        let url = if page.name == "link-flood" {
            site.long_path_url(page.name, 4096)
        } else {
            site.url(page.name)
        };
        let cpu_before = tree_cpu_ms(pid);
        let started = Instant::now();
        let (status, code, bytes) = outcome(rt.extract(&acme, &url).await).await;
        let took = started.elapsed();
        let cpu = tree_cpu_ms(pid) - cpu_before;
        table.push(format!(
            "{:<20} {status} {:<22} {:>9} B {:>6} ms {:>6} ms CPU",
            page.name,
            code.as_deref().unwrap_or("-"),
            bytes,
            took.as_millis(),
            cpu
        ));
        assert!(
            page.expect.allows(status, code.as_deref()),
            "{}: {status} {code:?}, expected {}",
            page.name,
            page.expect
        );
        assert!(
            bytes <= MAX_ANSWER + 64 * 1024,
            "{}: {bytes} bytes",
            page.name
        );
        assert!(
            cpu <= BUDGET_MS + FETCH_CPU_MS,
            "{}: {cpu} ms of CPU for a budget of {BUDGET_MS} ms",
            page.name
        );
        assert!(
            took <= Duration::from_millis(FETCH_TIMEOUT_MS + BUDGET_MS + 2_000),
            "{}: answered after {took:?}",
            page.name
        );
    }
    println!("{}", table.join("\n"));

    // Still serving, still extracting, and small.
    assert_eq!(rt.get("/healthz").await.status(), 200);
    let article = rt.extract(&acme, &site.url("control-chars")).await;
    assert_eq!(article.status(), 200);
    let peak = peak_rss(pid);
    println!("service peak RSS over the corpus: {}", mib(peak));
    assert!(peak < 400 << 20, "peak RSS {}", mib(peak));
    rt.stop().await;
}

/// Tree CPU stays flat (at most `slack_ms` over `window`) and no worker is running.
async fn assert_idle(pid: u32, window: Duration, slack_ms: u64) {
    let before = tree_cpu_ms(pid);
    tokio::time::sleep(window).await;
    let spent = tree_cpu_ms(pid) - before;
    assert!(
        spent <= slack_ms,
        "{spent} ms of CPU in {window:?} after the answer"
    );
    let running = running_children(pid);
    assert!(running.is_empty(), "workers still running: {running:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_work_continues_after_the_answer_or_an_abandoned_request() {
    let site = HostileSite::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = Riptide::start(&launch(dir.path())).await;
    let acme = rt.create_tenant("acme", "professional", json!({})).await;
    let pid = rt.pid();

    // Quadratic to parse: far more than the budget if it were let run.
    let huge = site.url("deep-nesting-huge");
    let (status, code, _) = outcome(rt.extract(&acme, &huge).await).await;
    assert_eq!((status, code.as_deref()), (422, Some("page_too_complex")));
    assert_idle(pid, Duration::from_secs(1), 200).await;

    // A client that gives up before the budget: its page stops by the budget at the
    // latest, and nothing runs on.
    let abandoned = abandon(&rt, &acme, &site.url("many-attributes")).await;
    assert!(abandoned.is_err(), "the client gave up first");
    tokio::time::sleep(Duration::from_millis(BUDGET_MS + 300)).await;
    assert_idle(pid, Duration::from_secs(1), 200).await;

    let log = rt.log();
    assert!(log.contains("abandoned by its caller"), "{log}");
    rt.stop().await;
}

/// `POST /extract` of `url` by a client that waits 300 ms only.
async fn abandon(rt: &Riptide, tenant: &Tenant, url: &str) -> reqwest::Result<Response> {
    reqwest::Client::new()
        .post(rt.url("/extract"))
        .bearer_auth(&tenant.key)
        .header("x-tenant-id", &tenant.id)
        .json(&json!({ "url": url }))
        .timeout(Duration::from_millis(300))
        .send()
        .await
}
