//! The GCRA arithmetic, shared by both backends (the Redis script mirrors it line by
//! line). Times are in microseconds so small periods do not round to zero.
//!
//! With emission interval `T = period / rate` and tolerance `τ = T · burst`, a request of
//! `cost` moves the theoretical arrival time `tat` to `max(tat, now) + T · cost` and is
//! admitted when that is at most `now + τ`. From a full bucket, at most `burst`
//! requests pass at once, and over any window `W` at most `burst + rate · W / period`.

use super::{GcraDecision, GcraLimit};

/// One GCRA step: the decision and, when admitted, the new `tat` (µs) to store.
pub fn step(
    tat_us: Option<u64>,
    now_ms: u64,
    rate: u64,
    burst: u64,
    period_ms: u64,
    cost: u64,
) -> (GcraDecision, Option<u64>) {
    let rate = rate.max(1);
    let burst = burst.max(1);
    let now = now_ms.saturating_mul(1_000);
    let t = (period_ms.saturating_mul(1_000) / rate).max(1);
    let tolerance = t.saturating_mul(burst);
    let tat = tat_us.unwrap_or(now).max(now);
    let new_tat = tat.saturating_add(t.saturating_mul(cost));
    let ms = |us: u64| us.div_ceil(1_000);
    if new_tat - now > tolerance {
        let decision = GcraDecision {
            allowed: false,
            limit: rate,
            burst,
            remaining: tolerance.saturating_sub(tat - now) / t,
            retry_after_ms: ms(new_tat - tolerance - now),
            reset_after_ms: ms(tat - now),
        };
        (decision, None)
    } else {
        let decision = GcraDecision {
            allowed: true,
            limit: rate,
            burst,
            remaining: (tolerance - (new_tat - now)) / t,
            retry_after_ms: 0,
            reset_after_ms: ms(new_tat - now),
        };
        (decision, Some(new_tat))
    }
}

/// `limit` with overrides applied (values of 0 are ignored: a quota is never 0).
pub fn effective(
    limit: &GcraLimit,
    rate_override: Option<i64>,
    burst_override: Option<i64>,
) -> (u64, u64) {
    let pick = |o: Option<i64>, d: u64| {
        o.and_then(|v| u64::try_from(v).ok())
            .filter(|&v| v > 0)
            .unwrap_or(d)
    };
    (
        pick(rate_override, limit.rate),
        pick(burst_override, limit.burst),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_admits_burst_then_the_steady_rate() {
        // 60 per minute = one per second, burst 5.
        let mut tat = None;
        let mut admitted = 0;
        for _ in 0..10 {
            let (d, t) = step(tat, 1_000_000, 60, 5, 60_000, 1);
            if d.allowed {
                admitted += 1;
                tat = t;
            }
        }
        assert_eq!(admitted, 5);
        let (d, _) = step(tat, 1_000_000, 60, 5, 60_000, 1);
        assert_eq!(
            (d.allowed, d.retry_after_ms, d.remaining),
            (false, 1_000, 0)
        );
        let (d, _) = step(tat, 1_001_000, 60, 5, 60_000, 1);
        assert!(d.allowed, "one more after one interval");
    }

    #[test]
    fn admissions_in_a_window_never_exceed_rate_plus_burst() {
        let (rate, burst, period) = (100, 10, 60_000);
        let mut tat = None;
        let mut admitted = 0u64;
        for ms in (0..period).step_by(7) {
            let (d, t) = step(tat, 5_000_000 + ms, rate, burst, period, 1);
            if d.allowed {
                admitted += 1;
                tat = t;
            }
        }
        assert!(admitted <= rate + burst, "{admitted}");
        assert!(admitted >= rate, "{admitted}");
    }

    #[test]
    fn a_cost_above_the_burst_is_never_admitted() {
        let (d, t) = step(None, 0, 60, 5, 60_000, 6);
        assert!(!d.allowed && t.is_none());
    }

    #[test]
    fn overrides_replace_positive_values_only() {
        let l = GcraLimit {
            rate: 10,
            period_ms: 60_000,
            burst: 2,
            overrides: None,
        };
        assert_eq!(effective(&l, Some(50), None), (50, 2));
        assert_eq!(effective(&l, Some(0), Some(-3)), (10, 2));
    }
}
