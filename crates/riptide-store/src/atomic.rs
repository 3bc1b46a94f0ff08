//! The ops of [`super::Transactions::write_atomic`]: what several records of one change (a
//! tenant's record, its quota overrides, its data key and its registry entry; an API
//! key's record, index entry and lookup) need to be written as one, so a crash between
//! two of them can never leave half a tenant or half a key.

use bytes::Bytes;

/// One step of an atomic multi-key write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// The write goes ahead only when the plain value at `key` equals `value` (`None`:
    /// absent or expired). Checked before anything is written, wherever it stands.
    Expect {
        /// The key.
        key: String,
        /// The value it must hold, or `None` for "absent".
        value: Option<Bytes>,
    },
    /// The write goes ahead only when `key` holds a live plain value (whatever it is).
    ExpectPresent {
        /// The key.
        key: String,
    },
    /// Writes a plain value without TTL (replacing any TTL).
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Bytes,
    },
    /// Deletes whatever `key` names (value, sorted set, counters record), as
    /// [`super::KeyValue::delete`] does.
    Delete {
        /// The key.
        key: String,
    },
    /// Sets counters fields (`None` removes the field), as
    /// [`super::Counters::counters_set`] does.
    Counters {
        /// The counters record.
        key: String,
        /// The fields.
        fields: Vec<(String, Option<i64>)>,
    },
    /// Adds members to a sorted set (or moves them to their new score).
    ZsetAdd {
        /// The sorted set.
        key: String,
        /// `(member, score)`, scores within ±2^53.
        members: Vec<(String, i64)>,
    },
    /// Removes members from a sorted set.
    ZsetRemove {
        /// The sorted set.
        key: String,
        /// The members.
        members: Vec<String>,
    },
}

impl WriteOp {
    /// The key the op reads or writes.
    pub fn key(&self) -> &str {
        match self {
            WriteOp::Expect { key, .. }
            | WriteOp::ExpectPresent { key }
            | WriteOp::Put { key, .. }
            | WriteOp::Delete { key }
            | WriteOp::Counters { key, .. }
            | WriteOp::ZsetAdd { key, .. }
            | WriteOp::ZsetRemove { key, .. } => key,
        }
    }

    /// `Expect` that `key` is absent.
    pub fn absent(key: impl Into<String>) -> Self {
        WriteOp::Expect {
            key: key.into(),
            value: None,
        }
    }

    /// `ExpectPresent` of `key`.
    pub fn present(key: impl Into<String>) -> Self {
        WriteOp::ExpectPresent { key: key.into() }
    }

    /// `Put` of `value` at `key`.
    pub fn put(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        WriteOp::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    /// `Delete` of `key`.
    pub fn delete(key: impl Into<String>) -> Self {
        WriteOp::Delete { key: key.into() }
    }
}
