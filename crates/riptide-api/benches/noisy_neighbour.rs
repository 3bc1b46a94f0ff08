//! Noisy neighbour, against DESIGN.md's budget "a victim tenant's cached `/extract` p99
//! ≤ 2× its figure alone while another tenant sends hostile pages at its plan's full
//! rate".
//!
//! The release binary runs on the embedded store, pinned to CPU 0 (`taskset`, workers
//! included: they inherit it), with default settings but `extract.workers` 2 (and
//! `extract.idle_priority` true with `NOISY_IDLE=1`, and `extract.worker_cpus` from
//! `NOISY_WORKER_CPUS`). The
//! victim (enterprise plan) sends `POST /extract` of one cached article at a fixed
//! `NOISY_RATE` requests per second (default 1,000) over `NOISY_CONNECTIONS` (8)
//! connections, and every answer's latency is recorded. The attacker (basic plan: 1,000
//! requests per minute, the rate it sends at) sends the hostile corpus
//! ([`riptide_test_support::hostile`]) round and round, each URL with a fresh query so
//! that nothing is cached, without waiting for answers. Phases alternate, `NOISY_ROUNDS`
//! (3) rounds of `NOISY_SECONDS` (10) alone and attacked, so drift hits both.
//!
//! Run: `taskset -c 1 cargo bench -p riptide-api --bench noisy_neighbour` (the bench,
//! its load and the fixture site on CPU 1, the service on CPU 0). The markdown report
//! is on stdout.
//!
//! The hostile site and the attacker run on a runtime of their own whose thread has
//! niceness 19: on the internet they would be other machines, and here serving a bomb
//! or an endless body on the victim's runtime thread would delay the victim's own
//! requests and show up as the service's latency.

#[path = "noisy_neighbour/binary.rs"]
mod binary;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use binary::{Binary, Tenant, free_port};
use riptide_test_support::hostile::{HostileSite, corpus};
use riptide_test_support::percentiles::Dist;
use serde_json::json;
use tokio::sync::Mutex;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the victim saw in one phase.
#[derive(Default)]
struct Victim {
    latencies_us: Vec<u64>,
    errors: u64,
}

/// The victim's paced load for `length`.
async fn victim_load(base: &str, tenant: &Tenant, page: &str, length: Duration) -> Victim {
    let connections = knob("NOISY_CONNECTIONS", 8);
    let rate = knob("NOISY_RATE", 1_000);
    let per_connection = Duration::from_secs_f64(connections as f64 / rate as f64);
    let seen = Arc::new(Mutex::new(Victim::default()));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let client = reqwest::Client::new();
        let url = format!("{base}/extract");
        let (tenant, body, seen) = (tenant.clone(), json!({ "url": page }), seen.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(per_connection);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let end = Instant::now() + length;
            let mut mine = Victim::default();
            while Instant::now() < end {
                tick.tick().await;
                let started = Instant::now();
                let sent = client
                    .post(&url)
                    .bearer_auth(&tenant.key)
                    .header("x-tenant-id", &tenant.id)
                    .json(&body)
                    .send()
                    .await;
                let ok = match sent {
                    Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
                    _ => false,
                };
                if ok {
                    mine.latencies_us.push(started.elapsed().as_micros() as u64);
                } else {
                    mine.errors += 1;
                }
            }
            let mut all = seen.lock().await;
            all.latencies_us.extend(mine.latencies_us);
            all.errors += mine.errors;
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    Arc::try_unwrap(seen)
        .map(Mutex::into_inner)
        .unwrap_or_default()
}

/// Sends the hostile corpus at `per_minute` until `stop`; the answers' statuses.
async fn attack(
    base: String,
    tenant: Tenant,
    site: Arc<HostileSite>,
    per_minute: u64,
    stop: Arc<AtomicBool>,
) -> BTreeMap<u16, u64> {
    let client = reqwest::Client::new();
    // NOISY_PAGES: a comma-separated part of the corpus (to see what costs the victim).
    let only = std::env::var("NOISY_PAGES").unwrap_or_default();
    let pages: Vec<_> = corpus()
        .iter()
        .filter(|p| only.is_empty() || only.split(',').any(|n| n == p.name))
        .collect();
    let statuses = Arc::new(Mutex::new(BTreeMap::<u16, u64>::new()));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(60.0 / per_minute as f64));
    let mut sent = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let page = pages[(n as usize) % pages.len()];
        n += 1;
        let url = if page.name == "link-flood" {
            site.long_path_url(page.name, 4096)
        } else {
            format!("{}?n={n}", site.url(page.name))
        };
        let request = client
            .post(format!("{base}/extract"))
            .bearer_auth(&tenant.key)
            .header("x-tenant-id", &tenant.id)
            .json(&json!({ "url": url }))
            .timeout(Duration::from_secs(60));
        let statuses = statuses.clone();
        sent.push(tokio::spawn(async move {
            let status = request.send().await.map_or(0, |r| r.status().as_u16());
            *statuses.lock().await.entry(status).or_default() += 1;
        }));
    }
    for task in sent {
        let _ = task.await;
    }
    Arc::try_unwrap(statuses)
        .map(Mutex::into_inner)
        .unwrap_or_default()
}

