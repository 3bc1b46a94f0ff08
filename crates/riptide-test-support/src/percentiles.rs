//! Percentile runs for the benches that check latency budgets: [`interleave!`] runs the
//! cases of one comparison in alternating chunks, so noise from other processes on
//! these shared cores hits every case alike, and [`Dist`] reads the samples as
//! percentiles. Throughput benches use criterion; this is the one helper beside it.
//!
//! [`interleave!`]: crate::interleave

use std::time::Duration;

/// What a case of [`interleave!`](crate::interleave) returns: `()` is timed around the
/// call; a `u64` is the nanoseconds the case measured itself, for when what counts is
/// not the whole call (propagation starts when one instance's `set` returns).
pub trait Sample {
    /// The sample in nanoseconds, given the time around the call.
    fn nanos(self, around_call: Duration) -> u64;
}

impl Sample for () {
    fn nanos(self, around_call: Duration) -> u64 {
        around_call.as_nanos() as u64
    }
}

impl Sample for u64 {
    fn nanos(self, _: Duration) -> u64 {
        self
    }
}

/// The order of the cases within each round of chunks.
#[derive(Debug, Clone, Copy)]
pub enum Order {
    /// A B C, then B C A, then C A B, ...: each case always follows the same neighbour.
    Rotate,
    /// A new shuffled order every round, for cases that leave the kernel work to do
    /// (fsyncs, journal commits) that a rotation would always charge to the same case.
    Shuffle,
}

/// The order of each round, for [`interleave!`](crate::interleave).
#[derive(Debug)]
pub struct Rounds {
    order: Vec<usize>,
    kind: Order,
    rng: u64,
}

impl Rounds {
    /// Rounds over `cases` cases.
    pub fn new(cases: usize, kind: Order) -> Self {
        Self {
            order: (0..cases).collect(),
            kind,
            rng: 0x2545_f491_4f6c_dd1d,
        }
    }

    /// The case indices of the next round, in the order they run.
    pub fn next_round(&mut self) -> Vec<usize> {
        match self.kind {
            Order::Rotate => {
                let round = self.order.clone();
                self.order.rotate_left(1);
                round
            }
            Order::Shuffle => {
                for k in (1..self.order.len()).rev() {
                    // xorshift64: a fixed sequence, so runs compare.
                    self.rng ^= self.rng << 13;
                    self.rng ^= self.rng >> 7;
                    self.rng ^= self.rng << 17;
                    self.order.swap(k, (self.rng % (k as u64 + 1)) as usize);
                }
                self.order.clone()
            }
        }
    }
}

/// Runs the given cases (closures `Fn(usize) -> impl Future<Output = impl Sample>`)
/// interleaved: after `warm` untimed calls of each, `n` timed calls of each in chunks of
/// `chunk`, the cases in a new [`Order`] every round (`Rotate` unless `order:` says).
/// Evaluates to one `Vec<u64>` of nanoseconds per case, to read with [`Dist`].
#[macro_export]
macro_rules! interleave {
    (n: $n:expr, chunk: $chunk:expr, warm: $warm:expr; $($case:ident),+ $(,)?) => {
        $crate::interleave!(order: $crate::percentiles::Order::Rotate, n: $n, chunk: $chunk,
            warm: $warm; $($case),+)
    };
    (order: $order:expr, n: $n:expr, chunk: $chunk:expr, warm: $warm:expr;
     $($case:ident),+ $(,)?) => {{
        use $crate::percentiles::Sample as _;
        let n: usize = $n;
        let chunk: usize = $chunk;
        $(
            for i in 0..$warm {
                ::std::hint::black_box($case(i).await);
            }
        )+
        let mut out = [$({
            let _ = stringify!($case);
            Vec::<u64>::with_capacity(n)
        }),+];
        let mut rounds = $crate::percentiles::Rounds::new(out.len(), $order);
        let mut done = 0usize;
        while done < n {
            let c = chunk.min(n - done);
            for which in rounds.next_round() {
                let mut idx = 0usize;
                $(
                    if idx == which {
                        for i in done..done + c {
                            let t = ::std::time::Instant::now();
                            let sample = $case(i).await;
                            let around = t.elapsed();
                            out[idx].push(sample.nanos(around));
                        }
                    }
                    idx += 1;
                )+
                let _ = idx;
            }
            done += c;
        }
        out
    }};
}

/// Sorted samples of one case (nanoseconds).
#[derive(Debug, Clone)]
pub struct Dist {
    /// The samples, ascending.
    pub ns: Vec<u64>,
}

impl Dist {
    /// Sorts `ns`.
    pub fn new(mut ns: Vec<u64>) -> Self {
        ns.sort_unstable();
        Self { ns }
    }

    /// Nearest-rank percentile, `q` in (0, 1]; 0 when there are no samples.
    pub fn p(&self, q: f64) -> u64 {
        if self.ns.is_empty() {
            return 0;
        }
        let rank = ((q * self.ns.len() as f64).ceil() as usize).clamp(1, self.ns.len());
        self.ns[rank - 1]
    }

    /// The median.
    pub fn p50(&self) -> u64 {
        self.p(0.50)
    }

    /// The 99th percentile.
    pub fn p99(&self) -> u64 {
        self.p(0.99)
    }

    /// Share of samples above `ns`, in percent.
    pub fn share_over(&self, ns: u64) -> f64 {
        let over = self.ns.len() - self.ns.partition_point(|&x| x <= ns);
        over as f64 * 100.0 / self.ns.len().max(1) as f64
    }

    /// `| p50 | p90 | p95 | p98 | p99 | p99.9 | max |` cells.
    pub fn tail_cells(&self) -> String {
        self.tail_cells_at(&[0.50, 0.90, 0.95, 0.98, 0.99, 0.999, 1.0])
    }

    /// Table cells of the percentiles `qs`, joined by ` | `.
    pub fn tail_cells_at(&self, qs: &[f64]) -> String {
        qs.iter()
            .map(|&q| fmt_ns(self.p(q)))
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

/// Nanoseconds as µs or ms with three significant digits or so.
pub fn fmt_ns(ns: u64) -> String {
    let ns = ns as f64;
    if ns < 10_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else if ns < 1_000_000.0 {
        format!("{:.1} µs", ns / 1_000.0)
    } else {
        format!("{:.2} ms", ns / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let d = Dist::new((1..=100).rev().collect());
        assert_eq!((d.p50(), d.p99(), d.p(1.0)), (50, 99, 100));
        assert_eq!(d.share_over(90), 10.0);
        assert_eq!(Dist::new(Vec::new()).p99(), 0);
    }

    #[test]
    fn every_round_runs_every_case_once() {
        for kind in [Order::Rotate, Order::Shuffle] {
            let mut rounds = Rounds::new(4, kind);
            let firsts: std::collections::BTreeSet<usize> = (0..40)
                .map(|_| {
                    let mut round = rounds.next_round();
                    let first = round[0];
                    round.sort_unstable();
                    assert_eq!(round, [0, 1, 2, 3]);
                    first
                })
                .collect();
            assert!(
                firsts.len() > 1,
                "{kind:?}: the order changes between rounds"
            );
        }
    }

    #[tokio::test]
    async fn cases_are_timed_or_time_themselves() {
        let timed = |_: usize| async {};
        let own = |i: usize| async move { i as u64 };
        let [a, b] =
            crate::interleave!(order: Order::Shuffle, n: 10, chunk: 3, warm: 2; timed, own);
        assert_eq!((a.len(), b.len()), (10, 10));
        let mut b = b;
        b.sort_unstable();
        assert_eq!(b, (0..10).collect::<Vec<u64>>());
    }
}
