//! The record methods' checks and conversions: sorted-set scores, counters and GCRA
//! figures, which Redis and Lua hold as doubles while the [`crate::Store`] trait
//! speaks `i64` / `u64`.
//!
//! The rule is the same everywhere: a figure that a double cannot hold exactly is refused
//! with [`StoreError::Backend`]`("refused: ...")` before anything is sent, never rounded.

use super::{MAX_TTL_MS, non_negative, refused};
use crate::{GcraDecision, GcraLimit, StoreError, StoreResult};

/// Largest `|score|` a sorted set accepts: Redis scores are doubles, exact for every
/// integer up to 2^53.
pub const MAX_EXACT_SCORE: i64 = 1 << 53;

/// Bound of every figure the GCRA script computes with, in µs: below it, a figure and
/// that figure + 999 (the rounding up to ms) are exact Lua numbers. `scripts/gcra.lua`
/// holds the same constant.
pub const GCRA_LIMIT_US: u64 = (1 << 53) - (1 << 11);

/// Refuses a member whose score a Redis score (a double) would not hold exactly.
pub(super) fn check_scores(members: &[(String, i64)]) -> StoreResult<()> {
    match members
        .iter()
        .find(|(_, score)| score.unsigned_abs() > MAX_EXACT_SCORE.unsigned_abs())
    {
        Some((member, score)) => Err(refused(format!(
            "score {score} of {member:?} is outside ±2^53, which Redis cannot hold exactly"
        ))),
        None => Ok(()),
    }
}

/// A score bound as Redis reads it. Every stored score lies within ±2^53, so a bound
/// beyond that selects the same members as an infinite one.
pub(super) fn score_bound(bound: i64) -> String {
    if bound < -MAX_EXACT_SCORE {
        "-inf".to_owned()
    } else if bound > MAX_EXACT_SCORE {
        "+inf".to_owned()
    } else {
        bound.to_string()
    }
}

/// A score read back from Redis; anything but an integer within ±2^53 was not written by
/// this store and is reported, not truncated.
pub(super) fn score_from(member: &str, score: f64) -> StoreResult<i64> {
    // The bound is exactly representable, so the comparison is exact.
    let bound = MAX_EXACT_SCORE as f64;
    if score.fract() != 0.0 || score.is_nan() || score.abs() > bound {
        return Err(StoreError::Backend(format!(
            "score {score} of {member:?} is not an integer within ±2^53"
        )));
    }
    // Exact: an integer within ±2^53.
    Ok(score as i64)
}

/// A `WITHSCORES` reply as (member, score) pairs.
pub(super) fn scored(reply: Vec<(String, f64)>) -> StoreResult<Vec<(String, i64)>> {
    reply
        .into_iter()
        .map(|(member, score)| {
            let score = score_from(&member, score)?;
            Ok((member, score))
        })
        .collect()
}

/// The inclusive rank range `ZRANGE` takes for `offset` and `limit`, or `None` when the
/// range is empty (`limit` 0, or an offset beyond any rank Redis can have).
pub(super) fn rank_range(offset: u64, limit: u64) -> Option<(i64, i64)> {
    let start = i64::try_from(offset).ok()?;
    let last = limit.checked_sub(1)?;
    let stop = start.saturating_add(i64::try_from(last).unwrap_or(i64::MAX));
    Some((start, stop))
}

/// A `LIMIT` count for Redis (a signed 64-bit number; a negative count means "all").
pub(super) fn count(limit: u64) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// An `HGETALL` reply as counters sorted by field name. A field that does not hold an
/// integer was not written by this store and is reported, not skipped.
pub(super) fn counters_from(reply: Vec<(String, String)>) -> StoreResult<Vec<(String, i64)>> {
    let mut counters = reply
        .into_iter()
        .map(|(field, value)| match value.parse::<i64>() {
            Ok(v) => Ok((field, v)),
            Err(_) => Err(StoreError::Backend(format!(
                "counter {field:?} holds {value:?}, not an integer"
            ))),
        })
        .collect::<StoreResult<Vec<_>>>()?;
    counters.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(counters)
}

/// How long `counters_add_once` remembers a batch id: at least 1 ms, at most
/// [`MAX_TTL_MS`] (a batch id remembered for 0 ms would not make a retry count once).
pub(super) fn check_dedupe_ttl(ttl_ms: u64) -> StoreResult<()> {
    if ttl_ms == 0 || ttl_ms > MAX_TTL_MS {
        return Err(refused(format!(
            "remembering a batch id for {ttl_ms} ms (between 1 and {MAX_TTL_MS})"
        )));
    }
    Ok(())
}

