//! The monthly `data_transfer_bytes` quota on the request path, without a store round
//! trip per request.
//!
//! A tenant's bytes this month are read through the tenant layer (stored counters plus
//! this instance's unflushed usage) at most once per [`REFRESH`] and remembered; in
//! between, requests are judged against the remembered figure. So a tenant can overrun
//! its quota by at most what it transfers within one refresh interval, and a quota
//! raised by an operator applies at once (the limit is read from the tenant's record
//! and the live plans on every request).

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use quick_cache::sync::Cache;
use riptide_persistence::TenantId;
use riptide_persistence::tenant::{Period, Resource, Tenant, TenantManager, effective_quota};

use crate::error::ApiError;

/// How long a tenant's transferred bytes are trusted before they are read again.
pub const REFRESH: Duration = Duration::from_secs(1);

/// Most tenants whose figure is remembered; beyond it, the least used are read again.
const CAPACITY: usize = 100_000;

#[derive(Clone, Copy)]
struct Used {
    read_at: Instant,
    period: Period,
    bytes: u64,
}

/// The remembered monthly transfer of recently seen tenants.
pub(super) struct TransferGuard {
    used: Cache<TenantId, Used>,
}

impl TransferGuard {
    pub(super) fn new() -> Self {
        Self {
            used: Cache::new(CAPACITY),
        }
    }

    /// `Ok` while `tenant` has transferred less than its `data_transfer_bytes` quota this
    /// month (or has no such quota); else 429 `quota_exceeded` with `Retry-After` until
    /// the first second of next month (UTC).
    pub(super) async fn check(
        &self,
        tenants: &TenantManager,
        id: &TenantId,
        tenant: &Tenant,
    ) -> Result<(), ApiError> {
        let Some(limit) = effective_quota(
            tenant,
            &tenants.live_settings().plans,
            Resource::DataTransferBytes,
        ) else {
            return Ok(());
        };
        let used = match self.used.get(id) {
            Some(used) if used.read_at.elapsed() < REFRESH => used,
            _ => {
                let period = Period::of(&Utc::now())?;
                let summary = tenants.get_usage(&id, &period.to_string()).await?;
                let fresh = Used {
                    read_at: Instant::now(),
                    period,
                    bytes: summary.data_bytes,
                };
                self.used.insert(id.clone(), fresh);
                fresh
            }
        };
        if used.bytes < limit {
            return Ok(());
        }
        Err(ApiError::QuotaExceeded {
            resource: Resource::DataTransferBytes.as_str().to_owned(),
            limit,
            current: used.bytes,
            retry_after_secs: Some(seconds_until_next(used.period)),
        })
    }
}

/// Seconds from now to the start of the month after `period` (at least 1).
fn seconds_until_next(period: Period) -> u64 {
    let (year, month) = if period.month() == 12 {
        (period.year() + 1, 1)
    } else {
        (period.year(), period.month() + 1)
    };
    let next = Utc
        .with_ymd_and_hms(year, month, 1, 0, 0, 0)
        .single()
        .unwrap_or_else(Utc::now);
    let secs = (next - Utc::now()).num_seconds();
    u64::try_from(secs).unwrap_or(0).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_runs_to_the_next_month() {
        let now = Period::of(&Utc::now()).expect("this month");
        let wait = seconds_until_next(now);
        assert!((1..=31 * 86_400).contains(&wait), "{wait}");
        let december = Period::new(now.year() + 1, 12).expect("period");
        assert!(seconds_until_next(december) > 365 * 86_400);
    }
}
