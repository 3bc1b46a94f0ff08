//! The wire format of the sync channel: one JSON object per message.
//!
//! ```json
//! {"v":1,"from":"web-1-k3x9a0qz","body":{"type":"cache","data":{"Key":{"store_key":"riptide:tenant:{acme}:c:default:…"}}}}
//! {"v":1,"from":"web-2-p0d8c1mm","body":{"type":"tenant_changed","data":{"tenant_id":"acme","change":"suspend"}}}
//! ```
//!
//! `v` is the format version ([`WIRE_VERSION`]); a message of another version, of an
//! unknown `type`, larger than [`MAX_MESSAGE_BYTES`] or with a field out of range is
//! refused by [`SyncMessage::decode`] (the receiver counts and logs it, rate-limited).
//! The same checks run before publishing, so an instance never sends what its peers
//! would refuse.

use serde::{Deserialize, Serialize};

use riptide_cache::Invalidation;
use riptide_store::keys::{Namespace, validate_tag};
use riptide_store::tenant_id::{TenantId, truncate_for_error};

/// Version of the message format written by this build.
pub const WIRE_VERSION: u32 = 1;

/// Largest encoded message accepted, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Longest instance id, key id, session id or `requested_by`, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// Longest store key carried by an [`Invalidation::Key`], in bytes.
pub const MAX_STORE_KEY_LEN: usize = 1024;

/// The values of [`SyncBody::TenantChanged`]'s `change`.
pub mod tenant_change {
    /// The tenant's quotas changed.
    pub const QUOTA: &str = "quota";
    /// The tenant's plan changed.
    pub const PLAN: &str = "plan";
    /// The tenant was suspended.
    pub const SUSPEND: &str = "suspend";
    /// The tenant was resumed.
    pub const RESUME: &str = "resume";
    /// Another field of the tenant record changed.
    pub const UPDATE: &str = "update";
    /// The tenant was deleted.
    pub const DELETE: &str = "delete";
    /// Every accepted value.
    pub const ALL: [&str; 6] = [QUOTA, PLAN, SUSPEND, RESUME, UPDATE, DELETE];
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum SyncBody {
    /// L1 copies to drop.
    Cache(Invalidation),
    /// A tenant record changed: other instances reload it from the store.
    TenantChanged {
        /// The tenant.
        tenant_id: String,
        /// What changed: one of [`tenant_change::ALL`].
        change: String,
    },
    /// An API key was revoked: other instances drop it from their key caches.
    KeyRevoked {
        /// The key's tenant.
        tenant_id: String,
        /// The key's id.
        key_id: String,
    },
    /// A session was changed or terminated: other instances drop their copy.
    SessionChanged {
        /// The session's tenant.
        tenant_id: String,
        /// The session.
        session_id: String,
    },
    /// Every instance reloads its configuration.
    ReloadConfig {
        /// Who asked (an admin, an instance id), for the logs.
        requested_by: String,
    },
}

/// The kinds of [`SyncBody`] (the values of [`SyncBody::kind`]), in declaration order.
pub const KINDS: [&str; 5] = [
    "cache",
    "tenant_changed",
    "key_revoked",
    "session_changed",
    "reload_config",
];

impl SyncBody {
    /// Stable lower-case name, the `kind` label of the sync metrics.
    pub fn kind(&self) -> &'static str {
        KINDS[self.kind_index()]
    }

    /// Position of the kind in [`KINDS`].
    pub(crate) fn kind_index(&self) -> usize {
        match self {
            SyncBody::Cache(_) => 0,
            SyncBody::TenantChanged { .. } => 1,
            SyncBody::KeyRevoked { .. } => 2,
            SyncBody::SessionChanged { .. } => 3,
            SyncBody::ReloadConfig { .. } => 4,
        }
    }

