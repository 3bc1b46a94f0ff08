//! Monthly billing: [`compute_bill`], over a calendar-month [`Period`], turns one
//! month's [`UsageSummary`] into line items and a total from the plan's price table.
//!
//! Billing is a pure function of the plan's prices and the usage: no store, no clock.
//! Every amount is in cents of [`CURRENCY`]; all arithmetic saturates at `u64::MAX`
//! rather than wrapping, so absurd usage yields an absurd (but never a wrapped, small)
//! bill.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::model::BillingPlan;
pub use super::period::Period;
use super::resource::METERS;
use super::usage_summary::UsageSummary;
use crate::config::{PlanConfig, PriceTable};
use riptide_store::tenant_id::TenantId;

/// The currency of every amount.
pub const CURRENCY: &str = "USD";

/// The item name of the base fee line.
pub const BASE_FEE_ITEM: &str = "base_fee";

/// One line of a bill.
///
/// For a meter line: `used` units were metered, `included` of them are covered by the
/// base fee, and every started block of `unit` units beyond that costs `price_cents`.
/// The base fee line ([`BASE_FEE_ITEM`]) is one block of one unit at the base fee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    /// [`BASE_FEE_ITEM`] or a meter name (`operations`, `data_transfer_bytes`,
    /// `compute_ms`).
    pub item: String,
    /// Units covered by the base fee.
    pub included: u64,
    /// Units metered in the period.
    pub used: u64,
    /// Units per priced block.
    pub unit: u64,
    /// Started blocks beyond the included units: `ceil(max(0, used - included) / unit)`.
    pub billable_blocks: u64,
    /// Price of one block, in cents.
    pub price_cents: u64,
    /// `billable_blocks × price_cents`, saturating.
    pub amount_cents: u64,
}

/// A month's bill for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bill {
    /// The tenant billed.
    pub tenant_id: String,
    /// The month, `YYYY-MM`.
    pub period: String,
    /// The plan whose prices were applied.
    pub plan: BillingPlan,
    /// Always [`CURRENCY`].
    pub currency: String,
    /// The base fee line first, then one line per priced meter in [`METERS`] order.
    pub lines: Vec<LineItem>,
    /// Sum of the lines' amounts, saturating.
    pub total_cents: u64,
    /// When the bill of a closed month was frozen: from then on it is returned as
    /// stored, whatever the plans or prices say. `None`: the month is still open (or
    /// closed less than `tenant.bill_freeze_delay_ms` ago), priced on each read.
    #[serde(default)]
    pub frozen_at: Option<DateTime<Utc>>,
}

/// The figure of `usage` a meter of the price table bills, or `None` for a name that is
/// not a meter (configuration validation refuses those).
pub fn meter_usage(usage: &UsageSummary, meter: &str) -> Option<u64> {
    match meter {
        "operations" => Some(usage.operations),
        "data_transfer_bytes" => Some(usage.data_bytes),
        "compute_ms" => Some(usage.compute_ms),
        _ => None,
    }
}

/// Prices one month of `usage` with the plan's price table.
///
/// The bill has the base fee line, then one line per meter the price table names (in
/// [`METERS`] order; meters without a price are free and get no line). The period is
/// `usage.period`. A `unit` of 0 (refused by configuration validation) is treated as 1
/// rather than dividing by zero.
pub fn compute_bill(
    tenant_id: &TenantId,
    plan: BillingPlan,
    plan_config: &PlanConfig,
    usage: &UsageSummary,
) -> Bill {
    price_usage(tenant_id, plan, &plan_config.price, usage)
}

