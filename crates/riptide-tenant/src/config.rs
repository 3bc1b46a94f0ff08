//! The `tenant` section: multi-tenancy switches, plans (quotas, grants, prices),
//! metering, API keys, encryption keys and audit retention.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::model::{BillingPlan, TenantIsolationLevel};
use riptide_store::error::{InvalidInput, config_err, positive};

/// The `tenant` section: how the tenant layer behaves (the seed calls it `TenantConfig`;
/// that name is the tenant's own settings, [`super::model::TenantConfig`]). Its `Debug` hides
/// the two secrets.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TenancyConfig {
    /// Multi-tenancy on. Off: only the built-in `default` tenant exists (created on first
    /// use with `default_plan`), and creating other tenants is refused.
    pub enabled: bool,
    /// The weakest isolation a tenant may have; tenants asking for less get this.
    pub isolation_level: TenantIsolationLevel,
    /// Turn usage into bills (`billing()`); off, usage is still metered.
    pub enable_billing: bool,
    /// Plan of the built-in `default` tenant.
    pub default_plan: BillingPlan,
    /// Plans by name (`free`, `basic`, `professional`, `enterprise`); all four must exist.
    pub plans: BTreeMap<BillingPlan, PlanConfig>,
    /// How often aggregated usage is flushed to the store, in milliseconds.
    pub usage_flush_interval_ms: u64,
    /// Most (tenant, month) usage aggregates held in memory while the store is
    /// unreachable; beyond it, new usage is dropped, counted and logged.
    pub usage_buffer_max: usize,
    /// Delete a tenant's usage and billing history with the tenant (else kept).
    pub purge_billing_history_on_delete: bool,
    /// How long after a month ends its bill is frozen, ms: late usage still being
    /// flushed by other instances counts until then (the prices are sealed at the end
    /// itself). At least `usage_flush_interval_ms`.
    pub bill_freeze_delay_ms: u64,
    /// Audit records older than this many days are deleted.
    pub audit_retention_days: u32,
    /// Prefix of API keys, so leaked keys are recognisable (e.g. by secret scanners).
    pub api_key_prefix: String,
    /// After a rotation the old key keeps working this many seconds.
    pub api_key_rotation_overlap_seconds: u64,
    /// How long an instance trusts a looked-up tenant record or API key, ms. Bounds how
    /// late another instance sees a suspension or revocation (at most 1000).
    pub record_cache_ttl_ms: u64,
    /// Clock skew allowed on a JWT's `exp` and `nbf`, seconds (at most 300).
    pub jwt_leeway_seconds: u64,
    /// The audience a JWT's `aud` must contain; empty: `aud` is not checked.
    pub jwt_audience: String,
    /// Server pepper for API key hashes (base64 of ≥ 32 bytes). Empty: read or create
    /// `<secrets_dir>/api_key_pepper`. Env `RIPTIDE_API_KEY_PEPPER`.
    pub api_key_pepper: String,
    /// Master key wrapping tenants' data keys (base64 of 32 bytes). Empty: read or
    /// create `<secrets_dir>/master.key`. Env `RIPTIDE_MASTER_KEY`.
    pub master_key: String,
    /// Directory of generated secrets (the embedded default; several instances on one
    /// Redis must share configured keys instead).
    pub secrets_dir: PathBuf,
    /// Tenants with their own metric labels; the rest are labelled `_other`.
    pub max_metric_tenants: usize,
}

impl Default for TenancyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            isolation_level: TenantIsolationLevel::Standard,
            enable_billing: true,
            default_plan: BillingPlan::Basic,
            plans: default_plans(),
            usage_flush_interval_ms: 1_000,
            usage_buffer_max: 100_000,
            purge_billing_history_on_delete: false,
            bill_freeze_delay_ms: 300_000,
            audit_retention_days: 365,
            api_key_prefix: "rt_".to_owned(),
            api_key_rotation_overlap_seconds: 86_400,
            record_cache_ttl_ms: 1_000,
            jwt_leeway_seconds: 30,
            jwt_audience: String::new(),
            api_key_pepper: String::new(),
            master_key: String::new(),
            secrets_dir: PathBuf::from("./data"),
            max_metric_tenants: 1_000,
        }
    }
}

