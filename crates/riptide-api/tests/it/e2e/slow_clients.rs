//! Slow and idle clients against the real binary: half-sent and silent connections are
//! closed at `server.header_read_timeout_ms` while everyone else is served, an idle
//! kept-alive connection at `server.keep_alive_timeout_ms` (not at the head allowance),
//! a slow request body is answered 408 `body_timeout` at `server.body_read_timeout_ms`,
//! and none of this touches a well-behaved keep-alive client or a long request in
//! flight.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

use super::process::{Backend, Launch, Riptide, Tenant, eventually, json_body};
use super::raw::{
    HALF_HEAD, HEALTHZ, connect, max_and_median_ms, read_response, send, until_closed,
};
use crate::pages::Pages;

/// The head allowance the scenarios configure.
const HEAD: Duration = Duration::from_millis(1_000);
/// The idle allowance the scenarios configure: longer than the head allowance.
const IDLE: Duration = Duration::from_millis(1_500);
/// What a shared, noisy machine may add to a deadline.
const SLACK: Duration = Duration::from_millis(2_000);

async fn start(dir: &std::path::Path, launch: impl FnOnce(Launch) -> Launch) -> (Riptide, Tenant) {
    let launch = launch(
        Launch::new(dir, &Backend::Embedded)
            .set(
                "server.header_read_timeout_ms",
                json!(HEAD.as_millis() as u64),
            )
            .set(
                "server.keep_alive_timeout_ms",
                json!(IDLE.as_millis() as u64),
            ),
    );
    let rt = Riptide::start(&launch).await;
    let tenant = rt.create_tenant("victim", "enterprise", json!({})).await;
    json_body(rt.get_as(&tenant, "/usage").await, 200).await;
    (rt, tenant)
}

