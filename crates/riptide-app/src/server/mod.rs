//! The HTTP server: the accept loop, and what one client's sockets may hold.
//!
//! `axum::serve` runs hyper without a timer and without a connection limit: a client
//! that opens connections and sends half a request head keeps each open forever, and
//! at the file-descriptor limit nobody is served, `/healthz` included. [`serve`] is the
//! same accept loop with bounds (each with its `server.*` key, metric and log line):
//!
//! - the open-file limit is raised and the connection limit fitted under it
//!   (`fd_limit`);
//! - a connection beyond `max_connections` is answered 503 `too_many_connections` at
//!   once, without being read, and closed (`gate`);
//! - a request head must arrive within `header_read_timeout_ms`, and a kept-alive
//!   connection may stay idle `keep_alive_timeout_ms` (`phase`, driven per connection
//!   by `connection`); a request body is bounded by the `body_read_timeout_ms`
//!   middleware (`riptide_api::middleware::body_timeout`);
//! - a request head is at most `max_header_bytes`; hyper answers a longer or malformed
//!   head itself, and that answer is rewritten to the JSON error body
//!   (`head_error`);
//! - the client's address reaches the handlers as `ConnectInfo<SocketAddr>`.
//!
//! Graceful shutdown is what `axum::serve` did: on the signal the listener is closed,
//! idle connections are closed, requests in flight are answered (with
//! `Connection: close`), and [`serve`] returns once every connection is gone. The caller
//! bounds that wait (`server.shutdown_timeout_ms`).

mod connection;
mod fd_limit;
mod gate;
mod head_error;
pub mod metrics;
mod phase;
mod watched;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::gate::Gate;
use self::metrics::ConnMetrics;
use self::phase::Allowances;
use crate::config::ServerConfig;
use crate::log_every::LogEvery;

/// How long the accept loop pauses after an error such as `EMFILE`, which would
/// otherwise repeat at once for the connection still waiting in the backlog.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A listener on `addr` with a `listen(2)` backlog of `backlog` (`server.listen_backlog`)
/// and `SO_REUSEADDR`, as `TcpListener::bind` sets it (so a restart can bind while the
/// previous run's connections are in `TIME_WAIT`); `bind` alone gives a backlog of 128.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Serves `router` on `listener` under the limits of `config` until `shutdown`
/// completes, then drains as the module says.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let open_files = fd_limit::raise();
    let configured = usize::try_from(config.max_connections).unwrap_or(usize::MAX);
    let max = fd_limit::connection_budget(configured, open_files.now);
    let limits = connection::Limits {
        allowances: Allowances {
            head: Duration::from_millis(config.header_read_timeout_ms),
            idle: Duration::from_millis(config.keep_alive_timeout_ms),
        },
        max_header_bytes: usize::try_from(config.max_header_bytes).unwrap_or(usize::MAX),
    };
    tracing::info!(
        connections.max = max,
        open_files.limit = open_files.now,
        header_read_timeout_ms = config.header_read_timeout_ms,
        keep_alive_timeout_ms = config.keep_alive_timeout_ms,
        body_read_timeout_ms = config.body_read_timeout_ms,
        max_header_bytes = config.max_header_bytes,
        "connection limits"
    );
    let metrics = Arc::new(ConnMetrics::new(max));
    let gate = Gate::new(max, metrics.clone());
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let accept_errors = LogEvery::new(Duration::from_secs(10));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            // The client gave up between its SYN and our accept: nothing to do.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                if let Some(suppressed) = accept_errors.check() {
                    tracing::error!(
                        error = %e,
                        errors.since_last_log = suppressed,
                        "accepting a connection failed; pausing the accept loop briefly"
                    );
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                }
            }
        };
        match gate.try_open() {
            Some(permit) => {
                tasks.spawn(connection::serve(
                    stream,
                    peer,
                    router.clone(),
                    limits,
                    stop.clone(),
                    metrics.clone(),
                    permit,
                ));
            }
            None => gate.refuse(stream, peer, &tasks, &stop),
        }
    }
    drop(listener);
    stop.cancel();
    tasks.close();
    tasks.wait().await;
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
