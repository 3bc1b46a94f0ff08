//! What is recorded: the [`AuditEntry`] a caller gives, the [`AuditRecord`] stored, and
//! the record's hash over its canonical form.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::key::AuditKey;
use super::{MAX_FIELD_CHARS, MAX_METADATA_BYTES, MAX_METADATA_ENTRIES, MAX_OUTCOME_CHARS};
use crate::error::{TenantError, TenantResult};
use riptide_store::tenant_id::TenantId;

/// What to record; [`AuditLog::append`] adds the sequence number, time and hashes.
///
/// [`AuditLog::append`]: super::AuditLog::append
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Who acted: an admin token's name, `tenant:<id>`, `system`, ... (1 to 200 chars).
    pub actor: String,
    /// The tenant concerned, if any (must be a valid tenant id).
    pub tenant_id: Option<String>,
    /// What was done, e.g. `tenant.create`, `api_key.revoke` (1 to 200 chars).
    pub operation: String,
    /// What it was done to or with, e.g. a key id or `plan=basic` (at most 200 chars).
    pub resource: String,
    /// The result (the seed's `result`): [`OUTCOME_OK`], or an error (at most 1024 chars).
    ///
    /// [`OUTCOME_OK`]: super::OUTCOME_OK
    pub outcome: String,
    /// Extra detail: at most 32 entries, keys and values at most 1 KiB each.
    pub metadata: BTreeMap<String, String>,
}

impl AuditEntry {
    /// An entry without metadata.
    pub fn new(
        actor: &str,
        tenant_id: Option<&str>,
        operation: &str,
        resource: &str,
        outcome: &str,
    ) -> Self {
        Self {
            actor: actor.to_owned(),
            tenant_id: tenant_id.map(str::to_owned),
            operation: operation.to_owned(),
            resource: resource.to_owned(),
            outcome: outcome.to_owned(),
            metadata: BTreeMap::new(),
        }
    }

    /// Adds one metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Checks the documented limits; returns the validated tenant id.
    pub(super) fn validate(&self) -> TenantResult<Option<TenantId>> {
        check_chars("actor", &self.actor, 1, MAX_FIELD_CHARS)?;
        check_chars("operation", &self.operation, 1, MAX_FIELD_CHARS)?;
        check_chars("resource", &self.resource, 0, MAX_FIELD_CHARS)?;
        check_chars("outcome", &self.outcome, 0, MAX_OUTCOME_CHARS)?;
        if self.metadata.len() > MAX_METADATA_ENTRIES {
            return Err(TenantError::InvalidField {
                field: "metadata",
                reason: format!(
                    "{} entries; at most {MAX_METADATA_ENTRIES}",
                    self.metadata.len()
                ),
            });
        }
        if self
            .metadata
            .iter()
            .any(|(k, v)| k.len() > MAX_METADATA_BYTES || v.len() > MAX_METADATA_BYTES)
        {
            return Err(TenantError::InvalidField {
                field: "metadata",
                reason: format!("keys and values are at most {MAX_METADATA_BYTES} bytes"),
            });
        }
        self.tenant_id
            .as_deref()
            .map(TenantId::parse)
            .transpose()
            .map_err(TenantError::from)
    }
}

/// One record of the log. The seed's `AuditLog` fields map as: `timestamp` → `at`,
/// `tenant_id`, `operation`, `resource`, `result` → `outcome`, `metadata`; `actor` is who.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Format: [`RECORD_VERSION`] (keyed) for every record appended now; 1 (unkeyed
    /// SHA-256, before the audit key existed) for older ones.
    #[serde(default = "legacy_version")]
    pub v: u8,
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// When it was appended (millisecond precision, from the injected clock).
    pub at: DateTime<Utc>,
    /// Who acted.
    pub actor: String,
    /// The tenant concerned, if any.
    pub tenant_id: Option<String>,
    /// What was done.
    pub operation: String,
    /// What it was done to.
    pub resource: String,
    /// The result.
    pub outcome: String,
    /// Extra detail.
    pub metadata: BTreeMap<String, String>,
    /// The previous record's hash ([`GENESIS_HASH`] for the first).
    ///
    /// [`GENESIS_HASH`]: super::GENESIS_HASH
    pub prev_hash: String,
    /// Lower-case hex HMAC-SHA256 under the audit key (SHA-256 for version 1) of
    /// `prev_hash` and the canonical JSON of this record without `hash`.
    pub hash: String,
}

/// The version of records appended now: authenticated with the audit key.
pub const RECORD_VERSION: u8 = 2;

/// Records stored before the version field existed.
fn legacy_version() -> u8 {
    1
}

/// The hashed form of a record: fixed field order, the time as integer milliseconds.
#[derive(Serialize)]
struct Canonical<'a> {
    v: u8,
    seq: u64,
    at_ms: i64,
    actor: &'a str,
    tenant_id: Option<&'a str>,
    operation: &'a str,
    resource: &'a str,
    outcome: &'a str,
    metadata: &'a BTreeMap<String, String>,
    prev_hash: &'a str,
}

