//! Graceful shutdown under load: 16 clients send `/extract` requests in a loop (cached
//! pages, and a few uncached ones to a slow fixture page) while the binary gets SIGTERM.
//! It must exit 0 within `server.shutdown_timeout_ms`; every request that got a response
//! got a 200 in full (requests sent after the listener closed fail to connect and are
//! counted apart); a request held in flight across the signal completes; and no usage is
//! lost: after a restart on the same store, the tenant's recorded operations equal the
//! successful requests the clients counted, exactly.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::on_both_backends;
use super::process::{Backend, Launch, Riptide, Tenant, eventually, x_cache};
use crate::pages::Pages;

on_both_backends!(sigterm_under_load);

/// Concurrent clients.
const CLIENTS: usize = 16;
/// Clients whose every other request is an uncached page that takes [`SLOW_MS`].
const SLOW_CLIENTS: usize = 3;
/// How long the fixture takes to serve an uncached page, ms.
const SLOW_MS: u64 = 300;
/// `server.shutdown_timeout_ms` of the binary.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(5_000);
/// DESIGN.md's budget for a graceful shutdown under load.
const DESIGN_BUDGET: Duration = Duration::from_secs(2);
/// Successful requests to see before the signal.
const LOAD_BEFORE_SIGNAL: u64 = 300;

