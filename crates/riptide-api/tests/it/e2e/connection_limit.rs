//! `server.max_connections` against the real binary: past it, a connection is answered
//! 503 `too_many_connections` at once (`Retry-After`, `Connection: close`) and closed,
//! the process's descriptors stay bounded, and `/healthz` answers again as soon as the
//! connections holding the places are gone. At startup the soft open-file limit is
//! raised to the hard one and the connection limit fitted under it.

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::json;

use super::process::{Backend, Launch, Riptide, eventually, expect_error, json_body};
use super::raw::{HALF_HEAD, HEALTHZ, max_and_median_ms, read_response, send, until_closed};

/// What a shared, noisy machine may add to a deadline.
const SLACK: Duration = Duration::from_millis(2_000);

fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_refused_at_once_and_healthz_comes_back() {
    const MAX: usize = 16;
    const FLOOD: usize = 300;
    const HEAD: Duration = Duration::from_millis(2_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let launch = Launch::new(dir.path(), &Backend::Embedded)
        .set("server.max_connections", json!(MAX))
        .set(
            "server.header_read_timeout_ms",
            json!(HEAD.as_millis() as u64),
        );
    let rt = Riptide::start(&launch).await;
    let addr = rt.addr();
    let baseline = rt.open_fds();

    // Every place taken by a half-sent head (the test's own pooled connection may hold
    // one: then the last of these is refused, which is fine).
    let mut holding = Vec::new();
    for _ in 0..MAX {
        holding.push(send(addr, HALF_HEAD).await);
    }
    let held_at = Instant::now();

    // A flood of whole requests on new connections: each answered 503 at once.
    let flood = join_all((0..FLOOD).map(|_| async move {
        let at = Instant::now();
        let mut stream = send(addr, HEALTHZ).await;
        let connected = at.elapsed();
        let response = read_response(&mut stream, SLACK).await;
        let answered = at.elapsed() - connected;
        let closed = until_closed(&mut stream, SLACK).await.is_some();
        (response, connected, answered, closed)
    }));
    let sampler = async {
        let mut peak = 0;
        for _ in 0..50 {
            peak = peak.max(rt.open_fds());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        peak
    };
    let (answers, peak_fds) = tokio::join!(flood, sampler);
    let mut connects = Vec::new();
    let mut took = Vec::new();
    for (response, connected, after, closed) in answers {
        assert_eq!(response.status, 503, "{response:?}");
        assert_eq!(response.code(), "too_many_connections");
        assert_eq!(response.header("retry-after"), Some("1"));
        assert_eq!(response.header("connection"), Some("close"));
        assert!(closed, "a refused connection is closed");
        connects.push(connected);
        took.push(after);
    }
    let (took_max, took_median) = max_and_median_ms(&mut took);
    let (connect_max, _) = max_and_median_ms(&mut connects);

    // The probe on a new connection is refused too, at once, while the places are held...
    let client = fresh_client();
    let refused = client.get(rt.url("/healthz")).send().await.expect("sent");
    expect_error(refused, 503, "too_many_connections").await;
    // ...and answers again once the half-sent heads are closed.
    eventually("healthz answers again", HEAD + SLACK, || async {
        matches!(client.get(rt.url("/healthz")).send().await, Ok(r) if r.status() == 200)
    })
    .await;
    let back = held_at.elapsed();
    for mut stream in holding {
        assert!(until_closed(&mut stream, SLACK).await.is_some());
    }
    println!(
        "[max connections] limit {MAX}, {FLOOD} more connections at once: connected within \
         {connect_max} ms, then each refused in median {took_median} ms, max {took_max} ms; riptide \
         fds {baseline} before, at most {peak_fds} during; healthz back {} ms after the places \
         were taken (head allowance {HEAD:?})",
        back.as_millis()
    );
    assert!(took_max <= 500, "refusals took up to {took_max} ms");
    // The backlog (server.listen_backlog, 1024) holds the burst: no handshake retried.
    assert!(connect_max < 1_000, "a connect took {connect_max} ms");
    // The held places, at most 256 lingering refusals, and a little.
    assert!(peak_fds <= baseline + MAX + 256 + 16, "{peak_fds} fds");

    let metrics = rt.metrics().await;
    assert!(metrics.value("http_connections_refused_total", &[]) >= (FLOOD + 1) as f64);
    assert_eq!(metrics.value("http_connections_max", &[]), MAX as f64);
    let log = rt.log();
    assert!(log.contains("server.max_connections reached"), "{log}");
    let warnings = log.matches("server.max_connections reached").count();
    assert!(
        warnings <= 2,
        "the refusal warning is rate-limited: {warnings} lines"
    );
    rt.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_file_limit_is_raised_and_connections_fit_under_it() {
    const FLOOD: usize = 700;
    const HEAD: Duration = Duration::from_millis(1_500);
    let dir = tempfile::tempdir().expect("temp dir");
    // max_connections stays at its default (4096), which 1024 descriptors cannot hold.
    let launch = Launch::new(dir.path(), &Backend::Embedded)
        .set(
            "server.header_read_timeout_ms",
            json!(HEAD.as_millis() as u64),
        )
        .open_files(256, 1024);
    let rt = Riptide::start(&launch).await;
    let log = rt.log();
    for expected in [
        "raised the soft open-file limit",
        "open_files.before=256",
        "open_files.now=1024",
        "does not fit under the open-file limit",
        "connections.max=512",
    ] {
        assert!(log.contains(expected), "{expected} missing from:\n{log}");
    }
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", rt.pid())).expect("limits");
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files line");
    assert_eq!(
        open_files.split_whitespace().collect::<Vec<_>>()[3..5],
        ["1024", "1024"],
        "{open_files}"
    );

    // More half-sent heads than fit: 512 held, the rest refused; never out of descriptors.
    let baseline = rt.open_fds();
    let addr = rt.addr();
    let flood = join_all((0..FLOOD).map(|_| async move {
        let mut stream = send(addr, HALF_HEAD).await;
        until_closed(&mut stream, HEAD + SLACK * 2).await
    }));
    let sampler = async {
        let mut peak = 0;
        for _ in 0..100 {
            peak = peak.max(rt.open_fds());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        peak
    };
    let (answers, peak_fds) = tokio::join!(flood, sampler);
    let refused = answers
        .iter()
        .filter(|read| matches!(read, Some(bytes) if bytes.starts_with(b"HTTP/1.1 503")))
        .count();
    let timed_out = answers
        .iter()
        .filter(|read| matches!(read, Some(bytes) if bytes.is_empty()))
        .count();
    println!(
        "[open files] soft limit 256 raised to 1024, connections.max 512; {FLOOD} half heads: \
         {timed_out} held until the head allowance, {refused} refused; riptide fds {baseline} \
         before, at most {peak_fds} during"
    );
    assert_eq!(
        refused + timed_out,
        FLOOD,
        "every connection answered or closed"
    );
    assert!(timed_out <= 512, "{timed_out}");
    assert!(refused >= FLOOD - 512, "{refused}");
    assert!(peak_fds < 1024, "{peak_fds}");
    assert!(
        !rt.log().contains("accepting a connection failed"),
        "never out of descriptors:\n{}",
        rt.log()
    );
    json_body(rt.get("/healthz").await, 200).await;
    rt.stop().await;
}
