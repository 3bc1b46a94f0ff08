//! Access policies of tenants and roles of administrators.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::error::{TenantError, TenantResult};
use super::resource::Permission;

/// A tenant's own adjustments to what its plan grants.
///
/// Unknown fields are refused: a misspelt `deny` in an update must not replace the
/// policy with one whose deny list is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessPolicy {
    /// Granted on top of the plan (`resource:action` names).
    pub allow: BTreeSet<String>,
    /// Taken away even when the plan grants it.
    pub deny: BTreeSet<String>,
}

impl AccessPolicy {
    /// Checks every name is a known permission.
    pub fn validate(&self) -> TenantResult<()> {
        for name in self.allow.iter().chain(&self.deny) {
            if Permission::parse(name).is_none() {
                return Err(TenantError::InvalidField {
                    field: "policy",
                    reason: format!("unknown permission {name:?}; known: {}", known()),
                });
            }
        }
        Ok(())
    }

    /// Whether `permission` is allowed given the plan's `grants`.
    pub fn permits(&self, grants: &[String], permission: Permission) -> bool {
        let name = permission.as_str();
        let granted = grants.iter().any(|g| g == name) || self.allow.contains(name);
        granted && !self.deny.contains(name)
    }
}

fn known() -> String {
    Permission::ALL
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an administrator may do, by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminRole {
    /// Everything.
    Admin,
    /// Cache and state operations; read tenants.
    Operator,
    /// Read usage and billing.
    Billing,
    /// Read only.
    Viewer,
}

/// Operations of the admin API, grouped by what they touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdminAction {
    /// List and read tenants.
    ReadTenants,
    /// Create, update, suspend, resume, delete tenants; manage their keys.
    WriteTenants,
    /// Read a tenant's usage.
    ReadUsage,
    /// Read a tenant's bill.
    ReadBilling,
    /// Read cache stats.
    ReadCache,
    /// Warm, invalidate, clear caches.
    WriteCache,
    /// Read state (current config, checkpoints).
    ReadState,
    /// Reload config, take a checkpoint.
    WriteState,
    /// Restore a checkpoint: role admin only, since it writes tenants and keys back
    /// (issue 10, item 1).
    RestoreState,
    /// Read the audit log.
    ReadAudit,
}

impl AdminRole {
    /// Stable lower-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            AdminRole::Admin => "admin",
            AdminRole::Operator => "operator",
            AdminRole::Billing => "billing",
            AdminRole::Viewer => "viewer",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            AdminRole::Admin,
            AdminRole::Operator,
            AdminRole::Billing,
            AdminRole::Viewer,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// Whether this role may perform `action`.
    pub fn allows(&self, action: AdminAction) -> bool {
        use AdminAction::*;
        match self {
            AdminRole::Admin => true,
            AdminRole::Operator => matches!(
                action,
                ReadTenants | ReadCache | WriteCache | ReadState | WriteState | ReadAudit
            ),
            AdminRole::Billing => matches!(action, ReadTenants | ReadUsage | ReadBilling),
            AdminRole::Viewer => {
                matches!(
                    action,
                    ReadTenants | ReadUsage | ReadBilling | ReadCache | ReadState | ReadAudit
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TenantUpdate;

    #[test]
    fn unknown_fields_are_refused_at_every_depth() {
        for (body, field) in [
            (r#"{"policy":{"denny":["extract"]}}"#, "denny"),
            (
                r#"{"owner":{"id":"o","name":"n","email":"a@b","colour":"x"}}"#,
                "colour",
            ),
            (r#"{"nmae":"x"}"#, "nmae"),
        ] {
            let err = serde_json::from_str::<TenantUpdate>(body).expect_err(body);
            assert!(err.to_string().contains(field), "{body}: {err}");
        }
        let ok: TenantUpdate =
            serde_json::from_str(r#"{"policy":{"deny":["extract"]}}"#).expect("valid");
        assert_eq!(ok.policy.expect("policy").deny.len(), 1);
    }

    #[test]
    fn policy_adds_and_removes_from_the_plan() {
        let grants = vec!["extract".to_owned(), "cache:read".to_owned()];
        let p = AccessPolicy {
            allow: ["crawl".to_owned()].into(),
            deny: ["cache:read".to_owned()].into(),
        };
        assert!(p.permits(&grants, Permission::Extract));
        assert!(p.permits(&grants, Permission::Crawl));
        assert!(!p.permits(&grants, Permission::CacheRead));
        assert!(!p.permits(&grants, Permission::Sessions));
        let bad = AccessPolicy {
            allow: ["root".to_owned()].into(),
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn roles_match_the_issue() {
        use AdminAction::*;
        assert!(AdminRole::Admin.allows(WriteTenants));
        assert!(AdminRole::Operator.allows(WriteCache) && AdminRole::Operator.allows(ReadTenants));
        assert!(
            !AdminRole::Operator.allows(WriteTenants) && !AdminRole::Operator.allows(ReadBilling)
        );
        assert!(AdminRole::Billing.allows(ReadBilling) && !AdminRole::Billing.allows(WriteCache));
        assert!(AdminRole::Viewer.allows(ReadAudit) && !AdminRole::Viewer.allows(WriteState));
        assert!(AdminRole::Admin.allows(RestoreState));
        for role in [AdminRole::Operator, AdminRole::Billing, AdminRole::Viewer] {
            assert!(!role.allows(RestoreState), "{role:?}");
        }
        assert_eq!(AdminRole::parse("operator"), Some(AdminRole::Operator));
        assert_eq!(AdminRole::parse("root"), None);
    }
}