    /// Checks every field: tenant ids, tags and namespaces as the rest of the crate
    /// accepts them, ids bounded and printable.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            SyncBody::Cache(inv) => validate_invalidation(inv),
            SyncBody::TenantChanged { tenant_id, change } => {
                check_tenant(tenant_id)?;
                if tenant_change::ALL.contains(&change.as_str()) {
                    Ok(())
                } else {
                    Err(format!(
                        "unknown tenant change {:?}: expected one of {:?}",
                        truncate_for_error(change),
                        tenant_change::ALL
                    ))
                }
            }
            SyncBody::KeyRevoked { tenant_id, key_id } => {
                check_tenant(tenant_id)?;
                check_id("key_id", key_id)
            }
            SyncBody::SessionChanged {
                tenant_id,
                session_id,
            } => {
                check_tenant(tenant_id)?;
                check_id("session_id", session_id)
            }
            SyncBody::ReloadConfig { requested_by } => check_id("requested_by", requested_by),
        }
    }
}

fn validate_invalidation(inv: &Invalidation) -> Result<(), String> {
    match inv {
        Invalidation::Key { store_key } => {
            if store_key.is_empty() || store_key.len() > MAX_STORE_KEY_LEN {
                return Err(format!(
                    "store key of {} bytes: expected 1 to {MAX_STORE_KEY_LEN}",
                    store_key.len()
                ));
            }
            Ok(())
        }
        // The scope's tenant id was validated when it was deserialized.
        Invalidation::Tag { tag, .. } => validate_tag(tag).map_err(|e| e.to_string()),
        Invalidation::Namespace { namespace, .. } => Namespace::parse(namespace)
            .map(drop)
            .map_err(|e| e.to_string()),
        Invalidation::Scope(_) | Invalidation::All => Ok(()),
    }
}

fn check_tenant(tenant_id: &str) -> Result<(), String> {
    TenantId::parse(tenant_id)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// An id is 1 to [`MAX_ID_LEN`] printable ASCII bytes.
pub(crate) fn check_id(what: &str, id: &str) -> Result<(), String> {
    if !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} {:?}: expected 1 to {MAX_ID_LEN} printable ASCII characters",
            truncate_for_error(id)
        ))
    }
}

/// One message on the channel: the version, the sending instance and the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncMessage {
    /// Format version ([`WIRE_VERSION`]).
    pub v: u32,
    /// Instance id of the sender; receivers skip their own messages.
    pub from: String,
    /// What the message says.
    pub body: SyncBody,
}

impl SyncMessage {
    /// A message of the current version.
    pub fn new(from: &str, body: SyncBody) -> Self {
        Self {
            v: WIRE_VERSION,
            from: from.to_owned(),
            body,
        }
    }

    /// Validates and encodes the message.
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        self.check()?;
        let bytes = serde_json::to_vec(self).map_err(|e| format!("encode: {e}"))?;
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(format!(
                "message of {} bytes exceeds {MAX_MESSAGE_BYTES}",
                bytes.len()
            ));
        }
        Ok(bytes)
    }

    /// Decodes and validates a received message.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(format!(
                "message of {} bytes exceeds {MAX_MESSAGE_BYTES}",
                bytes.len()
            ));
        }
        // Read the version first, so a newer format is reported as such rather than as
        // whatever field it happens to break.
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        let version: Version =
            serde_json::from_slice(bytes).map_err(|e| format!("not a sync message: {e}"))?;
        if version.v != WIRE_VERSION {
            return Err(format!(
                "unsupported message version {} (this build reads {WIRE_VERSION})",
                version.v
            ));
        }
        let msg: SyncMessage =
            serde_json::from_slice(bytes).map_err(|e| format!("malformed message: {e}"))?;
        msg.check()?;
        Ok(msg)
    }

    fn check(&self) -> Result<(), String> {
        check_id("sender id", &self.from)?;
        self.body.validate()
    }
}

/// What a sync handler is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEvent {
    /// Another instance published this.
    Message(SyncBody),
    /// The subscription was re-established after an interruption. Messages sent
    /// meanwhile may be lost: drop whatever they could have invalidated (L1, cached
    /// tenant records, cached keys and sessions).
    Resynced,
}

#[cfg(test)]
mod tests {
    use super::*;
    use riptide_store::keys::Scope;

    fn tenant_scope(t: &str) -> Scope {
        Scope::Tenant(TenantId::parse(t).unwrap())
    }