/// [`compute_bill`] with a price table alone (a closed month's prices, as sealed).
pub fn price_usage(
    tenant_id: &TenantId,
    plan: BillingPlan,
    price: &PriceTable,
    usage: &UsageSummary,
) -> Bill {
    let mut lines = Vec::with_capacity(1 + price.meters.len());
    lines.push(LineItem {
        item: BASE_FEE_ITEM.to_owned(),
        included: 0,
        used: 1,
        unit: 1,
        billable_blocks: 1,
        price_cents: price.base_fee_cents,
        amount_cents: price.base_fee_cents,
    });
    for meter in METERS {
        let (Some(p), Some(used)) = (price.meters.get(meter), meter_usage(usage, meter)) else {
            continue;
        };
        let unit = p.unit.max(1);
        let billable_blocks = used.saturating_sub(p.included).div_ceil(unit);
        lines.push(LineItem {
            item: meter.to_owned(),
            included: p.included,
            used,
            unit,
            billable_blocks,
            price_cents: p.price_cents,
            amount_cents: billable_blocks.saturating_mul(p.price_cents),
        });
    }
    let total_cents = lines
        .iter()
        .fold(0u64, |sum, l| sum.saturating_add(l.amount_cents));
    Bill {
        tenant_id: tenant_id.as_str().to_owned(),
        period: usage.period.clone(),
        plan,
        currency: CURRENCY.to_owned(),
        lines,
        total_cents,
        frozen_at: None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::TenantError;
    use crate::config::{MeterPrice, PriceTable, default_plans};

    fn tenant() -> TenantId {
        TenantId::parse("acme").expect("valid id")
    }

    fn usage(
        operations: u64,
        data_bytes: u64,
        compute_ms: u64,
        storage_bytes: u64,
    ) -> UsageSummary {
        UsageSummary {
            period: "2026-11".to_owned(),
            operations,
            data_bytes,
            compute_ms,
            storage_bytes,
            cache_hits: 0,
            cache_misses: 0,
            by_operation: BTreeMap::new(),
        }
    }

    /// A plan pricing every meter: base 10.00; 1000 ops included then 0.05 per 100;
    /// 1 MiB included then 0.20 per started MiB; compute 1 cent per 1000 ms, none included.
    fn plan() -> PlanConfig {
        let meters = BTreeMap::from([
            (
                "operations".to_owned(),
                MeterPrice {
                    included: 1_000,
                    unit: 100,
                    price_cents: 5,
                },
            ),
            (
                "data_transfer_bytes".to_owned(),
                MeterPrice {
                    included: 1 << 20,
                    unit: 1 << 20,
                    price_cents: 20,
                },
            ),
            (
                "compute_ms".to_owned(),
                MeterPrice {
                    included: 0,
                    unit: 1_000,
                    price_cents: 1,
                },
            ),
        ]);
        PlanConfig {
            price: PriceTable {
                base_fee_cents: 1_000,
                meters,
            },
            ..PlanConfig::default()
        }
    }

    fn line<'b>(bill: &'b Bill, item: &str) -> &'b LineItem {
        bill.lines
            .iter()
            .find(|l| l.item == item)
            .expect("line present")
    }

    #[test]
    fn hand_computed_bill() {
        // operations 1_250: 250 over → ceil(250/100) = 3 blocks × 5 = 15
        // data 3.5 MiB: 2.5 MiB over → 3 blocks × 20 = 60
        // compute 4_001 ms: 5 blocks × 1 = 5
        // storage 90 bytes: not a meter, never billed
        let u = usage(1_250, 7 << 19, 4_001, 90);
        let bill = compute_bill(&tenant(), BillingPlan::Basic, &plan(), &u);
        assert_eq!(bill.tenant_id, "acme");
        assert_eq!(bill.period, "2026-11");
        assert_eq!(bill.currency, "USD");
        assert_eq!(bill.plan, BillingPlan::Basic);
        let items: Vec<_> = bill.lines.iter().map(|l| l.item.as_str()).collect();
        assert_eq!(
            items,
            [
                "base_fee",
                "operations",
                "data_transfer_bytes",
                "compute_ms",
            ]
        );
        assert_eq!(line(&bill, "base_fee").amount_cents, 1_000);
        let ops = line(&bill, "operations");
        assert_eq!(
            (
                ops.included,
                ops.used,
                ops.billable_blocks,
                ops.amount_cents
            ),
            (1_000, 1_250, 3, 15)
        );
        assert_eq!(line(&bill, "data_transfer_bytes").billable_blocks, 3);
        assert_eq!(line(&bill, "data_transfer_bytes").amount_cents, 60);
        assert_eq!(line(&bill, "compute_ms").amount_cents, 5);
        assert_eq!(bill.total_cents, 1_000 + 15 + 60 + 5);
    }

    #[test]
    fn zero_usage_costs_the_base_fee() {
        let bill = compute_bill(&tenant(), BillingPlan::Basic, &plan(), &usage(0, 0, 0, 0));
        assert!(
            bill.lines
                .iter()
                .skip(1)
                .all(|l| l.billable_blocks == 0 && l.amount_cents == 0)
        );
        assert_eq!(bill.total_cents, 1_000);
    }

    #[test]
    fn exactly_included_is_free_and_one_unit_over_is_one_block() {
        let at = compute_bill(
            &tenant(),
            BillingPlan::Basic,
            &plan(),
            &usage(1_000, 1 << 20, 0, 100),
        );
        assert_eq!(at.total_cents, 1_000);
        let over = compute_bill(
            &tenant(),
            BillingPlan::Basic,
            &plan(),
            &usage(1_001, (1 << 20) + 1, 1, 101),
        );
        assert_eq!(line(&over, "operations").billable_blocks, 1);
        assert_eq!(line(&over, "data_transfer_bytes").billable_blocks, 1);
        assert_eq!(line(&over, "compute_ms").billable_blocks, 1);
        assert_eq!(over.total_cents, 1_000 + 5 + 20 + 1);
    }

    #[test]
    fn huge_usage_saturates_instead_of_overflowing() {
        let u = usage(u64::MAX, u64::MAX, u64::MAX, u64::MAX);
        let mut p = plan();
        if let Some(data) = p.price.meters.get_mut("data_transfer_bytes") {
            data.price_cents = u64::MAX;
        }
        let bill = compute_bill(&tenant(), BillingPlan::Enterprise, &p, &u);
        // data: ~2^44 blocks × (2^64 - 1) cents saturates.
        assert_eq!(line(&bill, "data_transfer_bytes").amount_cents, u64::MAX);
        // operations: ceil((MAX - 1000) / 100) blocks × 5 cents still fits in u64.
        let ops = line(&bill, "operations");
        assert_eq!(ops.billable_blocks, (u64::MAX - 1_000).div_ceil(100));
        assert_eq!(ops.amount_cents, ops.billable_blocks.saturating_mul(5));
        assert_eq!(bill.total_cents, u64::MAX);
    }

    #[test]
    fn unpriced_meters_get_no_line_and_unit_zero_does_not_divide_by_zero() {
        let mut p = plan();
        p.price.meters.remove("compute_ms");
        p.price.meters.insert(
            "operations".to_owned(),
            MeterPrice {
                included: 0,
                unit: 0,
                price_cents: 2,
            },
        );
        let bill = compute_bill(&tenant(), BillingPlan::Basic, &p, &usage(7, 0, 50, 7));
        assert!(bill.lines.iter().all(|l| l.item != "compute_ms"));
        assert!(bill.lines.iter().all(|l| l.item != "storage_bytes"));
        assert_eq!(line(&bill, "operations").amount_cents, 14);
    }

    #[test]
    fn default_basic_plan_by_hand() {
        // basic: 29.00 base; 100_000 ops included, 10 cents per started 1_000;
        // 10 GiB included, 50 cents per started GiB.
        let plans = default_plans();
        let basic = &plans[&BillingPlan::Basic];
        let gib = 1u64 << 30;
        let bill = compute_bill(
            &tenant(),
            BillingPlan::Basic,
            basic,
            &usage(150_001, 12 * gib + 1, 9, 9),
        );
        // ops: 50_001 over → 51 blocks → 510; data: 2 GiB + 1 over → 3 blocks → 150.
        assert_eq!(bill.total_cents, 2_900 + 510 + 150);
        assert_eq!(bill.lines.len(), 3);
    }

    #[test]
    fn periods_parse_strictly() {
        let p = Period::parse("2026-11").expect("valid");
        assert_eq!((p.year(), p.month(), p.as_number()), (2026, 11, 202_611));
        assert_eq!(p.to_string(), "2026-11");
        assert!(Period::parse("2026-12").expect("dec") > p);
        for bad in [
            "",
            "2026",
            "2026-1",
            "2026-13",
            "2026-00",
            "26-11",
            "2026/11",
            "2026-11-01",
            "abcd-ef",
            "1969-12",
            "+202-11",
            "2026-1a",
            "２０２６-11",
            " 2026-11",
        ] {
            match Period::parse(bad) {
                Err(TenantError::InvalidField {
                    field: "period", ..
                }) => {}
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn period_of_timestamps() {
        let ts = DateTime::parse_from_rfc3339("2026-11-30T23:59:59.999Z")
            .expect("ts")
            .to_utc();
        assert_eq!(Period::of(&ts).expect("in range").to_string(), "2026-11");
        let dec = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .expect("ts")
            .to_utc();
        assert_eq!(Period::of(&dec).expect("in range").to_string(), "2026-12");
        assert_eq!(Period::of_unix_ms(0).expect("epoch").to_string(), "1970-01");
        assert!(matches!(
            Period::of_unix_ms(u64::MAX),
            Err(TenantError::InvalidField {
                field: "timestamp",
                ..
            })
        ));
        let far = chrono::NaiveDate::from_ymd_opt(10_000, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .expect("chrono represents year 10000")
            .and_utc();
        assert!(matches!(
            Period::of(&far),
            Err(TenantError::InvalidField {
                field: "timestamp",
                ..
            })
        ));
    }

    #[test]
    fn bill_round_trips_through_json() {
        let bill = compute_bill(&tenant(), BillingPlan::Free, &plan(), &usage(5, 5, 5, 500));
        let json = serde_json::to_string(&bill).expect("serialize");
        let back: Bill = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, bill);
        let p: Period = serde_json::from_str("\"2026-02\"").expect("period");
        assert_eq!(p.month(), 2);
        assert!(serde_json::from_str::<Period>("\"2026-2\"").is_err());
    }
}
