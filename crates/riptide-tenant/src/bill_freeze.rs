//! Bills that do not rewrite history: a closed month is billed with the plan and prices
//! in force when it ended, and once frozen its bill never changes.
//!
//! - **Prices are sealed when a month ends.** The price tables of every plan are
//!   written once per closed month to the global record `billing_prices:YYYY-MM`
//!   (set-if-absent: the first instance to see the month closed wins, the others read
//!   its copy). An instance seals before it applies a reloaded configuration, every
//!   `month_close::CLOSE_CHECK` in the background, and on any read of a closed month's bill, so a
//!   reload after the month ended never reaches its prices.
//! - **A tenant's plan is sealed when it changes.** Changing a tenant's plan first
//!   writes its old plan to `bill_plan:YYYY-MM` of the month just closed (set-if-absent),
//!   so the closed month is billed under the plan it ran on.
//! - **The bill is frozen `bill_freeze_delay_ms` after the month ends**, on the first
//!   read from then on: priced with the sealed prices and plan, stamped `frozen_at`,
//!   and written once to `bill:YYYY-MM` (set-if-absent; a loser returns the winner's
//!   copy). Reads of a frozen month return the stored bill as it is. Until the delay has
//!   passed, usage other instances still flush counts, and reads are priced afresh from
//!   the sealed prices (`frozen_at` is `null`).
//! - The open month is priced with the live plans on every read.

use chrono::DateTime;

use super::billing::{Bill, Period, price_usage};
use super::error::{TenantError, TenantResult};
use super::manager::TenantManager;
use super::model::BillingPlan;
use riptide_store::Durability;
use riptide_store::keys::records;
use riptide_store::tenant_id::{AsTenantId, TenantId};

use super::month_close::{corrupt, end_ms, previous, seal_once, sealed_prices};

impl TenantManager {
    /// Seals the prices of the month before now (by the clock), if no instance has yet.
    /// Known sealed months cost no round trip, so a reload needs the store only in the
    /// seconds after a month ends.
    pub async fn seal_closed_month(&self) -> TenantResult<()> {
        let closed = previous(Period::of_unix_ms(self.clock.now_ms())?)?;
        seal_once(&self.store, &self.live, &self.sealed_month, closed).await
    }

    /// Before `tenant`'s plan changes from `old`: keeps `old` as the plan of the month
    /// just closed, unless one is kept already.
    pub(super) async fn seal_plan_before_change(
        &self,
        id: &TenantId,
        old: BillingPlan,
    ) -> TenantResult<()> {
        let closed = previous(Period::of_unix_ms(self.clock.now_ms())?)?;
        let key = self.registry.keys(id).record(&records::bill_plan(closed));
        let raw = serde_json::to_vec(&old).map_err(|e| corrupt(&key, e))?;
        self.store
            .set_if_absent(&key, &raw, None, Durability::Durable)
            .await?;
        Ok(())
    }

    /// The tenant's bill for `period` (`YYYY-MM`): the open month priced with the live
    /// plans; a closed month with the plan and prices in force when it ended, frozen
    /// `bill_freeze_delay_ms` after its end (see the module docs).
    pub async fn billing(
        &self,
        tenant_id: &(impl AsTenantId + ?Sized),
        period: &str,
    ) -> TenantResult<Bill> {
        if !self.live.load().enable_billing {
            return Err(TenantError::BillingDisabled);
        }
        let (id, tenant) = self.require(tenant_id).await?;
        let period = Period::parse(period)?;
        let now_ms = self.clock.now_ms();
        if period >= Period::of_unix_ms(now_ms)? {
            let usage = self.usage.usage_of(&id, period).await?;
            let live = self.live.load();
            let plan = live
                .plan(tenant.plan)
                .ok_or_else(|| not_configured(tenant.plan))?;
            let bill = price_usage(&id, tenant.plan, &plan.price, &usage);
            self.metrics_billing(&id, &bill);
            return Ok(bill);
        }

        let keys = self.registry.keys(&id);
        let bill_key = keys.record(&records::bill(period));
        if let Some(raw) = self.store.get(&bill_key).await? {
            let frozen: Bill = serde_json::from_slice(&raw).map_err(|e| corrupt(&bill_key, e))?;
            self.metrics_billing(&id, &frozen);
            return Ok(frozen);
        }
        let prices = sealed_prices(&self.store, &self.live, period).await?;
        let plan_key = keys.record(&records::bill_plan(period));
        let plan = match self.store.get(&plan_key).await? {
            Some(raw) => serde_json::from_slice(&raw).map_err(|e| corrupt(&plan_key, e))?,
            None => tenant.plan,
        };
        let price = prices.get(&plan).ok_or_else(|| not_configured(plan))?;
        let usage = self.usage.usage_of(&id, period).await?;
        let mut bill = price_usage(&id, plan, price, &usage);
        let freeze_at = end_ms(period).saturating_add(self.config.bill_freeze_delay_ms);
        if now_ms >= freeze_at {
            bill.frozen_at = DateTime::from_timestamp_millis(now_ms as i64);
            bill = self.freeze(&id, &bill_key, bill).await?;
        }
        self.metrics_billing(&id, &bill);
        Ok(bill)
    }

    /// Writes `bill` as the frozen bill at `key` unless one is there; returns the one
    /// stored (another instance's, when it froze first).
    async fn freeze(&self, id: &TenantId, key: &str, bill: Bill) -> TenantResult<Bill> {
        let raw = serde_json::to_vec(&bill).map_err(|e| corrupt(key, e))?;
        if self
            .store
            .set_if_absent(key, &raw, None, Durability::Durable)
            .await?
        {
            tracing::info!(
                tenant.id = id.as_str(),
                billing.period = %bill.period,
                billing.total_cents = bill.total_cents,
                "bill frozen"
            );
            return Ok(bill);
        }
        let raw = self
            .store
            .get(key)
            .await?
            .ok_or_else(|| corrupt(key, "vanished right after it was written"))?;
        serde_json::from_slice(&raw).map_err(|e| corrupt(key, e))
    }

    /// Deletes the tenant's frozen bills and sealed plans (with its billing history).
    pub(super) async fn purge_bills(&self, id: &TenantId, months: &[Period]) -> TenantResult<()> {
        let keys = self.registry.keys(id);
        let records: Vec<String> = months
            .iter()
            .flat_map(|m| {
                [
                    keys.record(&records::bill(m)),
                    keys.record(&records::bill_plan(m)),
                ]
            })
            .collect();
        if !records.is_empty() {
            self.store.delete(&records).await?;
        }
        Ok(())
    }
}

fn not_configured(plan: BillingPlan) -> TenantError {
    TenantError::InvalidField {
        field: "plan",
        reason: format!("plan {plan} is not configured"),
    }
}
