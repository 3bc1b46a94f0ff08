//! What the service and an extraction worker say to each other over the worker's stdin
//! and stdout.
//!
//! Every message is a frame: a 4-byte little-endian length, then that many bytes. The
//! reader states the largest frame it accepts, so a confused or hostile peer cannot make
//! it allocate more.
//!
//! | when | from | frames |
//! |---|---|---|
//! | start | service | [`Init`] as JSON |
//! | start | worker | [`HELLO`] once its limits are in place |
//! | each page | service | [`Job`] as JSON, then the page's raw bytes |
//! | each page | worker | [`Reply`] as JSON |
//!
//! The service closes stdin to stop a worker; a worker past its deadline is killed.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::content::Content;
use crate::limits::PageLimits;

/// What a worker answers [`Init`] with: the protocol and its version.
pub(crate) const HELLO: &[u8] = b"riptide-extract-worker/1";

/// Largest control frame ([`Init`], [`Job`], [`HELLO`]).
pub(crate) const MAX_CONTROL_FRAME: usize = 64 * 1024;

/// Largest page a worker accepts: far above any `max_body_bytes` a service would set,
/// only a guard against a broken length.
pub(crate) const MAX_PAGE_FRAME: usize = 1 << 30;

/// The worker's limits, sent once after it starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Init {
    /// `RLIMIT_AS` of the worker process.
    pub memory_bytes: u64,
    /// Scheduling niceness of the worker process.
    pub nice: i32,
    /// Extract under `SCHED_IDLE`: only on CPU time nothing else wants.
    pub idle: bool,
    /// The CPUs to extract on; empty: any.
    pub cpus: Vec<usize>,
}

/// One page to extract; the page's bytes follow in the next frame.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Job {
    /// The URL the page came from (after redirects): links resolve against it.
    pub base: String,
    /// The `charset` of the response's content type, if any.
    pub charset: Option<String>,
    /// The bounds of the extraction.
    pub limits: PageLimits,
    /// The time budget, for the worker's own CPU-time backstop.
    pub budget_ms: u64,
}

/// The outcome of one [`Job`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// The page's content.
    Done(Content),
    /// The page is beyond the limits (`page_too_complex`).
    TooComplex(String),
    /// The page could not be decoded or extracted (`decode_failed`).
    Failed(String),
}

fn too_long(len: usize, max: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("frame of {len} bytes; at most {max} accepted"),
    )
}

fn frame_len(bytes: &[u8]) -> io::Result<[u8; 4]> {
    u32::try_from(bytes.len())
        .map(u32::to_le_bytes)
        .map_err(|_| too_long(bytes.len(), u32::MAX as usize))
}

/// Writes one frame (blocking).
pub(crate) fn write_frame(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    out.write_all(&frame_len(bytes)?)?;
    out.write_all(bytes)?;
    out.flush()
}

/// Reads one frame of at most `max` bytes (blocking).
pub(crate) fn read_frame(input: &mut impl Read, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(too_long(len, max));
    }
    let mut bytes = vec![0u8; len];
    input.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// Writes one frame.
pub(crate) async fn send(out: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> io::Result<()> {
    out.write_all(&frame_len(bytes)?).await?;
    out.write_all(bytes).await?;
    out.flush().await
}

/// Reads one frame of at most `max` bytes.
pub(crate) async fn receive(
    input: &mut (impl AsyncRead + Unpin),
    max: usize,
) -> io::Result<Vec<u8>> {
    let len = input.read_u32_le().await? as usize;
    if len > max {
        return Err(too_long(len, max));
    }
    let mut bytes = vec![0u8; len];
    input.read_exact(&mut bytes).await?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversize_is_refused() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"hello").unwrap();
        write_frame(&mut wire, b"").unwrap();
        let mut input = wire.as_slice();
        assert_eq!(read_frame(&mut input, 5).unwrap(), b"hello");
        assert_eq!(read_frame(&mut input, 5).unwrap(), b"");
        let mut again = wire.as_slice();
        let err = read_frame(&mut again, 4).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn async_frames_match_blocking_ones() {
        let mut wire = Vec::new();
        send(&mut wire, b"page").await.unwrap();
        let mut input = wire.as_slice();
        assert_eq!(read_frame(&mut input, 10).unwrap(), b"page");
        let mut blocking = Vec::new();
        write_frame(&mut blocking, b"reply").unwrap();
        assert_eq!(
            receive(&mut blocking.as_slice(), 10).await.unwrap(),
            b"reply"
        );
        let truncated = &blocking[..6];
        assert!(receive(&mut &truncated[..], 10).await.is_err());
    }
}
