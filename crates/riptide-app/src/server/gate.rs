//! [`Gate`]: at most `server.max_connections` connections open at once, and a fast,
//! clean refusal of any beyond.
//!
//! A refused connection gets canned bytes: `HTTP/1.1 503` with the JSON error
//! `too_many_connections`, `Retry-After: 1` and `Connection: close`, written without
//! reading the request (parsing requests is what a flood of connections would make us
//! spend time on). The refusal waits, though, until the first bytes of the request have
//! arrived (or [`LINGER`] passes): an HTTP client library that receives an answer before
//! it has sent its request takes it for a broken connection (hyper reports an
//! "unexpected message") instead of a 503. Then the write side is shut (FIN), and what
//! the client sends is read and discarded until it closes, within the same [`LINGER`]:
//! closing a socket with unread data makes the kernel answer with a reset, which can
//! destroy the 503 before the client reads it. A new socket's empty send buffer takes
//! the few hundred bytes whole, so the write never waits.
//!
//! At most [`MAX_LINGERING`] refusals are handled so at once; past that a refused
//! socket gets the bytes at once, non-blocking, and is closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::metrics::ConnMetrics;
use crate::error::ApiError;
use crate::log_every::LogEvery;

/// How long a refused connection is kept, from its accept: waiting for its request to
/// arrive, then reading it out.
pub const LINGER: Duration = Duration::from_secs(1);

/// Most refused connections lingering at once (each holds a file descriptor).
pub const MAX_LINGERING: usize = 256;

/// Bytes read out of a refused connection before it is closed regardless.
const LINGER_BYTES: usize = 64 * 1024;

/// The open-connection count and what a refusal writes.
#[derive(Debug)]
pub struct Gate {
    max: usize,
    open: AtomicUsize,
    lingering: Arc<AtomicUsize>,
    refusal: Bytes,
    metrics: Arc<ConnMetrics>,
    log: LogEvery,
}

/// One open connection's place under the limit, given back when dropped.
#[derive(Debug)]
pub struct Permit(Arc<Gate>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.open.decrement(1.0);
    }
}

impl Gate {
    /// A gate admitting `max` connections at once.
    pub fn new(max: usize, metrics: Arc<ConnMetrics>) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: AtomicUsize::new(0),
            lingering: Arc::new(AtomicUsize::new(0)),
            refusal: refusal_bytes(max),
            metrics,
            log: LogEvery::new(Duration::from_secs(10)),
        })
    }

    /// A place for one more connection, or `None` at the limit.
    pub fn try_open(self: &Arc<Self>) -> Option<Permit> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max).then_some(open + 1)
            })
            .ok()?;
        self.metrics.open.increment(1.0);
        Some(Permit(self.clone()))
    }

    /// Answers `stream` with the canned 503 and closes it (after a bounded linger, as
    /// the module says), without blocking the caller.
    pub fn refuse(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        tasks: &TaskTracker,
        stop: &CancellationToken,
    ) {
        self.metrics.refused.increment(1);
        if let Some(suppressed) = self.log.check() {
            tracing::warn!(
                client.addr = %peer,
                connections.max = self.max,
                refused.since_last_log = suppressed,
                "refusing a connection: server.max_connections reached"
            );
        }
        let lingering = self.lingering.clone();
        let admitted = lingering
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_LINGERING).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            // If the send buffer did not take it whole, the client gets a truncated
            // answer and the close, which tells it as much.
            let _ = stream.try_write(&self.refusal);
            return;
        }
        let refusal = self.refusal.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            tokio::select! {
                () = answer(stream, refusal) => {}
                () = stop.cancelled() => {}
            }
            lingering.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// Within [`LINGER`]: waits (half of it at most) for the request to start arriving,
/// writes `refusal`, shuts the write side, and reads and discards until the client
/// closes (or [`LINGER_BYTES`] were read).
async fn answer(mut stream: TcpStream, refusal: Bytes) {
    // Whether the request came or not, the answer is written. `peek` waits for a first
    // byte without taking it (`readable` may wake before there is one).
    let _ = tokio::time::timeout(LINGER / 2, stream.peek(&mut [0u8; 1])).await;
    let _ = tokio::time::timeout(LINGER / 2, async {
        if stream.write_all(&refusal).await.is_err() || stream.shutdown().await.is_err() {
            return;
        }
        let mut sink = [0u8; 4096];
        let mut read = 0;
        while read < LINGER_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read += n,
            }
        }
    })
    .await;
}

/// The whole HTTP/1.1 answer of a refused connection.
fn refusal_bytes(max: usize) -> Bytes {
    let error = ApiError::TooManyConnections { max };
    let body = error.body().to_string();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\
         retry-after: 1\r\nconnection: close\r\n\r\n{body}",
        status = error.status(),
        len = body.len(),
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_http_answer_with_the_json_error() {
        let bytes = refusal_bytes(7);
        let text = String::from_utf8(bytes.to_vec()).expect("ASCII");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        let mut lines = head.lines();
        assert_eq!(lines.next(), Some("HTTP/1.1 503 Service Unavailable"));
        let headers: Vec<&str> = lines.collect();
        for expected in [
            "content-type: application/json",
            "retry-after: 1",
            "connection: close",
        ] {
            assert!(headers.contains(&expected), "{expected}: {headers:?}");
        }
        assert!(headers.contains(&format!("content-length: {}", body.len()).as_str()));
        let json: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(json["error"]["code"], "too_many_connections");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains('7'))
        );
    }

    /// A gate of one place on a listener; the place is taken by the returned stream.
    async fn full_gate() -> (std::net::SocketAddr, TcpStream, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let held = TcpStream::connect(addr).await.expect("connect");
        let server = tokio::spawn(async move {
            let gate = Gate::new(1, Arc::new(ConnMetrics::new(1)));
            let tasks = TaskTracker::new();
            let stop = CancellationToken::new();
            let mut permits = Vec::new();
            while let Ok((stream, peer)) = listener.accept().await {
                match gate.try_open() {
                    Some(permit) => permits.push((permit, stream)),
                    None => gate.refuse(stream, peer, &tasks, &stop),
                }
            }
        });
        (addr, held, server)
    }

    #[tokio::test]
    async fn an_http_client_library_reads_the_refusal_as_a_503() {
        let (addr, _held, server) = full_gate().await;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        for _ in 0..20 {
            let response = client
                .get(format!("http://{addr}/healthz"))
                .send()
                .await
                .expect("an answer, not a broken connection");
            assert_eq!(response.status(), 503);
            assert_eq!(response.headers()["retry-after"], "1");
            let body: serde_json::Value = response.json().await.expect("JSON");
            assert_eq!(body["error"]["code"], "too_many_connections");
        }
        server.abort();
    }

    #[tokio::test]
    async fn permits_are_counted_and_given_back() {
        let gate = Gate::new(2, Arc::new(ConnMetrics::new(2)));
        let a = gate.try_open().expect("first");
        let b = gate.try_open().expect("second");
        assert!(gate.try_open().is_none());
        drop(a);
        let c = gate.try_open().expect("a place was given back");
        assert!(gate.try_open().is_none());
        drop((b, c));
        assert_eq!(gate.open.load(Ordering::Acquire), 0);
    }
}
