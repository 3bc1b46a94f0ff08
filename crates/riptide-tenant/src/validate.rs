//! Checks on tenant input, so nothing half-valid is ever written.

use std::collections::HashMap;

use super::error::{TenantError, TenantResult};
use super::model::TenantOwner;
use super::resource::Resource;
use riptide_store::tenant_id::TenantId;

/// Ids no caller may create: the built-in tenant and names that read as system scopes.
pub const RESERVED_IDS: [&str; 5] = ["default", "admin", "system", "global", "riptide"];

/// The id of the built-in tenant used when multi-tenancy is off.
pub const DEFAULT_TENANT: &str = "default";

fn invalid(field: &'static str, reason: impl Into<String>) -> TenantError {
    TenantError::InvalidField {
        field,
        reason: reason.into(),
    }
}

/// A caller-chosen id: valid and not reserved.
pub fn new_tenant_id(raw: &str) -> TenantResult<TenantId> {
    let id = TenantId::parse(raw)?;
    if RESERVED_IDS.contains(&id.as_str()) {
        return Err(invalid("tenant_id", format!("{raw:?} is reserved")));
    }
    Ok(id)
}

/// 1 to 200 characters, no control characters.
pub fn name(name: &str) -> TenantResult<()> {
    let n = name.chars().count();
    if n == 0 || n > 200 || name.chars().any(char::is_control) || name.trim().is_empty() {
        return Err(invalid(
            "name",
            "1 to 200 characters without control characters",
        ));
    }
    Ok(())
}

/// Owner fields: an e-mail with one `@` and no spaces, bounded lengths.
pub fn owner(owner: &TenantOwner) -> TenantResult<()> {
    let email = owner.email.as_str();
    let parts: Vec<&str> = email.split('@').collect();
    let ok = email.len() <= 254
        && parts.len() == 2
        && !parts[0].is_empty()
        && parts[1].contains('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(invalid(
            "owner.email",
            format!("{:?} is not an e-mail address", truncate(email)),
        ));
    }
    for (field, value) in [
        ("owner.id", owner.id.as_str()),
        ("owner.name", owner.name.as_str()),
    ] {
        if value.len() > 200 || value.chars().any(char::is_control) {
            return Err(invalid(
                field,
                "at most 200 characters without control characters",
            ));
        }
    }
    if owner.organization.as_ref().is_some_and(|o| o.len() > 200) {
        return Err(invalid("owner.organization", "at most 200 characters"));
    }
    Ok(())
}

/// Known resources only, each limit between 1 and `i64::MAX`.
pub fn quotas(quotas: &HashMap<String, u64>) -> TenantResult<()> {
    for (resource, &limit) in quotas {
        if Resource::parse(resource).is_none() {
            let known: Vec<&str> = Resource::ALL.iter().map(|r| r.as_str()).collect();
            return Err(invalid(
                "quotas",
                format!(
                    "unknown resource {:?}; known: {}",
                    truncate(resource),
                    known.join(", ")
                ),
            ));
        }
        if limit == 0 || i64::try_from(limit).is_err() {
            return Err(invalid(
                "quotas",
                format!("{resource} must be between 1 and {}", i64::MAX),
            ));
        }
    }
    Ok(())
}

/// At most 64 settings, keys up to 128 bytes, values up to 1 KiB.
pub fn settings(settings: &HashMap<String, String>) -> TenantResult<()> {
    if settings.len() > 64 {
        return Err(invalid("settings", "at most 64 entries"));
    }
    for (k, v) in settings {
        if k.is_empty() || k.len() > 128 || k.chars().any(char::is_control) {
            return Err(invalid("settings", format!("bad key {:?}", truncate(k))));
        }
        if v.len() > 1024 {
            return Err(invalid("settings", format!("value of {k:?} is over 1 KiB")));
        }
    }
    Ok(())
}

/// A short reason for a suspension: 1 to 500 characters.
pub fn reason(reason: &str) -> TenantResult<()> {
    if reason.trim().is_empty() || reason.chars().count() > 500 {
        return Err(invalid("reason", "1 to 500 characters"));
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner_with(email: &str) -> TenantOwner {
        TenantOwner {
            id: "o".into(),
            name: "Ada".into(),
            email: email.into(),
            organization: None,
        }
    }

    #[test]
    fn refuses_bad_input_with_the_field_name() {
        assert!(new_tenant_id("default").is_err());
        assert!(new_tenant_id("Bad Id").is_err());
        assert!(new_tenant_id("acme").is_ok());
        assert!(name("").is_err() && name("a\u{0}").is_err() && name(&"x".repeat(201)).is_err());
        for bad in ["", "a", "a@b", "a b@c.d", "@c.d", "a@@c.d"] {
            assert!(owner(&owner_with(bad)).is_err(), "{bad}");
        }
        assert!(owner(&owner_with("ada@example.com")).is_ok());
        let q = |k: &str, v: u64| HashMap::from([(k.to_owned(), v)]);
        assert!(quotas(&q("cpu", 1)).is_err());
        assert!(quotas(&q("memory_bytes", 0)).is_err());
        assert!(quotas(&q("memory_bytes", u64::MAX)).is_err());
        assert!(quotas(&q("memory_bytes", 1 << 20)).is_ok());
        let err = quotas(&q("cpu", 1)).unwrap_err().to_string();
        assert!(err.contains("quotas") && err.contains("cpu"), "{err}");
    }
}
