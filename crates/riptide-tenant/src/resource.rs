//! What quotas, policies and bills are about: resources, permissions, meters.

use std::fmt;

/// A quota'd resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// Requests per minute (GCRA, with `burst`).
    OperationsPerMinute,
    /// Bytes of cache (the cache budget: over it, the tenant's own entries are evicted).
    MemoryBytes,
    /// Bytes of durable data such as sessions (over it, writes are refused).
    StorageBytes,
    /// Response bytes per calendar month.
    DataTransferBytes,
    /// GCRA bucket size (not checked by itself; modifies `operations_per_minute`).
    Burst,
}

impl Resource {
    /// Every resource.
    pub const ALL: [Resource; 5] = [
        Resource::OperationsPerMinute,
        Resource::MemoryBytes,
        Resource::StorageBytes,
        Resource::DataTransferBytes,
        Resource::Burst,
    ];

    /// The name used in quotas maps, configuration and errors.
    pub fn as_str(&self) -> &'static str {
        match self {
            Resource::OperationsPerMinute => "operations_per_minute",
            Resource::MemoryBytes => "memory_bytes",
            Resource::StorageBytes => "storage_bytes",
            Resource::DataTransferBytes => "data_transfer_bytes",
            Resource::Burst => "burst",
        }
    }

    /// Parses a resource name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `resource:action` a tenant may be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// Read its cache (`cache:read`).
    CacheRead,
    /// Write or invalidate its cache (`cache:write`).
    CacheWrite,
    /// `POST /extract` (`extract`).
    Extract,
    /// `POST /crawl` (`crawl`).
    Crawl,
    /// Create, read and delete sessions (`sessions`).
    Sessions,
    /// Read its own usage (`usage:read`).
    UsageRead,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 6] = [
        Permission::CacheRead,
        Permission::CacheWrite,
        Permission::Extract,
        Permission::Crawl,
        Permission::Sessions,
        Permission::UsageRead,
    ];

    /// The `resource:action` form (a bare resource when it has one action).
    pub fn as_str(&self) -> &'static str {
        match self {
            Permission::CacheRead => "cache:read",
            Permission::CacheWrite => "cache:write",
            Permission::Extract => "extract",
            Permission::Crawl => "crawl",
            Permission::Sessions => "sessions",
            Permission::UsageRead => "usage:read",
        }
    }

    /// Parses `resource:action` (or a bare resource).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// From the `validate_access(resource, action)` pair: `("cache", "read")`,
    /// `("extract", "")` or `("extract", "execute")`.
    pub fn from_pair(resource: &str, action: &str) -> Option<Self> {
        let joined = format!("{resource}:{action}");
        Self::parse(&joined).or_else(|| {
            let bare = Self::parse(resource)?;
            (!bare.as_str().contains(':')).then_some(bare)
        })
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Billing meters: the usage figures a price table can name. Storage is not one: it is
/// held over time, not used up, and no instance measures it as byte-hours, so a price
/// on it could only bill a number nobody measured (its quota, `storage_bytes`, still applies).
pub const METERS: [&str; 3] = ["operations", "data_transfer_bytes", "compute_ms"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in Resource::ALL {
            assert_eq!(Resource::parse(r.as_str()), Some(r));
        }
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
        assert_eq!(Resource::parse("cpu"), None);
    }

    #[test]
    fn access_pairs_map_to_permissions() {
        assert_eq!(
            Permission::from_pair("cache", "read"),
            Some(Permission::CacheRead)
        );
        assert_eq!(
            Permission::from_pair("extract", "execute"),
            Some(Permission::Extract)
        );
        assert_eq!(Permission::from_pair("cache", "execute"), None);
        assert_eq!(Permission::from_pair("admin", "all"), None);
    }
}
