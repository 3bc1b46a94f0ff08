//! `set_fenced`: a write that only lands while its fencing token is the live holding's.
//!
//! One write transaction reads the holding at the lease key (`lease.rs`: the value
//! `<token>:<holder>` with the holding's expiry) and writes the value only when that
//! holding is live and carries the caller's token. redb runs one write transaction at a
//! time, so no lease step can come between the check and the write: a holder that was
//! replaced (a new holding, so a new token) or whose holding expired writes nothing.

use bytes::Bytes;

use super::lease::holding_in;
use super::tables::KvTables;
use super::{EmbeddedStore, check_ttl, expires_at};
use crate::{Durability, StoreResult};

/// `set_fenced`: see [`crate::Coordination::set_fenced`].
pub(super) async fn set_fenced(
    store: &EmbeddedStore,
    lease_key: &str,
    token: u64,
    key: &str,
    value: &[u8],
    ttl_ms: Option<u64>,
    durability: Durability,
) -> StoreResult<bool> {
    check_ttl(ttl_ms)?;
    let lease_key = lease_key.to_owned();
    let key = key.to_owned();
    let value = Bytes::copy_from_slice(value);
    store
        .write(durability, move |tx, now| {
            let mut kv = KvTables::open(tx)?;
            let current = kv.with_raw(&lease_key, |raw| holding_in(raw, now))??;
            if current.is_none_or(|h| h.token != token) {
                return Ok(false);
            }
            kv.put(&key, &value, expires_at(now, ttl_ms))?;
            Ok(true)
        })
        .await
}
