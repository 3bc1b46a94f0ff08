//! `riptide cache warm`: starts a warm job (`POST /admin/cache/warm` → 202 `{job_id}`),
//! polls `GET /admin/cache/warm/{id}` with a progress bar until the job ends, then
//! prints its summary. The bar is drawn on stderr, and only when stdout is a terminal
//! and `--json` is not given. A job that fails as a whole exits 1; URLs that fail
//! inside a finished job are listed.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::Context;
use super::client::{CliError, CliResult};
use super::output::{self, field};
use crate::routes::admin::warm::WarmBody;
use crate::warming::Source;

/// `riptide cache warm`.
#[derive(Debug, Args)]
pub struct WarmArgs {
    /// Only this tenant's cache
    #[arg(long)]
    pub tenant: Option<String>,
    /// Warm exactly this page URL (repeatable; needs --tenant)
    #[arg(
        long = "page",
        value_name = "URL",
        requires = "tenant",
        conflicts_with = "source"
    )]
    pub pages: Vec<String>,
    /// Where the URLs come from when no --page is given [default: all]
    #[arg(long, value_parser = source_parser())]
    pub source: Option<Source>,
    /// At most this many (tenant, URL) pairs
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// Milliseconds between two progress polls
    #[arg(long, default_value_t = 250, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub poll_ms: u64,
}

impl WarmArgs {
    fn body(&self) -> WarmBody {
        WarmBody {
            tenant_id: self.tenant.clone(),
            urls: (!self.pages.is_empty()).then(|| self.pages.clone()),
            source: self.source,
            limit: self.limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
        }
    }
}

/// `--source`: the names of [`Source::ALL`], listed in `--help`.
fn source_parser() -> impl TypedValueParser<Value = Source> {
    PossibleValuesParser::new(Source::ALL.map(|s| s.as_str()))
        .try_map(|name| Source::parse(&name).ok_or("unknown source"))
}

/// Whether a job has ended.
fn finished(job: &Value) -> bool {
    matches!(output::at(job, "state").as_str(), Some("done" | "failed"))
}

fn progress_bar(visible: bool, total: u64) -> ProgressBar {
    let target = if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} warming [{bar:40}] {pos}/{len} ({elapsed}) {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Starts the job and follows it to its end.
pub async fn run(ctx: &Context, args: WarmArgs) -> CliResult<()> {
    let client = &ctx.client;
    let started = client
        .post_json(&["admin", "cache", "warm"], &args.body())
        .await?;
    let job_id = output::at(&started, "job_id")
        .as_str()
        .ok_or_else(|| CliError::Protocol {
            url: client.url(&["admin", "cache", "warm"], &[]).to_string(),
            reason: "the answer has no job_id".to_owned(),
        })?
        .to_owned();
    let total = output::at(&started, "total").as_u64().unwrap_or(0);
    let visible = !ctx.out.json && std::io::stdout().is_terminal();
    let bar = progress_bar(visible, total);
    bar.set_message(format!("job {job_id}"));
    let path = ["admin", "cache", "warm", job_id.as_str()];
    let job = loop {
        let job = match client.get(&path, &[]).await {
            Ok(job) => job,
            Err(e) => {
                bar.abandon();
                return Err(e);
            }
        };
        if let Some(total) = output::at(&job, "total").as_u64() {
            bar.set_length(total);
        }
        if let Some(done) = output::at(&job, "done").as_u64() {
            bar.set_position(done);
        }
        if finished(&job) {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
    };
    bar.finish_and_clear();
    ctx.out.show(&job, render_job);
    if output::at(&job, "state").as_str() == Some("failed") {
        return Err(CliError::Failed(format!(
            "warm job {job_id} failed: {}",
            field(&job, "error")
        )));
    }
    Ok(())
}

/// The job's summary line, and its failures as a table.
fn render_job(job: &Value) -> String {
    let mut text = format!(
        "warm job {} {}: {}/{} pairs ({} warmed, {} fresh, {} skipped, {} failed)",
        field(job, "id"),
        field(job, "state"),
        field(job, "done"),
        field(job, "total"),
        field(job, "warmed"),
        field(job, "fresh"),
        field(job, "skipped"),
        field(job, "failed"),
    );
    if let Some(failures) = output::at(job, "failures").as_array()
        && !failures.is_empty()
    {
        let rows = failures
            .iter()
            .map(|f| vec![field(f, "tenant_id"), field(f, "url"), field(f, "error")]);
        text.push('\n');
        text.push_str(&output::table(&["TENANT", "URL", "ERROR"], rows));
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn summary_counts_and_failures() {
        let job = json!({"id": "00ff", "state": "done", "done": 2, "total": 2, "warmed": 1,
                         "fresh": 0, "skipped": 0, "failed": 1,
                         "failures": [{"tenant_id": "acme", "url": "http://x/", "error": "boom"}]});
        assert!(finished(&job));
        let text = render_job(&job);
        assert!(
            text.starts_with("warm job 00ff done: 2/2 pairs (1 warmed"),
            "{text}"
        );
        assert!(text.contains("boom"), "{text}");
        assert!(!finished(&json!({"state": "running"})));
    }
}
