//! Raw TCP clients for the connection scenarios: a client that sends half a request
//! head, or a body slowly, or nothing, is not something an HTTP client library can be.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Half a request head: a request line and a header line never ended.
pub const HALF_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: riptide\r\nX-Slow: aaaa";

/// A whole `GET /healthz` (keep-alive, HTTP/1.1's default).
pub const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: riptide\r\n\r\n";

/// Connects to `addr`.
pub async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect to riptide")
}

/// Connects to `addr` and writes `bytes`.
pub async fn send(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = connect(addr).await;
    stream.write_all(bytes).await.expect("write");
    stream
}

/// Reads until the server closes `stream` (end of file or reset); `None` when it is
/// still open after `within`. Returns what was read.
pub async fn until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut read = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    closed.ok().map(|()| read)
}

/// One HTTP response as read off the socket.
#[derive(Debug)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `error.code` of a JSON error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Reads one response with a `Content-Length` body off `stream` within `within`.
pub async fn read_response(stream: &mut TcpStream, within: Duration) -> RawResponse {
    let deadline = Instant::now() + within;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = find(&data, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or_default();
            let status = status_line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("status line {status_line:?}"));
            let headers: Vec<(String, String)> = lines
                .filter_map(|line| line.split_once(':'))
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let body_start = end + 4;
            if data.len() >= body_start + length {
                return RawResponse {
                    status,
                    headers,
                    body: data[body_start..body_start + length].to_vec(),
                };
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let n = match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => panic!("reading a response: {e}; read so far {data:?}"),
            Err(_) => panic!("no whole response within {within:?}; read so far {data:?}"),
        };
        assert!(n > 0, "closed before a whole response: {data:?}");
        data.extend_from_slice(&buf[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The slowest and the median of `durations`, in ms, for the report lines.
pub fn max_and_median_ms(durations: &mut [Duration]) -> (u128, u128) {
    durations.sort();
    let max = durations.last().map_or(0, Duration::as_millis);
    let median = durations
        .get(durations.len() / 2)
        .map_or(0, Duration::as_millis);
    (max, median)
}