/// A new connection per request, so each one has to get through the accept loop.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_and_silent_connections_are_closed_while_others_are_served() {
    const HALF: usize = 300;
    const SILENT: usize = 50;
    let dir = tempfile::tempdir().expect("temp dir");
    let (rt, tenant) = start(dir.path(), |l| l).await;
    let addr = rt.addr();
    let baseline = rt.open_fds();

    // Each task: connect, send half a head (or nothing), wait for the server to close.
    let slow: Vec<JoinHandle<Option<Duration>>> = (0..HALF + SILENT)
        .map(|i| {
            tokio::spawn(async move {
                let opened = Instant::now();
                let mut stream = if i < HALF {
                    send(addr, HALF_HEAD).await
                } else {
                    connect(addr).await
                };
                let read = until_closed(&mut stream, HEAD + SLACK * 3).await?;
                assert!(
                    read.is_empty(),
                    "answered {:?}",
                    String::from_utf8_lossy(&read)
                );
                Some(opened.elapsed())
            })
        })
        .collect();
    eventually("the server holds the slow connections", HEAD, || async {
        rt.open_fds() >= baseline + (HALF + SILENT) * 9 / 10
    })
    .await;
    let during = rt.open_fds();

    // Meanwhile, on new connections: the probe and a tenant route, promptly.
    let client = fresh_client();
    let mut served = Vec::new();
    for _ in 0..5 {
        let at = Instant::now();
        let healthz = client
            .get(rt.url("/healthz"))
            .send()
            .await
            .expect("healthz");
        assert_eq!(healthz.status(), 200);
        let usage = client
            .get(rt.url("/usage"))
            .bearer_auth(&tenant.key)
            .header("x-tenant-id", &tenant.id)
            .send()
            .await
            .expect("usage");
        assert_eq!(usage.status(), 200);
        served.push(at.elapsed());
    }

    let mut closed = Vec::new();
    for task in slow {
        let after = task.await.expect("slow client");
        closed.push(after.expect("a slow connection was never closed"));
    }
    let (served_max, served_median) = max_and_median_ms(&mut served);
    let (closed_max, closed_median) = max_and_median_ms(&mut closed);
    let earliest = closed.first().copied().unwrap_or_default();
    eventually("the server let go of their descriptors", SLACK, || async {
        rt.open_fds() <= baseline + 4
    })
    .await;
    let after = rt.open_fds();
    println!(
        "[slow clients] {HALF} half heads + {SILENT} silent, head allowance {HEAD:?}: closed after \
         {} ms at the earliest, median {closed_median} ms, max {closed_max} ms; healthz + /usage on \
         new connections meanwhile: median {served_median} ms, max {served_max} ms; riptide fds: \
         {baseline} before, {during} during, {after} after",
        earliest.as_millis()
    );
    assert!(
        earliest >= HEAD - Duration::from_millis(100),
        "closed early: {earliest:?}"
    );
    assert!(closed_max <= (HEAD + SLACK).as_millis(), "{closed_max} ms");
    assert!(served_max <= 1_000, "served in {served_max} ms meanwhile");
    assert!(
        during <= baseline + HALF + SILENT + 16,
        "{during} fds during"
    );

    let metrics = rt.metrics().await;
    let timed_out = metrics.value("http_connections_timed_out_total", &[("timeout", "header")]);
    assert!(timed_out >= (HALF + SILENT) as f64, "{timed_out}");
    rt.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_at_the_idle_timeout_not_the_head_timeout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (rt, _) = start(dir.path(), |l| l).await;
    let mut stream = send(rt.addr(), HEALTHZ).await;
    assert_eq!(read_response(&mut stream, SLACK).await.status, 200);

    // Idle for longer than the head allowance: still open, and served.
    tokio::time::sleep(HEAD + Duration::from_millis(200)).await;
    stream.write_all(HEALTHZ).await.expect("second request");
    assert_eq!(read_response(&mut stream, SLACK).await.status, 200);
    let answered = Instant::now();

    let rest = until_closed(&mut stream, IDLE + SLACK)
        .await
        .expect("closed after the idle allowance");
    let after = answered.elapsed();
    println!(
        "[idle] closed {} ms after its last answer (idle allowance {IDLE:?})",
        after.as_millis()
    );
    assert!(rest.is_empty(), "{rest:?}");
    assert!(
        after >= IDLE - Duration::from_millis(100),
        "closed early: {after:?}"
    );
    assert!(after <= IDLE + SLACK, "{after:?}");
    let metrics = rt.metrics().await;
    assert!(metrics.value("http_connections_timed_out_total", &[("timeout", "idle")]) >= 1.0);
    rt.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_clients_and_long_requests_are_untouched() {
    let pages = Pages::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (rt, tenant) = start(dir.path(), |l| l).await;

    // One connection, a request every 400 ms for 3.2 s: more than both allowances in all.
    let mut stream = connect(rt.addr()).await;
    let started = Instant::now();
    for _ in 0..8 {
        stream.write_all(HEALTHZ).await.expect("request");
        assert_eq!(read_response(&mut stream, SLACK).await.status, 200);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(started.elapsed() > HEAD + IDLE);

    // A request whose answer takes longer than both allowances is answered in full.
    let slow_page = pages.url("/pages/article.html?delay_ms=2600");
    let response = rt.extract(&tenant, &slow_page).await;
    let doc = json_body(response, 200).await;
    assert_eq!(doc["title"], "Tides of the North Sea", "{doc}");

    // And a pooled client sees no failure across pauses around the idle allowance.
    let client = reqwest::Client::new();
    for pause_ms in [100, 900, 1_200, 100] {
        let response = client
            .get(rt.url("/usage"))
            .bearer_auth(&tenant.key)
            .header("x-tenant-id", &tenant.id)
            .send()
            .await
            .expect("keep-alive request");
        assert_eq!(response.status(), 200);
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    }
    rt.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_body_is_answered_408_and_the_connection_closed() {
    const BODY: Duration = Duration::from_millis(1_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let (rt, tenant) = start(dir.path(), |l| {
        l.set(
            "server.body_read_timeout_ms",
            json!(BODY.as_millis() as u64),
        )
        // Longer than the body allowance: the connection is not cut for its head.
        .set("server.header_read_timeout_ms", json!(5_000))
    })
    .await;
    let head = format!(
        "POST /extract HTTP/1.1\r\nHost: riptide\r\nAuthorization: Bearer {}\r\n\
         X-Tenant-ID: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        tenant.key, tenant.id
    );

    // A body that stalls after a few bytes.
    let sent = Instant::now();
    let mut stalled = send(rt.addr(), format!("{head}{{\"url\":").as_bytes()).await;
    let stalled_response = read_response(&mut stalled, BODY + SLACK).await;
    let stalled_after = sent.elapsed();

    // A body that drips a byte every 200 ms: each byte in time, the whole far too slow.
    let sent = Instant::now();
    let mut dripping = send(rt.addr(), head.as_bytes()).await;
    let (mut reader, mut writer) = dripping.split();
    let drip = async {
        for _ in 0..100 {
            if writer.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let answer = async {
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(BODY + SLACK, async {
            use tokio::io::AsyncReadExt;
            let mut chunk = [0u8; 1024];
            while let Ok(n) = reader.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await;
        (buf, sent.elapsed())
    };
    let ((answer, dripping_after), ()) = tokio::join!(answer, async {
        tokio::select! {
            () = drip => {}
            () = tokio::time::sleep(BODY + SLACK) => {}
        }
    });
    let dripped = String::from_utf8_lossy(&answer).into_owned();

    println!(
        "[slow body] allowance {BODY:?}: a stalled body answered after {} ms, a dripping one after {} ms",
        stalled_after.as_millis(),
        dripping_after.as_millis()
    );
    assert_eq!(stalled_response.status, 408, "{stalled_response:?}");
    assert_eq!(stalled_response.code(), "body_timeout");
    assert_eq!(stalled_response.header("connection"), Some("close"));
    assert!(stalled_response.header("x-request-id").is_some());
    assert!(
        stalled_after >= BODY - Duration::from_millis(100),
        "{stalled_after:?}"
    );
    assert!(stalled_after <= BODY + SLACK, "{stalled_after:?}");
    assert!(
        until_closed(&mut stalled, SLACK).await.is_some(),
        "the connection is closed after the 408"
    );
    assert!(dripped.starts_with("HTTP/1.1 408"), "{dripped}");
    assert!(dripped.contains("\"body_timeout\""), "{dripped}");

    let metrics = rt.metrics().await;
    assert!(metrics.value("http_connections_timed_out_total", &[("timeout", "body")]) >= 2.0);
    rt.stop().await;
}
