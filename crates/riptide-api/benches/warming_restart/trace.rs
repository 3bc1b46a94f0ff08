//! The request trace: page ids drawn from a Zipf(s) distribution over `n` pages with a
//! seeded generator, and the same trace replayed against a simulated cache, which gives
//! the hit rates the service should show if the cache did only what the trace implies.
//!
//! The generator is SplitMix64, written out here so the trace depends on nothing but the
//! seed (no `rand` version can change it). Rank `r` (1 = most popular) is drawn with
//! probability `r^-s / H(n, s)` by a binary search in the cumulative distribution, and
//! mapped to a page id through a seeded permutation, so the popular pages are not simply
//! `/p/0`, `/p/1`, ...

use std::collections::{HashMap, HashSet};

/// SplitMix64 (Steele, Lea, Flood 2014): 64 bits of state, full period, good enough
/// mixing for sampling.
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..bound` (`bound` > 0; the modulo bias is below 2^-40 here).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }
}

/// Zipf(s) over `n` pages, each rank mapped to a page id.
pub struct Zipf {
    cdf: Vec<f64>,
    /// `page_of[r]`: the page id of rank `r + 1`.
    page_of: Vec<u32>,
}

impl Zipf {
    /// Zipf(`s`) over `n` pages (n ≥ 1); the rank → page permutation is drawn from `rng`.
    pub fn new(n: usize, s: f64, rng: &mut SplitMix64) -> Self {
        let weights: Vec<f64> = (1..=n).map(|r| (r as f64).powf(-s)).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        if let Some(last) = cdf.last_mut() {
            *last = 1.0;
        }
        let mut page_of: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            page_of.swap(i, rng.below(i + 1));
        }
        Self { cdf, page_of }
    }

    /// One page id.
    pub fn sample(&self, rng: &mut SplitMix64) -> u32 {
        let u = rng.next_f64();
        let rank = self
            .cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len() - 1);
        self.page_of[rank]
    }

    /// `len` page ids.
    pub fn trace(&self, rng: &mut SplitMix64, len: usize) -> Vec<u32> {
        (0..len).map(|_| self.sample(rng)).collect()
    }

    /// The page ids of the `k` most popular ranks.
    pub fn top(&self, k: usize) -> HashSet<u32> {
        self.page_of.iter().take(k).copied().collect()
    }

    /// Probability of the `k` most popular ranks together.
    pub fn mass_of_top(&self, k: usize) -> f64 {
        match k {
            0 => 0.0,
            k => self.cdf[k.min(self.cdf.len()) - 1],
        }
    }

    /// Probability of `pages` together (ids outside the distribution count 0).
    pub fn mass_of(&self, pages: &HashSet<u32>) -> f64 {
        self.page_of
            .iter()
            .enumerate()
            .filter(|(_, page)| pages.contains(page))
            .map(|(rank, _)| self.cdf[rank] - rank.checked_sub(1).map_or(0.0, |r| self.cdf[r]))
            .sum()
    }
}

/// Replays `trace` against a cache holding `cached` that never evicts nor expires:
/// one flag per request, `true` for a hit. Misses are added.
pub fn replay(cached: &mut HashSet<u32>, trace: &[u32]) -> Vec<bool> {
    trace.iter().map(|page| !cached.insert(*page)).collect()
}

/// The hit rate of `hits` (0 when empty).
pub fn rate(hits: &[bool]) -> f64 {
    if hits.is_empty() {
        return 0.0;
    }
    hits.iter().filter(|h| **h).count() as f64 / hits.len() as f64
}

/// The long-run hit rate of a cache whose entries live `ttl_s` seconds (from the miss
/// that wrote them), unbounded otherwise, under the trace at `rate_per_s` requests per
/// second: the trace is replayed in virtual time, three TTLs to fill, then three
/// TTLs measured.
pub fn ttl_steady_state(zipf: &Zipf, seed: u64, rate_per_s: f64, ttl_s: f64) -> f64 {
    let mut rng = SplitMix64::new(seed);
    let per_ttl = (rate_per_s * ttl_s).ceil() as usize;
    let mut expires: HashMap<u32, f64> = HashMap::new();
    let (mut hits, mut measured) = (0u64, 0u64);
    for k in 0..6 * per_ttl {
        let now = k as f64 / rate_per_s;
        let page = zipf.sample(&mut rng);
        let hit = expires.get(&page).is_some_and(|at| *at > now);
        if !hit {
            expires.insert(page, now + ttl_s);
        }
        if k >= 3 * per_ttl {
            measured += 1;
            hits += u64::from(hit);
        }
    }
    hits as f64 / measured as f64
}
