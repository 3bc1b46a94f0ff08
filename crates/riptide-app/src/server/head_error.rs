//! The answer to a request head hyper cannot parse, as the service's JSON error body.
//!
//! hyper answers such a head itself, before any service sees a request: 431 for a head
//! over `server.max_header_bytes` (or with more than 100 header fields), 414 for a
//! target over 64 KiB, 400 for anything malformed. Its answer has an empty body, and
//! hyper has no hook to change it. So the socket writer ([`super::connection`]) looks
//! at what hyper writes while no request is in flight: a write that is exactly one of
//! those canned answers (a status line and nothing but `content-length: 0`, `date` and
//! `connection` headers) is replaced by [`answer`], the same status with the JSON
//! body. A response of the router never has that form: every one carries
//! `x-request-id` and a JSON error body has a length.
//!
//! hyper closes the connection after such an answer; ours says `connection: close`.
//! The client may still be sending the rest of its head then, and closing a socket with
//! bytes unread resets it, which can destroy the answer in the client's receive buffer
//! before it is read. So the socket [`linger`]s: its write side is shut and what still
//! arrives is read and dropped, for at most [`LINGER`].

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;

/// Longest a socket lingers after a refused head.
pub const LINGER: Duration = Duration::from_secs(1);

/// Longest write that can be one of hyper's canned answers (with the `date` header,
/// about 90 bytes).
pub const MAX_CANNED_BYTES: usize = 256;

/// `http_requests_malformed_total`: heads answered here, by `status`.
pub const MALFORMED: &str = "http_requests_malformed_total";

/// Whether a write beginning with `start` may be a canned answer: a 4xx status line.
/// The cheap test, made on every small write before [`recognize`].
pub fn may_be_canned(start: &[u8]) -> bool {
    start.starts_with(b"HTTP/1.") && start.get(9) == Some(&b'4')
}

/// The error `written` is hyper's canned answer for, if it is one.
pub fn recognize(written: &[u8], max_header_bytes: usize) -> Option<ApiError> {
    if written.len() > MAX_CANNED_BYTES || !may_be_canned(written) {
        return None;
    }
    let text = std::str::from_utf8(written).ok()?;
    let head = text.strip_suffix("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let error = match status_line.get("HTTP/1.x ".len()..)? {
        "400 Bad Request" => ApiError::MalformedRequest,
        "414 URI Too Long" => ApiError::UriTooLong,
        "431 Request Header Fields Too Large" => ApiError::HeaderTooLarge {
            max_bytes: max_header_bytes,
        },
        _ => return None,
    };
    let canned = lines.all(|line| {
        let (name, value) = line.split_once(": ").unwrap_or((line, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => value == "0",
            "date" | "connection" => true,
            _ => false,
        }
    });
    canned.then_some(error)
}

/// The whole HTTP/1.1 answer for `error`: its status, its JSON body, and
/// `connection: close`.
pub fn answer(error: &ApiError) -> Bytes {
    let body = error.body().to_string();
    let status = error.status();
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    metrics::counter!(MALFORMED, "status" => status.as_str().to_owned()).increment(1);
    Bytes::from(head + &body)
}

/// Shuts the write side of `socket` and drops what it still receives, until the client
/// closes, [`LINGER`] has passed, or the server stops.
pub async fn linger(mut socket: TcpStream, stop: &CancellationToken) {
    let _ = socket.shutdown().await;
    let mut sink = [0u8; 8192];
    let drain = async { while let Ok(1..) = socket.read(&mut sink).await {} };
    tokio::select! {
        () = drain => {}
        () = tokio::time::sleep(LINGER) => {}
        () = stop.cancelled() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "date: Fri, 04 Dec 2026 14:50:00 GMT\r\n";

    #[test]
    fn hypers_canned_answers_are_recognized() {
        let cases = [
            ("400 Bad Request", "malformed_request"),
            ("414 URI Too Long", "uri_too_long"),
            ("431 Request Header Fields Too Large", "header_too_large"),
        ];
        for (status, code) in cases {
            let canned = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n{DATE}\r\n");
            let error = recognize(canned.as_bytes(), 8192).expect(status);
            assert_eq!(error.code(), code);
            let closing =
                format!("HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
            assert!(recognize(closing.as_bytes(), 8192).is_some(), "{closing}");
        }
    }

    #[test]
    fn other_writes_pass() {
        let router = "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
            x-request-id: 7\r\ncontent-length: 60\r\n\r\n";
        let body_tail = "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}";
        let ok = format!("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n{DATE}\r\n");
        let long = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: {}\r\n\r\n",
            "x".repeat(MAX_CANNED_BYTES)
        );
        for write in [router, body_tail, &ok, &long, "", "HTTP/1.1 4"] {
            assert!(recognize(write.as_bytes(), 8192).is_none(), "{write}");
        }
    }

    #[test]
    fn the_answer_is_json_with_the_status() {
        let bytes = answer(&ApiError::HeaderTooLarge { max_bytes: 8192 });
        let text = std::str::from_utf8(&bytes).expect("text");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(
            head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        assert!(head.contains("connection: close"), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(json["error"]["code"], "header_too_large");
    }
}