impl AuditRecord {
    /// The hash this record should carry, computed from its other fields: keyed with
    /// `key` (version 2), or a plain SHA-256 for a version 1 record.
    pub fn compute_hash(&self, key: &AuditKey) -> String {
        let canonical = Canonical {
            v: self.v,
            seq: self.seq,
            at_ms: self.at.timestamp_millis(),
            actor: &self.actor,
            tenant_id: self.tenant_id.as_deref(),
            operation: &self.operation,
            resource: &self.resource,
            outcome: &self.outcome,
            metadata: &self.metadata,
            prev_hash: &self.prev_hash,
        };
        // Serializing strings, integers and a string map cannot fail; were it ever to,
        // the hash would cover the prefix only and verification would report it.
        let json = serde_json::to_vec(&canonical).unwrap_or_default();
        if self.v >= RECORD_VERSION {
            return key.mac(&[self.prev_hash.as_bytes(), &json]);
        }
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.as_bytes());
        hasher.update(&json);
        hex::encode(hasher.finalize())
    }

    /// The seed's `timestamp`.
    pub fn timestamp(&self) -> DateTime<Utc> {
        self.at
    }

    /// The seed's `result`.
    pub fn result(&self) -> &str {
        &self.outcome
    }
}

fn check_chars(field: &'static str, value: &str, min: usize, max: usize) -> TenantResult<()> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(TenantError::InvalidField {
            field,
            reason: format!("{n} characters; expected {min} to {max}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{GENESIS_HASH, OUTCOME_OK, datetime};

    fn key() -> AuditKey {
        AuditKey::from_bytes([7; 32])
    }

    fn record() -> AuditRecord {
        let mut r = AuditRecord {
            v: RECORD_VERSION,
            seq: 7,
            at: datetime(1_700_000_000_123),
            actor: "admin".into(),
            tenant_id: Some("acme".into()),
            operation: "tenant.create".into(),
            resource: "plan=basic".into(),
            outcome: OUTCOME_OK.into(),
            metadata: BTreeMap::from([("b".into(), "2".into()), ("a".into(), "1".into())]),
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        };
        r.hash = r.compute_hash(&key());
        r
    }

    #[test]
    fn hash_survives_a_json_round_trip_and_covers_every_field() {
        let r = record();
        let back: AuditRecord =
            serde_json::from_slice(&serde_json::to_vec(&r).expect("json")).expect("parse");
        assert_eq!(back.compute_hash(&key()), r.hash);
        let mut edited = r.clone();
        edited.outcome = "error".into();
        assert_ne!(edited.compute_hash(&key()), r.hash);
        let mut relinked = r.clone();
        relinked.prev_hash = "f".repeat(64);
        assert_ne!(relinked.compute_hash(&key()), r.hash);
        let mut downgraded = r.clone();
        downgraded.v = 1;
        assert_ne!(downgraded.compute_hash(&key()), r.hash);
        let mut moved = r.clone();
        moved.at = datetime(1_700_000_000_124);
        assert_ne!(moved.compute_hash(&key()), back.hash);
        // Another key: another hash, so a record cannot be forged without the key.
        assert_ne!(r.compute_hash(&AuditKey::from_bytes([8; 32])), r.hash);
    }

    #[test]
    fn records_without_a_version_are_legacy() {
        let mut json = serde_json::to_value(record()).expect("json");
        json.as_object_mut().expect("object").remove("v");
        let legacy: AuditRecord = serde_json::from_value(json).expect("parse");
        assert_eq!(legacy.v, 1);
    }

    #[test]
    fn entry_limits() {
        let ok = AuditEntry::new("admin", Some("acme"), "op", "res", "ok");
        assert!(ok.validate().is_ok());
        let long = "x".repeat(MAX_FIELD_CHARS + 1);
        for bad in [
            AuditEntry::new("", None, "op", "", "ok"),
            AuditEntry::new(&long, None, "op", "", "ok"),
            AuditEntry::new("a", None, &long, "", "ok"),
            AuditEntry::new("a", None, "op", &long, "ok"),
            AuditEntry::new("a", None, "op", "", &"x".repeat(MAX_OUTCOME_CHARS + 1)),
            AuditEntry::new("a", None, "op", "", "ok")
                .with_metadata("k", "v".repeat(MAX_METADATA_BYTES + 1)),
        ] {
            assert!(
                matches!(bad.validate(), Err(TenantError::InvalidField { .. })),
                "{bad:?}"
            );
        }
        let many = (0..=MAX_METADATA_ENTRIES)
            .fold(AuditEntry::new("a", None, "op", "", "ok"), |e, i| {
                e.with_metadata(format!("k{i}"), "v")
            });
        assert!(matches!(
            many.validate(),
            Err(TenantError::InvalidField {
                field: "metadata",
                ..
            })
        ));
        assert!(matches!(
            AuditEntry::new("a", Some("Bad Id"), "op", "", "ok").validate(),
            Err(TenantError::Invalid(_))
        ));
        // Characters, not bytes: 200 multi-byte characters are fine.
        assert!(
            AuditEntry::new(&"é".repeat(MAX_FIELD_CHARS), None, "op", "", "ok")
                .validate()
                .is_ok()
        );
    }
}
