//! Validated tenant identifiers: the only way a tenant id reaches a store key.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::InvalidInput;

/// Longest accepted tenant id, in bytes.
pub const MAX_TENANT_ID_LEN: usize = 64;

/// A tenant id that matches `^[a-z0-9][a-z0-9_-]{0,63}$`.
///
/// Cache and record keys are built from this type, never from a raw string, so a
/// hash-tag brace, a `:` or a glob character can never leak into a key.
///
/// The id is shared (`Arc<str>`), so a clone (request context, usage and metrics keys)
/// is a reference count, not a copy.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    /// Validates `raw` and wraps it.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if is_valid_tenant_id(raw) {
            Ok(Self(Arc::from(raw)))
        } else {
            Err(InvalidInput::TenantId(truncate_for_error(raw)))
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The tenant argument of the core's methods: a [`TenantId`] parsed once at the edge
/// and used as is, or a string (the seed's `&str` signatures, tests), validated here.
/// Methods take `&(impl AsTenantId + ?Sized)`, so `"acme"`, `&string` and `&id` all fit.
pub trait AsTenantId {
    /// The id: borrowed when already parsed, else validated.
    fn as_tenant_id(&self) -> Result<Cow<'_, TenantId>, InvalidInput>;
}

impl AsTenantId for TenantId {
    fn as_tenant_id(&self) -> Result<Cow<'_, TenantId>, InvalidInput> {
        Ok(Cow::Borrowed(self))
    }
}

impl AsTenantId for str {
    fn as_tenant_id(&self) -> Result<Cow<'_, TenantId>, InvalidInput> {
        TenantId::parse(self).map(Cow::Owned)
    }
}

impl<T: AsTenantId + ?Sized> AsTenantId for &T {
    fn as_tenant_id(&self) -> Result<Cow<'_, TenantId>, InvalidInput> {
        (**self).as_tenant_id()
    }
}

impl AsTenantId for String {
    fn as_tenant_id(&self) -> Result<Cow<'_, TenantId>, InvalidInput> {
        self.as_str().as_tenant_id()
    }
}

/// True when `raw` is an acceptable tenant id.
pub fn is_valid_tenant_id(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let Some((&first, rest)) = bytes.split_first() else {
        return false;
    };
    bytes.len() <= MAX_TENANT_ID_LEN
        && (first.is_ascii_lowercase() || first.is_ascii_digit())
        && rest
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Shortens untrusted input before it is echoed in an error message.
pub fn truncate_for_error(raw: &str) -> String {
    const MAX: usize = 80;
    if raw.len() <= MAX {
        return raw.to_owned();
    }
    let mut end = MAX;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &raw[..end])
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for TenantId {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for TenantId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in ["a", "0", "acme", "acme-corp_2", &"a".repeat(64)] {
            assert!(TenantId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        let long = "a".repeat(65);
        for bad in [
            "", "-a", "_a", "Acme", "a b", "a:b", "{a}", "a*", "a/b", "é", "a\n", &long,
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn serializes_as_a_plain_string() {
        let id = TenantId::parse("acme").expect("id");
        assert_eq!(serde_json::to_string(&id).expect("json"), "\"acme\"");
        let back: TenantId = serde_json::from_str("\"acme\"").expect("parse");
        assert_eq!(back, id);
        assert!(serde_json::from_str::<TenantId>("\"Not Valid\"").is_err());
    }

    #[test]
    fn error_message_is_bounded() {
        let huge = "X".repeat(10_000);
        let msg = TenantId::parse(&huge).unwrap_err().to_string();
        assert!(msg.len() < 200, "{}", msg.len());
    }
}