impl std::fmt::Debug for TenancyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("TenancyConfig")
            .field("enabled", &self.enabled)
            .field("isolation_level", &self.isolation_level)
            .field("enable_billing", &self.enable_billing)
            .field("default_plan", &self.default_plan)
            .field("plans", &self.plans)
            .field("usage_flush_interval_ms", &self.usage_flush_interval_ms)
            .field("usage_buffer_max", &self.usage_buffer_max)
            .field(
                "purge_billing_history_on_delete",
                &self.purge_billing_history_on_delete,
            )
            .field("bill_freeze_delay_ms", &self.bill_freeze_delay_ms)
            .field("audit_retention_days", &self.audit_retention_days)
            .field("api_key_prefix", &self.api_key_prefix)
            .field(
                "api_key_rotation_overlap_seconds",
                &self.api_key_rotation_overlap_seconds,
            )
            .field("record_cache_ttl_ms", &self.record_cache_ttl_ms)
            .field("jwt_leeway_seconds", &self.jwt_leeway_seconds)
            .field("jwt_audience", &self.jwt_audience)
            .field("api_key_pepper", &secret(&self.api_key_pepper))
            .field("master_key", &secret(&self.master_key))
            .field("secrets_dir", &self.secrets_dir)
            .field("max_metric_tenants", &self.max_metric_tenants)
            .finish()
    }
}

/// One plan: default quotas, burst, what it grants, and its prices.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PlanConfig {
    /// Default quota per resource (`operations_per_minute`, `memory_bytes`,
    /// `storage_bytes`, `data_transfer_bytes`); a tenant's own quotas override these. A
    /// resource named nowhere is unlimited.
    pub quotas: BTreeMap<String, u64>,
    /// Requests admitted at once above the steady `operations_per_minute` rate (the GCRA
    /// bucket size, at least 1). A tenant's `burst` quota overrides it.
    pub burst: u64,
    /// `resource:action` pairs the plan grants (`cache:read`, `extract`, ...); a
    /// tenant's own policy narrows or widens them.
    pub grants: Vec<String>,
    /// Monthly price.
    pub price: PriceTable,
}

/// Prices of one plan, in cents.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PriceTable {
    /// Fixed monthly fee.
    pub base_fee_cents: u64,
    /// Per meter (`operations`, `data_transfer_bytes`, `compute_ms`; storage is not billed).
    pub meters: BTreeMap<String, MeterPrice>,
}

/// How one meter is billed: `included` units free, then `price_cents` per started
/// block of `unit` units.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MeterPrice {
    /// Units included in the base fee.
    pub included: u64,
    /// Units per priced block (at least 1).
    pub unit: u64,
    /// Price of one block beyond the included units.
    pub price_cents: u64,
}

impl Default for PlanConfig {
    /// An empty plan: no quota (unlimited), burst 1, no grants, free.
    fn default() -> Self {
        Self {
            quotas: BTreeMap::new(),
            burst: 1,
            grants: Vec::new(),
            price: PriceTable::default(),
        }
    }
}

impl Default for MeterPrice {
    fn default() -> Self {
        Self {
            included: 0,
            unit: 1,
            price_cents: 0,
        }
    }
}

const MB: u64 = 1024 * 1024;
const GB: u64 = 1024 * MB;