    fn every_body() -> Vec<SyncBody> {
        vec![
            SyncBody::Cache(Invalidation::Key {
                store_key: "riptide:tenant:{acme}:c:default:00ff".into(),
            }),
            SyncBody::Cache(Invalidation::Tag {
                scope: tenant_scope("acme"),
                tag: "url:example.com".into(),
            }),
            SyncBody::Cache(Invalidation::Namespace {
                scope: Scope::Global,
                namespace: "extract".into(),
            }),
            SyncBody::Cache(Invalidation::Scope(tenant_scope("acme"))),
            SyncBody::Cache(Invalidation::All),
            SyncBody::TenantChanged {
                tenant_id: "acme".into(),
                change: tenant_change::SUSPEND.into(),
            },
            SyncBody::KeyRevoked {
                tenant_id: "acme".into(),
                key_id: "k_123".into(),
            },
            SyncBody::SessionChanged {
                tenant_id: "acme".into(),
                session_id: "s-1".into(),
            },
            SyncBody::ReloadConfig {
                requested_by: "admin".into(),
            },
        ]
    }

    #[test]
    fn every_body_round_trips() {
        for body in every_body() {
            let msg = SyncMessage::new("host-abcd1234", body);
            let bytes = msg.encode().unwrap();
            assert_eq!(SyncMessage::decode(&bytes).unwrap(), msg);
        }
    }

    #[test]
    fn the_wire_format_is_stable() {
        let msg = SyncMessage::new(
            "h-1",
            SyncBody::TenantChanged {
                tenant_id: "acme".into(),
                change: "plan".into(),
            },
        );
        assert_eq!(
            String::from_utf8(msg.encode().unwrap()).unwrap(),
            r#"{"v":1,"from":"h-1","body":{"type":"tenant_changed","data":{"tenant_id":"acme","change":"plan"}}}"#
        );
        let all = SyncMessage::new("h-1", SyncBody::Cache(Invalidation::All));
        assert_eq!(
            String::from_utf8(all.encode().unwrap()).unwrap(),
            r#"{"v":1,"from":"h-1","body":{"type":"cache","data":"All"}}"#
        );
        assert_eq!(KINDS.len(), every_body().last().unwrap().kind_index() + 1);
        assert_eq!(all.body.kind(), "cache");
    }

    #[test]
    fn bad_messages_are_refused_with_a_reason() {
        let cases: [(&[u8], &str); 7] = [
            (b"", "not a sync message"),
            (b"\xff\xfe", "not a sync message"),
            (br#"{"v":2,"from":"h","body":{}}"#, "unsupported message version 2"),
            (br#"{"v":1,"from":"h","body":{"type":"nope","data":{}}}"#, "malformed"),
            (
                br#"{"v":1,"from":"","body":{"type":"cache","data":"All"}}"#,
                "invalid sender id",
            ),
            (
                br#"{"v":1,"from":"h","body":{"type":"tenant_changed","data":{"tenant_id":"Bad Id","change":"plan"}}}"#,
                "invalid tenant id",
            ),
            (
                br#"{"v":1,"from":"h","body":{"type":"cache","data":{"Tag":{"scope":{"Tenant":"{x}"},"tag":"a"}}}}"#,
                "malformed",
            ),
        ];
        for (bytes, want) in cases {
            let err = SyncMessage::decode(bytes).unwrap_err();
            assert!(err.contains(want), "{bytes:?}: {err}");
        }
        let huge = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert!(SyncMessage::decode(&huge).unwrap_err().contains("exceeds"));
    }

    #[test]
    fn invalid_bodies_are_not_sent() {
        let bad = [
            SyncBody::TenantChanged {
                tenant_id: "acme".into(),
                change: "explode".into(),
            },
            SyncBody::KeyRevoked {
                tenant_id: "acme".into(),
                key_id: "has space".into(),
            },
            SyncBody::SessionChanged {
                tenant_id: "acme".into(),
                session_id: "s".repeat(MAX_ID_LEN + 1),
            },
            SyncBody::Cache(Invalidation::Tag {
                scope: Scope::Global,
                tag: "a b".into(),
            }),
            SyncBody::Cache(Invalidation::Namespace {
                scope: Scope::Global,
                namespace: "UPPER".into(),
            }),
            SyncBody::Cache(Invalidation::Key {
                store_key: String::new(),
            }),
        ];
        for body in bad {
            assert!(
                SyncMessage::new("h", body.clone()).encode().is_err(),
                "{body:?}"
            );
        }
    }
}
