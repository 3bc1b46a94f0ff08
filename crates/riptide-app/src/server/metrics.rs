//! The connection metrics, registered once per server so a connection costs no registry
//! lookup:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `http_connections_open` | gauge | — |
//! | `http_connections_max` | gauge: `server.max_connections` as lowered to fit the open-file limit | — |
//! | `http_connections_refused_total` | counter: answered 503 `too_many_connections` | — |
//! | `http_connections_timed_out_total` | counter: closed by a timeout | `timeout`: `header`, `idle`, `body` |
//! | `http_requests_malformed_total` | counter: a head hyper could not parse, answered by `head_error` | `status`: `400`, `414`, `431` |
//!
//! `body` is counted by `riptide_api::middleware::body_timeout`, with the same name.

use metrics::{Counter, Gauge};

use super::phase::Phase;

/// `http_connections_open`.
pub const OPEN: &str = "http_connections_open";
/// `http_connections_max`.
pub const MAX: &str = "http_connections_max";
/// `http_connections_refused_total`.
pub const REFUSED: &str = "http_connections_refused_total";
/// `http_connections_timed_out_total`.
pub const TIMED_OUT: &str = "http_connections_timed_out_total";

/// The handles of one server's connection metrics.
#[derive(Debug)]
pub struct ConnMetrics {
    pub(super) open: Gauge,
    pub(super) refused: Counter,
    header_timeouts: Counter,
    idle_timeouts: Counter,
}

impl ConnMetrics {
    /// Registers the series, each starting at zero (so a dashboard shows 0, not
    /// nothing, before the first refusal), and sets `http_connections_max`.
    pub fn new(max_connections: usize) -> Self {
        metrics::gauge!(MAX).set(max_connections as f64);
        let timed_out = |phase: Phase| {
            let counter = metrics::counter!(TIMED_OUT, "timeout" => phase.as_str());
            counter.increment(0);
            counter
        };
        let refused = metrics::counter!(REFUSED);
        refused.increment(0);
        let open = metrics::gauge!(OPEN);
        open.increment(0.0);
        // Registered here too, so every label value is exposed from the start.
        metrics::counter!(TIMED_OUT, "timeout" => "body").increment(0);
        for status in ["400", "414", "431"] {
            metrics::counter!(super::head_error::MALFORMED, "status" => status).increment(0);
        }
        Self {
            open,
            refused,
            header_timeouts: timed_out(Phase::Head),
            idle_timeouts: timed_out(Phase::Idle),
        }
    }

    /// Counts a connection closed because `phase` ran out of time.
    pub fn timed_out(&self, phase: Phase) {
        match phase {
            Phase::Head => self.header_timeouts.increment(1),
            Phase::Idle => self.idle_timeouts.increment(1),
            Phase::InFlight => {}
        }
    }
}
