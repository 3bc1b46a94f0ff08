//! Mapping `redis` errors onto [`StoreError`]: what is retryable, what is the server
//! refusing, the over-budget refusal the cache scripts raise, and the input refusals of
//! the record scripts.

use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::StoreError;

/// The error code `put.lua` replies with when a batch exceeds the budget:
/// `OVERBUDGET <needed> <budget>`.
pub(super) const OVER_BUDGET_CODE: &str = "OVERBUDGET";

/// The error code a script replies with when its input cannot be handled exactly (for
/// instance GCRA figures beyond what Lua numbers hold): `REFUSED <reason>`. It becomes
/// the same [`StoreError::Backend`]`("refused: <reason>")` as input refused before
/// anything is sent.
pub(super) const REFUSED_CODE: &str = "REFUSED";

/// Maps a `redis` error onto a [`StoreError`].
///
/// Anything that says "the backend is not reachable right now" (I/O errors, timeouts,
/// refused or dropped connections, a Cluster that is down, moving slots or failing
/// over, a server still loading its data) is [`StoreError::Unavailable`], the retryable
/// kind; every other answer is [`StoreError::Backend`].
pub(super) fn from_redis(e: RedisError) -> StoreError {
    if let Some(over) = over_budget(&e) {
        return over;
    }
    if e.code() == Some(REFUSED_CODE) {
        return StoreError::Backend(format!("refused: {}", e.detail().unwrap_or_default()));
    }
    match e.kind() {
        ErrorKind::Io | ErrorKind::ClusterConnectionNotFound => {
            StoreError::Unavailable(e.to_string())
        }
        ErrorKind::Server(
            ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::BusyLoading
            | ServerErrorKind::ReadOnly
            | ServerErrorKind::Moved
            | ServerErrorKind::Ask,
        ) => StoreError::Unavailable(e.to_string()),
        ErrorKind::InvalidClientConfig => StoreError::Config(e.to_string()),
        _ => StoreError::Backend(e.to_string()),
    }
}

/// Recognises `OVERBUDGET <needed> <budget>` from `put.lua`.
fn over_budget(e: &RedisError) -> Option<StoreError> {
    if e.code() != Some(OVER_BUDGET_CODE) {
        return None;
    }
    let mut numbers = e.detail()?.split_ascii_whitespace().map(str::parse::<u64>);
    let needed = numbers.next()?.ok()?;
    let budget = numbers.next()?.ok()?;
    Some(StoreError::OverBudget { needed, budget })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_retryable_and_server_errors_are_not() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(from_redis(refused).is_retryable());
        let timeout = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(from_redis(timeout).is_retryable());
        let wrongtype = redis::make_extension_error("WRONGTYPE".into(), Some("bad".into()));
        assert!(matches!(from_redis(wrongtype), StoreError::Backend(_)));
    }

    #[test]
    fn refusals_from_scripts_read_like_refusals_from_the_client() {
        let e = redis::make_extension_error(REFUSED_CODE.into(), Some("gcra: the cost".into()));
        match from_redis(e) {
            StoreError::Backend(m) => assert_eq!(m, "refused: gcra: the cost"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn over_budget_replies_are_parsed() {
        let e = redis::make_extension_error(OVER_BUDGET_CODE.into(), Some("120 100".into()));
        assert!(matches!(
            from_redis(e),
            StoreError::OverBudget {
                needed: 120,
                budget: 100
            }
        ));
    }
}