fn row(name: &str, victim: &Victim) -> (u64, u64) {
    let latencies = Dist::new(victim.latencies_us.clone());
    let (p50, p99) = (latencies.p50(), latencies.p99());
    println!(
        "| {name} | {} | {} | {:.2} | {:.2} | {:.2} |",
        latencies.ns.len(),
        victim.errors,
        p50 as f64 / 1000.0,
        p99 as f64 / 1000.0,
        latencies.p(0.999) as f64 / 1000.0,
    );
    (p50, p99)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let rounds = knob("NOISY_ROUNDS", 3);
    let seconds = knob("NOISY_SECONDS", 10);
    let hostile = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .on_thread_start(|| {
            // Per thread on Linux: only the hostile runtime's threads are lowered.
            let _ = rustix::process::setpriority_process(None, 19);
        })
        .build()?;
    let site = Arc::new(hostile.spawn(HostileSite::start()).await?);
    let dir = tempfile::tempdir()?;
    // NOISY_IDLE=1: page work under SCHED_IDLE (`extract.idle_priority`).
    let idle = knob("NOISY_IDLE", 0) == 1;
    // NOISY_WORKER_CPUS=1: page work on CPU 1 (`extract.worker_cpus`), off the service's.
    let cpus = std::env::var("NOISY_WORKER_CPUS").unwrap_or_default();
    let config = format!(
        "extract:\n  allow_addresses: [\"127.0.0.1/32\"]\n  workers: 2\n  idle_priority: {idle}\n  \
         worker_cpus: [{cpus}]\n"
    );
    let rt = Binary::start(dir.path(), free_port()?, &config, "0").await?;
    let victim = rt
        .tenant(
            "victim",
            "enterprise",
            json!({"operations_per_minute": 1_000_000_000u64}),
        )
        .await?;
    let attacker = rt.tenant("attacker", "basic", json!({})).await?;
    let page = site.url("control-chars");
    // Cached once; every measured request is a HIT.
    victim_load(&rt.base, &victim, &page, Duration::from_millis(500)).await;

    let mut alone = Victim::default();
    let mut attacked = Victim::default();
    let mut outcomes = BTreeMap::<u16, u64>::new();
    let mut worker_cpu = 0u64;
    for round in 0..rounds {
        eprintln!("round {}/{rounds}: alone", round + 1);
        let phase = victim_load(&rt.base, &victim, &page, Duration::from_secs(seconds)).await;
        alone.latencies_us.extend(phase.latencies_us);
        alone.errors += phase.errors;

        eprintln!("round {}/{rounds}: attacked", round + 1);
        let stop = Arc::new(AtomicBool::new(false));
        let cpu_before = children_cpu_ms(rt.pid());
        let attacking = hostile.spawn(attack(
            rt.base.clone(),
            attacker.clone(),
            site.clone(),
            1_000,
            stop.clone(),
        ));
        let phase = victim_load(&rt.base, &victim, &page, Duration::from_secs(seconds)).await;
        worker_cpu += children_cpu_ms(rt.pid()).saturating_sub(cpu_before);
        stop.store(true, Ordering::Relaxed);
        for (status, count) in attacking.await? {
            *outcomes.entry(status).or_default() += count;
        }
        attacked.latencies_us.extend(phase.latencies_us);
        attacked.errors += phase.errors;
    }

    println!("| victim | requests | errors | p50 ms | p99 ms | p99.9 ms |");
    println!("|---|---|---|---|---|---|");
    let (_, p99_alone) = row("alone", &alone);
    let (_, p99_attacked) = row("attacked", &attacked);
    println!();
    println!(
        "idle_priority {idle}, worker_cpus [{cpus}]: victim p99 attacked / alone: {:.2} (budget <= 2.0); attacker \
         answers by status: {outcomes:?}; extraction workers' CPU while attacked: {:.1} s \
         over {} s",
        p99_attacked as f64 / p99_alone.max(1) as f64,
        worker_cpu as f64 / 1000.0,
        rounds * seconds
    );
    // A runtime cannot be dropped from async code; nothing of it is needed any more.
    hostile.shutdown_background();
    if knob("NOISY_KEEP", 0) == 1 {
        drop(rt);
        eprintln!(
            "service log kept: {}",
            dir.keep().join("riptide.log").display()
        );
    }
    Ok(())
}

/// CPU time, in ms, of the live and reaped children of `pid` (the extraction workers).
fn children_cpu_ms(pid: u32) -> u64 {
    let fields = |pid: u32| -> Vec<u64> {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.to_owned()))
            .map(|r| {
                r.split_whitespace()
                    .map(|f| f.parse().unwrap_or(0))
                    .collect()
            })
            .unwrap_or_default()
    };
    let reaped: u64 = fields(pid).get(13..15).map_or(0, |f| f.iter().sum());
    let live: u64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .map(fields)
        .filter(|f| f.get(1) == Some(&u64::from(pid)))
        .map(|f| f.get(11..13).map_or(0, |t| t.iter().sum()))
        .sum();
    (reaped + live) * 10
}
