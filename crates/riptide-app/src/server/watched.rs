//! [`Watched`]: the accepted socket as hyper sees it. It tells the connection's clock
//! when bytes arrive, and replaces hyper's empty answer to a request head it cannot
//! parse with the JSON error ([`super::head_error`]).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::head_error;
use super::phase::ConnClock;

/// The accepted socket, telling the clock when bytes arrive, and replacing hyper's
/// empty answer to a head it cannot parse.
pub struct Watched {
    stream: TcpStream,
    clock: Arc<ConnClock>,
    max_header_bytes: usize,
    rewrite: Option<Rewrite>,
}

/// A JSON answer being written in place of hyper's canned one.
struct Rewrite {
    answer: Bytes,
    written: usize,
    /// The length of hyper's write, reported back once the answer is out.
    replaces: usize,
}

impl Watched {
    /// `stream`, reporting to `clock`, with `server.max_header_bytes` for the 431 text.
    pub fn new(stream: TcpStream, clock: Arc<ConnClock>, max_header_bytes: usize) -> Self {
        Self {
            stream,
            clock,
            max_header_bytes,
            rewrite: None,
        }
    }

    /// The socket, once hyper is done with it.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// Starts a [`Rewrite`] when `buf` is hyper's canned answer to an unparsable head.
    /// Such an answer is written only between requests, so a write while one is in
    /// flight is never looked at.
    fn check(&mut self, buf: &[u8]) {
        if self.rewrite.is_some()
            || buf.len() > head_error::MAX_CANNED_BYTES
            || !head_error::may_be_canned(buf)
        {
            return;
        }
        if let Some(error) = head_error::recognize(buf, self.max_header_bytes)
            && !self.clock.in_flight()
        {
            self.rewrite = Some(Rewrite {
                answer: head_error::answer(&error),
                written: 0,
                replaces: buf.len(),
            });
        }
    }

    /// Drives the rewrite, if any, to its end: `Some` with hyper's length when done.
    fn poll_rewrite(&mut self, cx: &mut Context<'_>) -> Option<Poll<io::Result<usize>>> {
        let rewrite = self.rewrite.as_mut()?;
        while rewrite.written < rewrite.answer.len() {
            let rest = &rewrite.answer[rewrite.written..];
            match Pin::new(&mut self.stream).poll_write(cx, rest) {
                Poll::Ready(Ok(0)) => {
                    return Some(Poll::Ready(Err(io::ErrorKind::WriteZero.into())));
                }
                Poll::Ready(Ok(n)) => rewrite.written += n,
                Poll::Ready(Err(e)) => return Some(Poll::Ready(Err(e))),
                Poll::Pending => return Some(Poll::Pending),
            }
        }
        let replaces = rewrite.replaces;
        self.rewrite = None;
        Some(Poll::Ready(Ok(replaces)))
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check(buf);
        if let Some(polled) = this.poll_rewrite(cx) {
            return polled;
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // A canned answer is small; only then are the slices joined to be looked at.
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        if this.rewrite.is_some()
            || (total <= head_error::MAX_CANNED_BYTES && head_error::may_be_canned(first))
        {
            let joined: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            this.check(&joined);
            if let Some(polled) = this.poll_rewrite(cx) {
                return polled;
            }
        }
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
