//! [`ExtractKey`]: where an extraction is cached, built from the validated tenant id.
//!
//! The key is the normalized URL plus what changes the result: the session whose
//! cookies and headers were sent, at its current version (a page seen through one
//! session is never served to another, nor to requests without it, nor through the
//! same session after its cookies or headers changed). The TTL is not part of it: it says how long
//! an entry lives, not what it holds. A format version leads, so a change of the cached
//! body's shape never serves old entries as new ones.
//!
//! | request | key (namespace `extract`) |
//! |---|---|
//! | `url` | `extract:v1:<normalized url>` |
//! | `url` with `session_id` | `extract:v1:session=<session id>.<version>:<normalized url>` |
//!
//! `/crawl` uses the first form, so `/extract` and `/crawl` share entries.

use riptide_extract::Url;
use riptide_persistence::TenantId;
use riptide_persistence::state::sessions::Session;

/// Version of the cached body's format (the serialized extraction).
const FORMAT: &str = "v1";

/// A cache key of one tenant's extraction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractKey<'a> {
    tenant: &'a TenantId,
    key: String,
}

impl<'a> ExtractKey<'a> {
    /// The key of `url` (normalized) fetched for `tenant`, in the session scope
    /// `session` if any (see [`Self::through_session`]).
    pub fn new(tenant: &'a TenantId, url: &Url, session: Option<&str>) -> Self {
        let url = url.as_str();
        let key = match session {
            None => format!("extract:{FORMAT}:{url}"),
            Some(id) => format!("extract:{FORMAT}:session={id}:{url}"),
        };
        Self { tenant, key }
    }

    /// The key of `url` fetched for `tenant` with `session`'s cookies and headers.
    pub fn through_session(tenant: &'a TenantId, url: &Url, session: &Session) -> Self {
        let scope = format!("{}.{}", session.id, session.version);
        Self::new(tenant, url, Some(&scope))
    }

    /// The key within the tenant's scope.
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// The scope argument of the cache manager's calls: the tenant, parsed once.
    pub fn tenant(&self) -> &'a TenantId {
        self.tenant
    }
}

#[cfg(test)]
mod tests {
    use riptide_extract::normalize_url;

    use super::*;

    #[test]
    fn spellings_share_a_key_and_sessions_do_not() {
        let tenant = TenantId::parse("acme").expect("id");
        let a = normalize_url("HTTP://Example.com:80/a?x=1#top").expect("url");
        let b = normalize_url("http://example.com/a?x=1").expect("url");
        assert_eq!(
            ExtractKey::new(&tenant, &a, None),
            ExtractKey::new(&tenant, &b, None)
        );
        let plain = ExtractKey::new(&tenant, &a, None);
        let one = ExtractKey::new(&tenant, &a, Some("s1s1s1s1s1s1s1s1s1s1s1"));
        let two = ExtractKey::new(&tenant, &a, Some("s2s2s2s2s2s2s2s2s2s2s2"));
        assert_ne!(plain.as_str(), one.as_str());
        assert_ne!(one.as_str(), two.as_str());
        assert!(plain.as_str().starts_with("extract:"));
        assert_eq!(plain.tenant().as_str(), "acme");
    }

    #[test]
    fn a_changed_session_has_new_keys() {
        let tenant = TenantId::parse("acme").expect("id");
        let url = normalize_url("https://example.com/").expect("url");
        let now = chrono::Utc::now();
        let mut session = Session {
            id: "s".repeat(22),
            tenant_id: "acme".into(),
            cookies: Vec::new(),
            headers: Default::default(),
            created_at: now,
            updated_at: now,
            expires_at: now,
            version: 1,
        };
        let first = ExtractKey::through_session(&tenant, &url, &session);
        session.version = 2;
        let second = ExtractKey::through_session(&tenant, &url, &session);
        assert_ne!(first, second);
        assert_ne!(first, ExtractKey::new(&tenant, &url, None));
    }
}
