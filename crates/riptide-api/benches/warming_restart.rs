//! Hit rate after a restart, with and without startup warming, against DESIGN.md's
//! budget "hit rate after restart with warming: first minute ≥ 90% of steady state on a
//! Zipf(1.0) trace".
//!
//! The service runs in-process on the embedded store (default settings: entry TTL 1 h,
//! `warming.startup_top_n` 1,000, `warming.top_k_per_tenant` `WARMING_TOP_K`, default
//! 1,000), fetching from a local origin (`/p/{n}`, `WARMING_URLS` distinct ~1.5 KB
//! articles, each answered after `WARMING_DELAY_MS`). One tenant with quotas the trace cannot reach sends
//! `POST /extract` of pages drawn from Zipf(1.0) over the `WARMING_URLS` pages, seeded
//! (`WARMING_SEED`). A "minute" is 60 s of the trace at `WARMING_RATE` requests per
//! second, i.e. `60 × WARMING_RATE` requests.
//!
//! 1. **Steady state.** `WARMING_MINUTES` minutes of the trace, closed-loop (16 requests
//!    in flight; the hit rate depends only on the order of requests: nothing expires
//!    within the run, as nothing would within 20 minutes with a 1 h TTL). The steady
//!    state is the hit rate over the last minute. Shutdown persists the access counts.
//! 2. **Cold cache, warming on.** The stopped data dir is copied (the warm snapshot),
//!    then started once with warming off to clear the tenant's cache (what an operator's
//!    `/admin/cache/clear`, or every entry expiring while the service was down, leaves:
//!    the counts, no entries) and stopped again (the cold snapshot). A copy of it is
//!    started with warming on and the next minute of the trace is sent at once, paced
//!    at `WARMING_RATE` (startup warming runs in the background while it is served).
//! 3. **Cold cache, warming off.** The same minute on another copy of the cold snapshot.
//! 4. **Plain restart, warming on.** The same minute on a copy of the warm snapshot.
//!
//! Each restart's first-minute hit rate is set against the steady state, beside what a
//! simulated cache gives on the same requests (no expiry, no eviction; warming
//! instantaneous); two simulated tables show how the ratio moves with the request rate
//! and with the number of pages warmed.
//!
//! Run: `cargo bench -p riptide-api --bench warming_restart` (about 3.5 minutes after
//! the build: the steady state as fast as the machine answers, then three paced
//! minutes). Knobs:
//! `WARMING_RATE` (100), `WARMING_URLS` (5000), `WARMING_MINUTES` (20), `WARMING_SEED`
//! (1), `WARMING_DELAY_MS` (3), `WARMING_TOP_K` (`warming.top_k_per_tenant`, URLs
//! counted per tenant; 1000, the default). Progress on stderr, the markdown report on
//! stdout.

#[path = "warming_restart/drive.rs"]
mod drive;
#[path = "warming_restart/instance.rs"]
mod instance;
#[path = "warming_restart/pages.rs"]
mod pages;
#[path = "warming_restart/trace.rs"]
mod trace;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use drive::{Caller, Outcome, Paced, failures, hit_rate, latency_quantile};
use instance::{Instance, TENANT, config, copy_dir};
use pages::Pages;
use trace::{SplitMix64, Zipf, rate, replay, ttl_steady_state};

/// Requests in flight during the closed-loop steady-state phase.
const CALLERS: usize = 16;

/// `warming.startup_top_n` (the default).
const STARTUP_TOP_N: usize = 1_000;

/// The budget: first-minute hit rate over steady state.
const BUDGET: f64 = 0.90;

/// Zipf exponent of the trace.
const ZIPF_S: f64 = 1.0;

/// The bench's knobs.
struct Settings {
    rate: f64,
    urls: usize,
    minutes: usize,
    seed: u64,
    delay: Duration,
    top_k: usize,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let rate: f64 = env_or("WARMING_RATE", 100.0)?;
        anyhow::ensure!(
            (1.0..=10_000.0).contains(&rate),
            "WARMING_RATE must be 1 to 10000"
        );
        let urls: usize = env_or("WARMING_URLS", 5_000)?;
        anyhow::ensure!(urls >= 1, "WARMING_URLS must be at least 1");
        let minutes: usize = env_or("WARMING_MINUTES", 20)?;
        anyhow::ensure!(minutes >= 2, "WARMING_MINUTES must be at least 2");
        Ok(Self {
            rate,
            urls,
            minutes,
            seed: env_or("WARMING_SEED", 1)?,
            delay: Duration::from_millis(env_or("WARMING_DELAY_MS", 3)?),
            top_k: env_or("WARMING_TOP_K", 1_000)?,
        })
    }

    /// Requests in one "minute".
    fn minute(&self) -> usize {
        (self.rate * 60.0).round() as usize
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(raw) => raw
            .parse()
            .map_err(|e| anyhow::anyhow!("{name}={raw:?}: {e}")),
        Err(_) => Ok(default),
    }
}

