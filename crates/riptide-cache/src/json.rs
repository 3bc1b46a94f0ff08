//! The JSON encoding of the typed calls (`get`/`set`, batches, `get_or_load`).

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{CacheError, CacheResult};

/// `value` as JSON bytes.
pub(super) fn encode_json<V: Serialize + ?Sized>(value: &V) -> CacheResult<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| CacheError::Serialize(e.to_string()))
}

/// A value from its JSON bytes.
pub(super) fn decode_json<T: DeserializeOwned>(payload: &[u8]) -> CacheResult<T> {
    serde_json::from_slice(payload).map_err(|e| CacheError::Deserialize(e.to_string()))
}
