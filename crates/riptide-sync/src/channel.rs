//! The sync channel `<p>:sync`: the receiver that dispatches other instances' messages
//! to the handlers, and the publisher that sends queued cache invalidations.
//!
//! Handlers run on the receiver task, one message at a time, in arrival order: they must
//! be quick (drop a cache entry, flip a flag) and hand slow work to a task of their own.
//! A handler that panics is counted and logged, and the others still run.
//!
//! Cache invalidations arrive from the cache manager synchronously, on its hot path, so
//! they go through a bounded queue ([`OUTBOUND_QUEUE`]) to a publisher task. A failed
//! publish is retried with backoff (each attempt counted). When the queue overflows,
//! the queued invalidations are replaced by one [`Invalidation::All`]: every other
//! instance clears its L1 rather than keep a copy it was never told is stale.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::message::{SyncBody, SyncEvent, SyncMessage};
use super::{Shared, SyncError};
use riptide_cache::Invalidation;
use riptide_store::{Subscription, SubscriptionEvent};

/// Capacity of the queue of invalidations waiting to be published.
pub const OUTBOUND_QUEUE: usize = 4_096;

/// Most queued invalidations published concurrently.
const PUBLISH_BATCH: usize = 64;

/// First pause before retrying a failed publish or resubscribe; it doubles up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// Longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Attempts at publishing an invalidation the store refuses (not for an unreachable
/// store, which is retried until it answers or the queue overflows).
const MAX_ATTEMPTS: u32 = 5;

/// How long the publisher may spend on what is still queued at shutdown.
const FINAL_FLUSH: Duration = Duration::from_secs(1);

impl Shared {
    /// Decodes one payload and dispatches it, unless it is this instance's own.
    pub(crate) fn on_payload(&self, payload: &[u8]) {
        match SyncMessage::decode(payload) {
            Err(reason) => {
                self.metrics.invalid.increment(1);
                self.message_log
                    .warn(&format!("refused a sync message: {reason}"));
            }
            Ok(msg) if msg.from == self.id => {}
            Ok(msg) => {
                self.metrics.received(msg.body.kind_index());
                self.dispatch(&SyncEvent::Message(msg.body));
            }
        }
    }

    /// Tells every handler, in registration order.
    pub(crate) fn dispatch(&self, event: &SyncEvent) {
        let handlers = self.handlers.load();
        for handler in handlers.iter() {
            if catch_unwind(AssertUnwindSafe(|| handler(event))).is_err() {
                self.metrics.handler_panics.increment(1);
                tracing::error!(instance.id = %self.id, ?event, "a sync handler panicked");
            }
        }
    }

    /// The subscription was re-established: messages may have been lost.
    fn resynced(&self) {
        self.metrics.resynced.increment(1);
        tracing::warn!(
            instance.id = %self.id,
            "sync channel resubscribed; dropping what missed messages could have invalidated"
        );
        self.dispatch(&SyncEvent::Resynced);
    }

    /// Validates, encodes and publishes one body, counting the outcome.
    pub(crate) async fn publish_body(&self, body: &SyncBody) -> Result<(), SyncError> {
        let kind = body.kind_index();
        let payload = SyncMessage::new(&self.id, body.clone())
            .encode()
            .map_err(SyncError::Message)?;
        match self.store.publish(&self.channel, &payload).await {
            Ok(()) => {
                self.metrics.sent(kind);
                Ok(())
            }
            Err(e) => {
                self.metrics.publish_failed(kind);
                Err(e.into())
            }
        }
    }

    /// Queues a cache invalidation for the publisher; never blocks.
    pub(crate) fn enqueue_invalidation(&self, inv: &Invalidation) {
        match self.outbound.try_send(SyncBody::Cache(inv.clone())) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.dropped.increment(1);
                if !self.overflowed.swap(true, Ordering::AcqRel) {
                    self.store_log.warn(
                        "the invalidation queue is full; other instances will clear their L1",
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.metrics.dropped.increment(1);
                self.store_log
                    .warn("an invalidation after shutdown was not published");
            }
        }
    }
}

/// Doubles `backoff` up to [`MAX_BACKOFF`].
fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).min(MAX_BACKOFF)
}

