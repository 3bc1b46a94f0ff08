//! `lease`: its checks and the conversion of `scripts/lease.lua`'s reply.
//!
//! A lease is one key holding `<token>:<holder>` with a `PX` expiry, beside a counter
//! (`<key>:fence`) that the script `INCR`s for every new holding and never expires: the
//! token is the fencing token, so it keeps increasing even after the lease key expired
//! or was released. The holding's TTL runs on the Redis server's clock (the script uses
//! `PX` / `PEXPIRE` / `PTTL`), not on the caller's: instances whose clocks disagree still
//! agree on who holds the lease. Tokens only increase as long as the counter survives,
//! which is the server's persistence (and eviction policy) to ensure, as for any record.

use super::{check_ttl, non_negative, refused};
use crate::{LeaseState, StoreResult};

/// What the fencing counter's key adds to the lease's key (same hash tag).
pub(super) const FENCE_SUFFIX: &str = ":fence";

/// Longest holder name, in bytes.
pub const MAX_LEASE_HOLDER_LEN: usize = 128;

/// Refuses a TTL of 0 (or beyond [`super::MAX_TTL_MS`]) and a holder that is empty or
/// longer than [`MAX_LEASE_HOLDER_LEN`] bytes.
pub(super) fn check(holder: &str, ttl_ms: u64) -> StoreResult<()> {
    check_ttl(Some(ttl_ms))?;
    if holder.is_empty() || holder.len() > MAX_LEASE_HOLDER_LEN {
        return Err(refused(format!(
            "a lease holder of {} bytes (between 1 and {MAX_LEASE_HOLDER_LEN})",
            holder.len()
        )));
    }
    Ok(())
}

/// The script's reply `{held, holder or nil, token, ttl_ms}` (the token as a string).
pub(super) type LeaseReply = (i64, Option<String>, u64, i64);

/// The state in a [`LeaseReply`].
pub(super) fn state(reply: LeaseReply) -> LeaseState {
    let (held, holder, token, ttl_ms) = reply;
    LeaseState {
        held: held == 1,
        holder,
        token,
        ttl_ms: non_negative(ttl_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreError;

    fn is_refusal(r: StoreResult<()>) -> bool {
        matches!(r, Err(StoreError::Backend(m)) if m.starts_with("refused: "))
    }

    #[test]
    fn holders_and_ttls_are_checked() {
        assert!(check("a", 1).is_ok());
        assert!(check(&"h".repeat(MAX_LEASE_HOLDER_LEN), super::super::MAX_TTL_MS).is_ok());
        assert!(is_refusal(check("a", 0)));
        assert!(is_refusal(check("a", super::super::MAX_TTL_MS + 1)));
        assert!(is_refusal(check("", 1_000)));
        assert!(is_refusal(check(
            &"h".repeat(MAX_LEASE_HOLDER_LEN + 1),
            1_000
        )));
    }

    #[test]
    fn replies_become_states() {
        assert_eq!(
            state((1, Some("me".into()), 7, 1_000)),
            LeaseState {
                held: true,
                holder: Some("me".into()),
                token: 7,
                ttl_ms: 1_000
            }
        );
        assert_eq!(
            state((0, None, 0, -1)),
            LeaseState {
                held: false,
                holder: None,
                token: 0,
                ttl_ms: 0
            }
        );
    }
}