async fn sigterm_under_load(backend: Backend) {
    let pages = Pages::start().await;
    let gate = Gate::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let launch = Launch::new(dir.path(), &backend)
        .set(
            "server.shutdown_timeout_ms",
            json!(SHUTDOWN_TIMEOUT.as_millis() as u64),
        )
        // Usage is flushed once a second: what the last second metered is flushed by
        // the shutdown itself.
        .set("persistence.tenant.usage_flush_interval_ms", json!(1000));
    let rt = Riptide::start(&launch).await;
    let unlimited = json!({"operations_per_minute": 100_000_000u64, "burst": 100_000_000u64});
    let tenant = rt.create_tenant("loaded", "enterprise", unlimited).await;
    let cached = pages.url("/pages/article.html");
    let warm = rt.extract(&tenant, &cached).await;
    assert_eq!(warm.status(), 200);

    let load = Load::default();
    load.ok.fetch_add(1, Ordering::Relaxed); // the warm-up request
    let load = Arc::new(load);
    let clients: Vec<JoinHandle<()>> = (0..CLIENTS)
        .map(|n| {
            let target = Target {
                extract: rt.url("/extract"),
                tenant: tenant.clone(),
                cached: cached.clone(),
                slow: pages.url("/pages/second.html"),
            };
            tokio::spawn(client(n, target, load.clone()))
        })
        .collect();
    eventually("the load is under way", Duration::from_secs(60), || async {
        load.ok.load(Ordering::Relaxed) >= LOAD_BEFORE_SIGNAL
            && load.ok_uncached.load(Ordering::Relaxed) >= SLOW_CLIENTS as u64
    })
    .await;

    // One request held inside the service (its fetch waits at the gate) across the signal.
    let held = {
        let request = rt
            .as_tenant(&tenant, reqwest::Method::POST, "/extract")
            .json(&json!({"url": gate.url()}));
        tokio::spawn(async move { request.send().await })
    };
    eventually(
        "the held fetch reached the gate",
        Duration::from_secs(10),
        || async { gate.arrived() == 1 },
    )
    .await;

    let signalled = Instant::now();
    load.signalled.set(signalled).expect("one signal");
    rt.sigterm();
    let addr = rt.addr();
    let closed = eventually("the listener closes", SHUTDOWN_TIMEOUT, || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    gate.open();
    let held = held
        .await
        .expect("held task")
        .expect("the held request is answered");
    assert_eq!(held.status(), 200, "the in-flight request completes");
    assert_eq!(x_cache(&held), "MISS");
    held.bytes().await.expect("its whole body");
    load.ok.fetch_add(1, Ordering::Relaxed);

    let stopped = rt
        .wait_exit(signalled, SHUTDOWN_TIMEOUT + Duration::from_secs(5))
        .await;
    load.stop.store(true, Ordering::Relaxed);
    for task in clients {
        task.await.expect("client task");
    }
    assert_eq!(
        stopped.status.code(),
        Some(0),
        "{}\n{}",
        stopped.status,
        stopped.log
    );
    assert!(
        stopped
            .log
            .contains("shutdown report: every step completed"),
        "{}",
        stopped.log
    );
    let report = load.report();
    println!(
        "[{}] shutdown took {:?} (listener closed after {closed:?}; DESIGN budget {DESIGN_BUDGET:?}); {report}",
        backend.kind(),
        stopped.took,
    );
    assert!(
        stopped.took <= SHUTDOWN_TIMEOUT,
        "shutdown took {:?}, over server.shutdown_timeout_ms",
        stopped.took
    );
    load.assert_clean();

    // No usage lost: a new start on the same store reads exactly what was answered.
    let rt = Riptide::start(&launch).await;
    let usage = rt.admin_usage("loaded").await;
    let ok = load.ok.load(Ordering::Relaxed);
    assert_eq!(usage["operations"], ok, "{usage}\n{report}");
    assert_eq!(usage["by_operation"]["extract"], ok, "{usage}");
    rt.stop().await;
}

/// Where the clients send their requests.
struct Target {
    extract: String,
    tenant: Tenant,
    cached: String,
    slow: String,
}

/// What the clients saw.
#[derive(Default)]
struct Load {
    /// 200 responses read in full (and the test's own successful requests).
    ok: AtomicU64,
    /// Of those, uncached pages.
    ok_uncached: AtomicU64,
    /// Connections refused after the signal: the listener was closed.
    refused: AtomicU64,
    /// Requests on a kept-alive connection that the server closed, after the signal,
    /// before reading them (never processed, so never metered).
    unanswered: AtomicU64,
    /// Anything else: a non-200 response, a body cut short, a failure before the
    /// signal. Must stay empty.
    failures: Mutex<Vec<String>>,
    /// When SIGTERM was sent.
    signalled: OnceLock<Instant>,
    /// Set once the binary has exited.
    stop: AtomicBool,
}

impl Load {
    fn fail(&self, what: String) {
        self.failures.lock().expect("failures").push(what);
    }

    fn report(&self) -> String {
        format!(
            "{} requests answered 200, {} uncached; after the signal {} refused and {} unanswered; {} failures",
            self.ok.load(Ordering::Relaxed),
            self.ok_uncached.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.unanswered.load(Ordering::Relaxed),
            self.failures.lock().expect("failures").len(),
        )
    }

    fn assert_clean(&self) {
        let failures = self.failures.lock().expect("failures");
        assert!(
            failures.is_empty(),
            "{} failed requests, first: {:?}",
            failures.len(),
            failures.iter().take(5).collect::<Vec<_>>()
        );
    }
}

/// One client: requests in a loop until the service refuses the connection or the test
/// stops it (bounded by a minute either way).
async fn client(n: usize, target: Target, load: Arc<Load>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 0u64;
    while !load.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        i += 1;
        let uncached = n < SLOW_CLIENTS && i.is_multiple_of(2);
        let url = if uncached {
            format!("{}?delay_ms={SLOW_MS}&client={n}&i={i}", target.slow)
        } else {
            target.cached.clone()
        };
        let sent = http
            .post(&target.extract)
            .bearer_auth(&target.tenant.key)
            .header("x-tenant-id", &target.tenant.id)
            .json(&json!({ "url": url }))
            .send()
            .await;
        let after_signal = load.signalled.get().is_some();
        let response = match sent {
            Ok(response) => response,
            Err(e) if after_signal && e.is_connect() => {
                load.refused.fetch_add(1, Ordering::Relaxed);
                // The listener is closed: nothing more to send.
                return;
            }
            Err(e) if after_signal && e.is_request() => {
                load.unanswered.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(e) => {
                load.fail(format!("client {n} request {i}: {e:?}"));
                continue;
            }
        };
        let status = response.status();
        let cache = x_cache(&response);
        match response.bytes().await {
            Ok(_) if status == 200 => {
                load.ok.fetch_add(1, Ordering::Relaxed);
                if uncached {
                    load.ok_uncached.fetch_add(1, Ordering::Relaxed);
                    if cache != "MISS" {
                        load.fail(format!("client {n} request {i}: uncached page {cache}"));
                    }
                }
            }
            Ok(body) => load.fail(format!(
                "client {n} request {i}: {status} {}",
                String::from_utf8_lossy(&body)
            )),
            Err(e) => load.fail(format!("client {n} request {i}: {status}, body cut: {e:?}")),
        }
    }
}

/// A page server whose one page is served only once the test opens the gate, so a
/// request can be held inside the service across the signal.
struct Gate {
    addr: std::net::SocketAddr,
    state: Arc<GateState>,
    task: JoinHandle<()>,
}

struct GateState {
    arrived: AtomicU64,
    open: watch::Sender<bool>,
}

impl Gate {
    async fn start() -> Self {
        let state = Arc::new(GateState {
            arrived: AtomicU64::new(0),
            open: watch::Sender::new(false),
        });
        let app = Router::new()
            .route("/held", get(held_page))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind gate");
        let addr = listener.local_addr().expect("gate addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("gate server");
        });
        Self { addr, state, task }
    }

    fn url(&self) -> String {
        format!("http://{}/held", self.addr)
    }

    /// Requests that reached the page.
    fn arrived(&self) -> u64 {
        self.state.arrived.load(Ordering::Relaxed)
    }

    /// Lets every waiting and future request through.
    fn open(&self) {
        self.state.open.send_replace(true);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn held_page(State(state): State<Arc<GateState>>) -> impl IntoResponse {
    state.arrived.fetch_add(1, Ordering::Relaxed);
    let mut open = state.open.subscribe();
    // Bounded: an open gate, or 30 s (a failed test must not hang).
    let _ = tokio::time::timeout(Duration::from_secs(30), open.wait_for(|open| *open)).await;
    (
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        "<html><head><title>Held</title></head><body><article><p>Held across the \
         signal, then served in full.</p></article></body></html>",
    )
}
