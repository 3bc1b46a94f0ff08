//! Applying the live tenant settings ([`LiveTenantSettings`]) of a reloaded
//! configuration to a running [`TenantManager`].

use std::sync::Arc;

use super::error::TenantResult;
use super::live_settings::LiveTenantSettings;
use super::manager::TenantManager;
use crate::config::TenancyConfig;

impl TenantManager {
    /// The live settings in force.
    pub fn live_settings(&self) -> Arc<LiveTenantSettings> {
        self.live.load_full()
    }

    /// Whether multi-tenancy is on: `enabled` as the manager was built with it, for the
    /// life of the process (see the module docs).
    pub fn multi_tenancy_enabled(&self) -> bool {
        self.config.enabled
    }

    /// Checks `next`, changing nothing requests see: `next` is validated as a whole.
    /// Call it before [`Self::apply_live_settings`].
    ///
    /// Also seals the month just closed with the running prices if no instance has yet,
    /// so a reload never reprices a month that ended under other prices.
    pub async fn prepare_live_settings(&self, next: &TenancyConfig) -> TenantResult<()> {
        next.validate()?;
        self.seal_closed_month().await
    }

    /// Applies the [`LIVE_TENANT_KEYS`](super::live_settings::LIVE_TENANT_KEYS) of `next` from the next call on (quota and
    /// access checks, bills, cache budgets); the other keys, `enabled` among them, are
    /// ignored. Returns the keys whose value changed.
    ///
    /// `next` is validated first: an invalid one changes nothing.
    pub fn apply_live_settings(&self, next: &TenancyConfig) -> TenantResult<Vec<&'static str>> {
        next.validate()?;
        let next = LiveTenantSettings::of(next);
        let running = self.live.load_full();
        let changed = running.changed(&next);
        if changed.is_empty() {
            return Ok(changed);
        }
        self.live.store(Arc::new(next));
        tracing::info!(tenant.changed_keys = ?changed, "live tenant settings applied");
        Ok(changed)
    }
}
