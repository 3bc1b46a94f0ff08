//! The store key layout (DESIGN.md "Redis key layout"), in one place.
//!
//! Every key of one scope shares a Redis Cluster hash tag, so one scope's multi-key
//! scripts run on one slot:
//!
//! | what | key |
//! |---|---|
//! | cache entry | `<p>:tenant:{<id>}:c:<namespace>:<key_hash>` |
//! | cache index (expiry-ordered) | `<p>:tenant:{<id>}:ci` |
//! | entry sizes / entry tags | `<p>:tenant:{<id>}:cs` / `<p>:tenant:{<id>}:ct` |
//! | used bytes | `<p>:tenant:{<id>}:cb` |
//! | members of a tag / namespace | `<p>:tenant:{<id>}:t:<tag>` / `<p>:tenant:{<id>}:n:<namespace>` |
//! | names of the tag and namespace sets in use | `<p>:tenant:{<id>}:tn` |
//!
//! `<p>` is the store's key prefix (`riptide` by default). Entries without a tenant
//! live in the global scope `<p>:{global}:...`: the `{global}` tag keeps the global
//! index and its entries on one Cluster slot (DESIGN.md writes `riptide:global:c:...`;
//! the braces are the only difference).

use crate::error::InvalidInput;
use crate::tenant_id::{TenantId, truncate_for_error};

/// Default key prefix.
pub const DEFAULT_KEY_PREFIX: &str = "riptide";

/// Namespace used when a cache key has no `<namespace>:` prefix.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Longest namespace, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 32;

/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 128;

/// Whose data a key belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Scope {
    /// Data without a tenant (the legacy, single-tenant path).
    Global,
    /// One tenant's data.
    Tenant(TenantId),
}

impl Scope {
    /// The tenant, if any.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Scope::Global => None,
            Scope::Tenant(t) => Some(t),
        }
    }

    /// Label used in stats and metrics (`_global` for the global scope).
    pub fn label(&self) -> &str {
        match self {
            Scope::Global => "_global",
            Scope::Tenant(t) => t.as_str(),
        }
    }
}

/// The keys of one scope, under one store prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScopeKeys {
    base: String,
}

impl ScopeKeys {
    /// Keys for `scope` under `prefix`.
    pub fn new(prefix: &str, scope: &Scope) -> Self {
        // On every tenant request: one allocation, no formatting machinery.
        let base = match scope {
            Scope::Global => [prefix, ":{global}"].concat(),
            Scope::Tenant(t) => [prefix, ":tenant:{", t.as_str(), "}"].concat(),
        };
        Self { base }
    }

    /// The common start of every key of this scope (no trailing `:`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A record of this scope: `<base>:<suffix>`.
    pub fn record(&self, suffix: &str) -> String {
        [self.base.as_str(), ":", suffix].concat()
    }

    /// A cache entry's key.
    pub fn entry(&self, namespace: &Namespace, key_hash: &KeyHash) -> String {
        // On every cache call: one allocation, no formatting machinery.
        let ns = namespace.as_str();
        let mut key = String::with_capacity(self.base.len() + ns.len() + 36);
        key.push_str(&self.base);
        key.push_str(":c:");
        key.push_str(ns);
        key.push(':');
        key_hash.write_hex(&mut key);
        key
    }

    /// The start of every cache entry key of `namespace`.
    pub fn namespace_prefix(&self, namespace: &Namespace) -> String {
        format!("{}:c:{}:", self.base, namespace.as_str())
    }

    /// Expiry-ordered index of the scope's cache entries (Redis sorted set).
    pub fn index(&self) -> String {
        self.record("ci")
    }

    /// Entry key → stored size (Redis hash).
    pub fn sizes(&self) -> String {
        self.record("cs")
    }

    /// Entry key → its tags joined by `\n` (Redis hash).
    pub fn entry_tags(&self) -> String {
        self.record("ct")
    }

    /// Bytes the scope's cache entries use (Redis string counter).
    pub fn used_bytes(&self) -> String {
        self.record("cb")
    }

    /// Entries carrying `tag` (Redis set).
    pub fn tag_members(&self, tag: &str) -> String {
        self.record(&format!("t:{tag}"))
    }

    /// Entries of `namespace` (Redis set).
    pub fn namespace_members(&self, namespace: &str) -> String {
        self.record(&format!("n:{namespace}"))
    }

    /// Names of the tag and namespace member sets in use (Redis set), for `clear`.
    pub fn member_sets(&self) -> String {
        self.record("tn")
    }
}

/// A validated cache namespace: `^[a-z0-9_.-]{1,32}$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace(String);

impl Namespace {
    /// Validates a namespace name.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if is_valid_namespace(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidInput::Namespace(truncate_for_error(raw)))
        }
    }

    /// The default namespace.
    pub fn default_ns() -> Self {
        Self(DEFAULT_NAMESPACE.to_owned())
    }

    /// The namespace of a caller's cache key: the part before the first `:` when it is a
    /// valid namespace name (`search:rust` → `search`), else [`DEFAULT_NAMESPACE`].
    pub fn of_key(key: &str) -> Self {
        match key.split_once(':') {
            Some((ns, _)) if is_valid_namespace(ns) => Self(ns.to_owned()),
            _ => Self::default_ns(),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_valid_namespace(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= MAX_NAMESPACE_LEN
        && raw.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        })
}

/// Validates a tag: 1 to 128 printable ASCII characters without whitespace.
pub fn validate_tag(tag: &str) -> Result<(), InvalidInput> {
    if !tag.is_empty() && tag.len() <= MAX_TAG_LEN && tag.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(InvalidInput::Tag(truncate_for_error(tag)))
    }
}

/// 128 bits of blake3 over a caller's cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 16]);

impl KeyHash {
    /// Hashes a caller's key.
    pub fn of(key: &str) -> Self {
        let digest = blake3::hash(key.as_bytes());
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest.as_bytes()[..16]);
        Self(out)
    }

    /// Lower-case hex, 32 characters.
    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(32);
        self.write_hex(&mut s);
        s
    }

    /// Appends the lower-case hex to `out`.
    pub fn write_hex(&self, out: &mut String) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for b in self.0 {
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_keys_carry_the_hash_tag() {
        let t = TenantId::parse("acme").unwrap();
        let k = ScopeKeys::new("riptide", &Scope::Tenant(t));
        let e = k.entry(&Namespace::default_ns(), &KeyHash::of("x"));
        assert!(e.starts_with("riptide:tenant:{acme}:c:default:"), "{e}");
        assert_eq!(e.len(), "riptide:tenant:{acme}:c:default:".len() + 32);
        assert_eq!(k.index(), "riptide:tenant:{acme}:ci");
    }

    #[test]
    fn global_keys_share_one_tag() {
        let k = ScopeKeys::new("riptide", &Scope::Global);
        assert_eq!(k.used_bytes(), "riptide:{global}:cb");
    }

    #[test]
    fn namespace_comes_from_the_key_prefix() {
        assert_eq!(Namespace::of_key("search:rust lang").as_str(), "search");
        assert_eq!(Namespace::of_key("plain").as_str(), "default");
        assert_eq!(Namespace::of_key("Bad NS:x").as_str(), "default");
        assert!(Namespace::parse("a*b").is_err());
        assert!(Namespace::parse("").is_err());
    }

    #[test]
    fn tags_refuse_whitespace_and_control_characters() {
        assert!(validate_tag("url:example.com").is_ok());
        for bad in ["", "a b", "a\nb", &"t".repeat(129)] {
            assert!(validate_tag(bad).is_err(), "{bad:?}");
        }
    }
}
