//! The tenant layer: records and lifecycle, plans and quotas, rate limits, usage
//! metering and billing, API keys, JWT verification keys, access policies, per-tenant encryption, audit log.

mod access;
pub mod api_keys;
pub mod audit;
mod bill_freeze;
pub mod billing;
mod budgets;
mod compat;
pub mod config;
pub mod crypto;
pub mod data_keys;
mod error;
mod expiring;
mod jwt_admin;
pub mod jwt_keys;
mod key_admin;
mod lifecycle;
mod live_reload;
mod live_settings;
mod manager;
pub mod metrics;
mod metrics_lock;
pub mod model;
mod month_close;
mod period;
pub mod policy;
mod quota;
mod registry;
mod resource;
pub mod secrets;
pub mod tombstones;
pub mod usage;
mod usage_summary;
pub mod validate;

pub use billing::{Bill, LineItem, Period, compute_bill, price_usage};
pub use budgets::effective_quota;
pub use error::{TenantError, TenantResult};
pub use live_settings::{LIVE_TENANT_KEYS, LiveTenantSettings};
pub use manager::{
    TenantChangeListener, TenantDeletionHook, TenantEvent, TenantManager, TenantPage, TenantUpdate,
};
pub use metrics::{TenantMetrics, TenantMetricsSnapshot};
pub use metrics_lock::SharedTenantMetrics;
pub use model::{
    BillingPlan, ResourceUsageRecord, Tenant, TenantConfig, TenantIsolationLevel, TenantOwner,
    TenantStatus,
};
pub use policy::{AccessPolicy, AdminAction, AdminRole};
pub use resource::{METERS, Permission, Resource};
pub use usage::{FlushReport, Recorded, UsageMeter, UsageSummary};
