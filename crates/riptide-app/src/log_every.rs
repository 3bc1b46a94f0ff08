//! [`LogEvery`]: at most one log line per interval for an event that a client can make
//! happen at will (a refused connection, a throttled address, an accept error), so an
//! attack is visible in the log without the log becoming the attack's amplifier. The
//! events in between are counted, and the next line says how many there were.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Decides whether an event is logged: the first one, then the first one after each
/// `interval`.
#[derive(Debug)]
pub struct LogEvery {
    start: Instant,
    interval_ms: u64,
    /// Milliseconds since `start` of the last logged event, plus one (0: none yet).
    last: AtomicU64,
    /// Events not logged since the last logged one.
    suppressed: AtomicU64,
}

impl LogEvery {
    /// At most one line per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            start: Instant::now(),
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when this event is to be logged, `n` being the events suppressed since
    /// the last logged one; `None` when it is only to be counted.
    pub fn check(&self) -> Option<u64> {
        let now = u64::try_from(self.start.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= self.interval_ms;
        if due
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_line_per_interval_with_the_count_in_between() {
        let every = LogEvery::new(Duration::from_secs(10));
        assert_eq!(every.check(), Some(0));
        assert_eq!(every.check(), None);
        assert_eq!(every.check(), None);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(every.check(), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(every.check(), Some(3));
        assert_eq!(every.check(), None);
    }
}