/// One restart's first minute.
struct Restart {
    label: &'static str,
    paced: Paced,
    /// The simulated hit rate of the same minute.
    simulated: f64,
    /// Pages the origin served from the start of the instance to the end of the minute.
    origin_fetches: u64,
    build_time: Duration,
    warming: riptide_api::warming::RunView,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let minute = settings.minute();
    let mut rng = SplitMix64::new(settings.seed);
    let zipf = Zipf::new(settings.urls, ZIPF_S, &mut rng);
    let full = zipf.trace(&mut rng, (settings.minutes + 1) * minute);
    let (steady_trace, restart_trace) = full.split_at(settings.minutes * minute);

    let pages = Arc::new(Pages::start(settings.delay).await?);
    let root = tempfile::tempdir()?;
    let live = root.path().join("live");

    // 1. Steady state.
    eprintln!(
        "steady state: {} minutes of {minute} requests, {CALLERS} in flight",
        settings.minutes
    );
    let first = Instance::start(config(&live, true, settings.top_k)?).await?;
    let key = first.create_tenant().await?;
    let caller = Caller::new(first.addr, key.clone(), pages.clone())?;
    let mut per_minute = Vec::new();
    let mut steady_failed = 0;
    for (m, chunk) in steady_trace.chunks(minute).enumerate() {
        let started = std::time::Instant::now();
        let outcomes = caller.closed_loop(chunk, CALLERS).await?;
        steady_failed += failures(&outcomes);
        per_minute.push(hit_rate(&outcomes));
        eprintln!(
            "  minute {:>2}: hit rate {:.2}% ({:.0} req/s)",
            m + 1,
            100.0 * hit_rate(&outcomes),
            chunk.len() as f64 / started.elapsed().as_secs_f64()
        );
    }
    let warm_list: HashSet<u32> = first
        .state
        .warming
        .popularity()
        .top(STARTUP_TOP_N)
        .iter()
        .filter_map(|p| Pages::page_of(&p.url))
        .collect();
    first.stop().await?;

    // The snapshots: warm as stopped; cold with the tenant's entries cleared.
    let warm_dir = root.path().join("warm");
    copy_dir(&live, &warm_dir)?;
    let flusher = Instance::start(config(&live, false, settings.top_k)?).await?;
    flusher.counts_loaded().await?;
    let cleared = flusher.state.cache.clear(TENANT).await?;
    flusher.stop().await?;
    eprintln!("cold snapshot: {cleared} entries cleared, access counts kept");

    // Simulated references on the same requests.
    let mut seen = HashSet::new();
    let sim_steady = replay(&mut seen, steady_trace);
    let sim_steady_last = rate(&sim_steady[sim_steady.len() - minute..]);
    let sim = |mut cached: HashSet<u32>| rate(&replay(&mut cached, restart_trace));

    let runs: [(&str, &Path, bool, f64); 3] = [
        (
            "cold cache, warming on",
            &live,
            true,
            sim(warm_list.clone()),
        ),
        ("cold cache, warming off", &live, false, sim(HashSet::new())),
        (
            "plain restart (warm cache), warming on",
            &warm_dir,
            true,
            sim(seen.clone()),
        ),
    ];
    let mut restarts = Vec::new();
    for (i, (label, snapshot, warming, simulated)) in runs.into_iter().enumerate() {
        eprintln!("restart {}: {label}", i + 2);
        let dir = root.path().join(format!("run-{i}"));
        copy_dir(snapshot, &dir)?;
        let served_before = pages.served();
        let instance = Instance::start(config(&dir, warming, settings.top_k)?).await?;
        let caller = Caller::new(instance.addr, key.clone(), pages.clone())?;
        let paced = caller.paced(restart_trace, settings.rate).await?;
        let origin_fetches = pages.served() - served_before;
        let warming = instance.state.warming.status().startup;
        let build_time = instance.build_time;
        instance.stop().await?;
        eprintln!(
            "  first minute: hit rate {:.2}%",
            100.0 * hit_rate(&paced.outcomes)
        );
        restarts.push(Restart {
            label,
            paced,
            simulated,
            origin_fetches,
            build_time,
            warming,
        });
    }

