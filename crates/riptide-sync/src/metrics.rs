//! The sync layer's metrics, through the `metrics` facade.
//!
//! | metric | labels | meaning |
//! |---|---|---|
//! | `sync_messages_sent_total` | `kind` | messages this instance published |
//! | `sync_messages_received_total` | `kind` | messages from other instances dispatched here |
//! | `sync_messages_invalid_total` | | received messages refused (undecodable, bad field) |
//! | `sync_publish_failures_total` | `kind` | failed publish attempts (each retry counts) |
//! | `sync_invalidations_dropped_total` | | queued invalidations replaced by one `All` (queue full) |
//! | `sync_resynced_total` | | resubscriptions after an interruption |
//! | `sync_handler_panics_total` | | handlers that panicked (the receiver carries on) |
//! | `sync_heartbeat_failures_total` | | heartbeats the store refused |
//! | `sync_leader` | `job` | 1 on the instance holding the job's lease, 0 elsewhere |
//! | `sync_job_panics_total` | `job` | singleton job runs that panicked |
//! | `sync_fenced_writes_refused_total` | `job` | writes of a singleton job refused because its lease had passed to another holding (stale fencing token) |
//!
//! `kind` is one of [`super::message::KINDS`], so label cardinality is fixed. Handles are
//! resolved once per [`super::DistributedSync`], so counting is an atomic add.

use metrics::{Counter, Gauge};

use super::message::KINDS;

/// Handles of the sync metrics.
pub(crate) struct SyncMetrics {
    sent: [Counter; KINDS.len()],
    received: [Counter; KINDS.len()],
    publish_failures: [Counter; KINDS.len()],
    pub(crate) invalid: Counter,
    pub(crate) dropped: Counter,
    pub(crate) resynced: Counter,
    pub(crate) handler_panics: Counter,
    pub(crate) heartbeat_failures: Counter,
}

impl SyncMetrics {
    /// Resolves every handle from the recorder installed now.
    pub(crate) fn new() -> Self {
        Self {
            sent: KINDS.map(|kind| metrics::counter!("sync_messages_sent_total", "kind" => kind)),
            received: KINDS
                .map(|kind| metrics::counter!("sync_messages_received_total", "kind" => kind)),
            publish_failures: KINDS
                .map(|kind| metrics::counter!("sync_publish_failures_total", "kind" => kind)),
            invalid: metrics::counter!("sync_messages_invalid_total"),
            dropped: metrics::counter!("sync_invalidations_dropped_total"),
            resynced: metrics::counter!("sync_resynced_total"),
            handler_panics: metrics::counter!("sync_handler_panics_total"),
            heartbeat_failures: metrics::counter!("sync_heartbeat_failures_total"),
        }
    }

    /// A message of kind index `kind` was published.
    pub(crate) fn sent(&self, kind: usize) {
        self.sent[kind].increment(1);
    }

    /// A message of kind index `kind` was received from another instance.
    pub(crate) fn received(&self, kind: usize) {
        self.received[kind].increment(1);
    }

    /// A publish of kind index `kind` failed.
    pub(crate) fn publish_failed(&self, kind: usize) {
        self.publish_failures[kind].increment(1);
    }
}

/// The `sync_leader{job}` gauge of one singleton job.
pub(crate) fn leader_gauge(job: &str) -> Gauge {
    metrics::gauge!("sync_leader", "job" => job.to_owned())
}

/// Counts a singleton job run that panicked (rare: resolved on use).
pub(crate) fn job_panicked(job: &str) {
    metrics::counter!("sync_job_panics_total", "job" => job.to_owned()).increment(1);
}
