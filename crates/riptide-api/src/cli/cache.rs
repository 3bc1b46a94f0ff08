//! `riptide cache stats|warm|invalidate|clear`: `/admin/cache`. (Warming, which
//! follows a job to its end, is in [`super::warm`].)

use clap::{Args, Subcommand};
use serde_json::Value;

use super::Context;
use super::client::{CliResult, Connection};
use super::output::{self, bytes_at, field, fields, percent_at};
use super::warm::{self, WarmArgs};
use crate::routes::admin::cache::{ClearRequest, InvalidateRequest};

/// `riptide cache`.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// Where the service is, the admin token and the output form.
    #[command(flatten)]
    pub connection: Connection,
    /// The operation.
    #[command(subcommand)]
    pub command: CacheCommand,
}

/// The cache operations.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Hit rates and sizes, overall and per tenant (or of one tenant)
    Stats {
        /// Only this tenant's figures (with its entries in the store)
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Warm caches: start a warm job and follow it to its end
    Warm(WarmArgs),
    /// Remove entries by URL, key, tag or namespace
    Invalidate(InvalidateArgs),
    /// Remove every entry of one tenant's cache, or of every cache
    Clear(ClearArgs),
}

/// `riptide cache invalidate`.
#[derive(Debug, Args)]
pub struct InvalidateArgs {
    /// Whose cache (absent: entries stored without a tenant)
    #[arg(long)]
    pub tenant: Option<String>,
    /// What to remove.
    #[command(flatten)]
    pub selector: Selector,
}

/// What to invalidate: exactly one. (`--page`, not `--url`: that is the service's
/// address.)
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Selector {
    /// A page URL as /extract cached it (needs --tenant)
    #[arg(long = "page", value_name = "URL", requires = "tenant")]
    pub page: Option<String>,
    /// A cache key
    #[arg(long)]
    pub key: Option<String>,
    /// Every entry carrying this tag
    #[arg(long)]
    pub tag: Option<String>,
    /// Every entry of this namespace (`extract` holds /extract and /crawl results)
    #[arg(long)]
    pub namespace: Option<String>,
}

/// `riptide cache clear`: one of the two.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ClearArgs {
    /// Clear this tenant's cache
    #[arg(long)]
    pub tenant: Option<String>,
    /// Clear every tenant's cache and the global scope
    #[arg(long)]
    pub all: bool,
}

/// Runs a cache command.
pub async fn run(ctx: &Context, command: CacheCommand) -> CliResult<()> {
    let client = &ctx.client;
    match command {
        CacheCommand::Stats { tenant } => {
            let query: Vec<(&str, String)> = tenant.into_iter().map(|t| ("tenant_id", t)).collect();
            let stats = client.get(&["admin", "cache", "stats"], &query).await?;
            ctx.out.show(&stats, render_stats);
        }
        CacheCommand::Warm(args) => warm::run(ctx, args).await?,
        CacheCommand::Invalidate(args) => {
            let path = ["admin", "cache", "invalidate"];
            let result = client.post_json(&path, &invalidate_body(args)).await?;
            ctx.out.show(&result, |r| {
                let scope = match output::at(r, "tenant_id") {
                    Value::Null => "the global scope".to_owned(),
                    _ => format!("tenant {}", field(r, "tenant_id")),
                };
                format!(
                    "removed {} entries ({}={}) from {scope}",
                    field(r, "removed"),
                    field(r, "selector"),
                    field(r, "value")
                )
            });
        }
        CacheCommand::Clear(args) => {
            let body = ClearRequest {
                all: args.tenant.is_none().then_some(true),
                tenant_id: args.tenant,
            };
            let result = client
                .post_json(&["admin", "cache", "clear"], &body)
                .await?;
            ctx.out.show(&result, |r| {
                let what = if output::at(r, "all") == &Value::Bool(true) {
                    format!("every cache ({} scopes)", field(r, "scopes"))
                } else {
                    format!("tenant {}", field(r, "tenant_id"))
                };
                format!("cleared {what}: {} entries removed", field(r, "removed"))
            });
        }
    }
    Ok(())
}

fn invalidate_body(args: InvalidateArgs) -> InvalidateRequest {
    let s = args.selector;
    InvalidateRequest {
        tenant_id: args.tenant,
        url: s.page,
        key: s.key,
        tag: s.tag,
        namespace: s.namespace,
    }
}

/// The counters of one scope as a table row, after its name.
fn stats_row(scope: &str, s: &Value) -> Vec<String> {
    vec![
        scope.to_owned(),
        field(s, "hits"),
        field(s, "misses"),
        percent_at(s, "hit_rate"),
        field(s, "sets"),
        field(s, "deletes"),
        field(s, "evictions"),
        field(s, "errors"),
        field(s, "entries"),
        bytes_at(s, "used_bytes"),
    ]
}

fn render_stats(stats: &Value) -> String {
    if output::at(stats, "overall").is_null() {
        return render_tenant_stats(stats);
    }
    let mut rows = vec![stats_row("(all)", output::at(stats, "overall"))];
    if let Some(tenants) = output::at(stats, "tenants").as_object() {
        rows.extend(tenants.iter().map(|(scope, s)| stats_row(scope, s)));
    }
    let headers = [
        "SCOPE",
        "HITS",
        "MISSES",
        "HIT RATE",
        "SETS",
        "DELETES",
        "EVICTIONS",
        "ERRORS",
        "ENTRIES",
        "BYTES",
    ];
    format!(
        "{}\nL1 (this instance): {} entries, {}",
        output::table(&headers, rows),
        field(stats, "l1.entries"),
        bytes_at(stats, "l1.bytes")
    )
}

fn render_tenant_stats(stats: &Value) -> String {
    let s = output::at(stats, "stats");
    let mut rows = vec![
        ("tenant", field(stats, "tenant_id")),
        ("store entries", field(stats, "store.entries")),
        ("store bytes", bytes_at(stats, "store.used_bytes")),
    ];
    if s.is_null() {
        rows.push(("operations", "none on this instance yet".to_owned()));
    } else {
        rows.extend([
            ("hits", field(s, "hits")),
            ("misses", field(s, "misses")),
            ("hit rate", percent_at(s, "hit_rate")),
            ("sets", field(s, "sets")),
            ("deletes", field(s, "deletes")),
            ("evictions", field(s, "evictions")),
            ("errors", field(s, "errors")),
            ("bytes written", bytes_at(s, "bytes_written")),
        ]);
    }
    fields(rows)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn invalidate_sends_the_one_selector() {
        let args = InvalidateArgs {
            tenant: Some("acme".into()),
            selector: Selector {
                page: None,
                key: None,
                tag: Some("news".into()),
                namespace: None,
            },
        };
        assert_eq!(
            serde_json::to_value(invalidate_body(args)).unwrap(),
            json!({"tenant_id": "acme", "tag": "news"})
        );
    }

    #[test]
    fn stats_of_everything_and_of_one_tenant() {
        let all = json!({
            "overall": {"hits": 3, "misses": 1, "hit_rate": 0.75, "used_bytes": 2048},
            "tenants": {"acme": {"hits": 3}},
            "l1": {"entries": 2, "bytes": 100},
        });
        let text = render_stats(&all);
        assert!(text.contains("75.0%") && text.contains("acme") && text.contains("2.0 KiB"));
        let one = json!({"tenant_id": "acme", "stats": null,
                         "store": {"entries": 0, "used_bytes": 0}});
        assert!(render_stats(&one).contains("none on this instance yet"));
    }
}
