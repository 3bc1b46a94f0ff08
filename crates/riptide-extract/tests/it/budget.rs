//! Extraction under its budget: pages that cost too much time or memory are refused,
//! their worker is killed and replaced, and nothing keeps running after the answer.

use std::time::{Duration, Instant};

use riptide_extract::{ExtractConfig, ExtractError, Extractor};

use crate::server::{CALLER, Site, extractor_with, tagged_extractor, test_config, worker};

/// The worker processes started with the argument `tag`, with their state (`R`
/// running, `S` sleeping...) from `/proc`. Zombies (`Z`) are not counted: they ran
/// nothing and are reaped.
fn workers(tag: &str) -> Vec<(u32, char)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let ours = cmdline.split(|&b| b == 0).any(|arg| arg == tag.as_bytes());
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ...: comm may hold spaces, so read after its ')'.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .unwrap_or('?');
        if ours && state != 'Z' {
            found.push((pid, state));
        }
    }
    found
}

/// Scheduling policies, as `/proc/<pid>/task/<tid>/stat` writes them.
const SCHED_OTHER: u32 = 0;
const SCHED_IDLE: u32 = 5;

/// The line of worker `pid`'s extracting thread's `status` that starts with `field`,
/// without it.
fn extracting_thread(pid: u32, field: &str) -> String {
    let status = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("status")).ok())
        .find(|status| status.starts_with("Name:\textract-worker"))
        .expect("an extract-worker thread");
    let line = status.lines().find(|l| l.starts_with(field)).expect(field);
    line[field.len()..].trim().to_owned()
}

/// The niceness and scheduling policy of worker `pid`'s extracting thread.
fn priority(pid: u32) -> (i32, u32) {
    let stat = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .find(|stat| stat.contains("(extract-worker)"))
        .expect("an extract-worker thread");
    // pid (comm) state ...: after the ')', nice is the 17th field and policy the 39th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    (fields[16].parse().unwrap(), fields[38].parse().unwrap())
}

async fn refused(extractor: &Extractor, site: &Site, path: &str) -> (ExtractError, Duration) {
    let started = Instant::now();
    let err = extractor
        .extract(CALLER, &site.url(path), &[])
        .await
        .expect_err(path);
    (err, started.elapsed())
}

#[tokio::test]
async fn a_page_over_the_time_budget_is_stopped_at_the_deadline() {
    let site = Site::start().await;
    // Deep enough that parsing alone outlasts the budget in any build.
    let cfg = ExtractConfig {
        max_extract_ms: 300,
        max_depth: 4_096,
        max_body_bytes: 4 << 20,
        timeout_ms: 5_000,
        ..test_config()
    };
    let tag = "budget-deadline-test";
    let extractor = tagged_extractor(cfg, tag).await;
    assert_eq!(workers(tag).len(), 2);
    let (err, took) = refused(&extractor, &site, "/deep/200000").await;
    assert_eq!(err.kind(), "page_too_complex", "{err}");
    assert!(err.to_string().contains("300 ms"), "{err}");
    assert!(took < Duration::from_secs(3), "answered after {took:?}");
    // The worker that ran it is gone (killed and reaped), the other one idle.
    let left = workers(tag);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left.iter().all(|(_, state)| *state != 'R'), "{left:?}");
    // And the pool still works.
    let page = extractor
        .extract(CALLER, &site.url("/article"), &[])
        .await
        .expect("a normal page after a killed one");
    assert!(page.text.contains("operculum"));
}

#[tokio::test]
async fn deep_pages_are_refused_before_extraction() {
    let site = Site::start().await;
    let extractor = extractor_with(ExtractConfig {
        max_body_bytes: 1 << 20,
        ..test_config()
    })
    .await;
    let (err, _) = refused(&extractor, &site, "/deep/600").await;
    assert_eq!(err.kind(), "page_too_complex");
    assert!(err.to_string().contains("512 deep"), "{err}");
    let page = extractor
        .extract(CALLER, &site.url("/deep/400"), &[])
        .await
        .expect("400 levels are fine");
    assert_eq!(page.text, "deep");
}

#[tokio::test]
async fn element_floods_are_refused_unparsed() {
    let site = Site::start().await;
    let extractor = extractor_with(ExtractConfig {
        max_body_bytes: 4 << 20,
        max_elements: 10_000,
        ..test_config()
    })
    .await;
    let (err, took) = refused(&extractor, &site, "/tiny/20000").await;
    assert_eq!(err.kind(), "page_too_complex");
    assert!(err.to_string().contains("elements"), "{err}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn a_page_over_the_memory_limit_costs_one_worker() {
    let site = Site::start().await;
    let extractor = extractor_with(ExtractConfig {
        max_body_bytes: 8 << 20,
        max_elements: 10_000_000,
        max_extract_ms: 60_000,
        timeout_ms: 10_000,
        worker_memory_bytes: 64 << 20,
        ..test_config()
    })
    .await;
    // A million elements need several hundred MiB of tree: far over 64 MiB.
    let (err, _) = refused(&extractor, &site, "/tiny/1000000").await;
    assert_eq!(err.kind(), "page_too_complex", "{err}");
    assert!(err.to_string().contains("resources"), "{err}");
    let page = extractor
        .extract(CALLER, &site.url("/article"), &[])
        .await
        .expect("the next page gets a fresh worker");
    assert!(page.text.contains("operculum"));
}

#[tokio::test]
async fn workers_are_reused_and_bounded() {
    let site = Site::start().await;
    let tag = "budget-bounded-test";
    let extractor = tagged_extractor(test_config(), tag).await;
    let before = workers(tag);
    let url = site.url("/article");
    let pages: Vec<_> = (0..12)
        .map(|_| extractor.extract(CALLER, &url, &[]))
        .collect();
    for page in futures::future::join_all(pages).await {
        page.expect("article");
    }
    // The same two processes did all the work, at a lower priority than the service.
    // (Pids only: a worker may still be running as it writes its last answer.)
    let pids = |found: Vec<(u32, char)>| found.into_iter().map(|(pid, _)| pid).collect::<Vec<_>>();
    assert_eq!(pids(workers(tag)), pids(before.clone()));
    // Niceness and policy are per thread on Linux: the thread that extracts counts.
    for (pid, _) in &before {
        let (nice, policy) = priority(*pid);
        assert_eq!((nice, policy), (10, SCHED_OTHER), "worker {pid}");
    }
    drop(extractor);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        workers(tag).is_empty(),
        "dropping the extractor stops its workers"
    );
}

#[tokio::test]
async fn workers_may_run_under_sched_idle_on_chosen_cpus() {
    let tag = "budget-idle-test";
    let config = ExtractConfig {
        idle_priority: true,
        worker_nice: 5,
        worker_cpus: vec![0],
        ..test_config()
    };
    let _extractor = tagged_extractor(config, tag).await;
    let found = workers(tag);
    assert_eq!(found.len(), 2);
    for (pid, _) in found {
        assert_eq!(priority(pid), (5, SCHED_IDLE), "worker {pid}");
        assert_eq!(
            extracting_thread(pid, "Cpus_allowed_list:"),
            "0",
            "worker {pid}"
        );
    }
}

#[tokio::test]
async fn workers_on_cpus_the_process_may_not_use_stop_the_start() {
    let config = ExtractConfig {
        workers: 1,
        worker_cpus: vec![1000],
        ..test_config()
    };
    let refused = Extractor::start(&config, worker(&[])).await.unwrap_err();
    assert_eq!(refused.kind(), "extraction_unavailable", "{refused}");
}
