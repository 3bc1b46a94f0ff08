//! One connection: HTTP/1.1 by hyper over the accepted socket, the router as its
//! service, and the [`ConnClock`] watchdog that closes it when a phase outlives its
//! allowance.
//!
//! The socket is wrapped in [`Watched`], which tells the clock when bytes arrive; the
//! service marks a request in flight from its head to the end of its response body
//! ([`Tracked`]) and gives the handlers the client's address as axum's
//! `ConnectInfo<SocketAddr>`.
//!
//! A request head hyper cannot parse is answered by hyper itself with an empty body;
//! [`Watched`] replaces that answer with the JSON error, and the socket then lingers
//! ([`super::head_error`]).
//!
//! hyper's own `header_read_timeout` is turned off. In hyper 1.12 its timer starts at
//! the first poll of a connection (before any byte, since hyper 1.4) and again as soon as
//! a kept-alive connection goes idle, so it would be the idle timeout as well: idle
//! connections would be closed after the head allowance (10 s), under a load balancer
//! that reuses them for 60 s. The clock keeps the two apart.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tower::Service as _;

use super::gate::Permit;
use super::head_error;
use super::metrics::ConnMetrics;
use super::phase::{Allowances, ConnClock, InFlight};
use super::watched::Watched;

/// What one connection may take: time per phase, and the size of a request head.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The phases' time allowances.
    pub allowances: Allowances,
    /// `server.max_header_bytes`: longest request head hyper reads.
    pub max_header_bytes: usize,
}

/// Serves `stream` until the client or the clock closes it, or, after `stop`, until its
/// request in flight (if any) is answered. `_permit` holds its place under
/// `server.max_connections` until then.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
    metrics: Arc<ConnMetrics>,
    _permit: Permit,
) {
    // Small JSON answers go out at once rather than waiting for the client's ACK.
    let _ = stream.set_nodelay(true);
    let clock = ConnClock::new();
    let io = TokioIo::new(Watched::new(stream, clock.clone(), limits.max_header_bytes));
    let service = {
        let clock = clock.clone();
        service_fn(move |request: Request<Incoming>| {
            let in_flight = clock.request_started();
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            // A `Router` is always ready: `call` needs no `poll_ready` first.
            let answer = router.clone().call(request);
            async move {
                let response = answer.await?;
                Ok::<_, Infallible>(response.map(|body| Tracked {
                    body,
                    _in_flight: in_flight,
                }))
            }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .header_read_timeout(None)
        .max_header_size(limits.max_header_bytes);
    // Unpinned (it is `Unpin`), so that the socket can be taken back at the end.
    let mut connection = builder.serve_connection(io, service);
    let expired = clock.expired(limits.allowances);
    tokio::pin!(expired);
    let mut draining = false;
    let served = loop {
        tokio::select! {
            served = &mut connection => break served,
            phase = &mut expired => {
                metrics.timed_out(phase);
                tracing::debug!(
                    client.addr = %peer,
                    timeout = phase.as_str(),
                    "closing a connection that ran out of time"
                );
                return;
            }
            () = stop.cancelled(), if !draining => {
                // As `axum::serve` did: an idle or untouched connection closes now, a
                // request in flight is answered first (with `Connection: close`).
                draining = true;
                Pin::new(&mut connection).graceful_shutdown();
            }
        }
    };
    match served {
        Ok(()) => {}
        Err(e) if e.is_parse() => {
            tracing::debug!(client.addr = %peer, error = %e, "refused a request head");
            let socket = connection.into_parts().io.into_inner().into_stream();
            head_error::linger(socket, &stop).await;
        }
        Err(e) => {
            tracing::debug!(client.addr = %peer, error = %e, "connection ended with an error");
        }
    }
}

/// A response body that keeps its request in flight until hyper is done with it.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