    let summary = Summary {
        settings: &settings,
        zipf: &zipf,
        warm_list: &warm_list,
        per_minute: &per_minute,
        steady_failed,
        sim_steady_last,
        ttl_steady: ttl_steady_state(&zipf, settings.seed ^ 0x77, settings.rate, 3_600.0),
    };
    report(&summary, &restarts);
    Ok(())
}

/// What the report needs besides the restarts.
struct Summary<'a> {
    settings: &'a Settings,
    zipf: &'a Zipf,
    warm_list: &'a HashSet<u32>,
    per_minute: &'a [f64],
    steady_failed: usize,
    sim_steady_last: f64,
    ttl_steady: f64,
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1_000.0)
}

fn report(cx: &Summary<'_>, restarts: &[Restart]) {
    let s = cx.settings;
    let minute = s.minute();
    let steady = *cx.per_minute.last().unwrap_or(&0.0);
    println!("## Hit rate after restart with warming\n");
    println!(
        "Zipf({ZIPF_S}) over {} pages, seed {}, origin latency {} ms; a minute = {minute} requests \
         ({} req/s); steady state = minute {} of the trace; `startup_top_n` {STARTUP_TOP_N}, \
         `top_k_per_tenant` {}.\n",
        s.urls,
        s.seed,
        s.delay.as_millis(),
        s.rate,
        s.minutes,
        s.top_k,
    );

    println!("### Steady state\n");
    println!("| minute of the trace | hit rate |\n|---|---|");
    let from = cx.per_minute.len().saturating_sub(5);
    for (m, r) in cx.per_minute.iter().enumerate().skip(from) {
        println!("| {} | {} |", m + 1, pct(*r));
    }
    println!(
        "\nSteady state (measured, minute {}): **{}**; simulated on the same requests: {}; \
         change over the last minute: {:+.2} pp. Failed requests: {}. With the default 1 h \
         TTL in force for hours at {} req/s, a simulated cache settles at {}.\n",
        s.minutes,
        pct(steady),
        pct(cx.sim_steady_last),
        100.0 * (steady - cx.per_minute[cx.per_minute.len() - 2]),
        cx.steady_failed,
        s.rate,
        pct(cx.ttl_steady),
    );
    let true_top = cx.zipf.top(STARTUP_TOP_N);
    println!(
        "Warm list (the persisted top {STARTUP_TOP_N}): {} pages drawing {} of the requests; \
         {} of them are among the true top {STARTUP_TOP_N} ranks, which draw {}.\n",
        cx.warm_list.len(),
        pct(cx.zipf.mass_of(cx.warm_list)),
        cx.warm_list.intersection(&true_top).count(),
        pct(cx.zipf.mass_of_top(STARTUP_TOP_N)),
    );

    println!("### First minute after a restart\n");
    println!(
        "| restart | first-minute hit rate | ratio to steady state | budget ≥ {BUDGET:.2} | \
         ratio to the 1 h-TTL steady state | simulated (instant warming) | origin fetches | \
         p50 / p99 | failed | max send lag |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in restarts {
        let first = hit_rate(&r.paced.outcomes);
        let ratio = first / steady;
        println!(
            "| {} | **{}** | **{:.3}** | {} | {:.3} | {} | {} | {} / {} | {} | {} |",
            r.label,
            pct(first),
            ratio,
            if ratio >= BUDGET { "holds" } else { "missed" },
            first / cx.ttl_steady,
            pct(r.simulated),
            r.origin_fetches,
            ms(latency_quantile(&r.paced.outcomes, 0.5)),
            ms(latency_quantile(&r.paced.outcomes, 0.99)),
            failures(&r.paced.outcomes),
            ms(r.paced.max_lag),
        );
    }

    println!("\nHit rate by 10-second slice of the first minute:\n");
    println!("| restart | 0–10 s | 10–20 s | 20–30 s | 30–40 s | 40–50 s | 50–60 s |");
    println!("|---|---|---|---|---|---|---|");
    for r in restarts {
        let slices: Vec<String> = r
            .paced
            .outcomes
            .chunks(minute.div_ceil(6))
            .map(|c: &[Outcome]| pct(hit_rate(c)))
            .collect();
        println!("| {} | {} |", r.label, slices.join(" | "));
    }

    println!("\nStartup warming:\n");
    println!(
        "| restart | service build | state | pairs | warmed | fresh | failed | warming took | \
         finished after the first request |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in restarts {
        let w = &r.warming;
        let took = match (w.started_at, w.finished_at) {
            (Some(a), Some(b)) => format!("{} ms", (b - a).num_milliseconds()),
            _ => "-".to_owned(),
        };
        let after = w.finished_at.map_or_else(
            || "-".to_owned(),
            |b| format!("{:+} ms", (b - r.paced.started_at).num_milliseconds()),
        );
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {took} | {after} |",
            r.label,
            ms(r.build_time),
            w.state.as_str(),
            w.total,
            w.warmed,
            w.fresh,
            w.failed,
        );
    }
    sensitivity(cx);
    depth(cx);
}

