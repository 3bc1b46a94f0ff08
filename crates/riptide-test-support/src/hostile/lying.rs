//! `length-lies`, served by hand on a raw TCP listener: `Content-Length: 100`, then 1 MiB.
//!
//! hyper cannot be made to send this. Given a body of known length it asserts (in debug
//! builds) that a `Content-Length` header set by hand agrees, and given a stream it stops
//! writing at the declared length. So the lie gets a listener of its own, and
//! [`HostileSite::url`](super::HostileSite::url) points `length-lies` at it.
//!
//! A client reading by the header sees a 100-byte page and then 1 MiB of bytes where the next
//! response should start. The connection is kept alive: the listener answers every further
//! request on it with the same lie until the client closes it, so a client that puts the
//! connection back in its pool is caught out on its next request there.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::Generated;
use super::pages::LIES_DECLARED;
use super::site::Hits;

/// The corpus name counted in [`Hits`] for every request answered here.
pub(crate) const NAME: &str = "length-lies";

/// A request head larger than this closes the connection.
const MAX_HEAD: usize = 64 << 10;

/// Accepts connections on `listener` and answers every request on them with `body` under a
/// `Content-Length` of [`LIES_DECLARED`], until dropped. Dropping it drops (and so closes)
/// every connection it still has open.
pub(crate) async fn serve(listener: TcpListener, body: &'static Generated, hits: Arc<Hits>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, most likely: give the tests a moment to close some.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(answer(stream, body.get(), hits.clone()));
    }
}

/// Answers each request head read from `stream` with the lie, until the client closes the
/// connection or sends a head over [`MAX_HEAD`].
async fn answer(mut stream: TcpStream, body: Bytes, hits: Arc<Hits>) {
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n\
         content-length: {LIES_DECLARED}\r\n\r\n"
    );
    let mut received = Vec::with_capacity(1024);
    loop {
        let end = loop {
            if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if received.len() > MAX_HEAD {
                return;
            }
            match stream.read_buf(&mut received).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        received.drain(..end);
        hits.count(NAME);
        if stream.write_all(head.as_bytes()).await.is_err()
            || stream.write_all(&body).await.is_err()
        {
            return;
        }
    }
}
