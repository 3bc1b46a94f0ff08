//! The process's shutdown signal: the first SIGINT (Ctrl-C) or SIGTERM.

use std::future::pending;

use tokio::signal::unix::{SignalKind, signal};

/// Completes on the first SIGINT or SIGTERM. A handler that cannot be installed is
/// logged, and the other signal still works.
pub async fn signal_received() {
    let interrupt = async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "SIGINT",
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGINT");
                pending().await
            }
        }
    };
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
                "SIGTERM"
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                pending().await
            }
        }
    };
    let name = tokio::select! {
        name = interrupt => name,
        name = terminate => name,
    };
    tracing::info!(signal = name, "shutdown signal received");
}
