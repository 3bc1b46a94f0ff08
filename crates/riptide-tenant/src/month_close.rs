//! Closing a month: each instance checks every [`CLOSE_CHECK`] whether a month has
//! ended and seals its price tables once (see `bill_freeze.rs` for what the sealed
//! prices are for), and the month arithmetic bills are frozen by.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{TimeZone, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::error::{TenantError, TenantResult};
use super::live_settings::LiveTenantSettings;
use super::model::BillingPlan;
use super::period::Period;
use crate::config::PriceTable;
use riptide_store::clock::SharedClock;
use riptide_store::keys::{Scope, ScopeKeys, records};
use riptide_store::{Durability, SharedStore};

/// How often each instance checks whether a month has ended and seals its prices.
pub const CLOSE_CHECK: Duration = Duration::from_secs(10);

/// The price tables of every plan, as sealed for one closed month.
pub(super) type SealedPrices = BTreeMap<BillingPlan, PriceTable>;

/// The month before `period`.
pub(super) fn previous(period: Period) -> TenantResult<Period> {
    match period.month() {
        1 => Period::new(period.year() - 1, 12),
        m => Period::new(period.year(), m - 1),
    }
}

/// The first millisecond after `period` (UTC), as Unix ms.
pub(super) fn end_ms(period: Period) -> u64 {
    let (year, month) = match period.month() {
        12 => (period.year() + 1, 1),
        m => (period.year(), m + 1),
    };
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
        .single()
        .map_or(u64::MAX, |t| t.timestamp_millis().max(0) as u64)
}

pub(super) fn corrupt(key: &str, e: impl std::fmt::Display) -> TenantError {
    TenantError::InvalidField {
        field: "billing record",
        reason: format!("{key}: {e}"),
    }
}

pub(super) fn prices_key(store: &SharedStore, period: Period) -> String {
    ScopeKeys::new(store.key_prefix(), &Scope::Global).record(&records::billing_prices(period))
}

/// The price tables `period` (closed) is billed with: sealed now from the live plans
/// unless an instance sealed them already.
pub(super) async fn sealed_prices(
    store: &SharedStore,
    live: &ArcSwap<LiveTenantSettings>,
    period: Period,
) -> TenantResult<SealedPrices> {
    let key = prices_key(store, period);
    if let Some(raw) = store.get(&key).await? {
        return serde_json::from_slice(&raw).map_err(|e| corrupt(&key, e));
    }
    let running: SealedPrices = live
        .load()
        .plans
        .iter()
        .map(|(plan, config)| (*plan, config.price.clone()))
        .collect();
    let raw = serde_json::to_vec(&running).map_err(|e| corrupt(&key, e))?;
    if store
        .set_if_absent(&key, &raw, None, Durability::Durable)
        .await?
    {
        tracing::info!(billing.period = %period, "closed month's prices sealed");
        return Ok(running);
    }
    let raw = store
        .get(&key)
        .await?
        .ok_or_else(|| corrupt(&key, "vanished right after it was written"))?;
    serde_json::from_slice(&raw).map_err(|e| corrupt(&key, e))
}

/// Seals `closed` unless `sealed` (`YYYYMM`) says this instance saw it sealed already.
pub(super) async fn seal_once(
    store: &SharedStore,
    live: &ArcSwap<LiveTenantSettings>,
    sealed: &AtomicI64,
    closed: Period,
) -> TenantResult<()> {
    if sealed.load(Ordering::Acquire) >= closed.as_number() {
        return Ok(());
    }
    sealed_prices(store, live, closed).await?;
    sealed.fetch_max(closed.as_number(), Ordering::AcqRel);
    Ok(())
}

/// Seals each month's prices soon after it ends (see the module docs), until `cancel`.
pub(super) fn spawn_month_closer(
    store: SharedStore,
    clock: SharedClock,
    live: Arc<ArcSwap<LiveTenantSettings>>,
    sealed: Arc<AtomicI64>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CLOSE_CHECK);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Ok(closed) = Period::of_unix_ms(clock.now_ms()).and_then(previous) else {
                continue;
            };
            if let Err(e) = seal_once(&store, &live, &sealed, closed).await {
                tracing::warn!(
                    error = %e,
                    billing.period = %closed,
                    "could not seal the closed month's prices; retried in 10 s"
                );
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_arithmetic() {
        let jan = Period::parse("2027-01").expect("period");
        assert_eq!(previous(jan).expect("dec").to_string(), "2026-12");
        let nov = Period::parse("2026-11").expect("period");
        assert_eq!(previous(nov).expect("oct").to_string(), "2026-10");
        let dec_first = Utc
            .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
            .single()
            .expect("ts");
        assert_eq!(end_ms(nov), dec_first.timestamp_millis() as u64);
        assert!(previous(Period::parse("1970-01").expect("epoch")).is_err());
    }
}
