//! Sending the trace to the service as `POST /extract {url}` of the bench tenant, and
//! reading `X-Cache` back: closed-loop (a fixed number of callers, as fast as the
//! service answers; for the steady-state phase, where only the order of requests
//! matters) or paced (request `k` sent at `k / rate` seconds, whatever the previous
//! answers did; for the first minute after a restart, which races the startup warming
//! in real time).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use riptide_test_support::percentiles::Dist;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::instance::TENANT;
use crate::pages::Pages;

/// What a request needs: the service, the tenant's key, the origin's URLs.
#[derive(Clone)]
pub struct Caller {
    client: reqwest::Client,
    extract: String,
    key: String,
    pages: Arc<Pages>,
}

/// One request's result.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    /// `X-Cache: HIT`.
    pub hit: bool,
    /// Not a 200 (counted as a miss in the hit rates, and reported).
    pub failed: bool,
    /// Request to response, as the caller saw it.
    pub latency: Duration,
}

/// A paced run.
pub struct Paced {
    /// One outcome per request, in trace order.
    pub outcomes: Vec<Outcome>,
    /// When the first request was due (the `chrono` time, to compare with the warming
    /// progress's timestamps).
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// How late the latest request was sent after its due time.
    pub max_lag: Duration,
}

impl Caller {
    /// A caller of the service at `addr` as the bench tenant with `key`.
    pub fn new(addr: std::net::SocketAddr, key: String, pages: Arc<Pages>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(Self {
            client,
            extract: format!("http://{addr}/extract"),
            key,
            pages,
        })
    }

    /// `POST /extract` of page `page`.
    async fn extract(&self, page: u32) -> Outcome {
        let sent = Instant::now();
        let response = self
            .client
            .post(&self.extract)
            .bearer_auth(&self.key)
            .header("x-tenant-id", TENANT)
            .json(&serde_json::json!({ "url": self.pages.url(page) }))
            .send()
            .await;
        let (hit, failed) = match response {
            Ok(r) if r.status().is_success() => {
                let hit = r.headers().get("x-cache").is_some_and(|v| v == "HIT");
                // The body is read so the connection is reused, as a client would.
                (hit, r.bytes().await.is_err())
            }
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                eprintln!("  /extract of page {page}: {status} {body}");
                (false, true)
            }
            Err(e) => {
                eprintln!("  /extract of page {page}: {e}");
                (false, true)
            }
        };
        Outcome {
            hit,
            failed,
            latency: sent.elapsed(),
        }
    }

    /// Sends `trace` with `callers` requests in flight at all times; outcomes in trace
    /// order.
    pub async fn closed_loop(&self, trace: &[u32], callers: usize) -> anyhow::Result<Vec<Outcome>> {
        let trace: Arc<[u32]> = trace.into();
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = JoinSet::new();
        for _ in 0..callers {
            let (me, trace, next) = (self.clone(), trace.clone(), next.clone());
            workers.spawn(async move {
                let mut done = Vec::new();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(page) = trace.get(k) else {
                        return done;
                    };
                    done.push((k, me.extract(*page).await));
                }
            });
        }
        let mut outcomes = vec![Outcome::default(); trace.len()];
        while let Some(done) = workers.join_next().await {
            for (k, outcome) in done.context("a caller panicked")? {
                outcomes[k] = outcome;
            }
        }
        Ok(outcomes)
    }

    /// Sends request `k` of `trace` at `k / rate` seconds from now.
    pub async fn paced(&self, trace: &[u32], rate: f64) -> anyhow::Result<Paced> {
        let started_at = chrono::Utc::now();
        let start = Instant::now();
        let mut max_lag = Duration::ZERO;
        let mut in_flight = JoinSet::new();
        for (k, page) in trace.iter().copied().enumerate() {
            let due = start + Duration::from_secs_f64(k as f64 / rate);
            tokio::time::sleep_until(due).await;
            max_lag = max_lag.max(due.elapsed());
            let me = self.clone();
            in_flight.spawn(async move { (k, me.extract(page).await) });
        }
        let mut outcomes = vec![Outcome::default(); trace.len()];
        while let Some(done) = in_flight.join_next().await {
            let (k, outcome) = done.context("a request task panicked")?;
            outcomes[k] = outcome;
        }
        Ok(Paced {
            outcomes,
            started_at,
            max_lag,
        })
    }
}

/// The hit rate of `outcomes` (0 when empty).
pub fn hit_rate(outcomes: &[Outcome]) -> f64 {
    if outcomes.is_empty() {
        return 0.0;
    }
    outcomes.iter().filter(|o| o.hit).count() as f64 / outcomes.len() as f64
}

/// Requests that did not get a 200.
pub fn failures(outcomes: &[Outcome]) -> usize {
    outcomes.iter().filter(|o| o.failed).count()
}

/// The `q` quantile of the latencies (`q` in `[0, 1]`).
pub fn latency_quantile(outcomes: &[Outcome], q: f64) -> Duration {
    let all = outcomes
        .iter()
        .map(|o| o.latency.as_nanos() as u64)
        .collect();
    Duration::from_nanos(Dist::new(all).p(q))
}
