//! The bodies that never end: `slow-body` drips a byte every 100 ms, `endless-body` sends HTML
//! as fast as the client reads it. Neither has a length, so hyper sends them chunked.
//!
//! Both stop when the client goes away: hyper drops a response body once writing to the
//! connection fails. Each body holds an [`OpenStreams`] guard until then, so a test can check
//! that the service really let go of the connection, not just that it answered.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures::stream::{self, Stream, StreamExt};

/// How long `slow-body` waits before each byte.
pub(crate) const DRIP_INTERVAL: Duration = Duration::from_millis(100);
/// What `slow-body` sends at once.
pub(crate) const SLOW_HEAD: &[u8] =
    b"<!doctype html><html><head><title>Slow body</title></head><body><p>";
/// What `slow-body` then drips, a byte at a time, over and over.
const DRIP: &[u8] = b"slowly ";
/// What `endless-body` sends first.
pub(crate) const ENDLESS_HEAD: &[u8] =
    b"<!doctype html><html><head><title>Endless body</title></head><body>\n";
/// The size of each chunk `endless-body` repeats.
const ENDLESS_CHUNK: usize = 64 << 10;

/// The number of stream bodies still being sent, shared by a site's handlers.
#[derive(Debug, Clone, Default)]
pub(crate) struct OpenStreams(Arc<AtomicUsize>);

impl OpenStreams {
    /// Bodies still open.
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// Counts one more open body until the returned guard is dropped.
    fn open(&self) -> OpenGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        OpenGuard(self.0.clone())
    }
}

/// Held by a stream body; dropping it (with the body) counts the body as closed.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A body of `chunks` that counts as open in `open` until hyper drops it.
fn counted(open: &OpenStreams, chunks: impl Stream<Item = Bytes> + Send + 'static) -> Body {
    let guard = open.open();
    Body::from_stream(chunks.map(move |chunk| {
        let _held = &guard;
        Ok::<_, Infallible>(chunk)
    }))
}

/// `slow-body`: [`SLOW_HEAD`] at once, then one byte of text every [`DRIP_INTERVAL`], forever.
pub(crate) fn slow_body(open: &OpenStreams) -> Body {
    let drip = stream::unfold(0usize, |i| async move {
        tokio::time::sleep(DRIP_INTERVAL).await;
        let at = i % DRIP.len();
        Some((Bytes::from_static(&DRIP[at..=at]), i + 1))
    });
    counted(
        open,
        stream::iter([Bytes::from_static(SLOW_HEAD)]).chain(drip),
    )
}

/// `endless-body`: [`ENDLESS_HEAD`], then the same 64 KiB of paragraphs again and again.
pub(crate) fn endless_body(open: &OpenStreams) -> Body {
    let paragraph: &[u8] = b"<p>This page never ends. It keeps sending paragraphs like this \
        one for as long as anyone reads them, with no Content-Length to warn you.</p>\n";
    let chunk: Bytes = paragraph
        .iter()
        .copied()
        .cycle()
        .take(ENDLESS_CHUNK)
        .collect::<Vec<u8>>()
        .into();
    let head = stream::iter([Bytes::from_static(ENDLESS_HEAD)]);
    counted(open, head.chain(stream::repeat(chunk)))
}