/// Receives until cancelled. If the store ends the subscription, subscribes again with
/// backoff and then dispatches [`SyncEvent::Resynced`].
pub(crate) async fn receive_loop(
    shared: Arc<Shared>,
    mut subscription: Subscription,
    cancel: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            event = subscription.events.recv() => event,
        };
        match event {
            Some(SubscriptionEvent::Message(payload)) => shared.on_payload(&payload),
            Some(SubscriptionEvent::Resubscribed) => shared.resynced(),
            None => match resubscribe(&shared, &cancel).await {
                Some(s) => {
                    subscription = s;
                    shared.resynced();
                }
                None => return,
            },
        }
    }
}

/// Subscribes again until it works (or shutdown: `None`).
async fn resubscribe(shared: &Shared, cancel: &CancellationToken) -> Option<Subscription> {
    let mut backoff = FIRST_BACKOFF;
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return None,
            () = tokio::time::sleep(backoff) => {}
        }
        match shared.store.subscribe(&shared.channel).await {
            Ok(s) => return Some(s),
            Err(e) => {
                shared
                    .store_log
                    .warn(&format!("resubscribing to the sync channel: {e}"));
                backoff = next_backoff(backoff);
            }
        }
    }
}

/// A queued body and how many times publishing it failed.
type Pending = (SyncBody, u32);

/// Publishes queued invalidations until cancelled, then flushes what is left for at most
/// [`FINAL_FLUSH`].
pub(crate) async fn publish_loop(
    shared: Arc<Shared>,
    mut queue: mpsc::Receiver<SyncBody>,
    cancel: CancellationToken,
) {
    let mut received = Vec::with_capacity(PUBLISH_BATCH);
    let mut batch: Vec<Pending> = Vec::with_capacity(PUBLISH_BATCH);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            n = queue.recv_many(&mut received, PUBLISH_BATCH) => if n == 0 { return },
        }
        batch.extend(received.drain(..).map(|body| (body, 0)));
        take_overflow(&shared, &mut queue, &mut batch);
        let mut backoff = FIRST_BACKOFF;
        loop {
            publish_batch(&shared, &mut batch).await;
            if batch.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = next_backoff(backoff);
            take_overflow(&shared, &mut queue, &mut batch);
        }
        if cancel.is_cancelled() {
            break;
        }
    }
    // Shutdown: one last attempt at whatever is still queued.
    queue.close();
    let flush = async {
        take_overflow(&shared, &mut queue, &mut batch);
        loop {
            publish_batch(&shared, &mut batch).await;
            if !batch.is_empty() || queue.recv_many(&mut received, PUBLISH_BATCH).await == 0 {
                return;
            }
            batch.extend(received.drain(..).map(|body| (body, 0)));
        }
    };
    // On timeout the flush future is dropped, which releases its borrows.
    let _ = tokio::time::timeout(FINAL_FLUSH, flush).await;
    let lost = batch.len() + received.len() + queue.len();
    if lost > 0 {
        shared.metrics.dropped.increment(lost as u64);
        tracing::warn!(
            instance.id = %shared.id, lost,
            "invalidations still queued at shutdown were not published"
        );
    }
}

/// After an overflow, replaces the batch and everything queued with one `All`.
fn take_overflow(shared: &Shared, queue: &mut mpsc::Receiver<SyncBody>, batch: &mut Vec<Pending>) {
    if !shared.overflowed.swap(false, Ordering::AcqRel) {
        return;
    }
    let mut superseded = batch.len() as u64;
    batch.clear();
    while queue.try_recv().is_ok() {
        superseded += 1;
    }
    shared.metrics.dropped.increment(superseded);
    batch.push((SyncBody::Cache(Invalidation::All), 0));
}

/// Publishes the batch concurrently (invalidations only remove, so their order does not
/// matter). What failed stays in `batch` for a retry: while the store is unreachable
/// for as long as it takes, otherwise up to [`MAX_ATTEMPTS`] times.
async fn publish_batch(shared: &Shared, batch: &mut Vec<Pending>) {
    let results =
        futures::future::join_all(batch.iter().map(|(body, _)| shared.publish_body(body))).await;
    let mut retry = Vec::new();
    for ((body, failures), result) in batch.drain(..).zip(results) {
        let failures = failures.saturating_add(1);
        match result {
            Ok(()) => {}
            Err(SyncError::Store(e)) if e.is_retryable() || failures < MAX_ATTEMPTS => {
                shared
                    .store_log
                    .warn(&format!("publishing an invalidation (will retry): {e}"));
                retry.push((body, failures));
            }
            Err(e) => {
                shared.metrics.dropped.increment(1);
                tracing::error!(
                    instance.id = %shared.id, error = %e,
                    "an invalidation could not be published"
                );
            }
        }
    }
    *batch = retry;
}
