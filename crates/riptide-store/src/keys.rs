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
//! The records beside a scope's cache are named in [`records`], with their own table.
//!
//! `<p>` is the store's key prefix (`riptide` by default). Entries without a tenant
//! live in the global scope `<p>:{global}:...`: the `{global}` tag keeps the global
//! index and its entries on one Cluster slot (DESIGN.md writes `riptide:global:c:...`;
//! the braces are the only difference).

use std::borrow::Cow;

use crate::error::InvalidInput;
use crate::tenant_id::{AsTenantId, TenantId, truncate_for_error};

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

/// The scope argument of the cache's methods: a [`Scope`] (`&Scope::Global` for data
/// without a tenant) or anything naming a tenant ([`AsTenantId`]: a parsed
/// [`TenantId`], used as is, or a string, validated here). The seed's `get` and `set`
/// keep their `Option<&str>` (see `cache/compat.rs`).
pub trait AsScope {
    /// The scope: borrowed when it is one already.
    fn as_scope(&self) -> Result<Cow<'_, Scope>, InvalidInput>;
}

impl AsScope for Scope {
    fn as_scope(&self) -> Result<Cow<'_, Scope>, InvalidInput> {
        Ok(Cow::Borrowed(self))
    }
}

impl<T: AsTenantId + ?Sized> AsScope for T {
    fn as_scope(&self) -> Result<Cow<'_, Scope>, InvalidInput> {
        // A parsed id is an `Arc` clone here, not a validation.
        Ok(Cow::Owned(Scope::Tenant(self.as_tenant_id()?.into_owned())))
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

/// Names of the records of a scope, `<p>:tenant:{<id>}:<name>` (or `<p>:{global}:<name>`),
/// built with [`ScopeKeys::record`]: every name is here, so the layout is one table.
///
/// | name | scope | what | written by |
/// |---|---|---|---|
/// | `meta` | tenant | the tenant record (it exists exactly when this does) | `tenant::registry` |
/// | `deleting` | tenant | a deletion's clean-up is under way | `tenant::registry` |
/// | `dek` | tenant | the data key, wrapped by the master key | `tenant::data_keys` |
/// | `ckpt_key` | tenant | the checkpoint key, wrapped by the master key | `state::checkpoint::seal` |
/// | `q` | tenant | quota overrides (counters) | `tenant::quota` |
/// | `rl` | tenant | rate-limit state | `tenant::quota` |
/// | `storage` | tenant | storage in use (counters) | `tenant::quota` |
/// | `keys`, `key:<key_id>` | tenant | API key index (sorted set) and records | `tenant::api_keys` |
/// | `jwtkeys`, `jwtkey:<kid>` | tenant | JWT verification key index and records | `tenant::jwt_keys` |
/// | `usage_months`, `usage:<YYYY-MM>`, `usage_batches` | tenant | usage month index, counters, applied batch ids | `tenant::usage` |
/// | `bill:<YYYY-MM>`, `bill_plan:<YYYY-MM>` | tenant | a closed month's frozen bill and plan | `tenant::bill_freeze` |
/// | `billing_prices:<YYYY-MM>` | global | a closed month's price table | `tenant::bill_freeze` |
/// | `sessions`, `session:<id>`, `session_bytes` | tenant | session index, records, bytes charged | `state::sessions` |
/// | `session_tenants` | global | tenants holding sessions (for sweeping) | `state::sessions` |
/// | `pop`, `pop:applied` | tenant | popularity counts, applied batch ids | `cache::popularity` |
pub mod records {
    use std::fmt::Display;

    /// The tenant record.
    pub const TENANT: &str = "meta";
    /// A deletion's clean-up is under way.
    pub const DELETING: &str = "deleting";
    /// The wrapped data key.
    pub const DATA_KEY: &str = "dek";
    /// The wrapped checkpoint key.
    pub const CHECKPOINT_KEY: &str = "ckpt_key";
    /// Quota overrides.
    pub const QUOTA_OVERRIDES: &str = "q";
    /// Rate-limit state.
    pub const RATE_LIMIT: &str = "rl";
    /// Storage in use.
    pub const STORAGE: &str = "storage";
    /// The API key index.
    pub const API_KEY_INDEX: &str = "keys";
    /// The JWT verification key index.
    pub const JWT_KEY_INDEX: &str = "jwtkeys";
    /// The usage month index.
    pub const USAGE_MONTHS: &str = "usage_months";
    /// Usage batch ids already applied.
    pub const USAGE_BATCHES: &str = "usage_batches";
    /// The session index.
    pub const SESSION_INDEX: &str = "sessions";
    /// Bytes charged per session.
    pub const SESSION_BYTES: &str = "session_bytes";
    /// Tenants holding sessions (global).
    pub const SESSION_TENANTS: &str = "session_tenants";
    /// Popularity counts.
    pub const POPULARITY: &str = "pop";
    /// Popularity batch ids already applied.
    pub const POPULARITY_APPLIED: &str = "pop:applied";

    /// An API key record.
    pub fn api_key(key_id: impl Display) -> String {
        format!("key:{key_id}")
    }

    /// A JWT verification key record.
    pub fn jwt_key(kid: impl Display) -> String {
        format!("jwtkey:{kid}")
    }

    /// A session record.
    pub fn session(id: impl Display) -> String {
        format!("session:{id}")
    }

    /// A month's usage counters.
    pub fn usage(month: impl Display) -> String {
        format!("usage:{month}")
    }

    /// A closed month's frozen bill.
    pub fn bill(month: impl Display) -> String {
        format!("bill:{month}")
    }

    /// The plan a closed month is billed on.
    pub fn bill_plan(month: impl Display) -> String {
        format!("bill_plan:{month}")
    }

    /// A closed month's price table (global).
    pub fn billing_prices(month: impl Display) -> String {
        format!("billing_prices:{month}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record names are stored data's addresses: renaming one orphans what is stored.
    #[test]
    fn record_names_are_the_documented_layout() {
        let acme = ScopeKeys::new("riptide", &Scope::Tenant(TenantId::parse("acme").unwrap()));
        assert_eq!(acme.record(records::TENANT), "riptide:tenant:{acme}:meta");
        assert_eq!(
            acme.record(&records::api_key("k1")),
            "riptide:tenant:{acme}:key:k1"
        );
        let names = [
            records::DELETING,
            records::DATA_KEY,
            records::CHECKPOINT_KEY,
            records::QUOTA_OVERRIDES,
            records::RATE_LIMIT,
            records::STORAGE,
            records::API_KEY_INDEX,
            records::JWT_KEY_INDEX,
            records::USAGE_MONTHS,
            records::USAGE_BATCHES,
            records::SESSION_INDEX,
            records::SESSION_BYTES,
            records::SESSION_TENANTS,
            records::POPULARITY,
            records::POPULARITY_APPLIED,
        ];
        assert_eq!(
            names.join(" "),
            "deleting dek ckpt_key q rl storage keys jwtkeys usage_months usage_batches \
             sessions session_bytes session_tenants pop pop:applied"
        );
        let month = "2026-12";
        let built = [
            records::jwt_key("j1"),
            records::session("s1"),
            records::usage(month),
            records::bill(month),
            records::bill_plan(month),
            records::billing_prices(month),
        ];
        assert_eq!(
            built.join(" "),
            "jwtkey:j1 session:s1 usage:2026-12 bill:2026-12 bill_plan:2026-12 billing_prices:2026-12"
        );
    }

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