/// Refuses GCRA arguments the script could not compute with exactly (see
/// [`GCRA_LIMIT_US`]); what overrides and products add is checked by the script itself.
pub(super) fn check_gcra(limit: &GcraLimit, now_ms: u64, cost: u64) -> StoreResult<()> {
    let checks = [
        ("now", now_ms.saturating_mul(1_000)),
        ("the period", limit.period_ms.saturating_mul(1_000)),
        ("the rate", limit.rate),
        ("the burst", limit.burst),
        ("the cost", cost),
    ];
    match checks.iter().find(|(_, v)| *v >= GCRA_LIMIT_US) {
        Some((what, _)) => Err(refused(format!(
            "gcra: {what} reaches 2^53 - 2048 (µs), beyond exact Lua arithmetic"
        ))),
        None => Ok(()),
    }
}

/// The GCRA script's reply `{allowed, limit, burst, remaining, retry_after_ms,
/// reset_after_ms}`.
pub(super) type GcraReply = (i64, i64, i64, i64, i64, i64);

/// The decision in a [`GcraReply`].
pub(super) fn decision(reply: GcraReply) -> GcraDecision {
    let (allowed, limit, burst, remaining, retry_after_ms, reset_after_ms) = reply;
    GcraDecision {
        allowed: allowed == 1,
        limit: non_negative(limit),
        burst: non_negative(burst),
        remaining: non_negative(remaining),
        retry_after_ms: non_negative(retry_after_ms),
        reset_after_ms: non_negative(reset_after_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_beyond_2_pow_53_are_refused_and_bounds_clamped() {
        let ok = [
            ("a".to_owned(), MAX_EXACT_SCORE),
            ("b".to_owned(), -MAX_EXACT_SCORE),
        ];
        assert!(check_scores(&ok).is_ok());
        for bad in [
            MAX_EXACT_SCORE + 1,
            -MAX_EXACT_SCORE - 1,
            i64::MIN,
            i64::MAX,
        ] {
            let r = check_scores(&[("ok".to_owned(), 1), ("x".to_owned(), bad)]);
            assert!(
                matches!(&r, Err(StoreError::Backend(m)) if m.starts_with("refused: ")),
                "{r:?}"
            );
        }
        assert_eq!(score_bound(i64::MIN), "-inf");
        assert_eq!(score_bound(i64::MAX), "+inf");
        assert_eq!(score_bound(-MAX_EXACT_SCORE), "-9007199254740992");
        assert_eq!(score_bound(42), "42");
    }

    #[test]
    fn scores_read_back_must_be_exact_integers() {
        assert_eq!(
            score_from("m", 9007199254740992.0).ok(),
            Some(MAX_EXACT_SCORE)
        );
        assert_eq!(score_from("m", -3.0).ok(), Some(-3));
        for bad in [
            1.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            2f64.powi(60),
        ] {
            assert!(score_from("m", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rank_ranges() {
        assert_eq!(rank_range(0, 0), None);
        assert_eq!(rank_range(0, 1), Some((0, 0)));
        assert_eq!(rank_range(5, 3), Some((5, 7)));
        assert_eq!(rank_range(5, u64::MAX), Some((5, i64::MAX)));
        assert_eq!(rank_range(u64::MAX, 3), None);
        assert_eq!(count(u64::MAX), i64::MAX);
    }

    #[test]
    fn counters_are_sorted_and_must_be_integers() {
        let reply = vec![
            ("b".to_owned(), "-2".to_owned()),
            ("a".to_owned(), "9223372036854775807".to_owned()),
        ];
        assert_eq!(
            counters_from(reply).expect("integers"),
            vec![("a".to_owned(), i64::MAX), ("b".to_owned(), -2)]
        );
        assert!(counters_from(vec![("a".to_owned(), "1.5".to_owned())]).is_err());
    }

    #[test]
    fn gcra_arguments_beyond_exact_lua_numbers_are_refused() {
        let limit = GcraLimit {
            rate: 60,
            period_ms: 60_000,
            burst: 5,
            overrides: None,
        };
        assert!(check_gcra(&limit, 1_700_000_000_000, 1).is_ok());
        assert!(check_gcra(&limit, u64::MAX, 1).is_err());
        assert!(check_gcra(&limit, 1, GCRA_LIMIT_US).is_err());
        let huge_period = GcraLimit {
            period_ms: u64::MAX / 2,
            ..limit.clone()
        };
        assert!(check_gcra(&huge_period, 1, 1).is_err());
        let huge_burst = GcraLimit {
            burst: u64::MAX,
            ..limit
        };
        assert!(check_gcra(&huge_burst, 1, 1).is_err());
        assert!(check_dedupe_ttl(0).is_err() && check_dedupe_ttl(MAX_TTL_MS + 1).is_err());
        assert!(check_dedupe_ttl(1).is_ok());
    }
}
