//! The key that authenticates audit records: HMAC-SHA256, derived from the master key
//! (`tenant.master_key`, or `<tenant.secrets_dir>/master.key`), never written to the
//! store. Someone who can write the store but does not hold the master key cannot make
//! a record `verify` accepts, even with a consistent hash chain.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::crypto::{KEY_LEN, MasterKey};

/// What [`MasterKey::derive_subkey`] derives the audit key for.
const PURPOSE: &str = "riptide audit record hmac v2";

/// The audit log's record key.
#[derive(Clone)]
pub struct AuditKey {
    bytes: [u8; KEY_LEN],
}

impl AuditKey {
    /// The audit key of the service, derived from its master key. Instances sharing a
    /// store must share the master key (as they must for encrypted tenants).
    pub fn from_master(master: &MasterKey) -> Self {
        Self {
            bytes: master.derive_subkey(PURPOSE),
        }
    }

    /// A key from raw bytes (tests and tools).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self { bytes }
    }

    /// Lower-case hex HMAC-SHA256 of `parts`, in order.
    pub(super) fn mac(&self, parts: &[&[u8]]) -> String {
        // HMAC takes a key of any length; 32 bytes cannot be refused.
        let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.bytes) else {
            return String::new();
        };
        for part in parts {
            mac.update(part);
        }
        hex::encode(mac.finalize().into_bytes())
    }
}

impl Drop for AuditKey {
    fn drop(&mut self) {
        self.bytes.fill(0);
        std::hint::black_box(&self.bytes);
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(..)")
    }
}
