//! A lock-free latency histogram: log-linear buckets over atomics.
//!
//! Recording is one `fetch_add`, so it can sit on the L1-hit path. Buckets cover
//! 128 ns to ~17 s in octaves of 8 linear sub-buckets (about 6% resolution); values
//! outside are clamped to the first or last bucket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
const MIN_SHIFT: u32 = 7; // 128 ns
const OCTAVES: usize = 28; // up to 2^35 ns ≈ 34 s
const BUCKETS: usize = OCTAVES * SUB;

/// Latency histogram in nanoseconds.
pub struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count())
            .finish()
    }
}

fn bucket_of(ns: u64) -> usize {
    let ns = ns.max(1 << MIN_SHIFT);
    let msb = 63 - ns.leading_zeros(); // >= MIN_SHIFT
    let octave = (msb - MIN_SHIFT) as usize;
    if octave >= OCTAVES {
        return BUCKETS - 1;
    }
    let sub = ((ns >> (msb - SUB_BITS)) as usize) & (SUB - 1);
    octave * SUB + sub
}

/// Upper bound (ns) of a bucket: the value reported for a percentile in it.
fn bucket_upper(idx: usize) -> u64 {
    let octave = (idx / SUB) as u32;
    let sub = (idx % SUB) as u64;
    let base = 1u64 << (octave + MIN_SHIFT);
    base + (sub + 1) * (base >> SUB_BITS)
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The `q` quantile (0.0 to 1.0), or `None` with no observations.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Duration::from_nanos(bucket_upper(i)));
            }
        }
        Some(Duration::from_nanos(bucket_upper(BUCKETS - 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for i in 0..BUCKETS {
            let up = bucket_upper(i);
            assert!(up > last);
            last = up;
        }
        for ns in [200u64, 1_000, 1_500, 70_000, 5_000_000] {
            let up = bucket_upper(bucket_of(ns));
            assert!(up >= ns && (up as f64) <= ns as f64 * 1.13, "{ns} -> {up}");
        }
    }

    #[test]
    fn quantiles_follow_the_data() {
        let h = LatencyHistogram::default();
        assert_eq!(h.quantile(0.5), None);
        for _ in 0..90 {
            h.record(Duration::from_micros(1));
        }
        for _ in 0..10 {
            h.record(Duration::from_millis(2));
        }
        let p50 = h.quantile(0.5).unwrap();
        let p99 = h.quantile(0.99).unwrap();
        assert!(
            p50 >= Duration::from_micros(1) && p50 < Duration::from_nanos(1_200),
            "{p50:?}"
        );
        assert!(
            p99 >= Duration::from_millis(2) && p99 < Duration::from_micros(2_300),
            "{p99:?}"
        );
        h.record(Duration::from_secs(3600));
        assert!(h.quantile(1.0).unwrap() >= Duration::from_secs(30));
    }
}