fn plan(
    opm: u64,
    memory: u64,
    storage: u64,
    transfer: u64,
    grants: &[&str],
    price: PriceTable,
) -> PlanConfig {
    let quotas = [
        ("operations_per_minute", opm),
        ("memory_bytes", memory),
        ("storage_bytes", storage),
        ("data_transfer_bytes", transfer),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    PlanConfig {
        quotas,
        burst: (opm / 10).max(1),
        grants: grants.iter().map(|g| (*g).to_owned()).collect(),
        price,
    }
}

fn prices(
    base: u64,
    ops_included: u64,
    per_1k_ops: u64,
    gb_included: u64,
    per_gb: u64,
) -> PriceTable {
    let meters = [
        (
            "operations",
            MeterPrice {
                included: ops_included,
                unit: 1_000,
                price_cents: per_1k_ops,
            },
        ),
        (
            "data_transfer_bytes",
            MeterPrice {
                included: gb_included * GB,
                unit: GB,
                price_cents: per_gb,
            },
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    PriceTable {
        base_fee_cents: base,
        meters,
    }
}

/// The built-in plans; the seed's default plan (`basic`) has 100 MB memory and 1000 ops/min.
pub fn default_plans() -> BTreeMap<BillingPlan, PlanConfig> {
    const READ: &[&str] = &["cache:read", "extract", "sessions", "usage:read"];
    const ALL: &[&str] = &[
        "cache:read",
        "cache:write",
        "extract",
        "crawl",
        "sessions",
        "usage:read",
    ];
    BTreeMap::from([
        (
            BillingPlan::Free,
            plan(60, 10 * MB, 10 * MB, GB, READ, prices(0, 10_000, 0, 1, 0)),
        ),
        (
            BillingPlan::Basic,
            plan(
                1_000,
                100 * MB,
                100 * MB,
                10 * GB,
                ALL,
                prices(2_900, 100_000, 10, 10, 50),
            ),
        ),
        (
            BillingPlan::Professional,
            plan(
                10_000,
                GB,
                GB,
                100 * GB,
                ALL,
                prices(19_900, 2_000_000, 5, 100, 30),
            ),
        ),
        (
            BillingPlan::Enterprise,
            plan(
                100_000,
                10 * GB,
                10 * GB,
                1_000 * GB,
                ALL,
                prices(99_900, 50_000_000, 2, 1_000, 20),
            ),
        ),
    ])
}

/// Largest `jwt_leeway_seconds`: more would keep expired tokens alive for long.
pub const MAX_JWT_LEEWAY_SECONDS: u64 = 300;

impl TenancyConfig {
    /// Checks ranges and that every plan is configured sensibly.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        positive(
            "tenant.usage_flush_interval_ms",
            self.usage_flush_interval_ms,
        )?;
        positive("tenant.usage_buffer_max", self.usage_buffer_max as u64)?;
        if self.bill_freeze_delay_ms < self.usage_flush_interval_ms {
            return Err(config_err(
                "tenant.bill_freeze_delay_ms",
                "at least tenant.usage_flush_interval_ms",
            ));
        }
        positive(
            "tenant.audit_retention_days",
            u64::from(self.audit_retention_days),
        )?;
        positive("tenant.max_metric_tenants", self.max_metric_tenants as u64)?;
        if !(1..=1_000).contains(&self.record_cache_ttl_ms) {
            return Err(config_err(
                "tenant.record_cache_ttl_ms",
                "between 1 and 1000",
            ));
        }
        if self.jwt_leeway_seconds > MAX_JWT_LEEWAY_SECONDS {
            return Err(config_err("tenant.jwt_leeway_seconds", "at most 300"));
        }
        // Secrets are checked here, at startup, not at first use; errors never echo them.
        let secret_err = |key: &'static str, e: super::TenantError| {
            let reason = match e {
                super::TenantError::InvalidField { reason, .. } => reason,
                other => other.to_string(),
            };
            config_err(key, &reason)
        };
        if !self.api_key_pepper.is_empty() {
            super::secrets::decode_configured_secret(
                "tenant.api_key_pepper",
                &self.api_key_pepper,
                32,
            )
            .map_err(|e| secret_err("tenant.api_key_pepper", e))?;
        }
        if !self.master_key.is_empty() {
            let key =
                super::secrets::decode_configured_secret("tenant.master_key", &self.master_key, 32)
                    .map_err(|e| secret_err("tenant.master_key", e))?;
            if key.len() != 32 {
                return Err(config_err(
                    "tenant.master_key",
                    "must be base64 of exactly 32 bytes",
                ));
            }
        }
        let prefix_ok = (1..=16).contains(&self.api_key_prefix.len())
            && self
                .api_key_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !prefix_ok {
            return Err(config_err(
                "tenant.api_key_prefix",
                "1 to 16 of [A-Za-z0-9_]",
            ));
        }
        for plan in BillingPlan::ALL {
            let Some(p) = self.plans.get(&plan) else {
                return Err(config_err(
                    "tenant.plans",
                    &format!("plan {plan} is missing"),
                ));
            };
            for (resource, limit) in &p.quotas {
                if super::Resource::parse(resource).is_none() {
                    return Err(config_err(
                        "tenant.plans",
                        &format!("plan {plan}: unknown resource {resource:?}"),
                    ));
                }
                if *limit == 0 {
                    return Err(config_err(
                        "tenant.plans",
                        &format!("plan {plan}: quota {resource} must be > 0"),
                    ));
                }
            }
            if p.burst == 0 {
                return Err(config_err(
                    "tenant.plans",
                    &format!("plan {plan}: burst must be > 0"),
                ));
            }
            for grant in &p.grants {
                if super::Permission::parse(grant).is_none() {
                    return Err(config_err(
                        "tenant.plans",
                        &format!("plan {plan}: unknown grant {grant:?}"),
                    ));
                }
            }
            for (meter, price) in &p.price.meters {
                if !super::METERS.contains(&meter.as_str()) {
                    return Err(config_err(
                        "tenant.plans",
                        &format!("plan {plan}: unknown meter {meter:?}"),
                    ));
                }
                if price.unit == 0 {
                    return Err(config_err(
                        "tenant.plans",
                        &format!("plan {plan}: meter {meter} unit must be > 0"),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jwt_leeway_is_bounded() {
        let at = |s: u64| TenancyConfig {
            jwt_leeway_seconds: s,
            ..Default::default()
        };
        assert!(at(0).validate().is_ok());
        assert!(at(MAX_JWT_LEEWAY_SECONDS).validate().is_ok());
        let err = at(MAX_JWT_LEEWAY_SECONDS + 1).validate().unwrap_err();
        assert!(err.to_string().contains("jwt_leeway_seconds"), "{err}");
    }
}
