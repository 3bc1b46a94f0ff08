//! `riptide audit`: the audit log (`GET /admin/audit`), filtered by tenant, action and
//! time, oldest first; `riptide audit --verify` checks it (`GET /admin/audit/verify`)
//! and exits with 1, saying what is wrong, when it is not intact.

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeDelta, Utc};
use clap::Args;
use serde_json::Value;

use super::Context;
use super::client::{CliError, CliResult, Connection};
use super::output::{self, field};

/// `riptide audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Where the service is, the admin token and the output form.
    #[command(flatten)]
    pub connection: Connection,
    /// Only records of this tenant
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only this operation (cache.clear) or family of operations (cache)
    #[arg(long)]
    pub action: Option<String>,
    /// From this time: RFC 3339 (2025-01-31T12:00:00Z), a date (2025-01-31) or an age
    /// (30m, 12h, 7d)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<String>,
    /// Up to this time, in the same forms as --since
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<String>,
    /// Most records (1 to 10000)
    #[arg(long, default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub limit: u64,
    /// Verify the chain instead: every record's HMAC and link, and its end against the
    /// longest chain the service has seen; exit 1 when anything is wrong
    #[arg(long, conflicts_with_all = ["tenant", "action", "since", "until"])]
    pub verify: bool,
}

/// A time argument as RFC 3339 (UTC).
fn parse_time(raw: &str) -> Result<String, String> {
    time_at(raw, Utc::now()).map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// `raw` as a time, ages counted back from `now`.
fn time_at(raw: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    let unit_at = raw.len().saturating_sub(1);
    let (number, unit) = raw.split_at(unit_at);
    let age = number
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .and_then(|n| match unit {
            "s" => TimeDelta::try_seconds(n),
            "m" => TimeDelta::try_minutes(n),
            "h" => TimeDelta::try_hours(n),
            "d" => TimeDelta::try_days(n),
            _ => None,
        })
        .ok_or_else(|| {
            format!(
                "{raw:?} is not a time: use RFC 3339 (2025-01-31T12:00:00Z), a date \
                 (2025-01-31) or an age (30s, 15m, 12h, 7d)"
            )
        })?;
    now.checked_sub_signed(age)
        .ok_or_else(|| format!("{raw:?} reaches too far back"))
}

/// Runs `riptide audit`.
pub async fn run(ctx: &Context, args: AuditArgs) -> CliResult<()> {
    if args.verify {
        let report = ctx.client.get(&["admin", "audit", "verify"], &[]).await?;
        ctx.out.show(&report, render_verify);
        if report["ok"] != Value::Bool(true) {
            return Err(CliError::Failed(
                "the audit log failed verification".to_owned(),
            ));
        }
        return Ok(());
    }
    let mut query = vec![("limit", args.limit.to_string())];
    for (name, value) in [
        ("tenant_id", args.tenant),
        ("action", args.action),
        ("since", args.since),
        ("until", args.until),
    ] {
        if let Some(value) = value {
            query.push((name, value));
        }
    }
    let list = ctx.client.get(&["admin", "audit"], &query).await?;
    ctx.out.show(&list, |list| render(list, args.limit));
    Ok(())
}

fn render_verify(report: &Value) -> String {
    let mut lines = Vec::new();
    let length = field(report, "length");
    let checked = field(report, "checked");
    if report["ok"] == Value::Bool(true) {
        lines.push(format!(
            "audit log intact: {checked} records checked, chain at record {length} (head {})",
            field(report, "head_hash")
        ));
    } else {
        lines.push(format!(
            "AUDIT LOG NOT INTACT ({checked} records good, up to record {length}):"
        ));
        if report["first_bad"].is_object() {
            lines.push(format!(
                "- record {}: {}",
                field(report, "first_bad.seq"),
                field(report, "first_bad.reason")
            ));
        }
        for problem in report["problems"].as_array().into_iter().flatten() {
            lines.push(format!("- {}", output::text(problem)));
        }
    }
    lines.join("\n")
}

fn render(list: &Value, limit: u64) -> String {
    let empty = Vec::new();
    let records = output::at(list, "records").as_array().unwrap_or(&empty);
    if records.is_empty() {
        return "no audit records match".to_owned();
    }
    let rows = records.iter().map(|r| {
        vec![
            field(r, "seq"),
            field(r, "at"),
            field(r, "actor"),
            field(r, "tenant_id"),
            field(r, "operation"),
            field(r, "resource"),
            field(r, "outcome"),
            field(r, "metadata"),
        ]
    });
    let table = output::table(
        &[
            "SEQ",
            "TIME",
            "ACTOR",
            "TENANT",
            "OPERATION",
            "RESOURCE",
            "OUTCOME",
            "DETAILS",
        ],
        rows,
    );
    let n = records.len() as u64;
    let more = if n >= limit {
        " (the limit: raise --limit or narrow --since for the rest)"
    } else {
        ""
    };
    let noun = if n == 1 { "record" } else { "records" };
    format!("{table}\n{n} {noun}{more}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn times_in_every_form() {
        let now = DateTime::parse_from_rfc3339("2025-03-10T12:00:00Z")
            .expect("now")
            .with_timezone(&Utc);
        let at = |raw: &str| time_at(raw, now).map(|t| t.to_rfc3339());
        assert_eq!(
            at("2025-01-31T12:00:00+01:00").expect("rfc"),
            "2025-01-31T11:00:00+00:00"
        );
        assert_eq!(at("2025-01-31").expect("date"), "2025-01-31T00:00:00+00:00");
        assert_eq!(at("90m").expect("age"), "2025-03-10T10:30:00+00:00");
        assert_eq!(at("2d").expect("age"), "2025-03-08T12:00:00+00:00");
        for bad in ["", "yesterday", "5w", "-3h", "h"] {
            assert!(time_at(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn records_as_rows() {
        let list = json!({"count": 1, "records": [{"seq": 7, "at": "t", "actor": "admin:x",
            "tenant_id": null, "operation": "cache.clear", "resource": "all",
            "outcome": "ok", "metadata": {"removed": "3"}}]});
        let text = render(&list, 1);
        assert!(
            text.contains("cache.clear") && text.contains("removed=3"),
            "{text}"
        );
        assert!(text.contains("1 record (the limit"), "{text}");
        assert_eq!(render(&json!({"records": []}), 5), "no audit records match");
    }

    #[test]
    fn verdicts_say_what_is_wrong() {
        let bad = json!({"ok": false, "checked": 3, "length": 3, "head_hash": "ab",
            "first_bad": null, "problems": ["the head was rolled back"]});
        let text = render_verify(&bad);
        assert!(
            text.contains("NOT INTACT") && text.contains("- the head was rolled back"),
            "{text}"
        );
        let good = json!({"ok": true, "checked": 3, "length": 3, "head_hash": "ab",
            "first_bad": null, "problems": []});
        assert!(render_verify(&good).contains("intact: 3 records"));
    }
}
