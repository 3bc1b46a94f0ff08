//! The tenant records, with the seed's names: [`TenantConfig`], [`TenantOwner`],
//! [`BillingPlan`], [`TenantStatus`], [`Tenant`], [`ResourceUsageRecord`].

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How strictly a tenant's data is kept apart from other tenants'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TenantIsolationLevel {
    /// Namespaced keys: every key carries the tenant's id and hash tag.
    #[default]
    Standard,
    /// Namespaced keys, and every value sealed under the tenant's own data key (as if
    /// `encryption_enabled`), so even raw store access shows no plaintext.
    Strong,
}

impl TenantIsolationLevel {
    /// Every level, weakest first.
    pub const ALL: [TenantIsolationLevel; 2] =
        [TenantIsolationLevel::Standard, TenantIsolationLevel::Strong];

    /// Stable lower-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            TenantIsolationLevel::Standard => "standard",
            TenantIsolationLevel::Strong => "strong",
        }
    }
}

/// A tenant's own settings (the seed's root `TenantConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantConfig {
    /// The id; empty on create means "generate one".
    pub tenant_id: String,
    /// Display name (1 to 200 characters).
    pub name: String,
    /// Per-tenant quota overrides by resource name (see [`crate::Resource`]);
    /// resources not listed take the plan's default.
    pub quotas: HashMap<String, u64>,
    /// Isolation level; never weaker than the service's configured minimum.
    pub isolation_level: TenantIsolationLevel,
    /// Seal this tenant's cache values and sessions under its own data key.
    pub encryption_enabled: bool,
    /// Free-form settings (at most 64 entries of at most 1 KiB each).
    pub settings: HashMap<String, String>,
    /// When the tenant was created.
    pub created_at: DateTime<Utc>,
    /// When the tenant was last changed.
    pub updated_at: DateTime<Utc>,
}

/// Who owns a tenant. Unknown fields are refused (it is part of request bodies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantOwner {
    /// Owner id (free-form, e.g. a UUID).
    pub id: String,
    /// Owner name.
    pub name: String,
    /// Contact e-mail (must contain one `@`).
    pub email: String,
    /// Organization, if any.
    pub organization: Option<String>,
}

/// A billing plan: names a plan section of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BillingPlan {
    /// Free tier.
    Free,
    /// Basic.
    Basic,
    /// Professional.
    Professional,
    /// Enterprise.
    Enterprise,
}

impl BillingPlan {
    /// Every plan.
    pub const ALL: [BillingPlan; 4] = [
        BillingPlan::Free,
        BillingPlan::Basic,
        BillingPlan::Professional,
        BillingPlan::Enterprise,
    ];

    /// Stable lower-case name (the key of its configuration section).
    pub fn as_str(&self) -> &'static str {
        match self {
            BillingPlan::Free => "free",
            BillingPlan::Basic => "basic",
            BillingPlan::Professional => "professional",
            BillingPlan::Enterprise => "enterprise",
        }
    }
}

impl fmt::Display for BillingPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BillingPlan {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BillingPlan::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!("unknown plan {s:?}: expected free, basic, professional or enterprise")
            })
    }
}

/// Lifecycle state of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum TenantStatus {
    /// Serving requests.
    Active,
    /// Refused with 403 until resumed.
    Suspended {
        /// Why.
        reason: String,
        /// Since when.
        since: DateTime<Utc>,
    },
}

impl TenantStatus {
    /// `active` or `suspended`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended { .. } => "suspended",
        }
    }
}

/// A tenant as stored: its settings, owner, plan and status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Settings, quotas and times.
    pub config: TenantConfig,
    /// The owner.
    pub owner: TenantOwner,
    /// The plan.
    pub plan: BillingPlan,
    /// Active or suspended.
    pub status: TenantStatus,
    /// The tenant's adjustments to its plan's grants.
    #[serde(default)]
    pub policy: super::policy::AccessPolicy,
    /// Bumped on every change; guards concurrent updates.
    pub version: u64,
}

impl Tenant {
    /// The tenant's id.
    pub fn id(&self) -> &str {
        &self.config.tenant_id
    }

    /// True when requests are served.
    pub fn is_active(&self) -> bool {
        self.status == TenantStatus::Active
    }

    /// Whether the tenant's values are sealed under its own data key.
    pub fn encrypted(&self) -> bool {
        self.config.encryption_enabled
            || self.config.isolation_level == TenantIsolationLevel::Strong
    }
}

/// One usage observation from the request path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceUsageRecord {
    /// Operations performed.
    pub operation_count: u64,
    /// Bytes transferred (response bodies).
    pub data_bytes: u64,
    /// Compute time in milliseconds.
    pub compute_time_ms: u64,
    /// Durable bytes added (positive) — sessions and other stored data.
    pub storage_bytes: u64,
    /// When it happened; selects the billing month.
    pub timestamp: DateTime<Utc>,
}
