//! Usage reads on the request path never wait for a flush (issue 9): while a flush is
//! in flight (held before its writes, then after them with its replies "on their way"),
//! `usage` answers at once, and counts every piece of usage exactly once, on every
//! backend.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use riptide_persistence::TenantId;
use riptide_persistence::clock::system_clock;
use riptide_persistence::config::TenancyConfig;
use riptide_persistence::tenant::{ResourceUsageRecord, TenantMetrics, UsageMeter};
use tokio::sync::oneshot;

use crate::support::{Backend, on_every_backend, store, tenant};

/// Far below the held flush, far above a read's round trip.
const PROMPT: Duration = Duration::from_secs(2);

fn bytes(n: u64) -> ResourceUsageRecord {
    ResourceUsageRecord {
        operation_count: 1,
        data_bytes: n,
        compute_time_ms: 0,
        storage_bytes: 0,
        timestamp: Utc
            .with_ymd_and_hms(2026, 11, 15, 12, 0, 0)
            .single()
            .expect("valid time"),
    }
}

/// A hold point: `reached` fires when the flush gets there, and it waits for `release`.
fn hold() -> (
    impl Future<Output = ()> + Send,
    oneshot::Receiver<()>,
    oneshot::Sender<()>,
) {
    let (reached_tx, reached) = oneshot::channel();
    let (release, release_rx) = oneshot::channel::<()>();
    let point = async move {
        let _ = reached_tx.send(());
        let _ = release_rx.await;
    };
    (point, reached, release)
}

on_every_backend!(reads_do_not_wait_for_a_flush_in_flight);

async fn reads_do_not_wait_for_a_flush_in_flight(b: Backend) {
    let ts = store(b).await;
    let m = UsageMeter::new(
        ts.store.clone(),
        system_clock(),
        &TenancyConfig::default(),
        Arc::new(RwLock::new(TenantMetrics::new())),
    );
    let t = TenantId::parse(&tenant()).expect("valid id");
    let read = async |m: &UsageMeter| {
        tokio::time::timeout(PROMPT, m.usage(&t, "2026-11"))
            .await
            .expect("a usage read during a flush completes promptly")
            .expect("usage")
            .data_bytes
    };
    m.record(&t, "extract", &bytes(100)).expect("record");

    let (before_writes, at_writes, release_writes) = hold();
    let (before_settling, at_settling, release_settling) = hold();
    let flushing = {
        let m = m.clone();
        tokio::spawn(async move { m.flush_holding(before_writes, before_settling).await })
    };
    // Sealed, not written: the pending batch is counted from memory.
    at_writes.await.expect("the flush sealed its batch");
    assert_eq!(read(&m).await, 100);
    m.record(&t, "extract", &bytes(20))
        .expect("record during the flush");
    assert_eq!(read(&m).await, 120);

    // Written, not settled: the batch is in the store and still pending here; it is
    // counted once (from the store), the newer usage once (from memory).
    release_writes.send(()).expect("flush waiting");
    at_settling.await.expect("the flush wrote its batch");
    assert_eq!(read(&m).await, 120);

    release_settling.send(()).expect("flush waiting");
    let report = flushing.await.expect("flush task").expect("flush");
    assert_eq!(report.applied, 1);
    assert_eq!(read(&m).await, 120);
    m.flush().await.expect("second flush");
    assert_eq!((read(&m).await, m.pending()), (120, 0));
}