/// Draws averaged per rate in [`sensitivity`].
const DRAWS: u64 = 5;

/// The ratio at other request rates, simulated (instant warming of the true top
/// `STARTUP_TOP_N`, no expiry), same pages and number of minutes, averaged over
/// [`DRAWS`] traces.
fn sensitivity(cx: &Summary<'_>) {
    let s = cx.settings;
    println!(
        "\nSimulated at other rates (same Zipf, {} pages, steady state = minute {}, instant \
         warming of the true top {STARTUP_TOP_N}; mean of {DRAWS} traces):\n",
        s.urls, s.minutes
    );
    println!(
        "| req/s | requests per minute | steady state | first minute, warmed | ratio | \
         first minute, cold | ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    for per_s in [25usize, 50, 100, 200, 500, 1_000] {
        let minute = per_s * 60;
        let (mut steady, mut warmed, mut cold) = (0.0, 0.0, 0.0);
        for draw in 0..DRAWS {
            let mut rng = SplitMix64::new(s.seed ^ ((per_s as u64) << 8) ^ draw);
            let trace = cx.zipf.trace(&mut rng, (s.minutes + 1) * minute);
            let (steady_trace, next) = trace.split_at(s.minutes * minute);
            let steady_hits = replay(&mut HashSet::new(), steady_trace);
            steady += rate(&steady_hits[steady_hits.len() - minute..]);
            warmed += rate(&replay(&mut cx.zipf.top(STARTUP_TOP_N), next));
            cold += rate(&replay(&mut HashSet::new(), next));
        }
        let n = DRAWS as f64;
        let (steady, warmed, cold) = (steady / n, warmed / n, cold / n);
        println!(
            "| {per_s} | {minute} | {} | {} | {:.3} | {} | {:.3} |",
            pct(steady),
            pct(warmed),
            warmed / steady,
            pct(cold),
            cold / steady
        );
    }
}

/// The ratio at the bench's rate for other warm-list sizes, simulated (instant warming
/// of the true top `k`, no expiry), averaged over [`DRAWS`] traces: how deep warming
/// must go for the budget on this catalogue.
fn depth(cx: &Summary<'_>) {
    let s = cx.settings;
    let minute = s.minute();
    println!(
        "\nSimulated at {} req/s for other warm-list sizes (instant warming of the true top \
         k; mean of {DRAWS} traces):\n",
        s.rate
    );
    println!("| top k warmed | share of requests | first minute | ratio to steady state |");
    println!("|---|---|---|---|");
    let traces: Vec<Vec<u32>> = (0..DRAWS)
        .map(|draw| {
            let mut rng = SplitMix64::new(s.seed ^ 0xD00D ^ draw);
            cx.zipf.trace(&mut rng, (s.minutes + 1) * minute)
        })
        .collect();
    let steady: Vec<f64> = traces
        .iter()
        .map(|t| {
            let hits = replay(&mut HashSet::new(), &t[..s.minutes * minute]);
            rate(&hits[hits.len() - minute..])
        })
        .collect();
    for k in [500, 1_000, 1_500, 2_000, 3_000, 5_000] {
        if k > s.urls {
            break;
        }
        let (mut first, mut ratio) = (0.0, 0.0);
        for (t, steady) in traces.iter().zip(&steady) {
            let r = rate(&replay(&mut cx.zipf.top(k), &t[s.minutes * minute..]));
            first += r;
            ratio += r / steady;
        }
        let n = DRAWS as f64;
        println!(
            "| {k} | {} | {} | {:.3} |",
            pct(cx.zipf.mass_of_top(k)),
            pct(first / n),
            ratio / n
        );
    }
}
